/**
 * Restoring the security a remediation lowered (a `restore` job), once the VM's lease is held
 * and the probe has run: restore-rdp-security with the values recorded before the first
 * relaxation, and restart-rdp-services (TermService reads SecurityLayer only when it starts),
 * in one fix run whose re-read includes the loopback RDP handshake. If RDP would be locked out
 * after it, a second fix run applies the same relaxation again with a new expiry, and the
 * outcome is `restore-failed`: the VM is never silently left relaxed, nor silently locked out.
 *
 * Each fix run is posted at most once (src/core/outcome.ts, Progress): an attempt that finds
 * an earlier one's post in the record or on the VM (manifest.json the restore, manifest-2.json
 * the re-relaxation) reads it back with the probe instead.
 */
import type { RemediationStore, RelaxationDue } from '../adapters/remediation-store.js';
import type { ActionId } from '../contract/actions.js';
import type { ProbeFacts } from '../contract/facts.js';
import type { FixParameters } from '../contract/parameters.js';
import type { FixResult, PreviousRuns } from '../contract/results.js';
import { diagnose } from '../core/diagnose.js';
import { relaxationExpiry, type Job, type RestoreJob } from '../core/job.js';
import {
  judgeRestoreRun,
  relaxationActionsOf,
  RESTORE_ACTIONS,
  restoreOutcome,
  restoreParametersOf,
  securityChangesIn,
  type Evidence,
  type Outcome,
  type ProbeEvidence,
  type Progress,
  type ReadBack,
  type RemediationRecord,
  type RestoreParameters,
  type RestoreRuns,
  type RestoreVerdict,
  type SecurityChange,
} from '../core/outcome.js';
import type { Plan } from '../core/planner.js';

/** How soon the sweep tries again when a restore ended without putting the security back (VM stopped, busy, a failed run). */
export const RESTORE_RETRY_MS = 3_600_000;

/** What a restore needs from the remediation it restores. */
export interface RestoreTarget {
  readonly original: RemediationRecord & { readonly state: 'completed' };
  readonly changes: readonly SecurityChange[];
  readonly parameters: RestoreParameters;
  /** The fix actions that apply the relaxation again, should the restore lock RDP out. */
  readonly relaxActions: readonly ActionId[];
}

/** Why a remediation cannot be restored (intake answers 404, 409 or 422; the worker records it). */
export type RestoreRefusal =
  | { readonly reason: 'unknown-remediation'; readonly detail: string }
  | { readonly reason: 'not-completed'; readonly detail: string }
  | { readonly reason: 'no-security-change'; readonly detail: string }
  | { readonly reason: 'already-restored'; readonly detail: string; readonly by: string }
  | { readonly reason: 'restore-pending'; readonly detail: string; readonly by: string };

/**
 * Whether restore `record` has dealt with its remediation's relaxation: it put the security
 * back, or it applied the relaxation again under its own record (which is then the one to
 * restore). A restore that did neither left the relaxation where it was.
 */
function tookOver(record: RemediationRecord): boolean {
  return record.state === 'completed' && dealtWith(record.outcome);
}

function dealtWith(outcome: Outcome): boolean {
  return outcome.status === 'restored' || (outcome.status === 'restore-failed' && outcome.securityChanges.length > 0);
}

/**
 * Reads remediation `restoreOf` and decides whether it can be restored now: it completed with
 * security changes, and no other restore of it (other than `self`) is under way or has dealt
 * with them. One point read and one query of the VM's partition (the restores live beside it).
 */
export async function resolveRestoreTarget(store: RemediationStore, restoreOf: string, self?: string): Promise<{ readonly ok: true; readonly target: RestoreTarget } | { readonly ok: false; readonly refusal: RestoreRefusal }> {
  const original = await store.get(restoreOf);
  if (original === undefined) return { ok: false, refusal: { reason: 'unknown-remediation', detail: `remediation ${restoreOf} not found` } };
  if (original.state !== 'completed') return { ok: false, refusal: { reason: 'not-completed', detail: `remediation ${restoreOf} is ${original.state}; restore it once it has completed` } };
  const changes = securityChangesIn(original.outcome);
  if (changes.length === 0) {
    return { ok: false, refusal: { reason: 'no-security-change', detail: `remediation ${restoreOf} (${original.outcome.status}) made no security change; there is nothing to restore` } };
  }
  const others = (await store.listByVm(original.vmKey)).filter((r) => r.mode === 'restore' && r.restoreOf === restoreOf && r.id !== self);
  const done = others.find(tookOver);
  if (done !== undefined && done.state === 'completed') {
    const detail =
      done.outcome.status === 'restored'
        ? `remediation ${restoreOf} was restored by ${done.id} at ${done.completedAt}`
        : `restore ${done.id} could not restore remediation ${restoreOf} and applied its relaxation again; restore ${done.id} instead`;
    return { ok: false, refusal: { reason: 'already-restored', detail, by: done.id } };
  }
  const pending = others.find((r) => r.state !== 'completed');
  if (pending !== undefined) return { ok: false, refusal: { reason: 'restore-pending', detail: `restore ${pending.id} of remediation ${restoreOf} is ${pending.state}`, by: pending.id } };
  return { ok: true, target: { original, changes, parameters: restoreParametersOf(changes), relaxActions: relaxationActionsOf(changes) } };
}

/**
 * The due entry a completed remediation leaves behind, written before its record: the
 * relaxation it made (its security changes' expiry), or, for a restore that did not deal with
 * its remediation's relaxation (the VM was stopped or busy, a run failed, the restore did not
 * take), a retry of that one RESTORE_RETRY_MS after the restore was asked for. A fixed time, so
 * that a redelivered job writes the same entry.
 */
export function relaxationDueAfter(job: Job, outcome: Outcome): RelaxationDue | undefined {
  const own = securityChangesIn(outcome)[0];
  if (own !== undefined && own.expiresAt) return { dueAt: own.expiresAt, remediationId: job.id, vmResourceId: job.vm.id };
  if (job.mode !== 'restore' || outcome.status === 'restored') return undefined;
  // Nothing to retry: the remediation is gone, has nothing to restore, or another restore dealt with it.
  if (outcome.status === 'skipped' && outcome.reason === 'duplicate') return undefined;
  if (outcome.status === 'failed' && outcome.error.kind === 'not-restorable') return undefined;
  const dueAt = new Date(Date.parse(job.requestedAt) + RESTORE_RETRY_MS).toISOString();
  return { dueAt, remediationId: job.restoreOf, vmResourceId: job.vm.id };
}

/** What the restore steps need from the run they are part of (src/pipeline/remediate.ts). */
export interface RestoreSession {
  readonly job: RestoreJob;
  readonly attempt: number;
  /** What earlier attempts recorded. */
  readonly prior: Progress;
  readonly now: () => Date;
  readonly relaxTtlHours: number;
  readonly onProgress: (event: RestoreProgressEvent) => void;
  /** The evidence with this run's Run Command count and timings so far. */
  readonly evidence: (probe: ProbeEvidence) => Evidence;
  /**
   * Posts a fix payload once the record says so: `progressAt(postedAt)` is written before the
   * POST, `progressAt(null)` when ARM refused it (409: nothing started on the VM).
   */
  postFix(parameters: FixParameters, progressAt: (postedAt: string | null) => Omit<Progress, 'runCommands'>): Promise<{ readonly result: FixResult; readonly postedAt: string }>;
  /** Completes the record; `forget` is a due entry no longer needed, removed before the record is written. */
  finish(outcome: Outcome, forget?: RelaxationDue): Promise<RemediationRecord>;
}

export type RestoreProgressEvent =
  | { readonly step: 'restoring'; readonly restoreOf: string; readonly parameters: RestoreParameters }
  | { readonly step: 'restore-judged'; readonly verdict: RestoreVerdict['kind']; readonly reason?: string };

/** The plan of every restore: no finding calls for it, the record of the remediation it restores does. */
const RESTORE_PLAN: Plan = { actions: RESTORE_ACTIONS.map((id) => ({ id, because: [] })), refused: [], unresolved: [] };

/**
 * The restore after the probe: post the restore (or read back the earlier attempt's), judge
 * it on the re-read, apply the relaxation again when RDP would be locked out, record. Once
 * the remediation's relaxation is dealt with, its own due entry is not needed any more.
 */
export async function continueRestore(s: RestoreSession, target: RestoreTarget, probe: { readonly facts: ProbeFacts; readonly previous?: PreviousRuns | undefined }): Promise<RemediationRecord> {
  const dueAt = target.changes[0]?.expiresAt;
  const finish = (outcome: Outcome) => s.finish(outcome, dealtWith(outcome) && dueAt ? { dueAt, remediationId: target.original.id, vmResourceId: target.original.vmResourceId } : undefined);
  return restoreSteps({ ...s, finish }, target, probe);
}

async function restoreSteps(s: RestoreSession, target: RestoreTarget, probe: { readonly facts: ProbeFacts; readonly previous?: PreviousRuns | undefined }): Promise<RemediationRecord> {
  const { job, prior } = s;
  const now = s.now();
  const probeEvidence: ProbeEvidence = prior.evidence ?? { mode: 'restore', findings: diagnose(probe.facts, now), plan: RESTORE_PLAN, before: probe.facts };
  const previous = probe.previous;
  const runs = [...(previous?.runs ?? [])].sort((a, b) => a.sequence - b.sequence);
  const unreadable = previous?.unreadable ?? 0;
  const onVm = runs.length + unreadable;
  const restorePosted = prior.fixRuns >= 1 || onVm >= 1;
  const relaxPosted = prior.fixRuns >= 2 || onVm >= 2;
  const readBack: ReadBack | undefined = restorePosted ? { attempt: s.attempt, runs: runs.map((r) => r.sequence), unreadable } : undefined;
  const withReadBack = readBack ? { readBack } : {};
  const backupDir = previous && (runs.length > 0 || unreadable > 0) ? previous.dir : null;
  s.onProgress({ step: 'restoring', restoreOf: target.original.id, parameters: target.parameters });

  if (relaxPosted) {
    // Both runs were posted by an earlier attempt: judge from what the VM kept, post nothing.
    const relaxRun = prior.relaxRun;
    const verdict: RestoreVerdict = { kind: 'locked-out', reason: relaxRun?.reason ?? 'an interrupted attempt found the restore would lock RDP out', remaining: relaxRun?.remaining ?? [] };
    const relax = runs.find((r) => r.sequence >= 2);
    const runsOf: RestoreRuns = {
      restore: { actions: runs.find((r) => r.sequence === 1)?.actions ?? [], verify: null, backupDir },
      relax: {
        ok: relax !== undefined,
        error: relax ? null : { code: 'no-manifest', message: `no readable manifest of the re-relaxation in ${previous?.dir ?? 'the run directory'}; it is not posted again` },
        actions: relax?.actions ?? [],
        verify: probe.facts,
        backupDir,
        expiresAt: relaxationExpiry(new Date(relaxRun?.postedAt ?? now.toISOString()), s.relaxTtlHours),
      },
      ...withReadBack,
    };
    return s.finish(restoreOutcome(s.evidence(probeEvidence), verdict, target.parameters, runsOf, now));
  }

  let restore: RestoreRuns['restore'];
  let verdict: RestoreVerdict;
  let restorePostedAt = prior.fixPostedAt;
  if (restorePosted) {
    // The restore was posted by an earlier attempt: the probe just read what it left, as its re-read.
    const run = runs.find((r) => r.sequence === 1);
    restore = { actions: run?.actions ?? [], verify: probe.facts, backupDir };
    const error = run ? null : { code: 'no-manifest', message: `the restore was posted, but the VM holds no readable manifest of it${unreadable ? ` (${unreadable} unreadable)` : ''}; it is not posted again` };
    verdict = judgeRestoreRun({ ok: run !== undefined, error, actions: restore.actions }, probe.facts, now);
  } else {
    const fixing = { attempt: s.attempt, fixRunId: job.id, plannedActions: RESTORE_ACTIONS, evidence: probeEvidence };
    const parameters: FixParameters = { RunId: job.id, Actions: RESTORE_ACTIONS.join(','), DryRun: 'false', ...target.parameters };
    const { result, postedAt } = await s.postFix(parameters, (at) => (at ? { ...fixing, phase: 'fixing', fixRuns: 1, fixPostedAt: at } : { ...fixing, phase: 'fixing', fixRuns: 0 }));
    restorePostedAt = postedAt;
    restore = { actions: result.actions, verify: result.verify, backupDir: result.backupDir };
    verdict = judgeRestoreRun(result, result.verify, s.now());
  }
  s.onProgress({ step: 'restore-judged', verdict: verdict.kind, ...(verdict.kind === 'restored' ? {} : { reason: verdict.reason }) });
  if (verdict.kind !== 'locked-out') return s.finish(restoreOutcome(s.evidence(probeEvidence), verdict, target.parameters, { restore, ...withReadBack }, s.now()));

  // RDP would be locked out: apply the same relaxation again, once, with a new expiry.
  const relaxing = { attempt: s.attempt, fixRunId: job.id, plannedActions: RESTORE_ACTIONS, evidence: probeEvidence, ...(restorePostedAt ? { fixPostedAt: restorePostedAt } : {}) };
  const parameters: FixParameters = { RunId: job.id, Actions: target.relaxActions.join(','), DryRun: 'false' };
  const { result, postedAt } = await s.postFix(parameters, (at) =>
    at
      ? { ...relaxing, phase: 'relaxing', fixRuns: 2, relaxRun: { plannedActions: target.relaxActions, postedAt: at, reason: verdict.reason, remaining: verdict.remaining } }
      : { ...relaxing, phase: 'fixing', fixRuns: 1 },
  );
  const relax = { ok: result.ok, error: result.error, actions: result.actions, verify: result.verify, backupDir: result.backupDir, expiresAt: relaxationExpiry(new Date(postedAt), s.relaxTtlHours) };
  return s.finish(restoreOutcome(s.evidence(probeEvidence), verdict, target.parameters, { restore, relax, ...withReadBack }, s.now()));
}
