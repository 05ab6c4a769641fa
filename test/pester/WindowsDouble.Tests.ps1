# Pester 5 tests of the Windows double (emulator/double/WindowsDouble.ps1): that it offers
# exactly the access layer's functions, and that it behaves as Windows does where the
# payloads depend on it (ACL inheritance, access checks, icacls, services, SessionEnv and
# TermService at start, the write log and injected faults).
#   pwsh -NoProfile -c "Import-Module Pester; Invoke-Pester -Path test/pester/WindowsDouble.Tests.ps1 -Output Detailed"

BeforeAll {
    Set-StrictMode -Version 3.0
    $script:Root = (Resolve-Path (Join-Path $PSScriptRoot '../..')).Path
    $script:DoublePath = Join-Path $script:Root 'emulator/double/WindowsDouble.ps1'
    . $script:DoublePath

    $script:Guid = '6b1a2c3d-0000-4000-8000-000000000001'
    $script:MachineKeys = 'C:\ProgramData\Microsoft\Crypto\RSA\MachineKeys'
    $script:KeyFile = "$script:MachineKeys\f686aace6942fb7f7ceb231212eef4a4_$script:Guid"
    $script:TsKey = 'HKLM\SYSTEM\CurrentControlSet\Control\Terminal Server'
    $script:RdpTcp = "$script:TsKey\WinStations\RDP-Tcp"
    $script:DefaultFolderSddl = 'O:SYG:SYD:PAI(A;;0x12019f;;;WD)(A;;FA;;;BA)'
    $script:RunId = '11111111-1111-1111-1111-111111111111'

    function New-RrDoubleTestState {
        # A healthy Windows Server 2022 VM, shaped as emulator/windows-state.ts says.
        $dword = { param($value) [ordered]@{ kind = 'DWord'; value = $value } }
        $string = { param($value) [ordered]@{ kind = 'String'; value = $value } }
        $service = { param([string[]]$dependsOn) [ordered]@{ status = 'Running'; dependsOn = @($dependsOn | Where-Object { $_ }); startPendingReads = 0; pendingReadsLeft = 0; startFailure = $null } }
        return [ordered]@{
            v = 1; now = '2026-06-01T10:00:00Z'; computerName = 'VM01'
            os = [ordered]@{ caption = 'Microsoft Windows Server 2022 Datacenter'; buildNumber = '20348' }
            serverSku = $true; features = [ordered]@{ 'RDS-Connection-Broker' = $false }
            domain = [ordered]@{ partOfDomain = $false; secureChannel = $true }
            programData = 'C:\ProgramData'
            registry = [ordered]@{
                $script:TsKey = [ordered]@{ fDenyTSConnections = (& $dword 0) }
                "$script:TsKey\WinStations" = [ordered]@{ SelfSignedCertStore = (& $string 'Remote Desktop') }
                $script:RdpTcp = [ordered]@{ SecurityLayer = (& $dword 2); UserAuthentication = (& $dword 1); MinEncryptionLevel = (& $dword 2); PortNumber = (& $dword 3389) }
                'HKLM\SOFTWARE\Microsoft\Cryptography' = [ordered]@{ MachineGuid = (& $string $script:Guid) }
            }
            certificates = [ordered]@{
                'Remote Desktop' = @([ordered]@{ thumbprint = 'A1B2C3D4E5F60718293A4B5C6D7E8F9012345678'; subject = 'CN=VM01'; issuer = 'CN=VM01'; notBefore = '2026-04-01T10:00:00Z'; notAfter = '2026-10-01T10:00:00Z'; hasPrivateKey = $true; extensionOids = @('2.5.29.37') })
                'My' = @()
            }
            files = [ordered]@{
                $script:MachineKeys = [ordered]@{ type = 'directory'; sddl = $script:DefaultFolderSddl }
                $script:KeyFile = [ordered]@{ type = 'file'; sddl = 'O:SYG:SYD:(A;;FA;;;SY)(A;;FA;;;BA)(A;;FR;;;NS)' }
            }
            services = [ordered]@{ TermService = (& $service); SessionEnv = (& $service); UmRdpService = (& $service 'TermService') }
            wmi = [ordered]@{ readable = $true; policySourceSecurityLayer = 0; policySourceUserAuthenticationRequired = 0; policySourceMinEncryptionLevel = 0 }
            tcpListeners = @(3389); nativeResults = [ordered]@{}
            # What TermService loaded when it started (the keys as they are now).
            termServiceLoaded = [ordered]@{ registry = [ordered]@{
                    $script:TsKey   = [ordered]@{ fDenyTSConnections = (& $dword 0) }
                    $script:RdpTcp = [ordered]@{ SecurityLayer = (& $dword 2); UserAuthentication = (& $dword 1); MinEncryptionLevel = (& $dword 2); PortNumber = (& $dword 3389) }
                } }
            faults = [ordered]@{ throwAtWrite = $null; unreadableAcls = @() }
        }
    }

    function Initialize-RrDoubleTest {
        param([System.Collections.IDictionary]$State = (New-RrDoubleTestState))
        # Through JSON, as the host hands the state over.
        Initialize-RrDouble -State ($State | ConvertTo-Json -Depth 20 | ConvertFrom-Json -AsHashtable -DateKind String)
    }

    function Get-RrDoubleTestJson { return ($global:RrDouble.State | ConvertTo-Json -Depth 20 -Compress) }

    function Get-RrDoubleTestFunction {
        param([string]$Path)
        # Top-level function definitions, by name, with their parameters as the AST has them.
        $tokens = $null; $errors = $null
        $ast = [System.Management.Automation.Language.Parser]::ParseFile($Path, [ref]$tokens, [ref]$errors)
        $errors | Should -BeNullOrEmpty
        $functions = @{}
        foreach ($definition in $ast.FindAll({ param($node) $node -is [System.Management.Automation.Language.FunctionDefinitionAst] }, $false)) {
            $parameters = @()
            if ($null -ne $definition.Body.ParamBlock) {
                $parameters = @($definition.Body.ParamBlock.Parameters | ForEach-Object {
                        $attributes = @($_.Attributes | ForEach-Object { $_.Extent.Text -replace '\s', '' }) -join ''
                        '{0}{1}' -f $attributes, $_.Name.VariablePath.UserPath
                    })
            }
            $functions[$definition.Name] = $parameters -join ','
        }
        return $functions
    }

    function Assert-RrDoubleTestPayloadLogic {
        if ($null -ne $script:PayloadLogicError) { throw "scripts/lib could not be loaded: $script:PayloadLogicError" }
    }

    # The payload logic on top of the double, as the host composes it (without compose.ts, so
    # the allow-list comes from src/contract/actions.ts through Load-Payload.ps1). Kept apart: a
    # broken library fails only the end-to-end tests.
    $script:PayloadLogicError = $null
    try {
        . (Join-Path $PSScriptRoot 'Load-Payload.ps1')
    }
    catch { $script:PayloadLogicError = $_.Exception.Message }
}

Describe 'The double offers exactly the access layer' {
    It 'defines the functions of Access.Read.ps1 and Access.Write.ps1 with the same parameters, plus *-RrDouble* helpers only' {
        $access = Get-RrDoubleTestFunction -Path (Join-Path $script:Root 'scripts/lib/Access.Read.ps1')
        $write = Get-RrDoubleTestFunction -Path (Join-Path $script:Root 'scripts/lib/Access.Write.ps1')
        foreach ($name in $write.Keys) { $access[$name] = $write[$name] }
        $double = Get-RrDoubleTestFunction -Path $script:DoublePath
        $replacements = @{}
        foreach ($name in $double.Keys) { if ($name -notmatch '^[A-Za-z]+-RrDouble') { $replacements[$name] = $double[$name] } }
        @($replacements.Keys | Sort-Object) | Should -Be @($access.Keys | Sort-Object)
        foreach ($name in $access.Keys) {
            # Names, types and validation attributes, in order.
            $replacements[$name] | Should -BeExactly $access[$name] -Because "$name must take the same parameters"
        }
    }

    It 'has no side effects when dot-sourced: only function definitions at top level' {
        $tokens = $null; $errors = $null
        $ast = [System.Management.Automation.Language.Parser]::ParseFile($script:DoublePath, [ref]$tokens, [ref]$errors)
        $ast.ParamBlock | Should -BeNullOrEmpty
        foreach ($statement in $ast.EndBlock.Statements) { $statement | Should -BeOfType ([System.Management.Automation.Language.FunctionDefinitionAst]) }
    }

    It 'keeps the validation of the write functions' {
        Initialize-RrDoubleTest
        { Remove-RrCertificate -StoreName 'My' -Thumbprint ('A' * 40) } | Should -Throw -ExceptionType ([System.Management.Automation.ParameterBindingException])
        { Set-RrRegistryValue -Path $script:RdpTcp -Name 'X' -Value 1 -Kind 'Binary' } | Should -Throw -ExceptionType ([System.Management.Automation.ParameterBindingException])
        $global:RrDouble.WriteCount | Should -Be 0
    }
}

Describe 'Registry' {
    BeforeEach {
        $state = New-RrDoubleTestState
        $state.registry[$script:RdpTcp]['SSLCertificateSHA1Hash'] = [ordered]@{ kind = 'Binary'; value = @(1, 2, 255) }
        $state.registry[$script:RdpTcp]['Big'] = [ordered]@{ kind = 'DWord'; value = 4294967295 }
        Initialize-RrDoubleTest -State $state
    }

    It 'returns DWORD as [int], SZ as [string], absent as $null, case-insensitively' {
        $port = Get-RrRegistryValue -Path $script:RdpTcp.ToUpperInvariant() -Name 'portnumber'
        $port | Should -BeOfType ([int])
        $port | Should -Be 3389
        Get-RrRegistryValue -Path 'HKLM\SOFTWARE\Microsoft\Cryptography' -Name 'MachineGuid' | Should -BeExactly $script:Guid
        Get-RrRegistryValue -Path $script:RdpTcp -Name 'Missing' | Should -BeNullOrEmpty
        Get-RrRegistryValue -Path 'HKLM\SOFTWARE\Nope' -Name 'X' | Should -BeNullOrEmpty
        Get-RrRegistryValue -Path $script:RdpTcp -Name 'Big' | Should -Be -1
        { Get-RrRegistryValue -Path 'HKCU\Software' -Name 'X' } | Should -Throw '*HKLM*'
    }

    It 'keeps a REG_BINARY value one byte[]' {
        $value = Get-RrRegistryValue -Path $script:RdpTcp -Name 'SSLCertificateSHA1Hash'
        , $value | Should -BeOfType ([byte[]])
        $value.Length | Should -Be 3
        $value[2] | Should -Be 255
    }

    It 'creates missing keys on Set, stores DWORDs unsigned and treats removing an absent value as a no-op' {
        Set-RrRegistryValue -Path 'HKLM\SOFTWARE\New\Key' -Name 'Enabled' -Value 1
        Set-RrRegistryValue -Path $script:RdpTcp -Name 'securitylayer' -Value 0 -Kind 'DWord'
        Set-RrRegistryValue -Path $script:RdpTcp -Name 'Negative' -Value -1
        Set-RrRegistryValue -Path $script:RdpTcp -Name 'Name' -Value 'x' -Kind 'String'
        Get-RrRegistryValue -Path 'HKLM\SOFTWARE\New\Key' -Name 'Enabled' | Should -Be 1
        Test-RrRegistryKey -Path 'HKLM\SOFTWARE\New' | Should -BeTrue
        Test-RrRegistryKey -Path 'HKLM\SOFTWARE\Other' | Should -BeFalse
        $rdp = $global:RrDouble.State.registry[$script:RdpTcp]
        $rdp['SecurityLayer']['value'] | Should -Be 0
        $rdp.Contains('securitylayer') | Should -BeFalse -Because 'the value keeps its spelling'
        $rdp['Negative']['value'] | Should -Be 4294967295
        $rdp['Name'] | Should -Not -BeNullOrEmpty
        Remove-RrRegistryValue -Path 'HKLM\SOFTWARE\Absent' -Name 'X'
        Remove-RrRegistryValue -Path $script:RdpTcp -Name 'Absent'
        Remove-RrRegistryValue -Path $script:RdpTcp -Name 'sslcertificatesha1hash'
        Get-RrRegistryValue -Path $script:RdpTcp -Name 'SSLCertificateSHA1Hash' | Should -BeNullOrEmpty
        @($global:RrDouble.Writes.op) | Should -Be @('Set-RrRegistryValue', 'Set-RrRegistryValue', 'Set-RrRegistryValue', 'Set-RrRegistryValue', 'Remove-RrRegistryValue', 'Remove-RrRegistryValue', 'Remove-RrRegistryValue')
    }

    It 'exports a key and its subkeys with reg.exe, exit 1 for an absent key' {
        New-RrDirectory -Path 'C:\Backup'
        $export = Export-RrRegistryKey -Path $script:TsKey -File 'C:\Backup\ts.reg'
        $export.ExitCode | Should -Be 0
        $content = $global:RrDouble.State.files['C:\Backup\ts.reg']['content']
        $content | Should -BeLike 'Windows Registry Editor Version 5.00*'
        $content | Should -BeLike "*[HKEY_LOCAL_MACHINE\SYSTEM\CurrentControlSet\Control\Terminal Server\WinStations\RDP-Tcp]*`"PortNumber`"=dword:00000d3d*"
        $content | Should -BeLike '*"SSLCertificateSHA1Hash"=hex:01,02,ff*'
        (Export-RrRegistryKey -Path 'HKLM\SOFTWARE\Absent' -File 'C:\Backup\absent.reg').ExitCode | Should -Be 1
        $global:RrDouble.State.files.Contains('C:\Backup\absent.reg') | Should -BeFalse
    }
}

Describe 'ACL inheritance when a folder DACL is set' {
    BeforeEach {
        $state = New-RrDoubleTestState
        $mk = $script:MachineKeys
        # A broken folder that passes NETWORK SERVICE read on to its files, and a key file that
        # reads through nothing but that inheritance.
        $state.files[$mk]['sddl'] = 'O:SYG:SYD:AI(A;OICI;FA;;;SY)(A;OI;FR;;;NS)(A;CINP;FR;;;AU)(A;OICIIO;FA;;;BA)(A;;0x12019f;;;WD)'
        $state.files[$script:KeyFile]['sddl'] = 'O:SYG:SYD:AI(A;ID;FA;;;SY)(A;ID;FR;;;NS)(A;ID;FA;;;BA)'
        $state.files["$mk\protected.key"] = [ordered]@{ type = 'file'; sddl = 'O:SYG:SYD:PAI(A;ID;FR;;;NS)(A;;FA;;;SY)' }
        $state.files["$mk\explicit.key"] = [ordered]@{ type = 'file'; sddl = 'O:SYG:SYD:AI(A;ID;FR;;;NS)(A;;FA;;;SY)' }
        $state.files["$mk\sub"] = [ordered]@{ type = 'directory'; sddl = 'O:SYG:SYD:AI(A;OICIID;FA;;;SY)' }
        $state.files["$mk\sub\deep.key"] = [ordered]@{ type = 'file'; sddl = 'O:SYG:SYD:AI(A;ID;FA;;;SY)(A;ID;FR;;;NS)' }
        Initialize-RrDoubleTest -State $state
    }

    It 'computes what children inherit: OI to files, CI to directories, NP stops, IO is dropped, ID added' {
        Set-RrSddl -Path $script:MachineKeys -Sddl 'D:PAI(A;OICI;FA;;;SY)(A;OI;FR;;;NS)(A;CINP;FR;;;AU)(A;OICIIO;FA;;;BA)'
        $files = $global:RrDouble.State.files
        $files[$script:MachineKeys]['sddl'] | Should -BeExactly 'O:SYG:SYD:PAI(A;OICI;FA;;;SY)(A;OI;FR;;;NS)(A;CINP;FR;;;AU)(A;OICIIO;FA;;;BA)'
        $files["$script:MachineKeys\sub"]['sddl'] | Should -BeExactly 'O:SYG:SYD:AI(A;OICIID;FA;;;SY)(A;OIIOID;FR;;;NS)(A;ID;FR;;;AU)(A;OICIID;FA;;;BA)'
        $files["$script:MachineKeys\sub\deep.key"]['sddl'] | Should -BeExactly 'O:SYG:SYD:AI(A;ID;FA;;;SY)(A;ID;FR;;;NS)(A;ID;FA;;;BA)'
        $files[$script:KeyFile]['sddl'] | Should -BeExactly 'O:SYG:SYD:AI(A;ID;FA;;;SY)(A;ID;FR;;;NS)(A;ID;FA;;;BA)'
        # An unprotected DACL takes its parent's inheritable ACEs again, after the explicit ones.
        Set-RrSddl -Path "$script:MachineKeys\sub" -Sddl 'D:(A;ID;FA;;;WD)(A;;FR;;;BU)'
        $files["$script:MachineKeys\sub"]['sddl'] | Should -BeExactly 'O:SYG:SYD:AI(A;;FR;;;BU)(A;OICIID;FA;;;SY)(A;OIIOID;FR;;;NS)(A;ID;FR;;;AU)(A;OICIID;FA;;;BA)'
    }

    It 'strips the key file''s inherited-only NETWORK SERVICE read when the folder gets the default DACL' {
        Set-RrSddl -Path $script:MachineKeys -Sddl 'D:PAI(A;;0x12019f;;;WD)(A;;FA;;;BA)'
        $files = $global:RrDouble.State.files
        $files[$script:MachineKeys]['sddl'] | Should -BeExactly $script:DefaultFolderSddl
        $files[$script:KeyFile]['sddl'] | Should -BeExactly 'O:SYG:SYD:AI' -Because 'every ACE it had was inherited'
        $files["$script:MachineKeys\explicit.key"]['sddl'] | Should -BeExactly 'O:SYG:SYD:AI(A;;FA;;;SY)'
        $files["$script:MachineKeys\protected.key"]['sddl'] | Should -BeExactly 'O:SYG:SYD:PAI(A;ID;FR;;;NS)(A;;FA;;;SY)' -Because 'a protected DACL is left alone'
        $files["$script:MachineKeys\sub\deep.key"]['sddl'] | Should -BeExactly 'O:SYG:SYD:AI' -Because 'the subfolder passes nothing on any more'
        # The owner SY still has READ_CONTROL over an empty DACL.
        Get-RrSddl -Path $script:KeyFile | Should -BeExactly 'O:SYG:SYD:AI'
        $global:RrDouble.Writes[0].detail | Should -BeLike '*4 entries below re-inherited'
    }

    It 'gives new directories and files the inherited ACEs of their parent' {
        New-RrDirectory -Path 'C:\ProgramData\RdpRemediation\run'
        Write-RrTextFile -Path 'C:\ProgramData\RdpRemediation\run\a.json' -Text '{}'
        $files = $global:RrDouble.State.files
        $files['C:\ProgramData\RdpRemediation\run']['sddl'] | Should -BeExactly 'O:SYG:SYD:AI(A;OICIID;FA;;;SY)(A;OICIID;FA;;;BA)'
        $files['C:\ProgramData\RdpRemediation\run\a.json']['sddl'] | Should -BeExactly 'O:SYG:SYD:AI(A;ID;FA;;;SY)(A;ID;FA;;;BA)'
        Test-RrPath -Path 'C:\ProgramData\RdpRemediation' | Should -BeTrue -Because 'parents are implied'
        Test-RrPath -Path 'c:\programdata\rdpremediation\RUN\A.JSON' | Should -BeTrue
        Test-RrPath -Path 'C:\ProgramData\RdpRemediation\run\b.json' | Should -BeFalse
        { Write-RrTextFile -Path 'C:\Nowhere\x.txt' -Text 'x' } | Should -Throw '*Could not find a part of the path*'
    }
}

Describe 'Reading ACLs as SYSTEM' {
    BeforeEach { Initialize-RrDoubleTest }

    It 'throws "Attempted to perform an unauthorized operation." without READ_CONTROL' {
        $files = $global:RrDouble.State.files
        $files[$script:KeyFile]['sddl'] = 'O:NSG:SYD:(A;;FA;;;NS)'
        { Get-RrSddl -Path $script:KeyFile } | Should -Throw 'Attempted to perform an unauthorized operation.'
        $files[$script:KeyFile]['sddl'] = 'O:NSG:SYD:(A;;FR;;;WD)(D;;RC;;;AU)'
        { Get-RrSddl -Path $script:KeyFile } | Should -Throw 'Attempted to perform an unauthorized operation.'
        $files[$script:KeyFile]['sddl'] = 'O:NSG:SYD:(A;;0x20000;;;AU)'
        Get-RrSddl -Path $script:KeyFile | Should -BeExactly 'O:NSG:SYD:(A;;0x20000;;;AU)'
        $files[$script:KeyFile]['sddl'] = 'O:BAG:SYD:(D;;FA;;;WD)'
        Get-RrSddl -Path $script:KeyFile | Should -BeExactly 'O:BAG:SYD:(D;;FA;;;WD)' -Because 'the owner reads its DACL whatever it says'
    }

    It 'throws for paths in faults.unreadableAcls and not-found for a missing path' {
        $global:RrDouble.State.faults.unreadableAcls = @($script:MachineKeys.ToLowerInvariant())
        { Get-RrSddl -Path $script:MachineKeys } | Should -Throw 'Attempted to perform an unauthorized operation.'
        { Get-RrSddl -Path 'C:\Missing' } | Should -Throw -ExceptionType ([System.Management.Automation.ItemNotFoundException])
    }

    It 'makes the probe report an unreadable key file ACL as null, not as a failure' {
        Assert-RrDoubleTestPayloadLogic
        $global:RrDouble.State.files[$script:KeyFile]['sddl'] = 'O:NSG:NSD:(A;;FA;;;NS)'
        $probe = Invoke-RrProbe -RunId $script:RunId
        $probe['ok'] | Should -BeTrue
        $probe['facts']['keys']['file'] | Should -Be 'present'
        $probe['facts']['keys']['fileSddl'] | Should -BeNullOrEmpty
        $probe['facts']['keys']['fileOk'] | Should -BeFalse
    }
}

Describe 'icacls' {
    BeforeEach { Initialize-RrDoubleTest }

    It 'sets the owner and merges or appends grants as explicit ACEs before the inherited ones' {
        $files = $global:RrDouble.State.files
        $files[$script:KeyFile]['sddl'] = 'O:NSG:SYD:AI(A;;FR;;;SY)(A;ID;FA;;;BA)'
        (Invoke-RrIcaclsSetOwner -Path $script:KeyFile -Owner '*S-1-5-32-544').ExitCode | Should -Be 0
        $files[$script:KeyFile]['sddl'] | Should -BeExactly 'O:BAG:SYD:AI(A;;FR;;;SY)(A;ID;FA;;;BA)'
        $grant = Invoke-RrIcaclsGrant -Path $script:KeyFile -Grant @('*S-1-5-18:(F)', '*S-1-5-20:(R)')
        $grant.ExitCode | Should -Be 0
        $grant.Output | Should -BeLike '*Successfully processed 1 files*'
        $files[$script:KeyFile]['sddl'] | Should -BeExactly 'O:BAG:SYD:AI(A;;FA;;;SY)(A;;FR;;;NS)(A;ID;FA;;;BA)'
        (Invoke-RrIcaclsGrant -Path $script:KeyFile -Grant @('*S-1-5-20:(F)')).ExitCode | Should -Be 0
        $files[$script:KeyFile]['sddl'] | Should -BeExactly 'O:BAG:SYD:AI(A;;FA;;;SY)(A;;FA;;;NS)(A;ID;FA;;;BA)'
        (Invoke-RrIcaclsSetOwner -Path $script:KeyFile -Owner '*S-1-5-18').ExitCode | Should -Be 0
        $files[$script:KeyFile]['sddl'] | Should -BeLike 'O:SYG:SY*'
    }

    It 'is denied without WRITE_DAC and changes nothing' {
        $files = $global:RrDouble.State.files
        $files[$script:KeyFile]['sddl'] = 'O:NSG:SYD:(A;;FR;;;SY)(A;;FA;;;NS)'
        $grant = Invoke-RrIcaclsGrant -Path $script:KeyFile -Grant @('*S-1-5-18:(F)')
        $grant.ExitCode | Should -Be 5
        $grant.Output | Should -BeLike '*Access is denied.*'
        $files[$script:KeyFile]['sddl'] | Should -BeExactly 'O:NSG:SYD:(A;;FR;;;SY)(A;;FA;;;NS)'
        (Invoke-RrIcaclsGrant -Path 'C:\Missing' -Grant @('*S-1-5-18:(F)')).ExitCode | Should -Be 2
    }

    It 'saves the folder and its children, and lets canned results override' {
        New-RrDirectory -Path 'C:\Backup'
        $save = Invoke-RrIcaclsSave -Path $script:MachineKeys -File 'C:\Backup\mk.acl'
        $save.ExitCode | Should -Be 0
        $global:RrDouble.State.files['C:\Backup\mk.acl']['content'] | Should -BeLike "$script:MachineKeys*$script:DefaultFolderSddl*$script:KeyFile*(A;;FR;;;NS)*"
        $global:RrDouble.State.nativeResults['icacls.exe /grant'] = [ordered]@{ exitCode = 1332; output = 'No mapping' }
        $before = Get-RrDoubleTestJson
        $grant = Invoke-RrIcaclsGrant -Path $script:KeyFile -Grant @('*S-1-5-18:(R)', '*S-1-5-1-2:(F)')
        $grant.ExitCode | Should -Be 1332
        $grant.Output | Should -Be 'No mapping'
        Get-RrDoubleTestJson | Should -BeExactly $before
        $global:RrDouble.Writes[-1].detail | Should -BeLike 'canned*'
    }
}

Describe 'Services' {
    BeforeEach {
        $state = New-RrDoubleTestState
        $state.services.TermService.startPendingReads = 2
        Initialize-RrDoubleTest -State $state
    }

    It 'counts StartPending down on each status read' {
        Restart-RrService -Name 'TermService' -Force
        Get-RrServiceStatus -Name 'TermService' | Should -Be 'StartPending'
        Get-RrServiceStatus -Name 'TermService' | Should -Be 'StartPending'
        Get-RrServiceStatus -Name 'termservice' | Should -Be 'Running'
        Get-RrServiceStatus -Name 'NoSuchService' | Should -BeNullOrEmpty
    }

    It 'refuses to restart with running dependants unless -Force, which leaves them stopped' {
        $before = Get-RrDoubleTestJson
        { Restart-RrService -Name 'TermService' } | Should -Throw '*running dependent services*'
        Get-RrDoubleTestJson | Should -BeExactly $before
        Restart-RrService -Name 'TermService' -Force
        $services = $global:RrDouble.State.services
        $services.UmRdpService.status | Should -Be 'Stopped'
        $services.TermService.status | Should -Be 'StartPending'
        $services.TermService.pendingReadsLeft | Should -Be 2
        $global:RrDouble.Writes[-1].detail | Should -BeLike 'stopped UmRdpService; stopped TermService; started TermService*'
    }

    It 'starts dependencies first, and a start failure throws its message' {
        $services = $global:RrDouble.State.services
        $services.TermService.status = 'Stopped'; $services.UmRdpService.status = 'Stopped'
        $services.TermService.startPendingReads = 0
        Start-RrService -Name 'UmRdpService'
        $services.TermService.status | Should -Be 'Running'
        $services.UmRdpService.status | Should -Be 'Running'
        Start-RrService -Name 'UmRdpService'
        $global:RrDouble.Writes[-1].detail | Should -Be 'already Running'
        $services.SessionEnv.status = 'Stopped'; $services.SessionEnv.startFailure = 'The service did not respond to the start or control request in a timely fashion.'
        { Start-RrService -Name 'SessionEnv' } | Should -Throw 'The service did not respond*'
        $services.SessionEnv.status | Should -Be 'Stopped'
        { Start-RrService -Name 'Nope' } | Should -Throw "Cannot find any service with service name 'Nope'."
    }

    It 'lets TermService load its configuration and open its port at start, and close it at stop' {
        Set-RrRegistryValue -Path $script:RdpTcp -Name 'PortNumber' -Value 3390
        Set-RrRegistryValue -Path 'HKLM\SYSTEM\CurrentControlSet\Control\SecurityProviders\SCHANNEL\Protocols\TLS 1.2\Server' -Name 'Enabled' -Value 1
        Restart-RrService -Name 'TermService' -Force
        $state = $global:RrDouble.State
        @($state.tcpListeners) | Should -Be @(3390)
        $loaded = $state.termServiceLoaded.registry
        @($loaded.Keys | Sort-Object) | Should -Be @($script:TsKey, $script:RdpTcp, 'HKLM\SYSTEM\CurrentControlSet\Control\SecurityProviders\SCHANNEL\Protocols\TLS 1.2\Server' | Sort-Object)
        $loaded[$script:RdpTcp]['PortNumber']['value'] | Should -Be 3390
        # The snapshot is a copy: later changes reach TermService only with the next restart.
        Set-RrRegistryValue -Path $script:TsKey -Name 'fDenyTSConnections' -Value 1
        $loaded[$script:TsKey]['fDenyTSConnections']['value'] | Should -Be 0
        Restart-RrService -Name 'TermService' -Force
        @($state.tcpListeners).Count | Should -Be 0
        $state.termServiceLoaded.registry[$script:TsKey]['fDenyTSConnections']['value'] | Should -Be 1
        Test-RrTcpListener -Port 3390 | Should -BeFalse
    }
}

Describe 'SessionEnv issuing the RDP certificate at start' {
    BeforeEach {
        $state = New-RrDoubleTestState
        $state.certificates['Remote Desktop'][0]['notAfter'] = '2026-05-01T10:00:00Z'
        $state.files.Remove($script:KeyFile)
        Initialize-RrDoubleTest -State $state
    }

    It 'issues a certificate and its key file when the MachineKeys folder ACL is sane' {
        Restart-RrService -Name 'SessionEnv' -Force
        $state = $global:RrDouble.State
        $store = @($state.certificates['Remote Desktop'])
        $store.Count | Should -Be 2
        $store[0]['thumbprint'] | Should -Match '^[0-9A-F]{40}$'
        $store[0]['subject'] | Should -Be 'CN=VM01'
        $store[0]['issuer'] | Should -Be 'CN=VM01'
        $store[0]['notBefore'] | Should -Be '2026-06-01T10:00:00Z'
        $store[0]['notAfter'] | Should -Be '2026-11-30T10:00:00Z'
        $store[0]['hasPrivateKey'] | Should -BeTrue
        @($store[0]['extensionOids']) | Should -Be @('2.5.29.37', '2.5.29.15')
        $state.files[$script:KeyFile]['sddl'] | Should -BeExactly 'O:SYG:SYD:(A;;FA;;;SY)(A;;FA;;;BA)(A;;FR;;;NS)'
        $certificate = @(Get-RrCertificate -StoreName 'remote desktop')[0]
        $certificate.NotAfter | Should -BeOfType ([datetime])
        $certificate.NotAfter.Kind | Should -Be ([System.DateTimeKind]::Utc)
        # Usable now: the next start issues nothing.
        Restart-RrService -Name 'SessionEnv' -Force
        @($state.certificates['Remote Desktop']).Count | Should -Be 2
    }

    It 'issues nothing when SYSTEM may not add a file to MachineKeys' {
        $global:RrDouble.State.files[$script:MachineKeys]['sddl'] = 'O:SYG:SYD:PAI(A;;FR;;;WD)(A;;FR;;;BA)'
        Restart-RrService -Name 'SessionEnv' -Force
        @($global:RrDouble.State.certificates['Remote Desktop']).Count | Should -Be 1
        $global:RrDouble.State.files.Contains($script:KeyFile) | Should -BeFalse
        $global:RrDouble.Writes[-1].detail | Should -BeLike '*no certificate issued*'
    }

    It 'lets regenerate-self-signed-cert replace an expired certificate end to end' {
        Assert-RrDoubleTestPayloadLogic
        $fix = Invoke-RrFix -RunId $script:RunId -Actions 'regenerate-self-signed-cert' -DryRun 'false' -RestoreSecurityLayer '' -RestoreUserAuthentication ''
        $action = $fix['actions'][0]
        $action['error'] | Should -BeNullOrEmpty
        $action['verified'] | Should -BeTrue
        $store = @($global:RrDouble.State.certificates['Remote Desktop'])
        $store.Count | Should -Be 1 -Because 'the expired certificate was exported and removed'
        $action['after']['thumb'] | Should -Be $store[0]['thumbprint']
        $global:RrDouble.State.files.Keys | Where-Object { $_ -like '*\rdp-A1B2C3D4E5F60718293A4B5C6D7E8F9012345678.cer' } | Should -Not -BeNullOrEmpty
        $global:RrDouble.State.files.Contains($script:KeyFile) | Should -BeTrue
    }
}

Describe 'Certificates and the rest of the machine' {
    BeforeEach { Initialize-RrDoubleTest }

    It 'returns certificates with the shapes the logic relies on' {
        $certificates = @(Get-RrCertificate -StoreName 'Remote Desktop')
        $certificates.Count | Should -Be 1
        , $certificates[0].ExtensionOids | Should -BeOfType ([string[]])
        $certificates[0].HasPrivateKey | Should -BeTrue
        @(Get-RrCertificate -StoreName 'NoSuchStore').Count | Should -Be 0
        { Remove-RrCertificate -StoreName 'Remote Desktop' -Thumbprint ('B' * 40) } | Should -Throw '*does not exist*'
        Remove-RrCertificate -StoreName 'Remote Desktop' -Thumbprint 'a1b2c3d4e5f60718293a4b5c6d7e8f9012345678'
        , $global:RrDouble.State.certificates['Remote Desktop'] | Should -BeOfType ([object[]])
        @($global:RrDouble.State.certificates['Remote Desktop']).Count | Should -Be 0
        $global:RrDouble.State.files.Contains($script:KeyFile) | Should -BeTrue -Because 'the key file stays'
    }

    It 'derives Win32_TSGeneralSetting as Windows shows it, and throws when WMI is unreadable' {
        $state = $global:RrDouble.State
        (Get-RrTsGeneralSetting -TerminalName 'RDP-Tcp').SSLCertificateSHA1HashType | Should -Be 1
        $state.registry[$script:RdpTcp]['SSLCertificateSHA1Hash'] = [ordered]@{ kind = 'Binary'; value = @(1) }
        (Get-RrTsGeneralSetting -TerminalName 'RDP-Tcp').SSLCertificateSHA1HashType | Should -Be 3
        $state.registry['HKLM\SOFTWARE\Policies\Microsoft\Windows NT\Terminal Services'] = [ordered]@{ CertTemplateName = [ordered]@{ kind = 'String'; value = 'RDP' } }
        (Get-RrTsGeneralSetting -TerminalName 'RDP-Tcp').SSLCertificateSHA1HashType | Should -Be 2
        Get-RrTsGeneralSetting -TerminalName 'Other' | Should -BeNullOrEmpty
        $state.wmi.readable = $false
        { Get-RrTsGeneralSetting -TerminalName 'RDP-Tcp' } | Should -Throw
    }

    It 'models OS, domain, features, clock and program data' {
        $state = $global:RrDouble.State
        (Get-RrOsInfo).BuildNumber | Should -BeExactly '20348'
        Get-RrDomainMembership | Should -BeFalse
        { Test-RrSecureChannel } | Should -Throw
        $state.domain.partOfDomain = $true
        Test-RrSecureChannel | Should -BeTrue
        $state.domain.secureChannel = 'unreachable'
        { Test-RrSecureChannel } | Should -Throw '*could not be contacted*'
        $state.features['RDS-Connection-Broker'] = $true
        Test-RrWindowsFeatureInstalled -Name 'rds-connection-broker' | Should -BeTrue
        $state.serverSku = $false
        Test-RrWindowsFeatureInstalled -Name 'RDS-Connection-Broker' | Should -BeFalse
        Get-RrMachineGuid | Should -BeExactly $script:Guid
        Get-RrProgramDataPath | Should -BeExactly 'C:\ProgramData'
        Start-RrSleep -Seconds 90
        $now = Get-RrNow
        $now.Kind | Should -Be ([System.DateTimeKind]::Utc)
        $now | Should -Be ([datetime]::new(2026, 6, 1, 10, 1, 30, [System.DateTimeKind]::Utc))
        $state.now | Should -BeExactly '2026-06-01T10:01:30Z'
        $global:RrDouble.WriteCount | Should -Be 0 -Because 'reads and the clock never count as writes'
        (Invoke-RrNativeCommand -FilePath 'netstat.exe' -ArgumentList @('-a', '-n', '-o')).Output | Should -BeLike '*0.0.0.0:3389*LISTENING*'
    }
}

Describe 'Reading files (the read-back of earlier fix runs)' {
    BeforeEach { Initialize-RrDoubleTest }

    It 'lists the names of the files directly in a directory, not deeper and not directories; nothing for a missing one' {
        $run = 'C:\ProgramData\RdpRemediation\' + $script:RunId
        New-RrDirectory -Path $run
        Write-RrTextFile -Path ($run + '\manifest.json') -Text '{}'
        Write-RrTextFile -Path ($run + '\rdp-tcp.reg') -Text 'x'
        New-RrDirectory -Path ($run + '\sub')
        Write-RrTextFile -Path ($run + '\sub\deeper.json') -Text 'y'
        @(Get-RrChildFileNames -Path $run | Sort-Object) | Should -Be @('manifest.json', 'rdp-tcp.reg')
        @(Get-RrChildFileNames -Path ($run.ToUpperInvariant() + '\')) | Should -HaveCount 2 -Because 'paths are case-insensitive and a trailing backslash is the same directory'
        @(Get-RrChildFileNames -Path 'C:\ProgramData\RdpRemediation\no-such-run') | Should -HaveCount 0
        @(Get-RrChildFileNames -Path ($run + '\manifest.json')) | Should -HaveCount 0 -Because 'a file is not a directory'
        @(Get-RrChildFileNames -Path $script:MachineKeys) | Should -Be @(('f686aace6942fb7f7ceb231212eef4a4_' + $script:Guid))
    }

    It 'reads a file''s text, $null for a missing path or a directory, empty text for a file modelled by name only' {
        $run = 'C:\ProgramData\RdpRemediation\' + $script:RunId
        New-RrDirectory -Path $run
        Write-RrTextFile -Path ($run + '\manifest.json') -Text "{`n    ""a"":  1`n}"
        Get-RrTextFile -Path ($run + '\MANIFEST.json') | Should -BeExactly "{`n    ""a"":  1`n}"
        Get-RrTextFile -Path ($run + '\manifest-2.json') | Should -BeNullOrEmpty
        $null -eq (Get-RrTextFile -Path $run) | Should -BeTrue
        Get-RrTextFile -Path $script:KeyFile | Should -BeExactly ''
    }

    It 'needs FILE_LIST_DIRECTORY and FILE_READ_DATA, and counts no write' {
        $state = $global:RrDouble.State
        $state.files['C:\Locked'] = [ordered]@{ type = 'directory'; sddl = 'O:BUG:BUD:P(A;;FA;;;BU)' }
        $state.files['C:\Locked\secret.json'] = [ordered]@{ type = 'file'; sddl = 'O:BUG:BUD:P(A;;FA;;;BU)'; content = '{}' }
        { Get-RrChildFileNames -Path 'C:\Locked' } | Should -Throw '*denied*'
        { Get-RrTextFile -Path 'C:\Locked\secret.json' } | Should -Throw '*denied*'
        $global:RrDouble.WriteCount | Should -Be 0
    }
}

Describe 'Write log and injected faults' {
    It 'logs every write in order and counts them' {
        Initialize-RrDoubleTest
        New-RrDirectory -Path 'C:\Backup'
        Write-RrTextFile -Path 'C:\Backup\note.txt' -Text 'hello'
        Set-RrRegistryValue -Path $script:RdpTcp -Name 'UserAuthentication' -Value 0
        Restart-RrService -Name 'TermService' -Force
        Start-RrService -Name 'UmRdpService'
        $null = Get-RrServiceStatus -Name 'TermService'
        $global:RrDouble.WriteCount | Should -Be 5
        @($global:RrDouble.Writes.op) | Should -Be @('New-RrDirectory', 'Write-RrTextFile', 'Set-RrRegistryValue', 'Restart-RrService', 'Start-RrService')
        @($global:RrDouble.Writes.target) | Should -Be @('C:\Backup', 'C:\Backup\note.txt', $script:RdpTcp, 'TermService', 'UmRdpService')
        $global:RrDouble.Writes[2].detail | Should -Be 'UserAuthentication = dword:00000000'
    }

    It 'throws at the Nth write without changing anything' {
        $state = New-RrDoubleTestState
        $state.faults.throwAtWrite = 2
        Initialize-RrDoubleTest -State $state
        Set-RrRegistryValue -Path $script:RdpTcp -Name 'SecurityLayer' -Value 0
        $before = Get-RrDoubleTestJson
        { Set-RrSddl -Path $script:MachineKeys -Sddl 'D:PAI(A;;FA;;;SY)' } | Should -Throw "Injected fault at write 2 (Set-RrSddl $script:MachineKeys)"
        Get-RrDoubleTestJson | Should -BeExactly $before
        $global:RrDouble.WriteCount | Should -Be 2
        @($global:RrDouble.Writes).Count | Should -Be 1 -Because 'the faulted write made no change'
        Set-RrRegistryValue -Path $script:RdpTcp -Name 'SecurityLayer' -Value 1
        $global:RrDouble.WriteCount | Should -Be 3
    }
}

Describe 'The state handed back still matches the schema' {
    It 'passes WindowsStateSchema after a fix run that changes ACLs, services and certificates' {
        $node = Get-Command -Name 'node' -CommandType Application -ErrorAction SilentlyContinue | Select-Object -First 1
        if ($null -eq $node) { Set-ItResult -Skipped -Because 'node is not on PATH'; return }
        $state = New-RrDoubleTestState
        $state.files[$script:MachineKeys]['sddl'] = 'O:SYG:SYD:AI(A;OICI;FA;;;SY)(A;OI;FR;;;NS)(A;;0x12019f;;;WD)(A;;FA;;;BA)'
        $state.files[$script:KeyFile]['sddl'] = 'O:SYG:SYD:AI(A;ID;FA;;;SY)(A;ID;FR;;;NS)'
        $state.certificates['Remote Desktop'][0]['hasPrivateKey'] = $false
        $state.registry[$script:RdpTcp]['SSLCertificateSHA1Hash'] = [ordered]@{ kind = 'Binary'; value = @(1, 2, 3) }
        Initialize-RrDoubleTest -State $state
        Assert-RrDoubleTestPayloadLogic
        $fix = Invoke-RrFix -RunId $script:RunId -Actions 'enable-tls12-server,repair-key-acl,remove-stale-cert-binding,regenerate-self-signed-cert,restart-rdp-services' -DryRun 'false' -RestoreSecurityLayer '' -RestoreUserAuthentication ''
        $fix['ok'] | Should -BeTrue
        $file = Join-Path ([System.IO.Path]::GetTempPath()) ("rr-double-state-{0}.json" -f [guid]::NewGuid())
        try {
            Set-Content -LiteralPath $file -Value (Get-RrDoubleTestJson) -Encoding utf8NoBOM
            $check = "const m = await import(process.argv[1]); const fs = await import('node:fs'); const r = m.WindowsStateSchema.safeParse(JSON.parse(fs.readFileSync(process.argv[2], 'utf8'))); console.log(r.success ? 'valid' : JSON.stringify(r.error.issues));"
            $output = & $node.Source --experimental-strip-types --no-warnings --input-type=module -e $check (Join-Path $script:Root 'emulator/windows-state.ts') $file 2>&1
            ($output -join "`n") | Should -BeExactly 'valid'
        }
        finally { Remove-Item -LiteralPath $file -ErrorAction SilentlyContinue }
    }
}
