/**
 * Fault soak (issue 9): about 20 % injected faults on ARM, the Logs API and storage over 80+
 * remediations, manual and alert-driven, through the real handlers, the real queue workers on
 * Azurite, the real SDKs against the emulator and the real payloads under PowerShell.
 *
 * Faults: ARM 429 / 503 (emulator injections, reads and writes), Logs API 429 / 503, and TCP
 * faults (reset, dropped request, dropped response, stall, delay) from seeded fault proxies in
 * front of the emulator's ARM port, its Logs API (same port, a proxy of its own) and Azurite's
 * table and queue ports. The app's own clients (records, locks, admissions, its enqueues) go
 * through the storage proxies; the local host's queue polling (the Functions runtime's part in
 * Azure) talks to Azurite directly, as demo/local-functions-host.ts does not survive a failed
 * receive.
 *
 * Checked: every request reaches a completed record within a bound (0 lost); at most one fix
 * payload per RunId in the emulator's Run Command log (0 double-applied); every record's actions
 * and security changes equal the VM's manifests (0 mismatched); nothing left running or queued.
 * SOAK_SEED picks another sequence.
 */
import { afterAll, beforeAll, expect, it, vi } from 'vitest';
import { ALERT_POISON_QUEUE_NAME, ALERT_QUEUE_NAME, POISON_QUEUE_NAME, QUEUE_NAME } from '../../src/config.js';
import { alertPoison, alertWorker } from '../../functions/alerts.js';
import { remediationPoison, remediationWorker } from '../../functions/remediation-worker.js';
import { queueClient } from '../../src/adapters/storage.js';
import { createServices, resetServices, type Services } from '../../src/app/services.js';
import type { Permission } from '../../src/contract/actions.js';
import type { RemediationRecord } from '../../src/core/outcome.js';
import { developmentStorageConnectionString } from '../../src/util/development-storage.js';
import { alertId, logAlertV2 } from '../../demo/alert-payloads.js';
import { LocalFunctionsHost } from '../../demo/local-functions-host.js';
import { startLocalStack, type LocalStack } from '../../demo/stack.js';
import { scenarioVm, type Scenario } from '../../emulator/fleet.js';
import { seededRandom, startFaultProxy, type FaultPlan, type FaultProxy } from '../support/fault-proxy.js';
import { mismatchWithVm } from '../support/manifests.js';
import { requirePowerShellForFile } from '../support/powershell.js';
import type * as ComputeModule from '../../src/adapters/compute.js';
import type * as PacingModule from '../../src/adapters/pacing.js';

// Every test here runs the real payloads through the emulator.
requirePowerShellForFile('fault-soak e2e');

// The app's bounds are constants (no settings): shortened here so a stalled connection costs
// about a second, not DEFAULT_BOUNDS' 10-60 s per try. The retry and deadline logic is the app's.
vi.mock('../../src/adapters/pacing.js', async (importOriginal) => {
  const original = await importOriginal<typeof PacingModule>();
  return {
    ...original,
    DEFAULT_BOUNDS: {
      arm: { tryTimeoutMs: 1_500, maxRetries: 4, retryDelayMs: 20, maxRetryDelayMs: 200, operationTimeoutMs: 10_000, maxRetryAfterMs: 2_000 },
      logs: { tryTimeoutMs: 1_500, maxRetries: 3, retryDelayMs: 20, maxRetryDelayMs: 200, operationTimeoutMs: 8_000 },
      table: { tryTimeoutMs: 1_000, maxRetries: 3, retryDelayMs: 20, maxRetryDelayMs: 200, operationTimeoutMs: 6_000 },
      queue: { tryTimeoutMs: 1_000, maxRetries: 3, retryDelayMs: 20, maxRetryDelayMs: 200, operationTimeoutMs: 6_000 },
    },
  };
});
// Likewise the gateway's reconcile bounds after an unanswered POST (defaults: 10 min / 60 s).
vi.mock('../../src/adapters/compute.js', async (importOriginal) => {
  const original = await importOriginal<typeof ComputeModule>();
  class ArmComputeGateway extends original.ArmComputeGateway {
    public constructor(...[credential, options]: ConstructorParameters<typeof original.ArmComputeGateway>) {
      super(credential, { ...options, reconcile: { timeoutMs: 10_000, settleMs: 1_500, intervalMs: 25, clockSkewMs: 30_000, ...options.reconcile } });
    }
  }
  return { ...original, ArmComputeGateway };
});

const SEED = Number(process.env['SOAK_SEED'] ?? 20_261_201);
const SUB = '00000000-0000-0000-0000-00000000050a';
const RG = 'rg-soak';
const WS_GUID = '50a50a50-0000-4000-8000-00000000050a';
const WS_ID = `/subscriptions/${SUB}/resourceGroups/rg-monitor/providers/Microsoft.OperationalInsights/workspaces/law-soak`;
/** Every request must be completed within this long after it was accepted. */
const COMPLETION_BOUND_MS = 90_000;
/** About 20 % of connections get a fault. */
const TCP_FAULTS: FaultPlan = { weights: { pass: 80, reset: 5, 'drop-response': 5, 'drop-request': 3, stall: 3, delay: 4 }, delayMs: [20, 150] };

const BROKEN: readonly Scenario[] = ['tls12-disabled', 'key-file-acl', 'expired-self-signed-cert', 'stale-binding', 'machinekeys-folder-acl', 'termservice-stopped', 'key-file-missing', 'missing-cert'];

let stack: LocalStack;
let host: LocalFunctionsHost;
let direct: Services;
const proxies: Record<'arm' | 'logs' | 'table' | 'queue', FaultProxy | undefined> = { arm: undefined, logs: undefined, table: undefined, queue: undefined };
const hostLog: string[] = [];

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
const portOf = (url: string) => Number(new URL(url).port);

beforeAll(async () => {
  stack = await startLocalStack({
    emulator: { runLatencyMs: 40, throttle: { timeScale: 20 } },
    startHost: false,
    settings: {
      ALERT_COOLDOWN_MINUTES: '30',
      REMEDIATION_LOCK_TTL_SECONDS: '5',
      RUN_COMMAND_BUSY_RETRIES: '20',
      RUN_COMMAND_BUSY_DELAY_SECONDS: '0.05',
      ARM_WRITES_PER_SECOND: '200',
      ARM_WRITE_BURST: '200',
      ARM_READS_PER_SECOND: '500',
      ARM_READ_BURST: '250',
    },
  });
  const emu = stack.emulator;
  const seeds = seededRandom(SEED);
  const seed = () => Math.floor(seeds() * 0x7fff_ffff) + 1;
  // Passing until the setup is done; the faults start with the soak.
  [proxies.arm, proxies.logs, proxies.table, proxies.queue] = await Promise.all([
    startFaultProxy({ target: { port: portOf(emu.armEndpoint) }, seed: seed() }),
    startFaultProxy({ target: { port: portOf(emu.logsEndpoint) }, seed: seed() }),
    startFaultProxy({ target: { port: stack.azurite.tablePort }, seed: seed() }),
    startFaultProxy({ target: { port: stack.azurite.queuePort }, seed: seed() }),
  ]);
  const arm = new URL(emu.armEndpoint);
  const logs = new URL(emu.logsEndpoint);
  arm.port = String(proxies.arm.port);
  logs.port = String(proxies.logs.port);
  // The app's settings, pointed at the proxies (the audience stays the emulator's endpoint).
  Object.assign(process.env, {
    AZURE_RESOURCE_MANAGER_ENDPOINT: arm.toString().replace(/\/+$/, ''),
    AZURE_RESOURCE_MANAGER_AUDIENCE: process.env['AZURE_RESOURCE_MANAGER_AUDIENCE'] ?? emu.armEndpoint,
    AZURE_LOGS_ENDPOINT: logs.toString().replace(/\/+$/, ''),
    AzureWebJobsStorage: developmentStorageConnectionString({ table: proxies.table.port, queue: proxies.queue.port }),
  });
  resetServices();
  // Read-only checks go to Azurite directly, so they see the truth, not the faults.
  direct = createServices({ env: { ...process.env, AzureWebJobsStorage: stack.azurite.connectionString } });

  const connection = { kind: 'connection-string' as const, connectionString: stack.azurite.connectionString };
  host = new LocalFunctionsHost(
    [
      { functionName: 'remediation-worker', queue: queueClient(connection, QUEUE_NAME), poison: queueClient(connection, POISON_QUEUE_NAME), handler: remediationWorker },
      { functionName: 'remediation-poison', queue: queueClient(connection, POISON_QUEUE_NAME), handler: remediationPoison },
      { functionName: 'alert-worker', queue: queueClient(connection, ALERT_QUEUE_NAME), poison: queueClient(connection, ALERT_POISON_QUEUE_NAME), handler: alertWorker },
      { functionName: 'alert-poison', queue: queueClient(connection, ALERT_POISON_QUEUE_NAME), handler: alertPoison },
    ],
    { visibilityTimeoutSeconds: 2, batchSize: 16, log: (functionName, level, message) => hostLog.push(`${functionName} ${level} ${message}`) },
  );
  await host.start();
  emu.addWorkspace({ workspaceId: WS_GUID, resourceId: WS_ID });
}, 60_000);

afterAll(async () => {
  await host?.stop();
  await Promise.all(Object.values(proxies).map((p) => (p ? p.close() : Promise.resolve())));
  await stack?.stop();
});

const mismatch = (record: RemediationRecord) => mismatchWithVm(stack.emulator, record);

interface Case {
  readonly kind: 'manual' | 'alert' | 'workspace-alert';
  readonly vmId: string;
  readonly scenario: Scenario;
  readonly allow: readonly Permission[];
  /** When the intake accepted it (the bound counts from here). */
  acceptedAt: number | null;
  /** Manual: the id the intake answered (202, or the 409's active remediation). */
  id: string | null;
  intake5xx: number;
  intakeAttempts: number;
}

it(`80+ remediations under ~20 % faults: none lost, no fix twice, records equal manifests, none stuck (seed ${SEED})`, async () => {
  const started = Date.now();
  console.info(`fault soak: seed ${SEED} (SOAK_SEED to replay)`);
  const emu = stack.emulator;
  const rand = seededRandom(SEED ^ 0x5eed);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(rand() * items.length)] as T;
  let n = 0;
  const addVm = (scenario: Scenario) => emu.addVm(scenarioVm(scenario, { subscriptionId: SUB, resourceGroup: RG, name: `vm-soak-${++n}`, runLatencyMs: 30 + Math.floor(rand() * 21) }));

  // 50 manual (every fifth the NLA VM with the disable-nla permission), 24 alerts naming their
  // VM, 8 VMs found through two workspace alerts resolved via the Logs API.
  const cases: Case[] = [];
  const newCase = (kind: Case['kind'], scenario: Scenario, allow: readonly Permission[] = []): Case => {
    const c: Case = { kind, vmId: addVm(scenario), scenario, allow, acceptedAt: null, id: null, intake5xx: 0, intakeAttempts: 0 };
    cases.push(c);
    return c;
  };
  for (let i = 0; i < 50; i++) newCase('manual', i % 5 === 4 ? 'nla-dc-unreachable' : pick(BROKEN), i % 5 === 4 ? ['disable-nla'] : []);
  for (let i = 0; i < 24; i++) newCase('alert', pick(BROKEN));
  const workspaceGroups = [0, 1].map((g) => Array.from({ length: 4 }, (_, i) => ({ c: newCase('workspace-alert', pick(BROKEN)), computer: `WS-SOAK-${g}-${i}` })));
  emu.addEvents(
    WS_GUID,
    workspaceGroups.flat().map(({ c, computer }) => ({
      TimeGenerated: new Date(Date.now() - 60_000),
      _ResourceId: c.vmId.toLowerCase(),
      Computer: computer,
      EventLog: 'System',
      Source: 'Microsoft-Windows-TerminalServices-RemoteConnectionManager',
      EventID: 1058,
      RenderedDescription: 'The RD Session Host Server has failed to replace the expired self signed certificate.',
    })),
  );

  // The faults: TCP on every proxy, and Azure's 429 / 503 from the emulator, topped up as the soak runs.
  for (const p of Object.values(proxies)) p?.setPlan(TCP_FAULTS);
  const armInjected = { 429: 0, 503: 0 };
  const logsInjected = { 429: 0, 503: 0 };
  const injectArm = () => {
    const status = rand() < 0.5 ? 429 : 503;
    const count = 1 + Math.floor(rand() * 3);
    armInjected[status] += count;
    emu.injectArmFaults({ status, count, retryAfterSeconds: rand() < 0.5 ? 0 : 0.1, match: rand() < 0.5 ? 'read' : 'write' });
  };
  const injectLogs = () => {
    const status = rand() < 0.5 ? 429 : 503;
    logsInjected[status] += 1;
    emu.injectLogsFaults({ status, count: 1, retryAfterSeconds: 0.1 });
  };

  /** Posts until the intake answers something other than 5xx (an action group / client retries 5xx). */
  const submit = async (c: Case, send: () => Promise<{ status: number; body: unknown }>) => {
    for (let attempt = 1; attempt <= 10; attempt++) {
      c.intakeAttempts++;
      const response = await send();
      if (response.status >= 500) {
        c.intake5xx++;
        await sleep(50 * attempt);
        continue;
      }
      const body = response.body as { id?: string; error?: { activeRemediationId?: string } } & Record<string, unknown>;
      c.acceptedAt ??= Date.now();
      if (c.kind === 'manual') {
        if (response.status === 202) c.id = body.id ?? null;
        else if (response.status === 409) c.id = (body as { activeRemediationId?: string }).activeRemediationId ?? body.error?.activeRemediationId ?? null;
        if (c.id === null) throw new Error(`manual intake for ${c.vmId} answered ${response.status} ${JSON.stringify(body)}`);
      } else if (response.status !== 202) {
        throw new Error(`alert intake for ${c.vmId} answered ${response.status} ${JSON.stringify(body)}`);
      }
      return;
    }
    throw new Error(`intake for ${c.vmId} answered 5xx ${c.intake5xx} times`);
  };

  // Interleave the intake: manual and alerts in a seeded order, a few at a time, faults topped up.
  type Delivery = { cases: Case[]; send: () => Promise<{ status: number; body: unknown }> };
  const deliveries: Delivery[] = [
    ...cases.filter((c) => c.kind === 'manual').map((c) => ({ cases: [c], send: () => stack.post({ vmResourceId: c.vmId, mode: 'repair', ...(c.allow.length ? { allow: c.allow } : {}) }) })),
    ...cases
      .filter((c) => c.kind === 'alert')
      .map((c) => {
        const body = logAlertV2({ targets: [c.vmId], alertId: alertId() });
        return { cases: [c], send: () => stack.postAlert(body) };
      }),
    ...workspaceGroups.map((group) => {
      const body = logAlertV2({ targets: [WS_ID], workspaceGuid: WS_GUID, computers: group.map((g) => g.computer), alertId: alertId() });
      return { cases: group.map((g) => g.c), send: () => stack.postAlert(body) };
    }),
  ];
  for (let i = deliveries.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [deliveries[i], deliveries[j]] = [deliveries[j] as Delivery, deliveries[i] as Delivery];
  }
  let next = 0;
  await Promise.all(
    Array.from({ length: 6 }, async () => {
      while (next < deliveries.length) {
        const d = deliveries[next++] as Delivery;
        if (rand() < 0.25) injectArm();
        if (d.cases[0]?.kind === 'workspace-alert') injectLogs();
        const [first, ...rest] = d.cases;
        if (!first) continue;
        await submit(first, d.send);
        for (const c of rest) {
          c.acceptedAt = first.acceptedAt;
          c.intake5xx = first.intake5xx;
          c.intakeAttempts = first.intakeAttempts;
        }
        await sleep(Math.floor(rand() * 40));
      }
    }),
  );

  // Wait for every case's record to complete, each within the bound of its acceptance.
  const recordOf = async (c: Case): Promise<RemediationRecord | undefined> => {
    if (c.id) return direct.store.get(c.id);
    const records = await direct.store.listByVm(c.vmId.toLowerCase());
    return records[0];
  };
  const lastAccepted = Math.max(...cases.map((c) => c.acceptedAt ?? Date.now()));
  const deadline = lastAccepted + COMPLETION_BOUND_MS;
  let pending: Case[] = cases;
  const completedAt = new Map<Case, number>();
  while (pending.length > 0 && Date.now() < deadline) {
    const states = await Promise.all(pending.map(async (c) => ({ c, r: await recordOf(c) })));
    for (const { c, r } of states) if (r?.state === 'completed') completedAt.set(c, Date.now());
    pending = pending.filter((c) => !completedAt.has(c));
    if (pending.length) await sleep(200);
  }
  // Faults off for the final checks (they read through the direct clients anyway), and let the queues settle.
  for (const p of Object.values(proxies)) p?.setPlan({});
  await host.drain(30_000).catch(() => undefined);

  const records = new Map<Case, RemediationRecord[]>();
  for (const c of cases) records.set(c, await direct.store.listByVm(c.vmId.toLowerCase()));
  const recordFor = (c: Case) => {
    const all = records.get(c) ?? [];
    return c.id ? all.find((r) => r.id === c.id) : all[0];
  };
  const lost = cases
    .filter((c) => recordFor(c)?.state !== 'completed' || (completedAt.get(c) ?? Infinity) - (c.acceptedAt ?? started) > COMPLETION_BOUND_MS)
    .map((c) => ({ kind: c.kind, vm: c.vmId.split('/').at(-1), scenario: c.scenario, id: c.id, state: recordFor(c)?.state ?? 'no record', progress: recordFor(c)?.progress }));
  const allRecords = [...records.values()].flat();
  const onVm = (vmId: string) => (r: { path: string }) => {
    const path = decodeURIComponent(r.path).toLowerCase();
    return path === vmId.toLowerCase() || path.startsWith(`${vmId.toLowerCase()}/`);
  };
  const stuck = allRecords
    .filter((r) => r.state !== 'completed')
    .map((r) => ({
      id: r.id,
      vm: r.vmResourceId.split('/').at(-1),
      state: r.state,
      progress: r.progress,
      // What ARM saw of its Run Command POSTs, and why the worker put it back the last time.
      postsAtEmulator: emu.requests.filter(onVm(r.vmResourceId)).filter((q) => q.method === 'POST').map((q) => `${q.status}${'injected' in q && q.injected ? ' (injected)' : ''}`),
      runsAtEmulator: emu.runCommands.filter((q) => q.vmId.toLowerCase() === r.vmResourceId.toLowerCase()).map((q) => q.payload),
      deferrals: hostLog.filter((l) => l.includes(r.id) && l.includes('remediation.deferred')).length,
      lastDeferral: /"reason":"([^"]*)"/.exec(hostLog.filter((l) => l.includes(r.id) && l.includes('remediation.deferred')).at(-1) ?? '')?.[1] ?? null,
    }));
  const fixesByRunId = new Map<string, number>();
  for (const run of emu.runCommands) if (run.payload === 'fix') fixesByRunId.set(run.parameters['RunId'] ?? '?', (fixesByRunId.get(run.parameters['RunId'] ?? '?') ?? 0) + 1);
  const doubleApplied = [...fixesByRunId].filter(([, count]) => count > 1).map(([runId, count]) => ({ runId, count }));
  const mismatched = allRecords.filter((r) => r.state === 'completed').map((r) => ({ id: r.id, vm: r.vmResourceId.split('/').at(-1), problem: mismatch(r) })).filter((m) => m.problem !== null);
  // Alert-driven VMs: exactly one remediation each, however often the intake was retried.
  const extraRecords = cases.filter((c) => c.kind !== 'manual' && (records.get(c)?.length ?? 0) > 1).map((c) => ({ vm: c.vmId.split('/').at(-1), records: records.get(c)?.length }));
  const statuses = allRecords.reduce<Record<string, number>>((acc, r) => {
    const key = r.state === 'completed' ? r.outcome.status : r.state;
    acc[key] = (acc[key] ?? 0) + 1;
    return acc;
  }, {});
  const poison = (await direct.store.listPoison()).filter((p) => allRecords.some((r) => r.id === p.key)).length;

  const tcp = Object.fromEntries(
    Object.entries(proxies).map(([name, p]) => {
      const byKind: Record<string, number> = {};
      for (const c of p?.connections ?? []) byKind[c.fault.kind] = (byKind[c.fault.kind] ?? 0) + 1;
      return [name, { connections: p?.connections.length ?? 0, ...byKind }];
    }),
  );
  const armStatuses = emu.requests.reduce<Record<string, number>>((acc, r) => (r.status === 429 || r.status >= 500 ? ((acc[r.status] = (acc[r.status] ?? 0) + 1), acc) : acc), {});
  const logsStatuses = emu.logsRequests.reduce<Record<string, number>>((acc, r) => (r.status === 429 || r.status >= 500 ? ((acc[r.status] = (acc[r.status] ?? 0) + 1), acc) : acc), {});
  const summary = {
    seed: SEED,
    durationMs: Date.now() - started,
    cases: { total: cases.length, manual: cases.filter((c) => c.kind === 'manual').length, alert: cases.filter((c) => c.kind === 'alert').length, workspaceAlert: cases.filter((c) => c.kind === 'workspace-alert').length, nlaWithAllow: cases.filter((c) => c.allow.length > 0).length },
    intake: { attempts: cases.reduce((s, c) => s + c.intakeAttempts, 0), http5xx: cases.reduce((s, c) => s + c.intake5xx, 0) },
    injected: { arm: armInjected, logs: logsInjected, tcp },
    seenAtEmulator: { arm: armStatuses, logs: logsStatuses },
    statuses,
    runCommands: emu.runCommands.length,
    fixRuns: [...fixesByRunId.values()].reduce((s, v) => s + v, 0),
    maxConcurrentRunsPerVm: emu.maxConcurrentRunsPerVm,
    lost: lost.length,
    doubleApplied: doubleApplied.length,
    mismatched: mismatched.length,
    stuck: stuck.length,
    extraAlertRecords: extraRecords.length,
    poison,
    workerErrors: hostLog.filter((l) => l.includes('invocation failed')).length,
  };
  console.info(`fault soak: ${JSON.stringify(summary)}`);
  if (lost.length || doubleApplied.length || mismatched.length || stuck.length) {
    console.info(`fault soak details: ${JSON.stringify({ lost, doubleApplied, mismatched, stuck, extraRecords })}`);
  }

  expect(cases.length).toBeGreaterThanOrEqual(80);
  expect(lost).toEqual([]);
  expect(doubleApplied).toEqual([]);
  expect(mismatched).toEqual([]);
  expect(stuck).toEqual([]);
  expect(extraRecords).toEqual([]);
  // The soak did inject faults of each kind.
  expect(armStatuses['429'] ?? 0).toBeGreaterThan(0);
  expect(armStatuses['503'] ?? 0).toBeGreaterThan(0);
  expect(Object.values(proxies).every((p) => (p?.connections ?? []).some((c) => c.fault.kind !== 'pass'))).toBe(true);
  expect(Date.now() - started).toBeLessThan(170_000);
}, 180_000);
