/**
 * Alerts in, exactly one remediation per affected VM out: the real webhook handler, the alert
 * and remediation queue workers on Azurite, the real SDKs against the emulator.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RemediationRecord } from '../../src/core/outcome.js';
import { scenarioVm, type Scenario } from '../../emulator/fleet.js';
import { startLocalStack, type LocalStack } from '../../demo/stack.js';
import { alertId, logAlertV2 } from '../../demo/alert-payloads.js';
import { requirePowerShellForFile } from '../support/powershell.js';

// Every test here runs the real payloads through the emulator.
requirePowerShellForFile('alerts e2e');

const SUB = '00000000-0000-0000-0000-0000000000a1';
let stack: LocalStack;
let n = 0;

beforeAll(async () => {
  stack = await startLocalStack({ emulator: { runLatencyMs: 30 }, settings: { ALERT_COOLDOWN_MINUTES: '30' } });
});
afterAll(async () => {
  await stack?.stop();
});

const addVm = (scenario: Scenario, extra: { runLatencyMs?: number; scaleSet?: { name: string; instanceId: string } } = {}) =>
  stack.emulator.addVm(scenarioVm(scenario, { subscriptionId: SUB, resourceGroup: 'rg-alerts', name: `vm-a${++n}`, ...extra }));
const runsOn = (vm: string) => stack.emulator.runCommands.filter((r) => r.vmId.toLowerCase() === vm.toLowerCase()).map((r) => r.payload);

/** Waits for the alert queue and the remediation queue to empty. */
const settle = () => stack.host.drain(60_000);

async function recordsFor(vm: string): Promise<RemediationRecord[]> {
  const { getServices } = await import('../../src/app/services.js');
  return getServices().store.listByVm(vm.toLowerCase());
}

describe('POST /api/alerts', () => {
  it('accepts a Fired alert for a VM with 202 and remediates it', async () => {
    const vm = addVm('tls12-disabled');
    const response = await stack.postAlert(logAlertV2({ targets: [vm] }));
    expect(response.status).toBe(202);
    expect(response.body).toMatchObject({ status: 'accepted', targets: { vms: [vm.replace('resourcegroups', 'resourceGroups')] } });
    await settle();
    const records = await recordsFor(vm);
    expect(records.map((r) => r.state === 'completed' && r.outcome.status)).toEqual(['fixed']);
    expect(records[0]?.source).toBe('alert');
    // A VM-targeted alert has no Logs rows: the record keeps which alert, rule and window.
    expect(records[0]?.alert).toMatchObject({ monitoringService: 'Log Alerts V2', logs: [] });
    expect(records[0]?.alert?.alertId).toMatch(/^\/subscriptions\//);
    expect(runsOn(vm)).toEqual(['probe', 'fix']);
  });

  it('ignores Resolved with 200 and starts nothing', async () => {
    const vm = addVm('tls12-disabled');
    const response = await stack.postAlert(logAlertV2({ targets: [vm], condition: 'Resolved' }));
    expect(response).toMatchObject({ status: 200, body: { status: 'ignored', reason: 'resolved' } });
    await settle();
    expect(await recordsFor(vm)).toEqual([]);
  });

  it.each([
    ['not JSON', '{"schemaId":'],
    ['not the common schema', { data: { essentials: {} } }],
    ['no essentials', { schemaId: 'azureMonitorCommonAlertSchema', data: {} }],
    ['essentials without alertId', { schemaId: 'azureMonitorCommonAlertSchema', data: { essentials: { monitorCondition: 'Fired' } } }],
  ])('rejects %s with 400 and a reason (not retried by action groups)', async (_label, body) => {
    const response = await stack.postAlert(body);
    expect(response.status).toBe(400);
    expect(response.body).toMatchObject({ error: { code: 'MalformedAlert' } });
  });
});

describe('exactly once per VM', () => {
  it('turns repeated deliveries of one alert into one job and counts the duplicates', async () => {
    const vm = addVm('expired-self-signed-cert', { runLatencyMs: 300 });
    const body = logAlertV2({ targets: [vm], alertId: alertId() });
    // The action group retries; several copies arrive together.
    const responses = await Promise.all([1, 2, 3, 4].map(() => stack.postAlert(body)));
    expect(responses.map((r) => r.status)).toEqual([202, 202, 202, 202]);
    await settle();
    const records = await recordsFor(vm);
    expect(records).toHaveLength(1);
    expect(records[0]).toMatchObject({ state: 'completed', duplicates: 3 });
    expect(runsOn(vm)).toEqual(['probe', 'fix']);
  });

  it('absorbs a re-fire while the remediation runs and during the cooldown', async () => {
    const vm = addVm('key-file-acl', { runLatencyMs: 400 });
    await stack.postAlert(logAlertV2({ targets: [vm] }));
    for (let i = 0; i < 300 && !stack.emulator.vm(vm).runInProgress; i++) await new Promise((r) => setTimeout(r, 10));
    // A new alert instance for the same VM while the first remediation runs …
    await stack.postAlert(logAlertV2({ targets: [vm] }));
    await settle();
    // … and another after it finished, inside the cooldown.
    await stack.postAlert(logAlertV2({ targets: [vm] }));
    await settle();
    const records = await recordsFor(vm);
    expect(records).toHaveLength(1);
    expect(records[0]?.duplicates).toBe(2);
    expect(runsOn(vm)).toEqual(['probe', 'fix']);
  });

  it('handles a mixed batch of VMs, scale set instances and other resources in one alert', async () => {
    const vm = addVm('termservice-stopped');
    const vmss = addVm('missing-cert', { scaleSet: { name: `ss-a${n}`, instanceId: '4' } });
    const storage = `/subscriptions/${SUB}/resourceGroups/rg-alerts/providers/Microsoft.Storage/storageAccounts/sa1`;
    const response = await stack.postAlert(logAlertV2({ targets: [vm], resourceIds: [vm.toLowerCase(), vmss.toLowerCase(), storage] }));
    expect(response.status).toBe(202);
    expect((response.body as { targets: { vms: string[]; ignored: string[] } }).targets.ignored).toEqual([storage]);
    await settle();
    for (const target of [vm, vmss]) {
      const records = await recordsFor(target);
      expect(records.map((r) => r.state === 'completed' && r.outcome.status), target).toEqual(['fixed']);
    }
  });
});

describe('workspace-targeted log alerts', () => {
  const WS_GUID = 'c0c0c0c0-0000-4000-8000-0000000000a1';
  const WS_ID = `/subscriptions/${SUB}/resourceGroups/rg-monitor/providers/Microsoft.OperationalInsights/workspaces/law-a1`;
  const event = (vm: string, computer: string, minutesAgo: number, eventId = 1058, source = 'Microsoft-Windows-TerminalServices-RemoteConnectionManager') => ({
    TimeGenerated: new Date(Date.now() - minutesAgo * 60_000),
    _ResourceId: vm.toLowerCase(),
    Computer: computer,
    EventLog: 'System',
    Source: source,
    EventID: eventId,
    RenderedDescription: 'The RD Session Host Server has failed to replace the expired self signed certificate.',
  });

  beforeAll(() => {
    stack.emulator.addWorkspace({ workspaceId: WS_GUID, resourceId: WS_ID });
  });

  it('resolves the VMs through the Logs API over the alert window, narrowed by the Computer dimension', async () => {
    const [a, b, old, other] = [addVm('expired-self-signed-cert'), addVm('key-file-acl'), addVm('tls12-disabled'), addVm('missing-cert')];
    stack.emulator.addEvents(WS_GUID, [event(a, 'WS-A', 2), event(b, 'WS-B', 3, 36870, 'Schannel'), event(old, 'WS-OLD', 90), event(other, 'WS-OTHER', 2)]);
    const response = await stack.postAlert(logAlertV2({ targets: [WS_ID], workspaceGuid: WS_GUID, computers: ['WS-A', 'WS-B', 'WS-OLD'] }));
    expect(response).toMatchObject({ status: 202, body: { targets: { vms: [], workspace: WS_ID.toLowerCase() } } });
    await settle();
    expect((await recordsFor(a)).map((r) => r.state === 'completed' && r.outcome.status)).toEqual(['fixed']);
    expect((await recordsFor(b)).map((r) => r.state === 'completed' && r.outcome.status)).toEqual(['fixed']);
    // Each record keeps the alert's own evidence: its Logs row for that VM.
    const [recordB] = await recordsFor(b);
    expect(recordB?.alert).toMatchObject({ monitoringService: 'Log Alerts V2', logs: [{ computer: 'WS-B', count: 1, eventIds: [36870] }] });
    expect(Date.parse(recordB?.alert?.logs[0]?.lastSeen ?? '')).toBeGreaterThan(Date.now() - 10 * 60_000);
    // Outside the 15-minute window, and not named by the alert's dimensions:
    expect(await recordsFor(old)).toEqual([]);
    expect(await recordsFor(other)).toEqual([]);
    expect(stack.emulator.logsRequests.some((r) => r.path.includes(`/workspaces/${WS_GUID}/query`) && r.status === 200)).toBe(true);
  });

  it('acts on the rows of a partial result and logs the partial error', async () => {
    const [kept, dropped] = [addVm('tls12-disabled'), addVm('tls12-disabled')];
    stack.emulator.addEvents(WS_GUID, [event(kept, 'WS-KEPT', 1), event(dropped, 'WS-DROPPED', 1)]);
    stack.emulator.setPartialError(WS_GUID, { message: 'query exceeded a limit', dropResourceIds: [dropped] });
    try {
      await stack.postAlert(logAlertV2({ targets: [WS_ID], workspaceGuid: WS_GUID, computers: ['WS-KEPT', 'WS-DROPPED'] }));
      await settle();
    } finally {
      stack.emulator.setPartialError(WS_GUID, null);
    }
    expect((await recordsFor(kept)).map((r) => r.state === 'completed' && r.outcome.status)).toEqual(['fixed']);
    expect(await recordsFor(dropped)).toEqual([]);
    const processed = stack.logs.map((l) => l.message).filter((m) => m.includes('"alert.processed"')).at(-1) ?? '';
    expect(processed).toContain('partial result');
  });

  it('absorbs injected 429 and 503 from the Logs API', async () => {
    const vm = addVm('key-file-missing');
    stack.emulator.addEvents(WS_GUID, [event(vm, 'WS-RETRY', 1)]);
    stack.emulator.injectLogsFaults({ status: 429, count: 1, retryAfterSeconds: 1 });
    stack.emulator.injectLogsFaults({ status: 503, count: 1, retryAfterSeconds: 1 });
    await stack.postAlert(logAlertV2({ targets: [WS_ID], workspaceGuid: WS_GUID, computers: ['WS-RETRY'] }));
    await settle();
    expect((await recordsFor(vm)).map((r) => r.state === 'completed' && r.outcome.status)).toEqual(['fixed']);
    expect(stack.emulator.logsRequests.filter((r) => r.status === 429 || r.status === 503).length).toBeGreaterThanOrEqual(2);
  });
});

describe('rdp-remediator alert (CLI)', () => {
  it('prints the decision per target, as the webhook would, and writes nothing with --dry-run', async () => {
    const { main } = await import('../../src/cli/main.js');
    const vm = addVm('tls12-disabled');
    const dir = mkdtempSync(join(tmpdir(), 'alert-cli-'));
    const storage = `/subscriptions/${SUB}/resourceGroups/rg-alerts/providers/Microsoft.Storage/storageAccounts/sa2`;
    const payload = join(dir, 'alert.json');
    writeFileSync(payload, JSON.stringify(logAlertV2({ targets: [vm], resourceIds: [storage] })));
    const out: string[] = [];
    const io = { out: (s: string) => out.push(s), err: () => undefined };
    expect(await main(['alert', payload, '--dry-run'], io)).toBe(0);
    expect(out.join('\n')).toMatch(/dry run[\s\S]*accepted .*virtualMachines\/vm-a\d+[\s\S]*ignored .*sa2 {2}\(not a virtual machine\)/);
    expect(await recordsFor(vm)).toEqual([]);

    // For real: the job goes onto the queue, as from the webhook; a second run is deduplicated.
    out.length = 0;
    expect(await main(['alert', payload, '--json'], io)).toBe(0);
    expect(JSON.parse(out[0] ?? '{}')).toMatchObject({ result: { decisions: [{ decision: 'accepted' }, { decision: 'ignored' }] } });
    await settle();
    out.length = 0;
    await main(['alert', payload], io);
    expect(out.join('\n')).toMatch(/deduplicated/);
    expect((await recordsFor(vm)).map((r) => r.state === 'completed' && r.outcome.status)).toEqual(['fixed']);

    const ignoredFile = join(dir, 'resolved.json');
    writeFileSync(ignoredFile, JSON.stringify(logAlertV2({ targets: [vm], condition: 'Resolved' })));
    out.length = 0;
    expect(await main(['alert', ignoredFile], io)).toBe(0);
    expect(out.join('')).toContain('ignored: resolved');
    writeFileSync(ignoredFile, '{"schemaId": "something-else"}');
    expect(await main(['alert', ignoredFile], io)).toBe(65);
  });
});

describe('Azure limits', () => {
  it('absorbs injected 429 and 503 from ARM without failing a job', async () => {
    const vm = addVm('stale-binding');
    stack.emulator.injectArmFaults({ status: 503, count: 1, retryAfterSeconds: 1, match: 'read' });
    stack.emulator.injectArmFaults({ status: 429, count: 2, retryAfterSeconds: 1, match: 'write' });
    await stack.postAlert(logAlertV2({ targets: [vm] }));
    await settle();
    expect((await recordsFor(vm)).map((r) => r.state === 'completed' && r.outcome.status)).toEqual(['fixed']);
  });
});
