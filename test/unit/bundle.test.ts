/**
 * `npm run bundle` (tools/bundle.mjs): one esbuild build with code splitting, an entry per
 * function module and the shared and lazily loaded code in chunks/. Each entry exists, loads in
 * a fresh node process from the package root, needs nothing from node_modules at run time, and
 * still finds the files it reads relative to the package root (scripts/, infra/queries/). A cold
 * start (every entry imported, as the Functions host does) does not load the compute or Logs
 * SDKs: they sit in chunks reached only through import(). No timings here: bench/startup.ts
 * measures those.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { BuildOptions } from 'esbuild';
import { beforeAll, describe, expect, it } from 'vitest';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const HANDLER_MODULES = ['remediations', 'alerts', 'remediation-worker', 'relaxation-sweep'] as const;
/** Every entry: the registration entry (what the host imports) and the handler modules. */
const MODULES = ['index', ...HANDLER_MODULES] as const;
/** What each handler module exports: its handlers. */
const EXPORTS: Record<(typeof HANDLER_MODULES)[number], readonly string[]> = {
  remediations: ['postRemediation', 'getRemediation'],
  alerts: ['postAlert', 'alertWorker', 'alertPoison'],
  'remediation-worker': ['remediationWorker', 'remediationPoison'],
  'relaxation-sweep': ['relaxationSweep', 'relaxationSweepWith'],
};

interface Metafile {
  inputs: Record<string, { imports: { path: string }[] }>;
  outputs: Record<string, { entryPoint?: string; inputs: Record<string, unknown>; imports: { path: string; kind: string; external?: boolean }[] }>;
}

interface BundleModule {
  bundleOptions: () => BuildOptions;
  EXTERNAL: readonly string[];
  CHUNK_FOLDER: string;
  staticOutputs: (metafile: Metafile, ...outputKeys: string[]) => string[];
  lazyOutputs: (metafile: Metafile) => string[];
  inputsOf: (metafile: Metafile, outputKeys: string[]) => string[];
  packagesAmong: (inputs: string[]) => string[];
  modulesLoadedBy: (files: string[], cwd?: string) => string[];
}

async function bundleModule(): Promise<BundleModule> {
  // tools/ is untyped JavaScript; the interface above is what the test relies on.
  return (await import(pathToFileURL(join(root, 'tools', 'bundle.mjs')).href)) as BundleModule;
}

const bundlePath = (name: string): string => join(root, 'dist-bundle', 'functions', `${name}.mjs`);
const entryKey = (name: string): string => `dist-bundle/functions/${name}.mjs`;
const metafile = (): Metafile => JSON.parse(readFileSync(join(root, 'dist-bundle', 'meta', 'bundle.json'), 'utf8')) as Metafile;

/** Runs ESM source in a fresh node process from the package root. */
function runModule(source: string): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', source], { cwd: root, encoding: 'utf8', timeout: 30_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

beforeAll(() => {
  const r = spawnSync(process.execPath, [join(root, 'tools', 'bundle.mjs')], { cwd: root, encoding: 'utf8', timeout: 60_000 });
  expect(r.stderr).not.toMatch(/error/i);
  expect(r.status).toBe(0);
});

describe('tools/bundle.mjs', () => {
  it.each(MODULES)('writes %s.mjs, the entry of its function module in the metafile', (name) => {
    expect(existsSync(bundlePath(name))).toBe(true);
    expect(metafile().outputs[entryKey(name)]?.entryPoint).toBe(`functions/${name}.ts`);
  });

  it('puts everything but the entries one folder down, where the `main` glob of the deployed app does not reach', async () => {
    const { CHUNK_FOLDER } = await bundleModule();
    const others = Object.keys(metafile().outputs).filter((key) => !MODULES.some((name) => key === entryKey(name)));
    expect(others.length).toBeGreaterThan(0);
    for (const key of others) expect(key).toMatch(new RegExp(`^dist-bundle/functions/${CHUNK_FOLDER}/[^/]+\\.mjs$`));
  });

  it.each(HANDLER_MODULES)('%s.mjs loads in a fresh node process, exports its handlers and registers nothing', (name) => {
    const url = pathToFileURL(bundlePath(name)).href;
    const r = runModule(`const m = await import(${JSON.stringify(url)}); console.log(JSON.stringify(Object.keys(m).filter((k) => typeof m[k] === 'function')));`);
    expect(r.stderr, r.stderr).not.toMatch(/Error/);
    expect(r.status).toBe(0);
    expect(JSON.parse(r.stdout.trim().split('\n').at(-1) ?? '[]')).toEqual(expect.arrayContaining([...EXPORTS[name]]));
    // Importing a handler registers nothing, so @azure/functions has nothing to warn about outside the host.
    expect(r.stderr).not.toMatch(/test mode|register function/);
  });

  it('index.mjs, the registration entry, registers every function', () => {
    const r = runModule(`await import(${JSON.stringify(pathToFileURL(bundlePath('index')).href)});`);
    expect(r.status, r.stderr).toBe(0);
    // @azure/functions ran (bundled) and fell back to test mode: no Functions worker here.
    expect(r.stderr).toMatch(/"@azure\/functions" package to test mode/);
    for (const name of ['alerts', 'alert-worker', 'alert-poison', 'remediations-post', 'remediations-post-allow', 'remediations-get', 'remediation-worker', 'remediation-poison', 'relaxation-sweep']) {
      expect(r.stderr).toContain(`register function "${name}"`);
    }
  });

  it('needs nothing from node_modules at run time, in no entry and no chunk', async () => {
    const { EXTERNAL } = await bundleModule();
    const builtins = new Set([...builtinModules, ...builtinModules.map((m) => `node:${m}`)]);
    const external = Object.values(metafile().outputs).flatMap((o) => o.imports.filter((i) => i.external).map((i) => i.path));
    // Only Node built-ins and what tools/bundle.mjs leaves out on purpose (the Functions worker's module, an optional peer).
    expect(external.filter((path) => !builtins.has(path) && !EXTERNAL.includes(path))).toEqual([]);
  });

  it('the lazily loaded chunks load too (what the first VM read or Logs query imports)', async () => {
    const { lazyOutputs } = await bundleModule();
    const lazy = lazyOutputs(metafile());
    expect(lazy.length).toBeGreaterThanOrEqual(2);
    const r = runModule(lazy.map((key) => `await import(${JSON.stringify(pathToFileURL(join(root, key)).href)});`).join('\n'));
    expect(r.stderr, r.stderr).not.toMatch(/Error/);
    expect(r.status).toBe(0);
  });

  it('bundled the same way, payload composition and the event query find their files from dist-bundle/', async () => {
    const { bundleOptions } = await bundleModule();
    const esbuild = await import('esbuild');
    // A probe at the same depth as the function bundles, so the package-root walk is the same.
    const outfile = join(root, 'dist-bundle', 'probe', 'compose.mjs');
    await esbuild.build({
      ...bundleOptions(),
      metafile: false,
      logLevel: 'silent',
      stdin: {
        contents: [
          "import { composePayload } from '../src/payloads/compose.js';",
          "import { eventQuery, EVENT_QUERY_MARKER } from '../src/alerts/event-query.js';",
          "const payload = composePayload({ kind: 'probe', parameters: { RunId: '00000000-0000-4000-8000-000000000000' } });",
          'console.log(JSON.stringify({ lines: payload.script.length, first: payload.script[0], query: eventQuery().includes(EVENT_QUERY_MARKER) }));',
        ].join('\n'),
        resolveDir: join(root, 'functions'),
        sourcefile: 'compose-probe.ts',
        loader: 'ts',
      },
      outfile,
    });
    const r = runModule(`await import(${JSON.stringify(pathToFileURL(outfile).href)});`);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const out = JSON.parse(r.stdout.trim()) as { lines: number; first: string; query: boolean };
    expect(out.lines).toBeGreaterThan(10);
    expect(out.first).toMatch(/probe/);
    expect(out.query).toBe(true);
  });

  it('remediation-worker.mjs runs its handler: a malformed message is logged and let go', () => {
    const url = pathToFileURL(bundlePath('remediation-worker')).href;
    const r = runModule(`const m = await import(${JSON.stringify(url)}); await m.remediationWorker({ not: 'a job' }, { error: () => {}, warn: () => {}, info: () => {}, debug: () => {} }); console.log('ok');`);
    expect(r.stderr, r.stderr).not.toMatch(/Error/);
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('ok');
  });

  // Issue 11: the webhook never calls the compute SDK. src/app/services.ts reaches it only
  // through the lazy gateway's import() (src/adapters/lazy-compute.ts), so it sits in a chunk
  // of its own that alerts.mjs does not import statically.
  it('alerts.mjs and what it imports statically contain no @azure/arm-compute', async () => {
    const { staticOutputs, inputsOf, packagesAmong } = await bundleModule();
    const meta = metafile();
    const loaded = staticOutputs(meta, entryKey('alerts'));
    expect(loaded).toContain(entryKey('alerts'));
    expect(packagesAmong(inputsOf(meta, loaded))).not.toContain('@azure/arm-compute');
  });

  it('a cold start of the whole app (the registration entry, as the host imports it) loads neither the compute nor the Logs SDK', async () => {
    const { staticOutputs, lazyOutputs, inputsOf, packagesAmong } = await bundleModule();
    const meta = metafile();
    const atStart = packagesAmong(inputsOf(meta, staticOutputs(meta, entryKey('index'))));
    expect(atStart).toEqual(expect.arrayContaining(['@azure/functions', '@azure/storage-queue', '@azure/data-tables']));
    expect(atStart).not.toContain('@azure/arm-compute');
    expect(atStart).not.toContain('@azure/monitor-query-logs');
    // Both are in the bundle, in chunks loaded at first use.
    const lazy = packagesAmong(inputsOf(meta, lazyOutputs(meta)));
    expect(lazy).toEqual(expect.arrayContaining(['@azure/arm-compute', '@azure/monitor-query-logs']));
  });

  it('importing alerts.mjs in a fresh process loads no file that holds @azure/arm-compute (a load hook lists every file)', async () => {
    const { modulesLoadedBy } = await bundleModule();
    const meta = metafile();
    const withCompute = Object.entries(meta.outputs)
      .filter(([, o]) => Object.keys(o.inputs).some((input) => input.includes('node_modules/@azure/arm-compute/')))
      .map(([key]) => pathToFileURL(join(root, key)).href);
    expect(withCompute.length).toBe(1);
    const loaded = modulesLoadedBy([bundlePath('alerts')]);
    expect(loaded).toContain(pathToFileURL(bundlePath('alerts')).href);
    expect(loaded.filter((url) => withCompute.includes(url))).toEqual([]);
    // Nothing outside the bundle either: no node_modules file is read.
    expect(loaded.filter((url) => url.includes('/node_modules/'))).toEqual([]);
  });
});
