/**
 * Pipeline policies the adapters add to the SDK clients:
 *
 * - **Pacing** (`armPacingPolicy`): every ARM request (and every retry and poll) waits, per
 *   subscription and operation kind, until ARM's bucket has room, as ARM's own
 *   x-ms-ratelimit-remaining-* answers report it, under a local token bucket at ARM's limits;
 *   so instances that share a subscription stay under ARM's buckets instead of running into 429s.
 * - **Bounds** (issue 9): a per-try timeout (`tryTimeoutPolicy`, per retry, closest to the
 *   wire), a deadline over one operation including its retries and back-off
 *   (`deadlinePolicy`, per call), and the ARM retry policy (`armRetryPolicy`), which never
 *   re-sends a Run Command POST unless ARM definitely refused it.
 *
 * A hung dependency therefore ends in a DependencyTimeoutError naming it, at the latest when
 * the deadline runs out. `DEFAULT_BOUNDS` holds the bounds the app uses.
 */
import { retryPolicy, RestError, type PipelinePolicy as CorePipelinePolicy, type PipelineRequest, type PipelineResponse, type RetryStrategy, type SendRequest } from '@azure/core-rest-pipeline';
import { DependencyTimeoutError, type Dependency } from '../errors.js';

export type PipelinePolicy = CorePipelinePolicy;

export interface RateLimit {
  readonly perSecond: number;
  readonly burst: number;
}

export class TokenBucket {
  private tokens: number;
  private updatedAt: number;
  private queue: Promise<void> = Promise.resolve();

  public constructor(
    private readonly limit: RateLimit,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.tokens = limit.burst;
    this.updatedAt = now();
  }

  private refill(): void {
    const t = this.now();
    this.tokens = Math.min(this.limit.burst, this.tokens + ((t - this.updatedAt) / 1000) * this.limit.perSecond);
    this.updatedAt = t;
  }

  /** Resolves when a token is available; callers are served in arrival order. */
  public take(): Promise<void> {
    const turn = this.queue.then(async () => {
      this.refill();
      if (this.tokens < 1) {
        const waitMs = ((1 - this.tokens) / this.limit.perSecond) * 1000;
        await new Promise((resolve) => setTimeout(resolve, waitMs));
        this.refill();
      }
      this.tokens -= 1;
    });
    this.queue = turn;
    return turn;
  }
}

const WRITE_METHODS = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

export type ArmOperationKind = 'reads' | 'writes';

export function operationKind(method: string): ArmOperationKind {
  return WRITE_METHODS.has(method.toUpperCase()) ? 'writes' : 'reads';
}

/** ARM's answer header that says how many requests of a kind are left in the subscription's bucket. */
export const REMAINING_HEADER: Readonly<Record<ArmOperationKind, string>> = {
  reads: 'x-ms-ratelimit-remaining-subscription-reads',
  writes: 'x-ms-ratelimit-remaining-subscription-writes',
};

/**
 * Requests of each kind this instance leaves in ARM's bucket for others (other instances of the
 * app share the subscription's bucket: ARM limits per subscription and principal).
 */
export const REMAINING_RESERVE = 5;

const sleepMs = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * ARM's own bucket for one subscription and kind, as its answers report it. Between two answers
 * it is projected: what the last answer said was left, minus what this instance sent since,
 * plus ARM's refill. Other instances' requests show in the next answer, so instances that share
 * a subscription slow down together without talking to each other. Until a first answer there
 * is nothing to go on, so requests go one at a time until one comes back.
 */
export class ObservedBucket {
  private remaining: number | null = null;
  private observedAt = 0;
  private sentSinceObserved = 0;
  private inFlight = 0;
  private queue: Promise<void> = Promise.resolve();

  public constructor(
    private readonly limit: RateLimit,
    private readonly reserve: number = REMAINING_RESERVE,
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** The projected requests left in ARM's bucket now; Infinity before any answer said. */
  public estimate(at: number = this.now()): number {
    if (this.remaining === null) return Number.POSITIVE_INFINITY;
    const refilled = this.remaining - this.sentSinceObserved + ((at - this.observedAt) / 1000) * this.limit.perSecond;
    return Math.min(this.limit.burst, refilled);
  }

  /** Resolves when the projection leaves the reserve untouched; callers go in arrival order. */
  public take(): Promise<void> {
    const turn = this.queue.then(async () => {
      for (;;) {
        if (this.remaining === null) {
          // Nothing known yet: one request at a time until an answer says how much is left.
          if (this.inFlight === 0) break;
          await sleepMs(5);
          continue;
        }
        const left = this.estimate();
        // Of the room the last answer left, send at most half before hearing again: another
        // instance read the same answer, and halving keeps the overshoot of several of them
        // small while a lone instance still climbs to the full rate (its answers show the room
        // it left).
        const room = left + this.sentSinceObserved - this.reserve;
        if (left >= 1 + this.reserve && this.sentSinceObserved + 1 <= Math.max(1, room / 2)) break;
        await sleepMs(Math.max(1, 1000 / this.limit.perSecond));
      }
      this.sentSinceObserved += 1;
      this.inFlight += 1;
    });
    this.queue = turn.catch(() => undefined);
    return turn;
  }

  /** An answer (or its lack) for a request that `take` let through. */
  public settle(response: PipelineResponse | undefined, kind: ArmOperationKind): void {
    this.inFlight = Math.max(0, this.inFlight - 1);
    if (response === undefined) return;
    const header = Number(response.headers.get(REMAINING_HEADER[kind]));
    const said = response.status === 429 ? 0 : response.headers.get(REMAINING_HEADER[kind]) !== undefined && Number.isFinite(header) ? header : undefined;
    if (said === undefined) return;
    this.remaining = said;
    this.observedAt = this.now();
    // Requests still on their way may not have been counted in this answer yet.
    this.sentSinceObserved = this.inFlight;
  }
}

/** How the app paces its ARM requests (ARM_PACING). */
export type PacingMode = 'headers' | 'static';

export interface ArmLimits {
  readonly reads: RateLimit;
  readonly writes: RateLimit;
}

/** The documented per-subscription, per-principal buckets. */
export const ARM_LIMITS: ArmLimits = { reads: { perSecond: 25, burst: 250 }, writes: { perSecond: 10, burst: 200 } };

function subscriptionOf(url: string): string {
  return /\/subscriptions\/([^/?#]+)/i.exec(url)?.[1]?.toLowerCase() ?? '';
}

/**
 * Client-side pacing of every ARM attempt (retries and polls included), per subscription and
 * kind, since ARM's buckets are per subscription.
 * - `static`: this instance's own token bucket at `limits` (a fixed slice of ARM's budget).
 * - `headers` (default): the same local bucket at ARM's limits as a ceiling, plus ARM's own
 *   bucket as its answers report it (ObservedBucket), so that all instances together stay
 *   under ARM's limits without a fixed slice each.
 */
export function armPacingPolicy(mode: PacingMode, limits: ArmLimits, options: { readonly reserve?: number; readonly now?: () => number } = {}): PipelinePolicy {
  const perSubscription = new Map<string, Record<ArmOperationKind, { local: TokenBucket; observed: ObservedBucket | null }>>();
  const bucketsFor = (subscription: string) => {
    let buckets = perSubscription.get(subscription);
    if (!buckets) {
      const make = (kind: ArmOperationKind) => ({ local: new TokenBucket(limits[kind], options.now), observed: mode === 'headers' ? new ObservedBucket(limits[kind], options.reserve, options.now) : null });
      buckets = { reads: make('reads'), writes: make('writes') };
      perSubscription.set(subscription, buckets);
    }
    return buckets;
  };
  return {
    name: 'rdpRemediatorPacing',
    async sendRequest(request, next) {
      const kind = operationKind(request.method);
      const { local, observed } = bucketsFor(subscriptionOf(request.url))[kind];
      await local.take();
      if (!observed) return next(request);
      await observed.take();
      let response: PipelineResponse | undefined;
      try {
        response = await next(request);
        return response;
      } finally {
        observed.settle(response, kind);
      }
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Bounds: per-try timeouts, deadlines, retry budgets (issue 9)

/** The time and retry budget of one dependency's calls. */
export interface CallBounds {
  /** One HTTP attempt, from the moment it is sent to its last response byte. */
  readonly tryTimeoutMs: number;
  /** Retries after the first attempt (reads and definitely refused writes only, for ARM). */
  readonly maxRetries: number;
  /** First back-off delay; doubled per retry, jittered, capped at maxRetryDelayMs. */
  readonly retryDelayMs: number;
  readonly maxRetryDelayMs: number;
  /** One operation (every attempt, back-off and token wait included). */
  readonly operationTimeoutMs: number;
}

export interface ArmBounds extends CallBounds {
  /** A 429/503 asking to wait longer than this is not waited for: it surfaces as throttled. */
  readonly maxRetryAfterMs: number;
}

/**
 * The bounds the app uses. Worst case for one call that never gets an answer: the deadline
 * (operationTimeoutMs); one attempt never waits longer than tryTimeoutMs.
 * - ARM: 30 s per try, 4 retries, 120 s per operation; Retry-After honoured up to 60 s.
 * - Logs: 60 s per try (the query asks the service for 50 s), 3 retries, 180 s per operation.
 * - Table: 10 s per try, 3 retries, 30 s per operation.
 * - Queue: 30 s per operation (storage-queue's own retries, 4 tries, 0.5-4 s apart; its
 *   tryTimeoutInMs is only the server-side `timeout` parameter, so the deadline is the bound).
 */
export const DEFAULT_BOUNDS = {
  arm: { tryTimeoutMs: 30_000, maxRetries: 4, retryDelayMs: 1_000, maxRetryDelayMs: 16_000, operationTimeoutMs: 120_000, maxRetryAfterMs: 60_000 },
  logs: { tryTimeoutMs: 60_000, maxRetries: 3, retryDelayMs: 1_000, maxRetryDelayMs: 16_000, operationTimeoutMs: 180_000 },
  table: { tryTimeoutMs: 10_000, maxRetries: 3, retryDelayMs: 500, maxRetryDelayMs: 4_000, operationTimeoutMs: 30_000 },
  queue: { tryTimeoutMs: 10_000, maxRetries: 3, retryDelayMs: 500, maxRetryDelayMs: 4_000, operationTimeoutMs: 30_000 },
} as const satisfies { readonly arm: ArmBounds; readonly logs: CallBounds; readonly table: CallBounds; readonly queue: CallBounds };

/**
 * One attempt that got no complete answer within its try timeout: a RestError with the code
 * ETIMEDOUT, so the SDKs' retry strategies treat it like a socket timeout (retried with
 * back-off), marked with the try timeout. (RestError resets its prototype, so it is marked,
 * not subclassed.)
 */
export function tryTimeoutError(request: PipelineRequest, tryTimeoutMs: number): RestError {
  const error = new RestError(`no answer from ${describeRequest(request)} within ${tryTimeoutMs} ms`, { code: 'ETIMEDOUT', request });
  return Object.assign(error, { [TRY_TIMEOUT]: tryTimeoutMs });
}

const TRY_TIMEOUT = Symbol('rdpRemediatorTryTimeoutMs');

/** The try timeout of an attempt that timed out (tryTimeoutError), else undefined. */
export function tryTimeoutOf(error: unknown): number | undefined {
  const value = typeof error === 'object' && error !== null ? (error as { [TRY_TIMEOUT]?: unknown })[TRY_TIMEOUT] : undefined;
  return typeof value === 'number' ? value : undefined;
}

export function describeRequest(request: PipelineRequest): string {
  try {
    const url = new URL(request.url);
    return `${request.method} ${url.host}${url.pathname}`;
  } catch {
    return request.method;
  }
}

/**
 * Aborts one attempt that takes longer than `tryTimeoutMs` and throws a tryTimeoutError.
 * Add it per retry, last, so it times the attempt on the wire and not a wait before it. The
 * request's own abort signal is restored afterwards: the retry policy must not see the
 * attempt's abort as the caller's.
 */
export function tryTimeoutPolicy(tryTimeoutMs: number): PipelinePolicy {
  return {
    name: 'rdpRemediatorTryTimeout',
    sendRequest: (request, next) =>
      sendWithin(request, next, tryTimeoutMs, (error, timedOut) => {
        if (timedOut) throw tryTimeoutError(request, tryTimeoutMs);
        throw error;
      }),
  };
}

/**
 * The deadline of one operation, every retry and back-off included (add it per call, so it
 * wraps the retry policy). When it runs out, or when the last attempt timed out, the call
 * fails with a DependencyTimeoutError naming the dependency.
 */
export function deadlinePolicy(dependency: Dependency, operationTimeoutMs: number): PipelinePolicy {
  return {
    name: 'rdpRemediatorDeadline',
    sendRequest(request, next) {
      const started = Date.now();
      return sendWithin(request, next, operationTimeoutMs, (error, timedOut) => {
        if (timedOut) {
          throw new DependencyTimeoutError(dependency, operationTimeoutMs, `${dependency}: ${describeRequest(request)} got no answer within ${operationTimeoutMs} ms`, { elapsedMs: Date.now() - started }, { cause: error });
        }
        const tryTimeoutMs = tryTimeoutOf(error);
        if (tryTimeoutMs !== undefined) {
          throw new DependencyTimeoutError(dependency, tryTimeoutMs, `${dependency}: ${describeRequest(request)} got no answer (its last attempt timed out after ${tryTimeoutMs} ms)`, { elapsedMs: Date.now() - started }, { cause: error });
        }
        throw error;
      });
    },
  };
}

/**
 * Sends the request with its own abort signal, aborted after `timeoutMs` or with the caller's,
 * and the caller's signal restored afterwards. A failure goes to `onError`, told whether this
 * timer (not the caller) aborted it.
 */
async function sendWithin(
  request: PipelineRequest,
  next: SendRequest,
  timeoutMs: number,
  onError: (error: unknown, timedOut: boolean) => never,
): Promise<PipelineResponse> {
  const original = request.abortSignal;
  const own = new AbortController();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    own.abort();
  }, timeoutMs);
  const linked = linkSignals(original, own);
  request.abortSignal = linked.signal;
  try {
    return await next(request);
  } catch (error) {
    return onError(error, timedOut && !original?.aborted);
  } finally {
    clearTimeout(timer);
    linked.dispose();
    request.abortSignal = original;
  }
}

/** Makes `own` abort when the caller's signal does; its signal then stands for both. */
function linkSignals(original: PipelineRequest['abortSignal'], own: AbortController): { signal: AbortSignal; dispose(): void } {
  if (!original) return { signal: own.signal, dispose: () => undefined };
  const forward = () => own.abort();
  if (original.aborted) own.abort();
  else original.addEventListener('abort', forward);
  return { signal: own.signal, dispose: () => original.removeEventListener('abort', forward) };
}

/** POST …/runCommand, the one non-idempotent ARM call the app makes. */
export function isRunCommandPost(request: Pick<PipelineRequest, 'method' | 'url'>): boolean {
  if (request.method.toUpperCase() !== 'POST') return false;
  try {
    return /\/runcommand$/i.test(new URL(request.url).pathname.replace(/\/+$/, ''));
  } catch {
    return false;
  }
}

/** Transport errors that mean the request never left this machine (no connection was made). */
const NOT_SENT_CODES = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN']);
/** Transport errors worth another attempt of an idempotent request. */
const TRANSIENT_CODES = new Set([...NOT_SENT_CODES, 'ECONNRESET', 'ETIMEDOUT', 'ESOCKETTIMEDOUT', 'EPIPE', 'ENOENT']);

export function errorCode(error: unknown): string | undefined {
  const code = typeof error === 'object' && error !== null ? (error as { code?: unknown }).code : undefined;
  return typeof code === 'string' ? code : undefined;
}

/** True when a transport error shows the request was never sent (so even a POST may be retried). */
export function wasNeverSent(error: unknown): boolean {
  const code = errorCode(error);
  return code !== undefined && NOT_SENT_CODES.has(code);
}

/** Milliseconds a 429/503 asks to wait (retry-after-ms, x-ms-retry-after-ms, Retry-After seconds or date); undefined without one. */
export function retryAfterMs(response: PipelineResponse | undefined, now: number = Date.now()): number | undefined {
  if (!response || (response.status !== 429 && response.status !== 503)) return undefined;
  for (const name of ['retry-after-ms', 'x-ms-retry-after-ms']) {
    const value = Number(response.headers.get(name));
    if (response.headers.get(name) !== undefined && Number.isFinite(value) && value >= 0) return value;
  }
  const header = response.headers.get('retry-after');
  if (header === undefined || header.trim() === '') return undefined;
  const seconds = Number(header);
  if (Number.isFinite(seconds)) return seconds >= 0 ? seconds * 1000 : undefined;
  const date = Date.parse(header);
  return Number.isFinite(date) ? Math.max(0, date - now) : undefined;
}

function backoffMs(retryCount: number, bounds: Pick<CallBounds, 'retryDelayMs' | 'maxRetryDelayMs'>): number {
  const exponential = Math.min(bounds.maxRetryDelayMs, bounds.retryDelayMs * 2 ** retryCount);
  return Math.round(exponential * (0.5 + Math.random() / 2));
}

/** 429 (or 503, when `statuses` says so) with a Retry-After we are willing to wait. */
function throttlingStrategy(maxRetryAfterMs: number, statuses: readonly number[]): RetryStrategy {
  return {
    name: 'rdpRemediatorThrottling',
    retry({ response }) {
      if (!response || !statuses.includes(response.status)) return { skipStrategy: true };
      const wait = retryAfterMs(response);
      // No Retry-After, or one longer than we wait in process: the caller sees the 429 (throttled).
      if (wait === undefined || wait > maxRetryAfterMs) return { skipStrategy: true };
      return { retryAfterInMs: wait };
    },
  };
}

/** 408 and 5xx (but 501/505), and transport errors, with exponential back-off: for idempotent requests. */
function transientStrategy(bounds: CallBounds): RetryStrategy {
  return {
    name: 'rdpRemediatorTransient',
    retry({ retryCount, response, responseError }) {
      const code = errorCode(responseError);
      const transport = responseError !== undefined && response === undefined && code !== undefined && TRANSIENT_CODES.has(code);
      const status = response?.status;
      const retryable = status !== undefined && (status === 408 || (status >= 500 && status !== 501 && status !== 505)) && retryAfterMs(response) === undefined;
      if (!transport && !retryable) return { skipStrategy: true };
      return { retryAfterInMs: backoffMs(retryCount, bounds) };
    },
  };
}

/** Only requests that never left this machine: a refused or unresolvable connection. */
function notSentStrategy(bounds: CallBounds): RetryStrategy {
  return {
    name: 'rdpRemediatorNotSent',
    retry({ retryCount, response, responseError }) {
      if (response !== undefined || !wasNeverSent(responseError)) return { skipStrategy: true };
      return { retryAfterInMs: backoffMs(retryCount, bounds) };
    },
  };
}

/**
 * ARM's retry policy, in place of the SDK's default (phase Retry). Reads, polls included, are
 * retried on 408/5xx and transport errors with exponential back-off, and on 429/503 after the
 * Retry-After they carry. A Run Command POST is not idempotent: it is retried only when ARM
 * definitely did not take it, a 429 with Retry-After (ARM's throttle refuses before the
 * request reaches Compute) or a connection that was never made. A lost answer, a reset, a
 * timeout or a 5xx surface to the compute adapter, which finds out what happened on the VM.
 */
export function armRetryPolicy(bounds: ArmBounds): PipelinePolicy {
  const idempotent = retryPolicy([throttlingStrategy(bounds.maxRetryAfterMs, [429, 503]), transientStrategy(bounds)], { maxRetries: bounds.maxRetries });
  const runCommand = retryPolicy([throttlingStrategy(bounds.maxRetryAfterMs, [429]), notSentStrategy(bounds)], { maxRetries: bounds.maxRetries });
  return {
    name: 'rdpRemediatorArmRetry',
    sendRequest: (request, next) => (isRunCommandPost(request) ? runCommand.sendRequest(request, next) : idempotent.sendRequest(request, next)),
  };
}

/**
 * Runs one SDK call with an abort signal that fires after `timeoutMs`, for clients whose calls
 * take an `abortSignal` but whose pipeline we do not shape (storage-queue). A call cut off by
 * it fails with DependencyTimeoutError naming the dependency.
 */
export async function withDeadline<T>(dependency: Dependency, timeoutMs: number, what: string, call: (abortSignal: AbortSignal) => Promise<T>): Promise<T> {
  const deadline = new AbortController();
  const timer = setTimeout(() => deadline.abort(), timeoutMs);
  try {
    return await call(deadline.signal);
  } catch (error) {
    if (deadline.signal.aborted) throw new DependencyTimeoutError(dependency, timeoutMs, `${dependency}: ${what} got no answer within ${timeoutMs} ms`, {}, { cause: error });
    throw error;
  } finally {
    clearTimeout(timer);
  }
}
