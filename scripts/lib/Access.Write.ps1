# ---------------------------------------------------------------------------------------
# lib/Access.Write.ps1: the write half of the Windows access layer of the rdp-remediator
# payloads. Only the fix payload carries it, after lib/Access.Read.ps1.
#
# Every function here changes the VM's state or writes a file (registry values, reg export,
# certificates, ACLs, icacls, services, Windows Firewall rules, the firewall policy export,
# backup files). Like lib/Access.Read.ps1 they decide
# nothing, and the shapes described at the top of that file hold here too. The plumbing
# they share with the read half (Get-RrHklmBaseKey, Get-RrRegistrySubKeyName,
# Invoke-RrNativeCommand) is defined there.
# ---------------------------------------------------------------------------------------

# --- Registry ------------------------------------------------------------------------------

function Set-RrRegistryValue {
    param(
        [string]$Path,
        [string]$Name,
        [object]$Value,
        [ValidateSet('DWord', 'String')]
        [string]$Kind = 'DWord'
    )
    $subKeyName = Get-RrRegistrySubKeyName -Path $Path
    if ($Kind -eq 'DWord') {
        $Value = [int]$Value
    }
    else {
        $Value = [string]$Value
    }
    $base = Get-RrHklmBaseKey
    try {
        # CreateSubKey opens the key writable and creates it (and missing parents) when absent.
        $key = $base.CreateSubKey($subKeyName)
        try {
            $key.SetValue($Name, $Value, [Microsoft.Win32.RegistryValueKind]$Kind)
        }
        finally {
            $key.Close()
        }
    }
    finally {
        $base.Close()
    }
}

function Remove-RrRegistryValue {
    param(
        [string]$Path,
        [string]$Name
    )
    $subKeyName = Get-RrRegistrySubKeyName -Path $Path
    $base = Get-RrHklmBaseKey
    try {
        $key = $base.OpenSubKey($subKeyName, $true)
        if ($null -eq $key) {
            return
        }
        try {
            $key.DeleteValue($Name, $false)
        }
        finally {
            $key.Close()
        }
    }
    finally {
        $base.Close()
    }
}

function Export-RrRegistryKey {
    param(
        [string]$Path,
        [string]$File
    )
    return Invoke-RrNativeCommand -FilePath 'reg.exe' -ArgumentList @('export', $Path, $File, '/y', '/reg:64')
}

# --- Certificates --------------------------------------------------------------------------

function Remove-RrCertificate {
    param(
        # Certificates elsewhere (LocalMachine\My above all) belong to other services: this
        # layer refuses them even if the logic asked.
        [ValidateSet('Remote Desktop')]
        [string]$StoreName,
        [ValidatePattern('^[0-9A-Fa-f]{40}$')]
        [string]$Thumbprint
    )
    # Without -DeleteKey: only the certificate goes, never a key in MachineKeys.
    Remove-Item -LiteralPath ('Cert:\LocalMachine\' + $StoreName + '\' + $Thumbprint)
}

function Export-RrCertificate {
    param(
        [string]$StoreName,
        [ValidatePattern('^[0-9A-Fa-f]{40}$')]
        [string]$Thumbprint,
        [string]$File
    )
    $certificate = Get-Item -LiteralPath ('Cert:\LocalMachine\' + $StoreName + '\' + $Thumbprint)
    Export-Certificate -Cert $certificate -FilePath $File -Type CERT | Out-Null
}

# --- ACLs ----------------------------------------------------------------------------------

function Set-RrSddl {
    param(
        [string]$Path,
        [string]$Sddl
    )
    # A fresh security object holding only the DACL: Set-Acl then writes the DACL alone and
    # leaves owner and group as they are (writing even an unchanged owner needs WRITE_OWNER).
    if (Test-Path -LiteralPath $Path -PathType Container) {
        $security = New-Object System.Security.AccessControl.DirectorySecurity
    }
    else {
        $security = New-Object System.Security.AccessControl.FileSecurity
    }
    $security.SetSecurityDescriptorSddlForm($Sddl, [System.Security.AccessControl.AccessControlSections]::Access)
    Set-Acl -LiteralPath $Path -AclObject $security
}

function Invoke-RrIcaclsSave {
    param(
        [string]$Path,
        [string]$File
    )
    return Invoke-RrNativeCommand -FilePath 'icacls.exe' -ArgumentList @($Path, '/save', $File, '/t', '/c')
}

function Invoke-RrIcaclsGrant {
    param(
        [string]$Path,
        # Each entry is '*<SID>:(<rights>)', one argument each.
        [string[]]$Grant
    )
    return Invoke-RrNativeCommand -FilePath 'icacls.exe' -ArgumentList (@($Path, '/grant') + $Grant)
}

function Invoke-RrIcaclsSetOwner {
    param(
        [string]$Path,
        # '*<SID>'
        [string]$Owner
    )
    return Invoke-RrNativeCommand -FilePath 'icacls.exe' -ArgumentList @($Path, '/setowner', $Owner)
}

# --- Services ------------------------------------------------------------------------------

function Restart-RrService {
    param(
        [string]$Name,
        # Also stop the services that depend on this one (they are not started again).
        [switch]$Force
    )
    # ServiceController rather than Restart-Service: Restart-Service waits without a limit
    # for a service that hangs in StartPending. The stop waits at most 30 s; the start does
    # not wait at all, the caller polls Get-RrServiceStatus with its own limit.
    $service = Get-Service -Name $Name
    if ($service.Status -ne 'Stopped') {
        $runningDependants = @($service.DependentServices | Where-Object { $_.Status -ne 'Stopped' })
        if ($runningDependants.Count -gt 0 -and -not $Force) {
            throw "Service $Name has running dependent services; restarting it needs -Force"
        }
        if ($service.Status -ne 'StopPending') {
            # ServiceController.Stop stops the dependent services first.
            $service.Stop()
        }
        $service.WaitForStatus('Stopped', (New-TimeSpan -Seconds 30))
    }
    $service.Start()
}

function Start-RrService {
    param([string]$Name)
    $service = Get-Service -Name $Name
    if ($service.Status -eq 'Stopped') {
        $service.Start()
    }
}

# --- Windows Firewall ----------------------------------------------------------------------
# Rules of the local store (PersistentStore) only: a Group Policy rule is not this layer's to
# change, and the logic never asks for one.

function Enable-RrFirewallRule {
    param([string]$Name)
    if ($null -eq (Get-Command -Name 'Enable-NetFirewallRule' -ErrorAction SilentlyContinue)) {
        throw 'Enable-NetFirewallRule (NetSecurity module) is not available.'
    }
    Enable-NetFirewallRule -Name $Name -PolicyStore PersistentStore
}

function Disable-RrFirewallRule {
    param([string]$Name)
    if ($null -eq (Get-Command -Name 'Disable-NetFirewallRule' -ErrorAction SilentlyContinue)) {
        throw 'Disable-NetFirewallRule (NetSecurity module) is not available.'
    }
    Disable-NetFirewallRule -Name $Name -PolicyStore PersistentStore
}

function New-RrFirewallPortRule {
    param(
        [string]$Name,
        [string]$DisplayName,
        [int]$Port,
        [string[]]$Profiles
    )
    if ($null -eq (Get-Command -Name 'New-NetFirewallRule' -ErrorAction SilentlyContinue)) {
        throw 'New-NetFirewallRule (NetSecurity module) is not available.'
    }
    # One TCP port, for TermService only: the rule admits RDP and nothing else on that port.
    New-NetFirewallRule -Name $Name -DisplayName $DisplayName -Direction Inbound -Action Allow -Protocol TCP -LocalPort ([string]$Port) -Service 'termservice' -Profile ($Profiles -join ',') -Enabled True -PolicyStore PersistentStore | Out-Null
}

function Export-RrFirewallPolicy {
    param([string]$Path)
    # The whole policy as a .wfw file, which `netsh advfirewall import` puts back.
    return Invoke-RrNativeCommand -FilePath 'netsh.exe' -ArgumentList @('advfirewall', 'export', $Path)
}

# --- Machine identity and file system -----------------------------------------------------

function New-RrDirectory {
    param([string]$Path)
    New-Item -ItemType Directory -Path $Path -Force | Out-Null
}

function Write-RrTextFile {
    param(
        [string]$Path,
        [string]$Text
    )
    # UTF-8 without a byte order mark, which every JSON reader accepts.
    [System.IO.File]::WriteAllText($Path, $Text, (New-Object System.Text.UTF8Encoding -ArgumentList $false))
}
