# ---------------------------------------------------------------------------------------
# test/pester/Load-Payload.ps1: loads the payload logic for a Pester test, over the Windows
# double instead of the access layer. Dot-source it (in BeforeAll):
#
#   . $PSScriptRoot/Load-Payload.ps1
#
# In the caller's scope it then has: the double (emulator/double/WindowsDouble.ps1), which
# defines every access-layer function, scripts/lib/Facts.ps1, the allow-list line
# `$script:RrActionIds = @(...)` built from ACTION_IDS in src/contract/actions.ts exactly as
# src/payloads/compose.ts builds it (so no node build is needed), and scripts/lib/Actions.ps1.
# The libraries' own access layer (Access.Read.ps1, Access.Write.ps1) is not loaded.
#
# Also defined here: New-RrTestWindowsState, a healthy machine state shaped as
# emulator/windows-state.ts's WindowsStateSchema (the same VM as healthyWindows() in
# emulator/windows.ts), and Set-RrTestState, which hands a state to the double.
#
# -FactsLibrary / -ActionsLibrary load other copies of the libraries, and so do the
# environment variables RR_PESTER_FACTS / RR_PESTER_ACTIONS: that is how a test is checked to
# fail on an older version (`git show HEAD:scripts/lib/Actions.ps1 > /tmp/old/Actions.ps1`).
# ---------------------------------------------------------------------------------------
param(
    [string]$FactsLibrary = $env:RR_PESTER_FACTS,
    [string]$ActionsLibrary = $env:RR_PESTER_ACTIONS
)

$RrRepositoryRoot = [System.IO.Path]::GetFullPath((Join-Path $PSScriptRoot '../..'))
if ([string]::IsNullOrEmpty($FactsLibrary)) {
    $FactsLibrary = Join-Path $RrRepositoryRoot 'scripts/lib/Facts.ps1'
}
if ([string]::IsNullOrEmpty($ActionsLibrary)) {
    $ActionsLibrary = Join-Path $RrRepositoryRoot 'scripts/lib/Actions.ps1'
}

function Get-RrTestActionIds {
    # ACTION_IDS as src/contract/actions.ts declares it: `export const ACTION_IDS = [ ... ] as const;`
    $source = Get-Content -LiteralPath (Join-Path $RrRepositoryRoot 'src/contract/actions.ts') -Raw
    $declaration = [regex]::Match($source, 'export\s+const\s+ACTION_IDS\s*=\s*\[(?<body>[^\]]*)\]\s*as\s+const')
    if (-not $declaration.Success) {
        throw 'ACTION_IDS not found in src/contract/actions.ts'
    }
    $ids = @([regex]::Matches($declaration.Groups['body'].Value, "'([^']*)'") | ForEach-Object { $_.Groups[1].Value })
    if ($ids.Count -eq 0) {
        throw 'ACTION_IDS in src/contract/actions.ts is empty'
    }
    foreach ($id in $ids) {
        # The check actionIdsLine() in src/payloads/compose.ts makes.
        if ($id -cnotmatch '^[a-z0-9]+(-[a-z0-9]+)*$') {
            throw "action id '$id' is not a lower-case word list"
        }
    }
    return $ids
}

function Get-RrTestActionIdsLine {
    # The same text as actionIdsLine() in src/payloads/compose.ts.
    return ('$script:RrActionIds = @(' + ((Get-RrTestActionIds | ForEach-Object { "'" + $_ + "'" }) -join ', ') + ')')
}

function New-RrTestWindowsState {
    param(
        [datetime]$Now = [datetime]::new(2026, 3, 1, 12, 0, 0, [System.DateTimeKind]::Utc),
        [string]$ComputerName = 'VM-PESTER',
        [string]$MachineGuid = '6f1c2a3b-4d5e-4f60-a718-293a4b5c6d7e'
    )
    # A Windows Server 2022 VM whose RDP works (healthyWindows() in emulator/windows.ts).
    $iso = { param([datetime]$Date) $Date.ToUniversalTime().ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", [System.Globalization.CultureInfo]::InvariantCulture) }
    $dword = { param([int64]$Value) [ordered]@{ kind = 'DWord'; value = $Value } }
    $service = { param([object[]]$DependsOn) [ordered]@{ status = 'Running'; dependsOn = [object[]]@($DependsOn | Where-Object { $null -ne $_ }); startPendingReads = 0; pendingReadsLeft = 0; startFailure = $null } }
    $programData = 'C:\ProgramData'
    $machineKeys = $programData + '\Microsoft\Crypto\RSA\MachineKeys'
    $rdpTcp = [ordered]@{ SecurityLayer = (& $dword 2); UserAuthentication = (& $dword 1); MinEncryptionLevel = (& $dword 2); PortNumber = (& $dword 3389) }
    $terminalServer = [ordered]@{ fDenyTSConnections = (& $dword 0) }
    $state = [ordered]@{
        v                 = 1
        now               = (& $iso $Now)
        computerName      = $ComputerName
        os                = [ordered]@{ caption = 'Microsoft Windows Server 2022 Datacenter'; buildNumber = '20348' }
        serverSku         = $true
        features          = [ordered]@{}
        domain            = [ordered]@{ partOfDomain = $false; secureChannel = $true }
        programData       = $programData
        registry          = [ordered]@{
            'HKLM\SYSTEM\CurrentControlSet\Control\Terminal Server'                     = $terminalServer
            'HKLM\SYSTEM\CurrentControlSet\Control\Terminal Server\WinStations'         = [ordered]@{ SelfSignedCertStore = [ordered]@{ kind = 'String'; value = 'Remote Desktop' } }
            'HKLM\SYSTEM\CurrentControlSet\Control\Terminal Server\WinStations\RDP-Tcp' = $rdpTcp
            'HKLM\SOFTWARE\Microsoft\Cryptography'                                      = [ordered]@{ MachineGuid = [ordered]@{ kind = 'String'; value = $MachineGuid } }
        }
        certificates      = [ordered]@{
            'Remote Desktop' = [object[]]@(
                [ordered]@{
                    thumbprint    = '8E4A1C0F5B2D7E9A3C6F1B0D2E4A6C8E0F1A2B3C'
                    subject       = 'CN=' + $ComputerName
                    issuer        = 'CN=' + $ComputerName
                    notBefore     = (& $iso $Now.AddDays(-32))
                    notAfter      = (& $iso $Now.AddDays(150))
                    hasPrivateKey = $true
                    extensionOids = [object[]]@('2.5.29.37', '2.5.29.15')
                })
            'My'             = [object[]]@()
        }
        files             = [ordered]@{
            $programData                                                        = [ordered]@{ type = 'directory'; sddl = 'O:SYG:SYD:P(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)(A;OICI;0x1200a9;;;BU)' }
            ($programData + '\Microsoft\Crypto\RSA')                            = [ordered]@{ type = 'directory'; sddl = 'O:SYG:SYD:AI(A;OICIID;FA;;;SY)(A;OICIID;FA;;;BA)(A;OICIID;0x1200a9;;;BU)' }
            $machineKeys                                                        = [ordered]@{ type = 'directory'; sddl = 'O:SYG:SYD:PAI(A;;0x12019f;;;WD)(A;;FA;;;BA)' }
            ($machineKeys + '\f686aace6942fb7f7ceb231212eef4a4_' + $MachineGuid) = [ordered]@{ type = 'file'; sddl = 'O:SYG:SYD:(A;;FA;;;SY)(A;;FA;;;BA)(A;;FR;;;NS)' }
        }
        services          = [ordered]@{ TermService = (& $service @()); SessionEnv = (& $service @()); UmRdpService = (& $service @('TermService')) }
        wmi               = [ordered]@{ readable = $true; policySourceSecurityLayer = 0; policySourceUserAuthenticationRequired = 0; policySourceMinEncryptionLevel = 0 }
        tcpListeners      = [object[]]@(3389)
        primaryIPv4       = '10.0.0.4'
        # The three built-in Remote Desktop rules (builtInRdpFirewallRules() in emulator/windows.ts).
        firewall          = [ordered]@{
            readable          = $true
            profiles          = [ordered]@{ Domain = $true; Private = $true; Public = $true }
            networkCategories = [object[]]@('Public')
            rules             = [object[]]@(
                [ordered]@{ name = 'RemoteDesktop-UserMode-In-TCP'; displayName = 'Remote Desktop - User Mode (TCP-In)'; group = '@FirewallAPI.dll,-28752'; enabled = $true; direction = 'Inbound'; action = 'Allow'; protocol = 'TCP'; localPorts = [object[]]@('3389'); profiles = [object[]]@('Domain', 'Private', 'Public'); service = 'termservice'; policyStore = 'Local' }
                [ordered]@{ name = 'RemoteDesktop-UserMode-In-UDP'; displayName = 'Remote Desktop - User Mode (UDP-In)'; group = '@FirewallAPI.dll,-28752'; enabled = $true; direction = 'Inbound'; action = 'Allow'; protocol = 'UDP'; localPorts = [object[]]@('3389'); profiles = [object[]]@('Domain', 'Private', 'Public'); service = 'termservice'; policyStore = 'Local' }
                [ordered]@{ name = 'RemoteDesktop-Shadow-In-TCP'; displayName = 'Remote Desktop - Shadow (TCP-In)'; group = '@FirewallAPI.dll,-28752'; enabled = $false; direction = 'Inbound'; action = 'Allow'; protocol = 'TCP'; localPorts = [object[]]@('Any'); profiles = [object[]]@('Domain', 'Private', 'Public'); service = $null; policyStore = 'Local' }
            )
        }
        events            = [object[]]@()
        # TermService as it came up at boot, on the configuration above.
        termServiceLoaded = [ordered]@{
            registry = [ordered]@{
                'HKLM\SYSTEM\CurrentControlSet\Control\Terminal Server\WinStations\RDP-Tcp' = [ordered]@{ SecurityLayer = (& $dword 2); UserAuthentication = (& $dword 1); MinEncryptionLevel = (& $dword 2); PortNumber = (& $dword 3389) }
                'HKLM\SYSTEM\CurrentControlSet\Control\Terminal Server'                     = [ordered]@{ fDenyTSConnections = (& $dword 0) }
            }
        }
        nativeResults     = [ordered]@{}
        faults            = [ordered]@{ throwAtWrite = $null; unreadableAcls = [object[]]@() }
    }
    return $state
}

function Set-RrTestState {
    param([System.Collections.IDictionary]$State)
    # The double's contract: the state, the write log and the write counter.
    $global:RrDouble = @{ State = $State; Writes = [System.Collections.Generic.List[object]]::new(); WriteCount = 0 }
}

# ==== Helpers for the tests ================================================================

$RrTestRunId = '0badc0de-1234-4abc-8def-0123456789ab'
$RrTestRdpTcpKey = 'HKLM\SYSTEM\CurrentControlSet\Control\Terminal Server\WinStations\RDP-Tcp'
$RrTestTls12ServerKey = 'HKLM\SYSTEM\CurrentControlSet\Control\SecurityProviders\SCHANNEL\Protocols\TLS 1.2\Server'
$RrTestMachineKeys = 'C:\ProgramData\Microsoft\Crypto\RSA\MachineKeys'

function Get-RrTestKeyFile {
    param([System.Collections.IDictionary]$State = $global:RrDouble['State'])
    return ($RrTestMachineKeys + '\f686aace6942fb7f7ceb231212eef4a4_' + [string]$State['registry']['HKLM\SOFTWARE\Microsoft\Cryptography']['MachineGuid']['value'])
}

function Set-RrTestDword {
    param(
        [System.Collections.IDictionary]$State,
        [string]$Key,
        [string]$Name,
        [int64]$Value
    )
    if (-not $State['registry'].Contains($Key)) {
        $State['registry'][$Key] = [ordered]@{}
    }
    $State['registry'][$Key][$Name] = [ordered]@{ kind = 'DWord'; value = $Value }
}

function New-RrTestCertificate {
    param(
        [string]$Thumbprint,
        [datetime]$NotAfter,
        [string]$ComputerName = 'VM-PESTER',
        [bool]$HasPrivateKey = $true
    )
    $iso = { param([datetime]$Date) $Date.ToUniversalTime().ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", [System.Globalization.CultureInfo]::InvariantCulture) }
    return [ordered]@{
        thumbprint    = $Thumbprint
        subject       = 'CN=' + $ComputerName
        issuer        = 'CN=' + $ComputerName
        notBefore     = (& $iso $NotAfter.AddDays(-182))
        notAfter      = (& $iso $NotAfter)
        hasPrivateKey = $HasPrivateKey
        extensionOids = [object[]]@('2.5.29.37', '2.5.29.15')
    }
}

function Get-RrTestFileContent {
    param([string]$Path)
    $entry = $global:RrDouble['State']['files'][$Path]
    if ($null -eq $entry) {
        return $null
    }
    return [string]$entry['content']
}

function Get-RrTestManifest {
    param(
        [string]$RunId = $RrTestRunId,
        [string]$Name = 'manifest.json'
    )
    $text = Get-RrTestFileContent -Path ('C:\ProgramData\RdpRemediation\' + $RunId + '\' + $Name)
    if ($null -eq $text) {
        return $null
    }
    return (ConvertFrom-Json -InputObject $text -AsHashtable)
}

function Invoke-RrTestFix {
    param(
        [string]$Actions,
        [string]$DryRun = 'false',
        [string]$RunId = $RrTestRunId,
        [string]$RestoreSecurityLayer = '',
        [string]$RestoreUserAuthentication = ''
    )
    # As fix.ps1 calls it ('' is how an absent restore parameter reads), then the line.
    $result = Invoke-RrFix -RunId $RunId -Actions $Actions -DryRun $DryRun -RestoreSecurityLayer $RestoreSecurityLayer -RestoreUserAuthentication $RestoreUserAuthentication
    $line = ConvertTo-RrResultLine -Result $result
    return [pscustomobject]@{ Line = $line; Bytes = [System.Text.Encoding]::UTF8.GetByteCount($line); Json = (ConvertFrom-Json -InputObject $line -AsHashtable) }
}

function ConvertTo-RrTestDecisionView {
    param([object]$Facts)
    # The facts as the TypeScript side decides on them: everything but the display-only text
    # (the SDDL strings, the OS caption, the handshake attempts' detail and cipher, the event
    # items, which are evidence for people), as JSON, for comparing a shortened line with a full read.
    $copy = ConvertFrom-Json -InputObject (ConvertTo-Json -InputObject $Facts -Depth 10 -Compress) -AsHashtable
    # A null fileSddl (an unreadable ACL) stays null: that is not display text.
    if ($null -ne $copy['keys']['fileSddl']) {
        $copy['keys']['fileSddl'] = '<display>'
    }
    $copy['keys']['folderSddl'] = '<display>'
    $copy['os']['caption'] = '<display>'
    if ($copy.Contains('handshake') -and $null -ne $copy['handshake']) {
        foreach ($attempt in $copy['handshake']['attempts']) { $attempt['detail'] = '<display>'; $attempt['cipher'] = '<display>' }
    }
    if ($copy.Contains('events') -and $null -ne $copy['events']) { $copy['events']['items'] = '<display>' }
    return (ConvertTo-Json -InputObject $copy -Depth 10 -Compress)
}

if ($null -eq (Get-Variable -Name 'RrDouble' -Scope Global -ErrorAction SilentlyContinue)) {
    Set-RrTestState -State (New-RrTestWindowsState)
}
. (Join-Path $RrRepositoryRoot 'emulator/double/WindowsDouble.ps1')
. $FactsLibrary
. ([scriptblock]::Create((Get-RrTestActionIdsLine)))
. $ActionsLibrary
