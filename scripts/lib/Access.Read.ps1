# ---------------------------------------------------------------------------------------
# lib/Access.Read.ps1: the read half of the Windows access layer of the rdp-remediator
# payloads. Both payloads carry it; the probe carries nothing else of the access layer.
#
# Every call that reaches Windows (registry, certificate store, ACLs, icacls, reg.exe,
# services, WMI/CIM, network, file system, clock) is made by one small function in
# lib/Access.Read.ps1 or lib/Access.Write.ps1 and nowhere else. The functions here only
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
