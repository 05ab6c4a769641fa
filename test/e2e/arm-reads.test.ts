/**
 * ARM reads at ARM's floor (issue 11), for real: the real @azure/arm-compute client against the
 * emulator's HTTPS ARM, counted on the wire.
 *
 * - A run costs its POST and its polls: no poll right after the 202, none before the known
 *   minimum, none after the final status (the output is taken from it), and once enough runs
 *   are seen the polls go where runs end.
 * - Many VMs of one subscription read at once are one listing, not a GET each.
 * - Two instances that share a subscription's bucket pace by ARM's remaining-requests answers
 *   and stay (almost) clear of 429s where fixed per-instance limits run into them.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ArmComputeGateway, type ArmComputeGatewayOptions } from '../../src/adapters/compute.js';
import { ARM_LIMITS, armPacingPolicy, type PacingMode } from '../../src/adapters/pacing.js';
import { parseVmResourceId, type VmRef } from '../../src/core/resource-id.js';
import type { RunCommandPayload } from '../../src/payloads/compose.js';
import { scenarioVm } from '../../emulator/fleet.js';
import { startEmulator, trustEmulatorCa, type Emulator } from '../../emulator/index.js';

let emu: Emulator;
let counter = 0;

const credential = {
  getToken: (scopes: string | string[]) => {
    const scope = Array.isArray(scopes) ? (scopes[0] ?? '') : scopes;
    return Promise.resolve({ token: emu.issueToken({ resource: scope.replace(/\/\.default$/, '') }), expiresOnTimestamp: Date.now() + 3_600_000 });
  },
};

beforeAll(async () => {
  emu = await startEmulator({ runLatencyMs: 50 });
  trustEmulatorCa(emu.caPem);
});
afterAll(async () => {
  await emu?.stop();
});

function gateway(options: Partial<ArmComputeGatewayOptions> = {}): ArmComputeGateway {
  return new ArmComputeGateway(credential, { endpoint: emu.armEndpoint, audience: 'https://management.azure.com', pollIntervalMs: 40, vmViews: { listThreshold: 0, ttlMs: 1_000 }, ...options });
}

function addVm(subscriptionId: string, extra: { runLatencyMs?: number } = {}): { id: string; ref: VmRef } {
  const id = emu.addVm(scenarioVm('healthy', { subscriptionId, resourceGroup: 'rg-reads', name: `vm-reads-${++counter}`, ...extra }));
  const parsed = parseVmResourceId(id);
  if (!parsed.success) throw parsed.error;
  return { id, ref: parsed.data };
}

/** A script the emulator answers without PowerShell (not one of our payloads), named by its RunId. */
const script = (): RunCommandPayload => ({ commandId: 'RunPowerShellScript', script: ['Write-Output hello'], parameters: [{ name: 'RunId', value: randomUUID() }] });

const requestsOf = (subscriptionId: string) => emu.requests.filter((r) => r.path.toLowerCase().startsWith(`/subscriptions/${subscriptionId}`));
const polls = (subscriptionId: string) => requestsOf(subscriptionId).filter((r) => /\/operations\//i.test(r.path));

describe('Run Command polls', () => {
  it('a run that ends before the minimum costs one poll of its status and no final GET', async () => {
    const sub = '00000000-0000-0000-0000-0000000011a1';
    const { ref } = addVm(sub, { runLatencyMs: 100 });
    const out = await gateway({ minRunMs: 250 }).runCommand(ref, script());
    expect(out.source).toBe('operation');
    expect(out.posts).toMatchObject({ sent: 1, accepted: 1 });
    const answered = polls(sub);
    expect(answered).toHaveLength(1);
    // The Azure-AsyncOperation URL, not the Location (?monitor=true) one the SDK's poller GETs at the end.
    expect(answered[0]?.query['monitor']).toBeUndefined();
    const post = requestsOf(sub).find((r) => r.method === 'POST');
    expect((answered[0]?.time ?? 0) - (post?.time ?? 0)).toBeGreaterThanOrEqual(240);
  });

  it('once twenty runs are known, a fleet whose runs take ten times the minimum costs one or two polls a run instead of twenty', async () => {
    const sub = '00000000-0000-0000-0000-0000000011a2';
    const arm = gateway({ minRunMs: 100, pollIntervalMs: 30 });
    const vms = Array.from({ length: 30 }, () => addVm(sub, { runLatencyMs: 1_000 }));
    // Learning: at 175, 250 and 400 ms (the usual durations' points), then every 30 ms.
    await Promise.all(vms.slice(0, 20).map((vm) => arm.runCommand(vm.ref, script())));
    const learning = polls(sub).length / 20;
    await Promise.all(vms.slice(20).map((vm) => arm.runCommand(vm.ref, script())));
    const learned = (polls(sub).length - learning * 20) / 10;
    expect(learning).toBeGreaterThanOrEqual(10);
    expect(learned).toBeLessThanOrEqual(2);
  });
});

describe('VM reads in a storm', () => {
  it('40 VMs of one subscription read at once are one listing; a lone VM of another is one GET', async () => {
    const sub = '00000000-0000-0000-0000-0000000011b1';
    const lone = '00000000-0000-0000-0000-0000000011b2';
    const vms = Array.from({ length: 40 }, () => addVm(sub));
    const single = addVm(lone);
    const arm = gateway({ vmViews: { listThreshold: 10, ttlMs: 5_000 } });
    const views = await Promise.all([...vms.map((v) => arm.getVm(v.ref)), arm.getVm(single.ref)]);
    expect(views.every((v) => v.powerState === 'running' && v.osType === 'Windows' && v.agent.ready)).toBe(true);
    expect(views[3]?.ref.id).toBe(vms[3]?.ref.id);
    const reads = requestsOf(sub);
    expect(reads.map((r) => `${r.method} ${r.path.split('/').slice(-2).join('/')} ${r.query['statusOnly'] ?? ''}`)).toEqual(['GET Microsoft.Compute/virtualMachines true']);
    expect(requestsOf(lone)).toHaveLength(1);
    expect(arm.vmReadStats).toMatchObject({ lists: 1, gets: 1, fromListing: 40 });
  });
});

describe('pacing by ARM’s answers', () => {
  /** Two instances, each reading 80 VMs as fast as its pacing lets it, against a read bucket of 40 + 40/s. */
  async function twoInstances(mode: PacingMode, subscriptionId: string): Promise<{ throttled: number; total: number }> {
    // A token every 25 ms: long beside an answer's round trip, even on a loaded machine.
    const limits = { reads: { burst: 40, perSecond: 40 }, writes: ARM_LIMITS.writes };
    const vms = Array.from({ length: 20 }, () => addVm(subscriptionId));
    const instances = [0, 1].map(() => gateway({ additionalPolicies: [armPacingPolicy(mode, limits)], maxRetries: 6 }));
    emu.configureThrottle({ reads: { capacity: 40, refillPerSecond: 40 }, retryAfterMs: true });
    try {
      // allSettled: with fixed limits a read can meet 429s past its retries, and that is the point.
      await Promise.all(instances.map((arm) => Promise.allSettled(Array.from({ length: 80 }, (_, i) => arm.getVm(vms[i % vms.length]?.ref as VmRef)))));
    } finally {
      emu.configureThrottle({});
    }
    const requests = requestsOf(subscriptionId);
    return { throttled: requests.filter((r) => r.status === 429).length, total: requests.length };
  }

  it('keeps 429s to a few percent where a fixed per-instance limit at the full budget meets many', async () => {
    const paced = await twoInstances('headers', '00000000-0000-0000-0000-0000000011c1');
    const fixed = await twoInstances('static', '00000000-0000-0000-0000-0000000011c2');
    // (The bounds leave room for a loaded CI machine, where answers come back later.)
    expect(paced.throttled / paced.total, JSON.stringify({ paced, fixed })).toBeLessThan(0.05);
    expect(fixed.throttled, JSON.stringify({ paced, fixed })).toBeGreaterThan(3 * Math.max(1, paced.throttled));
  });
});
