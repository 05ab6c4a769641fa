/**
 * `npm run bench:startup`: what loading the function modules costs a cold start, compiled by tsc
 * (dist/functions/<name>.js, one file per source module, resolved from node_modules) against
 * bundled by esbuild (dist-bundle/functions/<name>.mjs and its chunks, tools/bundle.mjs), side by
 * side in one run. Each sample is the wall time of a fresh `node` process that imports and exits:
 * - each function module alone, as its entry point;
 * - the registration entry (functions/index), which is what the Functions host imports at a cold
 *   start (package.json `main`, whatever the trigger): the four handler modules and their registration;
 * - bare `node -e 0`, the floor no module can go below.
 * All cases run interleaved, one sample of each per round (in an order that rotates every
 * round), so drift on the machine touches them alike; medians and p90s of BENCH_RUNS (default 20,
 * at least 10) rounds after two warm-up rounds.
 *
 * Besides the times: whether @azure/arm-compute is loaded when only the webhook module (and when
 * every module) is imported, seen two ways, from the bundle's graph (static imports in esbuild's
 * metafile) and at run time (a module.registerHooks load hook lists every file a fresh process
 * loads); and the size of the zip `npm run package` writes (tools/package.mjs, run here into a
 * temporary folder: the zip is reproducible, so it is the same bytes). Writes
 * bench/results/startup.json.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import { packageRoot } from '../src/util/package-root.js';

const RUNS = Math.max(10, Number(process.env.BENCH_RUNS ?? 20));
/** Rounds run first and not counted: they bring the files into the page cache. */
const WARMUP_ROUNDS = 2;
const MODULES = ['remediations', 'alerts', 'remediation-worker', 'relaxation-sweep'] as const;
/** The webhook: POST /api/alerts lives in this module. */
const WEBHOOK_MODULE = 'alerts';
/** Goals from issue 11. */
const GOALS = { bundledOverUnbundled: 0.3, zipBytes: 2 * 1024 * 1024 } as const;
const ARM_COMPUTE = '@azure/arm-compute';

interface Case {
  readonly id: string;
  readonly args: readonly string[];
}

interface Stats {
  readonly median: number;
  readonly p90: number;
  readonly min: number;
}

interface Metafile {
  outputs: Record<string, { bytes: number; inputs: Record<string, unknown>; imports: { path: string; kind: string; external?: boolean }[] }>;
}

/** What bench/startup.ts uses of tools/bundle.mjs (untyped JavaScript). */
interface BundleTools {
  staticOutputs: (metafile: Metafile, ...outputKeys: string[]) => string[];
  inputsOf: (metafile: Metafile, outputKeys: string[]) => string[];
  bytesOf: (metafile: Metafile, outputKeys: string[]) => number;
  packagesAmong: (inputs: string[]) => string[];
  modulesLoadedBy: (files: string[], cwd?: string) => string[];
}

function quantile(values: readonly number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? Number.NaN;
}

const round1 = (n: number): number => Math.round(n * 10) / 10;
const round3 = (n: number): number => Math.round(n * 1000) / 1000;

function stats(samples: readonly number[]): Stats {
  return { median: round1(quantile(samples, 0.5)), p90: round1(quantile(samples, 0.9)), min: round1(Math.min(...samples)) };
}

function sample(root: string, c: Case): number {
  const started = performance.now();
  const r = spawnSync(process.execPath, c.args, { cwd: root, stdio: ['ignore', 'ignore', 'pipe'], encoding: 'utf8' });
  const elapsed = performance.now() - started;
  if (r.status !== 0) throw new Error(`${c.id}: node ${c.args.join(' ')} exited with ${r.status ?? r.signal}\n${r.stderr}`);
  return elapsed;
}

/** A fresh process that imports every file given, in order, and exits. */
const importAll = (files: readonly string[]): string[] => ['--input-type=module', '-e', files.map((f) => `await import(${JSON.stringify(pathToFileURL(f).href)});`).join('\n')];

/** `npm run package` into a temporary folder: the zip's size and entry count. */
function packageZip(root: string): { bytes: number; mib: number; entries: number } {
  const work = mkdtempSync(join(tmpdir(), 'rdp-bench-package-'));
  try {
    const out = join(work, 'app.zip');
    const r = spawnSync(process.execPath, [join(root, 'tools', 'package.mjs'), '--out', out, '--stage', join(work, 'stage')], { cwd: root, encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`tools/package.mjs exited with ${r.status ?? r.signal}\n${r.stdout}${r.stderr}`);
    const zip = readFileSync(out);
    // The end of central directory record (no comment: yazl writes none) holds the entry count.
    const entries = zip.readUInt16LE(zip.length - 22 + 10);
    return { bytes: zip.length, mib: round3(zip.length / 1024 / 1024), entries };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const root = packageRoot();
  const tools = (await import(pathToFileURL(join(root, 'tools', 'bundle.mjs')).href)) as BundleTools;
  const files = MODULES.map((name) => ({
    name,
    unbundled: join(root, 'dist', 'functions', `${name}.js`),
    bundled: join(root, 'dist-bundle', 'functions', `${name}.mjs`),
    bundledKey: `dist-bundle/functions/${name}.mjs`,
  }));
  // What the host imports at a cold start: the registration entry, which imports all four handler modules.
  const registration = {
    unbundled: join(root, 'dist', 'functions', 'index.js'),
    bundled: join(root, 'dist-bundle', 'functions', 'index.mjs'),
    bundledKey: 'dist-bundle/functions/index.mjs',
  };
  const metaPath = join(root, 'dist-bundle', 'meta', 'bundle.json');
  for (const path of [...files.flatMap((f) => [f.unbundled, f.bundled]), registration.unbundled, registration.bundled, metaPath]) {
    if (!existsSync(path)) throw new Error(`${relative(root, path)} is missing: run tsc -p tsconfig.build.json and tools/bundle.mjs first (npm run bench:startup does both)`);
  }
  const meta = JSON.parse(readFileSync(metaPath, 'utf8')) as Metafile;

  // What loads, before any timing: from the graph, then at run time.
  const computeOutputs = new Set(
    Object.entries(meta.outputs)
      .filter(([, o]) => Object.keys(o.inputs).some((input) => input.includes(`node_modules/${ARM_COMPUTE}/`)))
      .map(([key]) => pathToFileURL(join(root, key)).href),
  );
  const loadsArmCompute = (urls: readonly string[]): boolean => urls.some((u) => computeOutputs.has(u) || u.includes(`/node_modules/${ARM_COMPUTE}/`));
  const graph = (keys: readonly string[]) => {
    const outputs = tools.staticOutputs(meta, ...keys);
    const packages = tools.packagesAmong(tools.inputsOf(meta, outputs));
    return { files: outputs.length, bytes: tools.bytesOf(meta, outputs), packages: packages.length, hasArmCompute: packages.includes(ARM_COMPUTE) };
  };
  const loaded = (paths: readonly string[]) => {
    const urls = tools.modulesLoadedBy([...paths], root);
    return { files: urls.length, armCompute: loadsArmCompute(urls) };
  };

  const cases: Case[] = [
    { id: 'floor', args: ['-e', '0'] },
    ...files.flatMap((f) => [
      { id: `${f.name}:unbundled`, args: [f.unbundled] },
      { id: `${f.name}:bundled`, args: [f.bundled] },
    ]),
    { id: 'all:unbundled', args: importAll([registration.unbundled]) },
    { id: 'all:bundled', args: importAll([registration.bundled]) },
  ];
  const samples = new Map<string, number[]>(cases.map((c) => [c.id, []]));
  for (let round = 0; round < WARMUP_ROUNDS + RUNS; round++) {
    const shift = round % cases.length;
    const order = [...cases.slice(shift), ...cases.slice(0, shift)];
    for (const c of order) {
      const ms = sample(root, c);
      if (round >= WARMUP_ROUNDS) samples.get(c.id)?.push(ms);
    }
  }
  const of = (id: string): number[] => samples.get(id) ?? [];
  const floor = stats(of('floor'));
  const compare = (id: string) => {
    const unbundled = stats(of(`${id}:unbundled`));
    const bundled = stats(of(`${id}:bundled`));
    return {
      unbundledMs: unbundled,
      bundledMs: bundled,
      /** Median bundled / median unbundled, whole process start. */
      ratio: round3(bundled.median / unbundled.median),
      /** The same for what the modules add above bare node (median minus the floor's median). */
      aboveFloorRatio: round3((bundled.median - floor.median) / (unbundled.median - floor.median)),
    };
  };

  const rows = files.map((f) => {
    const g = graph([f.bundledKey]);
    return {
      module: f.name,
      ...compare(f.name),
      /** What importing the bundled entry loads (the entry and its static chunks). */
      bundledBytesAtStart: g.bytes,
      bundledFilesAtStart: g.files,
      bundledPackagesAtStart: g.packages,
      bundleHasArmCompute: g.hasArmCompute,
    };
  });
  const allGraph = graph([registration.bundledKey]);
  const allEntries = {
    ...compare('all'),
    bundledBytesAtStart: allGraph.bytes,
    bundledFilesAtStart: allGraph.files,
    bundledPackagesAtStart: allGraph.packages,
    bundledBytesTotal: Object.values(meta.outputs).reduce((sum, o) => sum + o.bytes, 0),
  };
  const webhook = files.find((f) => f.name === WEBHOOK_MODULE)!;
  const armCompute = {
    how: 'graph: static imports from the entries in the esbuild metafile; runtime: every file a fresh process loads (module.registerHooks load hook), matched against the bundle files that hold @azure/arm-compute and against node_modules/@azure/arm-compute/',
    webhookOnly: {
      module: WEBHOOK_MODULE,
      bundledGraph: graph([webhook.bundledKey]).hasArmCompute,
      bundledRuntime: loaded([webhook.bundled]),
      unbundledRuntime: loaded([webhook.unbundled]),
    },
    allEntries: {
      bundledGraph: allGraph.hasArmCompute,
      bundledRuntime: loaded([registration.bundled]),
      unbundledRuntime: loaded([registration.unbundled]),
    },
  };
  const zip = packageZip(root);
  const goals = {
    bundledOverUnbundledAtMost: GOALS.bundledOverUnbundled,
    allEntriesRatio: allEntries.ratio,
    ratioMet: allEntries.ratio <= GOALS.bundledOverUnbundled,
    worstModuleRatio: Math.max(...rows.map((r) => r.ratio)),
    zipBytesAtMost: GOALS.zipBytes,
    zipBytes: zip.bytes,
    zipMet: zip.bytes <= GOALS.zipBytes,
    webhookLoadsArmCompute: armCompute.webhookOnly.bundledGraph || armCompute.webhookOnly.bundledRuntime.armCompute,
  };
  const report = {
    when: new Date().toISOString(),
    node: process.version,
    machine: { cpus: cpus().length },
    settings: {
      runs: RUNS,
      warmupRounds: WARMUP_ROUNDS,
      sample: 'wall time of a fresh node process importing the module(s) and exiting; "all" imports the registration entry (functions/index, which imports the four handler modules and registers them), as the Functions host does',
      order: 'interleaved, rotated per round',
    },
    goals,
    floorMs: floor,
    allEntries,
    modules: rows,
    armCompute,
    zip,
  };
  const dir = join(root, 'bench', 'results');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'startup.json'), `${JSON.stringify(report, null, 2)}\n`);

  const ms = (n: number): string => `${n.toFixed(0).padStart(5)} ms`;
  const kib = (n: number): string => `${(n / 1024).toFixed(0).padStart(5)} KiB`;
  console.log(`start-up of a fresh node process importing function modules (${RUNS} runs each, interleaved, ${process.version})`);
  console.log(`${'module'.padEnd(22)}  ${'unbundled median'.padStart(16)}  ${'p90'.padStart(8)}  ${'bundled median'.padStart(14)}  ${'p90'.padStart(8)}  ratio  above floor  loaded at start`);
  const line = (name: string, r: ReturnType<typeof compare>, bytes: number, note = '') =>
    console.log(
      `${name.padEnd(22)}  ${ms(r.unbundledMs.median).padStart(16)}  ${ms(r.unbundledMs.p90)}  ${ms(r.bundledMs.median).padStart(14)}  ${ms(r.bundledMs.p90)}  ${r.ratio.toFixed(2).padStart(5)}  ${r.aboveFloorRatio.toFixed(2).padStart(11)}  ${kib(bytes)}${note}`,
    );
  for (const r of rows) line(r.module, r, r.bundledBytesAtStart, r.bundleHasArmCompute ? ' (with @azure/arm-compute)' : '');
  line('index, all four registered (the host)', allEntries, allEntries.bundledBytesAtStart, ` of ${kib(allEntries.bundledBytesTotal).trim()} bundled`);
  console.log(`${'node -e 0 (floor)'.padEnd(22)}  ${ms(floor.median).padStart(16)}  ${ms(floor.p90)}`);
  const yesNo = (b: boolean): string => (b ? 'yes' : 'no');
  console.log(
    `@azure/arm-compute loaded, webhook module only: bundled ${yesNo(armCompute.webhookOnly.bundledRuntime.armCompute)} (graph ${yesNo(armCompute.webhookOnly.bundledGraph)}), unbundled ${yesNo(armCompute.webhookOnly.unbundledRuntime.armCompute)}; index (the host): bundled ${yesNo(armCompute.allEntries.bundledRuntime.armCompute)}, unbundled ${yesNo(armCompute.allEntries.unbundledRuntime.armCompute)}`,
  );
  console.log(`npm run package: ${zip.entries} files, ${zip.mib.toFixed(2)} MiB`);
  console.log(
    `goals: index (the host) bundled/unbundled ${goals.allEntriesRatio.toFixed(2)} (≤ ${GOALS.bundledOverUnbundled}: ${goals.ratioMet ? 'met' : 'NOT met'}), zip ${zip.mib.toFixed(2)} MiB (≤ 2 MiB: ${goals.zipMet ? 'met' : 'NOT met'}), webhook without @azure/arm-compute: ${goals.webhookLoadsArmCompute ? 'NOT met' : 'met'}`,
  );
  console.log('results in bench/results/startup.json');
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
