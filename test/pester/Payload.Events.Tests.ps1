# The probe's System-log evidence (lib/Facts.ps1 Get-RrEventFacts): the cause-naming events of
# playbook section 4.1 in the last 72 hours, one item per source and id, newest first.

BeforeAll {
    Set-StrictMode -Version 3.0
    $ErrorActionPreference = 'Stop'
    . (Join-Path $PSScriptRoot 'Load-Payload.ps1')

    $Schannel = 'Schannel'
    $Rcm = 'Microsoft-Windows-TerminalServices-RemoteConnectionManager'
    $Now = [datetime]::new(2026, 3, 1, 12, 0, 0, [System.DateTimeKind]::Utc)

    function New-RrTestEvent {
        param([string]$Provider, [int]$Id, [double]$HoursAgo, [string]$Message = 'An event.')
        return [ordered]@{ provider = $Provider; id = $Id; timeCreated = $Now.AddHours(-$HoursAgo).ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", [System.Globalization.CultureInfo]::InvariantCulture); message = $Message }
    }

    function Get-RrTestEvents {
        param([object[]]$Log)
        # The probe's events fact over a System log (oldest first, as the state keeps it).
        $state = New-RrTestWindowsState -Now $Now
        $state['events'] = $Log
        Set-RrTestState -State $state
        $script:LastLine = ConvertTo-RrResultLine -Result (Invoke-RrProbe -RunId $RrTestRunId)
        $json = ConvertFrom-Json -InputObject $script:LastLine -AsHashtable
        $json['ok'] | Should -BeTrue
        return $json['facts']['events']
    }
}

Describe 'grouping' {
    BeforeAll {
        $events = Get-RrTestEvents -Log ([object[]]@(
                (New-RrTestEvent -Provider $Schannel -Id 36870 -HoursAgo 30 -Message "A fatal error occurred when attempting to access the TLS server credential private key. The error code returned from the cryptographic module is 0x8009030D.`r`nThe internal error state is 10001."),
                (New-RrTestEvent -Provider $Rcm -Id 1057 -HoursAgo 20 -Message 'The RD Session Host Server has failed to create a new self signed certificate.'),
                (New-RrTestEvent -Provider $Schannel -Id 36870 -HoursAgo 2 -Message "`r`nThe newest text, after an empty first line.`r`nAnd more."),
                (New-RrTestEvent -Provider $Schannel -Id 36870 -HoursAgo 10 -Message 'A middle one.'),
                (New-RrTestEvent -Provider 'TermDD' -Id 56 -HoursAgo 5 -Message 'The Terminal Server security layer detected an error in the protocol stream.')
            ))
    }

    It 'reads the last 72 hours' {
        $events['hours'] | Should -Be 72
    }

    It 'makes one item per source and id, with the count of its events' {
        @($events['items']).Count | Should -Be 3
        $schannel = @($events['items'] | Where-Object { $_['id'] -eq 36870 })[0]
        $schannel['source'] | Should -Be 'Schannel'
        $schannel['count'] | Should -Be 3
    }

    It 'dates an item by its newest event and quotes that one''s first line' {
        $script:LastLine | Should -BeLike '*{"source":"Schannel","id":36870,"count":3,"last":"2026-03-01T10:00:00Z","text":"The newest text, after an empty first line."}*'
    }

    It 'names the sources as the contract does: Schannel, RCM, TermDD' {
        @($events['items'] | ForEach-Object { $_['source'] }) | Should -Be @('Schannel', 'TermDD', 'RCM')
    }

    It 'puts the newest first' {
        @($events['items'] | ForEach-Object { $_['id'] }) | Should -Be @(36870, 56, 1057)
    }
}

Describe 'what is read' {
    It 'only the ids of playbook section 4.1, of those three providers' {
        $events = Get-RrTestEvents -Log ([object[]]@(
                (New-RrTestEvent -Provider $Schannel -Id 36880 -HoursAgo 1),
                (New-RrTestEvent -Provider 'Service Control Manager' -Id 7022 -HoursAgo 1),
                (New-RrTestEvent -Provider $Rcm -Id 1149 -HoursAgo 1),
                (New-RrTestEvent -Provider $Rcm -Id 1065 -HoursAgo 1)
            ))
        @($events['items'] | ForEach-Object { '{0}:{1}' -f $_['source'], $_['id'] }) | Should -Be @('RCM:1065')
    }

    It 'nothing older than 72 hours' {
        $events = Get-RrTestEvents -Log ([object[]]@(
                (New-RrTestEvent -Provider $Schannel -Id 36871 -HoursAgo 73),
                (New-RrTestEvent -Provider $Schannel -Id 36874 -HoursAgo 71)
            ))
        @($events['items'] | ForEach-Object { $_['id'] }) | Should -Be @(36874)
    }

    It 'at most 100 events per provider, so a storm is counted up to 100' {
        $storm = @(1..150 | ForEach-Object { New-RrTestEvent -Provider $Schannel -Id 36888 -HoursAgo (60 - $_ * 0.1) })
        $events = Get-RrTestEvents -Log ([object[]]$storm)
        $events['items'][0]['count'] | Should -Be 100
        # The newest 100 (Get-WinEvent reads newest first): the newest of them is 45 hours old.
        $script:LastLine | Should -BeLike '*"id":36888,"count":100,"last":"2026-02-27T15:00:00Z"*'
    }
}

Describe 'limits' {
    It 'keeps the 12 newest ids of the 13 there are' {
        $log = New-Object System.Collections.Generic.List[object]
        $hours = 1
        foreach ($id in @(36870, 36871, 36874, 36886, 36888)) { $log.Add((New-RrTestEvent -Provider $Schannel -Id $id -HoursAgo ($hours++))) }
        foreach ($id in @(1050, 1051, 1055, 1057, 1058, 1059, 1065)) { $log.Add((New-RrTestEvent -Provider $Rcm -Id $id -HoursAgo ($hours++))) }
        $log.Add((New-RrTestEvent -Provider 'TermDD' -Id 56 -HoursAgo ($hours++)))
        $events = Get-RrTestEvents -Log $log.ToArray()
        @($events['items']).Count | Should -Be 12
        @($events['items'] | ForEach-Object { $_['id'] }) | Should -Be @(36870, 36871, 36874, 36886, 36888, 1050, 1051, 1055, 1057, 1058, 1059, 1065)
    }

    It 'shortens a text to 120 characters' {
        $events = Get-RrTestEvents -Log ([object[]]@((New-RrTestEvent -Provider $Schannel -Id 36886 -HoursAgo 1 -Message ('No suitable default server credential exists on this system. ' + ('x' * 200)))))
        $text = [string]$events['items'][0]['text']
        $text.Length | Should -Be 120
        $text | Should -BeLike 'No suitable default server credential exists on this system. x*...'
    }

    It 'orders ids of the same time by source, then by id' {
        $events = Get-RrTestEvents -Log ([object[]]@(
                (New-RrTestEvent -Provider 'TermDD' -Id 56 -HoursAgo 3),
                (New-RrTestEvent -Provider $Rcm -Id 1058 -HoursAgo 3),
                (New-RrTestEvent -Provider $Rcm -Id 1050 -HoursAgo 3),
                (New-RrTestEvent -Provider $Schannel -Id 36888 -HoursAgo 3)
            ))
        @($events['items'] | ForEach-Object { $_['id'] }) | Should -Be @(36888, 1050, 1058, 56)
    }
}

Describe 'an empty or unreadable log' {
    It 'no matching event: items empty, not null' {
        $events = Get-RrTestEvents -Log ([object[]]@())
        $events | Should -Not -BeNullOrEmpty
        $events['hours'] | Should -Be 72
        @($events['items']).Count | Should -Be 0
        $script:LastLine | Should -BeLike '*"events":{"hours":72,"items":`[`]}*'
    }

    It 'a log that cannot be read: events null, and the probe still succeeds' {
        $events = Get-RrTestEvents -Log $null
        $events | Should -BeNullOrEmpty
        $script:LastLine | Should -BeLike '*"events":null*'
        $script:LastLine | Should -BeLike '*"firewall":{*'
    }
}
