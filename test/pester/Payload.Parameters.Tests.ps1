# No empty Run Command parameter: the agent builds an unquoted command line, so an empty value
# leaves `-Name` without an argument and fix.ps1 dies in parameter binding without a result
# line. The restore parameters are optional (absent = leave alone), never '', and the restore
# record a security-lowering action writes holds only the parameters that carry a value.

BeforeAll {
    Set-StrictMode -Version 3.0
    $ErrorActionPreference = 'Stop'
    . (Join-Path $PSScriptRoot 'Load-Payload.ps1')

    $FixScript = if ([string]::IsNullOrEmpty($env:RR_PESTER_FIX)) { Join-Path $RrRepositoryRoot 'scripts/fix.ps1' } else { $env:RR_PESTER_FIX }
    # fix.ps1 with this loader in place of the libraries (what composition splices in there).
    $TestDir = Join-Path ([System.IO.Path]::GetTempPath()) ('rr-pester-' + [guid]::NewGuid().ToString('n'))
    $null = New-Item -ItemType Directory -Path $TestDir
    $EntryScript = Join-Path $TestDir 'script0.ps1'
    $loader = ". '" + (Join-Path $PSScriptRoot 'Load-Payload.ps1').Replace("'", "''") + "'"
    $entry = (Get-Content -LiteralPath $FixScript -Raw).Replace('#include-libraries', $loader)
    Set-Content -LiteralPath $EntryScript -Value $entry -Encoding utf8

    function Invoke-RrTestAgent {
        param([System.Collections.IDictionary]$Parameters)
        # As the Run Command agent calls the saved script: `-Name value` tokens, not quoted,
        # `^` removed, so values split at white space and an empty one leaves `-Name` bare.
        $tokens = foreach ($name in $Parameters.Keys) { '-' + $name; ([string]$Parameters[$name]).Replace('^', '') }
        $commandLine = "& '" + $EntryScript.Replace("'", "''") + "' " + ($tokens -join ' ')
        return , @(& ([scriptblock]::Create($commandLine)))
    }

    $ParamBlock = [System.Management.Automation.Language.Parser]::ParseFile($FixScript, [ref]$null, [ref]$null).ParamBlock
    function Get-RrTestParameterAst {
        param([string]$Name)
        return ($ParamBlock.Parameters | Where-Object { $_.Name.VariablePath.UserPath -eq $Name })
    }
}

AfterAll {
    if ($null -ne $TestDir -and (Test-Path -LiteralPath $TestDir)) {
        Remove-Item -LiteralPath $TestDir -Recurse -Force
    }
}

Describe 'fix.ps1 declares the restore parameters optional, without an empty value' -ForEach @(
    @{ Name = 'RestoreSecurityLayer'; Set = @('0', '1', '2') }
    @{ Name = 'RestoreUserAuthentication'; Set = @('0', '1') }
) {
    It '<Name>: [ValidateSet] of exactly the values, no [AllowEmptyString()], not mandatory, no default' {
        $parameter = Get-RrTestParameterAst -Name $Name
        $parameter | Should -Not -BeNullOrEmpty
        $validateSet = $parameter.Attributes | Where-Object { $_.TypeName.Name -eq 'ValidateSet' }
        @($validateSet.PositionalArguments | ForEach-Object { $_.Value }) | Should -Be $Set
        @($parameter.Attributes | Where-Object { $_.TypeName.Name -eq 'AllowEmptyString' }) | Should -Be @()
        @($parameter.Attributes | Where-Object { $_.TypeName.Name -eq 'Parameter' } | ForEach-Object { $_.NamedArguments } | Where-Object { $_.ArgumentName -eq 'Mandatory' }) | Should -Be @()
        $parameter.DefaultValue | Should -BeNullOrEmpty
    }
}

Describe 'fix.ps1 called as the agent calls it' {
    BeforeEach {
        Set-RrTestState -State (New-RrTestWindowsState)
    }

    It 'runs with the restore parameters absent and prints one result line' {
        $output = Invoke-RrTestAgent -Parameters ([ordered]@{ RunId = $RrTestRunId; Actions = 'disable-nla'; DryRun = 'false' })
        $output.Count | Should -Be 1
        $result = ConvertFrom-Json -InputObject $output[0] -AsHashtable
        $result['ok'] | Should -BeTrue
        $result['actions'][0]['changed'] | Should -BeTrue
    }

    It 'restores only the value whose parameter is given, and leaves the other alone' {
        Set-RrTestDword -State $global:RrDouble['State'] -Key $RrTestRdpTcpKey -Name 'UserAuthentication' -Value 0
        Set-RrTestDword -State $global:RrDouble['State'] -Key $RrTestRdpTcpKey -Name 'SecurityLayer' -Value 1
        $output = Invoke-RrTestAgent -Parameters ([ordered]@{ RunId = $RrTestRunId; Actions = 'restore-rdp-security'; DryRun = 'false'; RestoreUserAuthentication = '1' })
        $result = ConvertFrom-Json -InputObject $output[-1] -AsHashtable
        $result['actions'][0]['verified'] | Should -BeTrue
        $result['actions'][0]['after']['userAuthentication'] | Should -Be 1
        $result['actions'][0]['after']['securityLayer'] | Should -Be 1
        @($global:RrDouble['Writes'] | Where-Object { $_.op -eq 'Set-RrRegistryValue' } | ForEach-Object { $_.detail }) | Should -Be @('UserAuthentication = dword:00000001')
    }

    It 'refuses an explicit empty value in binding, so the caller must leave it out' {
        { & $EntryScript -RunId $RrTestRunId -Actions 'disable-nla' -DryRun 'false' -RestoreSecurityLayer '' } | Should -Throw -ErrorId 'ParameterArgumentValidationError,script0.ps1'
    }

    It 'dies in binding, without a result line, when an empty value reaches the agent''s command line' {
        # Why composePayload never sends one: `-RestoreSecurityLayer` is left without an argument.
        { Invoke-RrTestAgent -Parameters ([ordered]@{ RunId = $RrTestRunId; Actions = 'disable-nla'; DryRun = 'false'; RestoreSecurityLayer = ''; RestoreUserAuthentication = '' }) } |
            Should -Throw -ExceptionType ([System.Management.Automation.ParameterBindingException])
    }
}

Describe 'the restore record of a security-lowering change' {
    It 'disable-nla names only RestoreUserAuthentication' {
        Set-RrTestState -State (New-RrTestWindowsState)
        $restore = (Invoke-RrTestFix -Actions 'disable-nla').Json['actions'][0]['restore']
        $restore['action'] | Should -Be 'restore-rdp-security'
        @($restore['parameters'].Keys) | Should -Be @('RestoreUserAuthentication')
        $restore['parameters']['RestoreUserAuthentication'] | Should -Be '1'
    }

    It 'relax-security-layer names both, with the values before the change' {
        Set-RrTestState -State (New-RrTestWindowsState)
        $restore = (Invoke-RrTestFix -Actions 'relax-security-layer').Json['actions'][0]['restore']
        @($restore['parameters'].Keys) | Should -Be @('RestoreSecurityLayer', 'RestoreUserAuthentication')
        $restore['parameters']['RestoreSecurityLayer'] | Should -Be '2'
        $restore['parameters']['RestoreUserAuthentication'] | Should -Be '1'
    }

    It 'holds no empty value, in the result or the manifest, and can be sent back as it is' {
        Set-RrTestState -State (New-RrTestWindowsState)
        $fix = Invoke-RrTestFix -Actions 'disable-nla,relax-security-layer'
        $records = @($fix.Json['actions'] | ForEach-Object { $_['restore'] }) + @((Get-RrTestManifest)['actions'] | ForEach-Object { $_['restore'] })
        foreach ($record in $records) {
            foreach ($value in $record['parameters'].Values) {
                $value | Should -Match '^[A-Za-z0-9,._-]+$'
            }
        }
        # Undo both changes, last first, each record sent as the agent would send it.
        $run = 0
        foreach ($index in @(1, 0)) {
            $parameters = [ordered]@{ RunId = ('0badc0de-1234-4abc-8def-00000000000' + ($run++)); Actions = 'restore-rdp-security'; DryRun = 'false' }
            $record = $fix.Json['actions'][$index]['restore']['parameters']
            foreach ($name in $record.Keys) { $parameters[$name] = $record[$name] }
            $result = ConvertFrom-Json -InputObject (Invoke-RrTestAgent -Parameters $parameters)[-1] -AsHashtable
            $result['actions'][0]['verified'] | Should -BeTrue
        }
        (Get-RrRdpSecuritySettings)['securityLayer'] | Should -Be 2
        (Get-RrRdpSecuritySettings)['userAuthentication'] | Should -Be 1
    }
}
