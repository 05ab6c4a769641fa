# ---------------------------------------------------------------------------------------
# emulator/double/WindowsDouble.ps1: the Windows double of the rdp-remediator payloads.
#
# Every function of scripts/lib/Access.Read.ps1 and Access.Write.ps1, and Test-RrRdpHandshake of
# Access.Handshake.ps1 (same names, parameters and output shapes) over the machine state in
# $global:RrDouble.State (emulator/windows-state.ts) instead of Windows. It models Windows, not
# the payloads: case-insensitive paths, ACL inheritance, SYSTEM's access checks, icacls, reg.exe,
# netsh, the service control manager, what TermService and SessionEnv do at start, the firewall's
# stores and the System log. The handshake opens no socket: it asks the emulator's Windows model
# through $global:RrDouble.Ask (the host's oracle channel). README.md next to this file describes
# the contract.
# Dot-sourced at global scope, so it only defines functions, and keeps no script-scope
# variables (a payload calling these functions would look them up in its own script scope).
# Verb-RrDouble<Noun> functions are helpers; every other function replaces an access function.
# PowerShell 7 syntax, Set-StrictMode -Version 3.0 clean.
# ---------------------------------------------------------------------------------------

# ==== State, write log, faults ==============================================================

function Initialize-RrDouble {
    param([Parameter(Mandatory = $true)][System.Collections.IDictionary]$State)
    $global:RrDouble = @{ State = $State; Writes = [System.Collections.Generic.List[object]]::new(); WriteCount = 0 }
}

function Get-RrDoubleState {
    $double = Get-Variable -Name 'RrDouble' -Scope Global -ValueOnly -ErrorAction SilentlyContinue
    if ($null -eq $double -or $null -eq $double['State']) { throw 'The Windows double has no machine state: set $global:RrDouble (Initialize-RrDouble) first.' }
    return $double['State']
}

function Invoke-RrDoubleWrite {
    param([string]$Op, [string]$Target, [scriptblock]$Body)
    # One call of a write function is one write: counted first, and the injected fault fires
    # before anything changes. Every write that gets past the fault is logged, in order, also
    # when Windows refuses it (detail 'failed: ...') or a canned native result answers it.
    $double = $global:RrDouble
    $null = Get-RrDoubleState
    $double['WriteCount'] = $count = [int]$double['WriteCount'] + 1
    $throwAt = $double['State']['faults']['throwAtWrite']
    if ($null -ne $throwAt -and [int]$throwAt -eq $count) { throw "Injected fault at write $count ($Op $Target)" }
    $entry = [pscustomobject]@{ op = $Op; target = $Target; detail = '' }
    $double['Writes'].Add($entry)
    try { & $Body $entry }
    catch { Add-RrDoubleDetail -Entry $entry -Text ('failed: ' + $_.Exception.Message); throw }
}

function Add-RrDoubleDetail {
    param([object]$Entry, [string]$Text)
    if ([string]::IsNullOrEmpty($Entry.detail)) { $Entry.detail = $Text } else { $Entry.detail = $Entry.detail + '; ' + $Text }
}

# ==== Small helpers =========================================================================

function Find-RrDoubleKey {
    param([System.Collections.IDictionary]$Map, [string]$Name)
    # Windows compares registry keys, value names, paths, stores and services case-insensitively;
    # the state's hashtables (from ConvertFrom-Json -AsHashtable) are case-sensitive.
    if ($null -eq $Map) { return $null }
    foreach ($key in $Map.Keys) {
        if ([string]::Equals([string]$key, $Name, [System.StringComparison]::OrdinalIgnoreCase)) { return [string]$key }
    }
    return $null
}

function Get-RrDoubleItem {
    param([System.Collections.IDictionary]$Map, [string]$Name)
    $key = Find-RrDoubleKey -Map $Map -Name $Name
    if ($null -ne $key) { return , $Map[$key] }
}

function Get-RrDoubleBelow {
    param([System.Collections.IDictionary]$Map, [string]$Path)
    # The keys of a files or registry map that lie below a path, shallowest first.
    $prefix = $Path.TrimEnd('\') + '\'
    return @($Map.Keys | Where-Object { ([string]$_).StartsWith($prefix, [System.StringComparison]::OrdinalIgnoreCase) } | Sort-Object { ([string]$_).Split('\').Count }, { $_ })
}

function ConvertFrom-RrDoubleDate {
    param([string]$Text)
    return [datetime]::Parse($Text, [System.Globalization.CultureInfo]::InvariantCulture, [System.Globalization.DateTimeStyles]'AdjustToUniversal, AssumeUniversal')
}

function ConvertTo-RrDoubleDate {
    param([datetime]$Date)
    # The schema's ISO form: UTC with Z, fractional seconds only when there are any.
    return $Date.ToUniversalTime().ToString("yyyy-MM-dd'T'HH:mm:ss.FFFFFFF'Z'", [System.Globalization.CultureInfo]::InvariantCulture)
}

function New-RrDoubleNativeResult { param([int]$ExitCode, [string]$Output) return [pscustomobject]@{ ExitCode = $ExitCode; Output = $Output } }

function Get-RrDoubleKnownPath {
    param([string]$Name)
    $paths = @{
        TerminalServer = 'HKLM\SYSTEM\CurrentControlSet\Control\Terminal Server'
        RdpTcp         = 'HKLM\SYSTEM\CurrentControlSet\Control\Terminal Server\WinStations\RDP-Tcp'
        TsPolicy       = 'HKLM\SOFTWARE\Policies\Microsoft\Windows NT\Terminal Services'
        Tls12Server    = 'HKLM\SYSTEM\CurrentControlSet\Control\SecurityProviders\SCHANNEL\Protocols\TLS 1.2\Server'
        KeyFilePrefix  = 'f686aace6942fb7f7ceb231212eef4a4_'
        # What a directory without a modelled parent inherits from (ProgramData's DACL).
        DefaultParent  = 'O:SYG:SYD:(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)'
        # SYSTEM's token default DACL, for an object whose parent passes nothing on.
        TokenDefault   = 'O:SYG:SYD:(A;;FA;;;SY)(A;;0x1200a9;;;BA)'
        # What the crypto provider gives a new machine key file (explicit, not inherited).
        NewKeyFile     = 'O:SYG:SYD:(A;;FA;;;SY)(A;;FA;;;BA)(A;;FR;;;NS)'
        # What the firewall's tools answer while the firewall service cannot be reached.
        FirewallUnavailable = 'An error occurred while attempting to contact the Windows Defender Firewall service. Make sure that the service is running and try your request again.'
    }
    return $paths[$Name]
}

# ==== SDDL ==================================================================================

function ConvertTo-RrDoubleSid {
    param([string]$Sid)
    # Windows prints well-known SIDs as their SDDL aliases.
    $aliases = @{ 'S-1-5-18' = 'SY'; 'S-1-5-20' = 'NS'; 'S-1-5-19' = 'LS'; 'S-1-5-32-544' = 'BA'; 'S-1-5-32-545' = 'BU'; 'S-1-1-0' = 'WD'; 'S-1-5-11' = 'AU'; 'S-1-3-0' = 'CO' }
    $upper = $Sid.Trim().ToUpperInvariant()
    if ($aliases.ContainsKey($upper)) { return $aliases[$upper] }
    return $upper
}

function ConvertTo-RrDoubleMask {
    param([string]$Rights)
    # Same codes as Facts.ps1's table; generic rights mean the file rights they map to.
    $codes = @{ FA = 0x1F01FF; FR = 0x120089; FW = 0x120116; FX = 0x1200A0; GA = 0x1F01FF; GR = 0x120089; GW = 0x120116; GX = 0x1200A0
        RC = 0x20000; SD = 0x10000; WD = 0x40000; WO = 0x80000; CC = 0x1; DC = 0x2; LC = 0x4; SW = 0x8; RP = 0x10; WP = 0x20; DT = 0x40; LO = 0x80; CR = 0x100 }
    [int64]$mask = 0
    if ($Rights -match '^0[xX][0-9A-Fa-f]+$') { $mask = [Convert]::ToInt64($Rights.Substring(2), 16) }
    elseif ($Rights -match '^[0-9]+$') { $mask = [int64]$Rights }
    else {
        for ($i = 0; $i + 1 -lt $Rights.Length; $i += 2) {
            $code = $Rights.Substring($i, 2).ToUpperInvariant()
            if ($codes.ContainsKey($code)) { $mask = $mask -bor [int64]$codes[$code] }
        }
        return $mask
    }
    foreach ($pair in @(@(0x10000000, 0x1F01FF), @(0x20000000, 0x1200A0), @(0x40000000, 0x120116), @(2147483648, 0x120089))) {
        if (($mask -band [int64]$pair[0]) -ne 0) { $mask = ($mask -bxor [int64]$pair[0]) -bor [int64]$pair[1] }
    }
    return $mask
}

function Format-RrDoubleMask {
    param([int64]$Mask)
    if ($Mask -eq 0x1F01FF) { return 'FA' }
    if ($Mask -eq 0x120089) { return 'FR' }
    return ('0x{0:x}' -f $Mask)
}

function ConvertFrom-RrDoubleSddl {
    param([string]$Sddl)
    $invalid = 'The SDDL form of a security descriptor object is invalid.'
    $match = [regex]::Match([string]$Sddl, '^(?:O:(?<o>.+?)(?=G:|D:|S:|$))?(?:G:(?<g>.+?)(?=D:|S:|$))?(?:(?<d>D:)(?<df>(?:P|AI|AR|NO_ACCESS_CONTROL)*)(?<aces>(?:\([^)]*\))*))?(?<rest>S:.*)?$')
    if (-not $match.Success) { throw $invalid }
    $flags = $match.Groups['df'].Value
    $sd = [pscustomobject]@{
        Owner = $null; Group = $null; DaclPresent = $match.Groups['d'].Success
        Protected = $false; AutoInheritReq = $flags.Contains('AR'); AutoInherited = $flags.Contains('AI')
        NullDacl = $flags.Contains('NO_ACCESS_CONTROL'); Aces = [System.Collections.Generic.List[object]]::new()
        Rest = $match.Groups['rest'].Value
    }
    $sd.Protected = ($flags.Replace('NO_ACCESS_CONTROL', '') -replace 'AI|AR', '').Contains('P')
    if ($match.Groups['o'].Success) { $sd.Owner = ConvertTo-RrDoubleSid -Sid $match.Groups['o'].Value }
    if ($match.Groups['g'].Success) { $sd.Group = ConvertTo-RrDoubleSid -Sid $match.Groups['g'].Value }
    foreach ($aceMatch in [regex]::Matches($match.Groups['aces'].Value, '\(([^)]*)\)')) {
        $fields = $aceMatch.Groups[1].Value.Split(';')
        if ($fields.Length -ne 6 -or $fields[1] -notmatch '^(?:OI|CI|NP|IO|ID|SA|FA)*$') { throw $invalid }
        $sd.Aces.Add([pscustomobject]@{ Type = $fields[0].ToUpperInvariant(); Flags = [string[]]@([regex]::Matches($fields[1].ToUpperInvariant(), '..') | ForEach-Object { $_.Value })
                Rights = $fields[2]; ObjectGuid = $fields[3]; InheritGuid = $fields[4]; Sid = ConvertTo-RrDoubleSid -Sid $fields[5] })
    }
    return $sd
}

function ConvertTo-RrDoubleSddl {
    param([object]$Sd)
    # Normalised as Windows prints it: aliases for well-known SIDs, flags in a fixed order;
    # rights are kept as written (FA and 0x1f01ff both appear in real output).
    $text = ''
    if ($null -ne $Sd.Owner) { $text += 'O:' + $Sd.Owner }
    if ($null -ne $Sd.Group) { $text += 'G:' + $Sd.Group }
    if ($Sd.DaclPresent) {
        $text += 'D:' + ('', 'P')[[int]$Sd.Protected] + ('', 'AR')[[int]$Sd.AutoInheritReq] + ('', 'AI')[[int]$Sd.AutoInherited] + ('', 'NO_ACCESS_CONTROL')[[int]$Sd.NullDacl]
        foreach ($ace in $Sd.Aces) {
            $flags = (@('OI', 'CI', 'NP', 'IO', 'ID', 'SA', 'FA') | Where-Object { $ace.Flags -contains $_ }) -join ''
            $text += '({0};{1};{2};{3};{4};{5})' -f $ace.Type, $flags, $ace.Rights, $ace.ObjectGuid, $ace.InheritGuid, $ace.Sid
        }
    }
    return $text + $Sd.Rest
}

function Test-RrDoubleSystemAccess {
    param([string]$Sddl, [int64]$Desired)
    # The payloads run as SYSTEM, whose token also holds Administrators, Everyone and
    # Authenticated Users. The owner gets READ_CONTROL and WRITE_DAC whatever the DACL says;
    # otherwise an allow ACE must grant each right and no deny ACE may take it.
    $sd = ConvertFrom-RrDoubleSddl -Sddl $Sddl
    $token = @('SY', 'BA', 'WD', 'AU')
    if ($token[0..1] -contains $sd.Owner) { $Desired = $Desired -band (-bnot [int64]0x60000) }
    if ($Desired -eq 0 -or -not $sd.DaclPresent -or $sd.NullDacl) { return $true }
    [int64]$allowed = 0; [int64]$denied = 0
    foreach ($ace in $sd.Aces) {
        if ($ace.Flags -contains 'IO' -or $token -notcontains $ace.Sid) { continue }
        $mask = ConvertTo-RrDoubleMask -Rights $ace.Rights
        if ($ace.Type -eq 'A') { $allowed = $allowed -bor $mask } elseif ($ace.Type -eq 'D') { $denied = $denied -bor $mask }
    }
    return ((($allowed -band $Desired) -eq $Desired) -and (($denied -band $Desired) -eq 0))
}

function Get-RrDoubleInheritedAce {
    param([object]$ParentSd, [bool]$IsContainer)
    # What a child gets from its parent's inheritable ACEs: OI reaches files and (as
    # inherit-only, to pass it on) directories, CI reaches directories; NP stops after this
    # child; the parent's IO does not carry over; every inherited ACE is flagged ID.
    foreach ($ace in $ParentSd.Aces) {
        $oi = $ace.Flags -contains 'OI'; $ci = $ace.Flags -contains 'CI'; $np = $ace.Flags -contains 'NP'
        $flags = $null
        if (-not $IsContainer) { if ($oi) { $flags = @('ID') } }
        elseif ($ci) { if ($np) { $flags = @('ID') } elseif ($oi) { $flags = @('OI', 'CI', 'ID') } else { $flags = @('CI', 'ID') } }
        elseif ($oi -and -not $np) { $flags = @('OI', 'IO', 'ID') }
        if ($null -ne $flags) { [pscustomobject]@{ Type = $ace.Type; Flags = $flags; Rights = $ace.Rights; ObjectGuid = $ace.ObjectGuid; InheritGuid = $ace.InheritGuid; Sid = $ace.Sid } }
    }
}

function New-RrDoubleInheritedSddl {
    param([string]$ParentSddl, [bool]$IsContainer)
    # A new object created by SYSTEM: owner SYSTEM, the parent's inheritable ACEs, or the
    # token's default DACL when the parent passes nothing on.
    $aces = @(Get-RrDoubleInheritedAce -ParentSd (ConvertFrom-RrDoubleSddl -Sddl $ParentSddl) -IsContainer $IsContainer)
    if ($aces.Count -eq 0) { return (Get-RrDoubleKnownPath -Name 'TokenDefault') }
    $sd = ConvertFrom-RrDoubleSddl -Sddl 'O:SYG:SYD:AI'
    foreach ($ace in $aces) { $sd.Aces.Add($ace) }
    return (ConvertTo-RrDoubleSddl -Sd $sd)
}

# ==== File system ===========================================================================

function Get-RrDoubleParentPath {
    param([string]$Path)
    $trimmed = $Path.TrimEnd('\'); $index = $trimmed.LastIndexOf('\')
    if ($index -ge 0) { return $trimmed.Substring(0, $index) }
}

function Get-RrDoubleFileEntry { param([string]$Path) return (Get-RrDoubleItem -Map (Get-RrDoubleState)['files'] -Name $Path.TrimEnd('\')) }

function Test-RrDoublePath {
    param([string]$Path)
    # A directory exists once anything below it does (parents are implied); a drive root always.
    $trimmed = $Path.TrimEnd('\')
    if ($trimmed -notmatch '\\') { return $true }
    return ($null -ne (Get-RrDoubleFileEntry -Path $trimmed) -or @(Get-RrDoubleBelow -Map (Get-RrDoubleState)['files'] -Path $trimmed).Count -gt 0)
}

function Get-RrDoubleEffectiveSddl {
    param([string]$Path)
    # An implied directory has what it would have inherited; a root has ProgramData's DACL.
    $entry = Get-RrDoubleFileEntry -Path $Path
    if ($null -ne $entry) { return [string]$entry['sddl'] }
    $parent = Get-RrDoubleParentPath -Path $Path
    if ($null -eq $parent) { return (Get-RrDoubleKnownPath -Name 'DefaultParent') }
    return (New-RrDoubleInheritedSddl -ParentSddl (Get-RrDoubleEffectiveSddl -Path $parent) -IsContainer $true)
}

function Get-RrDoubleMaterialisedEntry {
    param([string]$Path)
    # icacls and Set-Acl on an implied directory: give it an entry holding its effective SDDL.
    $entry = Get-RrDoubleFileEntry -Path $Path
    if ($null -eq $entry) { $entry = [ordered]@{ type = 'directory'; sddl = (Get-RrDoubleEffectiveSddl -Path $Path) }; (Get-RrDoubleState)['files'][$Path.TrimEnd('\')] = $entry }
    return $entry
}

function Test-RrDoubleAclReadable {
    param([string]$Path)
    foreach ($unreadable in @((Get-RrDoubleState)['faults']['unreadableAcls'])) {
        if ([string]::Equals(([string]$unreadable).TrimEnd('\'), $Path.TrimEnd('\'), [System.StringComparison]::OrdinalIgnoreCase)) { return $false }
    }
    return (Test-RrDoubleSystemAccess -Sddl (Get-RrDoubleEffectiveSddl -Path $Path) -Desired 0x20000)
}

function Reset-RrDoubleInheritedAce {
    param([string]$Path)
    # An unprotected DACL drops its inherited (ID) ACEs and takes the inheritable ACEs of its
    # parent again, after its explicit ones. A protected DACL (flag P) is left as it is.
    $entry = Get-RrDoubleFileEntry -Path $Path
    $sd = ConvertFrom-RrDoubleSddl -Sddl ([string]$entry['sddl'])
    $parent = Get-RrDoubleParentPath -Path $Path
    if ($sd.Protected -or -not $sd.DaclPresent -or $sd.NullDacl -or $null -eq $parent) { return $false }
    $aces = [System.Collections.Generic.List[object]]::new()
    foreach ($ace in $sd.Aces) { if ($ace.Flags -notcontains 'ID') { $aces.Add($ace) } }
    $parentSd = ConvertFrom-RrDoubleSddl -Sddl (Get-RrDoubleEffectiveSddl -Path $parent)
    foreach ($ace in @(Get-RrDoubleInheritedAce -ParentSd $parentSd -IsContainer ($entry['type'] -eq 'directory'))) { $aces.Add($ace) }
    $sd.Aces = $aces; $sd.AutoInherited = $true
    $entry['sddl'] = ConvertTo-RrDoubleSddl -Sd $sd
    return $true
}

function Update-RrDoubleInheritance {
    param([string]$Path)
    # What Windows does after a DACL change on a directory: it recomputes the inherited ACEs
    # of everything below, top-down, so grandchildren see their parent's new DACL. Returns
    # how many entries were recomputed.
    return @(Get-RrDoubleBelow -Map (Get-RrDoubleState)['files'] -Path $Path | Where-Object { Reset-RrDoubleInheritedAce -Path $_ }).Count
}

function Set-RrDoubleFileContent {
    param([string]$Path, [string]$Content)
    # A file write: overwriting keeps the file's ACL; a new file needs an existing parent
    # directory on which SYSTEM has FILE_ADD_FILE, and inherits the parent's ACEs.
    $entry = Get-RrDoubleFileEntry -Path $Path
    if ($null -ne $entry -and $entry['type'] -eq 'directory') { throw [System.UnauthorizedAccessException]::new("Access to the path '$Path' is denied.") }
    if ($null -ne $entry) { $entry['content'] = $Content; return 'overwritten' }
    $parent = Get-RrDoubleParentPath -Path $Path
    $parentEntry = if ($null -ne $parent) { Get-RrDoubleFileEntry -Path $parent }
    if ($null -eq $parent -or -not (Test-RrDoublePath -Path $parent) -or ($null -ne $parentEntry -and $parentEntry['type'] -ne 'directory')) {
        throw [System.IO.DirectoryNotFoundException]::new("Could not find a part of the path '$Path'.")
    }
    $parentSddl = Get-RrDoubleEffectiveSddl -Path $parent
    if (-not (Test-RrDoubleSystemAccess -Sddl $parentSddl -Desired 0x2)) { throw [System.UnauthorizedAccessException]::new("Access to the path '$Path' is denied.") }
    (Get-RrDoubleState)['files'][$Path] = [ordered]@{ type = 'file'; sddl = (New-RrDoubleInheritedSddl -ParentSddl $parentSddl -IsContainer $false); content = $Content }
    return 'created'
}

# ==== Registry ==============================================================================

function Get-RrDoubleRegistryKey {
    param([string]$Path, [switch]$Create)
    $null = Get-RrRegistrySubKeyName -Path $Path
    $registry = (Get-RrDoubleState)['registry']
    $key = Get-RrDoubleItem -Map $registry -Name $Path.TrimEnd('\')
    if ($null -eq $key -and $Create) { $key = [ordered]@{}; $registry[$Path.TrimEnd('\')] = $key }
    return $key
}

function Test-RrDoubleRegistryKey {
    param([string]$Path)
    # A key exists when it is in the state or has a subkey there (parents are implied).
    return ($null -ne (Get-RrDoubleRegistryKey -Path $Path) -or @(Get-RrDoubleBelow -Map (Get-RrDoubleState)['registry'] -Path $Path).Count -gt 0)
}

function Format-RrDoubleRegExport {
    param([string]$Path)
    # reg export's text: the key and its subkeys, hive spelled out, CRLF line ends.
    $registry = (Get-RrDoubleState)['registry']
    $lines = [System.Collections.Generic.List[string]]::new()
    $lines.Add('Windows Registry Editor Version 5.00')
    $keys = @(Find-RrDoubleKey -Map $registry -Name $Path.TrimEnd('\')) + @(Get-RrDoubleBelow -Map $registry -Path $Path)
    foreach ($key in ($keys | Where-Object { $_ })) {
        $lines.Add('')
        $lines.Add('[HKEY_LOCAL_MACHINE\' + (Get-RrRegistrySubKeyName -Path $key) + ']')
        foreach ($name in $registry[$key].Keys) {
            $value = $registry[$key][$name]
            $quoted = '"' + ([string]$name).Replace('\', '\\').Replace('"', '\"') + '"'
            if ($name -eq '') { $quoted = '@' }
            switch ([string]$value['kind']) {
                'DWord' { $lines.Add($quoted + '=dword:' + ([int64]$value['value']).ToString('x8')) }
                'String' { $lines.Add($quoted + '="' + ([string]$value['value']).Replace('\', '\\').Replace('"', '\"') + '"') }
                'Binary' { $lines.Add($quoted + '=hex:' + ((@($value['value']) | ForEach-Object { ([int]$_).ToString('x2') }) -join ',')) }
            }
        }
    }
    return (($lines -join "`r`n") + "`r`n")
}

# ==== Services: the service control manager and what the RDP services do at start ==========

function Get-RrDoubleServiceKey {
    param([string]$Name)
    $key = Find-RrDoubleKey -Map (Get-RrDoubleState)['services'] -Name $Name
    if ($null -eq $key) { throw "Cannot find any service with service name '$Name'." }
    return $key
}

function Get-RrDoubleDependant {
    param([string]$Key)
    # Every service that needs this one, directly or through another (the SCM's dependants).
    $services = (Get-RrDoubleState)['services']
    foreach ($name in @($services.Keys)) {
        if (@($services[$name]['dependsOn']) | Where-Object { [string]::Equals([string]$_, $Key, 'OrdinalIgnoreCase') }) {
            $name
            Get-RrDoubleDependant -Key $name
        }
    }
}

function Get-RrDoubleRdpPort {
    param([System.Collections.IDictionary]$RdpTcpKey)
    # TermService listens on PortNumber when it is a DWORD in 1..65535, else on 3389.
    $port = if ($null -ne $RdpTcpKey) { Get-RrDoubleItem -Map $RdpTcpKey -Name 'PortNumber' }
    if ($null -ne $port -and $port['kind'] -eq 'DWord' -and [int64]$port['value'] -ge 1 -and [int64]$port['value'] -le 65535) { return [int]$port['value'] }
    return 3389
}

function Stop-RrDoubleService {
    param([string]$Key, [object]$Entry)
    # ServiceController.Stop: dependants go first (and stay stopped).
    $state = Get-RrDoubleState
    foreach ($dependant in @(Get-RrDoubleDependant -Key $Key)) { Stop-RrDoubleService -Key $dependant -Entry $Entry }
    $service = $state['services'][$Key]
    if ($service['status'] -eq 'Stopped') { return }
    $service['status'] = 'Stopped'; $service['pendingReadsLeft'] = 0
    if ($Key -eq 'TermService') {
        # The listener closes with TermService: the port it loaded, else the configured one.
        $loaded = $null
        if ($null -ne $state['termServiceLoaded']) { $loaded = Get-RrDoubleItem -Map $state['termServiceLoaded']['registry'] -Name (Get-RrDoubleKnownPath -Name 'RdpTcp') }
        if ($null -eq $loaded) { $loaded = Get-RrDoubleRegistryKey -Path (Get-RrDoubleKnownPath -Name 'RdpTcp') }
        $port = Get-RrDoubleRdpPort -RdpTcpKey $loaded
        $state['tcpListeners'] = [object[]]@(@($state['tcpListeners']) | Where-Object { [int]$_ -ne $port })
    }
    Add-RrDoubleDetail -Entry $Entry -Text "stopped $Key"
}

function Start-RrDoubleService {
    param([string]$Key, [object]$Entry)
    # The SCM starts dependencies first; a service already running or starting is left alone.
    $service = (Get-RrDoubleState)['services'][$Key]
    if ($service['status'] -ne 'Stopped') { return }
    foreach ($dependency in @($service['dependsOn'] | Where-Object { $_ })) { Start-RrDoubleService -Key (Get-RrDoubleServiceKey -Name $dependency) -Entry $Entry }
    if ($null -ne $service['startFailure']) { throw [string]$service['startFailure'] }
    $reads = [int]$service['startPendingReads']
    $service['pendingReadsLeft'] = $reads
    $service['status'] = if ($reads -gt 0) { 'StartPending' } else { 'Running' }
    Add-RrDoubleDetail -Entry $Entry -Text "started $Key ($($service['status']))"
    if ($Key -eq 'TermService') { Start-RrDoubleTermService -Entry $Entry }
    if ($Key -eq 'SessionEnv') { Start-RrDoubleSessionEnv -Entry $Entry }
}

function Copy-RrDoubleRegistryKey {
    param([System.Collections.IDictionary]$Key)
    $copy = [ordered]@{}
    foreach ($name in $Key.Keys) {
        $data = $Key[$name]['value']
        if ($data -is [array]) { $data = [object[]]@($data) }
        $copy[$name] = [ordered]@{ kind = [string]$Key[$name]['kind']; value = $data }
    }
    return $copy
}

function Start-RrDoubleTermService {
    param([object]$Entry)
    # TermService reads its configuration once, at start, and runs the listener on it until
    # the next restart; it opens the port unless fDenyTSConnections forbids connections.
    $state = Get-RrDoubleState
    $loaded = [ordered]@{}
    foreach ($path in @('RdpTcp', 'TerminalServer', 'TsPolicy', 'Tls12Server' | ForEach-Object { Get-RrDoubleKnownPath -Name $_ })) {
        if ($null -ne ($key = Get-RrDoubleRegistryKey -Path $path)) { $loaded[$path] = Copy-RrDoubleRegistryKey -Key $key }
    }
    $state['termServiceLoaded'] = [ordered]@{ registry = $loaded }
    $deny = Get-RrDoubleItem -Map (Get-RrDoubleRegistryKey -Path (Get-RrDoubleKnownPath -Name 'TerminalServer')) -Name 'fDenyTSConnections'
    if ($null -ne $deny -and $deny['kind'] -eq 'DWord' -and [int64]$deny['value'] -ne 0) { Add-RrDoubleDetail -Entry $Entry -Text 'TermService: fDenyTSConnections set, no listener'; return }
    $port = Get-RrDoubleRdpPort -RdpTcpKey (Get-RrDoubleRegistryKey -Path (Get-RrDoubleKnownPath -Name 'RdpTcp'))
    if (@($state['tcpListeners']) -notcontains $port) { $state['tcpListeners'] = [object[]](@($state['tcpListeners']) + $port) }
    Add-RrDoubleDetail -Entry $Entry -Text "TermService listening on $port"
}

function Start-RrDoubleSessionEnv {
    param([object]$Entry)
    # SessionEnv issues the RDP self-signed certificate when the Remote Desktop store has no
    # usable one (self-signed, private key, unexpired, key file in MachineKeys). The key
    # container is a new file in MachineKeys, so SYSTEM must be allowed to add a file there.
    $state = Get-RrDoubleState
    $now = Get-RrNow
    $guid = Get-RrMachineGuid
    $keyFile = $null
    if (-not [string]::IsNullOrEmpty($guid)) { $keyFile = (Get-RrProgramDataPath).TrimEnd('\') + '\Microsoft\Crypto\RSA\MachineKeys\' + (Get-RrDoubleKnownPath -Name 'KeyFilePrefix') + $guid }
    $keyPresent = ($null -ne $keyFile -and (Test-RrDoublePath -Path $keyFile))
    foreach ($certificate in @(Get-RrCertificate -StoreName 'Remote Desktop')) {
        if ($certificate.Subject -eq $certificate.Issuer -and $certificate.HasPrivateKey -and $certificate.NotAfter -gt $now -and $keyPresent) { Add-RrDoubleDetail -Entry $Entry -Text 'SessionEnv: usable certificate present'; return }
    }
    $folder = Get-RrDoubleParentPath -Path ([string]$keyFile)
    if ($null -eq $keyFile -or -not (Test-RrDoublePath -Path $folder) -or -not (Test-RrDoubleSystemAccess -Sddl (Get-RrDoubleEffectiveSddl -Path $folder) -Desired 0x2)) {
        Add-RrDoubleDetail -Entry $Entry -Text 'SessionEnv: cannot create a key in MachineKeys, no certificate issued'; return
    }
    if (-not $keyPresent) { $state['files'][$keyFile] = [ordered]@{ type = 'file'; sddl = (Get-RrDoubleKnownPath -Name 'NewKeyFile') } }
    $stores = $state['certificates']
    $storeKey = Find-RrDoubleKey -Map $stores -Name 'Remote Desktop'
    $existing = @()
    if ($null -ne $storeKey) { $existing = @($stores[$storeKey]) } else { $storeKey = 'Remote Desktop' }
    $seed = [System.Text.Encoding]::UTF8.GetBytes("$($state['computerName'])|$(ConvertTo-RrDoubleDate -Date $now)|$($global:RrDouble['WriteCount'])|$($existing.Count)")
    $name = 'CN=' + $state['computerName']
    $certificate = [ordered]@{ thumbprint = [Convert]::ToHexString([System.Security.Cryptography.SHA1]::HashData($seed)); subject = $name; issuer = $name
        notBefore = ConvertTo-RrDoubleDate -Date $now; notAfter = ConvertTo-RrDoubleDate -Date $now.AddDays(182); hasPrivateKey = $true; extensionOids = [object[]]@('2.5.29.37', '2.5.29.15') }
    $stores[$storeKey] = [object[]](@(, $certificate) + $existing)
    Add-RrDoubleDetail -Entry $Entry -Text "SessionEnv: issued certificate $($certificate['thumbprint'])"
}

# ==== Firewall, System log, the loopback handshake ==========================================

function Get-RrDoubleFirewall {
    # The firewall as Get-NetFirewall* sees it: they all fail while it cannot be read.
    $firewall = (Get-RrDoubleState)['firewall']
    if (-not [bool]$firewall['readable']) { throw (Get-RrDoubleKnownPath -Name 'FirewallUnavailable') }
    return $firewall
}

function Find-RrDoubleFirewallRule {
    param([string]$Name, [string]$Store)
    # Rule names compare case-insensitively; each store holds its own rules.
    foreach ($rule in @((Get-RrDoubleFirewall)['rules'])) {
        if ($null -ne $rule -and [string]::Equals([string]$rule['name'], $Name, 'OrdinalIgnoreCase') -and [string]$rule['policyStore'] -eq $Store) { return $rule }
    }
}

function Set-RrDoubleFirewallRuleEnabled {
    param([string]$Op, [string]$Name, [bool]$Enabled)
    Invoke-RrDoubleWrite -Op $Op -Target $Name -Body {
        param($entry)
        # Enable-/Disable-NetFirewallRule act on the local store: a rule that only Group Policy
        # defines is not found there.
        $rule = Find-RrDoubleFirewallRule -Name $Name -Store 'Local'
        if ($null -eq $rule) { throw "No MSFT_NetFirewallRule objects found with property 'Name' equal to '$Name'.  Verify the value of the property and retry." }
        $word = if ($Enabled) { 'enabled' } else { 'disabled' }
        if ([bool]$rule['enabled'] -eq $Enabled) { $entry.detail = "already $word"; return }
        $rule['enabled'] = $Enabled
        $entry.detail = $word
    }
}

function ConvertTo-RrDoubleFirewallProfiles {
    param([string[]]$Profiles)
    # New-NetFirewallRule -Profile: Domain, Private, Public (any case), 'Any' for all three; an
    # empty list is an empty -Profile, which does not convert.
    $known = @('Domain', 'Private', 'Public')
    $wanted = @($Profiles | Where-Object { -not [string]::IsNullOrWhiteSpace($_) })
    if (@($wanted | Where-Object { $_ -eq 'Any' }).Count -gt 0) { return $known }
    if ($wanted.Count -eq 0) { $wanted = @('') }
    foreach ($name in $wanted) { if ($known -notcontains $name) { throw "Cannot convert value `"$name`" to type `"Microsoft.PowerShell.Cmdletization.GeneratedTypes.NetSecurity.Profile`". Specify one of: Any, Domain, Private, Public, NotApplicable." } }
    return @($known | Where-Object { $wanted -contains $_ })
}

function ConvertTo-RrDoubleHandshake {
    param([object]$Answer, [string]$Address, [int]$Port)
    # An answer as the model (camelCase JSON) or a test (either case) gives it, in the shape of
    # Test-RrRdpHandshake: PascalCase, ints or $null, the certificate's NotAfter as a UTC date.
    if ($Answer -is [System.Management.Automation.PSCustomObject]) {
        $map = [ordered]@{}
        foreach ($property in $Answer.psobject.Properties) { $map[$property.Name] = $property.Value }
        $Answer = $map
    }
    if ($Answer -isnot [System.Collections.IDictionary]) { throw "The handshake oracle answered $(if ($null -eq $Answer) { 'nothing' } else { $Answer.GetType().Name }), not a dictionary of the handshake's fields" }
    $field = { param([string]$Name) $key = Find-RrDoubleKey -Map $Answer -Name $Name; if ($null -ne $key) { $Answer[$key] } }
    $number = { param([string]$Name) $value = & $field $Name; if ($null -ne $value) { [int]$value } }
    $text = { param([string]$Name) $value = & $field $Name; if ($null -ne $value) { [string]$value } }
    $failure = & $text 'Error'
    $stage = & $text 'Stage'
    if ($null -eq $stage) { $stage = if ($null -eq $failure) { 'done' } else { 'connect' } }
    $message = & $text 'Message'
    if ($null -ne $message) {
        # One short line, as the real check reports an exception's message.
        $message = ($message -split "`r?`n")[0]
        if ($message.Length -gt 200) { $message = $message.Substring(0, 200) }
    }
    $notAfter = & $field 'CertificateNotAfter'
    if ($notAfter -is [datetime]) { $notAfter = $notAfter.ToUniversalTime() }
    elseif ($null -ne $notAfter) { $notAfter = ConvertFrom-RrDoubleDate -Text ([string]$notAfter) }
    $thumbprint = & $text 'CertificateThumbprint'
    if ($null -ne $thumbprint) { $thumbprint = $thumbprint.ToUpperInvariant() }
    # (PowerShell names are case-insensitive: $Address is the parameter, these are the answer's.)
    $answered = & $text 'Address'; if ($null -eq $answered) { $answered = $Address }
    $answeredPort = & $number 'Port'; if ($null -eq $answeredPort) { $answeredPort = $Port }
    return [pscustomobject]@{
        Address               = $answered
        Port                  = $answeredPort
        Stage                 = $stage
        Error                 = $failure
        Message               = $message
        FailureCode           = & $number 'FailureCode'
        SelectedProtocol      = & $number 'SelectedProtocol'
        TlsVersion            = & $text 'TlsVersion'
        Cipher                = & $text 'Cipher'
        CertificateThumbprint = $thumbprint
        CertificateNotAfter   = $notAfter
        ConnectMs             = & $number 'ConnectMs'
        NegotiateMs           = & $number 'NegotiateMs'
        TlsMs                 = & $number 'TlsMs'
    }
}

function Invoke-RrDoubleNetsh {
    param([string[]]$Argv, [object]$Entry)
    # netsh advfirewall export <file>: the whole policy into one file (binary .wfw on Windows;
    # here a text that names what it holds).
    if ($Argv.Count -lt 3 -or $Argv[0] -ne 'advfirewall' -or $Argv[1] -ne 'export') { return (New-RrDoubleNativeResult -ExitCode 1 -Output ('The following command was not found: ' + ($Argv -join ' ') + '.')) }
    $firewall = (Get-RrDoubleState)['firewall']
    if (-not [bool]$firewall['readable']) { return (New-RrDoubleNativeResult -ExitCode 1 -Output (Get-RrDoubleKnownPath -Name 'FirewallUnavailable')) }
    $content = 'Windows Defender Firewall policy (modelled export) ' + (ConvertTo-Json -InputObject ([ordered]@{ profiles = $firewall['profiles']; rules = @($firewall['rules']) }) -Depth 10 -Compress)
    try { $null = Set-RrDoubleFileContent -Path $Argv[2] -Content $content }
    catch { return (New-RrDoubleNativeResult -ExitCode 1 -Output 'The system cannot find the path specified.') }
    Add-RrDoubleDetail -Entry $Entry -Text "exported $(@($firewall['rules']).Count) rules"
    return (New-RrDoubleNativeResult -ExitCode 0 -Output 'Ok.')
}

# ==== Native commands: icacls, reg.exe, netstat, netsh ======================================

function Invoke-RrDoubleNative {
    param([string]$Op, [string]$FilePath, [string[]]$ArgumentList)
    $program = ($FilePath -split '[\\/]')[-1].ToLowerInvariant()
    if (-not $program.EndsWith('.exe')) { $program += '.exe' }
    $argv = @($ArgumentList)
    if (@('icacls.exe', 'reg.exe', 'netstat.exe', 'netsh.exe') -notcontains $program) { throw "The term '$FilePath' is not recognized as a name of a cmdlet, function, script file, or executable program." }
    # Canned results are keyed by program and the first argument after the path (icacls
    # takes the path first; reg, netstat and netsh take none).
    $verbIndex = if ($program -eq 'icacls.exe') { 1 } else { 0 }
    $verb = if ($argv.Count -gt $verbIndex) { [string]$argv[$verbIndex] } else { '' }
    $canned = Get-RrDoubleItem -Map (Get-RrDoubleState)['nativeResults'] -Name "$program $verb"
    if ($program -eq 'netstat.exe') {
        if ($null -ne $canned) { return (New-RrDoubleNativeResult -ExitCode $canned['exitCode'] -Output $canned['output']) }
        $rows = @((Get-RrDoubleState)['tcpListeners'] | ForEach-Object { '  TCP    0.0.0.0:{0,-16} 0.0.0.0:0              LISTENING       1000' -f $_ })
        return (New-RrDoubleNativeResult -ExitCode 0 -Output ((@('Active Connections', '', '  Proto  Local Address          Foreign Address        State           PID') + $rows) -join "`n"))
    }
    # The write log names what changes: the saved or exported file, else the path or key.
    $targetIndex = if ($verb -eq '/save' -or $verb -eq 'export' -or $program -eq 'netsh.exe') { 2 } elseif ($program -eq 'reg.exe') { 1 } else { 0 }
    $target = [string](@($argv) + @('', '', ''))[$targetIndex]
    Invoke-RrDoubleWrite -Op $Op -Target $target -Body {
        param($entry)
        if ($null -ne $canned) {
            $entry.detail = "canned result of $program $verb, exit $($canned['exitCode'])"
            return (New-RrDoubleNativeResult -ExitCode $canned['exitCode'] -Output $canned['output'])
        }
        if ($program -eq 'icacls.exe') { $result = Invoke-RrDoubleIcacls -Argv $argv -Entry $entry }
        elseif ($program -eq 'netsh.exe') { $result = Invoke-RrDoubleNetsh -Argv $argv -Entry $entry }
        elseif ($verb -eq 'export' -and $argv.Count -ge 3) { $result = Invoke-RrDoubleRegExport -Key $argv[1] -File $argv[2] -Entry $entry }
        else { $result = New-RrDoubleNativeResult -ExitCode 1 -Output 'ERROR: Invalid syntax.' }
        Add-RrDoubleDetail -Entry $entry -Text "exit $($result.ExitCode)"
        return $result
    }
}

function Invoke-RrDoubleRegExport {
    param([string]$Key, [string]$File, [object]$Entry)
    if (-not (Test-RrDoubleRegistryKey -Path $Key)) { return (New-RrDoubleNativeResult -ExitCode 1 -Output 'ERROR: The system was unable to find the specified registry key or value.') }
    try { $null = Set-RrDoubleFileContent -Path $File -Content (Format-RrDoubleRegExport -Path $Key) }
    catch { return (New-RrDoubleNativeResult -ExitCode 1 -Output ('ERROR: ' + $_.Exception.Message)) }
    Add-RrDoubleDetail -Entry $Entry -Text "exported $Key"
    return (New-RrDoubleNativeResult -ExitCode 0 -Output 'The operation completed successfully.')
}

function ConvertFrom-RrDoubleIcaclsGrant {
    param([string]$Grant)
    # '*SID:(F)', '*SID:(OI)(CI)(R)', '*SID:F': simple rights only, as the payloads use them.
    $rights = @{ F = 0x1F01FF; M = 0x1301BF; RX = 0x1200A9; R = 0x120089; W = 0x100116 }
    if ($Grant -notmatch '^(?<who>[^:]+):(?<perm>.+)$') { return $null }
    $who = $Matches['who']; $perm = $Matches['perm']
    $tokens = @([regex]::Matches($perm, '\(([^)]*)\)') | ForEach-Object { $_.Groups[1].Value.ToUpperInvariant() })
    if ($tokens.Count -eq 0) { $tokens = @($perm.ToUpperInvariant()) }
    $flags = @($tokens | Where-Object { @('OI', 'CI', 'IO', 'NP') -contains $_ })
    $right = @($tokens | Where-Object { $rights.ContainsKey($_) })
    if ($right.Count -ne 1 -or ($flags.Count + 1) -ne $tokens.Count) { return $null }
    # Accounts by SID ('*S-1-5-20'), as the payloads name them; names are not resolved.
    if (-not $who.StartsWith('*')) { return $null }
    return [pscustomobject]@{ Sid = (ConvertTo-RrDoubleSid -Sid $who.Substring(1)); Flags = $flags; Mask = [int64]$rights[$right[0]] }
}

function Invoke-RrDoubleIcacls {
    param([string[]]$Argv, [object]$Entry)
    $path = [string]$Argv[0]
    $verb = ([string]$Argv[1]).ToLowerInvariant()
    if (-not (Test-RrDoublePath -Path $path)) { return (New-RrDoubleNativeResult -ExitCode 2 -Output "${path}: The system cannot find the file specified.`nSuccessfully processed 0 files; Failed processing 1 files") }
    if ($verb -eq '/save') {
        # icacls /save /t /c: the folder and everything below, one name line and one SDDL line
        # each; with /c an ACL it cannot read is reported and skipped, and the exit code says so.
        $files = (Get-RrDoubleState)['files']
        $paths = @($path.TrimEnd('\')) + @(Get-RrDoubleBelow -Map $files -Path $path | Where-Object { $Argv -contains '/t' })
        $saved = [System.Collections.Generic.List[string]]::new(); $messages = [System.Collections.Generic.List[string]]::new(); $failed = 0
        foreach ($item in $paths) {
            if (Test-RrDoubleAclReadable -Path $item) { $saved.Add($item); $saved.Add((Get-RrDoubleEffectiveSddl -Path $item)); $messages.Add("processed file: $item") }
            else { $failed++; $messages.Add("${item}: Access is denied.") }
        }
        try { $null = Set-RrDoubleFileContent -Path $Argv[2] -Content (($saved -join "`r`n") + "`r`n") }
        catch { return (New-RrDoubleNativeResult -ExitCode 3 -Output ('The system cannot find the path specified: ' + $Argv[2])) }
        Add-RrDoubleDetail -Entry $Entry -Text "saved ACLs of $($saved.Count / 2) entries below $path"
        $messages.Add("Successfully processed $($paths.Count - $failed) files; Failed processing $failed files")
        return (New-RrDoubleNativeResult -ExitCode $(if ($failed -gt 0) { 5 } else { 0 }) -Output ($messages -join "`n"))
    }
    $sd = ConvertFrom-RrDoubleSddl -Sddl (Get-RrDoubleEffectiveSddl -Path $path)
    if ($verb -eq '/setowner') {
        # SYSTEM holds SeTakeOwnershipPrivilege and SeRestorePrivilege: it may set the owner
        # whatever the DACL says.
        $sd.Owner = if (([string]$Argv[2]).StartsWith('*')) { ConvertTo-RrDoubleSid -Sid ([string]$Argv[2]).Substring(1) }
        if ($null -eq $sd.Owner) { return (New-RrDoubleNativeResult -ExitCode 1332 -Output "$($Argv[2]): No mapping between account names and security IDs was done.") }
        Add-RrDoubleDetail -Entry $Entry -Text "owner $($sd.Owner)"
    }
    elseif ($verb -eq '/grant') {
        $grants = @($Argv | Select-Object -Skip 2 | ForEach-Object { ConvertFrom-RrDoubleIcaclsGrant -Grant $_ })
        if ($grants.Count -eq 0 -or $grants -contains $null) { return (New-RrDoubleNativeResult -ExitCode 87 -Output 'Invalid parameter') }
        # Rewriting the DACL needs WRITE_DAC (the owner SY or BA has it implicitly).
        if (-not (Test-RrDoubleSystemAccess -Sddl (Get-RrDoubleEffectiveSddl -Path $path) -Desired 0x40000)) { return (New-RrDoubleNativeResult -ExitCode 5 -Output "${path}: Access is denied.`nSuccessfully processed 0 files; Failed processing 1 files") }
        foreach ($grant in $grants) {
            # /grant adds the rights to an explicit allow ACE of the SID with the same
            # inheritance, or adds one after the explicit ACEs (explicit before inherited).
            $flagKey = (@($grant.Flags) | Sort-Object) -join ''
            $existing = $sd.Aces | Where-Object { $_.Type -eq 'A' -and $_.Sid -eq $grant.Sid -and $_.Flags -notcontains 'ID' -and ((@($_.Flags) | Sort-Object) -join '') -eq $flagKey } | Select-Object -First 1
            if ($null -ne $existing) { $existing.Rights = Format-RrDoubleMask -Mask ((ConvertTo-RrDoubleMask -Rights $existing.Rights) -bor $grant.Mask) }
            else { $sd.Aces.Insert(@($sd.Aces | Where-Object { $_.Flags -notcontains 'ID' }).Count, [pscustomobject]@{ Type = 'A'; Flags = @($grant.Flags); Rights = (Format-RrDoubleMask -Mask $grant.Mask); ObjectGuid = ''; InheritGuid = ''; Sid = $grant.Sid }) }
        }
        $sd.DaclPresent = $true
        Add-RrDoubleDetail -Entry $Entry -Text ('granted ' + (($Argv | Select-Object -Skip 2) -join ' '))
    }
    else { return (New-RrDoubleNativeResult -ExitCode 87 -Output "Invalid parameter `"$($Argv[1])`"") }
    $item = Get-RrDoubleMaterialisedEntry -Path $path
    $item['sddl'] = ConvertTo-RrDoubleSddl -Sd $sd
    if ($verb -eq '/grant' -and $item['type'] -eq 'directory') { Add-RrDoubleDetail -Entry $Entry -Text "$(Update-RrDoubleInheritance -Path $path) entries below re-inherited" }
    return (New-RrDoubleNativeResult -ExitCode 0 -Output "processed file: $path`nSuccessfully processed 1 files; Failed processing 0 files")
}

# ==== Access layer: plumbing (Access.Read.ps1) ==============================================

function Get-RrHklmBaseKey {
    # A token for the 64-bit HKLM view; the double's registry lives in the state.
    return [pscustomobject]@{ Hive = 'HKLM'; View = 'Registry64' }
}

function Get-RrRegistrySubKeyName {
    param([string]$Path)
    if ($Path -match '^HKLM\\(.+)$') { return $Matches[1] }
    throw "Registry path must start with HKLM\: '$Path'"
}

function Invoke-RrNativeCommand {
    param([string]$FilePath, [string[]]$ArgumentList)
    # icacls, reg and netstat as modelled below; any other program is not found.
    return (Invoke-RrDoubleNative -Op 'Invoke-RrNativeCommand' -FilePath $FilePath -ArgumentList $ArgumentList)
}

# ==== Access layer: reads (Access.Read.ps1) =================================================

function Get-RrRegistryValue {
    param([string]$Path, [string]$Name)
    $key = Get-RrDoubleRegistryKey -Path $Path
    $value = if ($null -ne $key) { Get-RrDoubleItem -Map $key -Name $Name }
    if ($null -eq $value) { return $null }
    switch ([string]$value['kind']) {
        # RegistryKey.GetValue returns a DWORD as a signed Int32.
        'DWord' { $number = [int64]$value['value']; if ($number -gt [int]::MaxValue) { $number -= 4294967296 }; return [int]$number }
        'String' { return [string]$value['value'] }
        # The comma keeps a REG_BINARY value one byte[] instead of unrolling it.
        'Binary' { return , [byte[]]@($value['value']) }
    }
    throw "Registry value $Path\$Name has an unknown kind '$($value['kind'])'"
}

function Test-RrRegistryKey { param([string]$Path) return (Test-RrDoubleRegistryKey -Path $Path) }

function Get-RrCertificate {
    param([string]$StoreName)
    $store = Get-RrDoubleItem -Map (Get-RrDoubleState)['certificates'] -Name $StoreName
    if ($null -eq $store) { return }
    foreach ($certificate in @($store)) {
        [pscustomobject]@{
            Thumbprint    = [string]$certificate['thumbprint']
            NotAfter      = ConvertFrom-RrDoubleDate -Text $certificate['notAfter']
            HasPrivateKey = [bool]$certificate['hasPrivateKey']
            Subject       = [string]$certificate['subject']
            Issuer        = [string]$certificate['issuer']
            ExtensionOids = [string[]]@($certificate['extensionOids'])
        }
    }
}

function Get-RrSddl {
    param([string]$Path)
    # Get-Acl needs READ_CONTROL; without it Windows answers with UnauthorizedAccessException.
    if (-not (Test-RrDoublePath -Path $Path)) { throw [System.Management.Automation.ItemNotFoundException]::new("Cannot find path '$Path' because it does not exist.") }
    if (-not (Test-RrDoubleAclReadable -Path $Path)) { throw [System.UnauthorizedAccessException]::new('Attempted to perform an unauthorized operation.') }
    return [string](Get-RrDoubleEffectiveSddl -Path $Path)
}

function Get-RrServiceStatus {
    param([string]$Name)
    $key = Find-RrDoubleKey -Map (Get-RrDoubleState)['services'] -Name $Name
    if ($null -eq $key) { return $null }
    $service = (Get-RrDoubleState)['services'][$key]
    if ($service['status'] -eq 'StartPending') {
        # startPendingReads status reads see StartPending; the service is Running after them.
        $left = [int]$service['pendingReadsLeft']
        $service['pendingReadsLeft'] = [Math]::Max(0, $left - 1)
        if ($left -le 1) { $service['status'] = 'Running' }
        if ($left -gt 0) { return 'StartPending' }
    }
    return [string]$service['status']
}

function Get-RrTsGeneralSetting {
    param([string]$TerminalName)
    $state = Get-RrDoubleState
    if (-not [bool]$state['wmi']['readable']) { throw 'Get-CimInstance: Invalid class "Win32_TSGeneralSetting" (root\cimv2\TerminalServices)' }
    # The provider has one instance per listener key; the state models RDP-Tcp's.
    $rdpTcp = Get-RrDoubleKnownPath -Name 'RdpTcp'
    if ($TerminalName -ne 'RDP-Tcp' -or -not (Test-RrDoubleRegistryKey -Path $rdpTcp)) { return $null }
    # How Windows reports where the listener certificate comes from: 2 Group Policy template,
    # 3 custom (a bound hash), 1 self-signed (the Remote Desktop store), 0 none yet.
    $type = 0
    if ($null -ne (Get-RrRegistryValue -Path (Get-RrDoubleKnownPath -Name 'TsPolicy') -Name 'CertTemplateName')) { $type = 2 }
    elseif ($null -ne (Get-RrRegistryValue -Path $rdpTcp -Name 'SSLCertificateSHA1Hash')) { $type = 3 }
    elseif (@(Get-RrCertificate -StoreName 'Remote Desktop').Count -gt 0) { $type = 1 }
    return [pscustomobject]@{
        SSLCertificateSHA1HashType             = $type
        PolicySourceSecurityLayer              = [int]$state['wmi']['policySourceSecurityLayer']
        PolicySourceUserAuthenticationRequired = [int]$state['wmi']['policySourceUserAuthenticationRequired']
        PolicySourceMinEncryptionLevel         = [int]$state['wmi']['policySourceMinEncryptionLevel']
    }
}

function Get-RrOsInfo {
    $os = (Get-RrDoubleState)['os']
    return [pscustomobject]@{ Caption = [string]$os['caption']; BuildNumber = [string]$os['buildNumber'] }
}

function Get-RrDomainMembership { return [bool](Get-RrDoubleState)['domain']['partOfDomain'] }

function Test-RrSecureChannel {
    $domain = (Get-RrDoubleState)['domain']
    if (-not [bool]$domain['partOfDomain']) { throw 'Cannot verify the secure channel password for the local computer. Local computer is not joined to a domain.' }
    $channel = $domain['secureChannel']
    if ($channel -is [string]) { throw 'Cannot verify the secure channel for the local computer. Operation failed with the following exception: The specified domain either does not exist or could not be contacted.' }
    return [bool]$channel
}

function Test-RrWindowsFeatureInstalled {
    param([string]$Name)
    # Get-WindowsFeature exists on Server SKUs only.
    $state = Get-RrDoubleState
    if (-not [bool]$state['serverSku']) { return $false }
    return [bool](Get-RrDoubleItem -Map $state['features'] -Name $Name)
}

function Test-RrTcpListener { param([int]$Port) return (@((Get-RrDoubleState)['tcpListeners']) -contains $Port) }

function Get-RrPrimaryIPv4Address {
    $address = (Get-RrDoubleState)['primaryIPv4']
    if ($null -ne $address) { return [string]$address }
    return $null
}

function Get-RrFirewallProfiles {
    $profiles = (Get-RrDoubleFirewall)['profiles']
    foreach ($name in @('Domain', 'Private', 'Public')) { [pscustomobject]@{ Name = $name; Enabled = [bool]$profiles[$name] } }
}

function Get-RrNetworkCategories {
    # Get-NetConnectionProfile, one per connected network (not a firewall cmdlet: it still answers).
    foreach ($category in @((Get-RrDoubleState)['firewall']['networkCategories'])) { if ($null -ne $category) { [string]$category } }
}

function Get-RrFirewallRules {
    param([string]$Direction)
    foreach ($rule in @((Get-RrDoubleFirewall)['rules'])) {
        if ($null -eq $rule -or -not [string]::Equals([string]$rule['direction'], $Direction, 'OrdinalIgnoreCase')) { continue }
        $service = $rule['service']
        [pscustomobject]@{
            Name        = [string]$rule['name']
            DisplayName = [string]$rule['displayName']
            Group       = [string]$rule['group']
            Enabled     = [bool]$rule['enabled']
            Action      = [string]$rule['action']
            Protocol    = [string]$rule['protocol']
            LocalPorts  = [string[]]@($rule['localPorts'])
            Profiles    = [string[]]@($rule['profiles'])
            Service     = $(if ($null -ne $service) { [string]$service } else { $null })
            PolicyStore = [string]$rule['policyStore']
        }
    }
}

function Get-RrSystemEvents {
    param([string]$ProviderName, [int[]]$Ids, [datetime]$StartTime, [int]$MaxEvents)
    # Get-WinEvent -FilterHashtable @{ LogName = 'System'; ProviderName; Id; StartTime } -MaxEvents:
    # newest first; no match is no output (NoMatchingEventsFound is not an error here).
    $log = (Get-RrDoubleState)['events']
    if ($null -eq $log) { throw 'There are no more endpoints available from the endpoint mapper.' }
    $since = if ($StartTime.Kind -eq [System.DateTimeKind]::Local) { $StartTime.ToUniversalTime() } else { $StartTime }
    $index = 0
    $found = foreach ($record in @($log)) {
        $index++
        if ($null -eq $record -or -not [string]::Equals([string]$record['provider'], $ProviderName, 'OrdinalIgnoreCase') -or @($Ids) -notcontains [int]$record['id']) { continue }
        $created = ConvertFrom-RrDoubleDate -Text ([string]$record['timeCreated'])
        if ($created -lt $since) { continue }
        [pscustomobject]@{ Order = $index; Event = [pscustomobject]@{ ProviderName = [string]$record['provider']; Id = [int]$record['id']; TimeCreated = $created; Message = [string]$record['message'] } }
    }
    if ($MaxEvents -lt 1) { return }
    # Newest first; of two at the same time, the one logged later.
    @($found) | Sort-Object -Property @{ Expression = { $_.Event.TimeCreated }; Descending = $true }, @{ Expression = { $_.Order }; Descending = $true } | Select-Object -First $MaxEvents | ForEach-Object { $_.Event }
}

# ==== Access layer: the loopback handshake (Access.Handshake.ps1) ===========================

function Test-RrRdpHandshake {
    param([string]$Address, [int]$Port, [int]$TimeoutMilliseconds)
    # No socket is opened. In the emulator the answer is the Windows model's (rdpHandshake in
    # emulator/windows.ts), asked through the PowerShell host with the state as it is now; in a
    # test without a host, $global:RrDouble.Handshake (a dictionary of the answer's fields, or a
    # scriptblock param($Address, $Port) returning one); without either, a refused connect.
    $null = Get-RrDoubleState
    $double = $global:RrDouble
    $channel = $double['Ask']
    if ($null -ne $channel) {
        $body = ConvertTo-Json -InputObject ([ordered]@{ state = (Get-RrDoubleState); address = $Address; port = $Port; timeoutMs = $TimeoutMilliseconds }) -Depth 30 -Compress
        try { $reply = $channel.Ask('rdp-handshake', $body) }
        catch {
            $e = $_.Exception
            while ($e -is [System.Management.Automation.MethodInvocationException] -and $null -ne $e.InnerException) { $e = $e.InnerException }
            throw "The emulator's Windows model could not answer the handshake: $($e.Message)"
        }
        return (ConvertTo-RrDoubleHandshake -Answer (ConvertFrom-Json -InputObject $reply -AsHashtable -DateKind String) -Address $Address -Port $Port)
    }
    $canned = $double['Handshake']
    if ($canned -is [scriptblock]) { return (ConvertTo-RrDoubleHandshake -Answer (& $canned $Address $Port) -Address $Address -Port $Port) }
    if ($null -ne $canned) { return (ConvertTo-RrDoubleHandshake -Answer $canned -Address $Address -Port $Port) }
    return (ConvertTo-RrDoubleHandshake -Answer @{ Stage = 'connect'; Error = 'refused'; Message = 'no handshake oracle in this test'; ConnectMs = 0 } -Address $Address -Port $Port)
}

function Get-RrMachineGuid {
    $value = Get-RrRegistryValue -Path 'HKLM\SOFTWARE\Microsoft\Cryptography' -Name 'MachineGuid'
    if ($null -ne $value) { return [string]$value }
}

function Get-RrProgramDataPath { return [string](Get-RrDoubleState)['programData'] }
function Test-RrPath { param([string]$Path) return [bool](Test-RrDoublePath -Path $Path) }

function Get-RrChildFileNames {
    param([string]$Path)
    # Directory.GetFiles: the files directly below (not deeper, not directories); nothing for a
    # missing path or a file. Listing needs FILE_LIST_DIRECTORY (0x1) on the directory.
    $entry = Get-RrDoubleFileEntry -Path $Path
    if (-not (Test-RrDoublePath -Path $Path) -or ($null -ne $entry -and $entry['type'] -ne 'directory')) { return }
    if (-not (Test-RrDoubleSystemAccess -Sddl (Get-RrDoubleEffectiveSddl -Path $Path) -Desired 0x1)) { throw [System.UnauthorizedAccessException]::new("Access to the path '$Path' is denied.") }
    $files = (Get-RrDoubleState)['files']
    $prefixLength = $Path.TrimEnd('\').Length + 1
    foreach ($key in @(Get-RrDoubleBelow -Map $files -Path $Path)) {
        $name = ([string]$key).Substring($prefixLength)
        if (-not $name.Contains('\') -and $files[$key]['type'] -eq 'file') { $name }
    }
}

function Get-RrTextFile {
    param([string]$Path)
    # File.ReadAllText: $null when there is no such file (a directory is not one); reading
    # needs FILE_READ_DATA (0x1). A file modelled by name only reads as empty text.
    $entry = Get-RrDoubleFileEntry -Path $Path
    if ($null -eq $entry -or $entry['type'] -ne 'file') { return $null }
    if (-not (Test-RrDoubleSystemAccess -Sddl ([string]$entry['sddl']) -Desired 0x1)) { throw [System.UnauthorizedAccessException]::new("Access to the path '$Path' is denied.") }
    if (-not $entry.Contains('content') -or $null -eq $entry['content']) { return '' }
    return [string]$entry['content']
}
function Get-RrNow { return (ConvertFrom-RrDoubleDate -Text (Get-RrDoubleState)['now']) }

function Start-RrSleep {
    param([int]$Seconds)
    # The VM's clock moves on; nobody waits.
    (Get-RrDoubleState)['now'] = ConvertTo-RrDoubleDate -Date (Get-RrNow).AddSeconds($Seconds)
}

# ==== Access layer: writes (Access.Write.ps1) ===============================================

function Set-RrRegistryValue {
    param([string]$Path, [string]$Name, [object]$Value, [ValidateSet('DWord', 'String')][string]$Kind = 'DWord')
    Invoke-RrDoubleWrite -Op 'Set-RrRegistryValue' -Target $Path -Body {
        param($entry)
        $null = Get-RrRegistrySubKeyName -Path $Path
        # A DWORD is stored unsigned, as the schema holds it; it reads back as a signed [int].
        if ($Kind -eq 'DWord') { [int64]$data = [int]$Value; if ($data -lt 0) { $data += 4294967296 }; $shown = 'dword:' + $data.ToString('x8') }
        else { $data = [string]$Value; $shown = '"' + $data + '"' }
        # Creating the key (and implied parents) when absent, as RegistryKey.CreateSubKey does.
        $key = Get-RrDoubleRegistryKey -Path $Path -Create
        $valueName = Find-RrDoubleKey -Map $key -Name $Name
        if ($null -eq $valueName) { $valueName = $Name }
        $key[$valueName] = [ordered]@{ kind = $Kind; value = $data }
        $entry.detail = "$Name = $shown"
    }
}

function Remove-RrRegistryValue {
    param([string]$Path, [string]$Name)
    Invoke-RrDoubleWrite -Op 'Remove-RrRegistryValue' -Target $Path -Body {
        param($entry)
        $key = Get-RrDoubleRegistryKey -Path $Path
        $valueName = Find-RrDoubleKey -Map $key -Name $Name
        if ($null -eq $valueName) { $entry.detail = "$Name absent, nothing removed"; return }
        $key.Remove($valueName)
        $entry.detail = "removed $Name"
    }
}

function Export-RrRegistryKey {
    param([string]$Path, [string]$File)
    return (Invoke-RrDoubleNative -Op 'Export-RrRegistryKey' -FilePath 'reg.exe' -ArgumentList @('export', $Path, $File, '/y', '/reg:64'))
}

function Remove-RrCertificate {
    # Certificates elsewhere (LocalMachine\My above all) belong to other services: the layer
    # refuses them even if the logic asked.
    param([ValidateSet('Remote Desktop')][string]$StoreName, [ValidatePattern('^[0-9A-Fa-f]{40}$')][string]$Thumbprint)
    Invoke-RrDoubleWrite -Op 'Remove-RrCertificate' -Target ('Cert:\LocalMachine\' + $StoreName + '\' + $Thumbprint) -Body {
        param($entry)
        # Without -DeleteKey: the certificate goes, its key file in MachineKeys stays.
        $stores = (Get-RrDoubleState)['certificates']
        $storeKey = Find-RrDoubleKey -Map $stores -Name $StoreName
        $all = @(); if ($null -ne $storeKey) { $all = @($stores[$storeKey]) }
        $kept = @($all | Where-Object { -not [string]::Equals([string]$_['thumbprint'], $Thumbprint, 'OrdinalIgnoreCase') })
        if ($kept.Count -eq $all.Count) { throw [System.Management.Automation.ItemNotFoundException]::new("Cannot find path 'Cert:\LocalMachine\$StoreName\$Thumbprint' because it does not exist.") }
        $stores[$storeKey] = [object[]]$kept
        $entry.detail = 'removed certificate'
    }
}

function Export-RrCertificate {
    param([string]$StoreName, [ValidatePattern('^[0-9A-Fa-f]{40}$')][string]$Thumbprint, [string]$File)
    Invoke-RrDoubleWrite -Op 'Export-RrCertificate' -Target $File -Body {
        param($entry)
        $certificate = @(Get-RrCertificate -StoreName $StoreName | Where-Object { [string]::Equals($_.Thumbprint, $Thumbprint, 'OrdinalIgnoreCase') }) | Select-Object -First 1
        if ($null -eq $certificate) { throw [System.Management.Automation.ItemNotFoundException]::new("Cannot find path 'Cert:\LocalMachine\$StoreName\$Thumbprint' because it does not exist.") }
        # The DER bytes are not modelled: the file names the certificate it holds.
        $content = "X.509 certificate (DER, modelled) thumbprint=$($certificate.Thumbprint) subject=$($certificate.Subject) notAfter=$(ConvertTo-RrDoubleDate -Date $certificate.NotAfter)"
        $entry.detail = (Set-RrDoubleFileContent -Path $File -Content $content) + " from $StoreName\$Thumbprint"
    }
}

function Set-RrSddl {
    param([string]$Path, [string]$Sddl)
    Invoke-RrDoubleWrite -Op 'Set-RrSddl' -Target $Path -Body {
        param($entry)
        if (-not (Test-RrDoublePath -Path $Path)) { throw [System.Management.Automation.ItemNotFoundException]::new("Cannot find path '$Path' because it does not exist.") }
        $new = ConvertFrom-RrDoubleSddl -Sddl $Sddl
        if (-not $new.DaclPresent) { throw 'The SDDL form of a security descriptor object is invalid.' }
        if (-not (Test-RrDoubleSystemAccess -Sddl (Get-RrDoubleEffectiveSddl -Path $Path) -Desired 0x40000)) { throw [System.UnauthorizedAccessException]::new('Attempted to perform an unauthorized operation.') }
        $file = Get-RrDoubleMaterialisedEntry -Path $Path
        # Only the DACL is written (owner, group and SACL stay), auto-inherited; an unprotected
        # one then takes the parent's inheritable ACEs again.
        $old = ConvertFrom-RrDoubleSddl -Sddl ([string]$file['sddl'])
        $new.Owner = $old.Owner; $new.Group = $old.Group; $new.Rest = $old.Rest; $new.AutoInherited = $true
        $file['sddl'] = ConvertTo-RrDoubleSddl -Sd $new
        $null = Reset-RrDoubleInheritedAce -Path $Path
        # Then, as Windows does, the inherited ACEs of everything below are recomputed.
        $below = if ($file['type'] -eq 'directory') { Update-RrDoubleInheritance -Path $Path } else { 0 }
        $entry.detail = "DACL set, now $($file['sddl']); $below entries below re-inherited"
    }
}

function Invoke-RrIcaclsSave {
    param([string]$Path, [string]$File)
    return (Invoke-RrDoubleNative -Op 'Invoke-RrIcaclsSave' -FilePath 'icacls.exe' -ArgumentList @($Path, '/save', $File, '/t', '/c'))
}

function Invoke-RrIcaclsGrant {
    # Each grant is '*<SID>:(<rights>)', one argument each.
    param([string]$Path, [string[]]$Grant)
    return (Invoke-RrDoubleNative -Op 'Invoke-RrIcaclsGrant' -FilePath 'icacls.exe' -ArgumentList (@($Path, '/grant') + $Grant))
}

function Invoke-RrIcaclsSetOwner {
    param([string]$Path, [string]$Owner)  # '*<SID>'
    return (Invoke-RrDoubleNative -Op 'Invoke-RrIcaclsSetOwner' -FilePath 'icacls.exe' -ArgumentList @($Path, '/setowner', $Owner))
}

function Restart-RrService {
    # -Force: also stop the services that depend on this one (they are not started again).
    param([string]$Name, [switch]$Force)
    Invoke-RrDoubleWrite -Op 'Restart-RrService' -Target $Name -Body {
        param($entry)
        $key = Get-RrDoubleServiceKey -Name $Name
        $services = (Get-RrDoubleState)['services']
        if ($services[$key]['status'] -ne 'Stopped') {
            $running = @(Get-RrDoubleDependant -Key $key | Where-Object { $services[$_]['status'] -ne 'Stopped' })
            if ($running.Count -gt 0 -and -not $Force) { throw "Service $Name has running dependent services; restarting it needs -Force" }
            Stop-RrDoubleService -Key $key -Entry $entry
        }
        Start-RrDoubleService -Key $key -Entry $entry
    }
}

function Start-RrService {
    param([string]$Name)
    Invoke-RrDoubleWrite -Op 'Start-RrService' -Target $Name -Body {
        param($entry)
        $key = Get-RrDoubleServiceKey -Name $Name
        $status = (Get-RrDoubleState)['services'][$key]['status']
        if ($status -ne 'Stopped') { $entry.detail = "already $status"; return }
        Start-RrDoubleService -Key $key -Entry $entry
    }
}

function New-RrDirectory {
    param([string]$Path)
    Invoke-RrDoubleWrite -Op 'New-RrDirectory' -Target $Path -Body {
        param($entry)
        $existing = Get-RrDoubleFileEntry -Path $Path
        if ($null -ne $existing -and $existing['type'] -ne 'directory') { throw [System.IO.IOException]::new("An item with the specified name $Path already exists.") }
        if ($null -ne $existing) { $entry.detail = 'exists'; return }
        # New-Item -Force creates missing parents; here they are implied by the new entry.
        # The directory inherits from its nearest modelled ancestor (else ProgramData's DACL).
        $parentSddl = Get-RrDoubleEffectiveSddl -Path ([string](Get-RrDoubleParentPath -Path $Path))
        (Get-RrDoubleState)['files'][$Path.TrimEnd('\')] = [ordered]@{ type = 'directory'; sddl = (New-RrDoubleInheritedSddl -ParentSddl $parentSddl -IsContainer $true) }
        $entry.detail = 'created'
    }
}

function Write-RrTextFile {
    param([string]$Path, [string]$Text)
    Invoke-RrDoubleWrite -Op 'Write-RrTextFile' -Target $Path -Body {
        param($entry)
        $entry.detail = (Set-RrDoubleFileContent -Path $Path -Content $Text) + ", $($Text.Length) chars"
    }
}

function Enable-RrFirewallRule {
    param([string]$Name)
    Set-RrDoubleFirewallRuleEnabled -Op 'Enable-RrFirewallRule' -Name $Name -Enabled $true
}

function Disable-RrFirewallRule {
    param([string]$Name)
    Set-RrDoubleFirewallRuleEnabled -Op 'Disable-RrFirewallRule' -Name $Name -Enabled $false
}

function New-RrFirewallPortRule {
    param([string]$Name, [string]$DisplayName, [int]$Port, [string[]]$Profiles)
    Invoke-RrDoubleWrite -Op 'New-RrFirewallPortRule' -Target $Name -Body {
        param($entry)
        $firewall = Get-RrDoubleFirewall
        # New-NetFirewallRule -Name refuses a name the local store already holds.
        if ($null -ne (Find-RrDoubleFirewallRule -Name $Name -Store 'Local')) { throw 'Cannot create a file when that file already exists.' }
        if ($Port -lt 1 -or $Port -gt 65535) { throw "The port number $Port is not in the range 1 to 65535." }
        $scope = [object[]]@(ConvertTo-RrDoubleFirewallProfiles -Profiles $Profiles)
        $rule = [ordered]@{
            name = $Name; displayName = $DisplayName; group = ''; enabled = $true; direction = 'Inbound'; action = 'Allow'; protocol = 'TCP'
            localPorts = [object[]]@([string]$Port); profiles = $scope; service = 'termservice'; policyStore = 'Local'
        }
        $firewall['rules'] = [object[]](@($firewall['rules']) + @(, $rule))
        $entry.detail = "created: inbound Allow TCP $Port for termservice, profiles $($scope -join ', ')"
    }
}

function Export-RrFirewallPolicy {
    param([string]$Path)
    return (Invoke-RrDoubleNative -Op 'Export-RrFirewallPolicy' -FilePath 'netsh.exe' -ArgumentList @('advfirewall', 'export', $Path))
}
