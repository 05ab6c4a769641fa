/**
 * The guest firewall and listener-port causes, end to end over real sockets: the real HTTP
 * handler and queue worker, Azurite, and the emulator running the real payloads under
 * PowerShell. Remote clients go through the guest firewall, the loopback handshake does not:
 * so the VM's own handshake passes before and after, and only the emulator's oracle (a remote
 * client's view) tells the firewall was the problem.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { scenarioVm, windowsScenario, type MatrixScenario, type WindowsScenario } from '../../emulator/fleet.js';
import { startLocalStack, type LocalStack } from '../../demo/stack.js';
import { handshakeVerdict } from '../../src/core/diagnose.js';
import type { RemediationRecord } from '../../src/core/outcome.js';
import { requirePowerShellForFile } from '../support/powershell.js';

requirePowerShellForFile('firewall and port e2e');

const SUB = '00000000-0000-0000-0000-00000000f1e0';
let stack: LocalStack;
let counter = 0;

beforeAll(async () => {
  stack = await startLocalStack({ emulator: { runLatencyMs: 30 } });
});
afterAll(async () => {
  await stack?.stop();
});

function addVm(scenario: WindowsScenario | MatrixScenario): string {
  const name = `vm-fw-${++counter}`;
  const spec = scenarioVm('healthy', { subscriptionId: SUB, resourceGroup: 'rg-fw', name });
  return stack.emulator.addVm({ ...spec, windows: windowsScenario(scenario, { computerName: spec.computerName ?? name, seed: `${scenario}-${counter}` }) });
}

async function repair(vmResourceId: string): Promise<RemediationRecord & { state: 'completed' }> {
  const response = await stack.post({ vmResourceId, mode: 'repair' });
  expect(response.status, JSON.stringify(response.body)).toBe(202);
  const record = await stack.waitForCompletion((response.body as { id: string }).id);
  if (record.state !== 'completed') throw new Error(JSON.stringify(record));
  return record;
}

const changed = (record: RemediationRecord & { state: 'completed' }) => ('actions' in record.outcome ? (record.outcome.actions ?? []).filter((a) => a.changed).map((a) => a.id) : []);
const rules = (vm: string) => stack.emulator.vm(vm).windows?.firewall.rules ?? [];

describe('guest firewall', () => {
  it('built-in Remote Desktop rules disabled: enabled again, nothing else touched, no restart', async () => {
    const vm = addVm('firewall-rdp-rules-disabled');
    const before = rules(vm);
    expect(stack.emulator.vm(vm).rdp).toMatchObject({ connectable: false });
    expect(stack.emulator.vm(vm).rdp?.problems).toContain('firewall-blocks-port');

    const record = await repair(vm);
    expect(record.outcome.status, JSON.stringify(record.outcome)).toBe('fixed');
    expect(changed(record)).toEqual(['enable-rdp-firewall-rules']);
    if (record.outcome.status !== 'fixed') return;
    expect(record.outcome.findings.filter((f) => f.severity === 'blocking').map((f) => f.code)).toEqual(['firewall-rdp-rules-disabled']);
    expect(record.outcome.after.firewall.portAdmitted).toBe(true);
    // Loopback is not filtered: the VM's own handshake worked throughout.
    expect(handshakeVerdict(record.outcome.before, new Date()).kind).toBe('tls');
    expect(handshakeVerdict(record.outcome.after, new Date()).kind).toBe('tls');
    expect(stack.emulator.vm(vm).rdp?.connectable).toBe(true);

    // Only the user-mode TCP/UDP rules changed, and only their enabled state.
    const after = rules(vm);
    const diff = after.filter((rule) => JSON.stringify(rule) !== JSON.stringify(before.find((b) => b.name === rule.name)));
    expect(diff.map((r) => r.name).sort()).toEqual(['RemoteDesktop-UserMode-In-TCP', 'RemoteDesktop-UserMode-In-UDP']);
    expect(diff.map((r) => ({ ...r, enabled: false }))).toEqual(before.filter((b) => diff.some((d) => d.name === b.name)));
    expect(after).toHaveLength(before.length);
  });

  it('custom PortNumber without a rule: one rule for TermService on that port only', async () => {
    const vm = addVm('custom-port-no-rule');
    const before = rules(vm);
    const record = await repair(vm);
    expect(record.outcome.status, JSON.stringify(record.outcome)).toBe('fixed');
    expect(changed(record)).toEqual(['enable-rdp-firewall-rules']);
    const added = rules(vm).filter((r) => !before.some((b) => b.name === r.name));
    expect(added).toHaveLength(1);
    expect(added[0]).toMatchObject({ direction: 'Inbound', action: 'Allow', protocol: 'TCP', localPorts: ['3390'], service: 'termservice', enabled: true });
    expect(rules(vm).filter((r) => before.some((b) => b.name === r.name))).toEqual(before);
    expect(stack.emulator.vm(vm).rdp?.connectable).toBe(true);
  });

  it('a firewall Group Policy manages: reported and refused, the VM untouched', async () => {
    const vm = addVm('firewall-gpo');
    const before = stack.emulator.vm(vm).windows;
    const record = await repair(vm);
    if (record.outcome.status !== 'not-fixed') throw new Error(JSON.stringify(record.outcome));
    expect(record.outcome.reason).toMatch(/enable-rdp-firewall-rules refused \(gpo-enforced\)/);
    expect(record.outcome.plan.refused.map((r) => r.id)).toEqual(['enable-rdp-firewall-rules']);
    expect(stack.emulator.vm(vm).windows?.firewall).toEqual(before?.firewall);
  });
});

describe('listener port', () => {
  it('PortNumber changed but TermService not restarted: a restart makes it listen there, and the port is admitted', async () => {
    const vm = addVm('port-changed-not-restarted');
    const record = await repair(vm);
    expect(record.outcome.status, JSON.stringify(record.outcome)).toBe('fixed');
    if (record.outcome.status !== 'fixed') return;
    expect(record.outcome.findings.filter((f) => f.severity === 'blocking').map((f) => f.code)).toContain('rdp-not-listening');
    expect(changed(record)).toContain('restart-rdp-services');
    expect(record.outcome.after.rdp).toMatchObject({ portNumber: 3390, listening: true });
    expect(handshakeVerdict(record.outcome.before, new Date()).kind).toBe('failed');
    expect(handshakeVerdict(record.outcome.after, new Date()).kind).toBe('tls');
    expect(stack.emulator.vm(vm).rdp?.connectable).toBe(true);
  });

  it('a listener bound to one adapter: loopback refused, the adapter address accepts, nothing to do', async () => {
    const vm = addVm('listener-bound-to-adapter');
    const record = await repair(vm);
    expect(record.outcome.status, JSON.stringify(record.outcome)).toBe('healthy');
    if (record.outcome.status !== 'healthy') return;
    const attempts = record.outcome.before.handshake?.attempts ?? [];
    expect(attempts.map((a) => [a.address, a.stage])).toEqual([
      ['127.0.0.1', 'connect'],
      ['10.0.0.4', 'done'],
    ]);
  });
});
