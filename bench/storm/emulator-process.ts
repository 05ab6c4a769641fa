/**
 * The storm benchmark's Azure: the project's emulator (ARM, managed identity, Logs API) in a
 * process of its own, so that its CPU is not the app's and the app's is not its. The orchestrator
 * (bench/storm.ts) forks it and drives it over IPC (bench/storm/protocol.ts): seeding, throttle,
 * run durations, faults, and at the end summaries of the request and Run Command logs, computed
 * here to keep the IPC small.
 */
import { startEmulator, type ArmRequestRecord, type Emulator, type VmSpec } from '../../emulator/index.js';
import { scenarioVm } from '../../emulator/fleet.js';
import { PowerShellHost } from '../../emulator/powershell.js';
import { windowsDoublePath } from '../../emulator/windows-runner.js';
import { scaledRunDurationMs } from './durations.js';
import { descendants, cpuMsOf } from './proc.js';
import { EMULATOR_METHODS, serveRpc, usageNow, type ArmSummary } from './protocol.js';

let emulator: Emulator | undefined;
let powershell: PowerShellHost | undefined;
/**
 * One Windows state for every VM of the benchmark (same computer name, seed and clock), so the
 * emulator replays the two runs it recorded for the first VM instead of starting PowerShell
 * 20,000 times: the benchmark measures the app and ARM's limits, not PowerShell.
 */
let template: VmSpec | undefined;

function running(): Emulator {
  if (!emulator) throw new Error('the emulator is not started');
  return emulator;
}

const emptyCounts = () => ({ requests: 0, reads: 0, writes: 0, readsByKind: {} as Record<string, number>, throttled429: 0, injected429: 0, injected503: 0, otherErrors: {} as Record<string, number>, runCommandPosts: 0, runCommandPostsAccepted: 0 });
type Counts = ReturnType<typeof emptyCounts>;

/** What a read was for: a VM (GET, reconcile's instance view too), a listing page, or a poll of a run (its status, or the Location). */
function readKind(r: ArmRequestRecord): string {
  if (/\/operations\/[^/]+$/i.test(r.path)) return r.query['monitor'] === undefined ? 'poll' : 'location';
  if (/\/providers\/microsoft\.compute\/virtualmachines$/i.test(r.path)) return 'list';
  return 'vm';
}

function count(counts: Counts, r: ArmRequestRecord): void {
  counts.requests++;
  if (r.operationType === 'read') {
    counts.reads++;
    const kind = readKind(r);
    counts.readsByKind[kind] = (counts.readsByKind[kind] ?? 0) + 1;
  } else counts.writes++;
  if (r.status === 429) {
    if (r.injected) counts.injected429++;
    else counts.throttled429++;
  } else if (r.status === 503 && r.injected) counts.injected503++;
  else if (r.status >= 400) counts.otherErrors[String(r.status)] = (counts.otherErrors[String(r.status)] ?? 0) + 1;
  if (r.method === 'POST' && /\/runcommand$/i.test(r.path)) {
    counts.runCommandPosts++;
    if (r.status === 202 || r.status === 200) counts.runCommandPostsAccepted++;
  }
}

function summary(startedAt: number, bucketMs: number, subscriptions: readonly string[]): ArmSummary {
  const emu = running();
  const wanted = new Set(subscriptions.map((s) => s.toLowerCase()));
  const total = emptyCounts();
  const perSubscription: Record<string, Counts & { vmLists: number }> = {};
  const buckets = new Map<number, [number, number, number]>();
  let lastRequestMs = 0;
  for (const r of emu.requests) {
    const subscription = (/^\/subscriptions\/([^/]+)/i.exec(r.path)?.[1] ?? '').toLowerCase();
    if (!wanted.has(subscription)) continue;
    count(total, r);
    const own = (perSubscription[subscription] ??= { ...emptyCounts(), vmLists: 0 });
    count(own, r);
    if (r.method === 'GET' && /\/providers\/microsoft\.compute\/virtualmachines$/i.test(r.path)) own.vmLists++;
    const bucket = Math.floor((r.time - startedAt) / bucketMs);
    const row = buckets.get(bucket) ?? [0, 0, 0];
    if (r.operationType === 'read') row[0]++;
    else row[1]++;
    if (r.status === 429) row[2]++;
    buckets.set(bucket, row);
    lastRequestMs = Math.max(lastRequestMs, r.time + r.durationMs - startedAt);
  }
  const last = Math.max(-1, ...buckets.keys());
  const perBucket: [number, number, number, number][] = [];
  for (let b = 0; b <= last; b++) {
    const row = buckets.get(b) ?? [0, 0, 0];
    perBucket.push([b * bucketMs, row[0], row[1], row[2]]);
  }

  const byPayload: Record<string, number> = {};
  const perVmPayload = new Map<string, number>();
  const durationsMs: number[] = [];
  let failed = 0;
  let runs = 0;
  for (const run of emu.runCommands) {
    const subscription = (/^\/subscriptions\/([^/]+)/i.exec(run.vmId)?.[1] ?? '').toLowerCase();
    if (!wanted.has(subscription)) continue;
    runs++;
    const kind = run.payload ?? 'other';
    byPayload[kind] = (byPayload[kind] ?? 0) + 1;
    const key = `${run.vmId.toLowerCase()} ${kind}`;
    perVmPayload.set(key, (perVmPayload.get(key) ?? 0) + 1);
    if (run.outcome === 'failed') failed++;
    if (run.endTime !== null) durationsMs.push(run.endTime - run.startTime);
  }
  const duplicated = [...perVmPayload.entries()].filter(([, n]) => n > 1);
  return {
    total,
    perSubscription,
    perBucket,
    runs: {
      total: runs,
      byPayload,
      duplicates: duplicated.reduce((sum, [, n]) => sum + n - 1, 0),
      duplicateFixes: duplicated.filter(([key]) => key.endsWith(' fix')).reduce((sum, [, n]) => sum + n - 1, 0),
      duplicateExamples: duplicated.slice(0, 5).map(([key, n]) => `${key} ×${n}`),
      failed,
      durationsMs,
    },
    maxConcurrentRunsPerVm: emu.maxConcurrentRunsPerVm,
    logsRequests: emu.logsRequests.length,
    lastRequestMs,
  };
}

serveRpc(EMULATOR_METHODS, {
  async start({ replay }) {
    powershell = await PowerShellHost.start({ doublePath: windowsDoublePath(), replay });
    emulator = await startEmulator({ windows: { host: powershell } });
    template = scenarioVm('tls12-disabled', { subscriptionId: 'template', resourceGroup: 'template', name: 'storm-template', computerName: 'STORMVM', seed: 'storm' });
    return { env: { ...emulator.env() }, pid: process.pid };
  },

  seedFleet({ subscriptionId, resourceGroup, prefix, count: vms, workspace }) {
    const emu = running();
    if (!template) throw new Error('the emulator is not started');
    const ids: string[] = [];
    for (let i = 0; i < vms; i++) ids.push(emu.addVm({ ...template, subscriptionId, resourceGroup, name: `${prefix}-${String(i).padStart(5, '0')}` }));
    if (workspace) {
      emu.addWorkspace(workspace);
      const at = new Date(Date.now() - 60_000);
      emu.addEvents(
        workspace.workspaceId,
        ids.map((vm, i) => ({ TimeGenerated: at, _ResourceId: vm.toLowerCase(), Computer: `${prefix}${i}`, EventLog: 'System', Source: 'Schannel', EventID: 36871, RenderedDescription: 'A fatal error occurred while creating a TLS server credential.' })),
      );
    }
    return Promise.resolve({ ids });
  },

  configure({ throttle, runDuration, faults }) {
    const emu = running();
    // retry-after-ms: a 429's wait is exact at the time scale (whole seconds would be 20 times too long at ×20).
    emu.configureThrottle({ ...throttle, retryAfterMs: true });
    emu.configureRunDuration((run) => scaledRunDurationMs(runDuration.seed, runDuration.timeScale, run.vmId, run.payload));
    emu.clearArmFaults();
    for (const f of faults) {
      emu.injectArmFaults({
        status: f.status,
        count: Infinity,
        probability: f.probability,
        seed: f.seed,
        ...(f.retryAfterSeconds === undefined ? {} : { retryAfterSeconds: f.retryAfterSeconds }),
        ...(f.match === undefined ? {} : { match: f.match }),
        ...(f.pathPattern === undefined ? {} : { path: new RegExp(f.pathPattern, 'i') }),
      });
    }
    return Promise.resolve({});
  },

  clearLogs() {
    running().clearLogs();
    return Promise.resolve({});
  },

  usage() {
    const pids = descendants(process.pid);
    return Promise.resolve({
      ...usageNow(),
      descendants: { pids, cpuMs: cpuMsOf(pids) ?? 0 },
      powershell: powershell ? { runs: powershell.stats.runs, replays: powershell.stats.replays } : null,
    });
  },

  summary({ startedAt, bucketMs, subscriptions }) {
    return Promise.resolve(summary(startedAt, bucketMs, subscriptions));
  },

  async stop() {
    await emulator?.stop();
    await powershell?.close();
    emulator = undefined;
    setImmediate(() => process.exit(0));
    return {};
  },
});

process.on('disconnect', () => {
  // The orchestrator went away: do not linger with PowerShell children.
  void Promise.allSettled([emulator?.stop(), powershell?.close()]).finally(() => process.exit(0));
});
