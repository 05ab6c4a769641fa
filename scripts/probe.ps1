# rdp-remediator-payload:probe
#
# Read-only diagnosis of RDP error 0x904 / extended 0x7 on an Azure Windows VM: reads the
# RDP certificate, key-file and MachineKeys ACLs, listener settings, Group Policy
# ownership, SCHANNEL TLS 1.2, services and domain state, the Windows Firewall profiles and
# inbound rules, the cause-naming System-log events of the last 72 hours, and runs an RDP
# client's handshake as far as TLS against the VM's own listener (scripts/docs/handshake.md;
# it sends no credentials). Prints one ProbeResult JSON line (docs/payload-contract.md).
# Changes nothing and writes no file. With
# ReadManifests=true it also reads back the manifests an earlier fix run with the same RunId
# left in %ProgramData%\RdpRemediation\<RunId>\ (a resumed job), into the line's previous.
# Sent by rdp-remediator through Run Command (RunPowerShellScript); runs as SYSTEM under
# Windows PowerShell 5.1. The libraries are spliced in at the include line.
[CmdletBinding()]
param(
    [Parameter(Mandatory = $true)]
    [ValidatePattern('^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$')]
    [string]$RunId,

    # Only for a resumed job; absent reads nothing. Never sent empty: the Run Command agent
    # would leave the name without an argument and binding would fail.
    [ValidateSet('true', 'false')]
    [string]$ReadManifests
)

Set-StrictMode -Version 3.0
$ErrorActionPreference = 'Stop'
# Progress records cost time and mean nothing to Run Command.
$ProgressPreference = 'SilentlyContinue'

#include-libraries

$resultLine = $null
try {
    # An absent ReadManifests reads as '' here, which the logic takes as "read nothing".
    $probeResult = Invoke-RrProbe -RunId $RunId -ReadManifests $ReadManifests
    $resultLine = ConvertTo-RrResultLine -Result $probeResult
}
catch {
    # Built here rather than by a library function: the failure may be in the libraries.
    $message = [string]$_.Exception.Message
    if ($message.Length -gt 1000) {
        $message = $message.Substring(0, 1000)
    }
    $failure = [ordered]@{
        kind  = 'probe'
        v     = 1
        ok    = $false
        runId = [string]$RunId
        error = [ordered]@{ code = 'exception'; message = $message }
    }
    $resultLine = ConvertTo-Json -InputObject $failure -Compress -Depth 5
}
Write-Output $resultLine
