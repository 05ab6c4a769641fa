/**
 * `npm run bundle` (tools/bundle.mjs): one esbuild bundle per function module. Each bundle
 * exists, loads in a fresh node process from the package root, needs nothing from node_modules
 * at run time, and still finds the files it reads relative to the package root (scripts/,
 * infra/queries/). No timings here: bench/startup.ts measures those.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { BuildOptions } from 'esbuild';
import { beforeAll, describe, expect, it } from 'vitest';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const MODULES = ['remediations', 'alerts', 'remediation-worker', 'relaxation-sweep'] as const;
/** What each function module exports: its handlers. */
const EXPORTS: Record<(typeof MODULES)[number], readonly string[]> = {
  remediations: ['postRemediation', 'getRemediation'],
  alerts: ['postAlert', 'alertWorker', 'alertPoison'],
  'remediation-worker': ['remediationWorker', 'remediationPoison'],
  'relaxation-sweep': ['relaxationSweep', 'relaxationSweepWith'],
};

interface BundleModule {
  bundleOptions: () => BuildOptions;
  EXTERNAL: readonly string[];
}

async function bundleModule(): Promise<BundleModule> {
  // tools/ is untyped JavaScript; the interface above is what the test relies on.
  return (await import(pathToFileURL(join(root, 'tools', 'bundle.mjs')).href)) as BundleModule;
}

interface Metafile {
  inputs: Record<string, { imports: { path: string }[] }>;
  outputs: Record<string, { imports: { path: string; external?: boolean }[] }>;
}

const bundlePath = (name: string): string => join(root, 'dist-bundle', 'functions', `${name}.mjs`);
const metafile = (name: string): Metafile => JSON.parse(readFileSync(join(root, 'dist-bundle', 'meta', `${name}.json`), 'utf8')) as Metafile;

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
  it.each(MODULES)('writes %s.mjs and its metafile', (name) => {
    expect(existsSync(bundlePath(name))).toBe(true);
    expect(Object.keys(metafile(name).inputs)).toContain(`functions/${name}.ts`);
  });

  it.each(MODULES)('%s.mjs loads in a fresh node process and exports its handlers', (name) => {
    const url = pathToFileURL(bundlePath(name)).href;
    const r = runModule(`const m = await import(${JSON.stringify(url)}); console.log(JSON.stringify(Object.keys(m).filter((k) => typeof m[k] === 'function')));`);
    expect(r.stderr, r.stderr).not.toMatch(/Error/);
    expect(r.status).toBe(0);
    expect(JSON.parse(r.stdout.trim().split('\n').at(-1) ?? '[]')).toEqual(expect.arrayContaining([...EXPORTS[name]]));
    // @azure/functions ran (bundled) and fell back to test mode: no Functions worker here.
    expect(r.stderr).toMatch(/"@azure\/functions" package to test mode/);
  });

  it.each(MODULES)('%s.mjs needs nothing from node_modules at run time', async (name) => {
    const { EXTERNAL } = await bundleModule();
    const builtins = new Set([...builtinModules, ...builtinModules.map((m) => `node:${m}`)]);
    const external = Object.values(metafile(name).outputs).flatMap((o) => o.imports.filter((i) => i.external).map((i) => i.path));
    // Only Node built-ins and what tools/bundle.mjs leaves out on purpose (the Functions worker's module, an optional peer).
    expect(external.filter((path) => !builtins.has(path) && !EXTERNAL.includes(path))).toEqual([]);
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

  // Known gap (issue 11): the webhook bundle carries the compute SDK it never calls, through
  // functions/alerts.ts -> src/app/services.ts -> src/adapters/compute.ts -> @azure/arm-compute
  // (services.ts builds every service, the ARM compute gateway among them, behind one import).
  // Remove `.fails` once that import is split off.
  it.fails('alerts.mjs does not contain @azure/arm-compute', () => {
    const inputs = Object.keys(metafile('alerts').inputs);
    expect(inputs.filter((input) => input.includes('node_modules/@azure/arm-compute/'))).toEqual([]);
  });
});
