/**
 * `npm run bench`: an alert storm, measured in one run. 1,000 VMs fail RDP at once; the alerts
 * arrive (a) as one workspace-targeted log alert whose Logs query returns 1,000 rows, and
 * (b) as 1,000 separate deliveries plus 20 % duplicates. The emulator applies ARM's token
 * buckets (writes 200 burst / 10 per s, reads 250 burst / 25 per s), sped up by TIME_SCALE,
 * and a Run Command latency. Reports makespan against the lower bound those limits set,
 * 429s, lost jobs, duplicate Run Commands, webhook acknowledgement p50/p99 and peak RSS;
 * writes bench/results/storm.json and bench/results/storm.svg.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { scenarioVm } from '../emulator/fleet.js';
import type { Emulator } from '../emulator/index.js';
import { logAlertV2 } from '../demo/alert-payloads.js';
import { startLocalStack, type LocalStack } from '../demo/stack.js';
import { queueClient } from '../src/adapters/storage.js';
import { getServices } from '../src/app/services.js';
import { ALERT_QUEUE_NAME, POISON_QUEUE_NAME, QUEUE_NAME } from '../src/config.js';
import { packageRoot } from '../src/util/package-root.js';

const VMS = Number(process.env.BENCH_VMS ?? 1000);
const DUPLICATE_SHARE = 0.2;
/** ARM's refill rates are multiplied by this, and Run Command latency divided, to fit a benchmark into seconds. */
const TIME_SCALE = Number(process.env.BENCH_TIME_SCALE ?? 20);
/** Azure's documented minimum Run Command time is about 20 s; scaled. */
const RUN_LATENCY_MS = Math.round(20_000 / TIME_SCALE);
const LIMITS = { writes: { burst: 200, perSecond: 10 }, reads: { burst: 250, perSecond: 25 } };
/** Function instances the storm fans out to; each runs host.json's batchSize + newBatchThreshold at once. */
const INSTANCES = Number(process.env.BENCH_INSTANCES ?? 8);
const SUB = '00000000-0000-0000-0000-00000000be00';
const WORKSPACE_GUID = 'b0b0b0b0-0000-4000-8000-00000000be00';
const WORKSPACE_ID = `/subscriptions/${SUB}/resourceGroups/rg-monitor/providers/Microsoft.OperationalInsights/workspaces/law-rdp`;

interface ScenarioResult {
  readonly name: string;
  readonly vms: number;
  readonly deliveries: number;
  readonly makespanMs: number;
  /** With the reads the SDK's poller needs (READS_PER_VM.sdk). */
  readonly lowerBoundMs: number;
  readonly ratio: number;
  /** With one poll per run (READS_PER_VM.ideal): a stricter bound no SDK client reaches. */
  readonly idealLowerBoundMs: number;
  readonly idealRatio: number;
  readonly throttled429: number;
  readonly jobsLost: number;
  readonly duplicateRunCommands: number;
  readonly runCommands: number;
  readonly armWrites: number;
  readonly armReads: number;
  readonly ackMs: { readonly p50: number; readonly p99: number; readonly max: number };
  /** Completed remediations over time, for the chart: [ms since start, count]. */
  readonly progress: readonly (readonly [number, number])[];
}

function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0;
}

/**
 * The fastest a client could finish: each VM needs 2 ARM writes (the probe and fix Run
 * Commands) and some reads, and the last VM still waits for two runs; buckets start full.
 * Reads per VM: the VM itself, then per run the operation polls and the final result GET.
 * The SDK's poller polls once as soon as the run is accepted and again after the interval, so
 * with it a run costs 3 reads (7 per VM); a client that polled exactly once would need 5.
 */
export const READS_PER_VM = { sdk: 7, ideal: 5 } as const;

function lowerBoundMs(vms: number, readsPerVm: number): number {
  const writeSeconds = Math.max(0, 2 * vms - LIMITS.writes.burst) / (LIMITS.writes.perSecond * TIME_SCALE);
  const readSeconds = Math.max(0, readsPerVm * vms - LIMITS.reads.burst) / (LIMITS.reads.perSecond * TIME_SCALE);
  return Math.max(writeSeconds, readSeconds) * 1000 + 2 * RUN_LATENCY_MS;
}

function seedFleet(emulator: Emulator, prefix: string): string[] {
  const ids: string[] = [];
  for (let i = 0; i < VMS; i++) {
    // One Windows state for every VM (same computer name and seed), so the emulator replays
    // the real runs it recorded for the first VM instead of starting PowerShell 2,000 times.
    ids.push(emulator.addVm(scenarioVm('tls12-disabled', { subscriptionId: SUB, resourceGroup: `rg-${prefix}`, name: `${prefix}-${String(i).padStart(4, '0')}`, computerName: 'STORMVM', seed: 'storm' })));
  }
  return ids;
}

/** Completion time per VM key, from the worker's structured `remediation.completed` log lines. */
const completedAt = new Map<string, number>();

function onLog(_functionName: string, _level: string, message: string): void {
  if (!message.includes('"remediation.completed"')) return;
  const entry = JSON.parse(message) as { vm: string };
  const key = entry.vm.toLowerCase();
  if (!completedAt.has(key)) completedAt.set(key, performance.now());
}

async function waitForAll(stack: LocalStack, vms: readonly string[], started: number, progress: [number, number][]): Promise<number> {
  const keys = vms.map((v) => v.toLowerCase());
  const deadline = Date.now() + 20 * 60_000;
  for (;;) {
    const done = keys.filter((k) => completedAt.has(k)).length;
    progress.push([performance.now() - started, done]);
    if (done === keys.length || Date.now() > deadline) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  await stack.host.drain(120_000).catch(() => undefined);
  // Lost: no completed record in the audit trail, whatever the logs said.
  const { store } = getServices();
  let lost = 0;
  for (const key of keys) if (!(await store.listByVm(key)).some((r) => r.state === 'completed')) lost++;
  return lost;
}

function countRuns(emulator: Emulator, vms: readonly string[]): { runCommands: number; duplicates: number } {
  const wanted = new Set(vms.map((v) => v.toLowerCase()));
  const perVm = new Map<string, Map<string, number>>();
  let runCommands = 0;
  for (const run of emulator.runCommands) {
    const vm = run.vmId.toLowerCase();
    if (!wanted.has(vm)) continue;
    runCommands++;
    const kinds = perVm.get(vm) ?? new Map<string, number>();
    kinds.set(run.payload ?? 'other', (kinds.get(run.payload ?? 'other') ?? 0) + 1);
    perVm.set(vm, kinds);
  }
  let duplicates = 0;
  for (const kinds of perVm.values()) for (const count of kinds.values()) duplicates += Math.max(0, count - 1);
  return { runCommands, duplicates };
}

async function runScenario(stack: LocalStack, name: string, deliver: () => Promise<{ acks: number[]; vms: string[]; deliveries: number }>): Promise<ScenarioResult> {
  stack.emulator.clearLogs();
  // Both buckets start full, as for a subscription that was quiet before the storm.
  stack.emulator.configureThrottle({ timeScale: TIME_SCALE, writes: { capacity: LIMITS.writes.burst, refillPerSecond: LIMITS.writes.perSecond }, reads: { capacity: LIMITS.reads.burst, refillPerSecond: LIMITS.reads.perSecond } });
  const progress: [number, number][] = [];
  const started = performance.now();
  const { acks, vms, deliveries } = await deliver();
  const lost = await waitForAll(stack, vms, started, progress);
  const lastCompletion = Math.max(...vms.map((v) => completedAt.get(v.toLowerCase()) ?? Number.NaN).filter(Number.isFinite));
  const makespanMs = lastCompletion - started;
  const requests = stack.emulator.requests;
  const { runCommands, duplicates } = countRuns(stack.emulator, vms);
  const sorted = [...acks].sort((a, b) => a - b);
  const bound = lowerBoundMs(vms.length, READS_PER_VM.sdk);
  const ideal = lowerBoundMs(vms.length, READS_PER_VM.ideal);
  return {
    name,
    vms: vms.length,
    deliveries,
    makespanMs: Math.round(makespanMs),
    lowerBoundMs: Math.round(bound),
    ratio: Number((makespanMs / bound).toFixed(3)),
    idealLowerBoundMs: Math.round(ideal),
    idealRatio: Number((makespanMs / ideal).toFixed(3)),
    throttled429: requests.filter((r) => r.status === 429).length,
    jobsLost: lost,
    duplicateRunCommands: duplicates,
    runCommands,
    armWrites: requests.filter((r) => r.operationType === 'write').length,
    armReads: requests.filter((r) => r.operationType === 'read').length,
    ackMs: { p50: Number(quantile(sorted, 0.5).toFixed(2)), p99: Number(quantile(sorted, 0.99).toFixed(2)), max: Number((sorted.at(-1) ?? 0).toFixed(2)) },
    progress: progress.filter((_, i) => i % 2 === 0 || i === progress.length - 1).map(([t, c]) => [Math.round(t), c] as const),
  };
}

function chart(results: readonly ScenarioResult[]): string {
  const width = 720;
  const height = 360;
  const pad = { left: 60, right: 20, top: 30, bottom: 50 };
  const maxT = Math.max(...results.flatMap((r) => [r.makespanMs, r.lowerBoundMs])) * 1.05;
  const maxY = Math.max(...results.map((r) => r.vms));
  const x = (t: number) => pad.left + (t / maxT) * (width - pad.left - pad.right);
  const y = (c: number) => height - pad.bottom - (c / maxY) * (height - pad.top - pad.bottom);
  const colours = ['#1f77b4', '#d62728'];
  const lines = results.map((r, i) => {
    const points = [[0, 0] as const, ...r.progress].map(([t, c]) => `${x(t).toFixed(1)},${y(c).toFixed(1)}`).join(' ');
    const colour = colours[i % colours.length] ?? '#000';
    return (
      `<polyline fill="none" stroke="${colour}" stroke-width="2" points="${points}"/>` +
      `<line x1="${x(r.lowerBoundMs).toFixed(1)}" y1="${pad.top}" x2="${x(r.lowerBoundMs).toFixed(1)}" y2="${height - pad.bottom}" stroke="${colour}" stroke-dasharray="4 4"/>` +
      `<text x="${pad.left + 10}" y="${pad.top + 16 + i * 16}" fill="${colour}" font-size="12">${r.name}: ${(r.makespanMs / 1000).toFixed(1)} s, ${r.ratio}× lower bound (dashed)</text>`
    );
  });
  const ticks = [0, 0.25, 0.5, 0.75, 1].map((f) => {
    const t = f * maxT;
    return `<text x="${x(t).toFixed(1)}" y="${height - pad.bottom + 18}" font-size="11" text-anchor="middle">${(t / 1000).toFixed(0)} s</text>`;
  });
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="${width / 2}" y="18" text-anchor="middle" font-size="14">Alert storm: VMs remediated over time (ARM limits ×${TIME_SCALE} time scale)</text>`,
    `<line x1="${pad.left}" y1="${height - pad.bottom}" x2="${width - pad.right}" y2="${height - pad.bottom}" stroke="#333"/>`,
    `<line x1="${pad.left}" y1="${pad.top}" x2="${pad.left}" y2="${height - pad.bottom}" stroke="#333"/>`,
    `<text x="${pad.left - 8}" y="${y(maxY) + 4}" font-size="11" text-anchor="end">${maxY}</text>`,
    `<text x="${pad.left - 8}" y="${y(0) + 4}" font-size="11" text-anchor="end">0</text>`,
    ...ticks,
    ...lines,
    `</svg>`,
  ].join('\n');
}

async function main(): Promise<void> {
  console.log(`storm benchmark: ${VMS} VMs, time scale ×${TIME_SCALE}, Run Command latency ${RUN_LATENCY_MS} ms, ${INSTANCES} function instances`);
  // Pacing set to ARM's own limits at this time scale, as a deployment sets it for its instance count.
  const stack = await startLocalStack({
    emulator: { runLatencyMs: RUN_LATENCY_MS, windows: { replay: true } },
    settings: {
      // Polls are ARM reads: one poll a run when the interval is a little over the run time.
      RUN_COMMAND_POLL_SECONDS: String((RUN_LATENCY_MS * 1.2) / 1000),
      ARM_WRITES_PER_SECOND: String(LIMITS.writes.perSecond * TIME_SCALE),
      ARM_WRITE_BURST: String(LIMITS.writes.burst),
      ARM_READS_PER_SECOND: String(LIMITS.reads.perSecond * TIME_SCALE),
      ARM_READ_BURST: String(LIMITS.reads.burst),
      ALERT_COOLDOWN_MINUTES: '60',
    },
    host: { batchSize: 32, newBatchThreshold: 16 },
    startHost: false,
  });
  // More instances: more hosts draining the same queues, as Flex Consumption scales out.
  const { LocalFunctionsHost } = await import('../demo/local-functions-host.js');
  const { remediationWorker, remediationPoison } = await import('../functions/remediation-worker.js');
  const { alertWorker } = await import('../functions/alerts.js');
  const connection = { kind: 'connection-string' as const, connectionString: stack.azurite.connectionString };
  const hosts = Array.from({ length: INSTANCES }, () =>
    new LocalFunctionsHost(
      [
        { functionName: 'remediation-worker', queue: queueClient(connection, QUEUE_NAME), poison: queueClient(connection, POISON_QUEUE_NAME), handler: remediationWorker },
        { functionName: 'remediation-poison', queue: queueClient(connection, POISON_QUEUE_NAME), handler: remediationPoison },
        { functionName: 'alert-worker', queue: queueClient(connection, ALERT_QUEUE_NAME), handler: alertWorker },
      ],
      { batchSize: 32, newBatchThreshold: 16, visibilityTimeoutSeconds: 30, log: onLog },
    ),
  );
  await Promise.all(hosts.map((h) => h.start()));

  try {
    const results: ScenarioResult[] = [];

    // (a) One log alert on the workspace; its Logs query returns a row per VM.
    const fleetA = seedFleet(stack.emulator, 'ws');
    stack.emulator.addWorkspace({ workspaceId: WORKSPACE_GUID, resourceId: WORKSPACE_ID });
    const now = Date.now();
    stack.emulator.addEvents(
      WORKSPACE_GUID,
      fleetA.map((vm, i) => ({ TimeGenerated: new Date(now - 60_000), _ResourceId: vm.toLowerCase(), Computer: `WS${i}`, EventLog: 'System', Source: 'Schannel', EventID: 36871, RenderedDescription: 'A fatal error occurred while creating a TLS server credential.' })),
    );
    results.push(
      await runScenario(stack, `one workspace alert, ${VMS.toLocaleString('en-US')} rows`, async () => {
        const t0 = performance.now();
        const response = await stack.postAlert(logAlertV2({ alertId: `/subscriptions/${SUB}/providers/Microsoft.AlertsManagement/alerts/aaaaaaaa-0000-4000-8000-000000000001`, targets: [WORKSPACE_ID], workspaceGuid: WORKSPACE_GUID }));
        const ack = performance.now() - t0;
        if (response.status !== 202) throw new Error(`workspace alert answered ${response.status}`);
        return { acks: [ack], vms: fleetA, deliveries: 1 };
      }),
    );

    // (b) One alert per VM, as a rule split by _ResourceId sends them, plus 20 % redeliveries.
    const fleetB = seedFleet(stack.emulator, 'vm');
    results.push(
      await runScenario(stack, `${VMS.toLocaleString('en-US')} deliveries + ${DUPLICATE_SHARE * 100} % duplicates`, async () => {
        const bodies = fleetB.map((vm, i) => logAlertV2({ alertId: `/subscriptions/${SUB}/providers/Microsoft.AlertsManagement/alerts/bbbbbbbb-0000-4000-8000-${String(i).padStart(12, '0')}`, targets: [vm] }));
        const deliveries = [...bodies, ...bodies.filter((_, i) => i % Math.round(1 / DUPLICATE_SHARE) === 0)];
        // A storm arrives interleaved: shuffle deterministically.
        deliveries.sort((a, b) => (JSON.stringify(a).length * 7919 + JSON.stringify(a).charCodeAt(200)) % 101 - (JSON.stringify(b).length * 7919 + JSON.stringify(b).charCodeAt(200)) % 101);
        const acks: number[] = [];
        const concurrency = 50;
        let next = 0;
        await Promise.all(
          Array.from({ length: concurrency }, async () => {
            while (next < deliveries.length) {
              const body = deliveries[next++];
              const t0 = performance.now();
              const response = await stack.postAlert(body);
              acks.push(performance.now() - t0);
              if (response.status !== 202) throw new Error(`delivery answered ${response.status}`);
            }
          }),
        );
        return { acks, vms: fleetB, deliveries: deliveries.length };
      }),
    );

    const peakRssMb = Math.round(process.resourceUsage().maxRSS / 1024);
    const report = {
      when: new Date().toISOString(),
      node: process.version,
      machine: { cpus: (await import('node:os')).cpus().length },
      settings: { vms: VMS, timeScale: TIME_SCALE, runLatencyMs: RUN_LATENCY_MS, instances: INSTANCES, limits: LIMITS, duplicateShare: DUPLICATE_SHARE, readsPerVm: READS_PER_VM },
      peakRssMb,
      scenarios: results,
    };
    const dir = join(packageRoot(), 'bench', 'results');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'storm.json'), `${JSON.stringify(report, null, 2)}\n`);
    writeFileSync(join(dir, 'storm.svg'), `${chart(results)}\n`);
    console.log('\nscenario                              makespan  lower bound  ratio  (1-poll bound, ratio)  429s  lost  dup RCs  ack p50  ack p99');
    for (const r of results) {
      console.log(
        `${r.name.padEnd(36)}  ${(r.makespanMs / 1000).toFixed(1).padStart(7)} s  ${(r.lowerBoundMs / 1000).toFixed(1).padStart(9)} s  ${r.ratio.toFixed(2).padStart(5)}  (${(r.idealLowerBoundMs / 1000).toFixed(1).padStart(5)} s, ${r.idealRatio.toFixed(2)})        ${String(r.throttled429).padStart(4)}  ${String(r.jobsLost).padStart(4)}  ${String(r.duplicateRunCommands).padStart(7)}  ${r.ackMs.p50.toFixed(1).padStart(5)} ms  ${r.ackMs.p99.toFixed(1).padStart(5)} ms`,
      );
    }
    console.log(`peak RSS (app + emulator process): ${peakRssMb} MB; results in bench/results/storm.json and storm.svg`);
  } finally {
    await Promise.all(hosts.map((h) => h.stop()));
    await stack.stop();
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
