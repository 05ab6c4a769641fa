/**
 * The recorded result of one remediation, and the pure decision of which outcome a run
 * earned. A record is queued, running, or completed with exactly one outcome.
 */
import type { ActionId, Permission } from '../contract/actions.js';
import type { ProbeFacts } from '../contract/facts.js';
import type { ActionResult, FixResult, PreviousRuns, Restore } from '../contract/results.js';
import type { ComputeFailureKind } from '../errors.js';
import { blockingFindings, diagnose, type Finding, type FindingCode } from './diagnose.js';
import type { Source } from './job.js';
import type { Mode, RequestMode } from './modes.js';
import type { Plan } from './planner.js';
import type { SkipReason } from './vm.js';

export interface Timings {
  readonly totalMs: number;
  readonly probeMs?: number;
  readonly fixMs?: number;
}

/** A security-lowering change that was made, and how to undo it. */
export interface SecurityChange {
  readonly action: string;
  readonly before: ActionResult['before'];
  readonly after: ActionResult['after'];
  readonly restore: Restore;
}

/** What the probe before the fix found: the evidence a fix is judged against. */
export interface ProbeEvidence {
  readonly mode: Mode;
  readonly findings: readonly Finding[];
  readonly plan: Plan;
  readonly before: ProbeFacts;
}

export interface Evidence extends ProbeEvidence {
  readonly runCommands: number;
  readonly timings: Timings;
}

/**
 * A fix judged from what the VM kept rather than from the fix's own result line: a restarted
 * job found that an earlier attempt had posted the fix, and read its manifests back with the
 * probe instead of running it again.
 */
export interface ReadBack {
  /** The attempt that judged (2 or more). */
  readonly attempt: number;
  /** The manifests found, by sequence (manifest.json is 1). */
  readonly runs: readonly number[];
  /** Manifests that exist but could not be read. */
  readonly unreadable: number;
}

export type Outcome =
  | ({ readonly status: 'healthy' } & Evidence)
  | ({
      readonly status: 'fixed';
      readonly actions: readonly ActionResult[];
      readonly after: ProbeFacts;
      readonly securityChanges: readonly SecurityChange[];
      readonly backupDir: string | null;
      readonly readBack?: ReadBack;
    } & Evidence)
  | ({
      readonly status: 'not-fixed';
      readonly reason: string;
      /** Blocking findings still present (after the fix, or as found when nothing ran). */
      readonly remaining: readonly FindingCode[];
      readonly actions: readonly ActionResult[];
      readonly after: ProbeFacts | null;
      readonly securityChanges: readonly SecurityChange[];
      readonly backupDir: string | null;
      readonly readBack?: ReadBack;
    } & Evidence)
  | { readonly status: 'skipped'; readonly reason: SkipReason; readonly detail: string; readonly runCommands: number; readonly timings: Timings }
  | {
      readonly status: 'failed';
      readonly error: { readonly kind: ComputeFailureKind | 'payload' | 'internal' | 'poison' | 'timeout' | 'run-command-outcome-unknown'; readonly message: string };
      readonly runCommands: number;
      readonly timings: Timings;
      /** What had been learnt before the failure, if anything. */
      readonly findings?: readonly Finding[];
      readonly actions?: readonly ActionResult[];
    };

export type OutcomeStatus = Outcome['status'];

/**
 * Where a remediation got to, written into its record before each Run Command, so that a job
 * that is delivered again (after a crash, a lost save, a lost lease) resumes instead of
 * starting over. The phases of a running record:
 *
 *   queued ─▶ running/probing ─▶ running/fixing ─▶ completed
 *                 │   ▲                 │
 *                 │   └── attempt n+1 ◀─┘ (crash, lost save: the message is delivered again)
 *                 └─▶ completed (healthy, diagnose, skipped, failed: no fix)
 *
 * `fixing` is written, with `fixRuns: 1`, before the fix is posted; a later attempt that finds
 * it (or finds a manifest of this RunId on the VM) never posts the fix again but reads back
 * what the VM kept. A completed record keeps its progress (without the evidence).
 */
export interface Progress {
  /** Deliveries of the job that held the VM's lease: 1 for the first, 2 for the first resume, ... */
  readonly attempt: number;
  /** What the last attempt was doing when it last wrote: posting (or waiting for) the probe, or the fix. */
  readonly phase: 'probing' | 'fixing';
  /** Run Commands posted for this remediation so far, over all attempts (a 409-refused post does not count). */
  readonly runCommands: number;
  /** Fix payloads posted for this remediation: 0 or 1, never more. Written as 1 before the post. */
  readonly fixRuns: number;
  /** The RunId the fix was posted with: the remediation id, under which the VM keeps its manifests. */
  readonly fixRunId?: string;
  readonly plannedActions?: readonly ActionId[];
  readonly fixPostedAt?: string;
  /** What the probe before the fix found; kept while running, for an attempt that judges the fix by read-back. */
  readonly evidence?: ProbeEvidence;
}

export interface RecordBase {
  readonly id: string;
  readonly vmResourceId: string;
  readonly vmKey: string;
  readonly source: Source;
  readonly mode: RequestMode;
  readonly allow: readonly Permission[];
  readonly requestedAt: string;
  readonly reason?: string;
  readonly updatedAt: string;
  /** Alert deliveries that this remediation absorbed as duplicates (read from the store). */
  readonly duplicates?: number;
  /** Absent until a job took the VM's lease for it. */
  readonly progress?: Progress;
}

export type RemediationRecord =
  | (RecordBase & { readonly state: 'queued' })
  | (RecordBase & { readonly state: 'running'; readonly startedAt: string })
  | (RecordBase & { readonly state: 'completed'; readonly startedAt: string | null; readonly completedAt: string; readonly outcome: Outcome });

export function securityChangesOf(actions: readonly ActionResult[]): SecurityChange[] {
  return actions.flatMap((a) => (a.changed && a.restore ? [{ action: a.id, before: a.before, after: a.after, restore: a.restore }] : []));
}

/**
 * Judges a fix run: fixed when every action that ran verified and the re-read facts show no
 * blocking finding; otherwise not-fixed, naming what remains.
 */
export function judgeFix(evidence: Evidence, fix: FixResult, now: Date): Outcome {
  const securityChanges = securityChangesOf(fix.actions);
  const failedActions = fix.actions.filter((a) => a.error !== null || !a.verified);
  const after = fix.verify;
  const remaining = after === null ? evidence.findings.filter((f) => f.severity === 'blocking').map((f) => f.code) : blockingFindings(diagnose(after, now)).map((f) => f.code);
  const common = { ...evidence, actions: fix.actions, securityChanges, backupDir: fix.backupDir };

  if (after !== null && remaining.length === 0 && failedActions.length === 0 && fix.ok) {
    return { status: 'fixed', ...common, after };
  }
  const reasons: string[] = [];
  if (!fix.ok && fix.error) reasons.push(`fix payload failed: ${fix.error.message}`);
  for (const a of failedActions) reasons.push(a.error ? `${a.id}: ${a.error.code} ${a.error.message}` : `${a.id} did not verify`);
  if (after === null) reasons.push('the VM could not be re-read after the changes');
  if (remaining.length > 0) reasons.push(`still broken: ${remaining.join(', ')}`);
  return { status: 'not-fixed', reason: reasons.join('; '), remaining: [...new Set(remaining)], ...common, after };
}

/**
 * Judges a fix from what the VM kept: the actions of every manifest an earlier attempt's fix
 * run left under this RunId (all of them kept in the outcome, with their backups and security
 * changes), and the facts the resumed probe read now as the re-read. The verdict is judgeFix's
 * on the last run. Without any readable manifest nothing is known to have changed: not-fixed,
 * and the fix is not posted again.
 */
export function judgeReadBack(evidence: Evidence, previous: PreviousRuns, after: ProbeFacts, now: Date, attempt: number): Outcome {
  const runs = [...previous.runs].sort((a, b) => a.sequence - b.sequence);
  const readBack: ReadBack = { attempt, runs: runs.map((r) => r.sequence), unreadable: previous.unreadable };
  const actions = runs.flatMap((r) => r.actions);
  const last = runs.at(-1);
  if (last === undefined) {
    const remaining = blockingFindings(diagnose(after, now)).map((f) => f.code);
    const why =
      previous.unreadable > 0
        ? `a fix was posted for this remediation, but its manifest on the VM (${previous.dir}) could not be read`
        : 'a fix was posted for this remediation, but the VM holds no manifest of it: it never ran, or stopped before writing one';
    return {
      status: 'not-fixed',
      reason: `${why}; it is not posted again${remaining.length ? `; still broken: ${remaining.join(', ')}` : ''}`,
      remaining: [...new Set(remaining)],
      ...evidence,
      actions: [],
      after,
      securityChanges: [],
      backupDir: previous.unreadable > 0 ? previous.dir : null,
      readBack,
    };
  }
  const fix: FixResult = { kind: 'fix', v: 1, ok: true, runId: '', dryRun: false, backupDir: previous.dir, actions: last.actions, verify: after, error: null };
  const judged = judgeFix(evidence, fix, now);
  if (judged.status === 'fixed') return { ...judged, actions, securityChanges: securityChangesOf(actions), readBack };
  if (judged.status !== 'not-fixed') return judged;
  return { ...judged, reason: `judged from the VM's manifests after attempt ${attempt - 1} was interrupted: ${judged.reason}`, actions, securityChanges: securityChangesOf(actions), readBack };
}

/** Exit code for the CLI: 0 only when RDP works (fixed or healthy). */
export function exitCodeFor(status: OutcomeStatus): number {
  switch (status) {
    case 'fixed':
    case 'healthy':
      return 0;
    case 'not-fixed':
      return 2;
    case 'skipped':
      return 3;
    case 'failed':
      return 1;
  }
}
