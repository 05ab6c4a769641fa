# ---------------------------------------------------------------------------------------
# lib/Access.Handshake.ps1: the loopback RDP handshake, part of the read half of the Windows
# access layer of the rdp-remediator payloads. Both payloads carry it, right after
# lib/Access.Read.ps1, and it changes nothing: it opens one TCP connection to the VM's own
# RDP listener, reads what the listener answers, and closes it.
#
# Test-RrRdpHandshake does what an RDP client does up to TLS: TCP connect, the X.224
# Connection Request with RDP_NEG_REQ offering TLS and CredSSP (MS-RDPBCGR 2.2.1.1), the
# Connection Confirm with RDP_NEG_RSP or RDP_NEG_FAILURE (2.2.1.2), then, when the server
# selected TLS or CredSSP, the TLS handshake on the same socket (CredSSP runs inside TLS, so
# TLS comes first either way). Error 0x904 is a failure of exactly these steps: the listener
# cannot build its TLS credential, serves the wrong certificate, or refuses the negotiation.
# The check stops once TLS is up: it sends no MCS/GCC data and no credentials and never starts
# CredSSP, so it opens no session and logs nobody on.
#
# It never throws for a network outcome: a refused, silent, reset or garbled connection is a
# result. Only a bad argument (an address that is no IP address, a port outside 1-65535, a
# timeout below 1 ms) throws.
# Each of connect, the negotiation reads and each TLS read is bounded by TimeoutMilliseconds.
# Tests put a double in the place of Test-RrRdpHandshake; the helpers below serve it only, and
# no other code calls them.
#
# Shape the logic relies on (a double must keep it): one [pscustomobject] with
#   Address [string], Port [int]       what was asked
#   Stage   [string]   the last stage reached: 'connect', 'negotiate', 'tls', or 'done' (TLS
#                      completed)
#   Error   [string]   'refused', 'timeout', 'reset', 'protocol', 'negotiation-failure', 'tls';
#                      $null when Stage is 'done', and when the server chose PROTOCOL_RDP
#                      (standard RDP security: no TLS to test; Stage stays 'negotiate')
#   Message [string]   one line for people (at most 200 characters), or $null
#   FailureCode [int]  RDP_NEG_FAILURE failureCode, or $null
#   SelectedProtocol [int]  RDP_NEG_RSP selectedProtocol (0 for a confirm without one), or $null
#   TlsVersion [string]  SslStream.SslProtocol ('Tls12', 'Tls13'), or $null
#   Cipher  [string]   the negotiated cipher suite where the runtime names it, else
#                      '<CipherAlgorithm>-<CipherStrength>'; or $null
#   CertificateThumbprint [string]  upper-case hex of the certificate the server presented (also
#                      when TLS then failed), or $null; CertificateNotAfter [datetime] UTC, or $null
#   ConnectMs, NegotiateMs, TlsMs [int]  per stage that ran, $null for a stage not reached
# ---------------------------------------------------------------------------------------

function Get-RrHandshakeExceptionDetail {
    param([System.Exception]$Exception)
    # The chain is PowerShell's MethodInvocationException around the .NET exception, which may
    # wrap more (AggregateException > SocketException, IOException > SocketException,
    # AuthenticationException > the TLS library's error). The innermost message is the most
    # specific one; the socket error and whether TLS itself refused decide the outcome.
    $socketError = $null
    $authentication = $false
    $innermost = $Exception
    $current = $Exception
    while ($null -ne $current) {
        if ($current -is [System.Net.Sockets.SocketException] -and $null -eq $socketError) {
            $socketError = [string]$current.SocketErrorCode
        }
        if ($current -is [System.Security.Authentication.AuthenticationException]) {
            $authentication = $true
        }
        $innermost = $current
        $current = $current.InnerException
    }
    $line = ([string]$innermost.Message -split "`r?`n")[0].Trim()
    if ($line.Length -gt 200) {
        $line = $line.Substring(0, 197) + '...'
    }
    return [pscustomobject]@{ SocketError = $socketError; Authentication = $authentication; Message = $line }
}

function Get-RrHandshakeSocketOutcome {
    param([string]$SocketError)
    # SocketError names, not numbers: WSA codes and errno values differ, the names do not.
    if ($SocketError -eq 'TimedOut' -or $SocketError -eq 'WouldBlock') {
        return 'timeout'
    }
    if ($SocketError -eq 'ConnectionReset' -or $SocketError -eq 'ConnectionAborted' -or $SocketError -eq 'Shutdown' -or $SocketError -eq 'NotConnected') {
        return 'reset'
    }
    if ($SocketError -eq 'ConnectionRefused') {
        return 'refused'
    }
    return $null
}

function Read-RrHandshakeBytes {
    param(
        $Stream,
        [int]$Count,
        [System.Diagnostics.Stopwatch]$Clock,
        [int]$TimeoutMilliseconds
    )
    # Exactly Count bytes, read by as many reads as the server needs, all within what is left
    # of TimeoutMilliseconds on Clock. Fewer when the server closed first (End) or the time ran
    # out (TimedOut); a socket error surfaces as the read's exception.
    $buffer = New-Object byte[] $Count
    $read = 0
    while ($read -lt $Count) {
        $left = $TimeoutMilliseconds - [int]$Clock.ElapsedMilliseconds
        if ($left -lt 1) {
            return [pscustomobject]@{ Bytes = $buffer; Count = $read; End = $false; TimedOut = $true }
        }
        $Stream.ReadTimeout = $left
        $got = $Stream.Read($buffer, $read, $Count - $read)
        if ($got -le 0) {
            return [pscustomobject]@{ Bytes = $buffer; Count = $read; End = $true; TimedOut = $false }
        }
        $read += $got
    }
    return [pscustomobject]@{ Bytes = $buffer; Count = $read; End = $false; TimedOut = $false }
}

function Get-RrConnectionRequestBytes {
    # MS-RDPBCGR 2.2.1.1 Client X.224 Connection Request PDU, without the optional cookie or
    # routing token:
    #   TPKT header (T.123): version 3, reserved 0, the whole packet's length (big-endian)
    #   X.224 Connection Request (X.224 13.3): length indicator (the header bytes after it),
    #     0xE0 (CR, credit 0), DST-REF 0 0, SRC-REF 0 0, class 0
    #   RDP_NEG_REQ (2.2.1.1.1): type 0x01, flags 0, length 8 (little-endian), requestedProtocols
    #     PROTOCOL_SSL (1) | PROTOCOL_HYBRID (2) = 3 (little-endian): TLS and CredSSP, as an
    #     NLA-capable client offers them, so the server picks what it would pick for one.
    $requestedProtocols = 1 -bor 2
    $negotiationRequest = @(0x01, 0x00, 0x08, 0x00, $requestedProtocols, 0x00, 0x00, 0x00)
    $connectionRequest = @((6 + $negotiationRequest.Count), 0xE0, 0x00, 0x00, 0x00, 0x00, 0x00) + $negotiationRequest
    $length = 4 + $connectionRequest.Count
    [byte[]]$packet = @(0x03, 0x00, [int][System.Math]::Floor($length / 256), ($length % 256)) + $connectionRequest
    return , $packet
}

function ConvertFrom-RrConnectionConfirm {
    param([byte[]]$Packet)
    # MS-RDPBCGR 2.2.1.2 Server X.224 Connection Confirm PDU: TPKT header, X.224 Connection
    # Confirm (length indicator, 0xD0, DST-REF, SRC-REF, class), then RDP_NEG_RSP (2.2.1.2.1:
    # type 0x02, flags, length 8, selectedProtocol) or RDP_NEG_FAILURE (2.2.1.2.2: type 0x03,
    # flags, length 8, failureCode), or nothing from a server that only speaks standard RDP
    # security. Returns Error ($null, 'negotiation-failure' or 'protocol'), Message,
    # SelectedProtocol, FailureCode and Tls (whether a TLS handshake follows).
    $result = [ordered]@{ Error = $null; Message = $null; SelectedProtocol = $null; FailureCode = $null; Tls = $false }
    $length = $Packet.Length
    $indicator = [int]$Packet[4]
    $code = [int]$Packet[5] -band 0xF0
    if ($code -ne 0xD0) {
        $result.Error = 'protocol'
        $result.Message = 'X.224 TPDU code 0x{0:X2}, not a Connection Confirm (0xD0)' -f [int]$Packet[5]
        return [pscustomobject]$result
    }
    # The length indicator counts the TPDU header after itself, the negotiation structure
    # included; nothing follows the header in a Connection Confirm.
    if ($indicator -lt 6 -or ($indicator + 5) -ne $length) {
        $result.Error = 'protocol'
        $result.Message = 'X.224 length indicator {0} does not fit a {1}-byte packet' -f $indicator, $length
        return [pscustomobject]$result
    }
    $negotiationLength = $length - 11
    if ($negotiationLength -eq 0) {
        $result.SelectedProtocol = 0
        $result.Message = 'Connection Confirm without RDP_NEG_RSP: the server only speaks standard RDP security'
        return [pscustomobject]$result
    }
    $declared = [int]$Packet[13] + 256 * [int]$Packet[14]
    if ($negotiationLength -ne 8 -or $declared -ne 8) {
        $result.Error = 'protocol'
        $result.Message = 'negotiation structure of {0} bytes (declared {1}), not 8' -f $negotiationLength, $declared
        return [pscustomobject]$result
    }
    $type = [int]$Packet[11]
    $value = [int64]$Packet[15] + 256 * [int64]$Packet[16] + 65536 * [int64]$Packet[17] + 16777216 * [int64]$Packet[18]
    if ($value -gt [int]::MaxValue) {
        $result.Error = 'protocol'
        $result.Message = 'negotiation value 0x{0:X8} out of range' -f $value
        return [pscustomobject]$result
    }
    if ($type -eq 0x03) {
        $names = @{ 1 = 'SSL_REQUIRED_BY_SERVER'; 2 = 'SSL_NOT_ALLOWED_BY_SERVER'; 3 = 'SSL_CERT_NOT_ON_SERVER'; 4 = 'INCONSISTENT_FLAGS'; 5 = 'HYBRID_REQUIRED_BY_SERVER'; 6 = 'SSL_WITH_USER_AUTH_REQUIRED_BY_SERVER' }
        $name = 'unknown failure code'
        if ($names.ContainsKey([int]$value)) {
            $name = $names[[int]$value]
        }
        $result.Error = 'negotiation-failure'
        $result.FailureCode = [int]$value
        $result.Message = 'RDP_NEG_FAILURE {0}: {1}' -f $value, $name
        return [pscustomobject]$result
    }
    if ($type -ne 0x02) {
        $result.Error = 'protocol'
        $result.Message = 'negotiation structure of type 0x{0:X2}, neither RDP_NEG_RSP nor RDP_NEG_FAILURE' -f $type
        return [pscustomobject]$result
    }
    $result.SelectedProtocol = [int]$value
    if ($value -eq 0) {
        $result.Message = 'the server selected PROTOCOL_RDP (standard RDP security): no TLS to test'
    }
    elseif ($value -eq 1 -or $value -eq 2 -or $value -eq 8) {
        # PROTOCOL_SSL, PROTOCOL_HYBRID, PROTOCOL_HYBRID_EX: each starts with TLS on this socket.
        # HYBRID_EX was not offered, but a server that picks it still serves TLS first, and TLS
        # is what the check is after.
        $result.Tls = $true
    }
    else {
        $result.Error = 'protocol'
        $result.Message = 'the server selected protocol {0}, which the request did not offer' -f $value
    }
    return [pscustomobject]$result
}

function Test-RrSocketClosedByPeer {
    param($Socket)
    # Readable with nothing to read: the server sent FIN or RST. Decides whether a TLS failure
    # without a socket error was the server hanging up (reset) or TLS itself (tls), without
    # reading the exception's localized message.
    # A socket that can no longer be asked (disposed) proves nothing either way: not a reset.
    try {
        return ([bool]$Socket.Poll(0, [System.Net.Sockets.SelectMode]::SelectRead) -and [int]$Socket.Available -eq 0)
    }
    catch {
        return $false
    }
}

# Schannel offers TLS 1.3 from Windows Server 2022 / Windows 11 (build 20348 and later). On an
# older Windows, .NET Framework 4.8 asked for Tls12|Tls13 can fail the whole handshake ("do not
# possess a common algorithm"), so 1.3 is offered only where the OS has it. Elsewhere (the
# tests' PowerShell 7 on Linux) the runtime decides.
$script:RrTls13MinimumWindowsBuild = 20348

function Test-RrTls13Offerable {
    if ([System.Enum]::GetNames([System.Security.Authentication.SslProtocols]) -notcontains 'Tls13') {
        return $false
    }
    $os = [System.Environment]::OSVersion
    if ([string]$os.Platform -ne 'Win32NT') {
        return $true
    }
    return ($os.Version.Build -ge $script:RrTls13MinimumWindowsBuild)
}

function Test-RrRdpHandshake {
    param(
        [string]$Address,
        [int]$Port,
        [int]$TimeoutMilliseconds
    )
    if ($TimeoutMilliseconds -lt 1) {
        throw "TimeoutMilliseconds must be at least 1: $TimeoutMilliseconds"
    }
    if ($Port -lt 1 -or $Port -gt 65535) {
        throw "Port must be 1 to 65535: $Port"
    }
    $ipAddress = [System.Net.IPAddress]::Parse($Address)

    $stage = 'connect'
    $outcome = $null
    $message = $null
    $failureCode = $null
    $selectedProtocol = $null
    $tlsVersion = $null
    $cipher = $null
    $connectMs = $null
    $negotiateMs = $null
    $tlsMs = $null
    # Filled by the certificate callback, which runs in a scope of its own.
    $served = @{ Thumbprint = $null; NotAfter = $null }

    $client = New-Object System.Net.Sockets.TcpClient -ArgumentList $ipAddress.AddressFamily
    $sslStream = $null
    try {
        # --- connect: bounded by Wait, since a TcpClient connect has no timeout of its own.
        $clock = [System.Diagnostics.Stopwatch]::StartNew()
        $connected = $false
        try {
            $connected = [bool]$client.ConnectAsync($ipAddress, $Port).Wait($TimeoutMilliseconds)
            if (-not $connected) {
                $outcome = 'timeout'
                $message = 'no TCP connection within {0} ms' -f $TimeoutMilliseconds
            }
        }
        catch [System.Management.Automation.MethodInvocationException] {
            $detail = Get-RrHandshakeExceptionDetail -Exception $_.Exception
            $outcome = Get-RrHandshakeSocketOutcome -SocketError $detail.SocketError
            if ($null -eq $outcome -or $outcome -eq 'reset') {
                # Unreachable, address not available, ...: nothing accepts on that port either.
                $outcome = 'refused'
            }
            $message = $detail.Message
        }
        $connectMs = [int]$clock.ElapsedMilliseconds

        # --- negotiate: the Connection Request, then the Connection Confirm.
        $tls = $false
        if ($connected) {
            $stage = 'negotiate'
            $clock = [System.Diagnostics.Stopwatch]::StartNew()
            $stream = $client.GetStream()
            try {
                $stream.WriteTimeout = $TimeoutMilliseconds
                $request = Get-RrConnectionRequestBytes
                $stream.Write($request, 0, $request.Length)
                $header = Read-RrHandshakeBytes -Stream $stream -Count 4 -Clock $clock -TimeoutMilliseconds $TimeoutMilliseconds
                $packet = $null
                if ($header.TimedOut) {
                    $outcome = 'timeout'
                    $message = 'no answer to the Connection Request within {0} ms' -f $TimeoutMilliseconds
                }
                elseif ($header.End) {
                    $outcome = 'reset'
                    $message = 'the server closed the connection after {0} of 4 TPKT header bytes' -f $header.Count
                }
                elseif ($header.Bytes[0] -ne 0x03 -or $header.Bytes[1] -ne 0x00) {
                    $outcome = 'protocol'
                    $message = 'not a TPKT header: 0x{0:X2} 0x{1:X2} 0x{2:X2} 0x{3:X2}' -f $header.Bytes[0], $header.Bytes[1], $header.Bytes[2], $header.Bytes[3]
                }
                else {
                    $length = 256 * [int]$header.Bytes[2] + [int]$header.Bytes[3]
                    # A Connection Confirm is 11 bytes, 19 with its negotiation structure.
                    if ($length -lt 11 -or $length -gt 1024) {
                        $outcome = 'protocol'
                        $message = 'TPKT length {0} does not fit a Connection Confirm' -f $length
                    }
                    else {
                        $body = Read-RrHandshakeBytes -Stream $stream -Count ($length - 4) -Clock $clock -TimeoutMilliseconds $TimeoutMilliseconds
                        if ($body.TimedOut) {
                            $outcome = 'timeout'
                            $message = 'the Connection Confirm did not arrive whole within {0} ms' -f $TimeoutMilliseconds
                        }
                        elseif ($body.End) {
                            $outcome = 'reset'
                            $message = 'the server closed the connection after {0} of {1} bytes of the Connection Confirm' -f (4 + $body.Count), $length
                        }
                        else {
                            $packet = [byte[]]($header.Bytes + $body.Bytes)
                        }
                    }
                }
                if ($null -ne $packet) {
                    $confirm = ConvertFrom-RrConnectionConfirm -Packet $packet
                    $outcome = $confirm.Error
                    $message = $confirm.Message
                    $failureCode = $confirm.FailureCode
                    $selectedProtocol = $confirm.SelectedProtocol
                    $tls = [bool]$confirm.Tls
                }
            }
            catch [System.Management.Automation.MethodInvocationException] {
                $detail = Get-RrHandshakeExceptionDetail -Exception $_.Exception
                $outcome = Get-RrHandshakeSocketOutcome -SocketError $detail.SocketError
                if ($null -eq $outcome -or $outcome -eq 'refused') {
                    # A read or write that failed without a usable socket error: the connection is gone.
                    $outcome = 'reset'
                }
                $message = $detail.Message
            }
            $negotiateMs = [int]$clock.ElapsedMilliseconds
        }

        # --- tls: on the same socket, accepting and recording whatever certificate is served.
        if ($tls) {
            $stage = 'tls'
            $clock = [System.Diagnostics.Stopwatch]::StartNew()
            # AuthenticateAsClient calls this on the calling thread, within this function, so a
            # script block works on Windows PowerShell 5.1 as on PowerShell 7. It accepts any
            # certificate: the check wants to see what is served, not to trust it.
            $callback = [System.Net.Security.RemoteCertificateValidationCallback] {
                param($source, $certificate, $chain, $policyErrors)
                if ($null -ne $certificate) {
                    $x509 = $certificate -as [System.Security.Cryptography.X509Certificates.X509Certificate2]
                    if ($null -eq $x509) {
                        $x509 = New-Object System.Security.Cryptography.X509Certificates.X509Certificate2 -ArgumentList $certificate
                    }
                    $served.Thumbprint = ([string]$x509.Thumbprint).ToUpperInvariant()
                    $served.NotAfter = $x509.NotAfter.ToUniversalTime()
                }
                return $true
            }
            # TLS 1.2, and TLS 1.3 where both the runtime (.NET Framework 4.6.2 lacks it) and the
            # OS have it; by name, since the enum member itself is missing on 4.6.2.
            $protocols = [System.Security.Authentication.SslProtocols]::Tls12
            if (Test-RrTls13Offerable) {
                $protocols = $protocols -bor [System.Enum]::Parse([System.Security.Authentication.SslProtocols], 'Tls13')
            }
            try {
                # The synchronous handshake reads through the NetworkStream, so its ReadTimeout bounds each read.
                $stream.ReadTimeout = $TimeoutMilliseconds
                $sslStream = New-Object System.Net.Security.SslStream -ArgumentList $stream, $false, $callback
                $sslStream.AuthenticateAsClient($Address, $null, $protocols, $false)
                $stage = 'done'
                $tlsVersion = [string]$sslStream.SslProtocol
                if ($null -ne $sslStream.PSObject.Properties['NegotiatedCipherSuite']) {
                    $cipher = [string]$sslStream.NegotiatedCipherSuite
                }
                else {
                    $cipher = '{0}-{1}' -f $sslStream.CipherAlgorithm, $sslStream.CipherStrength
                }
            }
            catch [System.Management.Automation.MethodInvocationException] {
                $detail = Get-RrHandshakeExceptionDetail -Exception $_.Exception
                $outcome = Get-RrHandshakeSocketOutcome -SocketError $detail.SocketError
                if ($outcome -ne 'timeout' -and $outcome -ne 'reset') {
                    # An alert, a certificate or algorithm the client cannot use, garbage: TLS
                    # itself failed. Unless it was an I/O error without a socket error and
                    # without TLS refusing anything, from a server that hung up (FIN).
                    $outcome = 'tls'
                    if (-not $detail.Authentication -and (Test-RrSocketClosedByPeer -Socket $client.Client)) {
                        $outcome = 'reset'
                    }
                }
                $message = $detail.Message
            }
            $tlsMs = [int]$clock.ElapsedMilliseconds
        }
    }
    finally {
        if ($null -ne $sslStream) {
            $sslStream.Dispose()
        }
        $client.Dispose()
    }

    return [pscustomobject]@{
        Address               = $Address
        Port                  = $Port
        Stage                 = $stage
        Error                 = $outcome
        Message               = $message
        FailureCode           = $failureCode
        SelectedProtocol      = $selectedProtocol
        TlsVersion            = $tlsVersion
        Cipher                = $cipher
        CertificateThumbprint = $served.Thumbprint
        CertificateNotAfter   = $served.NotAfter
        ConnectMs             = $connectMs
        NegotiateMs           = $negotiateMs
        TlsMs                 = $tlsMs
    }
}
