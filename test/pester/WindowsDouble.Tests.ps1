# Pester 5 tests of the Windows double (emulator/double/WindowsDouble.ps1): that it offers
# exactly the access layer's functions, and that it behaves as Windows does where the
# payloads depend on it (ACL inheritance, access checks, icacls, services, SessionEnv and
# TermService at start, the firewall, the System log, the loopback handshake's stand-in, the
# write log and injected faults).
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
            primaryIPv4 = '10.0.0.4'
            # The built-in Remote Desktop rules (builtInRdpFirewallRules() in emulator/windows.ts).
            firewall = [ordered]@{
                readable = $true
                profiles = [ordered]@{ Domain = $true; Private = $true; Public = $true }
                networkCategories = @('Public')
                rules = @(
                    [ordered]@{ name = 'RemoteDesktop-UserMode-In-TCP'; displayName = 'Remote Desktop - User Mode (TCP-In)'; group = '@FirewallAPI.dll,-28752'; enabled = $true; direction = 'Inbound'; action = 'Allow'; protocol = 'TCP'; localPorts = @('3389'); profiles = @('Domain', 'Private', 'Public'); service = 'termservice'; policyStore = 'Local' }
                    [ordered]@{ name = 'RemoteDesktop-UserMode-In-UDP'; displayName = 'Remote Desktop - User Mode (UDP-In)'; group = '@FirewallAPI.dll,-28752'; enabled = $true; direction = 'Inbound'; action = 'Allow'; protocol = 'UDP'; localPorts = @('3389'); profiles = @('Domain', 'Private', 'Public'); service = 'termservice'; policyStore = 'Local' }
                    [ordered]@{ name = 'RemoteDesktop-Shadow-In-TCP'; displayName = 'Remote Desktop - Shadow (TCP-In)'; group = '@FirewallAPI.dll,-28752'; enabled = $false; direction = 'Inbound'; action = 'Allow'; protocol = 'TCP'; localPorts = @('Any'); profiles = @('Domain', 'Private', 'Public'); service = $null; policyStore = 'Local' }
                )
            }
            events = @()
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

    function Get-RrDoubleTestCalledName {
        param([string]$Path)
        # The command names a script calls.
        $tokens = $null; $errors = $null
        $ast = [System.Management.Automation.Language.Parser]::ParseFile($Path, [ref]$tokens, [ref]$errors)
        return @($ast.FindAll({ param($node) $node -is [System.Management.Automation.Language.CommandAst] }, $true) | ForEach-Object { $_.GetCommandName() } | Where-Object { $_ } | Sort-Object -Unique)
    }

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
    It 'defines the functions of Access.Read.ps1, Access.Write.ps1 and Access.Handshake.ps1 with the same parameters, plus *-RrDouble* helpers only' {
        $access = Get-RrDoubleTestFunction -Path (Join-Path $script:Root 'scripts/lib/Access.Read.ps1')
        $write = Get-RrDoubleTestFunction -Path (Join-Path $script:Root 'scripts/lib/Access.Write.ps1')
        foreach ($name in $write.Keys) { $access[$name] = $write[$name] }
        # Of the handshake file, what the rest of the payload can call: the functions the file does
        # not call itself. The others are its private helpers; they stay in the payload, unused.
        $handshakePath = Join-Path $script:Root 'scripts/lib/Access.Handshake.ps1'
        $handshake = Get-RrDoubleTestFunction -Path $handshakePath
        $internal = Get-RrDoubleTestCalledName -Path $handshakePath
        $entries = @($handshake.Keys | Where-Object { $internal -notcontains $_ })
        $entries | Should -Contain 'Test-RrRdpHandshake'
        foreach ($name in $entries) { $access[$name] = $handshake[$name] }
        $logic = @('Facts.ps1', 'Actions.ps1', 'Access.Read.ps1', 'Access.Write.ps1') | ForEach-Object { Get-RrDoubleTestCalledName -Path (Join-Path $script:Root "scripts/lib/$_") }
        foreach ($helper in @($handshake.Keys | Where-Object { $entries -notcontains $_ })) {
            $logic | Should -Not -Contain $helper -Because "$helper is a helper of Access.Handshake.ps1 that the double does not replace"
        }
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

Describe 'The guest firewall, the System log and the primary address' {
    BeforeEach {
        $state = New-RrDoubleTestState
        $at = { param([int]$Minutes) ([datetime]'2026-06-01T10:00:00Z').ToUniversalTime().AddMinutes(-$Minutes).ToString("yyyy-MM-dd'T'HH:mm:ss'Z'") }
        $rcm = 'Microsoft-Windows-TerminalServices-RemoteConnectionManager'
        # Oldest first, as the state keeps the log.
        $state.events = @(
            [ordered]@{ provider = 'Schannel'; id = 36870; timeCreated = (& $at 600); message = 'old' }
            [ordered]@{ provider = $rcm; id = 1057; timeCreated = (& $at 50); message = 'keyset' }
            [ordered]@{ provider = 'Schannel'; id = 36870; timeCreated = (& $at 40); message = 'first' }
            [ordered]@{ provider = 'Schannel'; id = 36871; timeCreated = (& $at 30); message = 'credential' }
            [ordered]@{ provider = 'Schannel'; id = 36870; timeCreated = (& $at 20); message = 'second' }
            [ordered]@{ provider = 'Schannel'; id = 36870; timeCreated = (& $at 20); message = 'second, logged later' }
        )
        Initialize-RrDoubleTest -State $state
    }

    It 'reads profiles, network categories and rules in the access layer''s shapes' {
        $profiles = @(Get-RrFirewallProfiles)
        @($profiles.Name) | Should -Be @('Domain', 'Private', 'Public')
        $profiles[2].Enabled | Should -BeOfType ([bool])
        $global:RrDouble.State.firewall.profiles.Private = $false
        @(Get-RrFirewallProfiles | Where-Object { -not $_.Enabled }).Name | Should -Be 'Private'
        @(Get-RrNetworkCategories) | Should -Be @('Public')
        $global:RrDouble.State.firewall.networkCategories = @()
        @(Get-RrNetworkCategories) | Should -HaveCount 0
        $rules = @(Get-RrFirewallRules -Direction 'Inbound')
        @($rules.Name) | Should -Be @('RemoteDesktop-UserMode-In-TCP', 'RemoteDesktop-UserMode-In-UDP', 'RemoteDesktop-Shadow-In-TCP')
        , $rules[0].LocalPorts | Should -BeOfType ([string[]])
        , $rules[0].Profiles | Should -BeOfType ([string[]])
        $rules[0].Enabled | Should -BeTrue
        $rules[0].Group | Should -BeExactly '@FirewallAPI.dll,-28752'
        $rules[0].Service | Should -BeExactly 'termservice'
        $rules[2].Service | Should -BeNullOrEmpty
        $rules[2].LocalPorts | Should -Be @('Any')
        $rules[0].PolicyStore | Should -Be 'Local'
        @(Get-RrFirewallRules -Direction 'Outbound') | Should -HaveCount 0
        Get-RrPrimaryIPv4Address | Should -BeExactly '10.0.0.4'
        $global:RrDouble.State.primaryIPv4 = $null
        Get-RrPrimaryIPv4Address | Should -BeNullOrEmpty
        $global:RrDouble.WriteCount | Should -Be 0
    }

    It 'fails every firewall cmdlet while the firewall cannot be read, but not Get-NetConnectionProfile' {
        $global:RrDouble.State.firewall.readable = $false
        { Get-RrFirewallProfiles } | Should -Throw '*Windows Defender Firewall service*'
        { Get-RrFirewallRules -Direction 'Inbound' } | Should -Throw '*Windows Defender Firewall service*'
        @(Get-RrNetworkCategories) | Should -Be @('Public')
        { Enable-RrFirewallRule -Name 'RemoteDesktop-UserMode-In-TCP' } | Should -Throw '*Windows Defender Firewall service*'
    }

    It 'returns the System log''s events of a provider and ids since a time, newest first, at most MaxEvents' {
        $since = ([datetime]'2026-06-01T08:00:00Z').ToUniversalTime()
        $found = @(Get-RrSystemEvents -ProviderName 'schannel' -Ids @(36870) -StartTime $since -MaxEvents 10)
        @($found.Message) | Should -Be @('second, logged later', 'second', 'first') -Because 'the old one is before StartTime, and of two at the same time the later-logged comes first'
        $found[0].ProviderName | Should -BeExactly 'Schannel'
        $found[0].Id | Should -BeOfType ([int])
        $found[0].TimeCreated | Should -BeOfType ([datetime])
        $found[0].TimeCreated.Kind | Should -Be ([System.DateTimeKind]::Utc)
        $found[0].TimeCreated | Should -Be ([datetime]::new(2026, 6, 1, 9, 40, 0, [System.DateTimeKind]::Utc))
        @(Get-RrSystemEvents -ProviderName 'Schannel' -Ids @(36870, 36871) -StartTime $since -MaxEvents 2).Message | Should -Be @('second, logged later', 'second')
        @(Get-RrSystemEvents -ProviderName 'Microsoft-Windows-TerminalServices-RemoteConnectionManager' -Ids @(1057, 1058) -StartTime $since -MaxEvents 5).Id | Should -Be @(1057)
        @(Get-RrSystemEvents -ProviderName 'TermDD' -Ids @(56) -StartTime $since -MaxEvents 5) | Should -HaveCount 0 -Because 'no match is no output, not an error'
        # A local StartTime means the same instant.
        @(Get-RrSystemEvents -ProviderName 'Schannel' -Ids @(36870) -StartTime $since.ToLocalTime() -MaxEvents 10) | Should -HaveCount 3
        $global:RrDouble.State.events = $null
        { Get-RrSystemEvents -ProviderName 'Schannel' -Ids @(36870) -StartTime $since -MaxEvents 10 } | Should -Throw
        $global:RrDouble.WriteCount | Should -Be 0
    }
}

Describe 'Firewall writes' {
    BeforeEach {
        $state = New-RrDoubleTestState
        foreach ($rule in $state.firewall.rules) { if ($rule.name -like 'RemoteDesktop-UserMode-*') { $rule.enabled = $false } }
        # Group Policy's copy of a rule, in the policy store only.
        $state.firewall.rules += [ordered]@{ name = 'Gpo-Only-Rule'; displayName = 'From a GPO'; group = ''; enabled = $false; direction = 'Inbound'; action = 'Allow'; protocol = 'TCP'; localPorts = @('3389'); profiles = @('Domain'); service = $null; policyStore = 'GroupPolicy' }
        Initialize-RrDoubleTest -State $state
    }

    It 'enables and disables local rules, each call one logged write' {
        Enable-RrFirewallRule -Name 'remotedesktop-usermode-in-tcp'
        Enable-RrFirewallRule -Name 'RemoteDesktop-UserMode-In-TCP'
        Disable-RrFirewallRule -Name 'RemoteDesktop-Shadow-In-TCP'
        $rules = $global:RrDouble.State.firewall.rules
        ($rules | Where-Object { $_.name -eq 'RemoteDesktop-UserMode-In-TCP' }).enabled | Should -BeTrue
        ($rules | Where-Object { $_.name -eq 'RemoteDesktop-UserMode-In-UDP' }).enabled | Should -BeFalse
        @($global:RrDouble.Writes | ForEach-Object { '{0} {1} {2}' -f $_.op, $_.target, $_.detail }) | Should -Be @(
            'Enable-RrFirewallRule remotedesktop-usermode-in-tcp enabled'
            'Enable-RrFirewallRule RemoteDesktop-UserMode-In-TCP already enabled'
            'Disable-RrFirewallRule RemoteDesktop-Shadow-In-TCP already disabled'
        )
    }

    It 'refuses a rule only Group Policy defines, as the local store has none of that name' {
        { Enable-RrFirewallRule -Name 'Gpo-Only-Rule' } | Should -Throw "No MSFT_NetFirewallRule objects found with property 'Name' equal to 'Gpo-Only-Rule'.*"
        ($global:RrDouble.State.firewall.rules | Where-Object { $_.name -eq 'Gpo-Only-Rule' }).enabled | Should -BeFalse
        $global:RrDouble.Writes[-1].detail | Should -BeLike 'failed: No MSFT_NetFirewallRule*'
        { Disable-RrFirewallRule -Name 'No-Such-Rule' } | Should -Throw 'No MSFT_NetFirewallRule*'
    }

    It 'adds one inbound TCP rule for TermService on a port, and refuses a name the local store holds' {
        New-RrFirewallPortRule -Name 'RdpRemediator-RDP-TCP-3390' -DisplayName 'Remote Desktop (TCP 3390)' -Port 3390 -Profiles @('public', 'Domain')
        $rule = @($global:RrDouble.State.firewall.rules)[-1]
        $rule.name | Should -BeExactly 'RdpRemediator-RDP-TCP-3390'
        $rule.displayName | Should -BeExactly 'Remote Desktop (TCP 3390)'
        $rule.group | Should -BeExactly ''
        $rule.enabled | Should -BeTrue
        $rule.direction | Should -Be 'Inbound'
        $rule.action | Should -Be 'Allow'
        $rule.protocol | Should -Be 'TCP'
        @($rule.localPorts) | Should -Be @('3390')
        @($rule.profiles) | Should -Be @('Domain', 'Public')
        $rule.service | Should -BeExactly 'termservice'
        $rule.policyStore | Should -Be 'Local'
        (@(Get-RrFirewallRules -Direction 'Inbound') | Where-Object { $_.Name -eq 'RdpRemediator-RDP-TCP-3390' }).LocalPorts | Should -Be @('3390')
        # One port and a single profile stay JSON arrays on the way back.
        New-RrFirewallPortRule -Name 'One' -DisplayName 'One' -Port 3391 -Profiles @('Private')
        (Get-RrDoubleTestJson).Contains('"localPorts":["3391"],"profiles":["Private"]') | Should -BeTrue
        New-RrFirewallPortRule -Name 'All' -DisplayName 'All' -Port 3392 -Profiles @('Any')
        @(@($global:RrDouble.State.firewall.rules)[-1].profiles) | Should -Be @('Domain', 'Private', 'Public')
        $count = @($global:RrDouble.State.firewall.rules).Count
        { New-RrFirewallPortRule -Name 'rdpremediator-rdp-tcp-3390' -DisplayName 'again' -Port 3390 -Profiles @('Public') } | Should -Throw 'Cannot create a file when that file already exists.'
        { New-RrFirewallPortRule -Name 'Bad' -DisplayName 'bad' -Port 3390 -Profiles @('Work') } | Should -Throw '*Specify one of*'
        { New-RrFirewallPortRule -Name 'None' -DisplayName 'none' -Port 3390 -Profiles @() } | Should -Throw '*Specify one of*'
        @($global:RrDouble.State.firewall.rules).Count | Should -Be $count
        $global:RrDouble.WriteCount | Should -Be 6
    }

    It 'exports the policy with netsh into a file, honouring a canned result and failing as netsh does' {
        New-RrDirectory -Path 'C:\Backup'
        $export = Export-RrFirewallPolicy -Path 'C:\Backup\firewall.wfw'
        $export.ExitCode | Should -Be 0
        $export.Output | Should -Be 'Ok.'
        $global:RrDouble.State.files['C:\Backup\firewall.wfw']['content'] | Should -BeLike '*RemoteDesktop-UserMode-In-TCP*'
        $global:RrDouble.Writes[-1].op | Should -Be 'Export-RrFirewallPolicy'
        $global:RrDouble.Writes[-1].target | Should -Be 'C:\Backup\firewall.wfw'
        (Export-RrFirewallPolicy -Path 'C:\Nowhere\firewall.wfw').ExitCode | Should -Be 1
        $global:RrDouble.State.nativeResults['netsh.exe advfirewall'] = [ordered]@{ exitCode = 1; output = 'canned failure' }
        $canned = Export-RrFirewallPolicy -Path 'C:\Backup\other.wfw'
        $canned.ExitCode | Should -Be 1
        $canned.Output | Should -Be 'canned failure'
        $global:RrDouble.State.files.Contains('C:\Backup\other.wfw') | Should -BeFalse
        $global:RrDouble.State.nativeResults.Remove('netsh.exe advfirewall')
        $global:RrDouble.State.firewall.readable = $false
        (Export-RrFirewallPolicy -Path 'C:\Backup\third.wfw').Output | Should -BeLike '*Windows Defender Firewall service*'
    }

    It 'goes through the write counter, so an injected fault stops a firewall change' {
        $state = New-RrDoubleTestState
        $state.faults.throwAtWrite = 1
        Initialize-RrDoubleTest -State $state
        { Enable-RrFirewallRule -Name 'RemoteDesktop-UserMode-In-TCP' } | Should -Throw 'Injected fault at write 1 (Enable-RrFirewallRule RemoteDesktop-UserMode-In-TCP)'
        @($global:RrDouble.Writes) | Should -HaveCount 0
    }
}

Describe 'The loopback handshake without the emulator''s host' {
    BeforeEach { Initialize-RrDoubleTest }

    It 'answers a refused connect when the test gave no oracle' {
        $answer = Test-RrRdpHandshake -Address '127.0.0.1' -Port 3389 -TimeoutMilliseconds 2000
        $answer.Stage | Should -Be 'connect'
        $answer.Error | Should -Be 'refused'
        $answer.Message | Should -Be 'no handshake oracle in this test'
        $answer.Address | Should -Be '127.0.0.1'
        $answer.Port | Should -Be 3389
        $answer.NegotiateMs | Should -BeNullOrEmpty
        @($answer.psobject.Properties.Name) | Should -Be @('Address', 'Port', 'Stage', 'Error', 'Message', 'FailureCode', 'SelectedProtocol', 'TlsVersion', 'Cipher', 'CertificateThumbprint', 'CertificateNotAfter', 'ConnectMs', 'NegotiateMs', 'TlsMs')
    }

    It 'returns a canned answer (camelCase fields, as the model gives them) in the access layer''s shape' {
        $global:RrDouble['Handshake'] = @{
            stage = 'done'; error = $null; message = "first line`nsecond line"; selectedProtocol = 2; tlsVersion = 'Tls12'; cipher = 'TLS_AES'
            certificateThumbprint = 'a1b2c3d4e5f60718293a4b5c6d7e8f9012345678'; certificateNotAfter = '2026-10-01T10:00:00Z'; connectMs = 1; negotiateMs = 2; tlsMs = 6
        }
        $answer = Test-RrRdpHandshake -Address '10.0.0.4' -Port 3390 -TimeoutMilliseconds 2000
        $answer.Stage | Should -Be 'done'
        $answer.Error | Should -BeNullOrEmpty
        $answer.Address | Should -Be '10.0.0.4' -Because 'what was asked, when the answer does not say'
        $answer.Port | Should -Be 3390
        $answer.Message | Should -BeExactly 'first line'
        $answer.SelectedProtocol | Should -BeOfType ([int])
        $answer.FailureCode | Should -BeNullOrEmpty
        $answer.CertificateThumbprint | Should -BeExactly 'A1B2C3D4E5F60718293A4B5C6D7E8F9012345678'
        $answer.CertificateNotAfter | Should -BeOfType ([datetime])
        $answer.CertificateNotAfter.Kind | Should -Be ([System.DateTimeKind]::Utc)
        $answer.TlsMs | Should -Be 6
        $global:RrDouble.WriteCount | Should -Be 0
    }

    It 'asks a canned scriptblock with the address and port' {
        $global:RrDouble['Handshake'] = { param($Address, $Port) @{ Stage = 'negotiate'; Error = 'negotiation-failure'; FailureCode = 2; Message = "at $Address on $Port" } }
        $answer = Test-RrRdpHandshake -Address '127.0.0.1' -Port 3391 -TimeoutMilliseconds 100
        $answer.Error | Should -Be 'negotiation-failure'
        $answer.FailureCode | Should -Be 2
        $answer.Message | Should -Be 'at 127.0.0.1 on 3391'
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
