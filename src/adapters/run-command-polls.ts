/**
 * When to poll a Run Command (pure functions and a small history, used by the compute adapter).
 *
 * Every poll is an ARM read, and in a storm ARM's read bucket (250 burst, 25/s per
 * subscription and principal) runs out before its write bucket does if each run costs many of
 * them. The SDK's poller reads once right after the 202, then every interval, then GETs the
 * final result: with runs of 20-90 s and a 5 s interval that is 5 to 20 reads a run. This
 * schedule instead:
 * - never polls before Run Command's known minimum (`minRunMs`: the extension takes about 20 s
 *   even for an empty script), nor before the Retry-After ARM sent;
 * - once it has seen enough runs of the same payload, polls at the quantiles of their
 *   durations (median, 80th, 95th), so most runs cost one or two polls, and after those every
 *   `intervalMs`; until then at 1.75, 2.5 and 4 times the minimum (35, 50 and 80 s at the
 *   default 20 s), where those quantiles fall for Run Command's usual durations (about 20 s at
 *   least, a median near 35 s, most within 90 s);
 * - takes the output from the final status, where ARM returns it (`properties.output`), so no
 *   final GET is needed (the adapter does that part).
 * Durations come from ARM's own startTime/endTime on the final status, not from when we
 * happened to poll, so the history does not drift with the schedule it drives.
 */

export interface PollScheduleOptions {
  /** No poll earlier than this after the POST was accepted. */
  readonly minRunMs: number;
  /** Between polls once the planned points are past (and when nothing is learned yet). */
  readonly intervalMs: number;
}

/** Poll points, as multiples of the minimum, before any durations are learned. */
export const UNLEARNED_POINTS = [1.75, 2.5, 4] as const;

/**
 * Runs of one payload kind seen before their quantiles replace UNLEARNED_POINTS. The first runs
 * to end are the quick ones, so too few would plan polls too early for the runs still going.
 */
export const MIN_SAMPLES = 20;
/** The most recent durations kept per payload kind. */
export const HISTORY_SIZE = 200;
/** Where the planned polls go, as quantiles of the durations seen. */
export const POLL_QUANTILES = [0.5, 0.8, 0.95] as const;

/**
 * Milliseconds to wait before the next poll of a run accepted `elapsedMs` ago.
 * `planned` are the learned poll points (ms after acceptance), empty when too little is known;
 * `retryAfterMs` is the wait ARM asked for on its last answer, if any.
 */
export function nextPollDelayMs(elapsedMs: number, planned: readonly number[], retryAfterMs: number | undefined, options: PollScheduleOptions): number {
  const points = planned.length > 0 ? planned.map((t) => Math.max(t, options.minRunMs)) : UNLEARNED_POINTS.map((f) => f * options.minRunMs);
  // The next planned point still ahead; a point reached within a millisecond counts as passed.
  const ahead = points.filter((t) => t > elapsedMs + 1).sort((a, b) => a - b)[0];
  let at = ahead ?? elapsedMs + Math.max(1, options.intervalMs);
  if (retryAfterMs !== undefined && retryAfterMs > 0) at = Math.max(at, elapsedMs + retryAfterMs);
  return Math.max(0, Math.round(at - elapsedMs));
}

/** The q-quantile of sorted values (nearest rank). */
export function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[rank] ?? Number.NaN;
}

/** How long recent runs took, per payload kind (`probe`, `fix`, or any other script). */
export class RunDurations {
  private readonly byKind = new Map<string, number[]>();

  public record(kind: string | null, durationMs: number): void {
    if (!Number.isFinite(durationMs) || durationMs < 0) return;
    const key = kind ?? 'other';
    const list = this.byKind.get(key) ?? [];
    list.push(durationMs);
    if (list.length > HISTORY_SIZE) list.splice(0, list.length - HISTORY_SIZE);
    this.byKind.set(key, list);
  }

  /** The planned poll points for a kind: its duration quantiles, or none while fewer than MIN_SAMPLES runs are known. */
  public planned(kind: string | null): number[] {
    const list = this.byKind.get(kind ?? 'other') ?? [];
    if (list.length < MIN_SAMPLES) return [];
    const sorted = [...list].sort((a, b) => a - b);
    return [...new Set(POLL_QUANTILES.map((q) => quantile(sorted, q)))];
  }
}

/** ARM's duration of a finished operation, from its startTime and endTime; undefined when either is missing or unreadable. */
export function operationDurationMs(startTime: string | undefined, endTime: string | undefined): number | undefined {
  if (startTime === undefined || endTime === undefined) return undefined;
  const start = Date.parse(startTime);
  const end = Date.parse(endTime);
  return Number.isFinite(start) && Number.isFinite(end) && end >= start ? end - start : undefined;
}
