# Runs every Pester test under test/pester and writes the counts as JSON for tools/test.mjs,
# which folds them into the one "N passed, N failed" line.
param(
    [Parameter(Mandatory = $true)][string]$PesterModule,
    [Parameter(Mandatory = $true)][string]$ResultFile
)
$ErrorActionPreference = 'Stop'
Import-Module $PesterModule -Force
$configuration = New-PesterConfiguration
$configuration.Run.Path = $PSScriptRoot
$configuration.Run.PassThru = $true
$configuration.Output.Verbosity = 'Normal'
$result = Invoke-Pester -Configuration $configuration
$counts = [ordered]@{
    passed  = $result.PassedCount
    failed  = $result.FailedCount + $result.FailedBlocksCount + $result.FailedContainersCount
    skipped = $result.SkippedCount + $result.NotRunCount
}
Set-Content -LiteralPath $ResultFile -Value (ConvertTo-Json -InputObject $counts -Compress)
if ($counts.failed -gt 0) { exit 1 }
exit 0
