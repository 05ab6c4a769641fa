import { describe, expect, it } from 'vitest';
import { VmViewBatcher, type ListedVm, type VmViewSource } from '../../src/adapters/vm-views.js';
import { parseVmResourceId, type VmRef } from '../../src/core/resource-id.js';
import type { VmView } from '../../src/core/vm.js';

const SUB = '00000000-0000-0000-0000-0000000000a1';
function ref(i: number, sub = SUB): VmRef {
  const parsed = parseVmResourceId(`/subscriptions/${sub}/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm-${i}`);
  if (!parsed.success) throw new Error('bad id');
  return parsed.data;
}
function view(r: VmRef, power = 'running'): VmView {
  return { ref: r, location: 'westeurope', osType: 'Windows', powerState: power, agent: { ready: true, status: 'Ready', message: null }, tags: {} };
}

/** A source that counts its calls; the listing shows VMs 0..listed-1 (VM `incomplete` without what a view needs). */
function source(listed: number, options: { incomplete?: number; failList?: boolean } = {}) {
  const calls = { gets: [] as string[], lists: 0 };
  const impl: VmViewSource = {
    getOne: (r) => {
      calls.gets.push(r.id.split('/').at(-1) ?? '');
      return Promise.resolve(view(r, 'from-get'));
    },
    listSubscription: (sub) => {
      calls.lists++;
      if (options.failList) return Promise.reject(new Error('list failed'));
      const vms = new Map<string, ListedVm>();
      for (let i = 0; i < listed; i++) vms.set(ref(i, sub).key, (r: VmRef) => (i === options.incomplete ? null : view(r, 'from-list')));
      return Promise.resolve(vms);
    },
  };
  return { impl, calls };
}

describe('VmViewBatcher', () => {
  it('reads a lone VM with one GET', async () => {
    const { impl, calls } = source(100);
    const batcher = new VmViewBatcher(impl, { listThreshold: 10, ttlMs: 30_000, windowMs: 1 });
    expect((await batcher.get(ref(1))).powerState).toBe('from-get');
    expect(calls).toEqual({ gets: ['vm-1'], lists: 0 });
  });

  it('answers a storm of reads of one subscription from one listing, and later reads from it until it is stale', async () => {
    let now = 1_000;
    const { impl, calls } = source(100);
    const batcher = new VmViewBatcher(impl, { listThreshold: 10, ttlMs: 30_000, windowMs: 1, now: () => now });
    const views = await Promise.all(Array.from({ length: 40 }, (_, i) => batcher.get(ref(i))));
    expect(views.every((v) => v.powerState === 'from-list')).toBe(true);
    expect(views.map((v) => v.ref.id.split('/').at(-1))).toEqual(Array.from({ length: 40 }, (_, i) => `vm-${i}`));
    expect(calls).toEqual({ gets: [], lists: 1 });
    now += 10_000;
    expect((await batcher.get(ref(50))).powerState).toBe('from-list');
    expect(calls.lists).toBe(1);
    now += 30_000; // stale, and the storm is over: one GET again
    expect((await batcher.get(ref(51))).powerState).toBe('from-get');
    expect(batcher.stats).toEqual({ gets: 1, lists: 1, listed: 100, fromListing: 41 });
  });

  it('reads with a GET what the listing does not show or shows without what a view needs, and everything when the listing fails', async () => {
    const { impl, calls } = source(20, { incomplete: 3 });
    const batcher = new VmViewBatcher(impl, { listThreshold: 5, ttlMs: 30_000, windowMs: 1 });
    const views = await Promise.all([0, 1, 2, 3, 4, 25].map((i) => batcher.get(ref(i))));
    expect(views.map((v) => v.powerState)).toEqual(['from-list', 'from-list', 'from-list', 'from-get', 'from-list', 'from-get']);
    expect(calls.gets.sort()).toEqual(['vm-25', 'vm-3']);

    const failing = source(20, { failList: true });
    const second = new VmViewBatcher(failing.impl, { listThreshold: 2, ttlMs: 30_000, windowMs: 1 });
    const all = await Promise.all([0, 1, 2].map((i) => second.get(ref(i))));
    expect(all.every((v) => v.powerState === 'from-get')).toBe(true);
    expect(failing.calls.lists).toBe(1);
  });

  it('keeps subscriptions apart, never lists for scale set VMs, and lists nothing at threshold 0', async () => {
    const { impl, calls } = source(50);
    const off = new VmViewBatcher(impl, { listThreshold: 0, ttlMs: 30_000, windowMs: 1 });
    await Promise.all(Array.from({ length: 20 }, (_, i) => off.get(ref(i))));
    expect(calls.lists).toBe(0);

    const other = '00000000-0000-0000-0000-0000000000b2';
    const batcher = new VmViewBatcher(impl, { listThreshold: 3, ttlMs: 30_000, windowMs: 1 });
    await Promise.all([batcher.get(ref(0)), batcher.get(ref(1)), batcher.get(ref(0, other))]);
    expect(calls.lists).toBe(0); // two reads of one subscription, one of the other: under the threshold

    const scaleSet = parseVmResourceId(`/subscriptions/${SUB}/resourceGroups/rg/providers/Microsoft.Compute/virtualMachineScaleSets/ss/virtualMachines/3`);
    if (!scaleSet.success) throw new Error('bad id');
    const before = calls.gets.length;
    await Promise.all(Array.from({ length: 5 }, () => batcher.get(scaleSet.data)));
    expect(calls.gets.length - before).toBe(5);
    expect(calls.lists).toBe(0);
  });
});
