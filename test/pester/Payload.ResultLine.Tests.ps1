# The result line's size guard (scripts/lib/Facts.ps1 ConvertTo-RrResultLine): it shortens
# display text only, never a fact the TypeScript side decides on (src/core/diagnose.ts,
# src/core/planner.ts, src/core/outcome.ts judgeFix), never drops verify, and fails
# explicitly with result-too-large when nothing display-only is left to shorten.

BeforeAll {
    Set-StrictMode -Version 3.0
    $ErrorActionPreference = 'Stop'
    . (Join-Path $PSScriptRoot 'Load-Payload.ps1')

    $MaxBytes = 4096 - 2

    $script:Largest = [ordered]@{ Bytes = 0; Case = '' }
    function Measure-RrTestLine {
        param([string]$Line, [string]$Case)
        $bytes = [System.Text.Encoding]::UTF8.GetByteCount($Line)
        if ($bytes -gt $script:Largest.Bytes) {
            $script:Largest.Bytes = $bytes
            $script:Largest.Case = $Case
        }
        return $bytes
    }

    # A MachineKeys folder ACL after years of hand-made grants: 72 explicit ACEs for domain
    # accounts on top of an ACL reset to inherit (emulator/fleet.ts machinekeys-folder-long-acl).
    $LongAces = -join (0..71 | ForEach-Object { '(A;;0x1200a9;;;S-1-5-21-3623811015-3361044348-30300820-' + (1100 + $_) + ')' })
    $LongFolderSddl = 'O:SYG:SYD:AI(A;OICIID;FA;;;SY)(A;OICIID;FA;;;BA)' + $LongAces

    function New-RrTestLongAclState {
        param([int]$Certificates = 3)
        $state = New-RrTestWindowsState
        $state['files'][$RrTestMachineKeys]['sddl'] = $LongFolderSddl
        # Three certificates, as many as the probe reports: the newest usable, two expired.
        $now = [datetime]::Parse($state['now'], [System.Globalization.CultureInfo]::InvariantCulture, [System.Globalization.DateTimeStyles]'AdjustToUniversal, AssumeUniversal')
        $store = @($state['certificates']['Remote Desktop'])
        for ($i = 1; $i -lt $Certificates; $i++) {
            $store += , (New-RrTestCertificate -Thumbprint (([string]$i) * 40) -NotAfter $now.AddDays(-30 * $i))
        }
        $state['certificates']['Remote Desktop'] = [object[]]$store
        return $state
    }

    function New-RrTestLongAction {
        param([string]$Id, [int]$Index)
        # An action whose before / after carry long display strings (SDDLs of a long ACL).
        $action = New-RrActionResult -Id $Id
        $action['changed'] = $true
        $action['before'] = [ordered]@{ fileSddl = ('O:SYG:SYD:AI(A;;FA;;;SY)' + $LongAces); folderSddl = $LongFolderSddl }
        $action['after'] = [ordered]@{ fileSddl = ('O:BAG:SYD:AI(A;;FA;;;SY)(A;;FR;;;NS)' + $LongAces); folderSddl = ('O:SYG:SYD:PAI(A;;0x12019f;;;WD)(A;;FA;;;BA)' + $LongAces) }
        $action['backup'] = 'C:\ProgramData\RdpRemediation\' + $RrTestRunId + '\backup-' + $Index + '.reg'
        $action['verified'] = $true
        if ($Id -eq 'disable-nla' -or $Id -eq 'relax-security-layer') {
            $action['restore'] = New-RrRestore -SecurityLayer '2' -UserAuthentication '1'
        }
        return $action
    }
}

AfterAll {
    Write-Host ('largest result line in Payload.ResultLine.Tests.ps1: ' + $script:Largest.Bytes + ' bytes (' + $script:Largest.Case + ')')
}

Describe 'the probe line with a 72-ACE MachineKeys folder ACL' {
    BeforeEach {
        Set-RrTestState -State (New-RrTestLongAclState)
        $full = Get-RrFacts
        $line = ConvertTo-RrResultLine -Result (Invoke-RrProbe -RunId $RrTestRunId)
        $bytes = Measure-RrTestLine -Line $line -Case 'probe, 72-ACE folder ACL, 3 certificates'
        $json = ConvertFrom-Json -InputObject $line -AsHashtable
    }

    It 'fits in the Run Command window' {
        $full['keys']['folderSddl'].Length | Should -BeGreaterThan 4096
        $bytes | Should -BeLessOrEqual $MaxBytes
        $json['ok'] | Should -BeTrue
    }

    It 'keeps every certificate of the Remote Desktop store (diagnose would find cert-missing without them)' {
        @($json['facts']['cert']['store']).Count | Should -Be 3
        @($json['facts']['cert']['store'] | ForEach-Object { $_['thumb'] }) | Should -Be @($full['cert']['store'] | ForEach-Object { $_['thumb'] })
    }

    It 'keeps every fact the TypeScript side decides on, and shortens only the SDDL text' {
        ConvertTo-RrTestDecisionView -Facts $json['facts'] | Should -Be (ConvertTo-RrTestDecisionView -Facts $full)
        $json['facts']['keys']['folderOk'] | Should -BeFalse
        $json['facts']['keys']['fileOk'] | Should -BeTrue
        $folderSddl = [string]$json['facts']['keys']['folderSddl']
        $folderSddl | Should -BeOfType [string]
        $folderSddl.Length | Should -BeLessOrEqual 64
        $folderSddl | Should -BeLike '*...'
        $full['keys']['folderSddl'].StartsWith($folderSddl.Substring(0, $folderSddl.Length - 3)) | Should -BeTrue
    }
}

Describe 'the fix line on a VM with a 72-ACE MachineKeys folder ACL' {
    It 'keeps verify with every certificate, and every action verdict' {
        # The key file also lost NETWORK SERVICE's read, so both get repaired.
        $state = New-RrTestLongAclState
        $state['files'][(Get-RrTestKeyFile -State $state)]['sddl'] = 'O:SYG:SYD:(A;;FA;;;SY)(A;;FA;;;BA)'
        Set-RrTestState -State $state
        $fix = Invoke-RrTestFix -Actions 'repair-key-acl,restart-rdp-services'
        $null = Measure-RrTestLine -Line $fix.Line -Case 'fix repair-key-acl + restart, 72-ACE folder ACL'
        $fix.Bytes | Should -BeLessOrEqual $MaxBytes
        $fix.Json['ok'] | Should -BeTrue
        $fix.Json['verify'] | Should -Not -BeNullOrEmpty
        ConvertTo-RrTestDecisionView -Facts $fix.Json['verify'] | Should -Be (ConvertTo-RrTestDecisionView -Facts (Get-RrFacts -ReadEvents $false))
        @($fix.Json['verify']['cert']['store']).Count | Should -Be 3
        $fix.Json['verify']['keys']['folderOk'] | Should -BeTrue
        $fix.Json['verify']['keys']['fileOk'] | Should -BeTrue
        foreach ($action in $fix.Json['actions']) {
            $action['verified'] | Should -BeTrue
            $action['changed'] | Should -BeTrue
            $action['error'] | Should -BeNullOrEmpty
        }
        # The long before is display text: shortened, still a string.
        ([string]$fix.Json['actions'][0]['before']['folderSddl']).Length | Should -BeLessOrEqual 64
    }

    It 'keeps the full detail in the manifest' {
        Set-RrTestState -State (New-RrTestLongAclState)
        $null = Invoke-RrTestFix -Actions 'repair-key-acl'
        (Get-RrTestManifest)['actions'][0]['before']['folderSddl'] | Should -Be $LongFolderSddl
    }
}

Describe 'the worst case: 9 actions, each with long before and after, over a 72-ACE ACL' {
    BeforeEach {
        Set-RrTestState -State (New-RrTestLongAclState)
        $ids = Get-RrTestActionIds
        $result = New-RrFixResult -RunId $RrTestRunId -DryRun $false
        $result['backupDir'] = 'C:\ProgramData\RdpRemediation\' + $RrTestRunId
        $index = 0
        $result['actions'] = @($ids | ForEach-Object { New-RrTestLongAction -Id $_ -Index ($index++) })
        $result['verify'] = Get-RrFacts -ReadEvents $false
        $full = Get-RrFacts -ReadEvents $false
    }

    It 'fits, with verify whole and every action verdict and restore kept' {
        $ids.Count | Should -Be 9
        $line = ConvertTo-RrResultLine -Result $result
        $bytes = Measure-RrTestLine -Line $line -Case '9 actions with long before/after, 72-ACE folder ACL, 3 certificates'
        $bytes | Should -BeLessOrEqual $MaxBytes
        $json = ConvertFrom-Json -InputObject $line -AsHashtable
        $json['ok'] | Should -BeTrue
        $json['error'] | Should -BeNullOrEmpty
        ConvertTo-RrTestDecisionView -Facts $json['verify'] | Should -Be (ConvertTo-RrTestDecisionView -Facts $full)
        @($json['actions'] | ForEach-Object { $_['id'] }) | Should -Be $ids
        foreach ($action in $json['actions']) {
            $action['changed'] | Should -BeTrue
            $action['verified'] | Should -BeTrue
            # Nine long before / after do not fit beside the facts even cut to '...': they are
            # emptied (the manifest keeps them), and so is each backup path cut.
            $action['before'].Count | Should -Be 0
            $action['after'].Count | Should -Be 0
            $action['backup'] | Should -Be '...'
        }
        @($json['actions'] | Where-Object { $_.Contains('restore') } | ForEach-Object { $_['id'] }) | Should -Be @('disable-nla', 'relax-security-layer')
        $json['actions'][5]['restore']['parameters']['RestoreUserAuthentication'] | Should -Be '1'
    }

    It 'fits with a refusal message on every action too, keeping each error code' {
        foreach ($action in $result['actions']) {
            $action['error'] = New-RrError -Code 'gpo-enforced' -Message ('Group Policy sets a value this action would write; a local change would be overwritten. ' + ('x' * 300))
            $action['verified'] = $false
        }
        $line = ConvertTo-RrResultLine -Result $result
        $bytes = Measure-RrTestLine -Line $line -Case '9 actions with long before/after and a 400-char error each'
        $bytes | Should -BeLessOrEqual $MaxBytes
        $json = ConvertFrom-Json -InputObject $line -AsHashtable
        $json['ok'] | Should -BeTrue
        ConvertTo-RrTestDecisionView -Facts $json['verify'] | Should -Be (ConvertTo-RrTestDecisionView -Facts $full)
        @($json['actions'] | ForEach-Object { $_['error']['code'] } | Select-Object -Unique) | Should -Be @('gpo-enforced')
    }
}

Describe 'the worst case of the new facts: 12 event ids, two handshake attempts, 6 firewall rules, over a 72-ACE ACL' {
    BeforeAll {
        function New-RrTestLargestFactsState {
            # Every new fact at its largest, beside the long ACL and the three certificates.
            $state = New-RrTestLongAclState
            $now = [datetime]::Parse($state['now'], [System.Globalization.CultureInfo]::InvariantCulture, [System.Globalization.DateTimeStyles]'AdjustToUniversal, AssumeUniversal')
            $log = New-Object System.Collections.Generic.List[object]
            $order = 0
            $sources = @(
                @('Schannel', @(36870, 36871, 36874, 36886, 36888)),
                @('Microsoft-Windows-TerminalServices-RemoteConnectionManager', @(1050, 1051, 1055, 1057, 1058, 1059, 1065)))
            foreach ($source in $sources) {
                foreach ($id in $source[1]) {
                    $order++
                    foreach ($n in 1..3) {
                        $log.Add([ordered]@{ provider = $source[0]; id = $id; timeCreated = $now.AddMinutes(-10 * $order - $n).ToString("yyyy-MM-dd'T'HH:mm:ss'Z'"); message = ('Event ' + $id + ': ' + ('x' * 200) + "`r`nsecond line") })
                    }
                }
            }
            $state['events'] = $log.ToArray()
            # A listener bound to one adapter: loopback refused, the adapter's address fails TLS.
            Set-RrTestDword -State $state -Key $RrTestRdpTcpKey -Name 'LanAdapter' -Value 1
            $rules = @($state['firewall']['rules'])
            foreach ($port in @(3389, 50001, 50002)) {
                $rules += , ([ordered]@{ name = 'RdpRemediator-RDP-TCP-' + $port; displayName = 'Remote Desktop - TCP ' + $port; group = ''; enabled = $true; direction = 'Inbound'; action = 'Allow'; protocol = 'TCP'; localPorts = [object[]]@([string]$port); profiles = [object[]]@('Domain', 'Private', 'Public'); service = 'termservice'; policyStore = 'Local' })
            }
            $state['firewall']['rules'] = [object[]]$rules
            return $state
        }

        function Set-RrTestLargestHandshake {
            # Answers with a 200-character detail each (the longest the real check reports).
            $global:RrDouble['Handshake'] = {
                param($Address, $Port)
                if ($Address -eq '127.0.0.1') {
                    return @{ Stage = 'connect'; Error = 'refused'; Message = ('No connection could be made because the target machine actively refused it ' + ('z' * 200)); ConnectMs = 1 }
                }
                @{ Stage = 'tls'; Error = 'tls'; Message = ('Authentication failed because the remote party sent a TLS alert ' + ('y' * 200)); SelectedProtocol = 2; TlsVersion = 'Tls12'; Cipher = 'TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384'; CertificateThumbprint = '8E4A1C0F5B2D7E9A3C6F1B0D2E4A6C8E0F1A2B3C'; CertificateNotAfter = '2026-07-29T12:00:00Z'; ConnectMs = 1; NegotiateMs = 2; TlsMs = 35 }
            }
        }

        function New-RrTestLargestFix {
            param([string[]]$Ids)
            $result = New-RrFixResult -RunId $RrTestRunId -DryRun $false
            $result['backupDir'] = 'C:\ProgramData\RdpRemediation\' + $RrTestRunId
            $index = 0
            $result['actions'] = @($Ids | ForEach-Object { New-RrTestLongAction -Id $_ -Index ($index++) })
            # As the fix reads it back: without the System-log events.
            $result['verify'] = Get-RrFacts -ReadEvents $false
            return $result
        }
    }

    BeforeEach {
        Set-RrTestState -State (New-RrTestLargestFactsState)
        Set-RrTestLargestHandshake
        $full = Get-RrFacts
        $fullVerify = Get-RrFacts -ReadEvents $false
    }

    It 'has the new facts at their largest in full' {
        @($full['events']['items']).Count | Should -Be 12
        @($full['events']['items'] | ForEach-Object { ([string]$_['text']).Length }) | Select-Object -Unique | Should -Be @(120)
        @($full['handshake']['attempts']).Count | Should -Be 2
        @($full['handshake']['attempts'] | ForEach-Object { ([string]$_['detail']).Length }) | Select-Object -Unique | Should -Be @(200)
        @($full['firewall']['rdpRules']).Count | Should -Be 6
    }

    It 'a probe line fits, with every decision fact of the handshake, the events and the firewall' {
        $line = ConvertTo-RrResultLine -Result (Invoke-RrProbe -RunId $RrTestRunId)
        $bytes = Measure-RrTestLine -Line $line -Case 'probe, new facts at their largest, 72-ACE folder ACL, 3 certificates'
        $bytes | Should -BeLessOrEqual $MaxBytes
        $json = ConvertFrom-Json -InputObject $line -AsHashtable
        $json['ok'] | Should -BeTrue
        ConvertTo-RrTestDecisionView -Facts $json['facts'] | Should -Be (ConvertTo-RrTestDecisionView -Facts $full)
        # The items kept are the newest, in order.
        $kept = @($json['facts']['events']['items'] | ForEach-Object { $_['id'] })
        $kept.Count | Should -BeGreaterThan 0
        $kept | Should -Be @($full['events']['items'] | Select-Object -First $kept.Count | ForEach-Object { $_['id'] })
    }

    It 'a fix of the largest plan (7 actions, each with long before and after) fits, with verify whole and every verdict' {
        # The planner never sends both security-lowering actions, nor one with restore-rdp-security.
        $ids = @('enable-tls12-server', 'enable-rdp-firewall-rules', 'repair-key-acl', 'remove-stale-cert-binding', 'regenerate-self-signed-cert', 'disable-nla', 'restart-rdp-services')
        $line = ConvertTo-RrResultLine -Result (New-RrTestLargestFix -Ids $ids)
        $bytes = Measure-RrTestLine -Line $line -Case 'fix of 7 actions with long before/after, new facts at their largest, 72-ACE folder ACL, 3 certificates'
        $bytes | Should -BeLessOrEqual $MaxBytes
        $json = ConvertFrom-Json -InputObject $line -AsHashtable
        $json['ok'] | Should -BeTrue
        ConvertTo-RrTestDecisionView -Facts $json['verify'] | Should -Be (ConvertTo-RrTestDecisionView -Facts $fullVerify)
        $json['verify']['events'] | Should -BeNullOrEmpty
        @($json['actions'] | ForEach-Object { $_['id'] }) | Should -Be $ids
        foreach ($action in $json['actions']) {
            $action['changed'] | Should -BeTrue
            $action['verified'] | Should -BeTrue
        }
        $json['actions'][5]['restore']['parameters']['RestoreUserAuthentication'] | Should -Be '1'
        # The handshake's decision facts stay as read; only its text goes.
        foreach ($index in 0..1) {
            $attempt = $json['verify']['handshake']['attempts'][$index]
            $attempt['detail'] | Should -Be '...'
        }
        $json['verify']['handshake']['attempts'][1]['servedCert'] | Should -Be 'remote-desktop'
        $line | Should -BeLike '*"cert":{"thumb":"8E4A1C0F5B2D7E9A3C6F1B0D2E4A6C8E0F1A2B3C","notAfter":"2026-07-29T12:00:00Z"}*'
    }

    It 'a fix of all 9 actions does not fit beside them: an explicit result-too-large that keeps the security-lowering changes' {
        $line = ConvertTo-RrResultLine -Result (New-RrTestLargestFix -Ids (Get-RrTestActionIds))
        $null = Measure-RrTestLine -Line $line -Case 'result-too-large (9 actions, new facts at their largest)'
        $json = ConvertFrom-Json -InputObject $line -AsHashtable
        $json['ok'] | Should -BeFalse
        $json['error']['code'] | Should -Be 'result-too-large'
        @($json['actions'] | ForEach-Object { $_['id'] }) | Should -Be @('disable-nla', 'relax-security-layer')
    }
}

Describe 'a real run of all 9 actions on a VM with many causes and a 72-ACE ACL' {
    It 'fits, with verify whole and every action verdict kept' {
        $state = New-RrTestLongAclState
        $state['files'][(Get-RrTestKeyFile -State $state)]['sddl'] = 'O:SYG:SYD:(A;;FA;;;SY)(A;;FA;;;BA)' + $LongAces.Replace('(A;;', '(A;ID;')
        Set-RrTestDword -State $state -Key $RrTestTls12ServerKey -Name 'Enabled' -Value 0
        # A stale binding on a Connection Broker (refused), a template certificate policy
        # (refused), Group Policy on both security values (refused), TermService stopped.
        $state['registry'][$RrTestRdpTcpKey]['SSLCertificateSHA1Hash'] = [ordered]@{ kind = 'Binary'; value = [object[]]@(1..20) }
        $state['features']['RDS-Connection-Broker'] = $true
        $state['registry']['HKLM\SOFTWARE\Policies\Microsoft\Windows NT\Terminal Services'] = [ordered]@{ CertTemplateName = [ordered]@{ kind = 'String'; value = 'RemoteDesktopComputer' } }
        $state['wmi']['policySourceSecurityLayer'] = 1
        $state['wmi']['policySourceUserAuthenticationRequired'] = 1
        $state['certificates']['Remote Desktop'][0]['notAfter'] = '2026-02-01T00:00:00Z'
        $state['services']['TermService']['status'] = 'Stopped'
        $state['services']['UmRdpService']['status'] = 'Stopped'
        $state['tcpListeners'] = [object[]]@()
        Set-RrTestState -State $state
        $fix = Invoke-RrTestFix -Actions ((Get-RrTestActionIds) -join ',') -RestoreSecurityLayer '2' -RestoreUserAuthentication '1'
        $null = Measure-RrTestLine -Line $fix.Line -Case 'real run of all 9 actions, many causes, 72-ACE folder ACL, 3 certificates'
        $fix.Bytes | Should -BeLessOrEqual $MaxBytes
        $fix.Json['ok'] | Should -BeTrue
        ConvertTo-RrTestDecisionView -Facts $fix.Json['verify'] | Should -Be (ConvertTo-RrTestDecisionView -Facts (Get-RrFacts -ReadEvents $false))
        @($fix.Json['actions'] | ForEach-Object { $_['id'] }) | Should -Be (Get-RrTestActionIds)
        $codes = [ordered]@{}
        foreach ($action in $fix.Json['actions']) { $codes[$action['id']] = if ($null -eq $action['error']) { $null } else { $action['error']['code'] } }
        $codes['remove-stale-cert-binding'] | Should -Be 'rdcb-installed'
        $codes['regenerate-self-signed-cert'] | Should -Be 'gpo-template'
        $codes['disable-nla'] | Should -Be 'gpo-enforced'
        $codes['relax-security-layer'] | Should -Be 'gpo-enforced'
        $codes['restore-rdp-security'] | Should -Be 'gpo-enforced'
        $codes['enable-tls12-server'] | Should -BeNullOrEmpty
        $codes['enable-rdp-firewall-rules'] | Should -BeNullOrEmpty
        $codes['repair-key-acl'] | Should -BeNullOrEmpty
        $codes['restart-rdp-services'] | Should -BeNullOrEmpty
    }
}

Describe 'when nothing display-only is left to shorten' {
    It 'a fix fails explicitly with result-too-large, never drops verify from an ok line, and keeps the security-lowering changes' {
        Set-RrTestState -State (New-RrTestLongAclState)
        $result = New-RrFixResult -RunId $RrTestRunId -DryRun $false
        $result['backupDir'] = 'C:\ProgramData\RdpRemediation\' + $RrTestRunId
        # A redelivered request with a very long Actions list: 40 results.
        $actions = @(1..40 | ForEach-Object { New-RrTestLongAction -Id 'restart-rdp-services' -Index $_ })
        $actions[7] = New-RrTestLongAction -Id 'disable-nla' -Index 7
        $result['actions'] = $actions
        $result['verify'] = Get-RrFacts -ReadEvents $false
        $line = ConvertTo-RrResultLine -Result $result
        $bytes = Measure-RrTestLine -Line $line -Case 'result-too-large (40 actions)'
        $bytes | Should -BeLessOrEqual $MaxBytes
        $json = ConvertFrom-Json -InputObject $line -AsHashtable
        $json['ok'] | Should -BeFalse
        $json['error']['code'] | Should -Be 'result-too-large'
        $json['verify'] | Should -BeNullOrEmpty
        $json['backupDir'] | Should -Be $result['backupDir']
        @($json['actions']).Count | Should -Be 1
        $json['actions'][0]['id'] | Should -Be 'disable-nla'
        $json['actions'][0]['restore']['parameters'].Count | Should -Be 2
    }

    It 'a probe whose decision input itself is too long fails with result-too-large rather than alter it' {
        $state = New-RrTestLongAclState
        $state['registry']['HKLM\SYSTEM\CurrentControlSet\Control\Terminal Server\WinStations']['SelfSignedCertStore']['value'] = 'x' * 5000
        Set-RrTestState -State $state
        $line = ConvertTo-RrResultLine -Result (Invoke-RrProbe -RunId $RrTestRunId)
        $null = Measure-RrTestLine -Line $line -Case 'probe result-too-large'
        $json = ConvertFrom-Json -InputObject $line -AsHashtable
        $json['ok'] | Should -BeFalse
        $json['error']['code'] | Should -Be 'result-too-large'
        $json.Contains('facts') | Should -BeFalse
    }
}

Describe 'shortened text stays what the contract expects' {
    It 'leaves a null fileSddl (an unreadable key-file ACL) null, and fileOk false' {
        $state = New-RrTestLongAclState
        $state['faults']['unreadableAcls'] = [object[]]@((Get-RrTestKeyFile -State $state))
        Set-RrTestState -State $state
        $line = ConvertTo-RrResultLine -Result (Invoke-RrProbe -RunId $RrTestRunId)
        $json = ConvertFrom-Json -InputObject $line -AsHashtable
        $json['ok'] | Should -BeTrue
        $json['facts']['keys'].Contains('fileSddl') | Should -BeTrue
        $json['facts']['keys']['fileSddl'] | Should -BeNullOrEmpty
        $json['facts']['keys']['fileOk'] | Should -BeFalse
    }

    It 'changes nothing in a line that fits' {
        Set-RrTestState -State (New-RrTestWindowsState)
        $result = Invoke-RrProbe -RunId $RrTestRunId
        $before = ConvertTo-RrJsonLine -InputObject $result
        ConvertTo-RrResultLine -Result $result | Should -Be $before
    }
}
