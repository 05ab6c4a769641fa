#!/usr/bin/env node
// Bundles the function entry modules with esbuild, in one build with code splitting:
// dist-bundle/functions/<name>.mjs per function module, and the code they share, or load only
// on first use, in dist-bundle/functions/chunks/. esbuild's metafile goes to
// dist-bundle/meta/bundle.json (what went in where, how big, and which output imports which).
//
// Why one split build rather than one bundle per function: the Azure Functions Node host imports
// what package.json `main` names at start-up, the registration entry (functions/index.ts), which
// imports every handler module, so a cold start pays for all of them together whatever the
// trigger. The handler modules are entries too, so tests can import one without registering. Splitting loads the code they share once, and the
// SDKs the app reaches through a dynamic import() (the compute and Logs gateways, see
// src/adapters/lazy-gateway.ts) become chunks of their own that load at their first call.
// The entries sit directly in functions/ and the chunks one folder down.
//
// What bundling would break, and how it is kept working:
// - CommonJS dependencies inside an ESM bundle call require() for Node built-ins (and for
//   @azure/functions-core, below). ESM has no require, so every output file (chunks too) opens
//   with a banner that makes one with createRequire(import.meta.url); esbuild's shim uses it.
// - @azure/functions-core is not a package on disk: the Functions worker provides it at run
//   time, and @azure/functions falls back to test mode without it. It stays external (EXTERNAL).
// - Files located relative to the module: src/util/package-root.ts walks up from the module's
//   own URL to the folder whose package.json is this package's. import.meta.url in a chunk is
//   the chunk's URL, and dist-bundle/ sits inside the package (or the deployed app), so the walk
//   still ends at the package root, where scripts/ and infra/queries/ live. The run below checks
//   that every output loads from there.
// Usage: node tools/node22.mjs tools/bundle.mjs
import { spawnSync } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import * as esbuild from 'esbuild';

export const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const outRoot = join(root, 'dist-bundle');

/** The handler modules, by the name of their bundle: they export handlers and register nothing (tests and the benchmark import them). */
export const HANDLER_MODULES = ['remediations', 'alerts', 'remediation-worker', 'relaxation-sweep'];

/** The registration entry (functions/index.ts): what the deployed app's `main` names, and the host imports at start-up. */
export const REGISTRATION_ENTRY = 'index';

/** Every entry of the build: the registration entry and the handler modules it imports. */
export const FUNCTION_MODULES = [REGISTRATION_ENTRY, ...HANDLER_MODULES];

/** Where the chunks go, relative to the functions folder. */
export const CHUNK_FOLDER = 'chunks';

/**
 * Left out of every bundle: @azure/functions-core, which the Azure Functions worker provides at
 * run time (never on disk), and kerberos, an optional peer dependency of proxy-agent-negotiate
 * (under the SDKs' http(s)-proxy-agent) that it imports in a try/catch for Negotiate proxy
 * authentication only. The app does not install it, so unbundled and bundled behave alike.
 */
export const EXTERNAL = ['@azure/functions-core', 'kerberos'];

const BANNER = [
  "import { createRequire as __bundleCreateRequire } from 'node:module';",
  'const require = __bundleCreateRequire(import.meta.url);',
].join('\n');

/** The esbuild options every bundle shares (also used by the tests to bundle a probe the same way). */
export function bundleOptions() {
  return {
    bundle: true,
    format: 'esm',
    platform: 'node',
    target: 'node22',
    sourcemap: false,
    minifyWhitespace: true,
    minifySyntax: true,
    // Names stay readable in stack traces and in logged error classes.
    minifyIdentifiers: false,
    keepNames: true,
    // ESM entry points before CommonJS ones where a package without an exports map ships both (smaller, tree-shaken).
    mainFields: ['module', 'main'],
    external: EXTERNAL,
    banner: { js: BANNER },
    metafile: true,
    legalComments: 'none',
    logLevel: 'warning',
    absWorkingDir: root,
  };
}

/**
 * Bundles every function module into `<out>/functions` (default dist-bundle/). Writes the
 * metafile to `<out>/meta/bundle.json` unless `writeMeta` is false (the package step keeps it
 * out of the app). Returns the entries (name → output file) and the metafile.
 */
export async function bundleAll({ out = outRoot, writeMeta = true } = {}) {
  const functionsDir = join(out, 'functions');
  rmSync(out, { recursive: true, force: true });
  mkdirSync(functionsDir, { recursive: true });
  const result = await esbuild.build({
    ...bundleOptions(),
    entryPoints: Object.fromEntries(FUNCTION_MODULES.map((name) => [name, join(root, 'functions', `${name}.ts`)])),
    outdir: functionsDir,
    splitting: true,
    entryNames: '[name]',
    chunkNames: `${CHUNK_FOLDER}/[name]-[hash]`,
    outExtension: { '.js': '.mjs' },
  });
  if (writeMeta) {
    mkdirSync(join(out, 'meta'), { recursive: true });
    writeFileSync(join(out, 'meta', 'bundle.json'), JSON.stringify(result.metafile, null, 2) + '\n');
  }
  const entries = FUNCTION_MODULES.map((name) => ({ name, outfile: join(functionsDir, `${name}.mjs`) }));
  return { entries, metafile: result.metafile, functionsDir };
}

/** The metafile's key of an output file (paths relative to the package root, forward slashes). */
export function outputKey(metafile, outfile) {
  const rel = outfile.startsWith(root) ? outfile.slice(root.length + 1).split('\\').join('/') : outfile;
  const key = Object.keys(metafile.outputs).find((k) => k === rel || k.endsWith(`/${rel}`) || resolve(root, k) === resolve(outfile));
  if (key === undefined) throw new Error(`${outfile} is not an output of this build`);
  return key;
}

/**
 * The outputs a module loads when it is imported: itself and, transitively, what it imports
 * with a static import statement. Chunks reached only through import() are left out: they load
 * at first use, not at start-up.
 */
export function staticOutputs(metafile, ...outputKeys) {
  const seen = new Set();
  const visit = (key) => {
    if (seen.has(key)) return;
    seen.add(key);
    for (const i of metafile.outputs[key]?.imports ?? []) {
      if (!i.external && i.kind === 'import-statement') visit(i.path);
    }
  };
  for (const key of outputKeys) visit(key);
  return [...seen].sort();
}

/** Chunks some output imports only with import(): the code loaded at first use. */
export function lazyOutputs(metafile) {
  const dynamic = new Set();
  const statically = new Set();
  for (const output of Object.values(metafile.outputs)) {
    for (const i of output.imports) {
      if (i.external) continue;
      (i.kind === 'dynamic-import' ? dynamic : statically).add(i.path);
    }
  }
  return [...dynamic].filter((key) => !statically.has(key)).sort();
}

/** The source inputs that went into the given outputs. */
export function inputsOf(metafile, outputKeys) {
  return [...new Set(outputKeys.flatMap((key) => Object.keys(metafile.outputs[key]?.inputs ?? {})))].sort();
}

/** Bytes of the given outputs. */
export function bytesOf(metafile, outputKeys) {
  return outputKeys.reduce((sum, key) => sum + (metafile.outputs[key]?.bytes ?? 0), 0);
}

/** The packages among some inputs, e.g. "@azure/arm-compute". */
export function packagesAmong(inputs) {
  const found = new Set();
  for (const input of inputs) {
    const m = /(?:^|\/)node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(input);
    if (m) found.add(m[1]);
  }
  return [...found].sort();
}

/** Loads modules in a fresh node process from `cwd`; throws when one does not load. */
export function checkLoads(files, cwd = root) {
  const source = files.map((file) => `await import(${JSON.stringify(pathToFileURL(file).href)});`).join('\n');
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', source], { cwd, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${files.join(', ')} do not load:\n${r.stderr}`);
}

/**
 * Every file a fresh node process loads (import or require) while it imports `files`, as file:
 * URLs: the ground truth that the metafile graph predicts. Uses a module.registerHooks load
 * hook (Node >= 22.15), which sees ESM and CommonJS alike.
 */
export function modulesLoadedBy(files, cwd = root) {
  const hook = [
    "import { registerHooks } from 'node:module';",
    'const seen = [];',
    'registerHooks({ load(url, context, next) { seen.push(url); return next(url, context); } });',
    "process.on('exit', () => process.stdout.write('\\n@@loaded ' + JSON.stringify(seen.filter((u) => u.startsWith('file:'))) + '\\n'));",
  ].join('\n');
  const source = files.map((file) => `await import(${JSON.stringify(pathToFileURL(file).href)});`).join('\n');
  const r = spawnSync(process.execPath, ['--import', `data:text/javascript,${encodeURIComponent(hook)}`, '--input-type=module', '-e', source], { cwd, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${files.join(', ')} do not load:\n${r.stderr}`);
  const line = r.stdout.split('\n').find((l) => l.startsWith('@@loaded '));
  if (line === undefined) throw new Error(`no list of loaded modules from ${files.join(', ')}`);
  return JSON.parse(line.slice('@@loaded '.length));
}

/**
 * What a cold start of each entry loads, by itself and with all entries together (what the
 * host does): outputs, bytes, packages.
 */
export function startupGraph(metafile, entries) {
  const keyed = entries.map((e) => ({ ...e, key: outputKey(metafile, e.outfile) }));
  const describe = (keys) => {
    const outputs = staticOutputs(metafile, ...keys);
    return { outputs, bytes: bytesOf(metafile, outputs), packages: packagesAmong(inputsOf(metafile, outputs)) };
  };
  return {
    perEntry: keyed.map((e) => ({ name: e.name, ...describe([e.key]) })),
    allEntries: describe(keyed.map((e) => e.key)),
    lazy: lazyOutputs(metafile).map((key) => ({ output: key, bytes: metafile.outputs[key].bytes, packages: packagesAmong(Object.keys(metafile.outputs[key].inputs)) })),
  };
}

async function main() {
  const started = Date.now();
  const { entries, metafile } = await bundleAll();
  // Every entry loads, and so does every lazy chunk: a chunk that fails is found here, not at a VM's first read.
  const lazy = lazyOutputs(metafile);
  checkLoads([...entries.map((e) => e.outfile), ...lazy.map((key) => resolve(root, key))]);
  const graph = startupGraph(metafile, entries);
  const kib = (n) => `${(n / 1024).toFixed(0).padStart(6)} KiB`;
  console.log(`bundled ${entries.length} function modules into ${join('dist-bundle', 'functions')} (${Object.keys(metafile.outputs).length} files) in ${Date.now() - started} ms; every file loads from the package root`);
  console.log('  what a cold start loads (static imports only):');
  for (const e of graph.perEntry) {
    const armCompute = e.packages.includes('@azure/arm-compute') ? ', includes @azure/arm-compute' : '';
    console.log(`    ${`${e.name}.mjs`.padEnd(24)} ${kib(e.bytes)}  ${String(e.outputs.length).padStart(3)} files, ${e.packages.length} packages${armCompute}`);
  }
  console.log(`    ${'all entries (the host)'.padEnd(24)} ${kib(graph.allEntries.bytes)}  ${String(graph.allEntries.outputs.length).padStart(3)} files, ${graph.allEntries.packages.length} packages`);
  console.log('  loaded at first use (import()):');
  for (const l of graph.lazy) console.log(`    ${l.output.split('/').at(-1).padEnd(24)} ${kib(l.bytes)}  ${l.packages.join(', ') || 'app code only'}`);
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch((error) => {
    console.error(error);
    process.exitCode = 1;
  });
}
