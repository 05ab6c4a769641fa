/**
 * Client-side pacing: a token bucket per operation kind that every ARM request (and every
 * retry and poll) passes through before it is sent, so one instance stays under ARM's own
 * buckets instead of running into 429s. A pipeline policy, so the SDK clients need no changes.
 */
import type { PipelinePolicy as CorePipelinePolicy } from '@azure/core-rest-pipeline';

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

export function pacingPolicy(buckets: { readonly reads: TokenBucket; readonly writes: TokenBucket }): PipelinePolicy {
  return {
    name: 'rdpRemediatorPacing',
    async sendRequest(request, next) {
      await (WRITE_METHODS.has(request.method.toUpperCase()) ? buckets.writes : buckets.reads).take();
      return next(request);
    },
  };
}
