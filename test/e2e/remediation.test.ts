/**
 * End to end over real sockets: the real HTTP handlers and queue worker, the real Azure SDKs,
 * Azurite for queues and tables, and the local Azure emulator, which runs the real payloads under PowerShell.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RemediationRecord } from '../../src/core/outcome.js';
import { scenarioVm, type Scenario } from '../../emulator/fleet.js';
import { startLocalStack, type LocalStack } from '../../demo/stack.js';
import { requirePowerShellForFile } from '../support/powershell.js';

// Every test here runs the real payloads through the emulator.
requirePowerShellForFile('remediation e2e');

const SUB = '00000000-0000-0000-0000-00000000e2e0';
let stack: LocalStack;
let counter = 0;

beforeAll(async () => {
  // Busy retries (n × 0.05 s, 20 of them) outlast another command's run on the VM.
  stack = await startLocalStack({ emulator: { runLatencyMs: 30 }, settings: { RUN_COMMAND_BUSY_RETRIES: '20' } });
});
afterAll(async () => {
  await stack?.stop();
});

function addVm(scenario: Scenario, extra: Parameters<typeof scenarioVm>[1] extends infer T ? Partial<T> : never = {}): string {
  return stack.emulator.addVm(scenarioVm(scenario, { subscriptionId: SUB, resourceGroup: 'rg-e2e', name: `vm-${scenario}-${++counter}`, ...extra }));
}

async function remediate(vmResourceId: string, body: Record<string, unknown> = {}): Promise<RemediationRecord> {
  const response = await stack.post({ vmResourceId, mode: 'repair', ...body });
  expect(response.status, JSON.stringify(response.body)).toBe(202);
  const { id, statusUrl } = response.body as { id: string; statusUrl: string };
  expect(statusUrl).toBe(`http://localhost:7071/api/remediations/${id}`);
  expect(response.headers.location).toBe(statusUrl);
  return stack.waitForCompletion(id);
}

const payloadsRunOn = (vmId: string) => stack.emulator.runCommands.filter((r) => r.vmId.toLowerCase() === vmId.toLowerCase()).map((r) => r.payload);
const changedActions = (record: RemediationRecord) =>
  record.state === 'completed' && 'actions' in record.outcome ? (record.outcome.actions ?? []).filter((a) => a.changed).map((a) => a.id) : [];

describe('each root cause ends fixed, with exactly a probe and one fix', () => {
  it.each([
    ['expired-self-signed-cert', ['regenerate-self-signed-cert', 'restart-rdp-services']],
    ['missing-cert', ['regenerate-self-signed-cert', 'restart-rdp-services']],
    ['stale-binding', ['remove-stale-cert-binding', 'restart-rdp-services']],
    ['key-file-acl', ['repair-key-acl', 'restart-rdp-services']],
    ['machinekeys-folder-acl', ['repair-key-acl', 'restart-rdp-services']],
    ['key-file-missing', ['regenerate-self-signed-cert', 'restart-rdp-services']],
    ['tls12-disabled', ['enable-tls12-server', 'restart-rdp-services']],
    ['termservice-stopped', ['restart-rdp-services']],
  ] as const)('%s', async (scenario, actions) => {
    const vm = addVm(scenario);
    expect(stack.emulator.vm(vm).rdp?.connectable).toBe(false);
    const record = await remediate(vm);
    expect(record.state === 'completed' && record.outcome.status, JSON.stringify(record)).toBe('fixed');
    expect(changedActions(record)).toEqual(actions);
    expect(record.state === 'completed' && record.outcome.runCommands).toBe(2);
    expect(payloadsRunOn(vm)).toEqual(['probe', 'fix']);
    // The emulator's own ground truth, independent of the app's diagnosis.
    expect(stack.emulator.vm(vm).rdp?.connectable).toBe(true);
  });
});

describe('no changes where none are due', () => {
  it.each(['healthy', 'ca-cert-bound'] as const)('%s ends healthy with one call', async (scenario) => {
    const vm = addVm(scenario);
    const before = stack.emulator.vm(vm).windows;
    const record = await remediate(vm);
    expect(record.state === 'completed' && record.outcome.status).toBe('healthy');
    expect(payloadsRunOn(vm)).toEqual(['probe']);
    expect(stack.emulator.vm(vm).windows).toEqual(before);
  });

  it('diagnose mode changes nothing and reports the plan', async () => {
    const vm = addVm('expired-self-signed-cert');
    const before = stack.emulator.vm(vm).windows;
    const record = await remediate(vm, { mode: 'diagnose' });
    if (record.state !== 'completed' || record.outcome.status !== 'not-fixed') throw new Error(JSON.stringify(record));
    expect(record.outcome.reason).toContain('diagnose mode');
    expect(record.outcome.plan.actions.map((a) => a.id)).toEqual(['regenerate-self-signed-cert', 'restart-rdp-services']);
    expect(payloadsRunOn(vm)).toEqual(['probe']);
    expect(stack.emulator.vm(vm).windows).toEqual(before);
  });

  it('a VM tagged diagnose is not repaired even when repair is asked for', async () => {
    const vm = addVm('tls12-disabled', { tags: { 'rdp-remediator-mode': 'diagnose' } });
    const record = await remediate(vm);
    expect(record.state === 'completed' && record.outcome.status).toBe('not-fixed');
    expect(payloadsRunOn(vm)).toEqual(['probe']);
  });

  it('a VM tagged off is skipped without any Run Command', async () => {
    const vm = addVm('tls12-disabled', { tags: { 'RDP-Remediator-Mode': 'off' } });
    const record = await remediate(vm);
    expect(record.state === 'completed' && record.outcome).toMatchObject({ status: 'skipped', reason: 'policy-off' });
    expect(payloadsRunOn(vm)).toEqual([]);
  });
});

describe('VMs Run Command cannot reach', () => {
  it.each([
    ['deallocated', 'not-running'],
    ['stopped', 'not-running'],
    ['agent-not-ready', 'agent-not-ready'],
    ['linux', 'linux'],
  ] as const)('%s is skipped with reason %s and no Run Command', async (scenario, reason) => {
    const vm = addVm(scenario);
    const record = await remediate(vm);
    expect(record.state === 'completed' && record.outcome).toMatchObject({ status: 'skipped', reason });
    expect(payloadsRunOn(vm)).toEqual([]);
  });

  it('an agent that stops reporting during the run fails with agent-not-ready', async () => {
    const vm = addVm('expired-self-signed-cert', { runLatencyMs: 400 });
    const accepted = await stack.post({ vmResourceId: vm, mode: 'repair' });
    // The instance view said Ready; the agent then goes quiet while the probe runs, which
    // Azure reports as a failed operation (VMAgentStatusCommunicationError).
    for (let i = 0; i < 300 && !stack.emulator.vm(vm).runInProgress; i++) await new Promise((r) => setTimeout(r, 10));
    stack.emulator.setAgentReady(vm, false);
    const record = await stack.waitForCompletion((accepted.body as { id: string }).id);
    expect(record.state === 'completed' && record.outcome).toMatchObject({ status: 'failed', error: { kind: 'agent-not-ready' }, runCommands: 1 });
    expect(stack.emulator.runCommands.filter((r) => r.vmId === vm).map((r) => r.errorCode)).toEqual(['VMAgentStatusCommunicationError']);
  });

  it('an unknown VM fails with not-found', async () => {
    const record = await remediate(`/subscriptions/${SUB}/resourceGroups/rg-e2e/providers/Microsoft.Compute/virtualMachines/does-not-exist`);
    expect(record.state === 'completed' && record.outcome).toMatchObject({ status: 'failed', error: { kind: 'not-found' } });
  });

  it('a scale set instance is remediated through its own endpoints', async () => {
    const vm = stack.emulator.addVm(scenarioVm('expired-self-signed-cert', { subscriptionId: SUB, resourceGroup: 'rg-e2e', scaleSet: { name: 'vmss-e2e', instanceId: '3' } }));
    const record = await remediate(vm.toLowerCase());
    expect(record.state === 'completed' && record.outcome.status).toBe('fixed');
    expect(stack.emulator.requests.some((r) => /virtualMachineScaleSets\/vmss-e2e\/virtualMachines\/3\/runCommand/i.test(r.path))).toBe(true);
  });
});

describe('security-lowering actions', () => {
  it('are refused without permission, leaving the VM untouched', async () => {
    const vm = addVm('nla-dc-unreachable');
    const before = stack.emulator.vm(vm).windows;
    const record = await remediate(vm);
    if (record.state !== 'completed' || record.outcome.status !== 'not-fixed') throw new Error(JSON.stringify(record));
    expect(record.outcome.plan.refused).toMatchObject([{ id: 'disable-nla', reason: 'needs-permission' }]);
    expect(payloadsRunOn(vm)).toEqual(['probe']);
    expect(stack.emulator.vm(vm).windows).toEqual(before);
  });

  it('run with the request\'s allow and are recorded with their restore, due 8 hours (the default) after the fix was posted', async () => {
    const vm = addVm('nla-dc-unreachable');
    const record = await remediate(vm, { allow: ['disable-nla'] });
    if (record.state !== 'completed' || record.outcome.status !== 'fixed') throw new Error(JSON.stringify(record));
    expect(record.outcome.securityChanges).toMatchObject([{ action: 'disable-nla', restore: { action: 'restore-rdp-security', parameters: { RestoreUserAuthentication: '1' } } }]);
    const expiresAt = record.outcome.securityChanges[0]?.expiresAt ?? '';
    expect(Date.parse(expiresAt) - Date.parse(record.progress?.fixPostedAt ?? '')).toBe(8 * 3_600_000);
    const { getServices } = await import('../../src/app/services.js');
    expect(await getServices().store.listRelaxationsDue(new Date(Date.parse(expiresAt)))).toContainEqual({ dueAt: expiresAt, remediationId: record.id, vmResourceId: record.vmResourceId });
    expect(stack.emulator.vm(vm).rdp?.connectable).toBe(true);
  });

  it('run with the VM\'s allow tag', async () => {
    const vm = addVm('nla-dc-unreachable', { tags: { 'rdp-remediator-allow': 'disable-nla' } });
    const record = await remediate(vm);
    expect(record.state === 'completed' && record.outcome.status).toBe('fixed');
  });
});

describe('one remediation per VM at a time', () => {
  it('refuses a second request while the first runs, and never runs two commands at once', async () => {
    const vm = addVm('expired-self-signed-cert', { runLatencyMs: 600 });
    const first = await stack.post({ vmResourceId: vm, mode: 'repair' });
    const firstId = (first.body as { id: string }).id;
    // Wait until the worker holds the VM.
    for (let i = 0; i < 200 && !stack.emulator.vm(vm).runInProgress; i++) await new Promise((r) => setTimeout(r, 10));
    const second = await stack.post({ vmResourceId: vm, mode: 'repair' });
    expect(second.status).toBe(409);
    expect(second.body).toMatchObject({ error: { code: 'VmBusy', activeRemediationId: firstId } });
    const record = await stack.waitForCompletion(firstId);
    expect(record.state === 'completed' && record.outcome.status).toBe('fixed');
    expect(payloadsRunOn(vm)).toEqual(['probe', 'fix']);
  });

  it('waits out a 409 Conflict from ARM caused by someone else\'s Run Command', async () => {
    // Someone else's command runs for 2 s, longer than the worker takes to get to the VM; ours then run at the default latency.
    const vm = addVm('tls12-disabled', { runLatencyMs: 2_000 });
    // Someone else's command is running on the VM when the worker gets there.
    const foreign = fetch(`${stack.emulator.armEndpoint}${vm}/runCommand?api-version=2026-04-01`, {
      method: 'POST',
      headers: { authorization: `Bearer ${stack.emulator.issueToken()}`, 'content-type': 'application/json' },
      body: JSON.stringify({ commandId: 'RunPowerShellScript', script: ['Get-Date'] }),
    });
    expect((await foreign).status).toBe(202);
    stack.emulator.setRunLatency(vm, undefined);
    const record = await remediate(vm);
    expect(record.state === 'completed' && record.outcome.status).toBe('fixed');
    expect(stack.emulator.requests.some((r) => r.status === 409 && r.errorCode === 'Conflict' && r.path.toLowerCase().startsWith(vm.toLowerCase()))).toBe(true);
  });
});

describe('throttling', () => {
  it('absorbs 429 responses with Retry-After on reads and writes', async () => {
    const vm = addVm('key-file-acl');
    stack.emulator.injectArmFaults({ status: 429, count: 2, retryAfterSeconds: 1, match: 'write' });
    stack.emulator.injectArmFaults({ status: 429, count: 1, retryAfterSeconds: 1, match: 'read' });
    const record = await remediate(vm);
    expect(record.state === 'completed' && record.outcome.status).toBe('fixed');
    expect(stack.emulator.requests.filter((r) => r.status === 429 && r.injected).length).toBeGreaterThanOrEqual(3);
  });
});

describe('HTTP intake', () => {
  it.each([
    ['{not json', 400, 'body'],
    [{ mode: 'repair' }, 400, 'vmResourceId'],
    [{ vmResourceId: `/subscriptions/${SUB}/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/x`, mode: 'nuke' }, 400, 'mode'],
    [{ vmResourceId: `/subscriptions/${SUB}/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/x`, allow: ['disable-firewall'] }, 400, 'allow.0'],
    [{ vmResourceId: `/subscriptions/${SUB}/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/x` }, 422, 'vmResourceId'],
  ])('%j → %i naming %s', async (body, status, field) => {
    const response = await stack.post(body);
    expect(response.status).toBe(status);
    expect(response.body).toMatchObject({ error: { field } });
  });

  it('GET answers 400 for a malformed id and 404 for an unknown one', async () => {
    expect((await stack.get('nope')).status).toBe(400);
    expect((await stack.get('00000000-0000-4000-8000-000000000000')).status).toBe(404);
  });

  it('the audit trail is queryable by VM', async () => {
    const vm = addVm('healthy');
    await remediate(vm);
    await remediate(vm, { mode: 'diagnose' });
    const { getServices } = await import('../../src/app/services.js');
    const parsed = (await import('../../src/core/resource-id.js')).parseVmResourceId(vm);
    if (!parsed.success) throw parsed.error;
    const history = await getServices().store.listByVm(parsed.data.key);
    expect(history.map((r) => r.state === 'completed' && r.outcome.status)).toEqual(['healthy', 'healthy']);
  });
});
