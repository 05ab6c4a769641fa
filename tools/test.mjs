#!/usr/bin/env node
// `npm test`: the vitest suite (TypeScript units, end-to-end runs against the emulator and
// Azurite, and the cross-language scenarios that run the payloads under PowerShell), then the
// Pester suite (the payload logic against the Windows double, under PowerShell 7.6.9).
// Arguments go to vitest. The Pester counts are written to .tools/pester-results.json.
//
// PowerShell comes from tools/pwsh.mjs (pwsh 7.6.x, or the pinned local .NET tool, restored
// when the .NET SDK is there). Without it the PowerShell tests skip loudly, except under
// CI=true, where a missing PowerShell is a failure.
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, rmSync } from 'node:fs';
import { delimiter, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { findPwsh } from './pwsh.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
// Children (Pester's schema check runs `node`) get this Node 22, not an older one on PATH.
process.env.PATH = `${dirname(process.execPath)}${delimiter}${process.env.PATH ?? ''}`;
const ci = process.env.CI === 'true';
const pesterModule = join(root, '.tools', 'nuget', 'pester', '5.7.1', 'tools', 'Pester.psd1');
const resultFile = join(root, '.tools', 'pester-results.json');

function loud(message) {
  const bar = '!'.repeat(78);
  console.error(`\n${bar}\n${message}\n${bar}\n`);
}

// The Bicep CLI comes with the same restore; the infra tests compile and lint with it when set.
const bicep = join(root, '.tools', 'nuget', 'azure.bicep.commandline.linux-x64', '0.49.2', 'tools', 'bicep');

/** Pester and the Bicep CLI, restored from NuGet into .tools/nuget when the .NET SDK is there. */
function restoreNuGet() {
  if (existsSync(pesterModule) && existsSync(bicep)) return true;
  const restore = spawnSync('dotnet', ['restore', join(root, 'tools', 'nuget', 'restore.csproj'), '--packages', join(root, '.tools', 'nuget')], { stdio: 'inherit' });
  return restore.status === 0 && existsSync(pesterModule);
}

// First PowerShell and the NuGet packages, so that the vitest suite finds them too.
mkdirSync(join(root, '.tools'), { recursive: true });
rmSync(resultFile, { force: true });
const pwsh = findPwsh({ install: true });
if (pwsh !== null) process.env.PWSH_PATH = pwsh;
const pester = pwsh !== null && restoreNuGet();
if (process.env.BICEP_PATH === undefined && existsSync(bicep)) {
  chmodSync(bicep, 0o755);
  process.env.BICEP_PATH = bicep;
}

const vitest = spawnSync(process.execPath, [join(root, 'node_modules', 'vitest', 'vitest.mjs'), 'run', ...process.argv.slice(2)], { stdio: 'inherit', cwd: root });
let failed = vitest.status !== 0;

if (pwsh === null) {
  if (ci) {
    loud('Pester: no PowerShell 7 found, and CI=true requires it. Run `dotnet tool restore` (the .NET SDK) or put pwsh 7.6 on PATH.');
    failed = true;
  } else {
    loud('Pester SKIPPED: no PowerShell 7 found. Install the .NET SDK and run `dotnet tool restore`, or put pwsh 7.6 on PATH.');
  }
} else if (!pester) {
  loud(`Pester: could not restore Pester 5.7.1 into .tools/nuget (dotnet restore tools/nuget/restore.csproj).${ci ? '' : ' Pester SKIPPED.'}`);
  failed ||= ci;
} else {
  console.log(`\nPester 5.7.1 under ${pwsh}`);
  const run = spawnSync(pwsh, ['-NoProfile', '-NonInteractive', '-File', join(root, 'test', 'pester', 'run.ps1'), '-PesterModule', pesterModule, '-ResultFile', resultFile], { stdio: 'inherit', cwd: root });
  if (run.status !== 0) failed = true;
}
process.exit(failed ? 1 : 0);
