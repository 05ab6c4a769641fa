#!/usr/bin/env node
// Bundles each function entry module with esbuild into dist-bundle/functions/<name>.mjs, one
// file per function module, so a cold start loads only what its trigger needs, and writes
// esbuild's metafile per bundle to dist-bundle/meta/<name>.json (what went in, and how big).
//
// What bundling would break, and how it is kept working:
// - CommonJS dependencies inside an ESM bundle call require() for Node built-ins (and for
//   @azure/functions-core, below). ESM has no require, so every bundle opens with a banner that
//   makes one with createRequire(import.meta.url); esbuild's require shim uses it.
// - @azure/functions-core is not a package on disk: the Functions worker provides it at run
//   time, and @azure/functions falls back to test mode without it. It stays external (EXTERNAL).
// - Files located relative to the module: src/util/package-root.ts walks up from the module's
//   own URL to the folder whose package.json is this package's. import.meta.url in the bundle is
//   the bundle's URL, and dist-bundle/ sits inside the package, so the walk still ends at the
//   package root, where scripts/ and infra/queries/ live. The run below checks that.
// Usage: node tools/node22.mjs tools/bundle.mjs
import { spawnSync } from 'node:child_process';
import { mkdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import * as esbuild from 'esbuild';

export const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const outRoot = join(root, 'dist-bundle');

/** The function entry modules, by the name of their bundle. */
export const FUNCTION_MODULES = ['remediations', 'alerts', 'remediation-worker', 'relaxation-sweep'];

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

/** Bundles every function module; returns name, output path, size and metafile per bundle. */
export async function bundleAll() {
  rmSync(outRoot, { recursive: true, force: true });
  mkdirSync(join(outRoot, 'functions'), { recursive: true });
  mkdirSync(join(outRoot, 'meta'), { recursive: true });
  const bundles = await Promise.all(
    FUNCTION_MODULES.map(async (name) => {
      const outfile = join(outRoot, 'functions', `${name}.mjs`);
      const result = await esbuild.build({ ...bundleOptions(), entryPoints: [join(root, 'functions', `${name}.ts`)], outfile });
      writeFileSync(join(outRoot, 'meta', `${name}.json`), JSON.stringify(result.metafile, null, 2) + '\n');
      return { name, outfile, bytes: statSync(outfile).size, metafile: result.metafile };
    }),
  );
  return bundles;
}

/** Inputs of a metafile that come from a package, e.g. "@azure/arm-compute". */
export function packagesIn(metafile) {
  const found = new Set();
  for (const input of Object.keys(metafile.inputs)) {
    const m = /(?:^|\/)node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(input);
    if (m) found.add(m[1]);
  }
  return [...found].sort();
}

/** Loads a bundle in a fresh node process from the package root; throws when it does not load. */
export function checkLoads(outfile) {
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', `await import(${JSON.stringify(pathToFileURL(outfile).href)});`], { cwd: root, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${outfile} does not load:\n${r.stderr}`);
}

async function main() {
  const started = Date.now();
  const bundles = await bundleAll();
  for (const b of bundles) checkLoads(b.outfile);
  console.log(`bundled ${bundles.length} function modules into ${join('dist-bundle', 'functions')} in ${Date.now() - started} ms (each loads from the package root)`);
  for (const b of bundles) {
    const packages = packagesIn(b.metafile);
    const armCompute = packages.includes('@azure/arm-compute') ? ', includes @azure/arm-compute' : '';
    console.log(`  ${`${b.name}.mjs`.padEnd(24)} ${(b.bytes / 1024).toFixed(0).padStart(6)} KiB  ${String(Object.keys(b.metafile.inputs).length).padStart(4)} inputs, ${packages.length} packages${armCompute}`);
  }
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch((error) => {
    console.error(error);
    process.exitCode = 1;
  });
}
