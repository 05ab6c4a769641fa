# The guest firewall: the probe's firewall facts (lib/Facts.ps1 Get-RrFirewallFacts) and the
# fix's enable-rdp-firewall-rules (lib/Actions.ps1), over the double's Windows Firewall.

BeforeAll {
    Set-StrictMode -Version 3.0
    $ErrorActionPreference = 'Stop'
    . (Join-Path $PSScriptRoot 'Load-Payload.ps1')

    $RdpGroup = '@FirewallAPI.dll,-28752'
    $TcpRule = 'RemoteDesktop-UserMode-In-TCP'
    $UdpRule = 'RemoteDesktop-UserMode-In-UDP'
    $ShadowRule = 'RemoteDesktop-Shadow-In-TCP'
    $RunDir = 'C:\ProgramData\RdpRemediation\' + $RrTestRunId

    function Get-RrTestRule {
        param([System.Collections.IDictionary]$State = $global:RrDouble['State'], [string]$Name)
        return @($State['firewall']['rules'] | Where-Object { $_['name'] -eq $Name })[0]
    }

    function Add-RrTestRule {
        param(
            [System.Collections.IDictionary]$State,
            [string]$Name,
            [string]$Action = 'Allow',
            [string]$Protocol = 'TCP',
            [string[]]$LocalPorts = @('3389'),
            [string[]]$Profiles = @('Domain', 'Private', 'Public'),
            [string]$Group = '',
            [bool]$Enabled = $true,
            [object]$Service = $null,
            [string]$PolicyStore = 'Local'
        )
        $rule = [ordered]@{
            name = $Name; displayName = $Name; group = $Group; enabled = $Enabled; direction = 'Inbound'; action = $Action; protocol = $Protocol
            localPorts = [object[]]$LocalPorts; profiles = [object[]]$Profiles; service = $Service; policyStore = $PolicyStore
        }
        $State['firewall']['rules'] = [object[]](@($State['firewall']['rules']) + @(, $rule))
    }

    function Get-RrTestFirewall {
        param([System.Collections.IDictionary]$State)
        Set-RrTestState -State $State
        $line = ConvertTo-RrResultLine -Result (Invoke-RrProbe -RunId $RrTestRunId)
        $json = ConvertFrom-Json -InputObject $line -AsHashtable
        $json['ok'] | Should -BeTrue
        return $json['facts']['firewall']
    }

    function Get-RrTestWriteOps {
        return @($global:RrDouble['Writes'] | ForEach-Object { $_.op + ' ' + $_.target })
    }
}

Describe 'the firewall facts' {
    It 'on a healthy VM: the three built-in rules, TCP 3389 admitted on the Public network' {
        $firewall = Get-RrTestFirewall -State (New-RrTestWindowsState)
        $firewall['readable'] | Should -BeTrue
        $firewall['activeProfiles'] | Should -Be @('Public')
        $firewall['enabledProfiles'] | Should -Be @('Public')
        @($firewall['rdpRules'] | ForEach-Object { $_['name'] }) | Should -Be @($TcpRule, $UdpRule, $ShadowRule)
        $tcp = $firewall['rdpRules'][0]
        $tcp['enabled'] | Should -BeTrue
        $tcp['profiles'] | Should -Be @('Domain', 'Private', 'Public')
        $tcp['protocol'] | Should -Be 'TCP'
        $tcp['localPorts'] | Should -Be @('3389')
        $tcp['store'] | Should -Be 'local'
        $firewall['portAdmitted'] | Should -BeTrue
        $firewall['gpo'] | Should -BeFalse
    }

    It 'with the built-in rules disabled: not admitted' {
        $state = New-RrTestWindowsState
        (Get-RrTestRule -State $state -Name $TcpRule)['enabled'] = $false
        (Get-RrTestRule -State $state -Name $UdpRule)['enabled'] = $false
        $firewall = Get-RrTestFirewall -State $state
        $firewall['portAdmitted'] | Should -BeFalse
        @($firewall['rdpRules'] | ForEach-Object { $_['enabled'] }) | Should -Be @($false, $false, $false)
    }

    It 'with another enabled Allow rule for the port (any group): admitted' {
        $state = New-RrTestWindowsState
        (Get-RrTestRule -State $state -Name $TcpRule)['enabled'] = $false
        Add-RrTestRule -State $state -Name 'Ops-RDP' -LocalPorts @('3380-3390')
        $firewall = Get-RrTestFirewall -State $state
        $firewall['portAdmitted'] | Should -BeTrue
        # Not a Remote Desktop rule: it is not listed.
        @($firewall['rdpRules']).Count | Should -Be 3
    }

    It 'with a custom PortNumber and no rule for it: not admitted; an Any-port rule admits it' {
        $state = New-RrTestWindowsState
        Set-RrTestDword -State $state -Key $RrTestRdpTcpKey -Name 'PortNumber' -Value 50001
        (Get-RrTestFirewall -State $state)['portAdmitted'] | Should -BeFalse
        Add-RrTestRule -State $state -Name 'Everything' -Protocol 'Any' -LocalPorts @('Any')
        (Get-RrTestFirewall -State $state)['portAdmitted'] | Should -BeTrue
    }

    It 'a rule for UDP, for another port or for a keyword such as RPC does not admit TCP 3389' {
        $state = New-RrTestWindowsState
        (Get-RrTestRule -State $state -Name $TcpRule)['enabled'] = $false
        Add-RrTestRule -State $state -Name 'Rpc' -LocalPorts @('RPC')
        Add-RrTestRule -State $state -Name 'Near' -LocalPorts @('3390-3400', '3388')
        (Get-RrTestFirewall -State $state)['portAdmitted'] | Should -BeFalse
    }

    It 'a rule scoped to another service does not admit TermService''s port' {
        $state = New-RrTestWindowsState
        (Get-RrTestRule -State $state -Name $TcpRule)['enabled'] = $false
        Add-RrTestRule -State $state -Name 'Other-Service' -Service 'WinRM'
        (Get-RrTestFirewall -State $state)['portAdmitted'] | Should -BeFalse
    }

    It 'with an enabled Block rule for the port: not admitted, whatever allows it (Block wins)' {
        $state = New-RrTestWindowsState
        Add-RrTestRule -State $state -Name 'Block-RDP' -Action 'Block' -Profiles @('Public')
        $firewall = Get-RrTestFirewall -State $state
        $firewall['portAdmitted'] | Should -BeFalse
        @($firewall['rdpRules'] | ForEach-Object { $_['enabled'] }) | Should -Be @($true, $true, $false)
    }

    It 'a Block rule for another profile, or a disabled one, does not count' {
        $state = New-RrTestWindowsState
        Add-RrTestRule -State $state -Name 'Block-RDP-Domain' -Action 'Block' -Profiles @('Domain')
        Add-RrTestRule -State $state -Name 'Block-RDP-Off' -Action 'Block' -Enabled $false
        (Get-RrTestFirewall -State $state)['portAdmitted'] | Should -BeTrue
    }

    It 'with the firewall off for the active profile: nothing is filtered, so admitted' {
        $state = New-RrTestWindowsState
        $state['firewall']['profiles']['Public'] = $false
        (Get-RrTestRule -State $state -Name $TcpRule)['enabled'] = $false
        $firewall = Get-RrTestFirewall -State $state
        $firewall['activeProfiles'] | Should -Be @('Public')
        @($firewall['enabledProfiles']).Count | Should -Be 0
        $firewall['portAdmitted'] | Should -BeTrue
    }

    It 'takes the active profiles from the connected networks (DomainAuthenticated is Domain)' {
        $state = New-RrTestWindowsState
        $state['firewall']['networkCategories'] = [object[]]@('Private', 'DomainAuthenticated')
        (Get-RrTestRule -State $state -Name $TcpRule)['profiles'] = [object[]]@('Domain')
        $firewall = Get-RrTestFirewall -State $state
        $firewall['activeProfiles'] | Should -Be @('Domain', 'Private')
        $firewall['enabledProfiles'] | Should -Be @('Domain', 'Private')
        # Private is not admitted by a rule for Domain only.
        $firewall['portAdmitted'] | Should -BeFalse
    }

    It 'counts a network Windows has not placed as Public' {
        $state = New-RrTestWindowsState
        $state['firewall']['networkCategories'] = [object[]]@()
        (Get-RrTestFirewall -State $state)['activeProfiles'] | Should -Be @('Public')
    }

    It 'reports gpo when the WindowsFirewall policy key exists' {
        $state = New-RrTestWindowsState
        $state['registry']['HKLM\SOFTWARE\Policies\Microsoft\WindowsFirewall'] = [ordered]@{}
        $firewall = Get-RrTestFirewall -State $state
        $firewall['gpo'] | Should -BeTrue
        $firewall['portAdmitted'] | Should -BeTrue
    }

    It 'reports gpo, and store gpo, for a Remote Desktop rule that Group Policy defines' {
        $state = New-RrTestWindowsState
        Add-RrTestRule -State $state -Name 'RemoteDesktop-UserMode-In-TCP-GPO' -Group $RdpGroup -PolicyStore 'GroupPolicy'
        $firewall = Get-RrTestFirewall -State $state
        $firewall['gpo'] | Should -BeTrue
        @($firewall['rdpRules'] | Where-Object { $_['store'] -eq 'gpo' } | ForEach-Object { $_['name'] }) | Should -Be @('RemoteDesktop-UserMode-In-TCP-GPO')
    }

    It 'lists the custom-port rule of this port after the built-in ones, and at most 6 rules' {
        $state = New-RrTestWindowsState
        Set-RrTestDword -State $state -Key $RrTestRdpTcpKey -Name 'PortNumber' -Value 50001
        foreach ($port in @(50002, 50003, 50004)) { Add-RrTestRule -State $state -Name ('RdpRemediator-RDP-TCP-' + $port) -LocalPorts @([string]$port) -Service 'termservice' }
        Add-RrTestRule -State $state -Name 'RdpRemediator-RDP-TCP-50001' -LocalPorts @('50001') -Service 'termservice' -Profiles @('Public')
        $firewall = Get-RrTestFirewall -State $state
        @($firewall['rdpRules'] | ForEach-Object { $_['name'] }) | Should -Be @($TcpRule, $UdpRule, $ShadowRule, 'RdpRemediator-RDP-TCP-50001', 'RdpRemediator-RDP-TCP-50002', 'RdpRemediator-RDP-TCP-50003')
        $firewall['rdpRules'][3]['profiles'] | Should -Be @('Public')
        $firewall['portAdmitted'] | Should -BeTrue
    }

    It 'when the firewall cannot be read: readable false, rules unknown, and never reported as blocking' {
        $state = New-RrTestWindowsState
        $state['firewall']['readable'] = $false
        $state['registry']['HKLM\SOFTWARE\Policies\Microsoft\WindowsFirewall'] = [ordered]@{}
        $firewall = Get-RrTestFirewall -State $state
        $firewall['readable'] | Should -BeFalse
        # The connected networks are still known (Get-NetConnectionProfile is not the firewall).
        $firewall['activeProfiles'] | Should -Be @('Public')
        @($firewall['enabledProfiles']).Count | Should -Be 0
        @($firewall['rdpRules']).Count | Should -Be 0
        $firewall['portAdmitted'] | Should -BeTrue
        $firewall['gpo'] | Should -BeTrue
    }
}

Describe 'enable-rdp-firewall-rules for PortNumber 3389' {
    BeforeAll {
        $state = New-RrTestWindowsState
        (Get-RrTestRule -State $state -Name $TcpRule)['enabled'] = $false
        (Get-RrTestRule -State $state -Name $UdpRule)['enabled'] = $false
        Set-RrTestState -State $state
        $fix = Invoke-RrTestFix -Actions 'enable-rdp-firewall-rules'
        $action = $fix.Json['actions'][0]
        $ops = Get-RrTestWriteOps
    }

    It 'enables the User Mode TCP and UDP rules, and not Shadow' {
        $action['changed'] | Should -BeTrue
        (Get-RrTestRule -Name $TcpRule)['enabled'] | Should -BeTrue
        (Get-RrTestRule -Name $UdpRule)['enabled'] | Should -BeTrue
        (Get-RrTestRule -Name $ShadowRule)['enabled'] | Should -BeFalse
        @($ops | Where-Object { $_ -like 'Enable-RrFirewallRule *' }) | Should -Be @("Enable-RrFirewallRule $TcpRule", "Enable-RrFirewallRule $UdpRule")
    }

    It 'adds no rule and changes no profile or port' {
        @($global:RrDouble['State']['firewall']['rules']).Count | Should -Be 3
        @($ops | Where-Object { $_ -like 'New-RrFirewallPortRule *' -or $_ -like 'Disable-RrFirewallRule *' }).Count | Should -Be 0
        (Get-RrTestRule -Name $TcpRule)['localPorts'] | Should -Be @('3389')
        (Get-RrTestRule -Name $TcpRule)['profiles'] | Should -Be @('Domain', 'Private', 'Public')
    }

    It 'reports every built-in rule''s state, the custom rule and portAdmitted, before and after' {
        @($action['before'].Keys) | Should -Be @($TcpRule, $UdpRule, $ShadowRule, 'customRule', 'portAdmitted')
        $action['before'][$TcpRule] | Should -BeFalse
        $action['before'][$UdpRule] | Should -BeFalse
        $action['before']['portAdmitted'] | Should -BeFalse
        $action['after'][$TcpRule] | Should -BeTrue
        $action['after'][$UdpRule] | Should -BeTrue
        $action['after'][$ShadowRule] | Should -BeFalse
        $action['after']['customRule'] | Should -BeFalse
        $action['after']['portAdmitted'] | Should -BeTrue
        $action['verified'] | Should -BeTrue
        $action.Contains('restore') | Should -BeFalse
        $fix.Json['verify']['firewall']['portAdmitted'] | Should -BeTrue
    }

    It 'exports the policy and writes the note of the rule states before any change' {
        $export = [array]::IndexOf($ops, "Export-RrFirewallPolicy $RunDir\firewall.wfw")
        $note = [array]::IndexOf($ops, "Write-RrTextFile $RunDir\firewall-rules.json")
        $firstEnable = [array]::IndexOf($ops, "Enable-RrFirewallRule $TcpRule")
        $export | Should -BeGreaterOrEqual 0
        $note | Should -BeGreaterThan $export
        $firstEnable | Should -BeGreaterThan $note
        $action['backup'] | Should -Be ("$RunDir\firewall.wfw;$RunDir\firewall-rules.json")
        $text = Get-RrTestFileContent -Path "$RunDir\firewall-rules.json"
        $saved = ConvertFrom-Json -InputObject $text -AsHashtable
        $saved['port'] | Should -Be 3389
        $saved['before'][$TcpRule] | Should -BeFalse
        $saved['before'][$ShadowRule] | Should -BeFalse
        $saved['enabled'] | Should -Be @($TcpRule, $UdpRule)
        $saved['undo'] | Should -Be @("Disable-NetFirewallRule -Name $TcpRule", "Disable-NetFirewallRule -Name $UdpRule")
        $saved['undoAll'] | Should -BeLike 'netsh advfirewall import "*firewall.wfw"'
    }

    It 'records the same in the manifest' {
        $entry = (Get-RrTestManifest)['actions'][0]
        $entry['id'] | Should -Be 'enable-rdp-firewall-rules'
        $entry['after']['portAdmitted'] | Should -BeTrue
        $entry['backup'] | Should -Be $action['backup']
    }

    It 'changes nothing on a rerun with the same RunId, and keeps the first run''s backups' {
        $before = $global:RrDouble['Writes'].Count
        $rerun = Invoke-RrTestFix -Actions 'enable-rdp-firewall-rules'
        $again = $rerun.Json['actions'][0]
        $again['changed'] | Should -BeFalse
        $again['verified'] | Should -BeTrue
        $again['backup'] | Should -BeNullOrEmpty
        # Only the backup directory (exists already) and the second manifest.
        @($global:RrDouble['Writes'] | Select-Object -Skip $before | ForEach-Object { $_.op }) | Should -Be @('New-RrDirectory', 'Write-RrTextFile')
        Get-RrTestManifest -Name 'manifest-2.json' | Should -Not -BeNullOrEmpty
    }
}

Describe 'enable-rdp-firewall-rules for a custom PortNumber' {
    BeforeAll {
        $state = New-RrTestWindowsState
        Set-RrTestDword -State $state -Key $RrTestRdpTcpKey -Name 'PortNumber' -Value 50001
        $state['tcpListeners'] = [object[]]@(50001)
        Set-RrTestState -State $state
        $fix = Invoke-RrTestFix -Actions 'enable-rdp-firewall-rules'
        $action = $fix.Json['actions'][0]
    }

    It 'adds exactly one rule: inbound Allow, TCP on that port only, for TermService, in the active profiles' {
        $action['changed'] | Should -BeTrue
        $added = @($global:RrDouble['State']['firewall']['rules'] | Where-Object { $_['name'] -like 'RdpRemediator-*' })
        $added.Count | Should -Be 1
        $rule = $added[0]
        $rule['name'] | Should -Be 'RdpRemediator-RDP-TCP-50001'
        $rule['direction'] | Should -Be 'Inbound'
        $rule['action'] | Should -Be 'Allow'
        $rule['protocol'] | Should -Be 'TCP'
        $rule['localPorts'] | Should -Be @('50001')
        $rule['service'] | Should -Be 'termservice'
        $rule['profiles'] | Should -Be @('Public')
        $rule['policyStore'] | Should -Be 'Local'
    }

    It 'leaves the built-in rules alone' {
        @($global:RrDouble['Writes'] | Where-Object { $_.op -like '*-RrFirewallRule' }).Count | Should -Be 0
        (Get-RrTestRule -Name $ShadowRule)['enabled'] | Should -BeFalse
    }

    It 'reports the custom rule, and verifies the port admitted' {
        $action['before']['customRule'] | Should -BeFalse
        $action['before']['portAdmitted'] | Should -BeFalse
        $action['after']['customRule'] | Should -BeTrue
        $action['after']['portAdmitted'] | Should -BeTrue
        $action['verified'] | Should -BeTrue
        $fix.Json['verify']['firewall']['rdpRules'][3]['name'] | Should -Be 'RdpRemediator-RDP-TCP-50001'
    }

    It 'is idempotent: a rerun adds no second rule' {
        $rerun = Invoke-RrTestFix -Actions 'enable-rdp-firewall-rules'
        $rerun.Json['actions'][0]['changed'] | Should -BeFalse
        $rerun.Json['actions'][0]['verified'] | Should -BeTrue
        @($global:RrDouble['State']['firewall']['rules'] | Where-Object { $_['name'] -like 'RdpRemediator-*' }).Count | Should -Be 1
    }

    It 'enables its own rule when it exists but is disabled, rather than add another' {
        $state = New-RrTestWindowsState
        Set-RrTestDword -State $state -Key $RrTestRdpTcpKey -Name 'PortNumber' -Value 50001
        Add-RrTestRule -State $state -Name 'RdpRemediator-RDP-TCP-50001' -LocalPorts @('50001') -Service 'termservice' -Enabled $false
        Set-RrTestState -State $state
        $again = (Invoke-RrTestFix -Actions 'enable-rdp-firewall-rules').Json['actions'][0]
        $again['verified'] | Should -BeTrue
        @(Get-RrTestWriteOps | Where-Object { $_ -clike '*-RrFirewall*Rule *' }) | Should -Be @('Enable-RrFirewallRule RdpRemediator-RDP-TCP-50001')
    }
}

Describe 'enable-rdp-firewall-rules refuses' {
    It 'when Group Policy manages the firewall: gpo-enforced, nothing changed' {
        $state = New-RrTestWindowsState
        (Get-RrTestRule -State $state -Name $TcpRule)['enabled'] = $false
        $state['registry']['HKLM\SOFTWARE\Policies\Microsoft\WindowsFirewall'] = [ordered]@{}
        Set-RrTestState -State $state
        $action = (Invoke-RrTestFix -Actions 'enable-rdp-firewall-rules').Json['actions'][0]
        $action['error']['code'] | Should -Be 'gpo-enforced'
        $action['changed'] | Should -BeFalse
        ConvertTo-Json -InputObject $action['after'] -Compress | Should -Be (ConvertTo-Json -InputObject $action['before'] -Compress)
        @(Get-RrTestWriteOps | Where-Object { $_ -notlike 'New-RrDirectory *' -and $_ -notlike 'Write-RrTextFile *manifest.json' }).Count | Should -Be 0
    }

    It 'when the firewall cannot be read: firewall-unreadable, values unknown, nothing changed' {
        $state = New-RrTestWindowsState
        $state['firewall']['readable'] = $false
        Set-RrTestState -State $state
        $fix = Invoke-RrTestFix -Actions 'enable-rdp-firewall-rules,restart-rdp-services'
        $action = $fix.Json['actions'][0]
        $action['error']['code'] | Should -Be 'firewall-unreadable'
        $action['verified'] | Should -BeFalse
        $null -eq $action['before']['portAdmitted'] | Should -BeTrue
        # A refusal, not a throw: the run goes on.
        $fix.Json['actions'][1]['id'] | Should -Be 'restart-rdp-services'
    }

    It 'when a Block rule keeps the port closed: not-applicable, the Block rule untouched' {
        $state = New-RrTestWindowsState
        Add-RrTestRule -State $state -Name 'Block-RDP' -Action 'Block'
        Set-RrTestState -State $state
        $action = (Invoke-RrTestFix -Actions 'enable-rdp-firewall-rules').Json['actions'][0]
        $action['error']['code'] | Should -Be 'not-applicable'
        $action['changed'] | Should -BeFalse
        (Get-RrTestRule -Name 'Block-RDP')['enabled'] | Should -BeTrue
    }
}

Describe 'enable-rdp-firewall-rules in the other paths' {
    It 'changes nothing when the port is admitted already' {
        Set-RrTestState -State (New-RrTestWindowsState)
        $action = (Invoke-RrTestFix -Actions 'enable-rdp-firewall-rules').Json['actions'][0]
        $action['changed'] | Should -BeFalse
        $action['verified'] | Should -BeTrue
        $action['backup'] | Should -BeNullOrEmpty
        $action['before']['portAdmitted'] | Should -BeTrue
        @(Get-RrTestWriteOps | Where-Object { $_ -like '*Firewall*' }).Count | Should -Be 0
    }

    It 'a dry run plans and writes nothing' {
        $state = New-RrTestWindowsState
        (Get-RrTestRule -State $state -Name $TcpRule)['enabled'] = $false
        Set-RrTestState -State $state
        $fix = Invoke-RrTestFix -Actions 'enable-rdp-firewall-rules' -DryRun 'true'
        $action = $fix.Json['actions'][0]
        @($global:RrDouble['Writes']).Count | Should -Be 0
        $action['changed'] | Should -BeFalse
        $action['verified'] | Should -BeFalse
        $action['before'][$TcpRule] | Should -BeFalse
        $action['after'][$TcpRule] | Should -BeTrue
        $action['after'][$ShadowRule] | Should -BeFalse
        $action['after']['portAdmitted'] | Should -BeTrue
        (Get-RrTestRule -Name $TcpRule)['enabled'] | Should -BeFalse
    }

    It 'a dry run for a custom port plans the custom rule' {
        $state = New-RrTestWindowsState
        Set-RrTestDword -State $state -Key $RrTestRdpTcpKey -Name 'PortNumber' -Value 50001
        Set-RrTestState -State $state
        $action = (Invoke-RrTestFix -Actions 'enable-rdp-firewall-rules' -DryRun 'true').Json['actions'][0]
        $action['after']['customRule'] | Should -BeTrue
        @($global:RrDouble['Writes']).Count | Should -Be 0
    }

    It 'fails before any change when netsh cannot export the policy' {
        $state = New-RrTestWindowsState
        (Get-RrTestRule -State $state -Name $TcpRule)['enabled'] = $false
        $state['nativeResults']['netsh.exe advfirewall'] = [ordered]@{ exitCode = 1; output = 'An error occurred while attempting to contact the Windows Defender Firewall service.' }
        Set-RrTestState -State $state
        $action = (Invoke-RrTestFix -Actions 'enable-rdp-firewall-rules').Json['actions'][0]
        $action['error']['code'] | Should -Be 'exception'
        $action['error']['message'] | Should -BeLike '*netsh advfirewall export failed with exit code 1*'
        $action['changed'] | Should -BeFalse
        @(Get-RrTestWriteOps | Where-Object { $_ -like 'Enable-RrFirewallRule *' -or $_ -like 'Write-RrTextFile *firewall-rules.json' }).Count | Should -Be 0
        (Get-RrTestRule -Name $TcpRule)['enabled'] | Should -BeFalse
    }

    It 'adds its own rule for 3389 when the built-in TCP rule is gone from the local store' {
        $state = New-RrTestWindowsState
        $state['firewall']['rules'] = [object[]]@($state['firewall']['rules'] | Where-Object { $_['name'] -ne $TcpRule })
        Set-RrTestState -State $state
        $action = (Invoke-RrTestFix -Actions 'enable-rdp-firewall-rules').Json['actions'][0]
        $action['verified'] | Should -BeTrue
        @(Get-RrTestWriteOps | Where-Object { $_ -like 'New-RrFirewallPortRule *' }) | Should -Be @('New-RrFirewallPortRule RdpRemediator-RDP-TCP-3389')
    }

    It 'a rerun after the rules were turned off again keeps the first export and note' {
        $state = New-RrTestWindowsState
        (Get-RrTestRule -State $state -Name $TcpRule)['enabled'] = $false
        Set-RrTestState -State $state
        $null = Invoke-RrTestFix -Actions 'enable-rdp-firewall-rules'
        $note = Get-RrTestFileContent -Path "$RunDir\firewall-rules.json"
        (Get-RrTestRule -Name $TcpRule)['enabled'] = $false
        (Get-RrTestRule -Name $UdpRule)['enabled'] = $false
        $before = $global:RrDouble['Writes'].Count
        $again = (Invoke-RrTestFix -Actions 'enable-rdp-firewall-rules').Json['actions'][0]
        $again['verified'] | Should -BeTrue
        $later = @($global:RrDouble['Writes'] | Select-Object -Skip $before | ForEach-Object { $_.op + ' ' + $_.target })
        @($later | Where-Object { $_ -like 'Export-RrFirewallPolicy *' -or $_ -like '*firewall-rules.json' }).Count | Should -Be 0
        Get-RrTestFileContent -Path "$RunDir\firewall-rules.json" | Should -Be $note
    }
}
