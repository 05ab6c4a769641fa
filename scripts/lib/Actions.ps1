# ---------------------------------------------------------------------------------------
# lib/Actions.ps1: the changes of the rdp-remediator fix payload.
#
# Action results, backups, the repair actions, the fix parameter checks, the manifest and
# the fix driver, as docs/payload-contract.md describes them. Only the fix payload carries
# this file; it comes after lib/Access.Read.ps1, lib/Access.Write.ps1 and lib/Facts.ps1 and
# uses their functions and constants. Windows is reached only through the access layer, so
# that a test double of it can drive everything here.
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

$script:RrTls12Key = 'HKLM\SYSTEM\CurrentControlSet\Control\SecurityProviders\SCHANNEL\Protocols\TLS 1.2'

$script:RrSidSystem = '*S-1-5-18'
$script:RrSidNetworkService = '*S-1-5-20'
$script:RrSidAdministrators = '*S-1-5-32-544'
# The Windows default for MachineKeys: Everyone may list and add keys (this folder only),
# Administrators full control; protected, so nothing inherits from Crypto\RSA.
$script:RrMachineKeysFolderDacl = 'D:PAI(A;;0x12019f;;;WD)(A;;FA;;;BA)'

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
