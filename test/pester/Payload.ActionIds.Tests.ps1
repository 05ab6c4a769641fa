# One list of actions: ACTION_IDS in src/contract/actions.ts. The fix payload's allow-list
# ($script:RrActionIds) is generated from it at compose time (test/unit/compose.test.ts
# checks the composed payload), Actions.ps1 keeps no copy, and every id has exactly one
# entry in the dispatch table ($script:RrActionHandlers).

BeforeDiscovery {
    . (Join-Path $PSScriptRoot 'Load-Payload.ps1')
    $DiscoveredIds = Get-RrTestActionIds
}

BeforeAll {
    Set-StrictMode -Version 3.0
    $ErrorActionPreference = 'Stop'
    . (Join-Path $PSScriptRoot 'Load-Payload.ps1')
    $ActionsFile = if ([string]::IsNullOrEmpty($env:RR_PESTER_ACTIONS)) { Join-Path $RrRepositoryRoot 'scripts/lib/Actions.ps1' } else { $env:RR_PESTER_ACTIONS }
    $Ids = Get-RrTestActionIds
}

Describe 'the action allow-list' {
    It 'is ACTION_IDS, in order, as the loader generated it' {
        $Ids.Count | Should -BeGreaterThan 0
        $script:RrActionIds | Should -Be $Ids
        Get-RrTestActionIdsLine | Should -BeExactly ('$script:RrActionIds = @(' + (($Ids | ForEach-Object { "'$_'" }) -join ', ') + ')')
    }

    It 'is not kept in Actions.ps1' {
        $ast = [System.Management.Automation.Language.Parser]::ParseFile($ActionsFile, [ref]$null, [ref]$null)
        $assignments = $ast.FindAll({
                param($node)
                $node -is [System.Management.Automation.Language.AssignmentStatementAst] -and
                $node.Left -is [System.Management.Automation.Language.VariableExpressionAst] -and
                $node.Left.VariablePath.UserPath -match '^(script:)?RrActionIds$'
            }, $true)
        @($assignments) | Should -Be @()
    }

    It 'is required: a fix without it stops with a message saying where it comes from' {
        # A fresh runspace, so the allow-list loaded above is not in scope.
        $shell = [powershell]::Create()
        try {
            $null = $shell.AddScript({
                    param($Root, $Actions)
                    Set-StrictMode -Version 3.0
                    $ErrorActionPreference = 'Stop'
                    . (Join-Path $Root 'emulator/double/WindowsDouble.ps1')
                    . (Join-Path $Root 'scripts/lib/Facts.ps1')
                    . $Actions
                    try {
                        $null = Invoke-RrFix -RunId '0badc0de-1234-4abc-8def-0123456789ab' -Actions 'disable-nla' -DryRun 'true' -RestoreSecurityLayer '' -RestoreUserAuthentication ''
                        'no error'
                    }
                    catch {
                        $_.Exception.Message
                    }
                }).AddArgument($RrRepositoryRoot).AddArgument($ActionsFile)
            $message = @($shell.Invoke())[-1]
        }
        finally {
            $shell.Dispose()
        }
        $message | Should -BeLike '*RrActionIds*src/payloads/compose.ts*'
    }

    It 'turns an id outside it away before any change' {
        Set-RrTestState -State (New-RrTestWindowsState)
        $fix = Invoke-RrTestFix -Actions 'disable-nla,rename-machinekeys'
        $fix.Json['ok'] | Should -BeFalse
        $fix.Json['error']['code'] | Should -Be 'invalid-parameters'
        @($fix.Json['actions']).Count | Should -Be 0
        @($global:RrDouble['Writes']).Count | Should -Be 0
    }
}

Describe 'the dispatch table' {
    It 'has one entry per id, and none other' {
        @($script:RrActionHandlers.Keys | Sort-Object) | Should -Be @($Ids | Sort-Object)
    }

    It 'names, for <_>, a function that runs the action and one that reads its state' -ForEach $DiscoveredIds {
        $handler = Get-RrActionHandler -Id $_
        Get-Command -Name $handler['Invoke'] -CommandType Function | Should -Not -BeNullOrEmpty
        Get-Command -Name $handler['Read'] -CommandType Function | Should -Not -BeNullOrEmpty
        # The reader returns the keys the action reports as before on a healthy VM.
        Set-RrTestState -State (New-RrTestWindowsState)
        $read = Read-RrActionState -Id $_
        $context = @{ DryRun = $true; BackupDir = $null; RestoreSecurityLayer = ''; RestoreUserAuthentication = ''; ChangedSoFar = $false }
        $result = Invoke-RrAction -Id $_ -Context $context -Result (New-RrActionResult -Id $_)
        @($read.Keys) | Should -Be @($result['before'].Keys)
    }

    It 'matches ids case-sensitively, like the allow-list' {
        { Get-RrActionHandler -Id 'Disable-NLA' } | Should -Throw '*No handler*'
    }
}
