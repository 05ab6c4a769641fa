# `after` is what was read back from the VM, never the planned state: for every action, a
# write that fails half-way (the double's faults.throwAtWrite) leaves the result and the
# manifest showing the state the VM is in. Only a dry run reports a planned `after`.

BeforeAll {
    Set-StrictMode -Version 3.0
    $ErrorActionPreference = 'Stop'
    . (Join-Path $PSScriptRoot 'Load-Payload.ps1')
}

# Each case: the state, the action, which write fails (write 1 is the backup directory), what
# the VM then holds (the expected after) and the state the action planned (which it must not
# report).
Describe 'an action that throws half-way reports the state read back: <Id>' -ForEach @(
    @{
        Id = 'enable-tls12-server'; ThrowAt = 4
        Setup = { param($s) Set-RrTestDword -State $s -Key $RrTestTls12ServerKey -Name 'Enabled' -Value 0; Set-RrTestDword -State $s -Key $RrTestTls12ServerKey -Name 'DisabledByDefault' -Value 1 }
        # Enabled=1 was written, DisabledByDefault=0 was not.
        Expected = { [ordered]@{ tls12Server = 'disabled-by-default' } }
        Planned = [ordered]@{ tls12Server = 'enabled' }
    }
    @{
        Id = 'enable-rdp-firewall-rules'; ThrowAt = 5
        Setup = { param($s) foreach ($rule in $s['firewall']['rules']) { if ($rule['name'] -like 'RemoteDesktop-UserMode-In-*') { $rule['enabled'] = $false } } }
        # The policy export (write 2) and the note (write 3) worked, the TCP rule was enabled
        # (write 4), enabling the UDP rule failed (write 5).
        Expected = { [ordered]@{ 'RemoteDesktop-UserMode-In-TCP' = $true; 'RemoteDesktop-UserMode-In-UDP' = $false; 'RemoteDesktop-Shadow-In-TCP' = $false; customRule = $false; portAdmitted = $true } }
        Planned = [ordered]@{ 'RemoteDesktop-UserMode-In-TCP' = $true; 'RemoteDesktop-UserMode-In-UDP' = $true; 'RemoteDesktop-Shadow-In-TCP' = $false; customRule = $false; portAdmitted = $true }
    }
    @{
        Id = 'repair-key-acl'; ThrowAt = 4
        Setup = {
            param($s)
            $s['files'][$RrTestMachineKeys]['sddl'] = 'O:SYG:SYD:AI(A;OICIID;FA;;;SY)(A;OICIID;FA;;;BA)'
            $s['files'][(Get-RrTestKeyFile -State $s)]['sddl'] = 'O:SYG:SYD:(A;;FA;;;SY)(A;;FA;;;BA)'
        }
        # The folder was repaired (write 3), icacls /setowner on the file failed (write 4).
        Expected = { [ordered]@{ fileSddl = (Get-RrSddl -Path (Get-RrTestKeyFile)); folderSddl = (Get-RrSddl -Path $RrTestMachineKeys) } }
        Planned = $null
    }
    @{
        Id = 'remove-stale-cert-binding'; ThrowAt = 3
        Setup = { param($s) $s['registry'][$RrTestRdpTcpKey]['SSLCertificateSHA1Hash'] = [ordered]@{ kind = 'Binary'; value = [object[]]@(1..20) } }
        Expected = { [ordered]@{ hash = '0102030405060708090A0B0C0D0E0F1011121314' } }
        Planned = [ordered]@{ hash = $null }
    }
    @{
        Id = 'regenerate-self-signed-cert'; ThrowAt = 3
        Setup = { param($s) $s['certificates']['Remote Desktop'][0]['notAfter'] = '2026-02-01T00:00:00Z' }
        # The .cer export (write 2) worked, removing the certificate (write 3) failed.
        Expected = { [ordered]@{ thumb = '8E4A1C0F5B2D7E9A3C6F1B0D2E4A6C8E0F1A2B3C'; notAfter = '2026-02-01T00:00:00Z' } }
        Planned = [ordered]@{ thumb = $null; notAfter = $null }
    }
    @{
        Id = 'disable-nla'; ThrowAt = 3
        Setup = { param($s) }
        Expected = { [ordered]@{ userAuthentication = 1 } }
        Planned = [ordered]@{ userAuthentication = 0 }
    }
    @{
        Id = 'relax-security-layer'; ThrowAt = 4
        Setup = { param($s) }
        # NLA went off (write 3), the layer did not drop (write 4).
        Expected = { [ordered]@{ securityLayer = 2; userAuthentication = 0 } }
        Planned = [ordered]@{ securityLayer = 0; userAuthentication = 0 }
    }
    @{
        Id = 'restore-rdp-security'; ThrowAt = 4; RestoreSecurityLayer = '2'; RestoreUserAuthentication = '1'
        Setup = { param($s) Set-RrTestDword -State $s -Key $RrTestRdpTcpKey -Name 'SecurityLayer' -Value 0; Set-RrTestDword -State $s -Key $RrTestRdpTcpKey -Name 'UserAuthentication' -Value 0 }
        # The layer rose (write 3), NLA did not come back on (write 4).
        Expected = { [ordered]@{ securityLayer = 2; userAuthentication = 0 } }
        Planned = [ordered]@{ securityLayer = 2; userAuthentication = 1 }
    }
    @{
        Id = 'restart-rdp-services'; ThrowAt = 2
        Setup = {
            param($s)
            $s['services']['TermService']['status'] = 'Stopped'
            $s['services']['UmRdpService']['status'] = 'Stopped'
            $s['tcpListeners'] = [object[]]@()
        }
        Expected = { [ordered]@{ TermService = 'Stopped'; UmRdpService = 'Stopped' } }
        Planned = [ordered]@{ TermService = 'Running'; UmRdpService = 'Running' }
    }
) {
    BeforeAll {
        $state = New-RrTestWindowsState
        & $Setup $state
        $state['faults']['throwAtWrite'] = $ThrowAt
        Set-RrTestState -State $state
        $restoreSecurityLayer = if ($_.Contains('RestoreSecurityLayer')) { $RestoreSecurityLayer } else { '' }
        $restoreUserAuthentication = if ($_.Contains('RestoreUserAuthentication')) { $RestoreUserAuthentication } else { '' }
        $fix = Invoke-RrTestFix -Actions $Id -RestoreSecurityLayer $restoreSecurityLayer -RestoreUserAuthentication $restoreUserAuthentication
        $action = $fix.Json['actions'][0]
        $expected = ConvertTo-Json -InputObject (& $Expected) -Compress
    }

    It 'fails with exception at the injected write' {
        $action['id'] | Should -Be $Id
        $action['error']['code'] | Should -Be 'exception'
        $action['error']['message'] | Should -BeLike "*Injected fault at write $ThrowAt*"
        $action['verified'] | Should -BeFalse
    }

    It 'reports as after what the VM holds now, not the planned state' {
        ConvertTo-Json -InputObject $action['after'] -Compress | Should -Be $expected
        if ($null -ne $Planned) {
            ConvertTo-Json -InputObject $action['after'] -Compress | Should -Not -Be (ConvertTo-Json -InputObject $Planned -Compress)
        }
    }

    It 'records the same after in the manifest' {
        $manifest = Get-RrTestManifest
        ConvertTo-Json -InputObject $manifest['actions'][0]['after'] -Compress | Should -Be $expected
    }
}

Describe 'after in the other paths' {
    It 'a real run that succeeds reports after as read back' {
        Set-RrTestState -State (New-RrTestWindowsState)
        $fix = Invoke-RrTestFix -Actions 'disable-nla'
        $fix.Json['actions'][0]['after']['userAuthentication'] | Should -Be 0
        $fix.Json['verify']['rdp']['userAuthentication'] | Should -Be 0
    }

    It 'a dry run reports the planned state as after, and says it is a dry run' {
        $state = New-RrTestWindowsState
        Set-RrTestDword -State $state -Key $RrTestTls12ServerKey -Name 'Enabled' -Value 0
        Set-RrTestState -State $state
        $fix = Invoke-RrTestFix -Actions 'enable-tls12-server,disable-nla' -DryRun 'true'
        $fix.Json['dryRun'] | Should -BeTrue
        $fix.Json['backupDir'] | Should -BeNullOrEmpty
        $fix.Json['actions'][0]['after']['tls12Server'] | Should -Be 'enabled'
        $fix.Json['actions'][1]['after']['userAuthentication'] | Should -Be 0
        foreach ($action in $fix.Json['actions']) {
            $action['changed'] | Should -BeFalse
            $action['verified'] | Should -BeFalse
        }
        @($global:RrDouble['Writes']).Count | Should -Be 0
    }

    It 'a refused action reports after equal to before' {
        $state = New-RrTestWindowsState
        $state['wmi']['policySourceUserAuthenticationRequired'] = 1
        Set-RrTestState -State $state
        $action = (Invoke-RrTestFix -Actions 'disable-nla').Json['actions'][0]
        $action['error']['code'] | Should -Be 'gpo-enforced'
        ConvertTo-Json -InputObject $action['after'] -Compress | Should -Be (ConvertTo-Json -InputObject $action['before'] -Compress)
    }

    It 'when even the read-back fails after a change, after is empty (unknown) and the message says so' {
        Set-RrTestState -State (New-RrTestWindowsState)
        $global:RrDouble['State']['faults']['throwAtWrite'] = 3
        Mock Read-RrActionState { throw 'registry unreadable' }
        $action = (Invoke-RrTestFix -Actions 'disable-nla').Json['actions'][0]
        $action['changed'] | Should -BeTrue
        $action['after'].Count | Should -Be 0
        $action['error']['message'] | Should -BeLike '*after could not be read back: registry unreadable*'
    }
}
