/**
 * The recorded result of one remediation, and the pure decision of which outcome a run
 * earned. A record is queued, running, or completed with exactly one outcome.
 */
import type { Permission } from '../contract/actions.js';
import type { ProbeFacts } from '../contract/facts.js';
import type { ActionResult, FixResult, Restore } from '../contract/results.js';
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

interface Evidence {
  readonly mode: Mode;
  readonly findings: readonly Finding[];
  readonly plan: Plan;
  readonly before: ProbeFacts;
  readonly runCommands: number;
  readonly timings: Timings;
}

export type Outcome =
  | ({ readonly status: 'healthy' } & Evidence)
  | ({
      readonly status: 'fixed';
      readonly actions: readonly ActionResult[];
      readonly after: ProbeFacts;
      readonly securityChanges: readonly SecurityChange[];
      readonly backupDir: string | null;
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
    } & Evidence)
  | { readonly status: 'skipped'; readonly reason: SkipReason; readonly detail: string; readonly runCommands: number; readonly timings: Timings }
  | {
      readonly status: 'failed';
      readonly error: { readonly kind: ComputeFailureKind | 'payload' | 'internal' | 'poison'; readonly message: string };
      readonly runCommands: number;
      readonly timings: Timings;
      /** What had been learnt before the failure, if anything. */
      readonly findings?: readonly Finding[];
      readonly actions?: readonly ActionResult[];
    };

export type OutcomeStatus = Outcome['status'];

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
