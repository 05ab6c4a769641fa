/**
 * Run Command durations for the storm benchmark, from a stated distribution: at least 20 s (the
 * documented minimum of a Run Command), a median of about 35 s and a tail to 90 s:
 *
 *     d = min(90, 20 + 15 · exp(0.8 · Z)) seconds,   Z ~ N(0, 1)
 *
 * Z is drawn from a PRNG seeded by (benchmark seed, VM, payload), so the emulator process (which
 * applies the durations) and the orchestrator (which computes the floor from them) get the same
 * value for a run without exchanging it, and a re-run of the benchmark gets the same storm.
 */

import { seededUniform } from '../../emulator/throttle.js';

export const RUN_DURATION = {
  minSeconds: 20,
  /** exp(0.8·Z) has median 1, so the median duration is min + scale. */
  scaleSeconds: 15,
  sigma: 0.8,
  maxSeconds: 90,
} as const;

export const RUN_DURATION_FORMULA = 'd = min(90, 20 + 15·exp(0.8·Z)) s, Z ~ N(0,1) seeded per (VM, payload), then ÷ time scale';

export type RunPayload = 'probe' | 'fix' | null;

/** FNV-1a, 32 bits: turns the (seed, VM, payload) key into a PRNG seed. */
function hash32(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}


/** A PRNG for one named purpose of one benchmark run (shuffles, fault seeds). */
export function namedUniform(seed: number, name: string): () => number {
  return seededUniform(hash32(`${seed}|${name}`));
}

/** One standard normal draw (Box-Muller) from two uniforms. */
function standardNormal(uniform: () => number): number {
  const u1 = Math.max(uniform(), Number.MIN_VALUE);
  const u2 = uniform();
  return Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
}

/** The unscaled duration of one run, in seconds. VM ids are compared case-insensitively. */
export function runDurationSeconds(seed: number, vmId: string, payload: RunPayload): number {
  const z = standardNormal(seededUniform(hash32(`${seed}|${vmId.toLowerCase()}|${payload ?? 'other'}`)));
  return Math.min(RUN_DURATION.maxSeconds, RUN_DURATION.minSeconds + RUN_DURATION.scaleSeconds * Math.exp(RUN_DURATION.sigma * z));
}

/** The duration the emulator applies at a time scale, in ms. */
export function scaledRunDurationMs(seed: number, timeScale: number, vmId: string, payload: RunPayload): number {
  return (runDurationSeconds(seed, vmId, payload) * 1000) / timeScale;
}

export interface Distribution {
  readonly count: number;
  readonly min: number;
  readonly p50: number;
  readonly p90: number;
  readonly p99: number;
  readonly max: number;
  readonly mean: number;
}

/** Nearest-rank quantile of sorted values. */
export function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return 0;
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil(q * sorted.length)));
  return sorted[rank - 1] ?? 0;
}

export function distribution(values: readonly number[], digits = 3): Distribution {
  const sorted = [...values].sort((a, b) => a - b);
  const round = (v: number) => Number(v.toFixed(digits));
  const mean = sorted.length === 0 ? 0 : sorted.reduce((a, b) => a + b, 0) / sorted.length;
  return {
    count: sorted.length,
    min: round(sorted[0] ?? 0),
    p50: round(quantile(sorted, 0.5)),
    p90: round(quantile(sorted, 0.9)),
    p99: round(quantile(sorted, 0.99)),
    max: round(sorted.at(-1) ?? 0),
    mean: round(mean),
  };
}
