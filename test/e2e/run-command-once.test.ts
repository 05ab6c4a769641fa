/**
 * Exactly once, for real (issue 9): the real @azure/arm-compute client, through a TCP fault
 * proxy in front of the emulator's HTTPS port (and in front of Azurite), with the real payloads
 * running under PowerShell.
 *
 * (a) The POST's answer is lost: the gateway finds our run in the instance view and returns its
 *     real output; the emulator ran the fix once.
 * (b) A stalled ARM: typed timeouts within the bounds.
 * (c) A stalled Azurite: Table and Queue calls end in typed timeouts within the bounds.
 * (d) A 409 from someone else's run is "busy" (the pipeline's busyRetry waits it out); a 409
 *     right after our own unanswered POST waits for our run instead, and the same payload is
 *     never posted twice.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ArmComputeGateway, type ArmComputeGatewayOptions, type RunCommandPostEvent } from '../../src/adapters/compute.js';
import { StorageJobQueue } from '../../src/adapters/job-queue.js';
import { MonitorLogsGateway } from '../../src/adapters/logs.js';
import { queueClient, tableClient, type StorageConnection } from '../../src/adapters/storage.js';
import { QUEUE_NAME } from '../../src/config.js';
import { parseVmResourceId, type VmRef } from '../../src/core/resource-id.js';
import { ComputeError, DependencyTimeoutError, RunCommandOutcomeUnknownError } from '../../src/errors.js';
import { composePayload } from '../../src/payloads/compose.js';
import { parseFixOutput, parseProbeOutput } from '../../src/payloads/result-line.js';
import { developmentStorageConnectionString } from '../../src/util/development-storage.js';
import { startAzurite, type Azurite } from '../../demo/azurite.js';
import { scenarioVm, type Scenario } from '../../emulator/fleet.js';
import { startEmulator, trustEmulatorCa, type Emulator } from '../../emulator/index.js';
import { startFaultProxy, type FaultPlan, type FaultProxy } from '../support/fault-proxy.js';
import { requirePowerShellForFile } from '../support/powershell.js';

// Every test here runs the real payloads through the emulator.
requirePowerShellForFile('run-command-once e2e');

const SUB = '00000000-0000-0000-0000-0000000000e9';
const RG = 'rg-once';
let emu: Emulator;
let proxy: FaultProxy | undefined;
let counter = 0;

/** Tokens from the emulator, for the audience of the scope asked for (ARM or the Logs API). */
const credential = {
  getToken: (scopes: string | string[]) => {
    const scope = Array.isArray(scopes) ? (scopes[0] ?? '') : scopes;
    return Promise.resolve({ token: emu.issueToken({ resource: scope.replace(/\/\.default$/, '') }), expiresOnTimestamp: Date.now() + 3_600_000 });
  },
};

/** Small bounds so every wait in this file is short; the gateway's logic is the app's. */
const BOUNDS = { tryTimeoutMs: 1_000, maxRetries: 2, retryDelayMs: 20, maxRetryDelayMs: 100, operationTimeoutMs: 3_000, maxRetryAfterMs: 5_000 };
const RECONCILE = { timeoutMs: 5_000, settleMs: 1_000, intervalMs: 25, clockSkewMs: 30_000 };

beforeAll(async () => {
  emu = await startEmulator({ runLatencyMs: 300 });
  trustEmulatorCa(emu.caPem);
});
afterAll(async () => {
  await emu?.stop();
});
afterEach(async () => {
  await proxy?.close();
  proxy = undefined;
});

/** A fresh proxy per test: the SDK keeps connections alive per host:port, so the test's first request opens connection 0. */
async function armThroughProxy(plan: FaultPlan = {}, options: Partial<ArmComputeGatewayOptions> = {}): Promise<ArmComputeGateway> {
  proxy = await startFaultProxy({ target: { port: Number(new URL(emu.armEndpoint).port) }, seed: 9, ...plan });
  return new ArmComputeGateway(credential, {
    endpoint: `https://127.0.0.1:${proxy.port}`,
    audience: 'https://management.azure.com',
    pollIntervalMs: 20,
    bounds: BOUNDS,
    reconcile: RECONCILE,
    ...options,
  });
}

function addVm(scenario: Scenario, extra: { runLatencyMs?: number } = {}): { id: string; ref: VmRef } {
  const id = emu.addVm(scenarioVm(scenario, { subscriptionId: SUB, resourceGroup: RG, name: `vm-once-${++counter}`, ...extra }));
  const parsed = parseVmResourceId(id);
  if (!parsed.success) throw parsed.error;
  return { id, ref: parsed.data };
}

const runsOn = (vmId: string) => emu.runCommands.filter((r) => r.vmId.toLowerCase() === vmId.toLowerCase());
const requestsOn = (vmId: string) => emu.requests.filter((r) => decodeURIComponent(r.path).toLowerCase().startsWith(vmId.toLowerCase()));

const probePayload = (runId: string) => composePayload({ kind: 'probe', parameters: { RunId: runId } });
const fixPayload = (runId: string) => composePayload({ kind: 'fix', parameters: { RunId: runId, Actions: 'enable-tls12-server,restart-rdp-services', DryRun: 'false' } });

async function timed<T>(work: Promise<T>): Promise<{ ms: number; value?: T; error?: unknown }> {
  const started = Date.now();
  try {
    const value = await work;
    return { ms: Date.now() - started, value };
  } catch (error) {
    return { ms: Date.now() - started, error };
  }
}

describe('(a) the POST answer is lost', () => {
  it('finds our fix run in the instance view and returns its real output; the fix ran once', async () => {
    const gateway = await armThroughProxy({ sequence: [{ kind: 'drop-response' }] });
    const { id, ref } = addVm('tls12-disabled');
    expect(emu.vm(id).rdp?.connectable).toBe(false);
    const runId = randomUUID();
    const posted: RunCommandPostEvent[] = [];

    const out = await gateway.runCommand(ref, fixPayload(runId), { onRunCommandPosted: (e) => posted.push(e) });

    // The POST reached ARM and started the run; its 202 never came back.
    expect(proxy?.connections[0]).toMatchObject({ fault: { kind: 'drop-response' } });
    expect(proxy?.connections[0]?.bytesSwallowed).toBeGreaterThan(0);
    expect(out.source).toBe('instance-view');
    expect(out.posts).toEqual({ sent: 1, accepted: 0, refused: 0, ambiguous: 1 });
    expect(posted).toEqual([{ vm: ref.id, runId, payload: 'fix', attempt: 1, outcome: 'ambiguous', statusCode: null }]);
    const fix = parseFixOutput(out.stdout, out.stderr);
    expect(fix.runId).toBe(runId);
    expect(fix.actions.filter((a) => a.changed).map((a) => a.id)).toEqual(['enable-tls12-server', 'restart-rdp-services']);
    // Exactly one fix run, and it is the run whose output came back.
    expect(runsOn(id).map((r) => r.payload)).toEqual(['fix']);
    expect(runsOn(id)[0]?.stdout).toBe(out.stdout);
    expect(requestsOn(id).filter((r) => r.method === 'POST')).toHaveLength(1);
    expect(emu.vm(id).rdp?.connectable).toBe(true);
  });

  it('a connection reset after the request also ends with the one run', async () => {
    // drop-response, then the next connection is reset too: the first instance-view read fails and is retried.
    const gateway = await armThroughProxy({ sequence: [{ kind: 'drop-response' }, { kind: 'reset' }] });
    const { id, ref } = addVm('healthy');
    const runId = randomUUID();
    const out = await gateway.runCommand(ref, probePayload(runId));
    const probe = parseProbeOutput(out.stdout, out.stderr);
    expect(probe.runId).toBe(runId);
    expect(runsOn(id)).toHaveLength(1);
  });

  it('the emulator shows the Run Command extension transitioning, then succeeded with the run\'s StdOut/StdErr', async () => {
    const { id, ref } = addVm('healthy', { runLatencyMs: 400 });
    const gateway = await armThroughProxy();
    const runId = randomUUID();
    const running = gateway.runCommand(ref, probePayload(runId));
    for (let i = 0; i < 200 && !emu.vm(id).runInProgress; i++) await new Promise((r) => setTimeout(r, 5));
    const view = async () => {
      const response = await fetch(`${emu.armEndpoint}${id}/instanceView?api-version=2026-04-01`, { headers: { authorization: `Bearer ${emu.issueToken()}` } });
      return (await response.json()) as { extensions?: { type: string; statuses: { code: string }[]; substatuses?: { code: string; message: string }[] }[]; vmAgent: { extensionHandlers: { type: string }[] } };
    };
    const during = await view();
    expect(during.extensions?.[0]).toMatchObject({ type: 'Microsoft.CPlat.Core.RunCommandWindows', statuses: [{ code: 'ProvisioningState/transitioning' }] });
    expect(during.extensions?.[0]?.substatuses).toBeUndefined();
    expect(during.vmAgent.extensionHandlers.map((h) => h.type)).toEqual(['Microsoft.CPlat.Core.RunCommandWindows']);
    const out = await running;
    const after = await view();
    expect(after.extensions?.[0]).toMatchObject({ statuses: [{ code: 'ProvisioningState/succeeded' }] });
    expect(after.extensions?.[0]?.substatuses).toEqual([
      expect.objectContaining({ code: 'ComponentStatus/StdOut/succeeded', message: out.stdout }),
      expect.objectContaining({ code: 'ComponentStatus/StdErr/succeeded', message: out.stderr }),
    ]);
  });
});

describe('(b) a stalled ARM', () => {
  it('getVm ends in DependencyTimeoutError(arm) within the operation deadline', async () => {
    const gateway = await armThroughProxy({ weights: { stall: 1 } });
    const { ref } = addVm('healthy');
    const result = await timed(gateway.getVm(ref));
    expect(result.error).toBeInstanceOf(DependencyTimeoutError);
    expect(result.error).toMatchObject({ dependency: 'arm' });
    expect(result.ms).toBeLessThan(BOUNDS.operationTimeoutMs + 1_000);
    // Every attempt was a connection that got no answer: the first plus the retries.
    expect(proxy?.connections.length).toBeGreaterThanOrEqual(2);
  }, 15_000);

  it('runCommand ends in RunCommandOutcomeUnknownError (unreadable) within the POST try timeout plus the reconcile bound, and sends the POST once', async () => {
    const gateway = await armThroughProxy({ weights: { stall: 1 } });
    const { id, ref } = addVm('healthy');
    const posted: RunCommandPostEvent[] = [];
    const result = await timed(gateway.runCommand(ref, probePayload(randomUUID()), { onRunCommandPosted: (e) => posted.push(e) }));
    expect(result.error).toBeInstanceOf(RunCommandOutcomeUnknownError);
    expect(result.error).toMatchObject({ reason: 'unreadable', payload: 'probe' });
    expect(result.ms).toBeLessThan(BOUNDS.tryTimeoutMs + RECONCILE.timeoutMs + 1_500);
    expect(posted.map((e) => e.outcome)).toEqual(['ambiguous']);
    expect(runsOn(id)).toEqual([]);
  }, 20_000);
});

describe('(b) a stalled Logs API', () => {
  const WS = '0e0e0e0e-0000-4000-8000-0000000000e9';
  const workspace = { workspaceId: WS, resourceId: `/subscriptions/${SUB}/resourceGroups/rg-mon/providers/Microsoft.OperationalInsights/workspaces/law-once` };
  const window = { start: new Date(Date.now() - 3_600_000).toISOString(), end: new Date().toISOString() };
  const logsThroughProxy = async (plan: FaultPlan) => {
    proxy = await startFaultProxy({ target: { port: Number(new URL(emu.armEndpoint).port) }, ...plan });
    return new MonitorLogsGateway(credential, { endpoint: `https://127.0.0.1:${proxy.port}/v1`, audience: 'https://api.loganalytics.io', bounds: { tryTimeoutMs: 500, maxRetries: 2, retryDelayMs: 20, maxRetryDelayMs: 50, operationTimeoutMs: 2_000 } });
  };
  beforeAll(() => {
    emu.addWorkspace(workspace);
  });

  it('answers through a passing proxy (the control)', async () => {
    const logs = await logsThroughProxy({});
    expect(await logs.findAffectedVms(workspace, window, [])).toEqual({ resourceIds: [], evidence: [], partialError: null });
  });

  it('a hung query ends in DependencyTimeoutError(logs) within the deadline', async () => {
    const logs = await logsThroughProxy({ weights: { stall: 1 } });
    const result = await timed(logs.findAffectedVms(workspace, window, []));
    expect(result.error).toBeInstanceOf(DependencyTimeoutError);
    expect(result.error).toMatchObject({ dependency: 'logs' });
    expect(result.ms).toBeLessThan(2_000 + 500);
  }, 15_000);
});

describe('(c) a stalled Azurite', () => {
  let azurite: Azurite;
  const proxies: FaultProxy[] = [];
  beforeAll(async () => {
    azurite = await startAzurite();
  });
  afterAll(async () => {
    await Promise.all(proxies.map((p) => p.close()));
    await azurite?.stop();
  });

  async function storageThroughProxies(plan: FaultPlan): Promise<StorageConnection> {
    const [table, queue] = await Promise.all([startFaultProxy({ target: { port: azurite.tablePort }, ...plan }), startFaultProxy({ target: { port: azurite.queuePort }, ...plan })]);
    proxies.push(table, queue);
    return { kind: 'connection-string', connectionString: developmentStorageConnectionString({ table: table.port, queue: queue.port }) };
  }

  const bounds = { tryTimeoutMs: 300, maxRetries: 2, retryDelayMs: 20, maxRetryDelayMs: 50, operationTimeoutMs: 1_500 };
  const job = () => ({ id: randomUUID(), vm: addVm('healthy').ref, mode: 'diagnose' as const, allow: [], source: 'manual' as const, requestedAt: new Date().toISOString() });

  it('through a passing proxy, the same clients work (the control)', async () => {
    const connection = await storageThroughProxies({});
    const table = tableClient(connection, 'oncecontrol', bounds);
    await table.createTable();
    await table.createEntity({ partitionKey: 'p', rowKey: 'r', value: 1 });
    expect(await table.getEntity('p', 'r')).toMatchObject({ value: 1 });
    await new StorageJobQueue(queueClient(connection, QUEUE_NAME, bounds), { operationTimeoutMs: bounds.operationTimeoutMs }).enqueue(job());
  });

  it('Table calls end in DependencyTimeoutError(table) within the operation deadline', async () => {
    const connection = await storageThroughProxies({ weights: { stall: 1 } });
    const table = tableClient(connection, 'oncestalled', bounds);
    const calls: (() => Promise<unknown>)[] = [() => table.createTable(), () => table.getEntity('p', 'r'), () => table.createEntity({ partitionKey: 'p', rowKey: randomUUID() })];
    for (const call of calls) {
      const result = await timed(call());
      expect(result.error).toBeInstanceOf(DependencyTimeoutError);
      expect(result.error).toMatchObject({ dependency: 'table' });
      expect(result.ms).toBeLessThan(bounds.operationTimeoutMs + 500);
    }
  }, 20_000);

  it('Queue calls end in DependencyTimeoutError(queue) within the operation deadline', async () => {
    const connection = await storageThroughProxies({ weights: { stall: 1 } });
    const queue = new StorageJobQueue(queueClient(connection, QUEUE_NAME, bounds), { operationTimeoutMs: bounds.operationTimeoutMs });
    for (let i = 0; i < 2; i++) {
      // The second call retries the queue's creation (a failed create is not remembered) and times out again.
      const result = await timed(queue.enqueue(job()));
      expect(result.error).toBeInstanceOf(DependencyTimeoutError);
      expect(result.error).toMatchObject({ dependency: 'queue' });
      expect(result.ms).toBeLessThan(bounds.operationTimeoutMs + 500);
    }
  }, 20_000);
});

describe('(d) 409 Conflict', () => {
  it('from someone else\'s run is busy at once: no instance-view reads, nothing remembered, and the retry after it runs ours', async () => {
    const { id, ref } = addVm('healthy', { runLatencyMs: 600 });
    // Someone else's command (not through the gateway, not one of our payloads) holds the VM.
    const foreign = await fetch(`${emu.armEndpoint}${id}/runCommand?api-version=2026-04-01`, {
      method: 'POST',
      headers: { authorization: `Bearer ${emu.issueToken()}`, 'content-type': 'application/json' },
      body: JSON.stringify({ commandId: 'RunPowerShellScript', script: ['Get-Date'] }),
    });
    expect(foreign.status).toBe(202);
    const gateway = await armThroughProxy();
    const before = requestsOn(id).length;
    const posted: RunCommandPostEvent[] = [];
    const payload = probePayload(randomUUID());
    const result = await timed(gateway.runCommand(ref, payload, { onRunCommandPosted: (e) => posted.push(e) }));
    expect(result.error).toBeInstanceOf(ComputeError);
    expect(result.error).toMatchObject({ kind: 'busy', statusCode: 409 });
    expect(result.ms).toBeLessThan(500);
    expect(posted).toEqual([expect.objectContaining({ outcome: 'refused', statusCode: 409 })]);
    expect(requestsOn(id).slice(before).map((r) => `${r.method} ${r.status}`)).toEqual(['POST 409']);
    // What the pipeline's busyRetry does next: wait, then call again; now it runs.
    for (let i = 0; i < 1000 && emu.vm(id).runInProgress; i++) await new Promise((r) => setTimeout(r, 10));
    const out = await gateway.runCommand(ref, payload);
    expect(out.source).toBe('operation');
    expect(runsOn(id).map((r) => r.payload)).toEqual([null, 'probe']);
  });

  it('right after our own POST whose answer was lost: waits for our run, then sends the refused payload; each payload runs once', async () => {
    // Our probe runs 2.5 s; the gateway looks for it 1.8 s, so the first call cannot tell how it ended.
    const { id, ref } = addVm('tls12-disabled', { runLatencyMs: 2_500 });
    const gateway = await armThroughProxy({ sequence: [{ kind: 'drop-response' }] }, { reconcile: { ...RECONCILE, timeoutMs: 1_800, settleMs: 200 } });
    const runId = randomUUID();
    const first = await timed(gateway.runCommand(ref, probePayload(runId)));
    expect(first.error).toBeInstanceOf(RunCommandOutcomeUnknownError);
    expect(first.error).toMatchObject({ reason: 'still-running', runId, payload: 'probe' });
    expect(emu.vm(id).runInProgress).toBe(true);

    // The fix (same RunId, other payload) meets the 409 of our own probe: not busy, our run is waited for.
    const posted: RunCommandPostEvent[] = [];
    const out = await gateway.runCommand(ref, fixPayload(runId), { onRunCommandPosted: (e) => posted.push(e) });
    expect(posted.map((e) => `${e.outcome} ${e.statusCode}`)).toEqual(['refused 409', 'accepted 202']);
    expect(out.source).toBe('operation');
    expect(parseFixOutput(out.stdout, out.stderr).runId).toBe(runId);
    expect(runsOn(id).map((r) => r.payload)).toEqual(['probe', 'fix']);
    expect(emu.maxConcurrentRunsPerVm).toBeGreaterThanOrEqual(1);
  }, 20_000);

  it('the same payload again after an unknown outcome is never posted: its run is read from the instance view', async () => {
    const { id, ref } = addVm('healthy', { runLatencyMs: 2_500 });
    const gateway = await armThroughProxy({ sequence: [{ kind: 'drop-response' }] }, { reconcile: { ...RECONCILE, timeoutMs: 1_800, settleMs: 200 } });
    const runId = randomUUID();
    const first = await timed(gateway.runCommand(ref, probePayload(runId)));
    expect(first.error).toMatchObject({ reason: 'still-running' });
    const posted: RunCommandPostEvent[] = [];
    // A redelivered job asks for the same probe: the gateway waits for the first one instead.
    const out = await gateway.runCommand(ref, probePayload(runId), { onRunCommandPosted: (e) => posted.push(e) });
    expect(posted).toEqual([]);
    expect(out).toMatchObject({ source: 'instance-view', posts: { sent: 0 } });
    expect(parseProbeOutput(out.stdout, out.stderr).runId).toBe(runId);
    expect(runsOn(id)).toHaveLength(1);
    expect(requestsOn(id).filter((r) => r.method === 'POST')).toHaveLength(1);
  }, 20_000);
});
