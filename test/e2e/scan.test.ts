/**
 * `rdp-remediator scan` against the emulator's fleet: the real CLI, the real ARM SDK and the
 * real probe payload under PowerShell. The scan lists, filters, probes the eligible VMs only,
 * runs nothing but the probe, and writes no records to the app's storage.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { getServices } from '../../src/app/services.js';
import { main, type Io } from '../../src/cli/main.js';
import type { ScanReport } from '../../src/cli/scan-format.js';
import { parseVmResourceId } from '../../src/core/resource-id.js';
import { DEMO_FLEET, scenarioVm, seedDemoFleet, type DemoScenario } from '../../emulator/fleet.js';
import { startLocalStack, type LocalStack } from '../../demo/stack.js';
import { requirePowerShellForFile } from '../support/powershell.js';

requirePowerShellForFile('scan e2e');

const SUB = '00000000-0000-0000-0000-0000000000c5';
const FLEET_GROUP = 'rg-fleet';
const OTHER_GROUP = 'rg-other';
let stack: LocalStack;
let fleet: Record<DemoScenario, string>;
const other: Record<string, string> = {};

beforeAll(async () => {
  stack = await startLocalStack();
  fleet = seedDemoFleet(stack.emulator, { subscriptionId: SUB, resourceGroup: FLEET_GROUP });
  const add = (name: string, scenario: Parameters<typeof scenarioVm>[0], extra: Omit<Parameters<typeof scenarioVm>[1], 'subscriptionId' | 'resourceGroup'> = {}) => {
    other[name] = stack.emulator.addVm(scenarioVm(scenario, { subscriptionId: SUB, resourceGroup: OTHER_GROUP, name, ...extra }));
  };
  add('vm-ops-tls', 'tls12-disabled', { tags: { Team: 'ops', env: 'prod' } });
  add('vm-ops-ok', 'healthy', { tags: { team: 'ops', env: 'test' } });
  add('vm-linux', 'linux', { tags: { team: 'ops' } });
  add('vm-off-limits', 'key-file-acl', { tags: { 'rdp-remediator-mode': 'off' } });
  // A Uniform scale set instance: ARM's VM lists leave it out, so the scan does too.
  add('vmss-web', 'vmss-instance');
});
afterAll(async () => {
  await stack?.stop();
});

async function cli(argv: string[], extra: Partial<Io> = {}) {
  const out: string[] = [];
  const err: string[] = [];
  const raw: string[] = [];
  const code = await main(argv, { out: (s) => out.push(s), err: (s) => err.push(s), errRaw: (s) => raw.push(s), ...extra });
  return { code, out: out.join('\n'), err: err.join('\n'), raw: raw.join('') };
}

/** The emulator's Run Commands from `from` on, as [VM resource ID, payload]. */
const runsSince = (from: number) => stack.emulator.runCommands.slice(from).map((r) => [r.vmId.toLowerCase(), r.payload] as const);

const key = (id: string) => {
  const ref = parseVmResourceId(id);
  if (!ref.success) throw ref.error;
  return ref.data.key;
};

describe('rdp-remediator scan', () => {
  it('scans the whole subscription: probes each running Windows VM once, only with the probe, writes no record; exit 2', async () => {
    const from = stack.emulator.runCommands.length;
    const { code, out, err } = await cli(['scan', '--subscription', SUB]);
    expect(code, err).toBe(2);

    // Only probes ran, one per eligible VM: never on the deallocated, agent-not-ready, Linux or off-limits VMs.
    const runs = runsSince(from);
    expect(runs.every(([, payload]) => payload === 'probe')).toBe(true);
    const probed = new Set(runs.map(([vm]) => vm));
    expect(runs).toHaveLength(probed.size);
    const eligibleFleet = DEMO_FLEET.filter((s) => s !== 'deallocated' && s !== 'agent-not-ready').map((s) => fleet[s].toLowerCase());
    expect([...probed].sort()).toEqual([...eligibleFleet, other['vm-ops-tls'], other['vm-ops-ok']].map((id) => (id ?? '').toLowerCase()).sort());

    // The table: one row per listed VM (the scale set instance is not listed), then the totals.
    const vmRows = out.split('\n').filter((line) => /^vm-/.test(line));
    expect(vmRows).toHaveLength(DEMO_FLEET.length + 4);
    expect(out).toMatch(/^vm-expired-self-signed-cert +rg-fleet +running\/Ready +WOULD FAIL +cert-expired +regenerate-self-signed-cert → restart-rdp-services/m);
    expect(out).toMatch(/^vm-healthy +rg-fleet +running\/Ready +accepts RDP +none/m);
    expect(out).toMatch(/^vm-deallocated +rg-fleet +deallocated\/- +not probed: not-running/m);
    expect(out).toMatch(/^vm-agent-not-ready +rg-fleet +running\/Not Ready +not probed: agent-not-ready/m);
    expect(out).toMatch(/^vm-linux +rg-other .* not probed: linux/m);
    expect(out).toMatch(/^vm-off-limits +rg-other .* not probed: policy-off/m);
    expect(out).toMatch(/^vm-nla-dc-unreachable .* WOULD FAIL +nla-domain-unreachable .* disable-nla \(needs-permission\)/m);
    expect(out).not.toContain('vmss-web');
    expect(out).toMatch(/\n20 VMs: 16 probed \(\d+ accept RDP, \d+ would fail\), 4 not probed, 0 errors; [\d.]+ s\n/);
    expect(out).toMatch(/would fail RDP, by cause: .*cert-expired 1/);
    expect(out).toContain('not probed, by reason: agent-not-ready 1, linux 1, not-running 1, policy-off 1');
    expect(out).toMatch(/refused disable-nla \(needs-permission\): lowers security/);

    // Not a TTY: a plain line per VM, no bar, no colour.
    const lines = err.split('\n');
    expect(lines[0]).toMatch(/^scan: 20 VMs in subscription .*; probing the running Windows ones, 8 at once \(read-only\)$/);
    expect(lines.filter((l) => /^\[\s*\d+\/20\] rg-/.test(l))).toHaveLength(20);
    expect(err).not.toContain('\r');
    expect(err).not.toContain('\u001b');

    // Nothing in the app's storage: the scan's records lived in memory.
    for (const id of [...eligibleFleet, ...Object.values(other)]) expect(await getServices().store.listByVm(key(id))).toEqual([]);
  });

  it('filters by resource group and by tags (keys in any case, all must match), and prints one JSON document', async () => {
    const from = stack.emulator.runCommands.length;
    const { code, out } = await cli(['scan', '--subscription', SUB, '-g', OTHER_GROUP, '--tag', 'TEAM=ops', '--tag', 'env=prod', '--json']);
    expect(code).toBe(2);
    const report = JSON.parse(out) as ScanReport;
    expect(report.vms.map((v) => v.name)).toEqual(['vm-ops-tls']);
    expect(report.vms[0]).toMatchObject({ verdict: 'would-fail', plan: ['enable-tls12-server', 'restart-rdp-services'], runCommands: 1 });
    expect(report.totals).toMatchObject({ vms: 1, probed: 1, wouldFail: 1, byCause: { 'tls12-server-disabled': 1 } });
    expect(runsSince(from)).toEqual([[other['vm-ops-tls']?.toLowerCase(), 'probe']]);
  });

  it('exits 0 when every probed VM would accept RDP, and writes CSV', async () => {
    const { code, out } = await cli(['scan', '--subscription', SUB, '--resource-group', OTHER_GROUP, '--tag', 'team=ops', '--tag', 'env=test', '--csv']);
    expect(code).toBe(0);
    const rows = out.split('\r\n');
    expect(rows[0]).toMatch(/^vm_resource_id,name,resource_group,/);
    expect(rows.slice(1).filter(Boolean)).toEqual([expect.stringMatching(/,vm-ops-ok,rg-other,Windows,running,Ready,healthy,/)]);
  });

  it('on a TTY draws one progress line in place, without colour under NO_COLOR', async () => {
    const { code, raw, err } = await cli(['scan', '--subscription', SUB, '-g', OTHER_GROUP, '--concurrency', '2'], { errIsTTY: true, env: { NO_COLOR: '1' } });
    expect(code).toBe(2);
    expect(err).toBe('');
    expect(raw).toMatch(/^\rscan \[/);
    expect(raw).toMatch(/\rscan \[█+\] {2}4\/4 {2}healthy 1 {2}would fail 1 {2}errors 0 {2}not probed 2 {2}[\d.]+s *\n$/);
    expect(raw).not.toContain('\u001b');
    expect(raw.split('\n')).toHaveLength(2);
  });

  it('exits 1 with a JSON error when the VMs cannot be listed', async () => {
    const { code, out } = await cli(['scan', '--subscription', '00000000-0000-0000-0000-00000000dead', '--json']);
    expect(code).toBe(1);
    expect(JSON.parse(out)).toMatchObject({ error: { code: 'ScanListingError', kind: 'not-found', message: expect.stringContaining('could not list the VMs of subscription') as unknown } });
  });
});
