# ---------------------------------------------------------------------------------------
# lib/Facts.ps1: what the rdp-remediator payloads know and report. Both payloads carry it.
#
# Shared constants and helpers, SDDL evaluation, the facts, the read-back of earlier fix
# runs' manifests, the probe driver and the result line, as docs/payload-contract.md
# describes them. Windows is reached only through the functions of the read half of the
# access layer (lib/Access.Read.ps1, lib/Access.Handshake.ps1): nothing here changes the VM,
# so the probe payload, which is those two and this file, holds no code that could. The
# actions and the fix driver are in lib/Actions.ps1, which only the fix payload carries.
# Windows PowerShell 5.1 syntax, Set-StrictMode -Version 3.0.
# ---------------------------------------------------------------------------------------

$script:RrTerminalServerKey = 'HKLM\SYSTEM\CurrentControlSet\Control\Terminal Server'
$script:RrWinStationsKey = 'HKLM\SYSTEM\CurrentControlSet\Control\Terminal Server\WinStations'
$script:RrRdpTcpKey = 'HKLM\SYSTEM\CurrentControlSet\Control\Terminal Server\WinStations\RDP-Tcp'
$script:RrTls12ServerKey = 'HKLM\SYSTEM\CurrentControlSet\Control\SecurityProviders\SCHANNEL\Protocols\TLS 1.2\Server'
$script:RrTsPolicyKey = 'HKLM\SOFTWARE\Policies\Microsoft\Windows NT\Terminal Services'

$script:RrRdpStoreName = 'Remote Desktop'
$script:RrPersonalStoreName = 'My'
$script:RrListenerName = 'RDP-Tcp'
$script:RrBrokerFeatureName = 'RDS-Connection-Broker'
# Certificate Template Information (v2) and Certificate Template Name (v1) extensions.
$script:RrTemplateOids = @('1.3.6.1.4.1.311.21.7', '1.3.6.1.4.1.311.20.2')
# The RDP listener's key container (TSSecKeySet1) as a MachineKeys file name, before the MachineGuid.
$script:RrKeyFilePrefix = 'f686aace6942fb7f7ceb231212eef4a4_'

# The loopback handshake (lib/Access.Handshake.ps1). A healthy listener answers within
# milliseconds, and one that takes seconds to finish TLS is the failure a user sees: 5 s per
# stage tells a slow listener from a dead one without holding the probe long.
$script:RrHandshakeTimeoutMilliseconds = 5000
$script:RrLoopbackAddress = '127.0.0.1'
# Right after TermService (re)starts the listener takes a moment to accept: a refused or
# reset connection is tried twice more, 2 s apart, before it counts.
$script:RrHandshakeRetries = 2
$script:RrHandshakeRetrySeconds = 2

# System-log evidence (playbook section 4.1). 72 hours covers a weekend of failed logons and
# is still about this outage, not last month's. 100 events per provider are plenty to count
# and date; the probe reports at most 12 ids.
$script:RrEventHours = 72
$script:RrEventsPerProvider = 100
$script:RrEventItemsMax = 12
$script:RrEventTextMaxLength = 120
$script:RrEventSources = @(
    @{ Source = 'Schannel'; Provider = 'Schannel'; Ids = [int[]]@(36870, 36871, 36874, 36886, 36888) }
    @{ Source = 'RCM'; Provider = 'Microsoft-Windows-TerminalServices-RemoteConnectionManager'; Ids = [int[]]@(1050, 1051, 1055, 1057, 1058, 1059, 1065) }
    @{ Source = 'TermDD'; Provider = 'TermDD'; Ids = [int[]]@(56) }
)

# Windows Firewall. The built-in Remote Desktop group by its language-neutral name (the
# display name is localized), and the name prefix of the one rule the fix adds for a custom
# PortNumber (<prefix><port>).
$script:RrRdpFirewallGroup = '@FirewallAPI.dll,-28752'
$script:RrCustomRulePrefix = 'RdpRemediator-RDP-TCP-'
$script:RrFirewallPolicyKey = 'HKLM\SOFTWARE\Policies\Microsoft\WindowsFirewall'
$script:RrFirewallProfiles = @('Domain', 'Private', 'Public')
$script:RrRdpRulesMax = 6

# Run Command keeps the last 4,096 bytes of stdout, and the console ends the line with CRLF.
$script:RrResultLineMaxBytes = 4096 - 2
$script:RrMessageMaxLength = 400

# Access rights by value, so that '0x1f01ff' and 'FA' compare equal.
$script:RrFileAllAccess = [int64]0x1F01FF
$script:RrFileGenericRead = [int64]0x120089
$script:RrFileGenericWrite = [int64]0x120116
$script:RrFileGenericExecute = [int64]0x1200A0
$script:RrMachineKeysEveryoneMask = [int64]0x12019F
$script:RrSddlRightCodes = @{
    'FA' = [int64]0x1F01FF; 'FR' = [int64]0x120089; 'FW' = [int64]0x120116; 'FX' = [int64]0x1200A0
    'GA' = [int64]0x1F01FF; 'GR' = [int64]0x120089; 'GW' = [int64]0x120116; 'GX' = [int64]0x1200A0
    'RC' = [int64]0x20000; 'SD' = [int64]0x10000; 'WD' = [int64]0x40000; 'WO' = [int64]0x80000
    'CC' = [int64]0x1; 'DC' = [int64]0x2; 'LC' = [int64]0x4; 'SW' = [int64]0x8; 'RP' = [int64]0x10
    'WP' = [int64]0x20; 'DT' = [int64]0x40; 'LO' = [int64]0x80; 'CR' = [int64]0x100
}
$script:RrSidAbbreviations = @{
    'S-1-5-18' = 'SY'; 'S-1-5-20' = 'NS'; 'S-1-5-32-544' = 'BA'; 'S-1-1-0' = 'WD'
}

# ==== Small helpers ========================================================================

function Get-RrPropertyValue {
    param(
        [object]$InputObject,
        [string]$Name
    )
    # Strict mode forbids reading a property that is not there; doubles may omit some.
    if ($null -eq $InputObject) {
        return $null
    }
    if ($InputObject -is [System.Collections.IDictionary]) {
        if ($InputObject.Contains($Name)) {
            return $InputObject[$Name]
        }
        return $null
    }
    $property = $InputObject.PSObject.Properties[$Name]
    if ($null -eq $property) {
        return $null
    }
    return $property.Value
}

function ConvertTo-RrNullableInt {
    param([object]$Value)
    if ($null -eq $Value) {
        return $null
    }
    $number = [int64]0
    if ([int64]::TryParse([string]$Value, [System.Globalization.NumberStyles]::Integer, [System.Globalization.CultureInfo]::InvariantCulture, [ref]$number)) {
        return $number
    }
    return $null
}

function ConvertTo-RrUtc {
    param([datetime]$Date)
    if ($Date.Kind -eq [System.DateTimeKind]::Utc) {
        return $Date
    }
    return $Date.ToUniversalTime()
}

function Format-RrDate {
    param([datetime]$Date)
    return (ConvertTo-RrUtc -Date $Date).ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", [System.Globalization.CultureInfo]::InvariantCulture)
}

function ConvertTo-RrHex {
    param([object]$Value)
    if ($null -eq $Value) {
        return $null
    }
    if ($Value -is [string]) {
        return ($Value -replace '[^0-9A-Fa-f]', '').ToUpperInvariant()
    }
    $hex = New-Object System.Text.StringBuilder
    foreach ($byte in @($Value)) {
        [void]$hex.Append(([int]$byte).ToString('X2', [System.Globalization.CultureInfo]::InvariantCulture))
    }
    return $hex.ToString()
}

function Limit-RrText {
    param(
        [string]$Text,
        [int]$MaxLength
    )
    if ($null -eq $Text -or $Text.Length -le $MaxLength) {
        return $Text
    }
    return $Text.Substring(0, [Math]::Max(0, $MaxLength - 3)) + '...'
}

function Join-RrPath {
    param(
        [string]$Parent,
        [string]$Child
    )
    # Plain string work: Join-Path asks a provider, which a test double has no need of.
    return $Parent.TrimEnd('\') + '\' + $Child
}

# ==== SDDL evaluation (pure string functions) ==============================================

function ConvertTo-RrAccessMask {
    param([string]$Rights)
    if ($Rights -match '^0[xX][0-9A-Fa-f]+$') {
        $mask = [Convert]::ToInt64($Rights.Substring(2), 16)
    }
    elseif ($Rights -match '^[0-9]+$') {
        $mask = [int64]$Rights
    }
    else {
        $mask = [int64]0
        for ($index = 0; $index + 1 -lt $Rights.Length; $index += 2) {
            $code = $Rights.Substring($index, 2).ToUpperInvariant()
            if ($script:RrSddlRightCodes.ContainsKey($code)) {
                $mask = $mask -bor $script:RrSddlRightCodes[$code]
            }
        }
        return $mask
    }
    # Generic bits in a hex mask mean the file-specific rights they map to.
    $genericMap = @(
        @([int64]0x10000000, $script:RrFileAllAccess),
        @([int64]0x20000000, $script:RrFileGenericExecute),
        @([int64]0x40000000, $script:RrFileGenericWrite),
        @([int64]2147483648, $script:RrFileGenericRead)
    )
    foreach ($pair in $genericMap) {
        if (($mask -band $pair[0]) -ne 0) {
            $mask = ($mask -bxor $pair[0]) -bor $pair[1]
        }
    }
    return $mask
}

function ConvertTo-RrSidAbbreviation {
    param([string]$Sid)
    $upper = $Sid.Trim().ToUpperInvariant()
    if ($script:RrSidAbbreviations.ContainsKey($upper)) {
        return $script:RrSidAbbreviations[$upper]
    }
    return $upper
}

function Get-RrDacl {
    param([string]$Sddl)
    # The DACL of an SDDL string: whether there is one, its control flags, and its ACEs with
    # the SID as an abbreviation (SY, NS, BA, WD) and the rights as a number.
    $dacl = [pscustomobject]@{ Present = $false; Protected = $false; NullDacl = $false; Aces = @() }
    if ([string]::IsNullOrEmpty($Sddl)) {
        return $dacl
    }
    $match = [regex]::Match($Sddl, 'D:(?<flags>(?:P|AI|AR|NO_ACCESS_CONTROL)*)(?<aces>(?:\([^)]*\))*)')
    if (-not $match.Success) {
        return $dacl
    }
    $flags = $match.Groups['flags'].Value
    $dacl.Present = $true
    $dacl.NullDacl = $flags.Contains('NO_ACCESS_CONTROL')
    $dacl.Protected = ($flags.Replace('NO_ACCESS_CONTROL', '') -match 'P')
    $aces = New-Object System.Collections.Generic.List[object]
    foreach ($aceMatch in [regex]::Matches($match.Groups['aces'].Value, '\(([^)]*)\)')) {
        $fields = $aceMatch.Groups[1].Value.Split(';')
        if ($fields.Length -lt 6) {
            continue
        }
        $aceFlags = $fields[1].ToUpperInvariant()
        $aces.Add([pscustomobject]@{
                Type        = $fields[0].ToUpperInvariant()
                Flags       = $aceFlags
                InheritOnly = $aceFlags.Contains('IO')
                Mask        = ConvertTo-RrAccessMask -Rights $fields[2]
                Sid         = ConvertTo-RrSidAbbreviation -Sid $fields[5]
            })
    }
    $dacl.Aces = $aces.ToArray()
    return $dacl
}

function Test-RrDaclGrants {
    param(
        [object]$Dacl,
        [string]$Sid,
        [int64]$Required
    )
    # Allowed by the SID's own ACEs, and denied neither to it nor to Everyone.
    $allowed = [int64]0
    $denied = [int64]0
    foreach ($ace in $Dacl.Aces) {
        if ($ace.InheritOnly) {
            continue
        }
        if ($ace.Type -eq 'A' -and $ace.Sid -eq $Sid) {
            $allowed = $allowed -bor $ace.Mask
        }
        elseif ($ace.Type -eq 'D' -and ($ace.Sid -eq $Sid -or $ace.Sid -eq 'WD')) {
            $denied = $denied -bor $ace.Mask
        }
    }
    return ((($allowed -band $Required) -eq $Required) -and (($denied -band $Required) -eq 0))
}

function Test-RrKeyFileSddl {
    param([string]$Sddl)
    # TermService runs as NETWORK SERVICE and must read the key; SYSTEM must own it fully.
    $dacl = Get-RrDacl -Sddl $Sddl
    if (-not $dacl.Present) {
        return $false
    }
    if ($dacl.NullDacl) {
        return $true
    }
    return ((Test-RrDaclGrants -Dacl $dacl -Sid 'SY' -Required $script:RrFileAllAccess) -and
        (Test-RrDaclGrants -Dacl $dacl -Sid 'NS' -Required $script:RrFileGenericRead))
}

function Test-RrFolderSddl {
    param([string]$Sddl)
    # Exactly the Windows default: protected, Everyone 0x12019f and Administrators full,
    # both on this folder only. The owner is not part of the verdict.
    $dacl = Get-RrDacl -Sddl $Sddl
    if (-not $dacl.Present -or $dacl.NullDacl -or -not $dacl.Protected) {
        return $false
    }
    if (@($dacl.Aces).Count -ne 2) {
        return $false
    }
    $everyoneOk = $false
    $administratorsOk = $false
    foreach ($ace in $dacl.Aces) {
        if ($ace.Type -ne 'A' -or $ace.Flags -ne '') {
            return $false
        }
        if ($ace.Sid -eq 'WD' -and $ace.Mask -eq $script:RrMachineKeysEveryoneMask) {
            $everyoneOk = $true
        }
        elseif ($ace.Sid -eq 'BA' -and $ace.Mask -eq $script:RrFileAllAccess) {
            $administratorsOk = $true
        }
        else {
            return $false
        }
    }
    return ($everyoneOk -and $administratorsOk)
}

# ==== Facts ================================================================================

function Read-RrTsGeneralSetting {
    # null when WMI can't be read: the facts that need it say so with null or false.
    try {
        return Get-RrTsGeneralSetting -TerminalName $script:RrListenerName
    }
    catch {
        Write-Verbose ('Win32_TSGeneralSetting unreadable: ' + $_.Exception.Message)
        return $null
    }
}

function Get-RrOsFacts {
    $os = Get-RrOsInfo
    $caption = [string](Get-RrPropertyValue -InputObject $os -Name 'Caption')
    $build = [string](Get-RrPropertyValue -InputObject $os -Name 'BuildNumber')
    return [ordered]@{ caption = $caption.Trim(); build = $build.Trim() }
}

function Test-RrTemplateCertificate {
    param([object]$Certificate)
    foreach ($oid in @(Get-RrPropertyValue -InputObject $Certificate -Name 'ExtensionOids')) {
        if ($null -ne $oid -and $script:RrTemplateOids -contains [string]$oid) {
            return $true
        }
    }
    return $false
}

function Test-RrSelfSignedCertificate {
    param([object]$Certificate)
    return ([string]$Certificate.Subject -eq [string]$Certificate.Issuer)
}

function ConvertTo-RrCertFact {
    param([object]$Certificate)
    return [ordered]@{
        thumb      = ([string]$Certificate.Thumbprint).ToUpperInvariant()
        notAfter   = Format-RrDate -Date $Certificate.NotAfter
        hasKey     = [bool]$Certificate.HasPrivateKey
        selfSigned = [bool](Test-RrSelfSignedCertificate -Certificate $Certificate)
        template   = [bool](Test-RrTemplateCertificate -Certificate $Certificate)
    }
}

function Get-RrStoreCertificates {
    param([string]$StoreName)
    # Newest first; callers wrap the result in @().
    Get-RrCertificate -StoreName $StoreName | Sort-Object -Property @{ Expression = { ConvertTo-RrUtc -Date $_.NotAfter } } -Descending
}

function Find-RrCertificate {
    param(
        [string]$StoreName,
        [string]$Thumbprint
    )
    foreach ($certificate in @(Get-RrCertificate -StoreName $StoreName)) {
        if (([string]$certificate.Thumbprint).ToUpperInvariant() -eq $Thumbprint.ToUpperInvariant()) {
            return $certificate
        }
    }
    return $null
}

function Get-RrBindingHashHex {
    # The RDP-Tcp custom binding as upper-case hex; null when the value is absent.
    $raw = Get-RrRegistryValue -Path $script:RrRdpTcpKey -Name 'SSLCertificateSHA1Hash'
    return (ConvertTo-RrHex -Value $raw)
}

function Get-RrCertFacts {
    param([object]$TsSetting)
    $storeNameValue = Get-RrRegistryValue -Path $script:RrWinStationsKey -Name 'SelfSignedCertStore'
    $storeName = $null
    if ($null -ne $storeNameValue) {
        $storeName = [string]$storeNameValue
    }

    $store = New-Object System.Collections.Generic.List[object]
    foreach ($certificate in @(Get-RrStoreCertificates -StoreName $script:RrRdpStoreName)) {
        if ($store.Count -ge 3) {
            break
        }
        $store.Add((ConvertTo-RrCertFact -Certificate $certificate))
    }

    # A value that is not a SHA-1 hash cannot be reported as one; the binding action still
    # sees it (it reads the raw value) and treats it as stale.
    $hash = Get-RrBindingHashHex
    if ($null -ne $hash -and $hash -cnotmatch '^[0-9A-F]{40}$') {
        $hash = $null
    }

    $type = $null
    $rawType = ConvertTo-RrNullableInt -Value (Get-RrPropertyValue -InputObject $TsSetting -Name 'SSLCertificateSHA1HashType')
    if ($null -ne $rawType -and $rawType -ge 0 -and $rawType -le 3) {
        $type = [int]$rawType
    }

    $boundCertificate = $null
    if ($null -ne $hash) {
        $bound = Find-RrCertificate -StoreName $script:RrPersonalStoreName -Thumbprint $hash
        if ($null -ne $bound) {
            $boundCertificate = ConvertTo-RrCertFact -Certificate $bound
        }
    }

    return [ordered]@{
        storeName = $storeName
        store     = $store.ToArray()
        binding   = [ordered]@{ hash = $hash; type = $type; cert = $boundCertificate }
    }
}

function Get-RrMachineKeysFolder {
    return (Join-RrPath -Parent (Get-RrProgramDataPath) -Child 'Microsoft\Crypto\RSA\MachineKeys')
}

function Get-RrKeyFilePath {
    $machineGuid = Get-RrMachineGuid
    if ([string]::IsNullOrEmpty($machineGuid)) {
        return $null
    }
    return (Join-RrPath -Parent (Get-RrMachineKeysFolder) -Child ($script:RrKeyFilePrefix + $machineGuid))
}

function Read-RrSddl {
    param([string]$Path)
    # An unreadable ACL is itself a broken ACL (SYSTEM lacks READ_CONTROL): null, not a failure.
    try {
        return [string](Get-RrSddl -Path $Path)
    }
    catch {
        Write-Verbose ('ACL of ' + $Path + ' unreadable: ' + $_.Exception.Message)
        return $null
    }
}

function Get-RrKeyFacts {
    $folder = Get-RrMachineKeysFolder
    $file = Get-RrKeyFilePath
    $present = $false
    if ($null -ne $file) {
        $present = [bool](Test-RrPath -Path $file)
    }
    $fileSddl = $null
    $fileOk = $false
    if ($present) {
        $fileSddl = Read-RrSddl -Path $file
        if ($null -ne $fileSddl) {
            $fileOk = [bool](Test-RrKeyFileSddl -Sddl $fileSddl)
        }
    }
    $folderSddl = Read-RrSddl -Path $folder
    if ($null -eq $folderSddl) {
        $folderSddl = ''
    }
    $fileState = 'missing'
    if ($present) {
        $fileState = 'present'
    }
    return [ordered]@{
        file       = $fileState
        fileSddl   = $fileSddl
        fileOk     = $fileOk
        folderSddl = $folderSddl
        folderOk   = [bool](Test-RrFolderSddl -Sddl $folderSddl)
    }
}

function Get-RrDwordSetting {
    param(
        [string]$Path,
        [string]$Name,
        [int]$Default,
        [int]$Minimum,
        [int]$Maximum
    )
    # Absent means the Windows default. A value outside the documented range is reported as
    # the default too: the contract has no way to carry it, and Windows ignores it.
    $value = ConvertTo-RrNullableInt -Value (Get-RrRegistryValue -Path $Path -Name $Name)
    if ($null -eq $value -or $value -lt $Minimum -or $value -gt $Maximum) {
        return $Default
    }
    return [int]$value
}

function Get-RrFlagSetting {
    param(
        [string]$Path,
        [string]$Name,
        [int]$Default
    )
    # A 0/1 switch: any non-zero value switches it on.
    $value = ConvertTo-RrNullableInt -Value (Get-RrRegistryValue -Path $Path -Name $Name)
    if ($null -eq $value) {
        return $Default
    }
    if ($value -ne 0) {
        return 1
    }
    return 0
}

function Get-RrRdpSecuritySettings {
    return [ordered]@{
        securityLayer      = Get-RrDwordSetting -Path $script:RrRdpTcpKey -Name 'SecurityLayer' -Default 2 -Minimum 0 -Maximum 2
        userAuthentication = Get-RrFlagSetting -Path $script:RrRdpTcpKey -Name 'UserAuthentication' -Default 1
    }
}

function Get-RrRdpPort {
    return (Get-RrDwordSetting -Path $script:RrRdpTcpKey -Name 'PortNumber' -Default 3389 -Minimum 1 -Maximum 65535)
}

function Test-RrListening {
    param([int]$Port)
    try {
        return [bool](Test-RrTcpListener -Port $Port)
    }
    catch {
        Write-Verbose ('listener check failed: ' + $_.Exception.Message)
        return $false
    }
}

function Get-RrLanAdapter {
    # 0 (the default) listens on every adapter; any other value binds the listener to one.
    return (Get-RrDwordSetting -Path $script:RrRdpTcpKey -Name 'LanAdapter' -Default 0 -Minimum 0 -Maximum ([int]::MaxValue))
}

function Get-RrRdpFacts {
    $security = Get-RrRdpSecuritySettings
    $port = Get-RrRdpPort
    return [ordered]@{
        securityLayer       = [int]$security['securityLayer']
        userAuthentication  = [int]$security['userAuthentication']
        minEncryptionLevel  = Get-RrDwordSetting -Path $script:RrRdpTcpKey -Name 'MinEncryptionLevel' -Default 2 -Minimum 1 -Maximum 4
        portNumber          = [int]$port
        listening           = Test-RrListening -Port $port
        lanAdapter          = [int](Get-RrLanAdapter)
        fDenyTSConnections  = Get-RrFlagSetting -Path $script:RrTerminalServerKey -Name 'fDenyTSConnections' -Default 0
    }
}

function Test-RrPolicyOwned {
    param(
        [object]$TsSetting,
        [string]$PolicySourceProperty,
        [string]$PolicyValueName
    )
    # WMI PolicySource* = 1 is Group Policy; the policy registry value covers the case where
    # WMI can't be read.
    $source = ConvertTo-RrNullableInt -Value (Get-RrPropertyValue -InputObject $TsSetting -Name $PolicySourceProperty)
    if ($null -ne $source -and $source -eq 1) {
        return $true
    }
    return ($null -ne (Get-RrRegistryValue -Path $script:RrTsPolicyKey -Name $PolicyValueName))
}

function Get-RrPolicyFacts {
    param([object]$TsSetting)
    return [ordered]@{
        securityLayer      = [bool](Test-RrPolicyOwned -TsSetting $TsSetting -PolicySourceProperty 'PolicySourceSecurityLayer' -PolicyValueName 'SecurityLayer')
        userAuthentication = [bool](Test-RrPolicyOwned -TsSetting $TsSetting -PolicySourceProperty 'PolicySourceUserAuthenticationRequired' -PolicyValueName 'UserAuthentication')
        minEncryptionLevel = [bool](Test-RrPolicyOwned -TsSetting $TsSetting -PolicySourceProperty 'PolicySourceMinEncryptionLevel' -PolicyValueName 'MinEncryptionLevel')
        certTemplate       = ($null -ne (Get-RrRegistryValue -Path $script:RrTsPolicyKey -Name 'CertTemplateName'))
    }
}

function Get-RrTls12State {
    param(
        [object]$Enabled,
        [object]$DisabledByDefault
    )
    # SCHANNEL semantics: Enabled=0 wins; otherwise DisabledByDefault<>0 keeps TLS 1.2 off
    # unless an application asks for it. A missing Enabled counts as "not 0" (the OS
    # default for TLS 1.2 is on).
    $enabledNumber = ConvertTo-RrNullableInt -Value $Enabled
    $disabledByDefaultNumber = ConvertTo-RrNullableInt -Value $DisabledByDefault
    if ($null -eq $enabledNumber -and $null -eq $disabledByDefaultNumber) {
        return 'os-default'
    }
    if ($null -ne $enabledNumber -and $enabledNumber -eq 0) {
        return 'disabled'
    }
    if ($null -ne $disabledByDefaultNumber -and $disabledByDefaultNumber -ne 0) {
        return 'disabled-by-default'
    }
    return 'enabled'
}

function Get-RrTls12ServerState {
    $enabled = Get-RrRegistryValue -Path $script:RrTls12ServerKey -Name 'Enabled'
    $disabledByDefault = Get-RrRegistryValue -Path $script:RrTls12ServerKey -Name 'DisabledByDefault'
    return (Get-RrTls12State -Enabled $enabled -DisabledByDefault $disabledByDefault)
}

function ConvertTo-RrServiceState {
    param([object]$Status)
    if ($null -eq $Status) {
        return 'Missing'
    }
    foreach ($known in @('Running', 'Stopped', 'StartPending', 'StopPending', 'Paused')) {
        if ([string]$Status -eq $known) {
            return $known
        }
    }
    return 'Other'
}

function Get-RrServiceState {
    param([string]$Name)
    return (ConvertTo-RrServiceState -Status (Get-RrServiceStatus -Name $Name))
}

function Get-RrServiceFacts {
    return [ordered]@{
        TermService  = Get-RrServiceState -Name 'TermService'
        SessionEnv   = Get-RrServiceState -Name 'SessionEnv'
        UmRdpService = Get-RrServiceState -Name 'UmRdpService'
    }
}

function Get-RrDomainFacts {
    $joined = [bool](Get-RrDomainMembership)
    $secureChannel = 'n/a'
    if ($joined) {
        # A check that cannot reach a domain controller is as broken as one that fails.
        try {
            if ([bool](Test-RrSecureChannel)) {
                $secureChannel = 'ok'
            }
            else {
                $secureChannel = 'broken'
            }
        }
        catch {
            Write-Verbose ('Test-ComputerSecureChannel failed: ' + $_.Exception.Message)
            $secureChannel = 'broken'
        }
    }
    return [ordered]@{ joined = $joined; secureChannel = $secureChannel }
}

function Test-RrBrokerInstalled {
    try {
        return [bool](Test-RrWindowsFeatureInstalled -Name $script:RrBrokerFeatureName)
    }
    catch {
        # Get-WindowsFeature refuses client SKUs with an error; they cannot hold the role.
        Write-Verbose ('Get-WindowsFeature failed: ' + $_.Exception.Message)
        return $false
    }
}

# ---- The loopback RDP handshake ------------------------------------------------------------

function Test-RrHandshakeRetryable {
    param([object]$Attempt)
    # Refused or reset: a listener that is still coming up. Anything else is its answer.
    $reason = [string](Get-RrPropertyValue -InputObject $Attempt -Name 'Error')
    return ($reason -eq 'refused' -or $reason -eq 'reset')
}

function Invoke-RrHandshakeAttempt {
    param(
        [string]$Address,
        [int]$Port
    )
    $attempt = $null
    for ($try = 0; $try -le $script:RrHandshakeRetries; $try++) {
        if ($try -gt 0) {
            Start-RrSleep -Seconds $script:RrHandshakeRetrySeconds | Out-Null
        }
        $answers = @(Test-RrRdpHandshake -Address $Address -Port $Port -TimeoutMilliseconds $script:RrHandshakeTimeoutMilliseconds)
        if ($answers.Count -ne 1 -or $null -eq $answers[0]) {
            throw ('Test-RrRdpHandshake gave ' + $answers.Count + ' answers for ' + $Address + ':' + $Port + ', not one')
        }
        $attempt = $answers[0]
        if (-not (Test-RrHandshakeRetryable -Attempt $attempt)) {
            break
        }
    }
    return $attempt
}

function ConvertTo-RrNullableMilliseconds {
    param([object]$Value)
    $number = ConvertTo-RrNullableInt -Value $Value
    if ($null -eq $number) {
        return $null
    }
    return [int][Math]::Max([int64]0, [Math]::Min([int64][int]::MaxValue, $number))
}

function Get-RrServedCertificateKind {
    param(
        [string]$Thumbprint,
        [string]$BindingHash,
        [string[]]$StoreThumbprints
    )
    # Which configured certificate the listener served: null when it served none.
    if ([string]::IsNullOrEmpty($Thumbprint)) {
        return $null
    }
    if (-not [string]::IsNullOrEmpty($BindingHash) -and $Thumbprint -ceq $BindingHash) {
        return 'binding'
    }
    if ($StoreThumbprints -ccontains $Thumbprint) {
        return 'remote-desktop'
    }
    return 'other'
}

function ConvertTo-RrHandshakeAttemptFact {
    param(
        [object]$Attempt,
        [string]$Address,
        [int]$Port,
        [string]$BindingHash,
        [string[]]$StoreThumbprints
    )
    # An answer the contract cannot carry is the check failing, not a fact: the caller reports
    # handshake null then.
    $stage = [string](Get-RrPropertyValue -InputObject $Attempt -Name 'Stage')
    if (@('connect', 'negotiate', 'tls', 'done') -cnotcontains $stage) {
        throw ('unexpected handshake stage: ' + $stage)
    }
    $reason = Get-RrPropertyValue -InputObject $Attempt -Name 'Error'
    if ($null -ne $reason) {
        $reason = [string]$reason
        if (@('refused', 'timeout', 'reset', 'protocol', 'negotiation-failure', 'tls') -cnotcontains $reason) {
            throw ('unexpected handshake error: ' + $reason)
        }
    }
    $thumb = ConvertTo-RrHex -Value (Get-RrPropertyValue -InputObject $Attempt -Name 'CertificateThumbprint')
    if ([string]::IsNullOrEmpty($thumb)) {
        $thumb = $null
    }
    $cert = $null
    $notAfter = Get-RrPropertyValue -InputObject $Attempt -Name 'CertificateNotAfter'
    if ($null -ne $thumb -and $thumb -cmatch '^[0-9A-F]{40}$' -and $null -ne $notAfter) {
        $cert = [ordered]@{ thumb = $thumb; notAfter = Format-RrDate -Date ([datetime]$notAfter) }
    }
    $failureCode = ConvertTo-RrNullableInt -Value (Get-RrPropertyValue -InputObject $Attempt -Name 'FailureCode')
    $selectedProtocol = ConvertTo-RrNullableInt -Value (Get-RrPropertyValue -InputObject $Attempt -Name 'SelectedProtocol')
    $tlsVersion = Get-RrPropertyValue -InputObject $Attempt -Name 'TlsVersion'
    $cipher = Get-RrPropertyValue -InputObject $Attempt -Name 'Cipher'
    $detail = Get-RrPropertyValue -InputObject $Attempt -Name 'Message'
    if ($null -ne $tlsVersion) {
        $tlsVersion = Limit-RrText -Text ([string]$tlsVersion) -MaxLength 16
    }
    if ($null -ne $cipher) {
        $cipher = Limit-RrText -Text ([string]$cipher) -MaxLength 64
    }
    if ($null -ne $detail) {
        $detail = Limit-RrText -Text ([string]$detail) -MaxLength 200
    }
    return [ordered]@{
        # Where the probe connected: the answer's own Address and Port only echo them.
        address          = $Address
        port             = $Port
        stage            = $stage
        error            = $reason
        failureCode      = $failureCode
        selectedProtocol = $selectedProtocol
        tlsVersion       = $tlsVersion
        cipher           = $cipher
        cert             = $cert
        servedCert       = Get-RrServedCertificateKind -Thumbprint $thumb -BindingHash $BindingHash -StoreThumbprints $StoreThumbprints
        ms               = [ordered]@{
            connect   = ConvertTo-RrNullableMilliseconds -Value (Get-RrPropertyValue -InputObject $Attempt -Name 'ConnectMs')
            negotiate = ConvertTo-RrNullableMilliseconds -Value (Get-RrPropertyValue -InputObject $Attempt -Name 'NegotiateMs')
            tls       = ConvertTo-RrNullableMilliseconds -Value (Get-RrPropertyValue -InputObject $Attempt -Name 'TlsMs')
        }
        detail           = $detail
    }
}

function Get-RrHandshakeFacts {
    param(
        [int]$Port,
        [int]$LanAdapter,
        [string]$BindingHash
    )
    # What an RDP client meets up to TLS, on loopback and, for a listener bound to one adapter
    # (which does not accept on loopback), on that adapter's address. The check failing is
    # not a probe failure: handshake is null then.
    try {
        $addresses = New-Object System.Collections.Generic.List[string]
        $addresses.Add($script:RrLoopbackAddress)
        if ($LanAdapter -ne 0) {
            $primary = Get-RrPrimaryIPv4Address
            if (-not [string]::IsNullOrEmpty($primary) -and $primary -ne $script:RrLoopbackAddress) {
                $addresses.Add([string]$primary)
            }
        }
        $storeThumbprints = New-Object System.Collections.Generic.List[string]
        foreach ($certificate in @(Get-RrCertificate -StoreName $script:RrRdpStoreName)) {
            $storeThumbprints.Add(([string]$certificate.Thumbprint).ToUpperInvariant())
        }
        $attempts = New-Object System.Collections.Generic.List[object]
        foreach ($address in $addresses) {
            $attempt = Invoke-RrHandshakeAttempt -Address $address -Port $Port
            $attempts.Add((ConvertTo-RrHandshakeAttemptFact -Attempt $attempt -Address $address -Port $Port -BindingHash $BindingHash -StoreThumbprints $storeThumbprints.ToArray()))
        }
        return [ordered]@{ attempts = $attempts.ToArray() }
    }
    catch {
        Write-Verbose ('loopback handshake check failed: ' + $_.Exception.Message)
        return $null
    }
}

# ---- System-log evidence -------------------------------------------------------------------

function Get-RrFirstLine {
    param([string]$Text)
    foreach ($line in ([string]$Text -split "`r?`n")) {
        if ($line.Trim() -ne '') {
            return $line.Trim()
        }
    }
    return ''
}

function Get-RrEventFacts {
    # The cause-naming events of the last hours, one item per source and id: how many, when
    # the newest was, and its text. null when the log cannot be read.
    $start = (ConvertTo-RrUtc -Date (Get-RrNow)).AddHours(-$script:RrEventHours)
    $groups = [ordered]@{}
    try {
        for ($order = 0; $order -lt $script:RrEventSources.Count; $order++) {
            $source = $script:RrEventSources[$order]
            foreach ($record in @(Get-RrSystemEvents -ProviderName $source['Provider'] -Ids $source['Ids'] -StartTime $start -MaxEvents $script:RrEventsPerProvider)) {
                $id = [int]$record.Id
                if ($source['Ids'] -notcontains $id) {
                    continue
                }
                $time = ConvertTo-RrUtc -Date ([datetime]$record.TimeCreated)
                $key = $source['Source'] + ':' + $id
                if (-not $groups.Contains($key)) {
                    $groups[$key] = @{ Source = $source['Source']; Order = $order; Id = $id; Count = 0; Last = $time; Message = [string]$record.Message }
                }
                $group = $groups[$key]
                $group['Count'] = $group['Count'] + 1
                if ($time -gt $group['Last']) {
                    $group['Last'] = $time
                    $group['Message'] = [string]$record.Message
                }
            }
        }
    }
    catch {
        Write-Verbose ('System log unreadable: ' + $_.Exception.Message)
        return $null
    }
    # Newest first; equal times in the order of the sources, then by id, so a read gives one answer.
    $sorted = @($groups.Values | Sort-Object -Property @{ Expression = { $_['Last'] }; Descending = $true }, @{ Expression = { $_['Order'] }; Ascending = $true }, @{ Expression = { $_['Id'] }; Ascending = $true })
    $items = New-Object System.Collections.Generic.List[object]
    foreach ($group in $sorted) {
        if ($items.Count -ge $script:RrEventItemsMax) {
            break
        }
        $items.Add([ordered]@{
                source = $group['Source']
                id     = $group['Id']
                count  = $group['Count']
                last   = Format-RrDate -Date $group['Last']
                text   = Limit-RrText -Text (Get-RrFirstLine -Text $group['Message']) -MaxLength $script:RrEventTextMaxLength
            })
    }
    return [ordered]@{ hours = $script:RrEventHours; items = $items.ToArray() }
}

# ---- Windows Firewall ----------------------------------------------------------------------

function Test-RrFirewallPortMatch {
    param(
        [string[]]$LocalPorts,
        [int]$Port
    )
    # 'Any', the port itself, or a range 'a-b' around it; keywords (RPC, IPHTTPSIn, ...) never.
    foreach ($entry in @($LocalPorts)) {
        $text = ([string]$entry).Trim()
        if ($text -eq 'Any' -or $text -eq [string]$Port) {
            return $true
        }
        if ($text -match '^([0-9]+)-([0-9]+)$' -and [int64]$Matches[1] -le $Port -and $Port -le [int64]$Matches[2]) {
            return $true
        }
    }
    return $false
}

function Test-RrFirewallRuleApplies {
    param(
        [object]$Rule,
        [string]$Action,
        [int]$Port,
        [string]$ProfileName
    )
    # An enabled rule of that action for TCP on the port, in that profile. A rule scoped to
    # another service does not see TermService's traffic.
    $service = Get-RrPropertyValue -InputObject $Rule -Name 'Service'
    $protocol = [string]$Rule.Protocol
    return ([bool]$Rule.Enabled -and
        [string]$Rule.Action -eq $Action -and
        ($protocol -eq 'TCP' -or $protocol -eq 'Any') -and
        (Test-RrFirewallPortMatch -LocalPorts @($Rule.LocalPorts) -Port $Port) -and
        @($Rule.Profiles) -contains $ProfileName -and
        ($null -eq $service -or [string]$service -eq '' -or [string]$service -eq 'termservice'))
}

function Test-RrFirewallAdmits {
    param(
        [object[]]$Rules,
        [int]$Port,
        [string[]]$Profiles
    )
    # Every profile where the firewall is on needs an Allow rule and no Block rule for the
    # port: Block wins in Windows Firewall. No such profile: nothing is filtered.
    foreach ($profileName in @($Profiles)) {
        $allowed = $false
        foreach ($rule in @($Rules)) {
            if (Test-RrFirewallRuleApplies -Rule $rule -Action 'Block' -Port $Port -ProfileName $profileName) {
                return $false
            }
            if (Test-RrFirewallRuleApplies -Rule $rule -Action 'Allow' -Port $Port -ProfileName $profileName) {
                $allowed = $true
            }
        }
        if (-not $allowed) {
            return $false
        }
    }
    return $true
}

function Test-RrRdpFirewallRule {
    param([object]$Rule)
    # The built-in Remote Desktop group, or a rule the fix added for a custom port.
    return ([string]$Rule.Group -eq $script:RrRdpFirewallGroup -or [string]$Rule.Name -like ($script:RrCustomRulePrefix + '*'))
}

function Read-RrFirewallState {
    param([int]$Port)
    # The firewall as the facts and the firewall action see it: the profiles of the connected
    # networks, which of them filter, every inbound rule, and whether TCP Port gets through.
    $categoriesKnown = $true
    $categories = @()
    try {
        $categories = @(Get-RrNetworkCategories)
    }
    catch {
        Write-Verbose ('network categories unreadable: ' + $_.Exception.Message)
        $categoriesKnown = $false
    }
    $active = New-Object System.Collections.Generic.List[string]
    foreach ($name in $script:RrFirewallProfiles) {
        $category = $name
        if ($name -eq 'Domain') {
            $category = 'DomainAuthenticated'
        }
        if (@($categories | Where-Object { [string]$_ -eq $category }).Count -gt 0) {
            $active.Add($name)
        }
    }
    $readable = $true
    $profiles = $null
    $rules = @()
    try {
        $profiles = @(Get-RrFirewallProfiles)
        $rules = @(Get-RrFirewallRules -Direction 'Inbound')
    }
    catch {
        Write-Verbose ('Windows Firewall unreadable: ' + $_.Exception.Message)
        $readable = $false
    }
    # A network Windows has not placed counts as Public (its default, and an Azure VM's);
    # with neither the networks nor the firewall readable, nothing is known.
    if ($active.Count -eq 0 -and ($categoriesKnown -or $readable)) {
        $active.Add('Public')
    }
    $enabled = New-Object System.Collections.Generic.List[string]
    if ($null -ne $profiles) {
        foreach ($name in $active) {
            if (@($profiles | Where-Object { [string]$_.Name -eq $name -and [bool]$_.Enabled }).Count -gt 0) {
                $enabled.Add($name)
            }
        }
    }
    $rdpRules = @($rules | Where-Object { Test-RrRdpFirewallRule -Rule $_ })
    $admitted = $true
    if ($readable) {
        $admitted = [bool](Test-RrFirewallAdmits -Rules $rules -Port $Port -Profiles $enabled.ToArray())
    }
    $gpo = [bool](Test-RrRegistryKey -Path $script:RrFirewallPolicyKey) -or @($rdpRules | Where-Object { [string]$_.PolicyStore -eq 'GroupPolicy' }).Count -gt 0
    return [pscustomobject]@{
        Readable        = $readable
        ActiveProfiles  = $active.ToArray()
        EnabledProfiles = $enabled.ToArray()
        Rules           = $rules
        RdpRules        = $rdpRules
        PortAdmitted    = $admitted
        Gpo             = $gpo
    }
}

function ConvertTo-RrFirewallRuleFact {
    param([object]$Rule)
    $ports = New-Object System.Collections.Generic.List[string]
    foreach ($entry in @($Rule.LocalPorts)) {
        if ($ports.Count -lt 8) {
            $ports.Add((Limit-RrText -Text ([string]$entry) -MaxLength 16))
        }
    }
    $profiles = New-Object System.Collections.Generic.List[string]
    foreach ($name in $script:RrFirewallProfiles) {
        if (@($Rule.Profiles) -contains $name) {
            $profiles.Add($name)
        }
    }
    $store = 'local'
    if ([string]$Rule.PolicyStore -eq 'GroupPolicy') {
        $store = 'gpo'
    }
    return [ordered]@{
        name       = Limit-RrText -Text ([string]$Rule.Name) -MaxLength 128
        enabled    = [bool]$Rule.Enabled
        profiles   = $profiles.ToArray()
        protocol   = Limit-RrText -Text ([string]$Rule.Protocol) -MaxLength 8
        localPorts = $ports.ToArray()
        store      = $store
    }
}

function Get-RrFirewallFacts {
    param([int]$Port)
    $state = Read-RrFirewallState -Port $Port
    # The built-in rules first, then the custom-port rule for this port, then any other.
    $custom = $script:RrCustomRulePrefix + $Port
    $ordered = @(@($state.RdpRules | Where-Object { [string]$_.Group -eq $script:RrRdpFirewallGroup }) +
        @($state.RdpRules | Where-Object { [string]$_.Group -ne $script:RrRdpFirewallGroup -and [string]$_.Name -eq $custom }) +
        @($state.RdpRules | Where-Object { [string]$_.Group -ne $script:RrRdpFirewallGroup -and [string]$_.Name -ne $custom }))
    $rules = New-Object System.Collections.Generic.List[object]
    foreach ($rule in $ordered) {
        if ($rules.Count -ge $script:RrRdpRulesMax) {
            break
        }
        $rules.Add((ConvertTo-RrFirewallRuleFact -Rule $rule))
    }
    return [ordered]@{
        readable        = [bool]$state.Readable
        activeProfiles  = [string[]]$state.ActiveProfiles
        enabledProfiles = [string[]]$state.EnabledProfiles
        rdpRules        = $rules.ToArray()
        portAdmitted    = [bool]$state.PortAdmitted
        gpo             = [bool]$state.Gpo
    }
}

function Get-RrFacts {
    param(
        # The fix's re-read passes $false: the events of the last hours tell what went wrong
        # before, not what the fix did, and the result line needs the room for the actions.
        [bool]$ReadEvents = $true
    )
    $tsSetting = Read-RrTsGeneralSetting
    $cert = Get-RrCertFacts -TsSetting $tsSetting
    $rdp = Get-RrRdpFacts
    return [ordered]@{
        os          = Get-RrOsFacts
        cert        = $cert
        keys        = Get-RrKeyFacts
        rdp         = $rdp
        policy      = Get-RrPolicyFacts -TsSetting $tsSetting
        tls12Server = Get-RrTls12ServerState
        services    = Get-RrServiceFacts
        domain      = Get-RrDomainFacts
        rdcb        = Test-RrBrokerInstalled
        handshake   = Get-RrHandshakeFacts -Port $rdp['portNumber'] -LanAdapter $rdp['lanAdapter'] -BindingHash $cert['binding']['hash']
        events      = $(if ($ReadEvents) { Get-RrEventFacts } else { $null })
        firewall    = Get-RrFirewallFacts -Port $rdp['portNumber']
    }
}

# ==== Read-back of earlier fix runs =========================================================

# A fix run writes manifest.json, a rerun of the same RunId manifest-2.json, ... (lib/Actions.ps1).
$script:RrManifestNamePattern = '^manifest(-(?<sequence>[1-9][0-9]{0,2}))?\.json$'

function ConvertFrom-RrJsonString {
    param([string]$Token)
    # A JSON string token, quotes included. Regex.Unescape knows every JSON escape (\" \\ \/
    # \b \f \n \r \t \uXXXX), and JSON writers emit no other.
    return [regex]::Unescape($Token.Substring(1, $Token.Length - 2))
}

function Read-RrJsonValue {
    param([hashtable]$Reader)
    # One value from the token list in $Reader (Tokens, Index), advancing Index past it.
    if ($Reader.Index -ge $Reader.Tokens.Count) {
        throw 'JSON ends too early'
    }
    $token = [string]$Reader.Tokens[$Reader.Index].Value
    $Reader.Index++
    if ($token -ceq '{') {
        $object = [ordered]@{}
        if ($Reader.Index -lt $Reader.Tokens.Count -and [string]$Reader.Tokens[$Reader.Index].Value -ceq '}') {
            $Reader.Index++
            return $object
        }
        while ($true) {
            if ($Reader.Index -ge $Reader.Tokens.Count) {
                throw 'JSON ends inside an object'
            }
            $key = [string]$Reader.Tokens[$Reader.Index].Value
            if (-not $key.StartsWith('"') -or $Reader.Index + 1 -ge $Reader.Tokens.Count -or [string]$Reader.Tokens[$Reader.Index + 1].Value -cne ':') {
                throw ('JSON object key expected at token ' + $Reader.Index)
            }
            $Reader.Index += 2
            $object[(ConvertFrom-RrJsonString -Token $key)] = Read-RrJsonValue -Reader $Reader
            if ($Reader.Index -ge $Reader.Tokens.Count) {
                throw 'JSON ends inside an object'
            }
            $separator = [string]$Reader.Tokens[$Reader.Index].Value
            $Reader.Index++
            if ($separator -ceq '}') {
                return $object
            }
            if ($separator -cne ',') {
                throw ('JSON: , or } expected, found ' + $separator)
            }
        }
    }
    if ($token -ceq '[') {
        $items = New-Object System.Collections.Generic.List[object]
        if ($Reader.Index -lt $Reader.Tokens.Count -and [string]$Reader.Tokens[$Reader.Index].Value -ceq ']') {
            $Reader.Index++
            return , $items.ToArray()
        }
        while ($true) {
            $items.Add((Read-RrJsonValue -Reader $Reader))
            if ($Reader.Index -ge $Reader.Tokens.Count) {
                throw 'JSON ends inside an array'
            }
            $separator = [string]$Reader.Tokens[$Reader.Index].Value
            $Reader.Index++
            if ($separator -ceq ']') {
                return , $items.ToArray()
            }
            if ($separator -cne ',') {
                throw ('JSON: , or ] expected, found ' + $separator)
            }
        }
    }
    if ($token.StartsWith('"')) {
        return (ConvertFrom-RrJsonString -Token $token)
    }
    if ($token -ceq 'true') {
        return $true
    }
    if ($token -ceq 'false') {
        return $false
    }
    if ($token -ceq 'null') {
        return $null
    }
    if ($token -cmatch '^-?[0-9]+$') {
        return [int64]::Parse($token, [System.Globalization.CultureInfo]::InvariantCulture)
    }
    if ($token -cmatch '^-?[0-9]') {
        return [double]::Parse($token, [System.Globalization.CultureInfo]::InvariantCulture)
    }
    throw ('JSON: unexpected ' + $token)
}

function ConvertFrom-RrJsonText {
    param([string]$Text)
    # A small JSON reader for the manifests lib/Actions.ps1 writes (the payloads use no
    # ConvertFrom-Json): objects come back as ordered dictionaries, arrays as object[],
    # integers as [int64], other numbers as [double]. Anything that is not JSON throws.
    if ([string]::IsNullOrEmpty($Text)) {
        throw 'JSON: empty text'
    }
    $pattern = '"(?:[^"\\]|\\.)*"|-?[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?|true|false|null|[{}\[\]:,]|[^\s{}\[\]:,"]+|"'
    $tokens = [regex]::Matches($Text, $pattern)
    $reader = @{ Tokens = $tokens; Index = 0 }
    $value = Read-RrJsonValue -Reader $reader
    if ($reader.Index -ne $tokens.Count) {
        throw 'JSON: text after the value'
    }
    return , $value
}

function ConvertTo-RrPreviousValues {
    param([object]$Values)
    # before / after as the contract has them: a flat object of scalars.
    $copy = [ordered]@{}
    if ($Values -is [System.Collections.IDictionary]) {
        foreach ($key in @($Values.Keys)) {
            $value = $Values[$key]
            if ($null -eq $value -or $value -is [string] -or $value -is [bool] -or $value -is [int64] -or $value -is [double]) {
                $copy[[string]$key] = $value
            }
            else {
                $copy[[string]$key] = [string]$value
            }
        }
    }
    return $copy
}

function ConvertTo-RrPreviousAction {
    param([System.Collections.IDictionary]$Entry)
    # One manifest entry as an action result (what the fix's result line carried for it).
    $action = [ordered]@{
        id       = [string](Get-RrPropertyValue -InputObject $Entry -Name 'id')
        changed  = [bool](Get-RrPropertyValue -InputObject $Entry -Name 'changed')
        before   = ConvertTo-RrPreviousValues -Values (Get-RrPropertyValue -InputObject $Entry -Name 'before')
        after    = ConvertTo-RrPreviousValues -Values (Get-RrPropertyValue -InputObject $Entry -Name 'after')
        backup   = $null
        verified = [bool](Get-RrPropertyValue -InputObject $Entry -Name 'verified')
        error    = $null
    }
    $backup = Get-RrPropertyValue -InputObject $Entry -Name 'backup'
    if ($null -ne $backup) {
        $action['backup'] = [string]$backup
    }
    $entryError = Get-RrPropertyValue -InputObject $Entry -Name 'error'
    if ($entryError -is [System.Collections.IDictionary]) {
        $action['error'] = [ordered]@{ code = [string](Get-RrPropertyValue -InputObject $entryError -Name 'code'); message = [string](Get-RrPropertyValue -InputObject $entryError -Name 'message') }
    }
    $restore = Get-RrPropertyValue -InputObject $Entry -Name 'restore'
    if ($restore -is [System.Collections.IDictionary]) {
        # Only the parameters that carry a value, as the fix reported them.
        $parameters = [ordered]@{}
        $given = Get-RrPropertyValue -InputObject $restore -Name 'parameters'
        foreach ($name in @('RestoreSecurityLayer', 'RestoreUserAuthentication')) {
            $value = Get-RrPropertyValue -InputObject $given -Name $name
            if ($null -ne $value -and [string]$value -ne '') {
                $parameters[$name] = [string]$value
            }
        }
        $action['restore'] = [ordered]@{ action = [string](Get-RrPropertyValue -InputObject $restore -Name 'action'); parameters = $parameters }
    }
    return $action
}

function Get-RrRunDirectory {
    param([string]$RunId)
    # Where the fix keeps a RunId's backups and manifests (lib/Actions.ps1 Invoke-RrFix).
    return (Join-RrPath -Parent (Join-RrPath -Parent (Get-RrProgramDataPath) -Child 'RdpRemediation') -Child $RunId)
}

function Get-RrPreviousRuns {
    param([string]$RunId)
    # What earlier fix runs with this RunId did, from their manifests: a resumed job judges
    # from this instead of running the fix again. A manifest that cannot be read or parsed
    # is counted, so that a run whose record is lost is still known to have happened.
    $directory = Get-RrRunDirectory -RunId $RunId
    $runs = New-Object System.Collections.Generic.List[object]
    $unreadable = 0
    foreach ($name in @(Get-RrChildFileNames -Path $directory)) {
        $match = [regex]::Match([string]$name, $script:RrManifestNamePattern, [System.Text.RegularExpressions.RegexOptions]::IgnoreCase)
        if (-not $match.Success) {
            continue
        }
        $sequence = 1
        if ($match.Groups['sequence'].Success) {
            $sequence = [int]$match.Groups['sequence'].Value
        }
        try {
            $manifest = ConvertFrom-RrJsonText -Text (Get-RrTextFile -Path (Join-RrPath -Parent $directory -Child ([string]$name)))
            if (-not ($manifest -is [System.Collections.IDictionary]) -or [string](Get-RrPropertyValue -InputObject $manifest -Name 'kind') -cne 'rdp-remediator-fix-manifest') {
                throw 'not a fix manifest'
            }
            $actions = New-Object System.Collections.Generic.List[object]
            foreach ($entry in @(Get-RrPropertyValue -InputObject $manifest -Name 'actions')) {
                if ($entry -is [System.Collections.IDictionary]) {
                    $actions.Add((ConvertTo-RrPreviousAction -Entry $entry))
                }
            }
            $runs.Add([ordered]@{ sequence = $sequence; actions = $actions.ToArray() })
        }
        catch {
            Write-Verbose ('manifest ' + $name + ' unreadable: ' + $_.Exception.Message)
            $unreadable++
        }
    }
    $sorted = @($runs.ToArray() | Sort-Object -Property @{ Expression = { [int]$_['sequence'] } })
    return [ordered]@{ dir = $directory; runs = $sorted; unreadable = $unreadable }
}

# ==== Errors and parameters ================================================================

function New-RrError {
    param(
        [string]$Code,
        [string]$Message
    )
    return [ordered]@{ code = $Code; message = (Limit-RrText -Text $Message -MaxLength $script:RrMessageMaxLength) }
}

function Get-RrRunIdProblem {
    param([string]$RunId)
    # param() validation is case-insensitive and skips absent parameters; this is not.
    if ($RunId -cnotmatch '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$') {
        return 'RunId must be a lower-case GUID'
    }
    return $null
}

# ==== Payloads =============================================================================

function Invoke-RrProbe {
    param(
        [string]$RunId,
        # 'true': add what earlier fix runs with this RunId left (previous); '' (absent) or 'false': not.
        [string]$ReadManifests = ''
    )
    $problem = Get-RrRunIdProblem -RunId $RunId
    if ($null -eq $problem -and @('', 'true', 'false') -cnotcontains $ReadManifests) {
        $problem = "ReadManifests must be 'true' or 'false', or absent"
    }
    if ($null -ne $problem) {
        return [ordered]@{ kind = 'probe'; v = 1; ok = $false; runId = [string]$RunId; error = (New-RrError -Code 'invalid-parameters' -Message $problem) }
    }
    $previous = $null
    try {
        $facts = Get-RrFacts
        if ($ReadManifests -ceq 'true') {
            $previous = Get-RrPreviousRuns -RunId $RunId
        }
    }
    catch {
        return [ordered]@{ kind = 'probe'; v = 1; ok = $false; runId = $RunId; error = (New-RrError -Code 'exception' -Message $_.Exception.Message) }
    }
    $result = [ordered]@{ kind = 'probe'; v = 1; ok = $true; runId = $RunId; facts = $facts }
    if ($null -ne $previous) {
        $result['previous'] = $previous
    }
    return $result
}

function New-RrFixResult {
    param(
        [string]$RunId,
        [bool]$DryRun
    )
    # Here rather than in lib/Actions.ps1: the result line's size guard builds one too.
    return [ordered]@{
        kind      = 'fix'
        v         = 1
        ok        = $true
        runId     = [string]$RunId
        dryRun    = $DryRun
        backupDir = $null
        actions   = @()
        verify    = $null
        error     = $null
    }
}

# ==== Result line ==========================================================================

function ConvertTo-RrJsonLine {
    param([object]$InputObject)
    $json = ConvertTo-Json -InputObject $InputObject -Compress -Depth 10
    # ASCII only: Run Command captures stdout in the console code page, where anything else
    # may turn into '?'; a \u escape survives every code page and counts one byte a char.
    return [regex]::Replace($json, '[^\x00-\x7F]', { param($character) '\u{0:x4}' -f [int][char]$character.Value })
}

function Get-RrUtf8Length {
    param([string]$Text)
    return [System.Text.Encoding]::UTF8.GetByteCount($Text)
}

# The size guard shortens only text meant for people, never a value the TypeScript side
# decides on. It reads every fact (src/core/diagnose.ts, src/core/planner.ts) and, of each
# action, id, changed, verified, the error code and restore (src/core/outcome.ts judgeFix);
# none of those is ever dropped or changed, and verify is never dropped (judgeFix would take
# a missing re-read for a VM that could not be read). The same holds for the actions of
# earlier runs that a probe reads back (previous.runs[].actions; their sequence, the run
# count and the unreadable count stay too): "the actions" below means both. Of the
# handshake, only each attempt's detail and cipher are display text (stage, error,
# failureCode, selectedProtocol, servedCert, cert and the rest stay); of the events, each
# item's text, and as a last resort the older items (their ids, counts and times are evidence
# for people, not decisions); the firewall facts stay whole. Display text goes in stages,
# each applied only while the line is still too long; when nothing display-only is left to
# shorten, the result is replaced by an explicit result-too-large failure.
#   1. SDDL text in the facts (keys.fileSddl, keys.folderSddl) beyond 64 characters
#   2. string values in the actions' before / after beyond 64 characters
#   3. error messages (the actions' and the payload's) beyond 80 characters
#   4. the OS caption beyond 32 characters, and an action's backup list beyond 128
#   5. handshake details beyond 64 characters, ciphers beyond 32, event texts beyond 48
#   6. SDDL text and before / after strings beyond 16 characters
#   7. error messages beyond 40 characters
#   8. handshake details, ciphers and event texts beyond 16 characters
#   9. SDDL text, before / after strings, error messages, handshake details, ciphers, event
#      texts and the OS caption cut to '...' (the manifest has the actions' text)
#  10. the fix's own actions: before / after emptied ({}) and backup cut to '...' (the
#      manifest in backupDir keeps them; verify holds the state now)
#  11. before / after of earlier runs' actions emptied ({}): the manifests on the VM keep them
#  12. only the newest 4 event items kept
#  13. no event item kept (items []): the last display text there is. A fix's verify needs
#      none (the probe before it carried them), and a probe without them still decides
$script:RrResultLineStages = 13
$script:RrResultLineEventItemsKept = 4

function Limit-RrValueText {
    param(
        [System.Collections.IDictionary]$Values,
        [string[]]$Names,
        [int]$MaxLength
    )
    # Shortens the string values among $Names (all keys when $Names is empty); null,
    # numbers and booleans stay as they are.
    if ($null -eq $Values) {
        return
    }
    $targets = $Names
    if ($null -eq $targets -or $targets.Count -eq 0) {
        $targets = @($Values.Keys)
    }
    foreach ($key in @($targets)) {
        if ($Values.Contains($key) -and $Values[$key] -is [string]) {
            $Values[$key] = Limit-RrText -Text $Values[$key] -MaxLength $MaxLength
        }
    }
}

function Get-RrResultActions {
    param([System.Collections.IDictionary]$Result)
    # A probe result has no actions; @($null) would be one.
    $actions = Get-RrPropertyValue -InputObject $Result -Name 'actions'
    if ($null -eq $actions) {
        return , @()
    }
    return , @($actions)
}

function Get-RrPreviousActions {
    param([System.Collections.IDictionary]$Result)
    # The actions of earlier runs a probe read back; none for a fix or a plain probe.
    $actions = New-Object System.Collections.Generic.List[object]
    $previous = Get-RrPropertyValue -InputObject $Result -Name 'previous'
    foreach ($run in @(Get-RrPropertyValue -InputObject $previous -Name 'runs')) {
        foreach ($action in @(Get-RrPropertyValue -InputObject $run -Name 'actions')) {
            if ($null -ne $action) {
                $actions.Add($action)
            }
        }
    }
    return , $actions.ToArray()
}

function Get-RrResultDisplayActions {
    param([System.Collections.IDictionary]$Result)
    # Every action whose display text the guard may shorten: a fix's own, an earlier run's.
    $all = New-Object System.Collections.Generic.List[object]
    foreach ($action in (Get-RrResultActions -Result $Result)) {
        $all.Add($action)
    }
    foreach ($action in (Get-RrPreviousActions -Result $Result)) {
        $all.Add($action)
    }
    return , $all.ToArray()
}

function Limit-RrErrorText {
    param(
        [System.Collections.IDictionary]$Result,
        [int]$MaxLength
    )
    $errors = New-Object System.Collections.Generic.List[object]
    $errors.Add((Get-RrPropertyValue -InputObject $Result -Name 'error'))
    foreach ($action in (Get-RrResultDisplayActions -Result $Result)) {
        $errors.Add((Get-RrPropertyValue -InputObject $action -Name 'error'))
    }
    foreach ($item in $errors) {
        if ($item -is [System.Collections.IDictionary]) {
            # The code is what the TypeScript side reads; only the message is shortened.
            Limit-RrValueText -Values $item -Names @('message') -MaxLength $MaxLength
        }
    }
}

function Limit-RrEvidenceText {
    param(
        [object]$Facts,
        [int]$DetailMaxLength,
        [int]$CipherMaxLength,
        [int]$TextMaxLength
    )
    # The handshake attempts' detail and cipher and the event items' text; null stays null.
    $handshake = Get-RrPropertyValue -InputObject $Facts -Name 'handshake'
    foreach ($attempt in @(Get-RrPropertyValue -InputObject $handshake -Name 'attempts')) {
        if ($attempt -is [System.Collections.IDictionary]) {
            Limit-RrValueText -Values $attempt -Names @('detail') -MaxLength $DetailMaxLength
            Limit-RrValueText -Values $attempt -Names @('cipher') -MaxLength $CipherMaxLength
        }
    }
    $events = Get-RrPropertyValue -InputObject $Facts -Name 'events'
    foreach ($item in @(Get-RrPropertyValue -InputObject $events -Name 'items')) {
        if ($item -is [System.Collections.IDictionary]) {
            Limit-RrValueText -Values $item -Names @('text') -MaxLength $TextMaxLength
        }
    }
}

function Limit-RrResultDetail {
    param(
        [System.Collections.IDictionary]$Result,
        [string]$FactsKey,
        [int]$Stage
    )
    $facts = Get-RrPropertyValue -InputObject $Result -Name $FactsKey
    $keys = Get-RrPropertyValue -InputObject $facts -Name 'keys'
    $actions = Get-RrResultDisplayActions -Result $Result
    switch ($Stage) {
        1 { Limit-RrValueText -Values $keys -Names @('fileSddl', 'folderSddl') -MaxLength 64 }
        2 {
            foreach ($action in $actions) {
                Limit-RrValueText -Values $action['before'] -Names @() -MaxLength 64
                Limit-RrValueText -Values $action['after'] -Names @() -MaxLength 64
            }
        }
        3 { Limit-RrErrorText -Result $Result -MaxLength 80 }
        4 {
            Limit-RrValueText -Values (Get-RrPropertyValue -InputObject $facts -Name 'os') -Names @('caption') -MaxLength 32
            foreach ($action in $actions) {
                Limit-RrValueText -Values $action -Names @('backup') -MaxLength 128
            }
        }
        5 { Limit-RrEvidenceText -Facts $facts -DetailMaxLength 64 -CipherMaxLength 32 -TextMaxLength 48 }
        6 {
            Limit-RrValueText -Values $keys -Names @('fileSddl', 'folderSddl') -MaxLength 16
            foreach ($action in $actions) {
                Limit-RrValueText -Values $action['before'] -Names @() -MaxLength 16
                Limit-RrValueText -Values $action['after'] -Names @() -MaxLength 16
            }
        }
        7 { Limit-RrErrorText -Result $Result -MaxLength 40 }
        8 { Limit-RrEvidenceText -Facts $facts -DetailMaxLength 16 -CipherMaxLength 16 -TextMaxLength 16 }
        9 {
            Limit-RrValueText -Values $keys -Names @('fileSddl', 'folderSddl') -MaxLength 3
            foreach ($action in $actions) {
                Limit-RrValueText -Values $action['before'] -Names @() -MaxLength 3
                Limit-RrValueText -Values $action['after'] -Names @() -MaxLength 3
            }
            Limit-RrErrorText -Result $Result -MaxLength 3
            Limit-RrEvidenceText -Facts $facts -DetailMaxLength 3 -CipherMaxLength 3 -TextMaxLength 3
            Limit-RrValueText -Values (Get-RrPropertyValue -InputObject $facts -Name 'os') -Names @('caption') -MaxLength 3
        }
        10 {
            foreach ($action in (Get-RrResultActions -Result $Result)) {
                $action['before'] = [ordered]@{}
                $action['after'] = [ordered]@{}
                Limit-RrValueText -Values $action -Names @('backup') -MaxLength 3
            }
        }
        11 {
            foreach ($action in (Get-RrPreviousActions -Result $Result)) {
                $action['before'] = [ordered]@{}
                $action['after'] = [ordered]@{}
            }
        }
        12 {
            $events = Get-RrPropertyValue -InputObject $facts -Name 'events'
            if ($events -is [System.Collections.IDictionary] -and $events.Contains('items')) {
                # The items are newest first: the newest stay.
                $events['items'] = [object[]]@(@($events['items']) | Select-Object -First $script:RrResultLineEventItemsKept)
            }
        }
        13 {
            $events = Get-RrPropertyValue -InputObject $facts -Name 'events'
            if ($events -is [System.Collections.IDictionary] -and $events.Contains('items')) {
                $events['items'] = [object[]]@()
            }
        }
    }
}

function New-RrResultTooLarge {
    param(
        [System.Collections.IDictionary]$Result,
        [int]$MaxBytes
    )
    # Nothing display-only is left to shorten: an explicit failure, never a shorter lie.
    $isFix = ($Result['kind'] -eq 'fix')
    if ($isFix) {
        $failure = New-RrFixResult -RunId ([string]$Result['runId']) -DryRun ([bool]$Result['dryRun'])
        $failure['backupDir'] = $Result['backupDir']
        $where = 'see the manifest in the backup directory.'
        if ([bool]$Result['dryRun']) {
            $where = 'run fewer actions at a time.'
        }
        # A security-lowering change must stay known to the caller, with its restore: those
        # actions are kept (their text already shortened); every other action is left out.
        $kept = New-Object System.Collections.Generic.List[object]
        foreach ($action in (Get-RrResultActions -Result $Result)) {
            if ([bool]$action['changed'] -and $null -ne (Get-RrPropertyValue -InputObject $action -Name 'restore')) {
                $kept.Add($action)
            }
        }
        $failure['actions'] = $kept.ToArray()
        $message = 'The result did not fit in ' + $MaxBytes + ' bytes; actions lists only the security-lowering changes; ' + $where
    }
    else {
        $failure = [ordered]@{ kind = 'probe'; v = 1; ok = $false; runId = [string]$Result['runId'] }
        $message = 'The result did not fit in ' + $MaxBytes + ' bytes.'
    }
    $failure['ok'] = $false
    $failure['error'] = New-RrError -Code 'result-too-large' -Message $message
    $line = ConvertTo-RrJsonLine -InputObject $failure
    if ($isFix -and (Get-RrUtf8Length -Text $line) -gt $MaxBytes) {
        $failure['actions'] = @()
        $line = ConvertTo-RrJsonLine -InputObject $failure
    }
    return $line
}

function ConvertTo-RrResultLine {
    param(
        [System.Collections.IDictionary]$Result,
        [int]$MaxBytes = $script:RrResultLineMaxBytes
    )
    # The result object is shortened in place (see the stages above); the manifest on disk,
    # written before this, keeps the full detail.
    $line = ConvertTo-RrJsonLine -InputObject $Result
    $factsKey = 'facts'
    if ($Result['kind'] -eq 'fix') {
        $factsKey = 'verify'
    }
    for ($stage = 1; $stage -le $script:RrResultLineStages -and (Get-RrUtf8Length -Text $line) -gt $MaxBytes; $stage++) {
        Write-Verbose ('result line too long, shortening display text at stage ' + $stage)
        Limit-RrResultDetail -Result $Result -FactsKey $factsKey -Stage $stage
        $line = ConvertTo-RrJsonLine -InputObject $Result
    }
    if ((Get-RrUtf8Length -Text $line) -gt $MaxBytes) {
        $line = New-RrResultTooLarge -Result $Result -MaxBytes $MaxBytes
    }
    return $line
}
