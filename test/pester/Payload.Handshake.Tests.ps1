# The probe's loopback RDP handshake fact (lib/Facts.ps1 Get-RrHandshakeFacts): how the answers
# of Test-RrRdpHandshake become HandshakeAttempt facts. The double gives canned answers here
# ($global:RrDouble['Handshake'], a dictionary or a scriptblock param($Address, $Port)); the
# handshake itself is tested against a real listener elsewhere.

BeforeAll {
    Set-StrictMode -Version 3.0
    $ErrorActionPreference = 'Stop'
    . (Join-Path $PSScriptRoot 'Load-Payload.ps1')

    $StoreThumb = '8E4A1C0F5B2D7E9A3C6F1B0D2E4A6C8E0F1A2B3C'
    $BoundThumb = '0102030405060708090A0B0C0D0E0F1011121314'
    $OtherThumb = 'FFEEDDCCBBAA99887766554433221100FFEEDDCC'

    function New-RrTestTlsAnswer {
        param([string]$Thumbprint, [string]$NotAfter = '2026-07-29T12:00:00Z')
        # A listener that completed TLS with the given certificate.
        return @{
            Stage = 'done'; Error = $null; Message = $null; FailureCode = $null; SelectedProtocol = 2
            TlsVersion = 'Tls12'; Cipher = 'TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384'
            CertificateThumbprint = $Thumbprint; CertificateNotAfter = $NotAfter
            ConnectMs = 1; NegotiateMs = 3; TlsMs = 12
        }
    }

    function Get-RrTestHandshake {
        # The probe's handshake fact, as it comes out of the result line.
        $script:LastLine = ConvertTo-RrResultLine -Result (Invoke-RrProbe -RunId $RrTestRunId)
        $json = ConvertFrom-Json -InputObject $script:LastLine -AsHashtable
        $json['ok'] | Should -BeTrue
        return $json['facts']['handshake']
    }

    function Get-RrTestClock {
        return [datetime]::Parse($global:RrDouble['State']['now'], [System.Globalization.CultureInfo]::InvariantCulture, [System.Globalization.DateTimeStyles]'AdjustToUniversal, AssumeUniversal')
    }
}

Describe 'a handshake that completed TLS' {
    BeforeEach {
        Set-RrTestState -State (New-RrTestWindowsState)
    }

    It 'maps every field of the answer, camelCase as the contract has it' {
        $global:RrDouble['Handshake'] = New-RrTestTlsAnswer -Thumbprint $StoreThumb
        $handshake = Get-RrTestHandshake
        @($handshake['attempts']).Count | Should -Be 1
        $attempt = $handshake['attempts'][0]
        @($attempt.Keys) | Should -Be @('address', 'port', 'stage', 'error', 'failureCode', 'selectedProtocol', 'tlsVersion', 'cipher', 'cert', 'servedCert', 'ms', 'detail')
        $attempt['address'] | Should -Be '127.0.0.1'
        $attempt['port'] | Should -Be 3389
        $attempt['stage'] | Should -Be 'done'
        $attempt['error'] | Should -BeNullOrEmpty
        $attempt['failureCode'] | Should -BeNullOrEmpty
        $attempt['selectedProtocol'] | Should -Be 2
        $attempt['tlsVersion'] | Should -Be 'Tls12'
        $attempt['cipher'] | Should -Be 'TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384'
        $attempt['cert']['thumb'] | Should -BeExactly $StoreThumb
        # ConvertFrom-Json makes a date of it; the line has the contract's ISO text.
        $script:LastLine | Should -BeLike '*"cert":{"thumb":"8E4A1C0F5B2D7E9A3C6F1B0D2E4A6C8E0F1A2B3C","notAfter":"2026-07-29T12:00:00Z"}*'
        $attempt['ms']['connect'] | Should -Be 1
        $attempt['ms']['negotiate'] | Should -Be 3
        $attempt['ms']['tls'] | Should -Be 12
        $attempt['detail'] | Should -BeNullOrEmpty
    }

    It 'asks on the RDP port the listener is configured for, with the 5 s bound' {
        Set-RrTestDword -State $global:RrDouble['State'] -Key $RrTestRdpTcpKey -Name 'PortNumber' -Value 50001
        $script:asked = @()
        $global:RrDouble['Handshake'] = { param($Address, $Port) $script:asked += , @($Address, $Port); New-RrTestTlsAnswer -Thumbprint $StoreThumb }
        $attempt = (Get-RrTestHandshake)['attempts'][0]
        $attempt['port'] | Should -Be 50001
        $script:asked.Count | Should -Be 1
        $script:asked[0][0] | Should -Be '127.0.0.1'
        $script:asked[0][1] | Should -Be 50001
        $script:RrHandshakeTimeoutMilliseconds | Should -Be 5000
    }

    It 'names the certificate of the custom binding "binding", in upper case whatever case it came in' {
        $global:RrDouble['State']['registry'][$RrTestRdpTcpKey]['SSLCertificateSHA1Hash'] = [ordered]@{ kind = 'Binary'; value = [object[]]@(1..20) }
        $global:RrDouble['Handshake'] = New-RrTestTlsAnswer -Thumbprint $BoundThumb.ToLowerInvariant()
        $attempt = (Get-RrTestHandshake)['attempts'][0]
        $attempt['servedCert'] | Should -Be 'binding'
        $attempt['cert']['thumb'] | Should -BeExactly $BoundThumb
    }

    It 'names one of the Remote Desktop store "remote-desktop", even when it is not the newest' {
        $state = $global:RrDouble['State']
        $older = New-RrTestCertificate -Thumbprint ('1' * 40) -NotAfter ([datetime]::new(2026, 5, 1, 0, 0, 0, [System.DateTimeKind]::Utc))
        $state['certificates']['Remote Desktop'] = [object[]]@($state['certificates']['Remote Desktop'] + @(, $older))
        $global:RrDouble['Handshake'] = New-RrTestTlsAnswer -Thumbprint ('1' * 40)
        (Get-RrTestHandshake)['attempts'][0]['servedCert'] | Should -Be 'remote-desktop'
    }

    It 'names any other certificate "other"' {
        $global:RrDouble['Handshake'] = New-RrTestTlsAnswer -Thumbprint $OtherThumb
        $attempt = (Get-RrTestHandshake)['attempts'][0]
        $attempt['servedCert'] | Should -Be 'other'
        $attempt['cert']['thumb'] | Should -BeExactly $OtherThumb
    }

    It 'prefers "binding" when the bound certificate is also in the Remote Desktop store' {
        $state = $global:RrDouble['State']
        $state['registry'][$RrTestRdpTcpKey]['SSLCertificateSHA1Hash'] = [ordered]@{ kind = 'Binary'; value = [object[]]@(0x8E, 0x4A, 0x1C, 0x0F, 0x5B, 0x2D, 0x7E, 0x9A, 0x3C, 0x6F, 0x1B, 0x0D, 0x2E, 0x4A, 0x6C, 0x8E, 0x0F, 0x1A, 0x2B, 0x3C) }
        $global:RrDouble['Handshake'] = New-RrTestTlsAnswer -Thumbprint $StoreThumb
        (Get-RrTestHandshake)['attempts'][0]['servedCert'] | Should -Be 'binding'
    }
}

Describe 'a handshake that stopped before TLS completed' {
    BeforeEach {
        Set-RrTestState -State (New-RrTestWindowsState)
    }

    It 'keeps the certificate a failed TLS handshake presented, and its message as detail' {
        $global:RrDouble['Handshake'] = @{ Stage = 'tls'; Error = 'tls'; Message = 'Authentication failed because the remote party has closed the transport stream.'; SelectedProtocol = 2; CertificateThumbprint = $StoreThumb; CertificateNotAfter = '2026-01-01T00:00:00Z'; ConnectMs = 1; NegotiateMs = 2; TlsMs = 40 }
        $attempt = (Get-RrTestHandshake)['attempts'][0]
        $attempt['stage'] | Should -Be 'tls'
        $attempt['error'] | Should -Be 'tls'
        $attempt['servedCert'] | Should -Be 'remote-desktop'
        $script:LastLine | Should -BeLike '*"notAfter":"2026-01-01T00:00:00Z"},"servedCert":"remote-desktop"*'
        $attempt['tlsVersion'] | Should -BeNullOrEmpty
        $attempt['detail'] | Should -Be 'Authentication failed because the remote party has closed the transport stream.'
    }

    It 'reports an RDP_NEG_FAILURE with its code, no certificate and no TLS' {
        $global:RrDouble['Handshake'] = @{ Stage = 'negotiate'; Error = 'negotiation-failure'; FailureCode = 2; Message = 'SSL_NOT_ALLOWED_BY_SERVER'; ConnectMs = 1; NegotiateMs = 2 }
        $attempt = (Get-RrTestHandshake)['attempts'][0]
        $attempt['stage'] | Should -Be 'negotiate'
        $attempt['error'] | Should -Be 'negotiation-failure'
        $attempt['failureCode'] | Should -Be 2
        $attempt['selectedProtocol'] | Should -BeNullOrEmpty
        $attempt['cert'] | Should -BeNullOrEmpty
        $attempt['servedCert'] | Should -BeNullOrEmpty
        $attempt['ms']['negotiate'] | Should -Be 2
        $attempt['ms']['tls'] | Should -BeNullOrEmpty
    }

    It 'reports standard RDP security (selectedProtocol 0) without an error' {
        $global:RrDouble['Handshake'] = @{ Stage = 'negotiate'; Error = $null; SelectedProtocol = 0; ConnectMs = 1; NegotiateMs = 2 }
        $attempt = (Get-RrTestHandshake)['attempts'][0]
        $attempt['stage'] | Should -Be 'negotiate'
        $attempt['error'] | Should -BeNullOrEmpty
        $attempt['selectedProtocol'] | Should -Be 0
    }
}

Describe 'a listener bound to one adapter (LanAdapter <> 0)' {
    It 'is tried on loopback and on the primary IPv4 address: two attempts' {
        $state = New-RrTestWindowsState
        Set-RrTestDword -State $state -Key $RrTestRdpTcpKey -Name 'LanAdapter' -Value 1
        Set-RrTestState -State $state
        # Bound to the adapter, the listener does not accept on loopback.
        $global:RrDouble['Handshake'] = { param($Address, $Port) if ($Address -eq '127.0.0.1') { @{ Stage = 'connect'; Error = 'refused'; Message = 'No connection could be made because the target machine actively refused it.'; ConnectMs = 0 } } else { New-RrTestTlsAnswer -Thumbprint $StoreThumb } }
        $line = ConvertTo-RrResultLine -Result (Invoke-RrProbe -RunId $RrTestRunId)
        $facts = (ConvertFrom-Json -InputObject $line -AsHashtable)['facts']
        $facts['rdp']['lanAdapter'] | Should -Be 1
        @($facts['handshake']['attempts'] | ForEach-Object { $_['address'] }) | Should -Be @('127.0.0.1', '10.0.0.4')
        $facts['handshake']['attempts'][0]['error'] | Should -Be 'refused'
        $facts['handshake']['attempts'][1]['stage'] | Should -Be 'done'
        $facts['handshake']['attempts'][1]['servedCert'] | Should -Be 'remote-desktop'
    }

    It 'is tried on loopback only when the VM has no primary IPv4 address' {
        $state = New-RrTestWindowsState
        Set-RrTestDword -State $state -Key $RrTestRdpTcpKey -Name 'LanAdapter' -Value 2
        $state['primaryIPv4'] = $null
        Set-RrTestState -State $state
        $handshake = Get-RrTestHandshake
        @($handshake['attempts']).Count | Should -Be 1
    }

    It 'is not asked for with LanAdapter 0 (the default): one attempt, on loopback' {
        Set-RrTestState -State (New-RrTestWindowsState)
        $global:RrDouble['Handshake'] = New-RrTestTlsAnswer -Thumbprint $StoreThumb
        $line = ConvertTo-RrResultLine -Result (Invoke-RrProbe -RunId $RrTestRunId)
        $facts = (ConvertFrom-Json -InputObject $line -AsHashtable)['facts']
        $facts['rdp']['lanAdapter'] | Should -Be 0
        @($facts['handshake']['attempts'] | ForEach-Object { $_['address'] }) | Should -Be @('127.0.0.1')
    }
}

Describe 'retries of a listener that is still coming up' {
    BeforeEach {
        Set-RrTestState -State (New-RrTestWindowsState)
        $script:calls = 0
        $script:start = Get-RrTestClock
    }

    It 'tries a refused connection again after 2 s, and reports the attempt that got through' {
        $global:RrDouble['Handshake'] = {
            param($Address, $Port)
            $script:calls++
            if ($script:calls -eq 1) { return @{ Stage = 'connect'; Error = 'refused'; Message = 'refused'; ConnectMs = 0 } }
            New-RrTestTlsAnswer -Thumbprint $StoreThumb
        }
        $attempts = @((Get-RrTestHandshake)['attempts'])
        $script:calls | Should -Be 2
        $attempts.Count | Should -Be 1
        $attempts[0]['stage'] | Should -Be 'done'
        # The double's Start-RrSleep moves the VM's clock instead of waiting.
        ((Get-RrTestClock) - $script:start).TotalSeconds | Should -Be 2
    }

    It 'tries a reset connection again too' {
        $global:RrDouble['Handshake'] = {
            param($Address, $Port)
            $script:calls++
            if ($script:calls -le 2) { return @{ Stage = 'negotiate'; Error = 'reset'; Message = 'An existing connection was forcibly closed by the remote host.'; ConnectMs = 0 } }
            New-RrTestTlsAnswer -Thumbprint $StoreThumb
        }
        (Get-RrTestHandshake)['attempts'][0]['stage'] | Should -Be 'done'
        $script:calls | Should -Be 3
    }

    It 'gives up after two retries and reports the refusal' {
        $global:RrDouble['Handshake'] = { param($Address, $Port) $script:calls++; @{ Stage = 'connect'; Error = 'refused'; Message = 'refused'; ConnectMs = 0 } }
        $attempt = (Get-RrTestHandshake)['attempts'][0]
        $attempt['error'] | Should -Be 'refused'
        $script:calls | Should -Be 3
        ((Get-RrTestClock) - $script:start).TotalSeconds | Should -Be 4
    }

    It 'does not retry an answer: a timeout or a TLS failure counts at once' {
        $global:RrDouble['Handshake'] = { param($Address, $Port) $script:calls++; @{ Stage = 'negotiate'; Error = 'timeout'; Message = 'no answer within 5000 ms'; ConnectMs = 1 } }
        (Get-RrTestHandshake)['attempts'][0]['error'] | Should -Be 'timeout'
        $script:calls | Should -Be 1
    }
}

Describe 'when the check itself fails' {
    BeforeEach {
        Set-RrTestState -State (New-RrTestWindowsState)
    }

    It 'reports handshake null and the probe still succeeds' {
        $global:RrDouble['Handshake'] = { param($Address, $Port) throw 'Exception calling "Connect": the socket API is not available' }
        $result = Invoke-RrProbe -RunId $RrTestRunId
        $result['ok'] | Should -BeTrue
        $result['facts'].Contains('handshake') | Should -BeTrue
        $result['facts']['handshake'] | Should -BeNullOrEmpty
        $result['facts']['rdp']['portNumber'] | Should -Be 3389
    }

    It 'reports handshake null for an answer the contract cannot carry' {
        $global:RrDouble['Handshake'] = @{ Stage = 'handshake'; Error = 'weird' }
        $result = Invoke-RrProbe -RunId $RrTestRunId
        $result['ok'] | Should -BeTrue
        $result['facts']['handshake'] | Should -BeNullOrEmpty
    }

    It 'without an oracle (the double''s default) reports the refused connect it answers' {
        $attempt = (Get-RrTestHandshake)['attempts'][0]
        $attempt['address'] | Should -Be '127.0.0.1'
        $attempt['port'] | Should -Be 3389
        $attempt['error'] | Should -Be 'refused'
        $attempt['detail'] | Should -Be 'no handshake oracle in this test'
    }
}

Describe 'the handshake in the fix''s verify' {
    It 'is read again after the changes, like every other fact' {
        Set-RrTestState -State (New-RrTestWindowsState)
        $global:RrDouble['Handshake'] = New-RrTestTlsAnswer -Thumbprint $StoreThumb
        $fix = Invoke-RrTestFix -Actions 'restart-rdp-services'
        $fix.Json['verify']['handshake']['attempts'][0]['servedCert'] | Should -Be 'remote-desktop'
    }
}
