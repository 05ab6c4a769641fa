/**
 * The relaxation sweep: every relaxation whose time is up gets its restore queued, once.
 *
 * One tick is one query of the store's due entries (one indexed range query on one partition,
 * RemediationStore.listRelaxationsDue), then, for each entry:
 *
 *   1. the restore job, with an id derived from the entry (restoreJobId: the remediation id
 *      and the due time), so every tick that finds the entry asks for the same restore;
 *   2. its record, created idempotently (a second create of the same restore returns it);
 *   3. the job queued, unless its record shows a delivery took it already (running, completed);
 *   4. the entry removed.
 *
 * A crash between any two steps leaves the entry, and the next tick repeats the steps for the
 * same restore id: the create returns the record, a second message is absorbed by the worker
 * (the same id holds the VM's lease, or finds its record completed). No second, different
 * restore is ever started for one entry. The worker decides everything else (whether the
 * remediation still has something to restore, whether another restore dealt with it).
 *
 * Then a count of the relaxations still on record (RemediationStore.countRelaxations, a second
 * query, of keys only): the relaxations in force whose restore nobody has asked for yet, the
 * value of the relaxed-VMs gauge (src/telemetry/metrics.ts setRelaxedVms).
 */
import type { JobQueue } from '../adapters/job-queue.js';
import type { RelaxationDue, RemediationStore } from '../adapters/remediation-store.js';
import { restoreJobId, type RestoreJob } from '../core/job.js';
import { parseVmResourceId } from '../core/resource-id.js';
import { errorMessage } from '../errors.js';
import { queuedRecord } from './remediate.js';

export interface SweepDeps {
  readonly store: RemediationStore;
  readonly queue: JobQueue;
  readonly now?: () => Date;
}

export type SweepDecision =
  /** The restore was queued (again, after a crash: the worker absorbs the second message). */
  | { readonly entry: RelaxationDue; readonly decision: 'queued'; readonly restoreId: string }
  /** A delivery of this restore took it already: nothing queued, the entry removed. */
  | { readonly entry: RelaxationDue; readonly decision: 'taken'; readonly restoreId: string; readonly state: 'running' | 'completed' }
  /** Something failed; the entry stays for the next tick. */
  | { readonly entry: RelaxationDue; readonly decision: 'error'; readonly restoreId: string | null; readonly error: string };

export interface SweepResult {
  readonly at: string;
  readonly due: number;
  readonly decisions: readonly SweepDecision[];
  /**
   * Relaxations on record after this tick: not due yet, or due and left on record by a decision
   * `error`. One whose restore this tick queued (and whose entry it removed) is no longer counted. Null when the count
   * failed (the tick's restores are queued all the same), with the reason in `countError`.
   */
  readonly inForce: number | null;
  readonly countError?: string;
}

/** The restore job for a due entry: on the entry's VM, for the remediation that relaxed it. */
export function restoreJobFor(entry: RelaxationDue, now: Date): RestoreJob | undefined {
  const vm = parseVmResourceId(entry.vmResourceId);
  if (!vm.success) return undefined;
  return {
    id: restoreJobId(entry.remediationId, entry.dueAt),
    vm: vm.data,
    mode: 'restore',
    restoreOf: entry.remediationId,
    source: 'expiry',
    requestedAt: now.toISOString(),
    reason: `relaxation expired at ${entry.dueAt}`,
  };
}

export async function sweepExpiredRelaxations(deps: SweepDeps): Promise<SweepResult> {
  const now = (deps.now ?? (() => new Date()))();
  const due = await deps.store.listRelaxationsDue(now);
  const decisions: SweepDecision[] = [];
  for (const entry of due) decisions.push(await sweepOne(deps, entry, now));
  const counted = await deps.store.countRelaxations().then(
    (inForce) => ({ inForce }),
    (error: unknown) => ({ inForce: null, countError: errorMessage(error) }),
  );
  return { at: now.toISOString(), due: due.length, decisions, ...counted };
}

async function sweepOne(deps: SweepDeps, entry: RelaxationDue, now: Date): Promise<SweepDecision> {
  const job = restoreJobFor(entry, now);
  // Written by the pipeline from a parsed id, so this does not happen; kept, and loud, if it does.
  if (job === undefined) return { entry, decision: 'error', restoreId: null, error: `the entry names an unreadable VM resource id: ${entry.vmResourceId}` };
  try {
    const stored = await deps.store.create(queuedRecord(job));
    const state = stored.record.state;
    if (state === 'queued') await deps.queue.enqueue(job);
    await deps.store.removeRelaxationDue(entry);
    return state === 'queued' ? { entry, decision: 'queued', restoreId: job.id } : { entry, decision: 'taken', restoreId: job.id, state };
  } catch (error) {
    return { entry, decision: 'error', restoreId: job.id, error: errorMessage(error) };
  }
}
