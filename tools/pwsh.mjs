#!/usr/bin/env node
// Finds PowerShell 7 for the tests, the emulator, `npm start` and .ci/run.
//
//   import { findPwsh, locatePwsh } from './tools/pwsh.mjs';
//   const pwsh = findPwsh({ install: true });   // a path, or null after printing why and how to install
//   const found = locatePwsh();                 // the same search, with what it tried, printing nothing
//
//   node tools/pwsh.mjs            prints the path, or explains and exits 1
//   node tools/pwsh.mjs --install  may run `dotnet tool restore` first
//
// Where it looks, in order:
//   1. $PWSH_PATH, a path to a pwsh executable (taken as it is).
//   2. The PowerShell .NET tool package that .config/dotnet-tools.json pins, in the NuGet
//      packages folder ($NUGET_PACKAGES or ~/.nuget/packages): its native host
//      powershell/<version>/tools/<tfm>/any/unix/pwsh starts in about half a second, where
//      `dotnet pwsh` takes 2.5 s. Made executable when the package was extracted without +x.
//   3. With `install`, when `dotnet` is on PATH: `dotnet tool restore` in the project root, then 2.
//   4. `pwsh` on PATH, only if its $PSVersionTable.PSVersion has the pinned major.minor.
// The version lives only in .config/dotnet-tools.json.
import { spawnSync } from 'node:child_process';
import { accessSync, chmodSync, constants, existsSync, readdirSync, readFileSync, realpathSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const projectRoot = join(dirname(fileURLToPath(import.meta.url)), '..');
const toolManifest = join(projectRoot, '.config', 'dotnet-tools.json');

/** The PowerShell version the project pins, from .config/dotnet-tools.json. */
export function pinnedPowerShellVersion() {
  const manifest = JSON.parse(readFileSync(toolManifest, 'utf8'));
  const version = manifest?.tools?.powershell?.version;
  if (typeof version !== 'string' || !/^\d+\.\d+\.\d+/.test(version)) {
    throw new Error(`${toolManifest} does not pin a PowerShell version (tools.powershell.version)`);
  }
  return version;
}

export function nugetPackagesFolder() {
  return process.env.NUGET_PACKAGES || join(homedir(), '.nuget', 'packages');
}

function isExecutable(path) {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** The tool package's native host, or null; notes what it found on the way. */
function toolPackageHost(version, notes) {
  const toolsDir = join(nugetPackagesFolder(), 'powershell', version, 'tools');
  if (!existsSync(toolsDir)) return null;
  const windows = process.platform === 'win32';
  let frameworks;
  try {
    frameworks = readdirSync(toolsDir).sort().reverse(); // net10.0 before net9.0
  } catch {
    return null;
  }
  for (const tfm of frameworks) {
    const candidate = windows ? join(toolsDir, tfm, 'any', 'win', 'pwsh.exe') : join(toolsDir, tfm, 'any', 'unix', 'pwsh');
    if (!existsSync(candidate)) continue;
    if (!windows && !isExecutable(candidate)) {
      try {
        chmodSync(candidate, statSync(candidate).mode | 0o755);
      } catch (error) {
        notes.push(`${candidate} is not executable and chmod failed: ${error.message}`);
        continue;
      }
    }
    return candidate;
  }
  notes.push(`${toolsDir} holds no native pwsh host`);
  return null;
}

function onPath(command) {
  const r = spawnSync(process.platform === 'win32' ? 'where' : 'which', [command], { encoding: 'utf8' });
  if (r.status !== 0) return null;
  return r.stdout.split(/\r?\n/)[0]?.trim() || null;
}

function psVersionOf(path) {
  const r = spawnSync(path, ['-NoProfile', '-NonInteractive', '-Command', '$PSVersionTable.PSVersion.ToString()'], {
    encoding: 'utf8',
    timeout: 30_000,
  });
  if (r.status !== 0) return null;
  return r.stdout.trim() || null;
}

function restoreTools(notes, log) {
  log(`PowerShell ${pinnedPowerShellVersion()} is not in ${nugetPackagesFolder()}: running \`dotnet tool restore\` in ${projectRoot} ...`);
  const r = spawnSync('dotnet', ['tool', 'restore'], { cwd: projectRoot, encoding: 'utf8', timeout: 300_000 });
  if (r.status !== 0) {
    const output = `${r.stdout ?? ''}${r.stderr ?? ''}`.trim().split(/\r?\n/).slice(-5).join('\n');
    notes.push(`\`dotnet tool restore\` failed${r.error ? ` (${r.error.message})` : ''}: ${output}`);
    return false;
  }
  return true;
}

function missingMessage(version, notes) {
  const minor = version.split('.').slice(0, 2).join('.');
  return [
    `PowerShell ${minor} (pinned ${version} in .config/dotnet-tools.json) was not found.`,
    ...notes.map((n) => `  - ${n}`),
    'Install it one of these ways:',
    `  - PowerShell ${minor}.x as \`pwsh\` on PATH (https://learn.microsoft.com/powershell/scripting/install/installing-powershell), or`,
    '  - the .NET SDK (https://dot.net), then `dotnet tool restore` in the project root (or run `node tools/pwsh.mjs --install`), or',
    '  - set PWSH_PATH to a pwsh executable.',
  ].join('\n');
}

/**
 * Looks for PowerShell 7 as pinned by .config/dotnet-tools.json and says what it tried.
 *
 * @param {{ install?: boolean, log?: (message: string) => void }} [options]
 *   install: may run `dotnet tool restore` when the tool package is missing (default false).
 *   log: progress messages, such as the restore starting (default console.error).
 * @returns {{ path: string, version: string, source: 'PWSH_PATH' | 'dotnet-tool' | 'PATH', notes: string[] }
 *         | { path: null, version: string, notes: string[], message: string }}
 */
export function locatePwsh(options = {}) {
  const { install = false, log = (m) => console.error(m) } = options;
  const version = pinnedPowerShellVersion();
  const minor = version.split('.').slice(0, 2).join('.');
  const notes = [];

  const fromEnv = process.env.PWSH_PATH;
  if (fromEnv) {
    if (existsSync(fromEnv)) return { path: fromEnv, version, source: 'PWSH_PATH', notes };
    notes.push(`PWSH_PATH is set to ${fromEnv}, which does not exist`);
  }

  let host = toolPackageHost(version, notes);
  if (host === null && install) {
    if (onPath('dotnet') !== null) {
      if (restoreTools(notes, log)) {
        host = toolPackageHost(version, notes);
        if (host === null) {
          notes.push(`\`dotnet tool restore\` succeeded but ${join(nugetPackagesFolder(), 'powershell', version)} holds no pwsh (was the tool restored into another NuGet packages folder? check NUGET_PACKAGES)`);
        }
      }
    } else {
      notes.push('no `dotnet` on PATH to restore the PowerShell tool package with');
    }
  }
  if (host !== null) return { path: host, version, source: 'dotnet-tool', notes };
  if (!install) notes.push(`the PowerShell ${version} tool package is not in ${nugetPackagesFolder()} (not restored: install was not asked for)`);

  const pwsh = onPath('pwsh');
  if (pwsh !== null) {
    const found = psVersionOf(pwsh);
    if (found !== null && (found === minor || found.startsWith(`${minor}.`))) return { path: pwsh, version: found, source: 'PATH', notes };
    notes.push(`pwsh on PATH (${pwsh}) is PowerShell ${found ?? '(version unreadable)'}, not ${minor}.x`);
  } else {
    notes.push('no `pwsh` on PATH');
  }
  return { path: null, version, notes, message: missingMessage(version, notes) };
}

function isMain() {
  try {
    return process.argv[1] !== undefined && realpathSync(fileURLToPath(import.meta.url)) === realpathSync(process.argv[1]);
  } catch {
    return false;
  }
}

/**
 * The pwsh executable to use, or null. On null it has printed (options.log, default
 * console.error) what it tried and how to install PowerShell 7, unless `quiet`.
 *
 * @param {{ install?: boolean, quiet?: boolean, log?: (message: string) => void }} [options]
 * @returns {string | null}
 */
export function findPwsh(options = {}) {
  const log = options.log ?? ((m) => console.error(m));
  const found = locatePwsh({ install: options.install ?? false, log });
  if (found.path === null && options.quiet !== true) log(found.message);
  return found.path;
}

if (isMain()) {
  const found = locatePwsh({ install: process.argv.includes('--install') });
  if (found.path === null) {
    console.error(found.message);
    process.exit(1);
  }
  for (const note of found.notes) console.error(`note: ${note}`);
  console.log(found.path);
}
