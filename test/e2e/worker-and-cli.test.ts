/** The queue's edges (poison, malformed messages), the structured log, and the admin CLI. */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { queueClient } from '../../src/adapters/storage.js';
import { main } from '../../src/cli/main.js';
import { ALERT_POISON_QUEUE_NAME, POISON_QUEUE_NAME, QUEUE_NAME } from '../../src/config.js';
import type { RemediationRecord } from '../../src/core/outcome.js';
import { scenarioVm } from '../../emulator/fleet.js';
import { startLocalStack, type LocalStack } from '../../demo/stack.js';
import { requirePowerShellForFile } from '../support/powershell.js';

// Every test here runs the real payloads through the emulator.
requirePowerShellForFile('worker-and-cli e2e');

const SUB = '00000000-0000-0000-0000-0000000000c1';
let stack: LocalStack;

beforeAll(async () => {
  stack = await startLocalStack();
});
afterAll(async () => {
  await stack?.stop();
});

const base64 = (o: unknown) => Buffer.from(typeof o === 'string' ? o : JSON.stringify(o)).toString('base64');
const connection = () => ({ kind: 'connection-string' as const, connectionString: stack.azurite.connectionString });

describe('queue edges', () => {
  it('records a job the host moved to the poison queue as failed, so no request ends without an outcome', async () => {
    const vm = stack.emulator.addVm(scenarioVm('healthy', { subscriptionId: SUB, resourceGroup: 'rg', name: 'vm-poison' }));
    const id = randomUUID();
    await queueClient(connection(), POISON_QUEUE_NAME).sendMessage(
      base64({ v: 1, id, vmResourceId: vm, mode: 'repair', allow: [], source: 'manual', requestedAt: new Date().toISOString() }),
    );
    const record = await stack.waitForCompletion(id);
    expect(record.state === 'completed' && record.outcome).toMatchObject({ status: 'failed', error: { kind: 'poison' } });
    expect(stack.emulator.runCommands.filter((r) => r.vmId === vm)).toEqual([]);
  });

  it('records an alert the alert worker gave up on, with the reason, in the audit trail', async () => {
    const alert = { v: 1, receivedAt: new Date().toISOString(), alert: { alertId: '/subscriptions/x/providers/Microsoft.AlertsManagement/alerts/poisoned', alertRule: null, monitoringService: 'Log Alerts V2', firedAt: new Date().toISOString(), vms: [], workspace: null, otherTargets: [], window: { start: '2026-01-01T00:00:00Z', end: '2026-01-01T00:15:00Z' }, computers: [] } };
    await queueClient(connection(), ALERT_POISON_QUEUE_NAME).sendMessage(base64(alert));
    const { getServices } = await import('../../src/app/services.js');
    for (let i = 0; i < 200 && (await getServices().store.listPoison()).every((p) => p.kind !== 'alert'); i++) await new Promise((r) => setTimeout(r, 25));
    expect(await getServices().store.listPoison()).toEqual(
      expect.arrayContaining([expect.objectContaining({ kind: 'alert', key: alert.alert.alertId, reason: expect.stringContaining('failed on every attempt') as unknown })]),
    );
  });

  it('drops a malformed message after logging it, instead of retrying it into the poison queue', async () => {
    await queueClient(connection(), QUEUE_NAME).sendMessage(base64({ v: 1, id: 'not-a-guid' }));
    await stack.host.drain();
    expect(stack.logs.some((l) => l.level === 'error' && l.message.includes('remediation.invalid-message'))).toBe(true);
    expect((await queueClient(connection(), POISON_QUEUE_NAME).getProperties()).approximateMessagesCount).toBe(0);
  });

  it('logs each outcome as one structured line', async () => {
    const vm = stack.emulator.addVm(scenarioVm('tls12-disabled', { subscriptionId: SUB, resourceGroup: 'rg', name: 'vm-logged' }));
    const { id } = (await stack.post({ vmResourceId: vm, mode: 'repair' })).body as { id: string };
    await stack.waitForCompletion(id);
    // The worker logs the outcome just after it wrote the record.
    let line: string | undefined;
    for (let i = 0; i < 400 && line === undefined; i++) {
      line = stack.logs.map((l) => l.message).find((m) => m.includes('"remediation.completed"') && m.includes(id));
      if (line === undefined) await new Promise((r) => setTimeout(r, 25));
    }
    expect(JSON.parse(line ?? '{}')).toMatchObject({ event: 'remediation.completed', id, status: 'fixed', runCommands: 2, changed: ['enable-tls12-server', 'restart-rdp-services'] });
  });
});

describe('per-VM lock across workers', () => {
  it('lets one of two simultaneous jobs for a VM run and skips the other; never two commands at once', async () => {
    const vm = stack.emulator.addVm(scenarioVm('key-file-acl', { subscriptionId: SUB, resourceGroup: 'rg', name: 'vm-race', runLatencyMs: 300 }));
    const job = (id: string) => base64({ v: 1, id, vmResourceId: vm, mode: 'repair', allow: [], source: 'alert', requestedAt: new Date().toISOString() });
    const ids = [randomUUID(), randomUUID()];
    const queue = queueClient(connection(), QUEUE_NAME);
    await Promise.all(ids.map((id) => queue.sendMessage(job(id))));
    const records = await Promise.all(ids.map((id) => stack.waitForCompletion(id)));
    const statuses = records.map((r) => (r.state === 'completed' ? r.outcome.status : r.state)).sort();
    expect(statuses).toEqual(['fixed', 'skipped']);
    const skipped = records.find((r) => r.state === 'completed' && r.outcome.status === 'skipped');
    expect(skipped?.state === 'completed' && skipped.outcome).toMatchObject({ reason: 'vm-busy' });
    expect(stack.emulator.runCommands.filter((r) => r.vmId === vm).map((r) => r.payload)).toEqual(['probe', 'fix']);
    expect(stack.emulator.maxConcurrentRunsPerVm).toBe(1);
  });
});

describe('rdp-remediator CLI', () => {
  async function cli(argv: string[]) {
    const out: string[] = [];
    const err: string[] = [];
    const code = await main(argv, { out: (s) => out.push(s), err: (s) => err.push(s) });
    return { code, out: out.join('\n'), err: err.join('\n') };
  }

  it('repairs a VM, printing progress and a JSON outcome; exit 0', async () => {
    const vm = stack.emulator.addVm(scenarioVm('expired-self-signed-cert', { subscriptionId: SUB, resourceGroup: 'rg', name: 'vm-cli' }));
    const { code, out, err } = await cli(['remediate', vm, '--mode', 'repair', '--json']);
    expect(code).toBe(0);
    expect(err).toMatch(/running probe payload[\s\S]*plan: regenerate-self-signed-cert → restart-rdp-services[\s\S]*running fix payload/);
    const record = JSON.parse(out) as RemediationRecord;
    expect(record.state === 'completed' && record.outcome.status).toBe('fixed');
    expect(record.source).toBe('cli');
  });

  it('prints a readable outcome and exits non-zero when not fixed', async () => {
    const vm = stack.emulator.addVm(scenarioVm('nla-dc-unreachable', { subscriptionId: SUB, resourceGroup: 'rg', name: 'vm-cli-nla' }));
    const { code, out } = await cli(['remediate', vm, '--mode', 'repair']);
    expect(code).toBe(2);
    expect(out).toContain('outcome: NOT-FIXED');
    expect(out).toContain('disable-nla refused (needs-permission)');
  });

  it('restores what a relaxation lowered (restore <id>), from the records in the app\'s storage; 65 when there is nothing to restore', async () => {
    const vm = stack.emulator.addVm(scenarioVm('nla-dc-unreachable', { subscriptionId: SUB, resourceGroup: 'rg', name: 'vm-cli-restore' }));
    const relaxed = await cli(['remediate', vm, '--mode', 'repair', '--allow', 'disable-nla', '--relax-hours', '1', '--json']);
    expect(relaxed.code).toBe(0);
    const relaxation = JSON.parse(relaxed.out) as RemediationRecord;
    if (relaxation.state !== 'completed' || relaxation.outcome.status !== 'fixed') throw new Error(relaxed.out);
    expect(relaxation.outcome.securityChanges).toMatchObject([{ action: 'disable-nla', expiresAt: expect.any(String) as unknown }]);
    // The domain controller is back; NLA can come back on.
    stack.emulator.updateWindows(vm, (w) => {
      w.domain = { partOfDomain: true, secureChannel: true };
    });
    const restored = await cli(['restore', relaxation.id, '--reason', 'INC-77']);
    expect(restored.code, restored.out + restored.err).toBe(0);
    expect(restored.out).toMatch(/^outcome: RESTORED/);
    expect(restored.out).toContain(`restore of: ${relaxation.id}`);
    expect(restored.out).toContain('restored: UserAuthentication=1');
    expect(restored.err).toMatch(/restoring the security remediation .* lowered: UserAuthentication=1[\s\S]*restored: RDP still passes the checks/);
    expect(stack.emulator.vm(vm).rdp?.connectable).toBe(true);
    const again = await cli(['restore', relaxation.id]);
    expect(again.code).toBe(65);
    expect(again.err).toContain(`remediation ${relaxation.id} was restored by`);
    expect((await cli(['restore', randomUUID()])).code).toBe(65);
    expect((await cli(['restore', 'INC-77'])).code).toBe(64);
  });

  it('exits 3 for a skipped VM and 64 for bad usage', async () => {
    const vm = stack.emulator.addVm(scenarioVm('deallocated', { subscriptionId: SUB, resourceGroup: 'rg', name: 'vm-cli-off' }));
    expect((await cli(['remediate', vm])).code).toBe(3);
    expect((await cli(['remediate', '/not/a/vm'])).code).toBe(64);
    expect((await cli(['remediate', vm, '--allow', 'everything'])).code).toBe(64);
  });

  it('under --json prints a refusal as one {"error"} object on stdout, with the exit code it has without', async () => {
    const refused = await cli(['restore', randomUUID(), '--json']);
    expect(refused.code).toBe(65);
    expect(JSON.parse(refused.out)).toMatchObject({ error: { code: 'RestoreRefused', reason: 'unknown-remediation', storageConfigured: true } });
    const usage = await cli(['remediate', '--json']);
    expect(usage.code).toBe(64);
    expect(JSON.parse(usage.out)).toEqual({ error: { code: 'UsageError', command: 'remediate', message: 'remediate needs a VM resource ID' } });
  });
});
