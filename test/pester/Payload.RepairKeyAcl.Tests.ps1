# repair-key-acl decides the key file's repair on its ACL as it is after the folder repair:
# setting the MachineKeys DACL makes Windows (and the double) recompute the children's
# inherited ACEs, and the default folder DACL passes nothing on.

BeforeAll {
    Set-StrictMode -Version 3.0
    $ErrorActionPreference = 'Stop'
    . (Join-Path $PSScriptRoot 'Load-Payload.ps1')

    function New-RrTestInheritedReadState {
        # NETWORK SERVICE reads the key only through an ACE inherited from a non-default folder
        # ACL (emulator/fleet.ts key-file-inherited-read): the probe finds the file ok, the folder not.
        $state = New-RrTestWindowsState
        $state['files'][$RrTestMachineKeys]['sddl'] = 'O:SYG:SYD:AI(A;OICIID;FA;;;SY)(A;OICIID;FA;;;BA)(A;OICI;FR;;;NS)'
        $state['files'][(Get-RrTestKeyFile -State $state)]['sddl'] = 'O:SYG:SYD:AI(A;;FA;;;SY)(A;;FA;;;BA)(A;ID;FA;;;SY)(A;ID;FA;;;BA)(A;ID;FR;;;NS)'
        return $state
    }

    function Get-RrTestWriteOps {
        return @($global:RrDouble['Writes'] | ForEach-Object { $_.op + ' ' + $_.target })
    }
}

Describe 'repair-key-acl when NETWORK SERVICE reads the key file only by inheritance' {
    BeforeEach {
        Set-RrTestState -State (New-RrTestInheritedReadState)
        $before = Get-RrKeyFacts
    }

    It 'starts from a key file that is ok and a folder that is not' {
        $before['fileOk'] | Should -BeTrue
        $before['folderOk'] | Should -BeFalse
    }

    It 'repairs the file too, once the folder repair took the inherited read away, and verifies' {
        $fix = Invoke-RrTestFix -Actions 'repair-key-acl'
        $action = $fix.Json['actions'][0]
        $action['error'] | Should -BeNullOrEmpty
        $action['changed'] | Should -BeTrue
        $action['verified'] | Should -BeTrue
        $now = Get-RrKeyFacts
        $now['folderOk'] | Should -BeTrue
        $now['fileOk'] | Should -BeTrue
        $action['after']['fileSddl'] | Should -Be $now['fileSddl']
        $action['after']['folderSddl'] | Should -Be $now['folderSddl']
        $keyFile = Get-RrTestKeyFile
        $ops = Get-RrTestWriteOps
        $ops | Should -Contain ('Set-RrSddl ' + $RrTestMachineKeys)
        $ops | Should -Contain ('Invoke-RrIcaclsGrant ' + $keyFile)
        # The folder first, then the file.
        [array]::IndexOf($ops, ('Set-RrSddl ' + $RrTestMachineKeys)) | Should -BeLessThan ([array]::IndexOf($ops, ('Invoke-RrIcaclsGrant ' + $keyFile)))
        $fix.Json['verify']['keys']['fileOk'] | Should -BeTrue
    }

    It 'plans the file repair in a dry run, on the ACL the file will have after the folder repair' {
        $fix = Invoke-RrTestFix -Actions 'repair-key-acl' -DryRun 'true'
        $action = $fix.Json['actions'][0]
        $fix.Json['dryRun'] | Should -BeTrue
        $action['changed'] | Should -BeFalse
        $action['verified'] | Should -BeFalse
        @($global:RrDouble['Writes']).Count | Should -Be 0
        $planned = [string]$action['after']['fileSddl']
        $planned | Should -Not -Be $before['fileSddl']
        # No inherited ACE survives the folder repair; the planned grants are explicit.
        $planned | Should -Not -Match ';ID[A-Z]*;|;[A-Z]*ID;'
        Test-RrKeyFileSddl -Sddl $planned | Should -BeTrue
        $action['after']['folderSddl'] | Should -Be 'D:PAI(A;;0x12019f;;;WD)(A;;FA;;;BA)'
    }

    It 'changes nothing on a second run' {
        $null = Invoke-RrTestFix -Actions 'repair-key-acl'
        $global:RrDouble['Writes'].Clear()
        $second = Invoke-RrTestFix -Actions 'repair-key-acl' -RunId '0badc0de-1234-4abc-8def-0123456789ac'
        $second.Json['actions'][0]['changed'] | Should -BeFalse
        $second.Json['actions'][0]['verified'] | Should -BeTrue
        @(Get-RrTestWriteOps | Where-Object { $_ -notlike 'New-RrDirectory *' -and $_ -notlike 'Write-RrTextFile *' }) | Should -Be @()
    }
}

Describe 'repair-key-acl when the key file holds its own grants' {
    It 'repairs the folder and leaves the file alone' {
        # emulator/fleet.ts machinekeys-folder-acl: the file keeps explicit SY, BA and NS ACEs.
        $state = New-RrTestWindowsState
        $state['files'][$RrTestMachineKeys]['sddl'] = 'O:SYG:SYD:AI(A;OICIID;FA;;;SY)(A;OICIID;FA;;;BA)'
        $state['files'][(Get-RrTestKeyFile -State $state)]['sddl'] = 'O:SYG:SYD:AI(A;;FA;;;SY)(A;;FA;;;BA)(A;;FR;;;NS)(A;ID;FA;;;SY)(A;ID;FA;;;BA)'
        Set-RrTestState -State $state
        $dry = Invoke-RrTestFix -Actions 'repair-key-acl' -DryRun 'true'
        # Predicted: the inherited ACEs go, the file's own grants stay ok, no file repair planned.
        $dry.Json['actions'][0]['after']['fileSddl'] | Should -Be 'O:SYG:SYD:AI(A;;FA;;;SY)(A;;FA;;;BA)(A;;FR;;;NS)'
        $fix = Invoke-RrTestFix -Actions 'repair-key-acl'
        $fix.Json['actions'][0]['verified'] | Should -BeTrue
        @(Get-RrTestWriteOps | Where-Object { $_ -like 'Invoke-RrIcacls* *f686aace*' }) | Should -Be @()
        (Get-RrKeyFacts)['fileOk'] | Should -BeTrue
    }
}

Describe 'Get-RrSddlWithoutInheritedAces' {
    It 'drops only the ACEs flagged ID, whatever other flags they carry' {
        Get-RrSddlWithoutInheritedAces -Sddl 'O:SYG:SYD:AI(A;;FA;;;SY)(A;ID;FR;;;NS)(A;OICIID;FA;;;BA)(A;CI;FA;;;WD)' | Should -Be 'O:SYG:SYD:AI(A;;FA;;;SY)(A;CI;FA;;;WD)'
    }
    It 'leaves a protected DACL, an empty or a missing SDDL as it is' {
        Get-RrSddlWithoutInheritedAces -Sddl 'O:SYG:SYD:PAI(A;;FA;;;SY)(A;ID;FR;;;NS)' | Should -Be 'O:SYG:SYD:PAI(A;;FA;;;SY)(A;ID;FR;;;NS)'
        Get-RrSddlWithoutInheritedAces -Sddl '' | Should -Be ''
        Get-RrSddlWithoutInheritedAces -Sddl 'O:SYG:SY' | Should -Be 'O:SYG:SY'
    }
}
