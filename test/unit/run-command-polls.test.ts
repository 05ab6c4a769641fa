import { describe, expect, it } from 'vitest';
import { MIN_SAMPLES, nextPollDelayMs, operationDurationMs, quantile, RunDurations } from '../../src/adapters/run-command-polls.js';

const options = { minRunMs: 20_000, intervalMs: 10_000 };

describe('nextPollDelayMs', () => {
  it('polls at 1.75, 2.5 and 4 times the known minimum, then every interval, while nothing is learned', () => {
    expect(nextPollDelayMs(0, [], undefined, options)).toBe(35_000);
    expect(nextPollDelayMs(35_000, [], undefined, options)).toBe(15_000);
    expect(nextPollDelayMs(50_000, [], undefined, options)).toBe(30_000);
    expect(nextPollDelayMs(80_000, [], undefined, options)).toBe(10_000);
    // No known minimum: every interval from the start.
    expect(nextPollDelayMs(0, [], undefined, { minRunMs: 0, intervalMs: 50 })).toBe(50);
  });

  it('polls at the planned points once learned, never before the minimum, then every interval', () => {
    const planned = [35_000, 46_000, 76_000];
    expect(nextPollDelayMs(0, planned, undefined, options)).toBe(35_000);
    expect(nextPollDelayMs(35_000, planned, undefined, options)).toBe(11_000);
    expect(nextPollDelayMs(46_000, planned, undefined, options)).toBe(30_000);
    expect(nextPollDelayMs(76_000, planned, undefined, options)).toBe(10_000);
    // A planned point under the minimum moves up to it.
    expect(nextPollDelayMs(0, [5_000], undefined, options)).toBe(20_000);
  });

  it("waits at least ARM's Retry-After, and ignores a zero one", () => {
    expect(nextPollDelayMs(0, [], 45_000, options)).toBe(45_000);
    expect(nextPollDelayMs(35_000, [], 2_000, options)).toBe(15_000);
    expect(nextPollDelayMs(0, [], 0, { minRunMs: 0, intervalMs: 50 })).toBe(50);
  });

  it('is never negative and always moves forward', () => {
    for (const elapsed of [0, 1, 19_999, 20_000, 20_001, 1e7]) {
      const delay = nextPollDelayMs(elapsed, [35_000], undefined, options);
      expect(delay).toBeGreaterThan(0);
    }
  });
});

describe('RunDurations', () => {
  it(`plans nothing before ${MIN_SAMPLES} runs of a kind, then the median, 80th and 95th percentiles`, () => {
    const durations = new RunDurations();
    for (let i = 1; i < MIN_SAMPLES; i++) durations.record('probe', i * 1000);
    expect(durations.planned('probe')).toEqual([]);
    for (let i = MIN_SAMPLES; i <= 100; i++) durations.record('probe', i * 1000);
    expect(durations.planned('probe')).toEqual([50_000, 80_000, 95_000]);
    expect(durations.planned('fix')).toEqual([]);
  });

  it('keeps the most recent runs only, and ignores durations that cannot be', () => {
    const durations = new RunDurations();
    for (let i = 0; i < 500; i++) durations.record(null, i < 300 ? 1_000 : 60_000);
    durations.record(null, Number.NaN);
    durations.record(null, -5);
    expect(durations.planned(null)).toEqual([60_000]);
  });
});

describe('quantile and operationDurationMs', () => {
  it('nearest rank', () => {
    expect(quantile([1, 2, 3, 4], 0.5)).toBe(2);
    expect(quantile([1, 2, 3, 4], 0.95)).toBe(4);
    expect(quantile([], 0.5)).toBeNaN();
  });

  it("reads ARM's seven-digit timestamps", () => {
    expect(operationDurationMs('2026-12-02T03:00:00.0000000+00:00', '2026-12-02T03:00:35.5000000+00:00')).toBe(35_500);
    expect(operationDurationMs('2026-12-02T03:00:00Z', undefined)).toBeUndefined();
    expect(operationDurationMs('later', '2026-12-02T03:00:00Z')).toBeUndefined();
    expect(operationDurationMs('2026-12-02T03:00:10Z', '2026-12-02T03:00:00Z')).toBeUndefined();
  });
});
