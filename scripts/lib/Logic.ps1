# ---------------------------------------------------------------------------------------
# lib/Logic.ps1: decisions of the rdp-remediator payloads.
#
# Facts, SDDL evaluation, the repair actions, the fix driver and the result line, as
# docs/payload-contract.md describes them. Windows is reached only through the functions
# of lib/Access.ps1, so that a test double of that file can drive everything here.
# Windows PowerShell 5.1 syntax, Set-StrictMode -Version 3.0.
# ---------------------------------------------------------------------------------------

# The allow-list of action ids; the same list, in the same order, as src/contract/actions.ts.
$script:RrActionIds = @(
    'enable-tls12-server',
    'repair-key-acl',
    'remove-stale-cert-binding',
    'regenerate-self-signed-cert',
    'disable-nla',
    'relax-security-layer',
    'restore-rdp-security',
    'restart-rdp-services'
)

$script:RrTerminalServerKey = 'HKLM\SYSTEM\CurrentControlSet\Control\Terminal Server'
$script:RrWinStationsKey = 'HKLM\SYSTEM\CurrentControlSet\Control\Terminal Server\WinStations'
$script:RrRdpTcpKey = 'HKLM\SYSTEM\CurrentControlSet\Control\Terminal Server\WinStations\RDP-Tcp'
$script:RrTls12Key = 'HKLM\SYSTEM\CurrentControlSet\Control\SecurityProviders\SCHANNEL\Protocols\TLS 1.2'
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

$script:RrSidSystem = '*S-1-5-18'
$script:RrSidNetworkService = '*S-1-5-20'
$script:RrSidAdministrators = '*S-1-5-32-544'
# The Windows default for MachineKeys: Everyone may list and add keys (this folder only),
# Administrators full control; protected, so nothing inherits from Crypto\RSA.
$script:RrMachineKeysFolderDacl = 'D:PAI(A;;0x12019f;;;WD)(A;;FA;;;BA)'

# Run Command keeps the last 4,096 bytes of stdout, and the console ends the line with CRLF.
$script:RrResultLineMaxBytes = 4096 - 2
$script:RrMessageMaxLength = 400
$script:RrCertificateWaitSeconds = 30
$script:RrServiceWaitSeconds = 60
$script:RrPollSeconds = 2

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

function Copy-RrValues {
    param([System.Collections.IDictionary]$Values)
    $copy = [ordered]@{}
    foreach ($key in @($Values.Keys)) {
        $copy[$key] = $Values[$key]
    }
    return $copy
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

function Get-RrRdpFacts {
    $security = Get-RrRdpSecuritySettings
    $port = Get-RrRdpPort
    return [ordered]@{
        securityLayer       = [int]$security['securityLayer']
        userAuthentication  = [int]$security['userAuthentication']
        minEncryptionLevel  = Get-RrDwordSetting -Path $script:RrRdpTcpKey -Name 'MinEncryptionLevel' -Default 2 -Minimum 1 -Maximum 4
        portNumber          = [int]$port
        listening           = Test-RrListening -Port $port
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

function Get-RrFacts {
    $tsSetting = Read-RrTsGeneralSetting
    return [ordered]@{
        os          = Get-RrOsFacts
        cert        = Get-RrCertFacts -TsSetting $tsSetting
        keys        = Get-RrKeyFacts
        rdp         = Get-RrRdpFacts
        policy      = Get-RrPolicyFacts -TsSetting $tsSetting
        tls12Server = Get-RrTls12ServerState
        services    = Get-RrServiceFacts
        domain      = Get-RrDomainFacts
        rdcb        = Test-RrBrokerInstalled
    }
}

# ==== Actions: shared parts ================================================================

function New-RrActionResult {
    param([string]$Id)
    return [ordered]@{
        id       = $Id
        changed  = $false
        before   = [ordered]@{}
        after    = [ordered]@{}
        backup   = $null
        verified = $false
        error    = $null
    }
}

function New-RrError {
    param(
        [string]$Code,
        [string]$Message
    )
    return [ordered]@{ code = $Code; message = (Limit-RrText -Text $Message -MaxLength $script:RrMessageMaxLength) }
}

function Set-RrActionError {
    param(
        [System.Collections.IDictionary]$Result,
        [string]$Code,
        [string]$Message
    )
    $Result['error'] = New-RrError -Code $Code -Message $Message
    return $Result
}

function Complete-RrRefused {
    param(
        [System.Collections.IDictionary]$Result,
        [string]$Code,
        [string]$Message
    )
    # A precondition failed: nothing was touched, so after is before.
    $Result['after'] = Copy-RrValues -Values $Result['before']
    return (Set-RrActionError -Result $Result -Code $Code -Message $Message)
}

function Complete-RrUnchanged {
    param(
        [hashtable]$Context,
        [System.Collections.IDictionary]$Result
    )
    # The target state already holds: nothing to back up or change. Dry runs verify nothing.
    $Result['after'] = Copy-RrValues -Values $Result['before']
    $Result['verified'] = -not [bool]$Context['DryRun']
    return $Result
}

function Get-RrBackupPath {
    param(
        [hashtable]$Context,
        [string]$FileName
    )
    return (Join-RrPath -Parent $Context['BackupDir'] -Child $FileName)
}

function Backup-RrRegistryKey {
    param(
        [hashtable]$Context,
        [string]$KeyPath,
        [string]$FileName
    )
    # Several actions back up RDP-Tcp: the first export of a run is the state before the
    # run, which is the one worth restoring, so a later action keeps it.
    $file = Get-RrBackupPath -Context $Context -FileName $FileName
    if ([bool](Test-RrPath -Path $file)) {
        return $file
    }
    $export = Export-RrRegistryKey -Path $KeyPath -File $file
    if ($export.ExitCode -ne 0) {
        throw ('reg export of ' + $KeyPath + ' failed with exit code ' + $export.ExitCode + ': ' + $export.Output)
    }
    return $file
}

function Write-RrBackupNote {
    param(
        [hashtable]$Context,
        [string]$FileName,
        [System.Collections.IDictionary]$Note
    )
    $file = Get-RrBackupPath -Context $Context -FileName $FileName
    if (-not [bool](Test-RrPath -Path $file)) {
        Write-RrTextFile -Path $file -Text (ConvertTo-Json -InputObject $Note -Depth 5) | Out-Null
    }
    return $file
}

function Assert-RrNativeSuccess {
    param(
        [object]$NativeResult,
        [string]$What
    )
    if ($NativeResult.ExitCode -ne 0) {
        throw ($What + ' failed with exit code ' + $NativeResult.ExitCode + ': ' + $NativeResult.Output)
    }
}

function New-RrRestore {
    param(
        [string]$SecurityLayer,
        [string]$UserAuthentication
    )
    return [ordered]@{
        action     = 'restore-rdp-security'
        parameters = [ordered]@{ RestoreSecurityLayer = $SecurityLayer; RestoreUserAuthentication = $UserAuthentication }
    }
}

function Get-RrPolicyNow {
    return (Get-RrPolicyFacts -TsSetting (Read-RrTsGeneralSetting))
}

# ==== Actions ==============================================================================

function Invoke-RrEnableTls12Server {
    param(
        [hashtable]$Context,
        [System.Collections.IDictionary]$Result = (New-RrActionResult -Id 'enable-tls12-server')
    )
    $state = Get-RrTls12ServerState
    $Result['before'] = [ordered]@{ tls12Server = $state }
    if ($state -eq 'enabled') {
        return (Complete-RrUnchanged -Context $Context -Result $Result)
    }
    $Result['after'] = [ordered]@{ tls12Server = 'enabled' }
    if ($Context['DryRun']) {
        return $Result
    }

    if ([bool](Test-RrRegistryKey -Path $script:RrTls12Key)) {
        $Result['backup'] = Backup-RrRegistryKey -Context $Context -KeyPath $script:RrTls12Key -FileName 'schannel-tls12.reg'
    }
    else {
        # Nothing to export; the note tells the admin that undoing means deleting the key.
        $note = [ordered]@{
            key     = $script:RrTls12Key
            existed = $false
            undo    = 'reg delete "' + $script:RrTls12Key + '" /f'
        }
        $Result['backup'] = Write-RrBackupNote -Context $Context -FileName 'schannel-tls12.json' -Note $note
    }

    $Result['changed'] = $true
    Set-RrRegistryValue -Path $script:RrTls12ServerKey -Name 'Enabled' -Value 1 -Kind 'DWord' | Out-Null
    Set-RrRegistryValue -Path $script:RrTls12ServerKey -Name 'DisabledByDefault' -Value 0 -Kind 'DWord' | Out-Null

    $after = Get-RrTls12ServerState
    $Result['after'] = [ordered]@{ tls12Server = $after }
    $Result['verified'] = ($after -eq 'enabled')
    return $Result
}

function Get-RrPlannedKeyFileSddl {
    param([string]$Sddl)
    # What icacls /setowner + /grant would leave: owner Administrators, the two ACEs added.
    $grants = '(A;;FA;;;SY)(A;;FR;;;NS)'
    if ([string]::IsNullOrEmpty($Sddl)) {
        return ('O:BAD:' + $grants)
    }
    $withOwner = [regex]::Replace($Sddl, '^O:[^:]*?(?=[GDS]:)', 'O:BA')
    if ($withOwner -notmatch '^O:') {
        $withOwner = 'O:BA' + $withOwner
    }
    if ($withOwner -match 'D:') {
        $daclPattern = New-Object System.Text.RegularExpressions.Regex -ArgumentList '(D:[A-Z_]*(?:\([^)]*\))*)'
        return $daclPattern.Replace($withOwner, ('$1' + $grants), 1)
    }
    return ($withOwner + 'D:' + $grants)
}

function Invoke-RrRepairKeyAcl {
    param(
        [hashtable]$Context,
        [System.Collections.IDictionary]$Result = (New-RrActionResult -Id 'repair-key-acl')
    )
    $folder = Get-RrMachineKeysFolder
    $file = Get-RrKeyFilePath
    $keys = Get-RrKeyFacts
    $Result['before'] = [ordered]@{ fileSddl = $keys['fileSddl']; folderSddl = $keys['folderSddl'] }
    $folderNeedsRepair = -not $keys['folderOk']
    # A missing key file is regenerate-self-signed-cert's business.
    $fileNeedsRepair = ($keys['file'] -eq 'present' -and -not $keys['fileOk'])
    if (-not $folderNeedsRepair -and -not $fileNeedsRepair) {
        return (Complete-RrUnchanged -Context $Context -Result $Result)
    }

    $plannedFolder = $keys['folderSddl']
    if ($folderNeedsRepair) {
        $plannedFolder = $script:RrMachineKeysFolderDacl
    }
    $plannedFile = $keys['fileSddl']
    if ($fileNeedsRepair) {
        $plannedFile = Get-RrPlannedKeyFileSddl -Sddl $keys['fileSddl']
    }
    $Result['after'] = [ordered]@{ fileSddl = $plannedFile; folderSddl = $plannedFolder }
    if ($Context['DryRun']) {
        return $Result
    }

    $backup = Get-RrBackupPath -Context $Context -FileName 'machinekeys.acl'
    if (-not [bool](Test-RrPath -Path $backup)) {
        $save = Invoke-RrIcaclsSave -Path $folder -File $backup
        # With /c icacls carries on past files it cannot read and reports that in its exit
        # code; the saved file still holds the folder and the key file, which is what changes.
        if ($save.ExitCode -ne 0 -and -not [bool](Test-RrPath -Path $backup)) {
            throw ('icacls /save of ' + $folder + ' failed with exit code ' + $save.ExitCode + ': ' + $save.Output)
        }
    }
    $Result['backup'] = $backup

    $Result['changed'] = $true
    if ($folderNeedsRepair) {
        Set-RrSddl -Path $folder -Sddl $script:RrMachineKeysFolderDacl | Out-Null
    }
    if ($fileNeedsRepair) {
        # Administrators as owner first: the owner may rewrite the DACL whatever it says.
        Assert-RrNativeSuccess -NativeResult (Invoke-RrIcaclsSetOwner -Path $file -Owner $script:RrSidAdministrators) -What 'icacls /setowner'
        $grants = @(($script:RrSidSystem + ':(F)'), ($script:RrSidNetworkService + ':(R)'))
        Assert-RrNativeSuccess -NativeResult (Invoke-RrIcaclsGrant -Path $file -Grant $grants) -What 'icacls /grant'
    }

    $after = Get-RrKeyFacts
    $Result['after'] = [ordered]@{ fileSddl = $after['fileSddl']; folderSddl = $after['folderSddl'] }
    $Result['verified'] = ([bool]$after['folderOk'] -and ($after['file'] -eq 'missing' -or [bool]$after['fileOk']))
    return $Result
}

function Get-RrStaleBindingReason {
    param(
        [string]$HashHex,
        [datetime]$Now
    )
    # Why the bound certificate cannot serve RDP, or null when it can.
    if ($HashHex -cnotmatch '^[0-9A-F]{40}$') {
        return 'the value is not a SHA-1 thumbprint'
    }
    $certificate = Find-RrCertificate -StoreName $script:RrPersonalStoreName -Thumbprint $HashHex
    if ($null -eq $certificate) {
        return 'no such certificate in LocalMachine\My'
    }
    if ((ConvertTo-RrUtc -Date $certificate.NotAfter) -le $Now) {
        return 'the certificate expired'
    }
    if (-not [bool]$certificate.HasPrivateKey) {
        return 'the certificate has no private key'
    }
    return $null
}

function Invoke-RrRemoveStaleCertBinding {
    param(
        [hashtable]$Context,
        [System.Collections.IDictionary]$Result = (New-RrActionResult -Id 'remove-stale-cert-binding')
    )
    $hash = Get-RrBindingHashHex
    $Result['before'] = [ordered]@{ hash = $hash }
    if ($null -eq $hash) {
        return (Complete-RrUnchanged -Context $Context -Result $Result)
    }
    if (Test-RrBrokerInstalled) {
        return (Complete-RrRefused -Result $Result -Code 'rdcb-installed' -Message 'The RD Connection Broker role manages the listener certificate; the binding is left alone.')
    }
    $reason = Get-RrStaleBindingReason -HashHex $hash -Now (ConvertTo-RrUtc -Date (Get-RrNow))
    if ($null -eq $reason) {
        return (Complete-RrRefused -Result $Result -Code 'not-applicable' -Message ('The bound certificate ' + $hash + ' is in LocalMachine\My, unexpired and has a private key.'))
    }
    Write-Verbose ('binding ' + $hash + ' is stale: ' + $reason)
    $Result['after'] = [ordered]@{ hash = $null }
    if ($Context['DryRun']) {
        return $Result
    }

    $Result['backup'] = Backup-RrRegistryKey -Context $Context -KeyPath $script:RrRdpTcpKey -FileName 'rdp-tcp.reg'
    $Result['changed'] = $true
    # Only the value goes; the certificate stays in LocalMachine\My.
    Remove-RrRegistryValue -Path $script:RrRdpTcpKey -Name 'SSLCertificateSHA1Hash' | Out-Null

    $after = Get-RrBindingHashHex
    $Result['after'] = [ordered]@{ hash = $after }
    $Result['verified'] = ($null -eq $after)
    return $Result
}

function Test-RrUsableSelfSigned {
    param(
        [object]$Certificate,
        [datetime]$Now,
        [bool]$KeyFilePresent
    )
    # HasPrivateKey only says the certificate names a key container; without the
    # f686... file in MachineKeys that container is gone, so the key is too.
    return ([bool](Test-RrSelfSignedCertificate -Certificate $Certificate) -and
        [bool]$Certificate.HasPrivateKey -and
        $KeyFilePresent -and
        (ConvertTo-RrUtc -Date $Certificate.NotAfter) -gt $Now)
}

function Test-RrRemovableCertificate {
    param(
        [object]$Certificate,
        [datetime]$Now,
        [bool]$KeyFilePresent
    )
    # Only what Windows itself issued and can issue again: self-signed, not from a template,
    # and expired or without a usable key.
    if (-not [bool](Test-RrSelfSignedCertificate -Certificate $Certificate)) {
        return $false
    }
    if ([bool](Test-RrTemplateCertificate -Certificate $Certificate)) {
        return $false
    }
    $expired = ((ConvertTo-RrUtc -Date $Certificate.NotAfter) -le $Now)
    $keyless = (-not [bool]$Certificate.HasPrivateKey -or -not $KeyFilePresent)
    return ($expired -or $keyless)
}

function Get-RrRdpCertificateState {
    # The Remote Desktop store as the regenerate action sees it.
    $now = ConvertTo-RrUtc -Date (Get-RrNow)
    # Without a MachineGuid the key file cannot be named; unknown is not missing.
    $keyFile = Get-RrKeyFilePath
    $keyFilePresent = $true
    if ($null -ne $keyFile) {
        $keyFilePresent = [bool](Test-RrPath -Path $keyFile)
    }
    $certificates = @(Get-RrStoreCertificates -StoreName $script:RrRdpStoreName)
    $newestSelfSigned = $null
    $usable = $null
    foreach ($certificate in $certificates) {
        # Template certificates are GPO auto-enrolment's; this action neither counts nor removes them.
        if (-not [bool](Test-RrSelfSignedCertificate -Certificate $certificate) -or [bool](Test-RrTemplateCertificate -Certificate $certificate)) {
            continue
        }
        if ($null -eq $newestSelfSigned) {
            $newestSelfSigned = $certificate
        }
        if ($null -eq $usable -and (Test-RrUsableSelfSigned -Certificate $certificate -Now $now -KeyFilePresent $keyFilePresent)) {
            $usable = $certificate
        }
    }
    $removable = New-Object System.Collections.Generic.List[object]
    foreach ($certificate in $certificates) {
        if (Test-RrRemovableCertificate -Certificate $certificate -Now $now -KeyFilePresent $keyFilePresent) {
            $removable.Add($certificate)
        }
    }
    return [pscustomobject]@{
        NewestSelfSigned = $newestSelfSigned
        Usable           = $usable
        Removable        = $removable.ToArray()
    }
}

function ConvertTo-RrCertValues {
    param([object]$Certificate)
    if ($null -eq $Certificate) {
        return [ordered]@{ thumb = $null; notAfter = $null }
    }
    return [ordered]@{
        thumb    = ([string]$Certificate.Thumbprint).ToUpperInvariant()
        notAfter = Format-RrDate -Date $Certificate.NotAfter
    }
}

function Invoke-RrRegenerateSelfSignedCert {
    param(
        [hashtable]$Context,
        [System.Collections.IDictionary]$Result = (New-RrActionResult -Id 'regenerate-self-signed-cert')
    )
    $state = Get-RrRdpCertificateState
    $Result['before'] = ConvertTo-RrCertValues -Certificate $state.NewestSelfSigned
    if ($null -ne $state.Usable) {
        $Result['before'] = ConvertTo-RrCertValues -Certificate $state.Usable
        return (Complete-RrUnchanged -Context $Context -Result $Result)
    }
    $policy = Get-RrPolicyNow
    if ($policy['certTemplate']) {
        return (Complete-RrRefused -Result $Result -Code 'gpo-template' -Message 'Group Policy names a certificate template (CertTemplateName); the listener certificate comes from auto-enrolment.')
    }
    # The new certificate's thumbprint is not known before Windows issues it.
    $Result['after'] = [ordered]@{ thumb = $null; notAfter = $null }
    if ($Context['DryRun']) {
        return $Result
    }

    $backups = New-Object System.Collections.Generic.List[string]
    foreach ($certificate in $state.Removable) {
        $thumb = ([string]$certificate.Thumbprint).ToUpperInvariant()
        $file = Get-RrBackupPath -Context $Context -FileName ('rdp-' + $thumb + '.cer')
        Export-RrCertificate -StoreName $script:RrRdpStoreName -Thumbprint $thumb -File $file | Out-Null
        $backups.Add($file)
    }
    if ($backups.Count -gt 0) {
        $Result['backup'] = [string]::Join(';', $backups.ToArray())
    }

    $Result['changed'] = $true
    foreach ($certificate in $state.Removable) {
        $thumb = ([string]$certificate.Thumbprint).ToUpperInvariant()
        Remove-RrCertificate -StoreName $script:RrRdpStoreName -Thumbprint $thumb | Out-Null
    }
    # SessionEnv issues the self-signed certificate when it starts and finds none usable.
    Restart-RrService -Name 'SessionEnv' -Force | Out-Null

    $attempts = [int][Math]::Ceiling($script:RrCertificateWaitSeconds / $script:RrPollSeconds)
    $current = Get-RrRdpCertificateState
    for ($attempt = 0; $attempt -lt $attempts -and $null -eq $current.Usable; $attempt++) {
        Start-RrSleep -Seconds $script:RrPollSeconds | Out-Null
        $current = Get-RrRdpCertificateState
    }
    if ($null -ne $current.Usable) {
        $Result['after'] = ConvertTo-RrCertValues -Certificate $current.Usable
        $Result['verified'] = $true
    }
    else {
        $Result['after'] = ConvertTo-RrCertValues -Certificate $current.NewestSelfSigned
        Set-RrActionError -Result $Result -Code 'timeout' -Message ('No usable self-signed certificate appeared in the Remote Desktop store within ' + $script:RrCertificateWaitSeconds + ' s of restarting SessionEnv.') | Out-Null
    }
    return $Result
}

function Get-RrRdpServiceValues {
    return [ordered]@{
        TermService  = Get-RrServiceState -Name 'TermService'
        UmRdpService = Get-RrServiceState -Name 'UmRdpService'
    }
}

function Invoke-RrRestartRdpServices {
    param(
        [hashtable]$Context,
        [System.Collections.IDictionary]$Result = (New-RrActionResult -Id 'restart-rdp-services')
    )
    $before = Get-RrRdpServiceValues
    $Result['before'] = $before
    $port = Get-RrRdpPort
    $healthy = ($before['TermService'] -eq 'Running' -and $before['UmRdpService'] -eq 'Running' -and (Test-RrListening -Port $port))
    # A restart is what makes TermService take up a certificate or TLS change made earlier
    # in this run; with no such change and everything running there is nothing to do.
    if ($healthy -and -not [bool]$Context['ChangedSoFar']) {
        return (Complete-RrUnchanged -Context $Context -Result $Result)
    }
    $Result['after'] = [ordered]@{ TermService = 'Running'; UmRdpService = 'Running' }
    if ($Context['DryRun']) {
        return $Result
    }

    $Result['changed'] = $true
    # -Force: UmRdpService depends on TermService and is stopped with it.
    Restart-RrService -Name 'TermService' -Force | Out-Null
    try {
        Start-RrService -Name 'UmRdpService' | Out-Null
    }
    catch {
        # TermService may still be starting; the loop below starts UmRdpService again.
        Write-Verbose ('UmRdpService did not start yet: ' + $_.Exception.Message)
    }

    $attempts = [int][Math]::Ceiling($script:RrServiceWaitSeconds / $script:RrPollSeconds)
    $verified = $false
    $current = $before
    for ($attempt = 0; $attempt -le $attempts; $attempt++) {
        $current = Get-RrRdpServiceValues
        if ($current['TermService'] -eq 'Running' -and $current['UmRdpService'] -eq 'Stopped') {
            Start-RrService -Name 'UmRdpService' | Out-Null
            $current = Get-RrRdpServiceValues
        }
        if ($current['TermService'] -eq 'Running' -and $current['UmRdpService'] -eq 'Running' -and (Test-RrListening -Port $port)) {
            $verified = $true
            break
        }
        if ($attempt -lt $attempts) {
            Start-RrSleep -Seconds $script:RrPollSeconds | Out-Null
        }
    }
    $Result['after'] = $current
    $Result['verified'] = $verified
    if (-not $verified) {
        Set-RrActionError -Result $Result -Code 'timeout' -Message ('TermService and UmRdpService were not both running with port ' + $port + ' listening within ' + $script:RrServiceWaitSeconds + ' s.') | Out-Null
    }
    return $Result
}

function Set-RrRdpSecurity {
    param(
        [object]$SecurityLayer,
        [object]$UserAuthentication
    )
    # Order matters in between: the RDP security layer (0) cannot carry NLA, so NLA goes off
    # before the layer drops, and the layer rises before NLA comes back on.
    $raiseNla = ($null -ne $UserAuthentication -and [int]$UserAuthentication -ne 0)
    if ($raiseNla) {
        if ($null -ne $SecurityLayer) {
            Set-RrRegistryValue -Path $script:RrRdpTcpKey -Name 'SecurityLayer' -Value ([int]$SecurityLayer) -Kind 'DWord' | Out-Null
        }
        Set-RrRegistryValue -Path $script:RrRdpTcpKey -Name 'UserAuthentication' -Value ([int]$UserAuthentication) -Kind 'DWord' | Out-Null
    }
    else {
        if ($null -ne $UserAuthentication) {
            Set-RrRegistryValue -Path $script:RrRdpTcpKey -Name 'UserAuthentication' -Value ([int]$UserAuthentication) -Kind 'DWord' | Out-Null
        }
        if ($null -ne $SecurityLayer) {
            Set-RrRegistryValue -Path $script:RrRdpTcpKey -Name 'SecurityLayer' -Value ([int]$SecurityLayer) -Kind 'DWord' | Out-Null
        }
    }
}

function Invoke-RrDisableNla {
    param(
        [hashtable]$Context,
        [System.Collections.IDictionary]$Result = (New-RrActionResult -Id 'disable-nla')
    )
    $current = Get-RrRdpSecuritySettings
    $Result['before'] = [ordered]@{ userAuthentication = [int]$current['userAuthentication'] }
    $policy = Get-RrPolicyNow
    if ($policy['userAuthentication']) {
        return (Complete-RrRefused -Result $Result -Code 'gpo-enforced' -Message 'Group Policy sets UserAuthentication (NLA); a local change would be overwritten.')
    }
    if ([int]$current['userAuthentication'] -eq 0) {
        return (Complete-RrUnchanged -Context $Context -Result $Result)
    }
    $Result['after'] = [ordered]@{ userAuthentication = 0 }
    if ($Context['DryRun']) {
        return $Result
    }

    $Result['backup'] = Backup-RrRegistryKey -Context $Context -KeyPath $script:RrRdpTcpKey -FileName 'rdp-tcp.reg'
    $Result['changed'] = $true
    $Result['restore'] = New-RrRestore -SecurityLayer '' -UserAuthentication ([string]$current['userAuthentication'])
    Set-RrRdpSecurity -SecurityLayer $null -UserAuthentication 0 | Out-Null

    $after = Get-RrRdpSecuritySettings
    $Result['after'] = [ordered]@{ userAuthentication = [int]$after['userAuthentication'] }
    $Result['verified'] = ([int]$after['userAuthentication'] -eq 0)
    return $Result
}

function Invoke-RrRelaxSecurityLayer {
    param(
        [hashtable]$Context,
        [System.Collections.IDictionary]$Result = (New-RrActionResult -Id 'relax-security-layer')
    )
    $current = Get-RrRdpSecuritySettings
    $Result['before'] = [ordered]@{ securityLayer = [int]$current['securityLayer']; userAuthentication = [int]$current['userAuthentication'] }
    $policy = Get-RrPolicyNow
    if ($policy['securityLayer'] -or $policy['userAuthentication']) {
        return (Complete-RrRefused -Result $Result -Code 'gpo-enforced' -Message 'Group Policy sets SecurityLayer or UserAuthentication; a local change would be overwritten.')
    }
    if ([int]$current['securityLayer'] -eq 0 -and [int]$current['userAuthentication'] -eq 0) {
        return (Complete-RrUnchanged -Context $Context -Result $Result)
    }
    $Result['after'] = [ordered]@{ securityLayer = 0; userAuthentication = 0 }
    if ($Context['DryRun']) {
        return $Result
    }

    $Result['backup'] = Backup-RrRegistryKey -Context $Context -KeyPath $script:RrRdpTcpKey -FileName 'rdp-tcp.reg'
    $Result['changed'] = $true
    $Result['restore'] = New-RrRestore -SecurityLayer ([string]$current['securityLayer']) -UserAuthentication ([string]$current['userAuthentication'])
    Set-RrRdpSecurity -SecurityLayer 0 -UserAuthentication 0 | Out-Null

    $after = Get-RrRdpSecuritySettings
    $Result['after'] = [ordered]@{ securityLayer = [int]$after['securityLayer']; userAuthentication = [int]$after['userAuthentication'] }
    $Result['verified'] = ([int]$after['securityLayer'] -eq 0 -and [int]$after['userAuthentication'] -eq 0)
    return $Result
}

function Invoke-RrRestoreRdpSecurity {
    param(
        [hashtable]$Context,
        [System.Collections.IDictionary]$Result = (New-RrActionResult -Id 'restore-rdp-security')
    )
    $wantedSecurityLayer = [string]$Context['RestoreSecurityLayer']
    $wantedUserAuthentication = [string]$Context['RestoreUserAuthentication']
    $current = Get-RrRdpSecuritySettings
    $Result['before'] = [ordered]@{ securityLayer = [int]$current['securityLayer']; userAuthentication = [int]$current['userAuthentication'] }
    $policy = Get-RrPolicyNow
    if (($wantedSecurityLayer -ne '' -and $policy['securityLayer']) -or ($wantedUserAuthentication -ne '' -and $policy['userAuthentication'])) {
        return (Complete-RrRefused -Result $Result -Code 'gpo-enforced' -Message 'Group Policy sets a value this restore would write; a local change would be overwritten.')
    }

    $targetSecurityLayer = [int]$current['securityLayer']
    $setSecurityLayer = $null
    if ($wantedSecurityLayer -ne '') {
        $targetSecurityLayer = [int]$wantedSecurityLayer
        if ($targetSecurityLayer -ne [int]$current['securityLayer']) {
            $setSecurityLayer = $targetSecurityLayer
        }
    }
    $targetUserAuthentication = [int]$current['userAuthentication']
    $setUserAuthentication = $null
    if ($wantedUserAuthentication -ne '') {
        $targetUserAuthentication = [int]$wantedUserAuthentication
        if ($targetUserAuthentication -ne [int]$current['userAuthentication']) {
            $setUserAuthentication = $targetUserAuthentication
        }
    }
    if ($null -eq $setSecurityLayer -and $null -eq $setUserAuthentication) {
        return (Complete-RrUnchanged -Context $Context -Result $Result)
    }
    $Result['after'] = [ordered]@{ securityLayer = $targetSecurityLayer; userAuthentication = $targetUserAuthentication }
    if ($Context['DryRun']) {
        return $Result
    }

    $Result['backup'] = Backup-RrRegistryKey -Context $Context -KeyPath $script:RrRdpTcpKey -FileName 'rdp-tcp.reg'
    $Result['changed'] = $true
    Set-RrRdpSecurity -SecurityLayer $setSecurityLayer -UserAuthentication $setUserAuthentication | Out-Null

    $after = Get-RrRdpSecuritySettings
    $Result['after'] = [ordered]@{ securityLayer = [int]$after['securityLayer']; userAuthentication = [int]$after['userAuthentication'] }
    $Result['verified'] = ([int]$after['securityLayer'] -eq $targetSecurityLayer -and [int]$after['userAuthentication'] -eq $targetUserAuthentication)
    return $Result
}

function Invoke-RrAction {
    param(
        [string]$Id,
        [hashtable]$Context,
        [System.Collections.IDictionary]$Result
    )
    switch -CaseSensitive ($Id) {
        'enable-tls12-server' { return (Invoke-RrEnableTls12Server -Context $Context -Result $Result) }
        'repair-key-acl' { return (Invoke-RrRepairKeyAcl -Context $Context -Result $Result) }
        'remove-stale-cert-binding' { return (Invoke-RrRemoveStaleCertBinding -Context $Context -Result $Result) }
        'regenerate-self-signed-cert' { return (Invoke-RrRegenerateSelfSignedCert -Context $Context -Result $Result) }
        'restart-rdp-services' { return (Invoke-RrRestartRdpServices -Context $Context -Result $Result) }
        'disable-nla' { return (Invoke-RrDisableNla -Context $Context -Result $Result) }
        'relax-security-layer' { return (Invoke-RrRelaxSecurityLayer -Context $Context -Result $Result) }
        'restore-rdp-security' { return (Invoke-RrRestoreRdpSecurity -Context $Context -Result $Result) }
    }
    throw ('Unknown action id: ' + $Id)
}

# ==== Parameters ===========================================================================

function Get-RrRunIdProblem {
    param([string]$RunId)
    # param() validation is case-insensitive and skips absent parameters; this is not.
    if ($RunId -cnotmatch '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$') {
        return 'RunId must be a lower-case GUID'
    }
    return $null
}

function Get-RrFixParameterProblem {
    param(
        [string]$RunId,
        [string]$Actions,
        [string]$DryRun,
        [string]$RestoreSecurityLayer,
        [string]$RestoreUserAuthentication
    )
    $runIdProblem = Get-RrRunIdProblem -RunId $RunId
    if ($null -ne $runIdProblem) {
        return $runIdProblem
    }
    if ($Actions -cnotmatch '^[a-z0-9-]+(,[a-z0-9-]+)*$') {
        return 'Actions must be a comma-separated list of action ids'
    }
    foreach ($id in $Actions.Split(',')) {
        if ($script:RrActionIds -cnotcontains $id) {
            return ('Unknown action id: ' + $id)
        }
    }
    if ($DryRun -cne 'true' -and $DryRun -cne 'false') {
        return "DryRun must be 'true' or 'false'"
    }
    if (@('', '0', '1', '2') -cnotcontains $RestoreSecurityLayer) {
        return "RestoreSecurityLayer must be '', '0', '1' or '2'"
    }
    if (@('', '0', '1') -cnotcontains $RestoreUserAuthentication) {
        return "RestoreUserAuthentication must be '', '0' or '1'"
    }
    return $null
}

# ==== Payloads =============================================================================

function Invoke-RrProbe {
    param([string]$RunId)
    $problem = Get-RrRunIdProblem -RunId $RunId
    if ($null -ne $problem) {
        return [ordered]@{ kind = 'probe'; v = 1; ok = $false; runId = [string]$RunId; error = (New-RrError -Code 'invalid-parameters' -Message $problem) }
    }
    try {
        $facts = Get-RrFacts
    }
    catch {
        return [ordered]@{ kind = 'probe'; v = 1; ok = $false; runId = $RunId; error = (New-RrError -Code 'exception' -Message $_.Exception.Message) }
    }
    return [ordered]@{ kind = 'probe'; v = 1; ok = $true; runId = $RunId; facts = $facts }
}

function New-RrFixResult {
    param(
        [string]$RunId,
        [bool]$DryRun
    )
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

function Write-RrManifest {
    param(
        [string]$Path,
        [string]$RunId,
        [object[]]$Actions
    )
    # Everything needed to undo the run by hand, next to the backups it names.
    $entries = New-Object System.Collections.Generic.List[object]
    foreach ($action in $Actions) {
        $entries.Add([ordered]@{
                id       = $action['id']
                changed  = $action['changed']
                before   = $action['before']
                after    = $action['after']
                backup   = $action['backup']
                restore  = Get-RrPropertyValue -InputObject $action -Name 'restore'
                verified = $action['verified']
                error    = $action['error']
            })
    }
    $manifest = [ordered]@{
        kind      = 'rdp-remediator-fix-manifest'
        v         = 1
        runId     = $RunId
        createdUtc = Format-RrDate -Date (Get-RrNow)
        actions   = $entries.ToArray()
    }
    Write-RrTextFile -Path $Path -Text (ConvertTo-Json -InputObject $manifest -Depth 10) | Out-Null
}

function Invoke-RrFix {
    param(
        [string]$RunId,
        [string]$Actions,
        [string]$DryRun,
        [string]$RestoreSecurityLayer,
        [string]$RestoreUserAuthentication
    )
    $isDryRun = ($DryRun -ceq 'true')
    $result = New-RrFixResult -RunId $RunId -DryRun $isDryRun
    $problem = Get-RrFixParameterProblem -RunId $RunId -Actions $Actions -DryRun $DryRun -RestoreSecurityLayer $RestoreSecurityLayer -RestoreUserAuthentication $RestoreUserAuthentication
    if ($null -ne $problem) {
        $result['ok'] = $false
        $result['error'] = New-RrError -Code 'invalid-parameters' -Message $problem
        return $result
    }

    $backupDir = $null
    if (-not $isDryRun) {
        $backupDir = Join-RrPath -Parent (Join-RrPath -Parent (Get-RrProgramDataPath) -Child 'RdpRemediation') -Child $RunId
        New-RrDirectory -Path $backupDir | Out-Null
        $result['backupDir'] = $backupDir
    }
    $context = @{
        RunId                     = $RunId
        DryRun                    = $isDryRun
        BackupDir                 = $backupDir
        RestoreSecurityLayer      = $RestoreSecurityLayer
        RestoreUserAuthentication = $RestoreUserAuthentication
        ChangedSoFar              = $false
    }

    $actionResults = New-Object System.Collections.Generic.List[object]
    foreach ($id in $Actions.Split(',')) {
        Write-Verbose ('action ' + $id)
        # The driver owns the result object, so whatever an action recorded before it threw
        # (before, backup, changed) survives in the report.
        $actionResult = New-RrActionResult -Id $id
        $actionResults.Add($actionResult)
        $threw = $false
        try {
            Invoke-RrAction -Id $id -Context $context -Result $actionResult | Out-Null
        }
        catch {
            Set-RrActionError -Result $actionResult -Code 'exception' -Message $_.Exception.Message | Out-Null
            $threw = $true
        }
        if ($actionResult['changed']) {
            $context['ChangedSoFar'] = $true
        }
        if ($threw) {
            break
        }
    }
    $result['actions'] = $actionResults.ToArray()

    if (-not $isDryRun) {
        try {
            Write-RrManifest -Path (Join-RrPath -Parent $backupDir -Child 'manifest.json') -RunId $RunId -Actions $result['actions']
        }
        catch {
            $result['ok'] = $false
            $result['error'] = New-RrError -Code 'manifest' -Message ('manifest.json not written: ' + $_.Exception.Message)
        }
    }

    try {
        $result['verify'] = Get-RrFacts
    }
    catch {
        Write-Verbose ('re-reading facts failed: ' + $_.Exception.Message)
        $result['verify'] = $null
    }
    return $result
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

function Limit-RrFactDetail {
    param(
        [System.Collections.IDictionary]$Facts,
        [int]$Stage
    )
    if ($null -eq $Facts) {
        return
    }
    $cert = $Facts['cert']
    if ($Stage -eq 1 -and @($cert['store']).Count -gt 1) {
        $cert['store'] = @(@($cert['store'])[0])
    }
    elseif ($Stage -eq 2) {
        $cert['store'] = @()
    }
    elseif ($Stage -eq 3) {
        $keys = $Facts['keys']
        $keys['folderSddl'] = Limit-RrText -Text $keys['folderSddl'] -MaxLength 64
        if ($null -ne $keys['fileSddl']) {
            $keys['fileSddl'] = Limit-RrText -Text $keys['fileSddl'] -MaxLength 64
        }
    }
}

function Limit-RrActionDetail {
    param(
        [object[]]$Actions,
        [int]$Stage
    )
    foreach ($action in $Actions) {
        if ($Stage -eq 4) {
            foreach ($part in @('before', 'after')) {
                $values = $action[$part]
                foreach ($key in @($values.Keys)) {
                    if ($values[$key] -is [string]) {
                        $values[$key] = Limit-RrText -Text $values[$key] -MaxLength 64
                    }
                }
            }
        }
        elseif ($Stage -eq 5) {
            $action['before'] = [ordered]@{}
            $action['after'] = [ordered]@{}
        }
        elseif ($Stage -eq 6 -and $null -ne $action['error']) {
            $action['error']['message'] = Limit-RrText -Text $action['error']['message'] -MaxLength 80
        }
    }
}

function ConvertTo-RrResultLine {
    param(
        [System.Collections.IDictionary]$Result,
        [int]$MaxBytes = $script:RrResultLineMaxBytes
    )
    # Detail goes in stages, least useful first, until the line fits: certificate list,
    # SDDL text, action before/after, error text, and for a fix the re-read facts. The
    # result object is trimmed in place; the manifest on disk keeps the full detail.
    $line = ConvertTo-RrJsonLine -InputObject $Result
    $isFix = ($Result['kind'] -eq 'fix')
    $factsKey = 'facts'
    if ($isFix) {
        $factsKey = 'verify'
    }
    for ($stage = 1; $stage -le 8 -and (Get-RrUtf8Length -Text $line) -gt $MaxBytes; $stage++) {
        Write-Verbose ('result line too long, trimming at stage ' + $stage)
        if ($stage -le 3) {
            Limit-RrFactDetail -Facts (Get-RrPropertyValue -InputObject $Result -Name $factsKey) -Stage $stage
        }
        elseif ($isFix -and $stage -le 6) {
            Limit-RrActionDetail -Actions $Result['actions'] -Stage $stage
        }
        elseif ($stage -eq 7 -and $null -ne (Get-RrPropertyValue -InputObject $Result -Name 'error')) {
            $Result['error']['message'] = Limit-RrText -Text $Result['error']['message'] -MaxLength 80
        }
        elseif ($stage -eq 8 -and $isFix) {
            $Result['verify'] = $null
        }
        $line = ConvertTo-RrJsonLine -InputObject $Result
    }
    if ((Get-RrUtf8Length -Text $line) -gt $MaxBytes) {
        # Nothing left to drop without lying; say so in a line that certainly fits.
        $message = 'The result did not fit in ' + $MaxBytes + ' bytes; see the manifest in the backup directory.'
        if ($isFix) {
            $failure = New-RrFixResult -RunId ([string]$Result['runId']) -DryRun ([bool]$Result['dryRun'])
            $failure['backupDir'] = $Result['backupDir']
        }
        else {
            $failure = [ordered]@{ kind = 'probe'; v = 1; ok = $false; runId = [string]$Result['runId'] }
        }
        $failure['ok'] = $false
        $failure['error'] = New-RrError -Code 'result-too-large' -Message $message
        $line = ConvertTo-RrJsonLine -InputObject $failure
    }
    return $line
}
