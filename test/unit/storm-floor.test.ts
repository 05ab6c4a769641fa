/**
 * The storm benchmark's floor (bench/storm/floor.ts) against its closed form in the cases where
 * the closed form is exact, its duration distribution, and the emulator's probabilistic faults
 * the benchmark's fault scenario relies on.
 */
import { describe, expect, it } from 'vitest';
import { distribution, runDurationSeconds, RUN_DURATION } from '../../bench/storm/durations.js';
import { closedFormFloorMs, stormFloor, subscriptionFloor } from '../../bench/storm/floor.js';
import { FaultQueue } from '../../emulator/throttle.js';

const constant = (n: number, ms: number) => Array.from({ length: n }, () => ({ probeMs: ms, fixMs: ms }));

describe('storm floor', () => {
  it('is two runs back to back when every write fits in the burst (2N ≤ B)', () => {
    for (const n of [1, 10, 100]) {
      const floor = subscriptionFloor({ writeBurst: 200, writesPerSecond: 10, vms: constant(n, 1_750) });
      expect(floor.floorMs).toBeCloseTo(3_500, 6);
      expect(floor.completionsMs).toHaveLength(n);
    }
  });

  it('is the writes past the burst at the refill rate plus one run for a large fleet', () => {
    for (const [n, rate, d] of [
      [1_000, 200, 1_750],
      [2_000, 20, 17_500],
      [5_000, 10, 35_000],
    ] as const) {
      const floor = subscriptionFloor({ writeBurst: 200, writesPerSecond: rate, vms: constant(n, d) });
      const closed = ((2 * n - 200) / rate) * 1000 + d;
      expect(Math.abs(floor.floorMs - closed) / closed).toBeLessThan(0.01);
      expect(closedFormFloorMs({ writeBurst: 200, writesPerSecond: rate, vms: constant(n, d) })).toBeCloseTo(closed, 6);
    }
  });

  it('never beats either bound, whatever the durations', () => {
    const vms = Array.from({ length: 700 }, (_, i) => ({ probeMs: 1_000 + ((i * 37) % 900), fixMs: 1_000 + ((i * 53) % 3_500) }));
    const floor = subscriptionFloor({ writeBurst: 200, writesPerSecond: 200, vms });
    expect(floor.floorMs).toBeGreaterThanOrEqual(Math.max(...vms.map((v) => v.probeMs + v.fixMs)) - 1e-6);
    expect(floor.floorMs).toBeGreaterThanOrEqual(((2 * 700 - 200) / 200) * 1000);
  });

  it('takes the slowest of independent subscriptions', () => {
    const floor = stormFloor([
      { writeBurst: 200, writesPerSecond: 10, vms: constant(10, 1_000) },
      { writeBurst: 200, writesPerSecond: 10, vms: constant(300, 1_000) },
    ]);
    expect(floor.floorMs).toBeCloseTo(((600 - 200) / 10) * 1000 + 1_000, -2);
    expect(floor.completionsMs).toHaveLength(310);
  });
});

describe('storm run durations', () => {
  it('are deterministic per (VM, payload) and follow the stated distribution', () => {
    expect(runDurationSeconds(7, '/subscriptions/a/vm/x', 'probe')).toBe(runDurationSeconds(7, '/SUBSCRIPTIONS/A/VM/X', 'probe'));
    expect(runDurationSeconds(7, '/subscriptions/a/vm/x', 'probe')).not.toBe(runDurationSeconds(7, '/subscriptions/a/vm/x', 'fix'));
    const drawn = Array.from({ length: 20_000 }, (_, i) => runDurationSeconds(1, `vm-${i}`, i % 2 ? 'probe' : 'fix'));
    const d = distribution(drawn);
    expect(d.min).toBeGreaterThanOrEqual(RUN_DURATION.minSeconds);
    expect(d.max).toBeLessThanOrEqual(RUN_DURATION.maxSeconds);
    expect(d.p50).toBeGreaterThan(34);
    expect(d.p50).toBeLessThan(36);
    expect(d.max).toBe(RUN_DURATION.maxSeconds);
  });
});

describe('probabilistic ARM faults', () => {
  it('fail about the given share of matching requests, the same ones for the same seed', () => {
    const pattern = (seed: number) => {
      const faults = new FaultQueue();
      faults.add({ status: 429, count: Infinity, probability: 0.2, seed, retryAfterSeconds: 0.05 });
      return Array.from({ length: 10_000 }, () => faults.take('read', '/subscriptions/x') !== undefined);
    };
    const first = pattern(42);
    const share = first.filter(Boolean).length / first.length;
    expect(share).toBeGreaterThan(0.18);
    expect(share).toBeLessThan(0.22);
    expect(pattern(42)).toEqual(first);
    expect(pattern(43)).not.toEqual(first);
  });

  it('stop after count faults, and let a later fault apply when they do not fire', () => {
    const faults = new FaultQueue();
    faults.add({ status: 429, count: 3, probability: 0.5, seed: 1, match: 'write' });
    faults.add({ status: 503, count: Infinity });
    const statuses = Array.from({ length: 50 }, () => faults.take('write', '/x')?.status);
    expect(statuses.filter((s) => s === 429)).toHaveLength(3);
    expect(statuses.filter((s) => s === 503)).toHaveLength(47);
    expect(faults.take('read', '/x')?.status).toBe(503);
  });

  it('refuse a probability outside 0..1', () => {
    expect(() => new FaultQueue().add({ status: 503, count: 1, probability: 1.5 })).toThrow(RangeError);
  });
});
