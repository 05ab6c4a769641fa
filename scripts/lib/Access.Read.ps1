# ---------------------------------------------------------------------------------------
# lib/Access.Read.ps1: the read half of the Windows access layer of the rdp-remediator
# payloads. Both payloads carry it, followed by lib/Access.Handshake.ps1 (the loopback RDP
# handshake, the rest of the read half); the probe carries nothing else of the access layer.
#
# Every call that reaches Windows (registry, certificate store, ACLs, icacls, reg.exe,
# services, WMI/CIM, network, event log, Windows Firewall, file system, clock) is made by one
# small function in lib/Access.Read.ps1, lib/Access.Handshake.ps1 or lib/Access.Write.ps1 and
# nowhere else. The functions here only
# read: none of them changes the VM or writes a file. Whatever changes state or writes a
# file is in lib/Access.Write.ps1, which only the fix payload carries.
# Tests put a double with the same function names in the place of these files and
# serve a machine state from JSON, so these functions decide nothing: plain parameters in,
# plain values or PSCustomObjects out, nothing else on the success stream.
#
# Shapes the logic relies on (a double must keep them):
#   Registry paths are 'HKLM\<subkey>' (the reg.exe form). Only HKLM is supported.
#   Get-RrRegistryValue     [int] for DWORD, [string] for SZ/EXPAND_SZ (not expanded),
#                           [byte[]] for BINARY (an int array also works), $null if absent
#   Get-RrCertificate       one object per certificate: Thumbprint [string],
#                           NotAfter [datetime] (UTC), HasPrivateKey [bool], Subject [string],
#                           Issuer [string], ExtensionOids [string[]]
#   Get-RrServiceStatus     'Running', 'Stopped', 'StartPending', ... or $null if no such service
#   Get-RrTsGeneralSetting  SSLCertificateSHA1HashType, PolicySourceSecurityLayer,
#                           PolicySourceUserAuthenticationRequired, PolicySourceMinEncryptionLevel
#                           (ints), or $null when there is no such listener; throws when WMI fails
#   Native commands         an object with ExitCode [int] and Output [string]; they never throw
#                           on a non-zero exit code, the caller judges
#   Get-RrNow               [datetime] in UTC
#   Get-RrChildFileNames    the names (not paths) of the files directly in a directory, one
#                           [string] each; nothing when the directory does not exist; throws
#                           when it cannot be listed
#   Get-RrTextFile          the whole text of a file as one [string] (read as UTF-8, which
#                           Write-RrTextFile writes), $null when there is no such file; throws
#                           when it cannot be read
#   Test-RrRdpHandshake     (lib/Access.Handshake.ps1) one object: Address, Port, Stage, Error,
#                           Message, FailureCode, SelectedProtocol, TlsVersion, Cipher,
#                           CertificateThumbprint, CertificateNotAfter, ConnectMs, NegotiateMs,
#                           TlsMs; never throws for a network outcome
#   Get-RrSystemEvents      the System log's events of one provider with the given ids since
#                           StartTime, newest first, at most MaxEvents, one object each:
#                           ProviderName [string], Id [int], TimeCreated [datetime] (UTC),
#                           Message [string] ('' when Windows has no text for it); nothing when
#                           none match; throws when the log cannot be read
#   Get-RrFirewallProfiles  three objects, Name 'Domain' | 'Private' | 'Public' and Enabled
#                           [bool], as the active store has them; throws when the firewall
#                           cannot be read
#   Get-RrNetworkCategories one [string] per connected network: 'DomainAuthenticated',
#                           'Private' or 'Public'; nothing when none is connected or known
#   Get-RrFirewallRules     every rule of one direction in the active store, one object each:
#                           Name, DisplayName, Group [string] ('' when none), Enabled [bool],
#                           Action 'Allow' | 'Block', Protocol 'TCP' | 'UDP' | 'Any' (another
#                           protocol as Windows names it), LocalPorts [string[]] ('Any', '3389',
#                           '5000-5010', 'RPC', ...), Profiles [string[]] (of Domain, Private,
#                           Public; 'Any' is all three), Service [string] or $null (no service
#                           filter), PolicyStore 'Local' | 'GroupPolicy'; throws when the
#                           firewall cannot be read
#   Get-RrPrimaryIPv4Address the primary NIC's IPv4 address as [string], or $null
# ---------------------------------------------------------------------------------------

function Get-RrHklmBaseKey {
    # The 64-bit view, so that a 32-bit host would still read the keys Windows itself uses.
    return [Microsoft.Win32.RegistryKey]::OpenBaseKey([Microsoft.Win32.RegistryHive]::LocalMachine, [Microsoft.Win32.RegistryView]::Registry64)
}

function Get-RrRegistrySubKeyName {
    param([string]$Path)
    if ($Path -match '^HKLM\\(.+)$') {
        return $Matches[1]
    }
    throw "Registry path must start with HKLM\: '$Path'"
}

function Invoke-RrNativeCommand {
    param(
        [string]$FilePath,
        [string[]]$ArgumentList
    )
    # Resolved first, while a missing program is still a terminating error.
    $command = Get-Command -Name $FilePath -CommandType Application -ErrorAction Stop | Select-Object -First 1
    # Windows PowerShell 5.1 turns a native program's stderr line into a terminating error
    # under 'Stop' once it is redirected; the exit code is the verdict here, not stderr.
    $ErrorActionPreference = 'Continue'
    $global:LASTEXITCODE = 0
    $output = & $command @ArgumentList 2>&1
    $exitCode = $global:LASTEXITCODE
    $ErrorActionPreference = 'Stop'
    $lines = New-Object System.Collections.Generic.List[string]
    foreach ($item in @($output)) {
        if ($null -ne $item) {
            $lines.Add(([string]$item).TrimEnd())
        }
    }
    $text = [string]::Join("`n", $lines.ToArray()).Trim()
    Write-Verbose ("{0} exited {1}: {2}" -f $FilePath, $exitCode, $text)
    return [pscustomobject]@{ ExitCode = [int]$exitCode; Output = $text }
}

# --- Registry ------------------------------------------------------------------------------

function Get-RrRegistryValue {
    param(
        [string]$Path,
        [string]$Name
    )
    $subKeyName = Get-RrRegistrySubKeyName -Path $Path
    $base = Get-RrHklmBaseKey
    try {
        $key = $base.OpenSubKey($subKeyName, $false)
        if ($null -eq $key) {
            return $null
        }
        try {
            $value = $key.GetValue($Name, $null, [Microsoft.Win32.RegistryValueOptions]::DoNotExpandEnvironmentNames)
        }
        finally {
            $key.Close()
        }
    }
    finally {
        $base.Close()
    }
    if ($value -is [array]) {
        # The comma keeps a REG_BINARY value one byte[] instead of unrolling it into the pipeline.
        return , $value
    }
    return $value
}

function Test-RrRegistryKey {
    param([string]$Path)
    $subKeyName = Get-RrRegistrySubKeyName -Path $Path
    $base = Get-RrHklmBaseKey
    try {
        $key = $base.OpenSubKey($subKeyName, $false)
        if ($null -eq $key) {
            return $false
        }
        $key.Close()
        return $true
    }
    finally {
        $base.Close()
    }
}

# --- Certificates --------------------------------------------------------------------------

function Get-RrCertificate {
    param([string]$StoreName)
    $storePath = 'Cert:\LocalMachine\' + $StoreName
    if (-not (Test-Path -LiteralPath $storePath)) {
        return
    }
    foreach ($certificate in @(Get-ChildItem -LiteralPath $storePath)) {
        $oids = New-Object System.Collections.Generic.List[string]
        foreach ($extension in @($certificate.Extensions)) {
            if ($null -ne $extension.Oid) {
                $oids.Add([string]$extension.Oid.Value)
            }
        }
        [pscustomobject]@{
            Thumbprint    = [string]$certificate.Thumbprint
            NotAfter      = $certificate.NotAfter.ToUniversalTime()
            HasPrivateKey = [bool]$certificate.HasPrivateKey
            Subject       = [string]$certificate.Subject
            Issuer        = [string]$certificate.Issuer
            ExtensionOids = $oids.ToArray()
        }
    }
}

# --- ACLs ----------------------------------------------------------------------------------

function Get-RrSddl {
    param([string]$Path)
    return [string](Get-Acl -LiteralPath $Path).Sddl
}

# --- Services ------------------------------------------------------------------------------

function Get-RrServiceStatus {
    param([string]$Name)
    $service = Get-Service -Name $Name -ErrorAction SilentlyContinue
    if ($null -eq $service) {
        return $null
    }
    return [string]$service.Status
}

# --- WMI / CIM -----------------------------------------------------------------------------

function Get-RrTsGeneralSetting {
    param([string]$TerminalName)
    $setting = @(Get-CimInstance -Namespace 'root\cimv2\TerminalServices' -ClassName 'Win32_TSGeneralSetting' |
            Where-Object { $_.TerminalName -eq $TerminalName }) | Select-Object -First 1
    if ($null -eq $setting) {
        return $null
    }
    return [pscustomobject]@{
        SSLCertificateSHA1HashType             = $setting.SSLCertificateSHA1HashType
        PolicySourceSecurityLayer              = $setting.PolicySourceSecurityLayer
        PolicySourceUserAuthenticationRequired = $setting.PolicySourceUserAuthenticationRequired
        PolicySourceMinEncryptionLevel         = $setting.PolicySourceMinEncryptionLevel
    }
}

function Get-RrOsInfo {
    $os = Get-CimInstance -ClassName 'Win32_OperatingSystem'
    return [pscustomobject]@{
        Caption     = [string]$os.Caption
        BuildNumber = [string]$os.BuildNumber
    }
}

function Get-RrDomainMembership {
    $computer = Get-CimInstance -ClassName 'Win32_ComputerSystem'
    return [bool]$computer.PartOfDomain
}

function Test-RrSecureChannel {
    return [bool](Test-ComputerSecureChannel)
}

function Test-RrWindowsFeatureInstalled {
    param([string]$Name)
    # Get-WindowsFeature exists on Server SKUs only; a client cannot hold a server role.
    if ($null -eq (Get-Command -Name 'Get-WindowsFeature' -ErrorAction SilentlyContinue)) {
        return $false
    }
    $feature = Get-WindowsFeature -Name $Name | Select-Object -First 1
    if ($null -eq $feature) {
        return $false
    }
    return [bool]$feature.Installed
}

# --- Network -------------------------------------------------------------------------------

function Test-RrTcpListener {
    param([int]$Port)
    if ($null -ne (Get-Command -Name 'Get-NetTCPConnection' -ErrorAction SilentlyContinue)) {
        try {
            $listeners = @(Get-NetTCPConnection -State Listen -ErrorAction SilentlyContinue | Where-Object { [int]$_.LocalPort -eq $Port })
            return ($listeners.Count -gt 0)
        }
        catch {
            Write-Verbose ('Get-NetTCPConnection failed, falling back to netstat: ' + $_.Exception.Message)
        }
    }
    # netstat's state column is localized; a listening socket is the one whose foreign
    # address is the wildcard, which reads the same in every language.
    $netstat = Invoke-RrNativeCommand -FilePath 'netstat.exe' -ArgumentList @('-a', '-n', '-o')
    foreach ($line in ($netstat.Output -split "`n")) {
        $fields = @($line.Trim() -split '\s+')
        if ($fields.Count -ge 4 -and $fields[0] -eq 'TCP' -and $fields[1] -match (':' + $Port + '$') -and $fields[2] -match '^(0\.0\.0\.0|\[::\]):0$') {
            return $true
        }
    }
    return $false
}

function Get-RrPrimaryIPv4Address {
    # The adapter that holds the default route is the VM's primary NIC; with several, the
    # lowest metric wins, as it does for Windows' own routing.
    $adapters = @(Get-CimInstance -ClassName 'Win32_NetworkAdapterConfiguration' -Filter 'IPEnabled = TRUE')
    $routed = @($adapters | Where-Object { $null -ne $_.DefaultIPGateway -and @($_.DefaultIPGateway | Where-Object { -not [string]::IsNullOrEmpty([string]$_) }).Count -gt 0 })
    if ($routed.Count -gt 0) {
        $adapters = $routed
    }
    foreach ($adapter in @($adapters | Sort-Object -Property IPConnectionMetric, InterfaceIndex)) {
        foreach ($address in @($adapter.IPAddress)) {
            if ([string]$address -match '^[0-9]{1,3}(\.[0-9]{1,3}){3}$') {
                return [string]$address
            }
        }
    }
    return $null
}

# --- Event log -----------------------------------------------------------------------------

function Get-RrSystemEvents {
    param(
        [string]$ProviderName,
        [int[]]$Ids,
        [datetime]$StartTime,
        [int]$MaxEvents
    )
    # Get-WinEvent turns StartTime into text and parses it back as local time, so a UTC
    # time is handed over as local; otherwise the window would shift by the VM's UTC offset.
    $filter = @{ LogName = 'System'; ProviderName = $ProviderName; Id = $Ids; StartTime = $StartTime.ToLocalTime() }
    # Non-terminating errors are collected, not raised: "no events matched" is one, and so is
    # a single event whose text cannot be formatted. An unreadable log still throws.
    $problems = $null
    $records = @(Get-WinEvent -FilterHashtable $filter -MaxEvents $MaxEvents -ErrorAction SilentlyContinue -ErrorVariable problems)
    if ($records.Count -eq 0) {
        # A provider that is not registered on this VM wrote nothing either.
        $nothingFound = @('NoMatchingEventsFound', 'NoMatchingProvidersFound', 'LogsAndProvidersDontOverlap')
        foreach ($problem in @($problems)) {
            if ($null -ne $problem -and $nothingFound -notcontains ([string]$problem.FullyQualifiedErrorId).Split(',')[0]) {
                throw $problem.Exception
            }
        }
        return
    }
    foreach ($record in $records) {
        if ($null -eq $record.TimeCreated) {
            continue
        }
        $message = ''
        if ($null -ne $record.Message) {
            $message = [string]$record.Message
        }
        [pscustomobject]@{
            ProviderName = [string]$record.ProviderName
            Id           = [int]$record.Id
            TimeCreated  = $record.TimeCreated.ToUniversalTime()
            Message      = $message
        }
    }
}

# --- Windows Firewall ----------------------------------------------------------------------
# The NetSecurity and NetConnection modules ship with Windows 8 / Server 2012 and later, but a
# damaged or trimmed image can lack them: the firewall functions then throw, and the logic
# reports the firewall as unreadable rather than guess.

function Get-RrFirewallProfiles {
    if ($null -eq (Get-Command -Name 'Get-NetFirewallProfile' -ErrorAction SilentlyContinue)) {
        throw 'The Windows Firewall cannot be read: Get-NetFirewallProfile (NetSecurity module) is not available.'
    }
    foreach ($firewallProfile in @(Get-NetFirewallProfile -PolicyStore ActiveStore)) {
        [pscustomobject]@{
            Name    = [string]$firewallProfile.Name
            # The active store resolves Group Policy's NotConfigured to True or False.
            Enabled = ([string]$firewallProfile.Enabled -eq 'True')
        }
    }
}

function Get-RrNetworkCategories {
    if ($null -eq (Get-Command -Name 'Get-NetConnectionProfile' -ErrorAction SilentlyContinue)) {
        return
    }
    # With no connected network the cmdlet reports "no objects found" as an error: nothing.
    foreach ($connection in @(Get-NetConnectionProfile -ErrorAction SilentlyContinue)) {
        [string]$connection.NetworkCategory
    }
}

function Get-RrFirewallRules {
    param([string]$Direction)
    $available = ($null -ne (Get-Command -Name 'Get-NetFirewallRule' -ErrorAction SilentlyContinue)) -and
    ($null -ne (Get-Command -Name 'Get-NetFirewallPortFilter' -ErrorAction SilentlyContinue)) -and
    ($null -ne (Get-Command -Name 'Get-NetFirewallServiceFilter' -ErrorAction SilentlyContinue))
    if (-not $available) {
        throw 'The Windows Firewall cannot be read: the NetSecurity firewall cmdlets are not available.'
    }
    try {
        $rules = @(Get-NetFirewallRule -PolicyStore ActiveStore -Direction $Direction)
    }
    catch {
        # A store without a rule of that direction is "no objects found", not a failure.
        if ([string]$_.CategoryInfo.Category -eq 'ObjectNotFound') {
            return
        }
        throw
    }
    # The filters in bulk, each once, matched to their rule by InstanceID: asking for each
    # rule's filters (-AssociatedNetFirewallRule) costs one CIM query per rule, minutes on a
    # server with a few hundred rules.
    $portFilters = @{}
    foreach ($filter in @(Get-NetFirewallPortFilter -All -PolicyStore ActiveStore)) {
        $portFilters[[string]$filter.InstanceID] = $filter
    }
    $serviceFilters = @{}
    foreach ($filter in @(Get-NetFirewallServiceFilter -All -PolicyStore ActiveStore)) {
        $serviceFilters[[string]$filter.InstanceID] = $filter
    }
    foreach ($rule in $rules) {
        $id = [string]$rule.InstanceID
        $protocol = 'Any'
        $localPorts = @('Any')
        if ($portFilters.ContainsKey($id)) {
            # Windows prints TCP and UDP by name, and may give a protocol by its number.
            $protocol = ([string]$portFilters[$id].Protocol).Trim()
            if ($protocol -eq '6') {
                $protocol = 'TCP'
            }
            elseif ($protocol -eq '17') {
                $protocol = 'UDP'
            }
            elseif ($protocol -eq '') {
                $protocol = 'Any'
            }
            $ports = New-Object System.Collections.Generic.List[string]
            foreach ($port in @($portFilters[$id].LocalPort)) {
                if ($null -ne $port) {
                    $ports.Add(([string]$port).Trim())
                }
            }
            if ($ports.Count -gt 0) {
                $localPorts = $ports.ToArray()
            }
        }
        $service = $null
        if ($serviceFilters.ContainsKey($id)) {
            $serviceName = [string]$serviceFilters[$id].Service
            if ($serviceName -ne '' -and $serviceName -ne 'Any') {
                $service = $serviceName
            }
        }
        $store = 'Local'
        if ([string]$rule.PolicyStoreSourceType -eq 'GroupPolicy') {
            $store = 'GroupPolicy'
        }
        $group = ''
        if ($null -ne $rule.Group) {
            $group = [string]$rule.Group
        }
        # The Profile flags print as 'Any' or as 'Domain, Private'.
        $profiles = New-Object System.Collections.Generic.List[string]
        foreach ($part in ([string]$rule.Profile).Split(',')) {
            $name = $part.Trim()
            if ($name -eq 'Any' -or $name -eq '') {
                $profiles.Clear()
                $profiles.AddRange([string[]]@('Domain', 'Private', 'Public'))
                break
            }
            if (@('Domain', 'Private', 'Public') -contains $name -and -not $profiles.Contains($name)) {
                $profiles.Add($name)
            }
        }
        [pscustomobject]@{
            Name        = [string]$rule.Name
            DisplayName = [string]$rule.DisplayName
            Group       = $group
            Enabled     = ([string]$rule.Enabled -eq 'True')
            Action      = [string]$rule.Action
            Protocol    = $protocol
            LocalPorts  = $localPorts
            Profiles    = $profiles.ToArray()
            Service     = $service
            PolicyStore = $store
        }
    }
}

# --- Machine identity and file system -----------------------------------------------------

function Get-RrMachineGuid {
    $value = Get-RrRegistryValue -Path 'HKLM\SOFTWARE\Microsoft\Cryptography' -Name 'MachineGuid'
    if ($null -eq $value) {
        return $null
    }
    return [string]$value
}

function Get-RrProgramDataPath {
    return [System.Environment]::GetFolderPath('CommonApplicationData')
}

function Test-RrPath {
    param([string]$Path)
    return [bool](Test-Path -LiteralPath $Path)
}

function Get-RrChildFileNames {
    param([string]$Path)
    # Files only, not subdirectories; the caller picks the names it knows.
    if (-not [System.IO.Directory]::Exists($Path)) {
        return
    }
    foreach ($file in @([System.IO.Directory]::GetFiles($Path))) {
        [string]([System.IO.Path]::GetFileName($file))
    }
}

function Get-RrTextFile {
    param([string]$Path)
    if (-not [System.IO.File]::Exists($Path)) {
        return $null
    }
    return [string]([System.IO.File]::ReadAllText($Path, [System.Text.Encoding]::UTF8))
}

# --- Time ----------------------------------------------------------------------------------

function Get-RrNow {
    return [System.DateTime]::UtcNow
}

function Start-RrSleep {
    param([int]$Seconds)
    Start-Sleep -Seconds $Seconds
}
