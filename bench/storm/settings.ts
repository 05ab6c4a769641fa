/**
 * The storm benchmark's knobs in one place: ARM's documented limits, the app settings the
 * instances get at a time scale, and the benchmark's own options from the environment.
 *
 * Time scale s: ARM's refill rates are multiplied by s and every duration divided by it (Run
 * Command durations, the app's poll and back-off settings), so the storm keeps its shape and
 * takes 1/s of the time. Bursts are counts, not rates, and stay as they are.
 */

/** ARM's subscription token buckets, as Azure Resource Manager's throttling documentation gives them. */
export const ARM_LIMITS = {
  reads: { burst: 250, perSecond: 25 },
  writes: { burst: 200, perSecond: 10 },
} as const;

const seconds = (value: number) => String(Number(value.toFixed(4)));

/**
 * The app settings of every instance at time scale `s`, each the deployment default with its
 * durations ÷ s and its rates × s.
 */
export function appSettings(timeScale: number): Record<string, string> {
  return {
    REMEDIATION_DEFAULT_MODE: 'repair',
    // No poll of a run before this: a Run Command takes at least 20 s.
    RUN_COMMAND_MIN_SECONDS: seconds(20 / timeScale),
    // The poll interval when ARM sends no Retry-After (the emulator sends 0, i.e. none).
    RUN_COMMAND_POLL_SECONDS: seconds(5 / timeScale),
    RUN_COMMAND_BUSY_DELAY_SECONDS: seconds(30 / timeScale),
    // ARM's own buckets, so the app paces to what ARM allows.
    ARM_READS_PER_SECOND: String(ARM_LIMITS.reads.perSecond * timeScale),
    ARM_READ_BURST: String(ARM_LIMITS.reads.burst),
    ARM_WRITES_PER_SECOND: String(ARM_LIMITS.writes.perSecond * timeScale),
    ARM_WRITE_BURST: String(ARM_LIMITS.writes.burst),
    // Pace from ARM's x-ms-ratelimit-remaining-* headers (shared by all instances), not a fixed per-instance slice.
    ARM_PACING: 'headers',
    ARM_VM_LIST_THRESHOLD: '10',
    ARM_VM_VIEW_TTL_SECONDS: seconds(30 / timeScale),
    ALERT_COOLDOWN_MINUTES: '60',
  };
}

function numberFrom(name: string, fallback: number, env: NodeJS.ProcessEnv): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value <= 0) throw new Error(`${name}=${raw}: a positive number, please`);
  return value;
}

export type ScenarioId = 'a' | 'b' | 'c' | 'd';

export interface BenchOptions {
  readonly quick: boolean;
  /** VMs of scenarios (a) and (b). */
  readonly vms: number;
  /** VMs of scenario (c), over `subscriptionsC` subscriptions. */
  readonly vmsC: number;
  readonly subscriptionsC: number;
  /** VMs of scenario (d). */
  readonly vmsD: number;
  readonly instances: number;
  /** Invocations at once over all instances (the remediation queue's share of a scaled-out app). */
  readonly concurrency: number;
  readonly timeScale: Readonly<Record<ScenarioId, number>>;
  readonly seed: number;
  readonly scenarios: readonly ScenarioId[];
  readonly duplicateShare: number;
  readonly deliveryConcurrency: number;
  /** Share of ARM requests answered with a fault in (d): half 429 with Retry-After, half 503. */
  readonly faultShare: number;
}

export function benchOptions(env: NodeJS.ProcessEnv = process.env): BenchOptions {
  const quick = env['BENCH_QUICK'] === '1';
  // Chosen so that this 2-core machine could keep up with a client at the floor (bench/storm.ts, SCALE_NOTES).
  const scale = numberFrom('BENCH_TIME_SCALE', quick ? 20 : 4, env);
  const scenarios = (env['BENCH_SCENARIOS'] ?? 'a,b,c,d')
    .split(',')
    .map((s) => s.trim().toLowerCase())
    .filter((s): s is ScenarioId => s === 'a' || s === 'b' || s === 'c' || s === 'd');
  return {
    quick,
    vms: Math.round(numberFrom('BENCH_VMS', quick ? 100 : 1000, env)),
    vmsC: Math.round(numberFrom('BENCH_VMS_C', quick ? 500 : 10_000, env)),
    subscriptionsC: 5,
    vmsD: Math.round(numberFrom('BENCH_VMS_D', 100, env)),
    instances: Math.round(numberFrom('BENCH_INSTANCES', 3, env)),
    concurrency: Math.round(numberFrom('BENCH_CONCURRENCY', 2400, env)),
    timeScale: {
      a: scale,
      b: scale,
      c: numberFrom('BENCH_TIME_SCALE_C', quick ? 5 : 2, env),
      d: scale,
    },
    seed: Math.round(numberFrom('BENCH_SEED', 20_251_202, env)),
    scenarios,
    duplicateShare: 0.2,
    deliveryConcurrency: 100,
    faultShare: 0.2,
  };
}
