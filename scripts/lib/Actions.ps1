# ---------------------------------------------------------------------------------------
# lib/Actions.ps1: the changes of the rdp-remediator fix payload.
#
# Action results, backups, the repair actions, the fix parameter checks, the manifest and
# the fix driver, as docs/payload-contract.md describes them. Only the fix payload carries
# this file; it comes after lib/Access.Read.ps1, lib/Access.Handshake.ps1,
# lib/Access.Write.ps1 and lib/Facts.ps1 and uses their functions and constants. Windows is reached only through the access layer, so
# that a test double of it can drive everything here.
# Windows PowerShell 5.1 syntax, Set-StrictMode -Version 3.0.
# ---------------------------------------------------------------------------------------

# The allow-list of action ids, $script:RrActionIds, is not kept here: src/payloads/compose.ts
# generates it from ACTION_IDS in src/contract/actions.ts and splices it in just before this
# file (test/pester/Load-Payload.ps1 does the same for the Pester tests). Each id needs an
# entry in $script:RrActionHandlers below (docs/adding-an-action.md).

$script:RrTls12Key = 'HKLM\SYSTEM\CurrentControlSet\Control\SecurityProviders\SCHANNEL\Protocols\TLS 1.2'

$script:RrSidSystem = '*S-1-5-18'
$script:RrSidNetworkService = '*S-1-5-20'
$script:RrSidAdministrators = '*S-1-5-32-544'
# The Windows default for MachineKeys: Everyone may list and add keys (this folder only),
# Administrators full control; protected, so nothing inherits from Crypto\RSA.
$script:RrMachineKeysFolderDacl = 'D:PAI(A;;0x12019f;;;WD)(A;;FA;;;BA)'

# Reruns with the same RunId keep every run's manifest: manifest.json, then manifest-2.json ...
$script:RrManifestMaxRuns = 100

# The built-in Remote Desktop User Mode rules enable-rdp-firewall-rules turns on for 3389
# (TCP first); Shadow (remote control of a session) stays as it is.
$script:RrRdpUserModeRules = @('RemoteDesktop-UserMode-In-TCP', 'RemoteDesktop-UserMode-In-UDP')
$script:RrDefaultRdpPort = 3389

$script:RrCertificateWaitSeconds = 30
$script:RrServiceWaitSeconds = 60
$script:RrPollSeconds = 2

# ==== Small helpers ========================================================================

function Copy-RrValues {
    param([System.Collections.IDictionary]$Values)
    $copy = [ordered]@{}
    foreach ($key in @($Values.Keys)) {
        $copy[$key] = $Values[$key]
    }
    return $copy
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

function Complete-RrPlanned {
    param(
        [System.Collections.IDictionary]$Result,
        [System.Collections.IDictionary]$Planned
    )
    # Dry run only: after is the state the action would set (the result's dryRun says so).
    # A real run never reports a planned state; its after is always read back.
    $Result['after'] = $Planned
    return $Result
}

function Complete-RrAfterFailure {
    param(
        [hashtable]$Context,
        [System.Collections.IDictionary]$Result
    )
    # An action threw. On a real run the VM may be half changed, so after is read back
    # through the access layer, whatever the action had recorded. A dry run changed nothing.
    if ([bool]$Context['DryRun']) {
        $Result['after'] = Copy-RrValues -Values $Result['before']
        return
    }
    try {
        $Result['after'] = Read-RrActionState -Id ([string]$Result['id'])
    }
    catch {
        $why = $_.Exception.Message
        if ([bool]$Result['changed']) {
            # Unknown, and said so: an empty after rather than a guess.
            $Result['after'] = [ordered]@{}
        }
        else {
            $Result['after'] = Copy-RrValues -Values $Result['before']
        }
        $message = [string]$Result['error']['message'] + ' (after could not be read back: ' + $why + ')'
        Set-RrActionError -Result $Result -Code ([string]$Result['error']['code']) -Message $message | Out-Null
    }
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
    # Only the parameters that carry a value: an empty Run Command parameter breaks binding,
    # and an absent one means "leave this value alone".
    $parameters = [ordered]@{}
    if (-not [string]::IsNullOrEmpty($SecurityLayer)) {
        $parameters['RestoreSecurityLayer'] = $SecurityLayer
    }
    if (-not [string]::IsNullOrEmpty($UserAuthentication)) {
        $parameters['RestoreUserAuthentication'] = $UserAuthentication
    }
    return [ordered]@{
        action     = 'restore-rdp-security'
        parameters = $parameters
    }
}

function Get-RrPolicyNow {
    return (Get-RrPolicyFacts -TsSetting (Read-RrTsGeneralSetting))
}

# ==== Action state =========================================================================
# What each action reports as before and after, read through the access layer. The action
# reads its before and its after with these, and the driver reads after with them when an
# action threw (Complete-RrAfterFailure).

function Get-RrTls12Values {
    return [ordered]@{ tls12Server = Get-RrTls12ServerState }
}

function Get-RrBindingValues {
    return [ordered]@{ hash = Get-RrBindingHashHex }
}

function Get-RrNlaValues {
    $current = Get-RrRdpSecuritySettings
    return [ordered]@{ userAuthentication = [int]$current['userAuthentication'] }
}

function Get-RrRdpSecurityValues {
    $current = Get-RrRdpSecuritySettings
    return [ordered]@{ securityLayer = [int]$current['securityLayer']; userAuthentication = [int]$current['userAuthentication'] }
}

# ==== Actions ==============================================================================

function Invoke-RrEnableTls12Server {
    param(
        [hashtable]$Context,
        [System.Collections.IDictionary]$Result = (New-RrActionResult -Id 'enable-tls12-server')
    )
    $Result['before'] = Get-RrTls12Values
    if ($Result['before']['tls12Server'] -eq 'enabled') {
        return (Complete-RrUnchanged -Context $Context -Result $Result)
    }
    if ($Context['DryRun']) {
        return (Complete-RrPlanned -Result $Result -Planned ([ordered]@{ tls12Server = 'enabled' }))
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

    $Result['after'] = Get-RrTls12Values
    $Result['verified'] = ($Result['after']['tls12Server'] -eq 'enabled')
    return $Result
}

# ---- enable-rdp-firewall-rules ---------------------------------------------------------------

function ConvertTo-RrFirewallActionValues {
    param(
        [object]$State,
        [int]$Port
    )
    # The built-in Remote Desktop rules' enabled state by name, whether the custom-port rule
    # for this port exists, and whether the port is admitted. Unknown (the firewall could not
    # be read) is null, never a guess.
    $values = [ordered]@{}
    if (-not [bool]$State.Readable) {
        $values['customRule'] = $null
        $values['portAdmitted'] = $null
        return $values
    }
    foreach ($rule in @($State.RdpRules | Where-Object { [string]$_.Group -eq $script:RrRdpFirewallGroup })) {
        $name = [string]$rule.Name
        $values[$name] = ([bool]$rule.Enabled -or ($values.Contains($name) -and [bool]$values[$name]))
    }
    $custom = $script:RrCustomRulePrefix + $Port
    $values['customRule'] = (@($State.RdpRules | Where-Object { [string]$_.Name -eq $custom }).Count -gt 0)
    $values['portAdmitted'] = [bool]$State.PortAdmitted
    return $values
}

function Get-RrRdpFirewallValues {
    $port = Get-RrRdpPort
    return (ConvertTo-RrFirewallActionValues -State (Read-RrFirewallState -Port $port) -Port $port)
}

function Get-RrFirewallChangePlan {
    param(
        [object]$State,
        [int]$Port
    )
    # What the action changes, by rule name: only the built-in User Mode rules (never
    # Shadow), or its own rule for a custom port. No rule's profiles or ports ever change.
    $local = @($State.RdpRules | Where-Object { [string]$_.PolicyStore -eq 'Local' })
    $enable = New-Object System.Collections.Generic.List[string]
    $create = $false
    $customName = $script:RrCustomRulePrefix + $Port
    $builtInTcp = @($local | Where-Object { [string]$_.Group -eq $script:RrRdpFirewallGroup -and [string]$_.Name -eq $script:RrRdpUserModeRules[0] })
    if ($Port -eq $script:RrDefaultRdpPort -and $builtInTcp.Count -gt 0) {
        foreach ($name in $script:RrRdpUserModeRules) {
            foreach ($rule in @($local | Where-Object { [string]$_.Group -eq $script:RrRdpFirewallGroup -and [string]$_.Name -eq $name -and -not [bool]$_.Enabled })) {
                if (-not $enable.Contains([string]$rule.Name)) {
                    $enable.Add([string]$rule.Name)
                }
            }
        }
    }
    else {
        # A custom port, or 3389 on a VM whose built-in TCP rule was deleted: the one rule
        # of this tool's own, for TermService on that TCP port.
        $existing = @($local | Where-Object { [string]$_.Name -eq $customName })
        if ($existing.Count -eq 0) {
            $create = $true
        }
        elseif (-not [bool]$existing[0].Enabled) {
            $enable.Add($customName)
        }
    }
    return [pscustomobject]@{ Enable = $enable.ToArray(); Create = $create; CustomName = $customName }
}

function Invoke-RrEnableRdpFirewallRules {
    param(
        [hashtable]$Context,
        [System.Collections.IDictionary]$Result = (New-RrActionResult -Id 'enable-rdp-firewall-rules')
    )
    $port = Get-RrRdpPort
    $state = Read-RrFirewallState -Port $port
    $Result['before'] = ConvertTo-RrFirewallActionValues -State $state -Port $port
    if (-not [bool]$state.Readable) {
        return (Complete-RrRefused -Result $Result -Code 'firewall-unreadable' -Message 'The Windows Firewall could not be read (NetSecurity unavailable or the firewall service stopped); nothing was changed.')
    }
    if ([bool]$state.PortAdmitted) {
        return (Complete-RrUnchanged -Context $Context -Result $Result)
    }
    if ([bool]$state.Gpo) {
        return (Complete-RrRefused -Result $Result -Code 'gpo-enforced' -Message ('Group Policy manages the Windows Firewall; admit TCP ' + $port + ' in the GPO, a local rule would be overridden.'))
    }
    $plan = Get-RrFirewallChangePlan -State $state -Port $port
    if (@($plan.Enable).Count -eq 0 -and -not $plan.Create) {
        # The rules this action may touch are on: a Block rule, or a rule's profiles or ports,
        # keep the port closed, and those are not this action's to change.
        return (Complete-RrRefused -Result $Result -Code 'not-applicable' -Message ('The Remote Desktop rules are enabled, yet TCP ' + $port + ' is not admitted for ' + ($state.EnabledProfiles -join ', ') + ': a Block rule or the rules'' profiles or ports keep it closed.'))
    }
    if ($Context['DryRun']) {
        $planned = Copy-RrValues -Values $Result['before']
        foreach ($name in @($plan.Enable)) {
            if ($planned.Contains($name)) {
                $planned[$name] = $true
            }
        }
        if ($plan.Create -or @($plan.Enable) -contains $plan.CustomName) {
            $planned['customRule'] = $true
        }
        $planned['portAdmitted'] = $true
        return (Complete-RrPlanned -Result $Result -Planned $planned)
    }

    # The whole policy first, as netsh exports it (restore: netsh advfirewall import), and a
    # note of the rule states before, so that a person can put back only what changed.
    $policyBackup = Get-RrBackupPath -Context $Context -FileName 'firewall.wfw'
    if (-not [bool](Test-RrPath -Path $policyBackup)) {
        Assert-RrNativeSuccess -NativeResult (Export-RrFirewallPolicy -Path $policyBackup) -What 'netsh advfirewall export'
    }
    $undo = New-Object System.Collections.Generic.List[string]
    foreach ($name in @($plan.Enable)) {
        $undo.Add('Disable-NetFirewallRule -Name ' + $name)
    }
    if ($plan.Create) {
        $undo.Add('Remove-NetFirewallRule -Name ' + $plan.CustomName)
    }
    $note = [ordered]@{
        port     = $port
        before   = $Result['before']
        enabled  = [string[]]@($plan.Enable)
        created  = $(if ($plan.Create) { $plan.CustomName } else { $null })
        undo     = $undo.ToArray()
        undoAll  = 'netsh advfirewall import "' + $policyBackup + '"'
    }
    $noteFile = Write-RrBackupNote -Context $Context -FileName 'firewall-rules.json' -Note $note
    $Result['backup'] = $policyBackup + ';' + $noteFile

    $Result['changed'] = $true
    foreach ($name in @($plan.Enable)) {
        Enable-RrFirewallRule -Name $name | Out-Null
    }
    if ($plan.Create) {
        New-RrFirewallPortRule -Name $plan.CustomName -DisplayName ('Remote Desktop - TCP ' + $port + ' (rdp-remediator)') -Port $port -Profiles $state.ActiveProfiles | Out-Null
    }

    $after = Read-RrFirewallState -Port $port
    $Result['after'] = ConvertTo-RrFirewallActionValues -State $after -Port $port
    $Result['verified'] = ([bool]$after.Readable -and [bool]$after.PortAdmitted)
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

function Get-RrSddlWithoutInheritedAces {
    param([string]$Sddl)
    # The SDDL an object is left with when its parent stops passing anything on: its DACL
    # without the inherited (ID) ACEs. A protected DACL (D:P) takes nothing from its parent
    # and stays as it is. The MachineKeys default DACL has no inheritable ACE, so this is
    # what Windows makes of the key file's ACL when it recomputes it after the folder repair.
    if ([string]::IsNullOrEmpty($Sddl)) {
        return $Sddl
    }
    $match = [regex]::Match($Sddl, 'D:(?<flags>(?:P|AI|AR|NO_ACCESS_CONTROL)*)(?<aces>(?:\([^)]*\))*)')
    if (-not $match.Success -or ($match.Groups['flags'].Value.Replace('NO_ACCESS_CONTROL', '') -match 'P')) {
        return $Sddl
    }
    $kept = New-Object System.Text.StringBuilder
    foreach ($aceMatch in [regex]::Matches($match.Groups['aces'].Value, '\(([^)]*)\)')) {
        $fields = $aceMatch.Groups[1].Value.Split(';')
        $inherited = $false
        if ($fields.Length -ge 2) {
            $aceFlags = $fields[1].ToUpperInvariant()
            for ($index = 0; $index + 1 -lt $aceFlags.Length; $index += 2) {
                if ($aceFlags.Substring($index, 2) -eq 'ID') {
                    $inherited = $true
                }
            }
        }
        if (-not $inherited) {
            [void]$kept.Append($aceMatch.Value)
        }
    }
    $aces = $match.Groups['aces']
    return ($Sddl.Substring(0, $aces.Index) + $kept.ToString() + $Sddl.Substring($aces.Index + $aces.Length))
}

function ConvertTo-RrKeyAclValues {
    param([System.Collections.IDictionary]$Keys)
    return [ordered]@{ fileSddl = $Keys['fileSddl']; folderSddl = $Keys['folderSddl'] }
}

function Get-RrKeyAclValues {
    return (ConvertTo-RrKeyAclValues -Keys (Get-RrKeyFacts))
}

function Test-RrKeyFileNeedsRepair {
    param([System.Collections.IDictionary]$Keys)
    # A missing key file is regenerate-self-signed-cert's business.
    return ($Keys['file'] -eq 'present' -and -not [bool]$Keys['fileOk'])
}

function Invoke-RrRepairKeyAcl {
    param(
        [hashtable]$Context,
        [System.Collections.IDictionary]$Result = (New-RrActionResult -Id 'repair-key-acl')
    )
    $folder = Get-RrMachineKeysFolder
    $file = Get-RrKeyFilePath
    $keys = Get-RrKeyFacts
    $Result['before'] = ConvertTo-RrKeyAclValues -Keys $keys
    $folderNeedsRepair = -not [bool]$keys['folderOk']
    if (-not $folderNeedsRepair -and -not (Test-RrKeyFileNeedsRepair -Keys $keys)) {
        return (Complete-RrUnchanged -Context $Context -Result $Result)
    }

    if ($Context['DryRun']) {
        # Whether the key file needs repair is decided on its ACL as it will be after the
        # folder repair: access it had only through inheritance from the folder goes then.
        $plannedFolder = $keys['folderSddl']
        $expectedFile = $keys['fileSddl']
        if ($folderNeedsRepair) {
            $plannedFolder = $script:RrMachineKeysFolderDacl
            $expectedFile = Get-RrSddlWithoutInheritedAces -Sddl $keys['fileSddl']
        }
        $plannedFile = $expectedFile
        if ($keys['file'] -eq 'present' -and ($null -eq $expectedFile -or -not [bool](Test-RrKeyFileSddl -Sddl $expectedFile))) {
            $plannedFile = Get-RrPlannedKeyFileSddl -Sddl $expectedFile
        }
        return (Complete-RrPlanned -Result $Result -Planned ([ordered]@{ fileSddl = $plannedFile; folderSddl = $plannedFolder }))
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
        # Windows recomputes the children's inherited ACEs when the folder's DACL is set, so
        # the key file's ACL is read again and judged as it is now.
        $keys = Get-RrKeyFacts
    }
    if (Test-RrKeyFileNeedsRepair -Keys $keys) {
        # Administrators as owner first: the owner may rewrite the DACL whatever it says.
        Assert-RrNativeSuccess -NativeResult (Invoke-RrIcaclsSetOwner -Path $file -Owner $script:RrSidAdministrators) -What 'icacls /setowner'
        $grants = @(($script:RrSidSystem + ':(F)'), ($script:RrSidNetworkService + ':(R)'))
        Assert-RrNativeSuccess -NativeResult (Invoke-RrIcaclsGrant -Path $file -Grant $grants) -What 'icacls /grant'
    }

    $after = Get-RrKeyFacts
    $Result['after'] = ConvertTo-RrKeyAclValues -Keys $after
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
    $Result['before'] = Get-RrBindingValues
    $hash = $Result['before']['hash']
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
    if ($Context['DryRun']) {
        return (Complete-RrPlanned -Result $Result -Planned ([ordered]@{ hash = $null }))
    }

    $Result['backup'] = Backup-RrRegistryKey -Context $Context -KeyPath $script:RrRdpTcpKey -FileName 'rdp-tcp.reg'
    $Result['changed'] = $true
    # Only the value goes; the certificate stays in LocalMachine\My.
    Remove-RrRegistryValue -Path $script:RrRdpTcpKey -Name 'SSLCertificateSHA1Hash' | Out-Null

    $Result['after'] = Get-RrBindingValues
    $Result['verified'] = ($null -eq $Result['after']['hash'])
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

function Get-RrSelfSignedCertValues {
    param([object]$State = (Get-RrRdpCertificateState))
    # The usable self-signed certificate, else the newest self-signed one (nulls when none).
    if ($null -ne $State.Usable) {
        return (ConvertTo-RrCertValues -Certificate $State.Usable)
    }
    return (ConvertTo-RrCertValues -Certificate $State.NewestSelfSigned)
}

function Invoke-RrRegenerateSelfSignedCert {
    param(
        [hashtable]$Context,
        [System.Collections.IDictionary]$Result = (New-RrActionResult -Id 'regenerate-self-signed-cert')
    )
    $state = Get-RrRdpCertificateState
    $Result['before'] = Get-RrSelfSignedCertValues -State $state
    if ($null -ne $state.Usable) {
        return (Complete-RrUnchanged -Context $Context -Result $Result)
    }
    $policy = Get-RrPolicyNow
    if ($policy['certTemplate']) {
        return (Complete-RrRefused -Result $Result -Code 'gpo-template' -Message 'Group Policy names a certificate template (CertTemplateName); the listener certificate comes from auto-enrolment.')
    }
    if ($Context['DryRun']) {
        # The new certificate's thumbprint is not known before Windows issues it.
        return (Complete-RrPlanned -Result $Result -Planned ([ordered]@{ thumb = $null; notAfter = $null }))
    }

    $backups = New-Object System.Collections.Generic.List[string]
    foreach ($certificate in $state.Removable) {
        $thumb = ([string]$certificate.Thumbprint).ToUpperInvariant()
        $file = Get-RrBackupPath -Context $Context -FileName ('rdp-' + $thumb + '.cer')
        # Like every backup of a RunId: the first export is kept.
        if (-not [bool](Test-RrPath -Path $file)) {
            Export-RrCertificate -StoreName $script:RrRdpStoreName -Thumbprint $thumb -File $file | Out-Null
        }
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
    $Result['after'] = Get-RrSelfSignedCertValues -State $current
    if ($null -ne $current.Usable) {
        $Result['verified'] = $true
    }
    else {
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
    if ($Context['DryRun']) {
        return (Complete-RrPlanned -Result $Result -Planned ([ordered]@{ TermService = 'Running'; UmRdpService = 'Running' }))
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
    $Result['before'] = Get-RrNlaValues
    $current = $Result['before']
    $policy = Get-RrPolicyNow
    if ($policy['userAuthentication']) {
        return (Complete-RrRefused -Result $Result -Code 'gpo-enforced' -Message 'Group Policy sets UserAuthentication (NLA); a local change would be overwritten.')
    }
    if ([int]$current['userAuthentication'] -eq 0) {
        return (Complete-RrUnchanged -Context $Context -Result $Result)
    }
    if ($Context['DryRun']) {
        return (Complete-RrPlanned -Result $Result -Planned ([ordered]@{ userAuthentication = 0 }))
    }

    $Result['backup'] = Backup-RrRegistryKey -Context $Context -KeyPath $script:RrRdpTcpKey -FileName 'rdp-tcp.reg'
    $Result['changed'] = $true
    $Result['restore'] = New-RrRestore -UserAuthentication ([string]$current['userAuthentication'])
    Set-RrRdpSecurity -SecurityLayer $null -UserAuthentication 0 | Out-Null

    $Result['after'] = Get-RrNlaValues
    $Result['verified'] = ([int]$Result['after']['userAuthentication'] -eq 0)
    return $Result
}

function Invoke-RrRelaxSecurityLayer {
    param(
        [hashtable]$Context,
        [System.Collections.IDictionary]$Result = (New-RrActionResult -Id 'relax-security-layer')
    )
    $Result['before'] = Get-RrRdpSecurityValues
    $current = $Result['before']
    $policy = Get-RrPolicyNow
    if ($policy['securityLayer'] -or $policy['userAuthentication']) {
        return (Complete-RrRefused -Result $Result -Code 'gpo-enforced' -Message 'Group Policy sets SecurityLayer or UserAuthentication; a local change would be overwritten.')
    }
    if ([int]$current['securityLayer'] -eq 0 -and [int]$current['userAuthentication'] -eq 0) {
        return (Complete-RrUnchanged -Context $Context -Result $Result)
    }
    if ($Context['DryRun']) {
        return (Complete-RrPlanned -Result $Result -Planned ([ordered]@{ securityLayer = 0; userAuthentication = 0 }))
    }

    $Result['backup'] = Backup-RrRegistryKey -Context $Context -KeyPath $script:RrRdpTcpKey -FileName 'rdp-tcp.reg'
    $Result['changed'] = $true
    $Result['restore'] = New-RrRestore -SecurityLayer ([string]$current['securityLayer']) -UserAuthentication ([string]$current['userAuthentication'])
    Set-RrRdpSecurity -SecurityLayer 0 -UserAuthentication 0 | Out-Null

    $after = Get-RrRdpSecurityValues
    $Result['after'] = $after
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
    $Result['before'] = Get-RrRdpSecurityValues
    $current = $Result['before']
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
    if ($Context['DryRun']) {
        return (Complete-RrPlanned -Result $Result -Planned ([ordered]@{ securityLayer = $targetSecurityLayer; userAuthentication = $targetUserAuthentication }))
    }

    $Result['backup'] = Backup-RrRegistryKey -Context $Context -KeyPath $script:RrRdpTcpKey -FileName 'rdp-tcp.reg'
    $Result['changed'] = $true
    Set-RrRdpSecurity -SecurityLayer $setSecurityLayer -UserAuthentication $setUserAuthentication | Out-Null

    $after = Get-RrRdpSecurityValues
    $Result['after'] = $after
    $Result['verified'] = ([int]$after['securityLayer'] -eq $targetSecurityLayer -and [int]$after['userAuthentication'] -eq $targetUserAuthentication)
    return $Result
}

# ==== Dispatch =============================================================================
# One entry per action id: the function that runs it and the function that reads the state it
# reports. The ids are those of $script:RrActionIds, generated from src/contract/actions.ts.

$script:RrActionHandlers = @{
    'enable-tls12-server'         = @{ Invoke = 'Invoke-RrEnableTls12Server'; Read = 'Get-RrTls12Values' }
    'enable-rdp-firewall-rules'   = @{ Invoke = 'Invoke-RrEnableRdpFirewallRules'; Read = 'Get-RrRdpFirewallValues' }
    'repair-key-acl'              = @{ Invoke = 'Invoke-RrRepairKeyAcl'; Read = 'Get-RrKeyAclValues' }
    'remove-stale-cert-binding'   = @{ Invoke = 'Invoke-RrRemoveStaleCertBinding'; Read = 'Get-RrBindingValues' }
    'regenerate-self-signed-cert' = @{ Invoke = 'Invoke-RrRegenerateSelfSignedCert'; Read = 'Get-RrSelfSignedCertValues' }
    'disable-nla'                 = @{ Invoke = 'Invoke-RrDisableNla'; Read = 'Get-RrNlaValues' }
    'relax-security-layer'        = @{ Invoke = 'Invoke-RrRelaxSecurityLayer'; Read = 'Get-RrRdpSecurityValues' }
    'restore-rdp-security'        = @{ Invoke = 'Invoke-RrRestoreRdpSecurity'; Read = 'Get-RrRdpSecurityValues' }
    'restart-rdp-services'        = @{ Invoke = 'Invoke-RrRestartRdpServices'; Read = 'Get-RrRdpServiceValues' }
}

function Get-RrActionHandler {
    param([string]$Id)
    # Case-sensitive, like the allow-list (a hashtable's keys are not).
    foreach ($key in @($script:RrActionHandlers.Keys)) {
        if ($key -ceq $Id) {
            return $script:RrActionHandlers[$key]
        }
    }
    throw ('No handler for action id: ' + $Id)
}

function Invoke-RrAction {
    param(
        [string]$Id,
        [hashtable]$Context,
        [System.Collections.IDictionary]$Result
    )
    $handler = Get-RrActionHandler -Id $Id
    return (& $handler['Invoke'] -Context $Context -Result $Result)
}

function Read-RrActionState {
    param([string]$Id)
    $handler = Get-RrActionHandler -Id $Id
    return (& $handler['Read'])
}

# ==== Parameters ===========================================================================

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
    if ($null -eq (Get-Variable -Name 'RrActionIds' -Scope Script -ErrorAction SilentlyContinue)) {
        # Not a parameter problem: the payload was not composed by src/payloads/compose.ts.
        throw 'The action allow-list ($script:RrActionIds) is missing; compose the payload with src/payloads/compose.ts.'
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
    # '' is how an absent parameter reads (fix.ps1 never binds an empty one): leave alone.
    if (@('', '0', '1', '2') -cnotcontains $RestoreSecurityLayer) {
        return "RestoreSecurityLayer must be '0', '1' or '2', or absent"
    }
    if (@('', '0', '1') -cnotcontains $RestoreUserAuthentication) {
        return "RestoreUserAuthentication must be '0' or '1', or absent"
    }
    return $null
}

# ==== Payloads =============================================================================

function Get-RrManifestPath {
    param([string]$BackupDir)
    # A rerun with the same RunId (a redelivered job) must not overwrite the record of an
    # earlier run, which may hold the only restore of a security-lowering change: the first
    # run writes manifest.json, the next ones manifest-2.json, manifest-3.json, ...
    $path = Join-RrPath -Parent $BackupDir -Child 'manifest.json'
    if (-not [bool](Test-RrPath -Path $path)) {
        return [pscustomobject]@{ Path = $path; Sequence = 1 }
    }
    for ($sequence = 2; $sequence -le $script:RrManifestMaxRuns; $sequence++) {
        $path = Join-RrPath -Parent $BackupDir -Child ('manifest-' + $sequence + '.json')
        if (-not [bool](Test-RrPath -Path $path)) {
            return [pscustomobject]@{ Path = $path; Sequence = $sequence }
        }
    }
    throw ('RunId has ' + $script:RrManifestMaxRuns + ' manifests already; none is overwritten.')
}

function Write-RrManifest {
    param(
        [string]$Path,
        [int]$Sequence,
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
        kind       = 'rdp-remediator-fix-manifest'
        v          = 1
        runId      = $RunId
        # 1 for manifest.json, n for manifest-<n>.json: the order of the runs with this RunId.
        sequence   = $Sequence
        createdUtc = Format-RrDate -Date (Get-RrNow)
        actions    = $entries.ToArray()
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
            # Never a planned state: after is what the VM holds now.
            Complete-RrAfterFailure -Context $context -Result $actionResult
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
            $manifest = Get-RrManifestPath -BackupDir $backupDir
            Write-RrManifest -Path $manifest.Path -Sequence $manifest.Sequence -RunId $RunId -Actions $result['actions']
        }
        catch {
            $result['ok'] = $false
            $result['error'] = New-RrError -Code 'manifest' -Message ('manifest not written: ' + $_.Exception.Message)
        }
    }

    try {
        $result['verify'] = Get-RrFacts -ReadEvents $false
    }
    catch {
        Write-Verbose ('re-reading facts failed: ' + $_.Exception.Message)
        $result['verify'] = $null
    }
    return $result
}
