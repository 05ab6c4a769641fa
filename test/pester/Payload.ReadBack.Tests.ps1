# The probe reads back what earlier fix runs with its RunId left on the VM (ReadManifests=true):
# a remediation delivered again after its fix was posted judges from this instead of running the
# fix twice. Also the small JSON reader that parses the manifests, and the size guard on a
# read-back line (it may shorten only display text in previous).

BeforeAll {
    Set-StrictMode -Version 3.0
    $ErrorActionPreference = 'Stop'
    . (Join-Path $PSScriptRoot 'Load-Payload.ps1')
    $RunDir = 'C:\ProgramData\RdpRemediation\' + $RrTestRunId

    function Invoke-RrTestProbe {
        param([string]$ReadManifests = 'true', [string]$RunId = $RrTestRunId, [int]$MaxBytes = 4094)
        $result = Invoke-RrProbe -RunId $RunId -ReadManifests $ReadManifests
        $line = ConvertTo-RrResultLine -Result $result -MaxBytes $MaxBytes
        return [pscustomobject]@{ Line = $line; Bytes = [System.Text.Encoding]::UTF8.GetByteCount($line); Json = (ConvertFrom-Json -InputObject $line -AsHashtable) }
    }

}

Describe 'ConvertFrom-RrJsonText' {
    It 'reads what ConvertTo-Json writes, in Windows PowerShell 5.1''s style too' {
        # 5.1 indents with four spaces, pads after the colon and escapes quotes and <>&' as \u.
        $text = "{`r`n    ""id"":  ""disable-nla"",`r`n    ""n"":  -12,`r`n    ""x"":  2.5e1,`r`n    ""ok"":  true,`r`n    ""no"":  false,`r`n    ""none"":  null,`r`n    ""s"":  ""a\u0027b \""q\"" \\ \/ \u00e9\n"",`r`n    ""list"":  [`r`n                 1,`r`n                 [],`r`n                 {}`r`n             ]`r`n}"
        $value = ConvertFrom-RrJsonText -Text $text
        $value | Should -BeOfType ([System.Collections.Specialized.OrderedDictionary])
        @($value.Keys) | Should -Be @('id', 'n', 'x', 'ok', 'no', 'none', 's', 'list')
        $value['id'] | Should -BeExactly 'disable-nla'
        $value['n'] | Should -BeOfType ([int64])
        $value['n'] | Should -Be -12
        $value['x'] | Should -Be 25
        $value['ok'] | Should -BeTrue
        $value['no'] | Should -BeFalse
        $null -eq $value['none'] | Should -BeTrue
        $value['s'] | Should -BeExactly ("a'b ""q"" \ / " + [char]0xe9 + "`n")
        , $value['list'] | Should -BeOfType ([object[]])
        $value['list'].Count | Should -Be 3
        , $value['list'][1] | Should -BeOfType ([object[]])
        $value['list'][1].Count | Should -Be 0
        $value['list'][2] | Should -BeOfType ([System.Collections.Specialized.OrderedDictionary])
    }

    It 'round-trips a manifest the fix wrote' {
        Set-RrTestState -State (New-RrTestWindowsState)
        $null = Invoke-RrTestFix -Actions 'disable-nla'
        $text = Get-RrTestFileContent -Path ($RunDir + '\manifest.json')
        (ConvertTo-Json -InputObject (ConvertFrom-RrJsonText -Text $text) -Depth 10 -Compress) | Should -BeExactly (ConvertTo-Json -InputObject (ConvertFrom-Json -InputObject $text -AsHashtable) -Depth 10 -Compress)
    }

    It 'throws on anything that is not one JSON value' {
        foreach ($bad in @('', '{', '{"a":1', '{"a" 1}', '[1,]x', '{"a":1}}', '{"a":tru}', '"open', '{"a":1,}', '{a:1}')) {
            { ConvertFrom-RrJsonText -Text $bad } | Should -Throw -Because $bad
        }
    }
}

Describe 'the probe with ReadManifests' {
    It 'adds no previous without the parameter, or with false' {
        Set-RrTestState -State (New-RrTestWindowsState)
        $null = Invoke-RrTestFix -Actions 'disable-nla'
        (Invoke-RrTestProbe -ReadManifests '').Json.Contains('previous') | Should -BeFalse
        (Invoke-RrTestProbe -ReadManifests 'false').Json.Contains('previous') | Should -BeFalse
    }

    It 'refuses a value other than true or false, case-sensitively' {
        Set-RrTestState -State (New-RrTestWindowsState)
        $probe = Invoke-RrTestProbe -ReadManifests 'True'
        $probe.Json['ok'] | Should -BeFalse
        $probe.Json['error']['code'] | Should -Be 'invalid-parameters'
    }

    It 'reports no runs when the RunId left nothing, and changes nothing' {
        Set-RrTestState -State (New-RrTestWindowsState)
        $probe = Invoke-RrTestProbe
        $probe.Json['ok'] | Should -BeTrue
        $probe.Json['previous']['dir'] | Should -BeExactly $RunDir
        @($probe.Json['previous']['runs']).Count | Should -Be 0
        $probe.Json['previous']['unreadable'] | Should -Be 0
        $global:RrDouble['WriteCount'] | Should -Be 0
    }

    It 'returns every run''s actions as the fix reported them, in sequence order, restore included' {
        Set-RrTestState -State (New-RrTestWindowsState)
        $first = Invoke-RrTestFix -Actions 'disable-nla,restart-rdp-services'
        $second = Invoke-RrTestFix -Actions 'enable-tls12-server'
        $writes = $global:RrDouble['WriteCount']
        $probe = Invoke-RrTestProbe
        $global:RrDouble['WriteCount'] | Should -Be $writes -Because 'the read-back writes nothing'
        $runs = @($probe.Json['previous']['runs'])
        @($runs | ForEach-Object { $_['sequence'] }) | Should -Be @(1, 2)
        (ConvertTo-Json -InputObject $runs[0]['actions'] -Depth 10 -Compress) | Should -BeExactly (ConvertTo-Json -InputObject $first.Json['actions'] -Depth 10 -Compress)
        (ConvertTo-Json -InputObject $runs[1]['actions'] -Depth 10 -Compress) | Should -BeExactly (ConvertTo-Json -InputObject $second.Json['actions'] -Depth 10 -Compress)
        $runs[0]['actions'][0]['restore']['parameters']['RestoreUserAuthentication'] | Should -BeExactly '1'
        $runs[0]['actions'][1].Contains('restore') | Should -BeFalse -Because 'only a security-lowering change carries one'
        $probe.Json['facts']['rdp']['userAuthentication'] | Should -Be 0 -Because 'the facts are read as they are now'
    }

    It 'counts a manifest that cannot be parsed, and ignores files that are not manifests' {
        Set-RrTestState -State (New-RrTestWindowsState)
        $null = Invoke-RrTestFix -Actions 'disable-nla'
        $files = $global:RrDouble['State']['files']
        $files[$RunDir + '\manifest-2.json'] = [ordered]@{ type = 'file'; sddl = 'O:SYG:SYD:(A;;FA;;;SY)'; content = '{"kind":"rdp-remediator-fix-manifest","actions":[{"id":"disable-n' }
        $files[$RunDir + '\manifest-3.json'] = [ordered]@{ type = 'file'; sddl = 'O:SYG:SYD:(A;;FA;;;SY)'; content = '{"kind":"something else","actions":[]}' }
        $files[$RunDir + '\manifest.json.bak'] = [ordered]@{ type = 'file'; sddl = 'O:SYG:SYD:(A;;FA;;;SY)'; content = 'x' }
        $probe = Invoke-RrTestProbe
        @($probe.Json['previous']['runs'] | ForEach-Object { $_['sequence'] }) | Should -Be @(1)
        $probe.Json['previous']['unreadable'] | Should -Be 2
    }

    It 'fails the probe, not silently, when the directory cannot be listed' {
        Set-RrTestState -State (New-RrTestWindowsState)
        $global:RrDouble['State']['files'][$RunDir] = [ordered]@{ type = 'directory'; sddl = 'O:BUG:BUD:P(A;;FA;;;BU)' }
        $probe = Invoke-RrTestProbe
        $probe.Json['ok'] | Should -BeFalse
        $probe.Json['error']['code'] | Should -Be 'exception'
    }
}

Describe 'the size guard on a read-back line' {
    BeforeAll {
        Set-RrTestState -State (New-RrTestWindowsState)
        # Four runs of four actions: far more than one remediation ever leaves (it posts one fix).
        foreach ($i in 1..4) {
            $null = Invoke-RrTestFix -Actions 'enable-tls12-server,repair-key-acl,disable-nla,restart-rdp-services'
        }
        $full = Invoke-RrTestProbe -MaxBytes 100000
    }

    It 'keeps the line whole when it fits' {
        $full.Bytes | Should -BeGreaterThan 4094
        $full.Json['ok'] | Should -BeTrue
    }

    It 'shortens only display text in previous: ids, changed, verified, error codes, restore and sequences stay' {
        $line = Invoke-RrTestProbe
        $line.Bytes | Should -BeLessOrEqual 4094
        $line.Json['ok'] | Should -BeTrue
        $decisions = {
            param($previous)
            foreach ($run in @($previous['runs'])) {
                foreach ($action in @($run['actions'])) {
                    $restore = $null
                    if ($action.Contains('restore')) { $restore = ConvertTo-Json -InputObject $action['restore'] -Depth 5 -Compress }
                    $code = $null
                    if ($null -ne $action['error']) { $code = $action['error']['code'] }
                    '{0}|{1}|{2}|{3}|{4}|{5}' -f $run['sequence'], $action['id'], $action['changed'], $action['verified'], $code, $restore
                }
            }
        }
        @(& $decisions $line.Json['previous']) | Should -Be @(& $decisions $full.Json['previous'])
        $line.Json['previous']['unreadable'] | Should -Be $full.Json['previous']['unreadable']
        (ConvertTo-RrTestDecisionView -Facts $line.Json['facts']) | Should -BeExactly (ConvertTo-RrTestDecisionView -Facts $full.Json['facts'])
    }

    It 'empties before / after of earlier runs only after every text is cut' {
        # 5,803 bytes in full, 4,891 with every display text cut to '...'; under 4,500 only with
        # the earlier runs' before / after emptied.
        $tight = Invoke-RrTestProbe -MaxBytes 4500
        $tight.Json['ok'] | Should -BeTrue
        $tight.Bytes | Should -BeLessOrEqual 4500
        @($tight.Json['previous']['runs'][0]['actions'] | Where-Object { $_['before'].Count -gt 0 }).Count | Should -Be 0
        @($tight.Json['previous']['runs'] | ForEach-Object { @($_['actions']).Count }) | Should -Be @(4, 4, 4, 4)
    }

    It 'reports result-too-large rather than drop a decision value' {
        $tiny = Invoke-RrTestProbe -MaxBytes 600
        $tiny.Json['ok'] | Should -BeFalse
        $tiny.Json['error']['code'] | Should -Be 'result-too-large'
    }
}
