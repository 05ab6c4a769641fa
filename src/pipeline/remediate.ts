/**
 * One remediation of one VM, end to end: read the VM, check it can be reached, apply the
 * policy, take the VM's lease, probe, plan, fix and verify in one more call, judge and record.
 * All I/O comes in through `RemediationDeps`; the decisions are the core's pure functions.
 * Two Run Command invocations per remediation (probe, fix), one more probe per resumed attempt
 * (and, for a restore that would lock RDP out, one more fix).
 *
 * Exactly once, across crashes. A job can be delivered more than once: its worker crashed, a
 * save was lost, the message came back. The record is the job's state machine (`Progress` in
 * core/outcome.ts): under the VM's lease, and conditional on the version it last read, the job
 * writes where it is before each Run Command, so the next delivery resumes instead of starting
 * over. The fix is posted at most once per remediation: `fixRuns: 1` is written before its POST,
 * and a delivery that finds that, or finds a manifest of this RunId on the VM, does not post it
 * again. It probes with `ReadManifests=true` and judges from what the VM kept (`judgeReadBack`),
 * so the actions, backups and security changes of the earlier attempt end up in the outcome.
 *
 * A restore job (mode `restore`) goes the same way to its probe, then continues in
 * src/pipeline/restore.ts: a restore run, and a second run only if the restore would lock RDP out.
 *
 * Relaxations expire. A security-lowering change is due to be reverted the relaxation's hours
 * (SECURITY_RELAX_TTL_HOURS, or the repair request's shorter relaxForHours) after its fix was
 * posted; the record's security changes carry that `expiresAt`, and before the completed record
 * is written, an entry due then goes into the store, where the relaxation sweep finds it.
 */
import type { FixParameters, ProbeParameters } from '../contract/parameters.js';
import type { ProbeFacts } from '../contract/facts.js';
import type { ComputeGateway } from '../adapters/compute.js';
import { RecordVersionConflictError, type RelaxationDue, type RemediationStore, type StoredRecord } from '../adapters/remediation-store.js';
import { keepLease, LeaseLostError, leaseTiming, type LeaseKeeper, type LeaseTiming, type VmLock } from '../adapters/vm-lock.js';
import type { ActionId } from '../contract/actions.js';
import type { FixResult } from '../contract/results.js';
import { blockingFindings, diagnose } from '../core/diagnose.js';
import { DEFAULT_RELAX_TTL_HOURS, relaxationExpiry, relaxationHours, type Job } from '../core/job.js';
import { judgeFix, judgeReadBack, requestPartOf, type Evidence, type Outcome, type ProbeEvidence, type Progress, type RecordBase, type RemediationRecord, type Timings } from '../core/outcome.js';
import { planRemediation } from '../core/planner.js';
import { resolvePolicy, type EffectivePolicy, type PolicySettings } from '../core/policy.js';
import { checkEligibility, type VmView } from '../core/vm.js';
import { ComputeError, DependencyTimeoutError, errorMessage, PayloadOutputError, RemediatorError, RetryLaterError, RunCommandOutcomeUnknownError } from '../errors.js';
import { composePayload, type RunCommandPayload } from '../payloads/compose.js';
import { parseFixOutput, parseProbeOutput } from '../payloads/result-line.js';
import { continueRestore, relaxationDueAfter, resolveRestoreTarget, type RestoreProgressEvent } from './restore.js';

/** Progress, for the CLI and logs. */
export type ProgressEvent =
  | { readonly step: 'vm-read'; readonly vm: VmView }
  | { readonly step: 'policy'; readonly mode: string; readonly permissions: readonly string[] }
  | { readonly step: 'lock-acquired' }
  | { readonly step: 'run-command'; readonly payload: 'probe' | 'fix'; readonly attempt: number }
  | { readonly step: 'run-command-busy'; readonly payload: 'probe' | 'fix'; readonly attempt: number; readonly delayMs: number }
  | { readonly step: 'probed'; readonly findings: readonly string[] }
  | { readonly step: 'planned'; readonly actions: readonly ActionId[]; readonly refused: readonly ActionId[] }
  | { readonly step: 'fixed'; readonly changed: readonly ActionId[] }
  | RestoreProgressEvent;

/** How long to wait and how often to retry when another Run Command is in progress on the VM (409). */
export interface BusyRetryStrategy {
  readonly attempts: number;
  readonly delayMs: (attempt: number) => number;
}

export interface RemediationDeps {
  readonly compute: ComputeGateway;
  readonly store: RemediationStore;
  readonly lock: VmLock;
  readonly policy: PolicySettings;
  /** REMEDIATION_LOCK_TTL_SECONDS: the longest lease; the lease itself is `lease` (default leaseTiming(lockTtlMs)). */
  readonly lockTtlMs: number;
  /** The VM lease's length and heartbeat. */
  readonly lease?: LeaseTiming;
  readonly busyRetry: BusyRetryStrategy;
  /**
   * Where a queue can retry the job later, ARM throttling that outlived the SDK's retries
   * puts the job back (RetryLaterError) instead of failing it. Absent in the CLI.
   */
  readonly deferThrottledMs?: number;
  /** SECURITY_RELAX_TTL_HOURS: how long a relaxation stands at most (default 8). */
  readonly relaxTtlHours?: number;
  readonly now?: () => Date;
  readonly sleep?: (ms: number) => Promise<void>;
  readonly onProgress?: (event: ProgressEvent) => void;
}

/**
 * Writing the record failed. The job stops without an outcome and the queue delivers it again;
 * that delivery resumes from the last progress that was written.
 */
export class RecordWriteError extends RemediatorError {}

const defaultSleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

const NO_PROGRESS: Progress = { attempt: 0, phase: 'probing', runCommands: 0, fixRuns: 0 };

/** How long a job waits before looking again when the VM's lease is its own earlier delivery's. */
const OWN_LEASE_MARGIN_MS = 250;
/** How soon a delivery that found its own job's lease held looks again. */
const OWN_LEASE_RECHECK_MS = 5_000;

export async function runRemediation(job: Job, deps: RemediationDeps): Promise<RemediationRecord> {
  const now = deps.now ?? (() => new Date());
  const sleep = deps.sleep ?? defaultSleep;
  const progress = deps.onProgress ?? (() => undefined);
  const timing = deps.lease ?? leaseTiming(deps.lockTtlMs);
  const relaxTtlHours = deps.relaxTtlHours ?? DEFAULT_RELAX_TTL_HOURS;
  const started = now();
  const timings: { probeMs?: number; fixMs?: number } = {};
  const elapsed = (): Timings => ({ totalMs: now().getTime() - started.getTime(), ...timings });

  // The message may come before its record (intake and alerts enqueue first): then the job creates it.
  let stored: StoredRecord = (await deps.store.read(job.id)) ?? (await deps.store.create(queuedRecord(job)));
  if (stored.record.state === 'completed') return stored.record; // a redelivered message: the work is done
  /** What earlier attempts did, as recorded. */
  let prior = progressOf(stored.record);
  /** This attempt's progress, once it holds the VM's lease. */
  let mine: Progress | undefined;
  /** Run Commands this attempt posted (a 409-refused post does not count). */
  let posted = 0;
  const totalRunCommands = () => prior.runCommands + posted;
  let startedAt = stored.record.state === 'running' ? stored.record.startedAt : started.toISOString();

  /** Writes the record, conditional on the version last read or written. */
  const write = async (record: RemediationRecord): Promise<void> => {
    for (let tries = 1; ; tries++) {
      try {
        stored = { record, version: await deps.store.save(record, { ifVersion: stored.version }) };
        return;
      } catch (error) {
        if (!(error instanceof RecordVersionConflictError)) throw new RecordWriteError(`could not write remediation ${job.id}: ${errorMessage(error)}`, { id: job.id }, { cause: error });
        const current = await deps.store.read(job.id).catch((e: unknown) => {
          throw new RecordWriteError(`could not read remediation ${job.id}: ${errorMessage(e)}`, { id: job.id }, { cause: e });
        });
        // Only the duplicates counter kept beside the record moved (an alert absorbed meanwhile): write on top of it.
        if (current === undefined || tries >= 5 || !sameContent(current.record, stored.record)) {
          throw new RetryLaterError(`remediation ${job.id} was changed by another delivery`, 1_000, { id: job.id }, { cause: error });
        }
        stored = current;
      }
    }
  };
  const base = () => requestPartOf(stored.record);
  const kept = (): Progress | undefined => {
    const p = mine ?? (prior.attempt > 0 ? prior : undefined);
    if (p === undefined) return undefined;
    const { evidence: _evidence, ...rest } = p;
    return rest;
  };
  const commitProgress = async (next: Omit<Progress, 'runCommands'>, aboutToPost: boolean): Promise<void> => {
    mine = { ...next, runCommands: totalRunCommands() + (aboutToPost ? 1 : 0) };
    await write({ ...base(), progress: mine, state: 'running', startedAt, updatedAt: now().toISOString() });
  };
  /**
   * Completes the record. The relaxation's due entry goes first: a relaxation is never on
   * record without the entry that reverts it (a redelivery writes the same entry again). Then
   * `forget`, an entry this outcome makes unnecessary: best effort, since a leftover only costs
   * the sweep a restore that finds the relaxation dealt with.
   */
  const finish = async (outcome: Outcome, forget?: RelaxationDue): Promise<RemediationRecord> => {
    const due = relaxationDueAfter(job, outcome);
    if (due !== undefined) {
      await deps.store.addRelaxationDue(due).catch((error: unknown) => {
        throw new RecordWriteError(`could not note the relaxation of remediation ${due.remediationId} due at ${due.dueAt}: ${errorMessage(error)}`, { id: job.id }, { cause: error });
      });
    }
    if (forget !== undefined) await deps.store.removeRelaxationDue(forget).catch(() => undefined);
    const completedAt = now().toISOString();
    const progressToKeep = kept();
    const record: RemediationRecord = {
      ...base(),
      ...(progressToKeep ? { progress: { ...progressToKeep, runCommands: totalRunCommands() } } : {}),
      state: 'completed',
      startedAt,
      completedAt,
      updatedAt: completedAt,
      outcome,
    };
    await write(record);
    return record;
  };
  /** Said wherever a remediation ends without judging a fix that was posted: the VM keeps its record. */
  const fixNote = (): string => {
    const p = mine ?? prior;
    return p.fixRuns > 0 ? `; a fix was posted for this remediation (RunId ${p.fixRunId ?? job.id}): its manifest in %ProgramData%\\RdpRemediation\\${p.fixRunId ?? job.id} on the VM records what it did` : '';
  };

  const runPayload = async (
    payload: RunCommandPayload,
    kind: 'probe' | 'fix',
    hooks: { readonly beforePost?: () => Promise<void>; readonly refused?: () => Promise<void> } = {},
  ): Promise<{ stdout: string; stderr: string }> => {
    for (let attempt = 1; ; attempt++) {
      progress({ step: 'run-command', payload: kind, attempt });
      await hooks.beforePost?.();
      try {
        posted++;
        return await deps.compute.runCommand(job.vm, payload);
      } catch (error) {
        // A 409 means the call never started a run on the VM: it does not count.
        if (error instanceof ComputeError && error.kind === 'busy') {
          posted--;
          await hooks.refused?.();
          if (attempt < deps.busyRetry.attempts) {
            const delayMs = deps.busyRetry.delayMs(attempt);
            progress({ step: 'run-command-busy', payload: kind, attempt, delayMs });
            await sleep(delayMs);
            continue;
          }
        }
        throw error;
      }
    }
  };

  /**
   * Posts a fix payload: `progressAt(postedAt)` is written into the record first, and only while
   * the lease is still ours (a later delivery then reads back instead of posting again);
   * `progressAt(null)` when ARM refused it (409: another command runs, nothing started).
   */
  const postFix = async (
    parameters: FixParameters,
    progressAt: (postedAt: string | null) => Omit<Progress, 'runCommands'>,
  ): Promise<{ readonly result: FixResult; readonly postedAt: string }> => {
    const lease = keeper;
    if (lease === undefined) throw new RemediatorError('a fix is posted only under the VM\'s lease');
    let postedAt = now().toISOString();
    const fixStart = now().getTime();
    const out = await runPayload(composePayload({ kind: 'fix', parameters }), 'fix', {
      beforePost: async () => {
        await lease.confirm();
        postedAt = now().toISOString();
        await commitProgress(progressAt(postedAt), true);
      },
      refused: () => commitProgress(progressAt(null), false),
    });
    timings.fixMs = (timings.fixMs ?? 0) + (now().getTime() - fixStart);
    return { result: parseFixOutput(out.stdout, out.stderr), postedAt };
  };
  /** The evidence with the Run Commands and time spent so far. */
  const withCounts = (probe: ProbeEvidence): Evidence => ({ ...probe, runCommands: totalRunCommands(), timings: elapsed() });

  /**
   * Completes a record without the VM's lease (the VM cannot be worked on). When the record is
   * running, another delivery of this job may be alive and working on it: then that one decides.
   */
  const skipWithoutLease = async (outcome: Outcome): Promise<RemediationRecord> => {
    if (stored.record.state === 'running' && (await deps.lock.holder(job.vm.key)) === job.id) {
      throw new RetryLaterError(`another delivery of job ${job.id} holds the VM`, timing.durationMs);
    }
    return finish(outcome);
  };

  let keeper: LeaseKeeper | undefined;
  try {
    const vm = await deps.compute.getVm(job.vm);
    progress({ step: 'vm-read', vm });
    const eligibility = checkEligibility(vm);
    if (!eligibility.eligible) return await skipWithoutLease({ status: 'skipped', reason: eligibility.reason, detail: `${eligibility.detail}${fixNote()}`, runCommands: totalRunCommands(), timings: elapsed() });

    // A restore raises security, so only a VM that is off limits ('off') keeps it from running.
    const policy = resolvePolicy(deps.policy, vm.tags, job.mode === 'restore' ? { mode: 'repair', allow: [] } : job);
    progress({ step: 'policy', mode: policy.mode, permissions: policy.permissions });
    if (policy.mode === 'off') {
      const detail = `remediation is off for this VM (${policy.vmModeSource === 'tag' ? 'tag' : 'deployment default'})${policy.ignoredTags.length ? `; unreadable tags: ${policy.ignoredTags.join(', ')}` : ''}`;
      return await skipWithoutLease({ status: 'skipped', reason: 'policy-off', detail: `${detail}${fixNote()}`, runCommands: totalRunCommands(), timings: elapsed() });
    }

    const acquired = await deps.lock.acquire(job.vm.key, job.id, timing.durationMs);
    if (!acquired.acquired && acquired.holder === job.id) {
      // An earlier delivery of this very job holds the VM: alive (it renews the lease, and will
      // finish) or crashed (the lease runs out within timing.durationMs, and this message is its
      // redelivery, so it must not be dropped). Look again soon, and just after it would run out:
      // an alive holder usually finishes within seconds.
      throw new RetryLaterError(`job ${job.id} already holds the VM`, Math.min(OWN_LEASE_RECHECK_MS, Math.max(1000, acquired.expiresAt - Date.now() + OWN_LEASE_MARGIN_MS)));
    }
    if (!acquired.acquired) {
      return await finish({ status: 'skipped', reason: 'vm-busy', detail: `remediation ${acquired.holder} holds this VM`, runCommands: totalRunCommands(), timings: elapsed() });
    }
    keeper = keepLease(deps.lock, acquired.lease, timing);
    progress({ step: 'lock-acquired' });

    // Under the lease, look again: an earlier delivery may have finished or moved on meanwhile.
    const fresh = await deps.store.read(job.id);
    if (fresh) stored = fresh;
    if (stored.record.state === 'completed') return stored.record;
    prior = progressOf(stored.record);
    if (stored.record.state === 'running') startedAt = stored.record.startedAt;
    const resumed = prior.attempt > 0 || stored.record.state === 'running';
    const attempt = prior.attempt + 1;
    const { attempt: _attempt, phase: _phase, runCommands: _runCommands, ...carried } = prior;

    // A restore acts on the record of the remediation it restores: read it under the lease, so
    // that of two restores of one remediation the second sees what the first did.
    const restoreTarget = job.mode === 'restore' ? await resolveRestoreTarget(deps.store, job.restoreOf, job.id) : undefined;
    if (restoreTarget !== undefined && !restoreTarget.ok) {
      const { refusal } = restoreTarget;
      return await finish(
        refusal.reason === 'already-restored' || refusal.reason === 'restore-pending'
          ? { status: 'skipped', reason: 'duplicate', detail: `${refusal.detail}${fixNote()}`, runCommands: totalRunCommands(), timings: elapsed() }
          : { status: 'failed', error: { kind: 'not-restorable', message: refusal.detail }, runCommands: totalRunCommands(), timings: elapsed() },
      );
    }

    await commitProgress({ ...carried, attempt, phase: 'probing' }, true);

    // A resumed attempt asks the VM what an earlier fix run with this RunId did.
    const probeParameters: ProbeParameters = resumed ? { RunId: job.id, ReadManifests: 'true' } : { RunId: job.id };
    const probeStart = now().getTime();
    const probeOut = await runPayload(composePayload({ kind: 'probe', parameters: probeParameters }), 'probe');
    timings.probeMs = now().getTime() - probeStart;
    const probe = parseProbeOutput(probeOut.stdout, probeOut.stderr);
    if (!probe.ok) {
      return await finish({ status: 'failed', error: { kind: 'payload', message: `probe failed on the VM: ${probe.error.code} ${probe.error.message}${fixNote()}` }, runCommands: totalRunCommands(), timings: elapsed() });
    }

    if (job.mode === 'restore' && restoreTarget?.ok) {
      progress({ step: 'probed', findings: diagnose(probe.facts, now()).map((f) => f.code) });
      return await continueRestore(
        { job, attempt, prior, now, relaxTtlHours, onProgress: progress, evidence: withCounts, postFix, finish },
        restoreTarget.target,
        { facts: probe.facts, previous: probe.previous },
      );
    }
    const hours = relaxationHours(job.mode === 'restore' ? undefined : job.relaxForHours, relaxTtlHours);
    /** A relaxation is due to be reverted `hours` after its fix was posted. */
    const expiresAt = (postedAt: string | undefined) => relaxationExpiry(postedAt ? new Date(postedAt) : now(), hours);

    const previous = probe.previous;
    const fixSeenOnVm = previous !== undefined && (previous.runs.length > 0 || previous.unreadable > 0);
    if (prior.fixRuns > 0 || fixSeenOnVm) {
      // A fix with this RunId was posted before: never again. Judge from what the VM kept.
      const evidence = prior.evidence ?? evidenceFrom(probe.facts, policy, now());
      progress({ step: 'probed', findings: diagnose(probe.facts, now()).map((f) => f.code) });
      const outcome = judgeReadBack(withCounts(evidence), previous ?? { dir: '', runs: [], unreadable: 0 }, probe.facts, now(), attempt, expiresAt(prior.fixPostedAt));
      progress({ step: 'fixed', changed: 'actions' in outcome && outcome.actions ? outcome.actions.filter((a) => a.changed).map((a) => a.id) : [] });
      return await finish(withRefusals(outcome, evidence.plan));
    }

    const findings = diagnose(probe.facts, now());
    const plan = planRemediation(findings, probe.facts, policy.permissions);
    progress({ step: 'probed', findings: findings.map((f) => f.code) });
    progress({ step: 'planned', actions: plan.actions.map((a) => a.id), refused: plan.refused.map((r) => r.id) });
    const evidence = () => withCounts({ mode: policy.mode, findings, plan, before: probe.facts });

    if (blockingFindings(findings).length === 0) return await finish({ status: 'healthy', ...evidence() });

    const notFixedWithoutChange = (reason: string): Outcome => ({
      status: 'not-fixed',
      reason,
      remaining: blockingFindings(findings).map((f) => f.code),
      actions: [],
      after: null,
      securityChanges: [],
      backupDir: null,
      ...evidence(),
    });
    if (policy.mode === 'diagnose') {
      const why = job.mode === 'diagnose' ? 'diagnose mode: nothing changed' : `policy allows diagnose only (${policy.vmModeSource}); nothing changed`;
      return await finish(notFixedWithoutChange(`${why}; the plan would run ${plan.actions.map((a) => a.id).join(', ') || 'nothing'}`));
    }
    if (plan.actions.length === 0) {
      const refusals = plan.refused.map((r) => `${r.id} refused (${r.reason}): ${r.detail}`);
      return await finish(notFixedWithoutChange(refusals.length ? refusals.join('; ') : `no safe action for: ${plan.unresolved.join(', ')}`));
    }

    // The planner never plans restore-rdp-security, so the restore parameters are not sent
    // (an empty Run Command parameter would break the agent's command line).
    const plannedActions = plan.actions.map((a) => a.id);
    const parameters: FixParameters = { RunId: job.id, Actions: plannedActions.join(','), DryRun: 'false' };
    const fixing: Omit<Progress, 'runCommands' | 'fixRuns'> = {
      attempt,
      phase: 'fixing',
      fixRunId: job.id,
      plannedActions,
      evidence: { mode: policy.mode, findings, plan, before: probe.facts } satisfies ProbeEvidence,
    };
    // The one POST that changes the VM.
    const { result: fix, postedAt } = await postFix(parameters, (at) => (at ? { ...fixing, fixRuns: 1, fixPostedAt: at } : { ...fixing, fixRuns: 0 }));
    progress({ step: 'fixed', changed: fix.actions.filter((a) => a.changed).map((a) => a.id) });
    return await finish(withRefusals(judgeFix(evidence(), fix, now(), expiresAt(postedAt)), plan));
  } catch (error) {
    if (error instanceof RetryLaterError || error instanceof RecordWriteError) throw error;
    if (error instanceof LeaseLostError) throw new RetryLaterError(`the VM's lease was lost: ${error.message}`, 1_000, {}, { cause: error });
    // Throttled beyond the retries, ARM or Logs hung past their bounds, or a Run Command whose
    // outcome the compute adapter could not establish (it never re-posts one): back to queued,
    // keeping what this and earlier attempts did. The next delivery resumes from it, and a fix
    // that was posted is read back from the VM's manifests, never sent again.
    const deferrable =
      (error instanceof ComputeError && error.kind === 'throttled') ||
      (error instanceof DependencyTimeoutError && (error.dependency === 'arm' || error.dependency === 'logs')) ||
      error instanceof RunCommandOutcomeUnknownError;
    if (deps.deferThrottledMs !== undefined && deferrable) {
      const progressToKeep = kept();
      await write({ ...base(), ...(progressToKeep ? { progress: { ...progressToKeep, runCommands: totalRunCommands() } } : {}), state: 'queued', updatedAt: now().toISOString() });
      throw new RetryLaterError(`the job is put back: ${errorMessage(error)}`, deps.deferThrottledMs, {}, { cause: error });
    }
    if (deps.deferThrottledMs !== undefined && error instanceof ComputeError && error.kind === 'busy' && (mine ?? prior).fixRuns > 0) {
      // The read-back probe of a posted fix met another Run Command every time: most likely that
      // very fix, still running after its worker died. Failing now would lose what it did; the
      // record stays as it is and the job looks again later (a Run Command ends within 90 min).
      throw new RetryLaterError('the VM is still running a Run Command; the posted fix is read back later', deps.deferThrottledMs, {}, { cause: error });
    }
    // Any other error is recorded as the failure it is.
    const kind =
      error instanceof ComputeError
        ? error.kind
        : error instanceof PayloadOutputError
          ? 'payload'
          : error instanceof DependencyTimeoutError
            ? 'timeout'
            : error instanceof RunCommandOutcomeUnknownError
              ? 'run-command-outcome-unknown'
              : 'internal';
    return await finish({ status: 'failed', error: { kind, message: `${errorMessage(error)}${fixNote()}` }, runCommands: totalRunCommands(), timings: elapsed() });
  } finally {
    if (keeper) {
      const last = await keeper.stop();
      await deps.lock.release(last).catch(() => undefined);
    }
  }
}

/** A not-fixed outcome names the actions the plan refused. */
function withRefusals(outcome: Outcome, plan: ProbeEvidence['plan']): Outcome {
  if (outcome.status !== 'not-fixed' || plan.refused.length === 0) return outcome;
  return { ...outcome, reason: `${outcome.reason}; refused: ${plan.refused.map((r) => `${r.id} (${r.reason})`).join(', ')}` };
}

/** Evidence when the record kept none (a manifest found on the VM although the record says no fix was posted). */
function evidenceFrom(facts: ProbeFacts, policy: EffectivePolicy, now: Date): ProbeEvidence {
  const findings = diagnose(facts, now);
  return { mode: policy.mode, findings, plan: planRemediation(findings, facts, policy.permissions), before: facts };
}

function progressOf(record: RemediationRecord): Progress {
  return record.progress ?? NO_PROGRESS;
}


/** Equal but for the duplicates counter, which the store keeps beside the record. */
function sameContent(a: RemediationRecord, b: RemediationRecord): boolean {
  const strip = (r: RemediationRecord) => {
    const { duplicates: _duplicates, ...rest } = r;
    return JSON.stringify(rest);
  };
  return strip(a) === strip(b);
}

function baseRecord(job: Job, at: string): RecordBase {
  return {
    id: job.id,
    vmResourceId: job.vm.id,
    vmKey: job.vm.key,
    source: job.source,
    ...(job.mode === 'restore'
      ? { mode: job.mode, allow: [], restoreOf: job.restoreOf }
      : {
          mode: job.mode,
          allow: job.allow,
          ...(job.relaxForHours === undefined ? {} : { relaxForHours: job.relaxForHours }),
          ...(job.alert === undefined ? {} : { alert: job.alert }),
        }),
    requestedAt: job.requestedAt,
    ...(job.reason === undefined ? {} : { reason: job.reason }),
    updatedAt: at,
  };
}

/** A queued record: written by intake and alerts once the job is enqueued, or by the worker when the message came first. */
export function queuedRecord(job: Job): RemediationRecord {
  return { ...baseRecord(job, job.requestedAt), state: 'queued' };
}
