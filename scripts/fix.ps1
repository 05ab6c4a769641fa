# rdp-remediator-payload:fix
#
# Applies the requested RDP repair actions for error 0x904 / extended 0x7 (registry, ACLs,
# certificates, services, Windows Firewall rules), in the order given, backing up to
# %ProgramData%\RdpRemediation\<RunId>\ before every change, then re-reads all facts the
# probe reads (the loopback handshake, events and firewall included) as verification and
# prints one FixResult JSON line (docs/payload-contract.md). DryRun=true reports what would
# change and changes nothing.
# Sent by rdp-remediator through Run Command (RunPowerShellScript); runs as SYSTEM under
# Windows PowerShell 5.1. The libraries are spliced in at the include line.
[CmdletBinding()]
param(
    [Parameter(Mandatory = $true)]
    [ValidatePattern('^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$')]
    [string]$RunId,

    # Comma-separated action ids; each is checked against the allow-list in the logic.
    [Parameter(Mandatory = $true)]
    [ValidatePattern('^[a-z0-9-]+(,[a-z0-9-]+)*$')]
    [string]$Actions,

    [ValidateSet('true', 'false')]
    [string]$DryRun = 'false',

    # Only for restore-rdp-security; absent leaves the value alone. Never sent empty: the Run
    # Command agent would leave the name without an argument and binding would fail.
    [ValidateSet('0', '1', '2')]
    [string]$RestoreSecurityLayer,

    [ValidateSet('0', '1')]
    [string]$RestoreUserAuthentication
)

Set-StrictMode -Version 3.0
$ErrorActionPreference = 'Stop'
# Progress records cost time and mean nothing to Run Command.
$ProgressPreference = 'SilentlyContinue'

#include-libraries

$resultLine = $null
try {
    # An absent restore parameter reads as '' here, which the logic takes as "leave alone".
    $fixResult = Invoke-RrFix -RunId $RunId -Actions $Actions -DryRun $DryRun -RestoreSecurityLayer $RestoreSecurityLayer -RestoreUserAuthentication $RestoreUserAuthentication
    $resultLine = ConvertTo-RrResultLine -Result $fixResult
}
catch {
    # Built here rather than by a library function: the failure may be in the libraries.
    # The driver catches what actions throw, so only a failure around them lands here.
    $message = [string]$_.Exception.Message
    if ($message.Length -gt 1000) {
        $message = $message.Substring(0, 1000)
    }
    $failure = [ordered]@{
        kind      = 'fix'
        v         = 1
        ok        = $false
        runId     = [string]$RunId
        dryRun    = ($DryRun -ceq 'true')
        backupDir = $null
        actions   = @()
        verify    = $null
        error     = [ordered]@{ code = 'exception'; message = $message }
    }
    $resultLine = ConvertTo-Json -InputObject $failure -Compress -Depth 5
}
Write-Output $resultLine
