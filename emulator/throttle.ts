/**
 * ARM's regional token-bucket throttling: one bucket per subscription, per principal, per
 * operation type. Defaults are the documented subscription limits (reads 250 burst / 25 per s,
 * writes 200 burst / 10 per s). `timeScale` speeds up refill (2 = twice as fast) so that tests
 * can exhaust a bucket and see it recover without waiting real seconds.
 */

export type OperationType = 'read' | 'write';

export interface BucketLimits {
  readonly capacity: number;
  readonly refillPerSecond: number;
}

export interface ThrottleOptions {
  /** false turns throttling off (headers still report a full bucket). Default true. */
  readonly enabled?: boolean;
  readonly reads?: Partial<BucketLimits>;
  readonly writes?: Partial<BucketLimits>;
  /** Multiplies the refill rate. Default 1. */
  readonly timeScale?: number;
  /**
   * Also send `retry-after-ms` with the exact wait. ARM itself sends whole seconds in
   * `Retry-After` only; this is an opt-in for fast tests (the SDK prefers the ms header).
   */
  readonly retryAfterMs?: boolean;
}

interface Bucket {
  tokens: number;
  updatedAt: number;
}

export interface ThrottleDecision {
  readonly allowed: boolean;
  /** Whole tokens left after this request (the x-ms-ratelimit-remaining-* value). */
  readonly remaining: number;
  /** When refused: seconds until one token is back. */
  readonly retryAfterSeconds: number;
  readonly retryAfterMs: number;
}

export const DEFAULT_LIMITS: Readonly<Record<OperationType, BucketLimits>> = {
  read: { capacity: 250, refillPerSecond: 25 },
  write: { capacity: 200, refillPerSecond: 10 },
};

export class TokenBuckets {
  private readonly buckets = new Map<string, Bucket>();
  private options: ThrottleOptions;

  public constructor(options: ThrottleOptions = {}, private readonly clock: () => number = Date.now) {
    this.options = options;
  }

  /** Replaces the limits and refills every bucket. */
  public configure(options: ThrottleOptions): void {
    this.options = options;
    this.buckets.clear();
  }

  public get sendsRetryAfterMs(): boolean {
    return this.options.retryAfterMs === true;
  }

  private limits(type: OperationType): BucketLimits {
    const configured = type === 'read' ? this.options.reads : this.options.writes;
    return { ...DEFAULT_LIMITS[type], ...configured };
  }

  /** Takes one token for a request, or says how long to wait. */
  public take(subscriptionId: string, principal: string, type: OperationType): ThrottleDecision {
    const limits = this.limits(type);
    const rate = limits.refillPerSecond * (this.options.timeScale ?? 1);
    const key = `${subscriptionId.toLowerCase()}|${principal}|${type}`;
    const now = this.clock();
    const bucket = this.buckets.get(key) ?? { tokens: limits.capacity, updatedAt: now };
    bucket.tokens = Math.min(limits.capacity, bucket.tokens + ((now - bucket.updatedAt) / 1000) * rate);
    bucket.updatedAt = now;
    this.buckets.set(key, bucket);
    if (this.options.enabled === false) return { allowed: true, remaining: Math.floor(bucket.tokens), retryAfterSeconds: 0, retryAfterMs: 0 };
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1;
      return { allowed: true, remaining: Math.floor(bucket.tokens), retryAfterSeconds: 0, retryAfterMs: 0 };
    }
    const waitMs = rate > 0 ? Math.ceil(((1 - bucket.tokens) / rate) * 1000) : 3_600_000;
    return { allowed: false, remaining: 0, retryAfterSeconds: Math.max(1, Math.ceil(waitMs / 1000)), retryAfterMs: Math.max(1, waitMs) };
  }
}

/**
 * Forces the next `count` matching ARM responses to fail, before routing and throttling; with a
 * `probability`, each matching request fails with that chance instead, until `count` have.
 */
export interface ArmFault {
  readonly status: 429 | 503;
  /** Faults to apply; `Infinity` keeps a probabilistic fault for the emulator's lifetime. */
  readonly count: number;
  /**
   * Chance (0 to 1) that a matching request gets this fault, drawn from a PRNG seeded with
   * `seed`, so a benchmark's faults are the same run after run. Omitted: every matching request
   * (the next `count`) gets it.
   */
  readonly probability?: number;
  /** Seed of the probability's PRNG (any integer). Default 1. */
  readonly seed?: number;
  /** Retry-After in seconds (0 and fractions allowed, for fast tests). Omitted: no Retry-After header. */
  readonly retryAfterSeconds?: number;
  /** Only reads (GET) or only writes (POST...). Default: any request. */
  readonly match?: OperationType;
  /** Only requests whose path matches (case-insensitive). */
  readonly path?: RegExp;
}

export class FaultQueue {
  private readonly faults: { fault: ArmFault; left: number; draw: (() => number) | null }[] = [];

  public add(fault: ArmFault): void {
    if (fault.probability !== undefined && !(fault.probability >= 0 && fault.probability <= 1)) throw new RangeError(`fault probability ${fault.probability} is not between 0 and 1`);
    if (fault.count > 0) this.faults.push({ fault, left: fault.count, draw: fault.probability === undefined ? null : seededUniform(fault.seed ?? 1) });
  }

  public clear(): void {
    this.faults.length = 0;
  }

  /** Faults still to apply (Infinity while a probabilistic fault without a count is in place). */
  public get pending(): number {
    return this.faults.reduce((n, f) => n + f.left, 0);
  }

  /**
   * The fault to apply to this request, if any, consuming one of its count. A probabilistic
   * fault that matches but does not fire this time lets the next matching fault be considered.
   */
  public take(type: OperationType, path: string): ArmFault | undefined {
    for (let at = 0; at < this.faults.length; at++) {
      const entry = this.faults[at];
      if (entry === undefined) continue;
      const { fault } = entry;
      if (fault.match !== undefined && fault.match !== type) continue;
      if (fault.path !== undefined && !new RegExp(fault.path.source, 'i').test(path)) continue;
      if (entry.draw !== null && entry.draw() >= (fault.probability ?? 1)) continue;
      entry.left -= 1;
      if (entry.left <= 0) this.faults.splice(at, 1);
      return fault;
    }
    return undefined;
  }
}

/** mulberry32: a small, fast 32-bit PRNG; uniform in [0, 1). Good enough to pick which requests fail, or to draw a benchmark's run durations. */
export function seededUniform(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}
