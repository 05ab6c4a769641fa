/**
 * `npm run bench:startup`: what loading each function module costs a cold start, compiled by tsc
 * (dist/functions/<name>.js, one file per source module, resolved from node_modules) against
 * bundled by esbuild (dist-bundle/functions/<name>.mjs, tools/bundle.mjs). Each sample is the
 * wall time of a fresh `node` process that imports the module as its entry point and exits;
 * bare `node -e 0` is the floor no module can go below. All cases run interleaved, one sample of
 * each per round (in an order that rotates every round), so drift on the machine touches them
 * alike. Prints medians and p90s, the ratio bundled/unbundled, and writes
 * bench/results/startup.json.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join, relative } from 'node:path';
import { performance } from 'node:perf_hooks';
import { packageRoot } from '../src/util/package-root.js';

const RUNS = Math.max(10, Number(process.env.BENCH_RUNS ?? 20));
/** Rounds run first and not counted: they bring the files into the page cache. */
const WARMUP_ROUNDS = 2;
const MODULES = ['remediations', 'alerts', 'remediation-worker', 'relaxation-sweep'] as const;

interface Case {
  readonly id: string;
  readonly args: readonly string[];
}

interface Stats {
  readonly median: number;
  readonly p90: number;
  readonly min: number;
}

function quantile(values: readonly number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? Number.NaN;
}

function stats(samples: readonly number[]): Stats {
  const round = (n: number): number => Math.round(n * 10) / 10;
  return { median: round(quantile(samples, 0.5)), p90: round(quantile(samples, 0.9)), min: round(Math.min(...samples)) };
}

function sample(root: string, c: Case): number {
  const started = performance.now();
  const r = spawnSync(process.execPath, c.args, { cwd: root, stdio: ['ignore', 'ignore', 'pipe'], encoding: 'utf8' });
  const elapsed = performance.now() - started;
  if (r.status !== 0) throw new Error(`${c.id}: node ${c.args.join(' ')} exited with ${r.status ?? r.signal}\n${r.stderr}`);
  return elapsed;
}

/** Packages in a bundle, from the metafile tools/bundle.mjs writes beside it. */
function bundledPackages(root: string, name: string): string[] {
  const meta = JSON.parse(readFileSync(join(root, 'dist-bundle', 'meta', `${name}.json`), 'utf8')) as { inputs: Record<string, unknown> };
  const found = new Set<string>();
  for (const input of Object.keys(meta.inputs)) {
    const m = /(?:^|\/)node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(input);
    if (m?.[1]) found.add(m[1]);
  }
  return [...found].sort();
}

function main(): void {
  const root = packageRoot();
  const files = MODULES.map((name) => ({
    name,
    unbundled: join(root, 'dist', 'functions', `${name}.js`),
    bundled: join(root, 'dist-bundle', 'functions', `${name}.mjs`),
  }));
  for (const f of files) {
    for (const path of [f.unbundled, f.bundled]) {
      if (!existsSync(path)) throw new Error(`${relative(root, path)} is missing: run tsc -p tsconfig.build.json and tools/bundle.mjs first (npm run bench:startup does both)`);
    }
  }
  const cases: Case[] = [
    { id: 'floor', args: ['-e', '0'] },
    ...files.flatMap((f) => [
      { id: `${f.name}:unbundled`, args: [f.unbundled] },
      { id: `${f.name}:bundled`, args: [f.bundled] },
    ]),
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
  const rows = files.map((f) => {
    const unbundled = stats(of(`${f.name}:unbundled`));
    const bundled = stats(of(`${f.name}:bundled`));
    const packages = bundledPackages(root, f.name);
    return {
      module: f.name,
      unbundledMs: unbundled,
      bundledMs: bundled,
      /** Median bundled / median unbundled, whole process start. */
      ratio: Math.round((bundled.median / unbundled.median) * 1000) / 1000,
      /** The same for what the module adds above bare node (median minus the floor's median). */
      aboveFloorRatio: Math.round(((bundled.median - floor.median) / (unbundled.median - floor.median)) * 1000) / 1000,
      bundleBytes: statSync(f.bundled).size,
      bundledPackages: packages.length,
      bundleHasArmCompute: packages.includes('@azure/arm-compute'),
    };
  });
  const report = {
    when: new Date().toISOString(),
    node: process.version,
    machine: { cpus: cpus().length },
    settings: { runs: RUNS, warmupRounds: WARMUP_ROUNDS, sample: 'wall time of a fresh node process importing the module as its entry point', order: 'interleaved, rotated per round' },
    floorMs: floor,
    modules: rows,
  };
  const dir = join(root, 'bench', 'results');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'startup.json'), `${JSON.stringify(report, null, 2)}\n`);

  const ms = (n: number): string => `${n.toFixed(0).padStart(5)} ms`;
  console.log(`start-up of a fresh node process importing each function module (${RUNS} runs each, interleaved, ${process.version})`);
  console.log(`${'module'.padEnd(20)}  ${'unbundled median'.padStart(16)}  ${'p90'.padStart(8)}  ${'bundled median'.padStart(14)}  ${'p90'.padStart(8)}  ratio  above floor  bundle`);
  for (const r of rows) {
    console.log(
      `${r.module.padEnd(20)}  ${ms(r.unbundledMs.median).padStart(16)}  ${ms(r.unbundledMs.p90)}  ${ms(r.bundledMs.median).padStart(14)}  ${ms(r.bundledMs.p90)}  ${r.ratio.toFixed(2).padStart(5)}  ${r.aboveFloorRatio.toFixed(2).padStart(11)}  ${(r.bundleBytes / 1024).toFixed(0).padStart(5)} KiB${r.bundleHasArmCompute ? ' (with @azure/arm-compute)' : ''}`,
    );
  }
  console.log(`${'node -e 0 (floor)'.padEnd(20)}  ${ms(floor.median).padStart(16)}  ${ms(floor.p90)}`);
  console.log('results in bench/results/startup.json');
}

main();
