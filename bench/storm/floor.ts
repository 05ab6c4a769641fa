/**
 * The storm's floor: the makespan of an ideal client that spends no CPU and no reads. Per
 * subscription, every VM needs a probe POST and then a fix POST, each a write through ARM's write
 * bucket (burst B, refill r per second, full at the start). The fix can go only once that VM's
 * probe run has ended; the client learns of a run's end the instant it ends; a write goes as soon
 * as a token is there, first come first served by the time it became ready. Subscriptions have
 * buckets of their own, so the floor is the slowest subscription's.
 *
 * A small discrete-event simulation, exact for the model; `closedFormFloorMs` is the
 * approximation max(2·d̄, (2N − B)/r + d̄) reported beside it.
 */

export interface FloorRun {
  /** The probe run's duration (ms, at the benchmark's time scale). */
  readonly probeMs: number;
  /** The fix run's duration (ms). */
  readonly fixMs: number;
}

export interface FloorSubscription {
  readonly writeBurst: number;
  /** Refill rate of the write bucket, tokens per second (already multiplied by the time scale). */
  readonly writesPerSecond: number;
  /** One entry per VM that needs a fix. */
  readonly vms: readonly FloorRun[];
}

export interface SubscriptionFloor {
  readonly vms: number;
  readonly floorMs: number;
  readonly closedFormMs: number;
  /** The longest probe + fix of one VM: a bound of its own, which 2·d̄ only approximates. */
  readonly slowestVmMs: number;
  /** When the ideal client finished each VM (ms from the start), ascending. */
  readonly completionsMs: readonly number[];
}

export interface Floor {
  readonly floorMs: number;
  readonly closedFormMs: number;
  readonly subscriptions: readonly SubscriptionFloor[];
  /** Every VM's ideal completion, all subscriptions merged, ascending (for the chart). */
  readonly completionsMs: readonly number[];
}

interface PendingWrite {
  readonly readyMs: number;
  /** Arrival order, to keep ties first come first served. */
  readonly seq: number;
  readonly vm: number;
  readonly kind: 'probe' | 'fix';
}

/** A binary min-heap on (readyMs, seq). */
class WriteQueue {
  private readonly items: PendingWrite[] = [];

  public get size(): number {
    return this.items.length;
  }

  private static before(a: PendingWrite, b: PendingWrite): boolean {
    return a.readyMs < b.readyMs || (a.readyMs === b.readyMs && a.seq < b.seq);
  }

  public push(item: PendingWrite): void {
    const items = this.items;
    items.push(item);
    let i = items.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      const p = items[parent] as PendingWrite;
      if (!WriteQueue.before(item, p)) break;
      items[i] = p;
      i = parent;
    }
    items[i] = item;
  }

  public pop(): PendingWrite | undefined {
    const items = this.items;
    const top = items[0];
    const last = items.pop();
    if (top === undefined || last === undefined || items.length === 0) return top;
    let i = 0;
    for (;;) {
      const left = 2 * i + 1;
      if (left >= items.length) break;
      const right = left + 1;
      const child = right < items.length && WriteQueue.before(items[right] as PendingWrite, items[left] as PendingWrite) ? right : left;
      if (!WriteQueue.before(items[child] as PendingWrite, last)) break;
      items[i] = items[child] as PendingWrite;
      i = child;
    }
    items[i] = last;
    return top;
  }
}

export function subscriptionFloor(subscription: FloorSubscription): SubscriptionFloor {
  const { writeBurst, writesPerSecond, vms } = subscription;
  if (!(writeBurst >= 1) || !(writesPerSecond > 0)) throw new RangeError('a write bucket needs a burst of at least 1 and a positive refill rate');
  const ratePerMs = writesPerSecond / 1000;
  const queue = new WriteQueue();
  let seq = 0;
  for (let vm = 0; vm < vms.length; vm++) queue.push({ readyMs: 0, seq: seq++, vm, kind: 'probe' });
  let tokens = writeBurst;
  let clockMs = 0;
  const completions: number[] = [];
  while (queue.size > 0) {
    const write = queue.pop() as PendingWrite;
    // The bucket refills up to its burst while it waits for the next write to be ready.
    const readyAt = Math.max(clockMs, write.readyMs);
    tokens = Math.min(writeBurst, tokens + (readyAt - clockMs) * ratePerMs);
    clockMs = readyAt;
    if (tokens < 1) {
      clockMs += (1 - tokens) / ratePerMs;
      tokens = 1;
    }
    tokens -= 1;
    const run = vms[write.vm] as FloorRun;
    if (write.kind === 'probe') queue.push({ readyMs: clockMs + run.probeMs, seq: seq++, vm: write.vm, kind: 'fix' });
    else completions.push(clockMs + run.fixMs);
  }
  completions.sort((a, b) => a - b);
  const slowestVmMs = vms.reduce((max, vm) => Math.max(max, vm.probeMs + vm.fixMs), 0);
  return { vms: vms.length, floorMs: completions.at(-1) ?? 0, closedFormMs: closedFormFloorMs(subscription), slowestVmMs, completionsMs: completions };
}

/** The floor over independent subscriptions: the slowest one's. */
export function stormFloor(subscriptions: readonly FloorSubscription[]): Floor {
  const floors = subscriptions.map(subscriptionFloor);
  return {
    floorMs: Math.max(0, ...floors.map((f) => f.floorMs)),
    closedFormMs: Math.max(0, ...floors.map((f) => f.closedFormMs)),
    subscriptions: floors,
    completionsMs: floors.flatMap((f) => f.completionsMs).sort((a, b) => a - b),
  };
}

export const CLOSED_FORM = 'floor ≈ max(2·d̄, (2N − B_w)/r_w + d̄) per subscription, d̄ = mean drawn run duration, B_w = write burst, r_w = write refill × time scale';

/**
 * max(2·d̄, (2N − B)/r + d̄): the runs of one VM back to back, or the writes past the burst at the
 * refill rate followed by the last run (taken as an average one).
 */
export function closedFormFloorMs(subscription: FloorSubscription): number {
  const { vms, writeBurst, writesPerSecond } = subscription;
  if (vms.length === 0) return 0;
  const mean = vms.reduce((sum, vm) => sum + vm.probeMs + vm.fixMs, 0) / (2 * vms.length);
  return Math.max(2 * mean, (Math.max(0, 2 * vms.length - writeBurst) / writesPerSecond) * 1000 + mean);
}
