/**
 * `npm run bench:payloads`: what one payload run costs in the emulator, measured in one run.
 * The real composed probe and fix run under the long-lived PowerShell host against the Windows
 * double, RUNS times each, on a healthy VM and on one with many causes at once; a cold start of
 * a fresh pwsh process per run is measured a few times for comparison. Prints medians and p90s.
 */
import { spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { windowsScenario } from '../emulator/fleet.js';
import { PowerShellHost } from '../emulator/powershell.js';
import { windowsDoublePath } from '../emulator/windows-runner.js';
import type { WindowsState } from '../emulator/windows-state.js';
import type { ActionId } from '../src/contract/actions.js';
import { composePayload } from '../src/payloads/compose.js';

const RUNS = Number(process.env.BENCH_RUNS ?? 30);
const COLD_RUNS = 5;

function quantile(values: readonly number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? Number.NaN;
}

async function timed(host: PowerShellHost, kind: 'probe' | 'fix', state: WindowsState, actions: readonly ActionId[]): Promise<number[]> {
  const times: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const RunId = randomUUID();
    const payload = kind === 'probe' ? composePayload({ kind, parameters: { RunId } }) : composePayload({ kind, parameters: { RunId, Actions: actions.join(','), DryRun: 'false' } });
    const started = performance.now();
    const out = await host.run({ script: payload.script.join('\n'), parameters: payload.parameters, state });
    times.push(performance.now() - started);
    if (!out.stdout.includes('"ok":true')) throw new Error(`${kind} failed: ${out.stdout.slice(0, 300)} ${out.stderr.slice(0, 300)}`);
  }
  return times;
}

async function main(): Promise<void> {
  const host = await PowerShellHost.start({ doublePath: windowsDoublePath() });
  try {
    const now = new Date();
    const healthy = windowsScenario('healthy', { computerName: 'BENCH01', now, seed: 'bench' });
    const broken = windowsScenario('many-causes', { computerName: 'BENCH01', now, seed: 'bench' });
    const fixActions: ActionId[] = ['enable-tls12-server', 'repair-key-acl', 'remove-stale-cert-binding', 'regenerate-self-signed-cert', 'restart-rdp-services'];
    // Warm up: the host caches parsed payloads and the double.
    await timed(host, 'probe', healthy, []);
    const rows: [string, number[]][] = [
      ['probe, healthy VM', await timed(host, 'probe', healthy, [])],
      ['probe, many causes', await timed(host, 'probe', broken, [])],
      ['fix, 5 actions, many causes', await timed(host, 'fix', broken, fixActions)],
    ];
    const cold: number[] = [];
    for (let i = 0; i < COLD_RUNS; i++) {
      const started = performance.now();
      spawnSync(host.pwshPath, ['-NoProfile', '-NonInteractive', '-Command', '$null'], { stdio: 'ignore' });
      cold.push(performance.now() - started);
    }
    console.log(`payload runs in the emulator's PowerShell host (${RUNS} runs each, one process, ${host.pwshPath})`);
    for (const [label, times] of rows) console.log(`  ${label.padEnd(30)} median ${quantile(times, 0.5).toFixed(0).padStart(4)} ms   p90 ${quantile(times, 0.9).toFixed(0).padStart(4)} ms`);
    console.log(`  ${'a cold pwsh start, no payload'.padEnd(30)} median ${quantile(cold, 0.5).toFixed(0).padStart(4)} ms   (${COLD_RUNS} starts)`);
  } finally {
    await host.close();
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
