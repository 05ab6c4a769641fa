#!/usr/bin/env node
// Builds the deployable zip for Azure Functions (Flex Consumption zip deploy, config-zip, azd):
// only what runs. Stages into .tools/package/:
//   host.json
//   package.json            written here: `main` is the bundled entries, no dependencies
//   dist-bundle/functions/  the esbuild bundle (tools/bundle.mjs): one file per function module,
//                           the shared and lazily loaded chunks in chunks/
//   scripts/**/*.ps1        the PowerShell payloads (src/payloads/compose.ts reads them)
//   infra/queries/rdp-events.kql  the shipped event query (src/alerts/event-query.ts reads it)
// checks that the staged app needs nothing from node_modules and loads from the stage, and
// writes build/rdp-remediator.zip with yazl: sorted entries, one fixed timestamp, fixed modes,
// so equal inputs give an equal zip.
//
// No node_modules: every dependency is bundled. The only modules left out of the bundle are
// @azure/functions-core, which the Functions worker provides at run time, and kerberos, an
// optional peer that is not installed (see EXTERNAL in tools/bundle.mjs); the check below fails
// the build if any other package is imported at run time.
// Usage: node tools/node22.mjs tools/package.mjs [--out <zip>] [--stage <dir>]
import { spawnSync } from 'node:child_process';
import { copyFileSync, createWriteStream, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { deflateRawSync } from 'node:zlib';
import * as esbuild from 'esbuild';
import yazl from 'yazl';
import { bundleAll, bundleOptions, EXTERNAL, FUNCTION_MODULES, REGISTRATION_ENTRY } from './bundle.mjs';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');

/** Where the app is staged (what azure.yaml's `dist` deploys) and the zip written, unless told otherwise. */
export const DEFAULT_STAGE = join(root, '.tools', 'package');
export const DEFAULT_OUT = join(root, 'build', 'rdp-remediator.zip');

/** The Functions host imports this at start-up: the registration entry, which imports the handler modules. */
export const DEPLOYED_MAIN = `dist-bundle/functions/${REGISTRATION_ENTRY}.mjs`;

/**
 * 1980-01-01 00:00:00 local time, the earliest DOS date: every entry gets it. yazl writes the DOS
 * date from local time, so this is the same in every time zone; forceDosTimestamp leaves out
 * the UTC extended timestamp that would differ between them.
 */
const FIXED_MTIME = new Date(1980, 0, 1, 0, 0, 0);

/**
 * @typedef {object} ZipEntry
 * @property {string} name  path inside the archive: relative, forward slashes, no `.` or `..` segments
 * @property {Buffer | Uint8Array | string} [data]  the content (strings are written as UTF-8)
 * @property {string} [file]  or a file to read the content from
 * @property {number} [mode]  unix permission bits; 0o644 unless given (anything executable becomes 0o755)
 */

/** Throws unless `name` is a safe relative archive path (stricter than yazl, which rewrites backslashes). */
export function checkEntryName(name) {
  if (typeof name !== 'string' || name === '') throw new Error('zip: entry name must be a non-empty string');
  if (name.includes('\\')) throw new Error(`zip: entry name uses a backslash: ${name}`);
  if (name.startsWith('/') || /^[A-Za-z]:/.test(name)) throw new Error(`zip: entry name is absolute: ${name}`);
  if (name.includes('\0')) throw new Error(`zip: entry name contains NUL: ${JSON.stringify(name)}`);
  for (const segment of name.split('/')) {
    if (segment === '' || segment === '.' || segment === '..') throw new Error(`zip: entry name has an empty, . or .. segment: ${name}`);
  }
}

function contentOf(entry) {
  if (entry.data !== undefined) return typeof entry.data === 'string' ? Buffer.from(entry.data, 'utf8') : Buffer.from(entry.data);
  if (entry.file !== undefined) return readFileSync(entry.file);
  throw new Error(`zip: entry ${entry.name} has neither data nor file`);
}

/**
 * A yazl ZipFile holding the entries in the order given, ended. Content goes in as buffers, so
 * yazl knows each CRC and size up front and writes them in the local headers (no data
 * descriptors); an entry deflate would not shrink is stored.
 * @param {Iterable<ZipEntry>} entries
 */
function zipFileOf(entries) {
  const zip = new yazl.ZipFile();
  const seen = new Set();
  for (const entry of entries) {
    checkEntryName(entry.name);
    if (seen.has(entry.name)) throw new Error(`zip: duplicate entry ${entry.name}`);
    seen.add(entry.name);
    const data = contentOf(entry);
    const shrinks = data.length > 0 && deflateRawSync(data, { level: 9 }).length < data.length;
    zip.addBuffer(data, entry.name, {
      mtime: FIXED_MTIME,
      forceDosTimestamp: true,
      mode: 0o100000 | ((entry.mode ?? 0o644) & 0o111 ? 0o755 : 0o644),
      compressionLevel: shrinks ? 9 : 0,
    });
  }
  zip.end();
  return { zip, count: seen.size };
}

/**
 * The whole archive in memory.
 * @param {Iterable<ZipEntry>} entries
 * @returns {Promise<Buffer>}
 */
export async function zipToBuffer(entries) {
  const { zip } = zipFileOf(entries);
  const chunks = [];
  for await (const chunk of zip.outputStream) chunks.push(chunk);
  return Buffer.concat(chunks);
}

/**
 * Writes the archive to `path`.
 * @param {string} path
 * @param {Iterable<ZipEntry>} entries
 * @returns {Promise<{ entries: number, bytes: number }>}
 */
export async function writeZip(path, entries) {
  const { zip, count } = zipFileOf(entries);
  await pipeline(zip.outputStream, createWriteStream(path));
  return { entries: count, bytes: statSync(path).size };
}

/** Files under `dir`, as forward-slash paths relative to `base`, sorted by code unit. */
function listFiles(dir, base) {
  const found = [];
  const walk = (current) => {
    for (const dirent of readdirSync(current, { withFileTypes: true })) {
      const path = join(current, dirent.name);
      const rel = relative(base, path).split(sep).join('/');
      if (dirent.isDirectory()) walk(path);
      else if (dirent.isFile()) found.push(rel);
      else throw new Error(`${rel}: neither a file nor a folder (a symlink?); the zip holds regular files only`);
    }
  };
  walk(dir);
  return found.sort(byName);
}

function byName(a, b) {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Files read at run time, relative to the package root: the payloads (not their docs) and the shipped queries. */
function runtimeFiles() {
  return [
    ...listFiles(join(root, 'scripts'), root).filter((f) => f.endsWith('.ps1') && !f.startsWith('scripts/docs/')),
    // The event query the app sends (src/alerts/event-query.ts). The workbook's and the failure
    // alert's queries (infra/queries/telemetry/) are not read at run time: Bicep embeds them.
    'infra/queries/rdp-events.kql',
  ];
}

/** The deployed app's package.json: what the host and npm read, and nothing to install. */
function deployedPackageJson(pkg) {
  const { name, version, description, license, engines } = pkg;
  return `${JSON.stringify({ name, version, description, license, type: 'module', main: DEPLOYED_MAIN, engines }, null, 2)}\n`;
}

/**
 * Bundles, with the app's own options, a probe that prints where packageRoot() ends and the
 * sizes of the composed payloads and the event query. Put at the entries' depth
 * (dist-bundle/probe/), it walks up from there as a chunk does.
 */
export async function buildRootProbe(outfile) {
  await esbuild.build({
    ...bundleOptions(),
    metafile: false,
    logLevel: 'silent',
    stdin: {
      contents: [
        "import { packageRoot } from '../src/util/package-root.js';",
        "import { composeScript } from '../src/payloads/compose.js';",
        "import { eventQuery } from '../src/alerts/event-query.js';",
        "console.log(JSON.stringify({ root: packageRoot(), probe: composeScript('probe').length, fix: composeScript('fix').length, query: eventQuery().length }));",
      ].join('\n'),
      resolveDir: join(root, 'functions'),
      sourcefile: 'package-check.ts',
      loader: 'ts',
    },
    outfile,
  });
}

/**
 * Runs the checks the staged app must pass: it imports nothing from node_modules, every entry
 * and every lazily loaded chunk loads with the stage as the working folder, and code bundled the
 * same way finds the payloads and the event query from the bundle's folder depth.
 */
async function checkStage(stage, metafile) {
  const builtins = new Set([...builtinModules, ...builtinModules.map((m) => `node:${m}`)]);
  const external = Object.entries(metafile.outputs).flatMap(([output, o]) =>
    o.imports.filter((i) => i.external && !builtins.has(i.path) && !EXTERNAL.includes(i.path)).map((i) => `${output} imports ${i.path}`),
  );
  if (external.length > 0) throw new Error(`the bundle imports packages at run time, which the package does not ship:\n${external.join('\n')}`);

  const functionsDir = join(stage, 'dist-bundle', 'functions');
  const modules = listFiles(functionsDir, functionsDir).map((f) => join(functionsDir, f));
  const probe = join(stage, 'dist-bundle', 'probe', 'check.mjs');
  await buildRootProbe(probe);
  try {
    const source = [...modules.map((file) => `await import(${JSON.stringify(pathToFileURL(file).href)});`), `await import(${JSON.stringify(pathToFileURL(probe).href)});`].join('\n');
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', source], { cwd: stage, encoding: 'utf8', timeout: 60_000 });
    if (r.status !== 0) throw new Error(`the staged app does not load:\n${r.stderr}${r.stdout}`);
    const found = JSON.parse(r.stdout.trim().split('\n').at(-1) ?? '{}');
    if (resolve(found.root ?? '') !== resolve(stage)) throw new Error(`the staged app finds its package root at ${found.root}, not ${stage}`);
    if (!(found.probe > 0 && found.fix > found.probe && found.query > 0)) throw new Error(`the staged payloads or query are incomplete: ${r.stdout}`);
  } finally {
    rmSync(dirname(probe), { recursive: true, force: true });
  }
}

/** Stages the app into `stage` and writes the zip to `out`; returns what went in. */
export async function buildPackage({ out = DEFAULT_OUT, stage = DEFAULT_STAGE, log = console.log } = {}) {
  out = resolve(out);
  stage = resolve(stage);
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
  if (pkg.name !== 'rdp-remediator') throw new Error(`package.json names ${pkg.name}, not rdp-remediator`);

  // 1. Stage: the bundle (built straight into the stage, no metafile), then the files it reads.
  rmSync(stage, { recursive: true, force: true });
  mkdirSync(stage, { recursive: true });
  const { metafile } = await bundleAll({ out: join(stage, 'dist-bundle'), writeMeta: false });
  writeFileSync(join(stage, 'package.json'), deployedPackageJson(pkg));
  for (const file of ['host.json', ...runtimeFiles()]) {
    mkdirSync(dirname(join(stage, file)), { recursive: true });
    copyFileSync(join(root, file), join(stage, file));
  }

  // 2. The staged app needs nothing else and loads from where it stands.
  await checkStage(stage, metafile);

  // 3. Zip everything staged, sorted.
  const files = listFiles(stage, stage);
  const missing = FUNCTION_MODULES.map((name) => `dist-bundle/functions/${name}.mjs`).filter((f) => !files.includes(f));
  if (missing.length > 0) throw new Error(`missing from the stage: ${missing.join(', ')}`);
  mkdirSync(dirname(out), { recursive: true });
  const partial = `${out}.partial`;
  const written = await writeZip(
    partial,
    files.map((name) => ({ name, file: join(stage, name), mode: statSync(join(stage, name)).mode })),
  );
  renameSync(partial, out);
  const unpacked = files.reduce((sum, name) => sum + statSync(join(stage, name)).size, 0);
  const mib = (bytes) => `${(bytes / 1024 / 1024).toFixed(2)} MiB`;
  log(`package: ${relative(process.cwd(), out) || out}: ${written.entries} files, ${mib(written.bytes)} (${mib(unpacked)} unpacked), main ${DEPLOYED_MAIN}, no node_modules`);
  return { out, stage, files, bytes: written.bytes, unpackedBytes: unpacked };
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const { values: options } = parseArgs({ options: { out: { type: 'string' }, stage: { type: 'string' } } });
  buildPackage({ ...(options.out ? { out: options.out } : {}), ...(options.stage ? { stage: options.stage } : {}) }).catch((error) => {
    console.error(`package: ${error instanceof Error ? error.message : String(error)}`);
    process.exitCode = 1;
  });
}
