#!/usr/bin/env node
// Builds the deployable zip for Azure Functions (Flex Consumption zip deploy, config-zip, azd):
// only what runs. Compiles with tsc, stages host.json, package.json, package-lock.json, the
// compiled functions and src (JavaScript only), the PowerShell payloads and the event query
// into .tools/package/, installs the production dependencies there, checks that the staged
// app loads, and writes build/rdp-remediator.zip with fixed timestamps in sorted order, so
// equal inputs give an equal zip.
// Usage: node tools/node22.mjs tools/package.mjs [--out <zip>] [--stage <dir>]
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { dirname, join, posix, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { writeZip } from './zip.mjs';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const { values: options } = parseArgs({
  options: {
    out: { type: 'string', default: join(root, 'build', 'rdp-remediator.zip') },
    stage: { type: 'string', default: join(root, '.tools', 'package') },
  },
});
const out = resolve(options.out);
const stage = resolve(options.stage);

/** Top-level files the host and npm need. */
const ROOT_FILES = ['host.json', 'package.json', 'package-lock.json'];
/** TypeScript source folders whose compiled output runs in the app (dist/emulator, demo and bench do not). */
const COMPILED_FOLDERS = ['functions', 'src'];
/** Files read at run time, relative to the package root (see src/payloads/compose.ts, src/alerts/event-query.ts). */
const RUNTIME_FILES = [
  'scripts/probe.ps1',
  'scripts/fix.ps1',
  ...listFiles(join(root, 'scripts', 'lib'), root).filter((f) => f.endsWith('.ps1')),
  'infra/queries/rdp-events.kql',
];

function fail(message) {
  console.error(`package: ${message}`);
  process.exit(1);
}

function run(command, args, cwd) {
  const windows = process.platform === 'win32';
  const result = spawnSync(command, args, { cwd, stdio: 'inherit', shell: windows && command.endsWith('.cmd') });
  if (result.error) fail(`${command} ${args.join(' ')}: ${result.error.message}`);
  if (result.status !== 0) fail(`${command} ${args.join(' ')} exited with ${result.status ?? result.signal}`);
}

/** Files under `dir`, as forward-slash paths relative to `base`, sorted. */
function listFiles(dir, base, skip = () => false) {
  const found = [];
  const walk = (current) => {
    for (const dirent of readdirSync(current, { withFileTypes: true })) {
      const path = join(current, dirent.name);
      const rel = relative(base, path).split(sep).join('/');
      if (skip(rel, dirent)) continue;
      if (dirent.isDirectory()) walk(path);
      else if (dirent.isFile()) found.push(rel);
      else fail(`${rel}: neither a file nor a folder (a symlink?); the zip holds regular files only`);
    }
  };
  walk(dir);
  return found.sort(byName);
}

function byName(a, b) {
  return a < b ? -1 : a > b ? 1 : 0;
}

function copyIntoStage(rel, from = rel) {
  const target = join(stage, rel);
  mkdirSync(dirname(target), { recursive: true });
  copyFileSync(join(root, from), target);
}

// 1. Build.
const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');
if (!existsSync(tsc)) fail('typescript is not installed; run npm ci first');
console.log('package: tsc -p tsconfig.build.json');
run(process.execPath, [tsc, '-p', 'tsconfig.build.json'], root);

// 2. Stage the app. Compiled files are taken per TypeScript source, so output left in dist/
// by a source since deleted or renamed does not ship.
rmSync(stage, { recursive: true, force: true });
mkdirSync(stage, { recursive: true });
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
if (pkg.name !== 'rdp-remediator') fail(`package.json names ${pkg.name}, not rdp-remediator`);
for (const file of ROOT_FILES) copyIntoStage(file);
const compiled = [];
for (const folder of COMPILED_FOLDERS) {
  for (const source of listFiles(join(root, folder), root)) {
    if (!source.endsWith('.ts') || source.endsWith('.d.ts')) continue;
    const output = posix.join('dist', source.replace(/\.ts$/, '.js'));
    if (!existsSync(join(root, output))) fail(`${output} missing after the build (from ${source})`);
    compiled.push(output);
  }
}
const stale = COMPILED_FOLDERS.flatMap((folder) => listFiles(join(root, 'dist', folder), root))
  .filter((f) => f.endsWith('.js') && !compiled.includes(f));
if (stale.length > 0) console.log(`package: left out ${stale.length} file(s) in dist/ with no source: ${stale.join(', ')}`);
for (const file of [...compiled, ...RUNTIME_FILES]) copyIntoStage(file);

// 3. Every import of the staged code must resolve inside the stage or to a production dependency.
const dependencies = new Set(Object.keys(pkg.dependencies ?? {}));
const builtins = new Set(builtinModules);
const staged = new Set(compiled);
const importPattern = /(?:\bfrom\s*|\bimport\s*\(\s*|^\s*import\s+)(['"])([^'"]+)\1/gm;
for (const file of compiled) {
  const text = readFileSync(join(stage, file), 'utf8');
  for (const [, , specifier] of text.matchAll(importPattern)) {
    if (specifier.startsWith('.')) {
      const target = posix.normalize(posix.join(posix.dirname(file), specifier));
      if (!staged.has(target)) fail(`${file} imports ${specifier}, which is not in the package`);
    } else if (specifier.startsWith('node:') || builtins.has(specifier)) {
      continue;
    } else {
      const name = specifier.startsWith('@') ? specifier.split('/').slice(0, 2).join('/') : specifier.split('/')[0];
      if (!dependencies.has(name)) fail(`${file} imports ${specifier}, which is not a production dependency`);
    }
  }
}

// 4. Production dependencies. --ignore-scripts: "prepare" would run tsc, a dev dependency.
console.log('package: npm ci --omit=dev');
run(process.platform === 'win32' ? 'npm.cmd' : 'npm', ['ci', '--omit=dev', '--ignore-scripts', '--no-audit', '--no-fund'], stage);

// 5. Leave out what cannot run from node_modules: source maps (read only under
// --enable-source-maps, and a missing one is ignored) and TypeScript files (declarations, and
// sources that Node refuses to strip types from inside node_modules).
const NOT_RUN = /\.(?:map|ts|mts|cts)$/;
let pruned = 0;
for (const file of listFiles(join(stage, 'node_modules'), stage, (_rel, dirent) => dirent.isSymbolicLink())) {
  if (!NOT_RUN.test(file)) continue;
  rmSync(join(stage, file));
  pruned += 1;
}
console.log(`package: left out ${pruned} source maps and TypeScript files from node_modules`);

// 6. The staged app loads: every function registers, both payloads compose and the event
// query reads, so the files they need at run time are in the stage.
const smoke = `
const functions = ${JSON.stringify(compiled.filter((f) => /^dist\/functions\/[^/]+\.js$/.test(f)))};
for (const file of functions) await import('./' + file);
const { composeScript } = await import('./dist/src/payloads/compose.js');
composeScript('probe');
composeScript('fix');
const { eventQuery } = await import('./dist/src/alerts/event-query.js');
eventQuery();
`;
const check = spawnSync(process.execPath, ['--input-type=module', '-e', smoke], { cwd: stage, encoding: 'utf8' });
if (check.status !== 0) fail(`the staged app does not load:\n${check.stderr}${check.stdout}`);

// 7. Zip. Not zipped: node_modules/.bin (symlinks to CLIs) and npm's own bookkeeping.
const files = listFiles(stage, stage, (rel, dirent) => {
  if (dirent.isDirectory() && dirent.name === '.bin' && rel.includes('node_modules/')) return true;
  return rel === 'node_modules/.package-lock.json';
});
mkdirSync(dirname(out), { recursive: true });
const partial = `${out}.partial`;
const written = writeZip(
  partial,
  files.map((name) => ({ name, file: join(stage, name), mode: lstatSync(join(stage, name)).mode })),
);
renameSync(partial, out);
const unpacked = files.reduce((sum, name) => sum + statSync(join(stage, name)).size, 0);
const mib = (bytes) => `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
console.log(`package: ${relative(process.cwd(), out) || out}: ${written.entries} files, ${mib(written.bytes)} (${mib(unpacked)} unpacked)`);
