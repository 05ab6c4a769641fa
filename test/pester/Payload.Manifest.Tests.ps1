# Reruns with the same RunId (a redelivered job) keep every run's record: manifest.json for the
# first run, manifest-2.json, manifest-3.json ... for the next ones; backups keep the first copy.

BeforeAll {
    Set-StrictMode -Version 3.0
    $ErrorActionPreference = 'Stop'
    . (Join-Path $PSScriptRoot 'Load-Payload.ps1')
    $RunDir = 'C:\ProgramData\RdpRemediation\' + $RrTestRunId
}

Describe 'a redelivered disable-nla with the same RunId' {
    BeforeAll {
        Set-RrTestState -State (New-RrTestWindowsState)
        $first = Invoke-RrTestFix -Actions 'disable-nla'
        $firstManifestText = Get-RrTestFileContent -Path ($RunDir + '\manifest.json')
        $second = Invoke-RrTestFix -Actions 'disable-nla'
        $third = Invoke-RrTestFix -Actions 'disable-nla,restart-rdp-services'
    }

    It 'changed NLA on the first run only' {
        $first.Json['actions'][0]['changed'] | Should -BeTrue
        $second.Json['actions'][0]['changed'] | Should -BeFalse
        $second.Json['actions'][0].Contains('restore') | Should -BeFalse
    }

    It 'keeps the first run''s manifest, with its restore record, unchanged' {
        Get-RrTestFileContent -Path ($RunDir + '\manifest.json') | Should -BeExactly $firstManifestText
        $manifest = Get-RrTestManifest
        $manifest['sequence'] | Should -Be 1
        $manifest['actions'][0]['id'] | Should -Be 'disable-nla'
        $manifest['actions'][0]['restore']['action'] | Should -Be 'restore-rdp-security'
        $manifest['actions'][0]['restore']['parameters']['RestoreUserAuthentication'] | Should -Be '1'
    }

    It 'writes each later run''s record next to it, numbered' {
        $second = Get-RrTestManifest -Name 'manifest-2.json'
        $second['sequence'] | Should -Be 2
        $second['runId'] | Should -Be $RrTestRunId
        $second['actions'][0]['changed'] | Should -BeFalse
        $third = Get-RrTestManifest -Name 'manifest-3.json'
        $third['sequence'] | Should -Be 3
        @($third['actions'] | ForEach-Object { $_['id'] }) | Should -Be @('disable-nla', 'restart-rdp-services')
        @($global:RrDouble['State']['files'].Keys | Where-Object { $_ -like ($RunDir + '\manifest*') } | Sort-Object) |
            Should -Be @(($RunDir + '\manifest-2.json'), ($RunDir + '\manifest-3.json'), ($RunDir + '\manifest.json'))
    }

    It 'keeps the first backup of RDP-Tcp, taken before NLA went off' {
        Get-RrTestFileContent -Path ($RunDir + '\rdp-tcp.reg') | Should -Match '"UserAuthentication"=dword:00000001'
    }

    It 'writes no manifest on a dry run' {
        $count = @($global:RrDouble['State']['files'].Keys | Where-Object { $_ -like ($RunDir + '\manifest*') }).Count
        $null = Invoke-RrTestFix -Actions 'disable-nla' -DryRun 'true'
        @($global:RrDouble['State']['files'].Keys | Where-Object { $_ -like ($RunDir + '\manifest*') }).Count | Should -Be $count
    }
}

Describe 'another RunId' {
    It 'starts again at manifest.json in its own directory' {
        Set-RrTestState -State (New-RrTestWindowsState)
        $null = Invoke-RrTestFix -Actions 'disable-nla'
        $other = '0badc0de-1234-4abc-8def-0123456789ac'
        $null = Invoke-RrTestFix -Actions 'disable-nla' -RunId $other
        (Get-RrTestManifest -RunId $other)['sequence'] | Should -Be 1
        Get-RrTestManifest -RunId $other -Name 'manifest-2.json' | Should -BeNullOrEmpty
    }
}
