/**
 * The recorded result of one remediation, and the pure decision of which outcome a run
 * earned. A record is queued, running, or completed with exactly one outcome.
 */
import { ActionIdSchema, inCanonicalOrder, isSecurityLowering, type ActionId, type Permission } from '../contract/actions.js';
import type { ProbeFacts } from '../contract/facts.js';
import type { ActionResult, FixResult, PreviousRuns, Restore } from '../contract/results.js';
import type { ComputeFailureKind } from '../errors.js';
import { blockingFindings, describeHandshake, diagnose, EXPLAINS_HANDSHAKE, handshakeVerdict, type Finding, type FindingCode } from './diagnose.js';
import type { AlertEvidence, JobMode, Source } from './job.js';
import type { Mode } from './modes.js';
import type { Plan } from './planner.js';
import type { SkipReason } from './vm.js';

export interface Timings {
  readonly totalMs: number;
  readonly probeMs?: number;
  readonly fixMs?: number;
}

/** A security-lowering change as the fix reported it (and the VM's manifest keeps it), and how to undo it. */
export interface RecordedChange {
  readonly action: string;
  readonly before: ActionResult['before'];
  readonly after: ActionResult['after'];
  readonly restore: Restore;
}

/** A security-lowering change in an outcome: the recorded change, and when it is reverted. */
export interface SecurityChange extends RecordedChange {
  /**
   * When the relaxation sweep restores it (ISO 8601): the time the fix was posted plus the
   * relaxation's hours (SECURITY_RELAX_TTL_HOURS, or less when the request asked for less).
   * The pipeline always sets it; only records written before relaxations expired lack it.
   */
  readonly expiresAt?: string;
}

/** The values restore-rdp-security is sent: `RestoreSecurityLayer`, `RestoreUserAuthentication`, each only when known. */
export type RestoreParameters = Restore['parameters'];

/** What the probe before the fix found: the evidence a fix is judged against. */
export interface ProbeEvidence {
  /** The effective mode of a remediation; `restore` for a restore. */
  readonly mode: Mode | 'restore';
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
  | ({
      /** The security a remediation lowered is back, and the VM still accepts RDP (the re-read's handshake and findings). */
      readonly status: 'restored';
      readonly restoreParameters: RestoreParameters;
      readonly actions: readonly ActionResult[];
      readonly after: ProbeFacts;
      /** Always empty: a restore lowers nothing. */
      readonly securityChanges: readonly SecurityChange[];
      readonly backupDir: string | null;
      readonly readBack?: ReadBack;
    } & Evidence)
  | ({
      /**
       * The security is not back. `lockedOut`: the restore would have locked RDP out (the
       * re-read's handshake failed, or a finding on the TLS or NLA path blocked), so the same
       * relaxation was applied again with a new expiry (its changes in `securityChanges`).
       * Otherwise the restore did not take, and the relaxation in force stays as it was.
       */
      readonly status: 'restore-failed';
      readonly reason: string;
      readonly lockedOut: boolean;
      /** Blocking findings after the restore (what it would have locked out on). */
      readonly remaining: readonly FindingCode[];
      readonly restoreParameters: RestoreParameters;
      /** The restore run's actions, then the re-relaxation's. */
      readonly actions: readonly ActionResult[];
      /** The facts last read: after the re-relaxation when there was one. */
      readonly after: ProbeFacts | null;
      readonly securityChanges: readonly SecurityChange[];
      readonly backupDir: string | null;
      readonly readBack?: ReadBack;
    } & Evidence)
  | { readonly status: 'skipped'; readonly reason: SkipReason; readonly detail: string; readonly runCommands: number; readonly timings: Timings }
  | {
      readonly status: 'failed';
      /** `not-restorable`: a restore found nothing it could act on (the remediation is gone, or has no security change). */
      readonly error: { readonly kind: ComputeFailureKind | 'payload' | 'internal' | 'poison' | 'timeout' | 'run-command-outcome-unknown' | 'not-restorable'; readonly message: string };
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
 *   queued ─▶ running/probing ─▶ running/fixing ─▶ [running/relaxing] ─▶ completed
 *                 │   ▲                 │                  │
 *                 │   └── attempt n+1 ◀─┴──────────────────┘ (crash, lost save: the message is delivered again)
 *                 └─▶ completed (healthy, diagnose, skipped, failed: no fix)
 *
 * `fixing` is written, with `fixRuns: 1`, before the fix is posted; a later attempt that finds
 * it (or finds a manifest of this RunId on the VM) never posts the fix again but reads back
 * what the VM kept. A completed record keeps its progress (without the evidence).
 *
 * A restore has a second fix run, only when its first (restore-rdp-security) would lock RDP
 * out: `relaxing` is written, with `fixRuns: 2` and `relaxRun`, before the relaxation is posted
 * again. Each of the two is posted at most once: a later attempt reads back `manifest.json`
 * (the restore) and `manifest-2.json` (the re-relaxation) instead, and posts the second only
 * when neither the record nor the VM shows it was.
 */
export interface Progress {
  /** Deliveries of the job that held the VM's lease: 1 for the first, 2 for the first resume, ... */
  readonly attempt: number;
  /** What the last attempt was doing when it last wrote: posting (or waiting for) the probe, the fix, or a restore's re-relaxation. */
  readonly phase: 'probing' | 'fixing' | 'relaxing';
  /** Run Commands posted for this remediation so far, over all attempts (a 409-refused post does not count). */
  readonly runCommands: number;
  /**
   * Fix payloads posted for this remediation: 0 or 1 (a restore: 0, 1 or 2), never more.
   * Written before each post.
   */
  readonly fixRuns: number;
  /** The RunId the fix was posted with: the remediation id, under which the VM keeps its manifests. */
  readonly fixRunId?: string;
  readonly plannedActions?: readonly ActionId[];
  readonly fixPostedAt?: string;
  /** What the probe before the fix found; kept while running, for an attempt that judges the fix by read-back. */
  readonly evidence?: ProbeEvidence;
  /** A restore's second fix run, re-applying the relaxation: what it ran, when, and why the restore could not stand. */
  readonly relaxRun?: { readonly plannedActions: readonly ActionId[]; readonly postedAt: string; readonly reason: string; readonly remaining: readonly FindingCode[] };
}

export interface RecordBase {
  readonly id: string;
  readonly vmResourceId: string;
  readonly vmKey: string;
  readonly source: Source;
  readonly mode: JobMode;
  /** Always empty for a restore. */
  readonly allow: readonly Permission[];
  /** Repair: the relaxation lifetime the request asked for (SECURITY_RELAX_TTL_HOURS caps it). */
  readonly relaxForHours?: number;
  /** Restore: the remediation whose security changes it puts back. */
  readonly restoreOf?: string;
  /** Source 'alert': what the alert itself said about this VM (its Logs rows for a workspace alert). */
  readonly alert?: AlertEvidence;
  readonly requestedAt: string;
  readonly reason?: string;
  readonly updatedAt: string;
  /** Alert deliveries that this remediation absorbed as duplicates (read from the store). */
  readonly duplicates?: number;
  /** Absent until a job took the VM's lease for it. */
  readonly progress?: Progress;
}

/** The request's part of a record, the same in every state (what every rewrite of the record keeps). */
export function requestPartOf(record: RemediationRecord): Omit<RecordBase, 'updatedAt' | 'duplicates' | 'progress'> {
  const { id, vmResourceId, vmKey, source, mode, allow, relaxForHours, restoreOf, alert, requestedAt, reason } = record;
  return {
    id,
    vmResourceId,
    vmKey,
    source,
    mode,
    allow,
    ...(relaxForHours === undefined ? {} : { relaxForHours }),
    ...(restoreOf === undefined ? {} : { restoreOf }),
    ...(alert === undefined ? {} : { alert }),
    requestedAt,
    ...(reason === undefined ? {} : { reason }),
  };
}

export type RemediationRecord =
  | (RecordBase & { readonly state: 'queued' })
  | (RecordBase & { readonly state: 'running'; readonly startedAt: string })
  | (RecordBase & { readonly state: 'completed'; readonly startedAt: string | null; readonly completedAt: string; readonly outcome: Outcome });

/** The security-lowering changes among a fix's actions, as the VM's manifests record them. */
export function securityChangesOf(actions: readonly ActionResult[]): RecordedChange[] {
  return actions.flatMap((a) => (a.changed && a.restore ? [{ action: a.id, before: a.before, after: a.after, restore: a.restore }] : []));
}

/** Each change with the time it is due to be reverted (none given: as recorded). */
export function withExpiry(changes: readonly RecordedChange[], expiresAt: string | undefined): SecurityChange[] {
  return expiresAt === undefined ? [...changes] : changes.map((c) => ({ ...c, expiresAt }));
}

/**
 * Judges a fix run: fixed when every action that ran verified and the re-read facts show no
 * blocking finding; otherwise not-fixed, naming what remains. A security-lowering change is
 * due to be reverted at `expiresAt`, which the pipeline works out from when it posted the fix.
 */
export function judgeFix(evidence: Evidence, fix: FixResult, now: Date, expiresAt?: string): Outcome {
  const securityChanges = withExpiry(securityChangesOf(fix.actions), expiresAt);
  const failedActions = fix.actions.filter((a) => a.error !== null || !a.verified);
  const after = fix.verify;
  const remaining = after === null ? evidence.findings.filter((f) => f.severity === 'blocking').map((f) => f.code) : blockingFindings(diagnose(after, now)).map((f) => f.code);
  const common = { ...evidence, actions: fix.actions, securityChanges, backupDir: fix.backupDir };
  // Where the probe could run the loopback handshake, "fixed" must be shown the way a client
  // feels it: diagnose() already reports a handshake that still fails; a re-read that could not
  // run it at all proves nothing either.
  const unproven = after !== null && handshakeVerdict(evidence.before, now).kind !== 'not-run' && handshakeVerdict(after, now).kind === 'not-run';

  if (after !== null && remaining.length === 0 && failedActions.length === 0 && fix.ok && !unproven) {
    return { status: 'fixed', ...common, after };
  }
  const reasons: string[] = [];
  if (!fix.ok && fix.error) reasons.push(`fix payload failed: ${fix.error.message}`);
  if (unproven) reasons.push('the loopback RDP handshake could not be run after the changes, so the fix is not proven');
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
export function judgeReadBack(
  evidence: Evidence,
  previous: PreviousRuns,
  after: ProbeFacts,
  now: Date,
  attempt: number,
  expiresAt?: string,
): Outcome {
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
  const judged = judgeFix(evidence, fix, now, expiresAt);
  const securityChanges = withExpiry(securityChangesOf(actions), expiresAt);
  if (judged.status === 'fixed') return { ...judged, actions, securityChanges, readBack };
  if (judged.status !== 'not-fixed') return judged;
  return { ...judged, reason: `${interruptedNote(attempt)}: ${judged.reason}`, actions, securityChanges, readBack };
}

const interruptedNote = (attempt: number) => `judged from the VM's manifests after attempt ${attempt - 1} was interrupted`;


// ---------------------------------------------------------------------------------------------
// Restores

/** The outcome's security changes, for any outcome (none where the outcome has no such field). */
export function securityChangesIn(outcome: Outcome): readonly SecurityChange[] {
  return 'securityChanges' in outcome ? outcome.securityChanges : [];
}

/**
 * What restore-rdp-security is sent to undo a remediation's relaxations: each value as it was
 * before the first change that touched it. With disable-nla (UserAuthentication 1 → 0) then
 * relax-security-layer (SecurityLayer 2 → 0, UserAuthentication already 0), that is
 * SecurityLayer 2 from the second and UserAuthentication 1 from the first.
 */
export function restoreParametersOf(changes: readonly RecordedChange[]): RestoreParameters {
  let securityLayer: RestoreParameters['RestoreSecurityLayer'];
  let userAuthentication: RestoreParameters['RestoreUserAuthentication'];
  for (const change of changes) {
    securityLayer ??= change.restore.parameters.RestoreSecurityLayer;
    userAuthentication ??= change.restore.parameters.RestoreUserAuthentication;
  }
  return {
    ...(securityLayer === undefined ? {} : { RestoreSecurityLayer: securityLayer }),
    ...(userAuthentication === undefined ? {} : { RestoreUserAuthentication: userAuthentication }),
  };
}

/**
 * The fix actions that apply a remediation's relaxation again: its security-lowering actions,
 * in canonical order, then the restart (TermService reads SecurityLayer only when it starts).
 */
export function relaxationActionsOf(changes: readonly RecordedChange[]): ActionId[] {
  const lowering = changes.flatMap((c) => {
    const id = ActionIdSchema.safeParse(c.action);
    return id.success && isSecurityLowering(id.data) ? [id.data] : [];
  });
  return [...inCanonicalOrder(lowering), 'restart-rdp-services'];
}

/** The fix actions of a restore: put the values back, then restart TermService so it loads them. */
export const RESTORE_ACTIONS: readonly ActionId[] = ['restore-rdp-security', 'restart-rdp-services'];

/**
 * Blocking findings after a restore that mean RDP would be locked out by it: the TLS path (the
 * certificate, its key, TLS 1.2), NLA that cannot reach a domain controller, a listener that did
 * not come back from the restart, and a loopback handshake that fails with nothing else to
 * explain it. A relaxation works around exactly these. Firewall findings are not among them:
 * the security layer does not change what the firewall admits.
 */
export const RESTORE_LOCKOUT_FINDINGS: ReadonlySet<FindingCode> = new Set<FindingCode>([...EXPLAINS_HANDSHAKE, 'nla-domain-unreachable', 'rdp-handshake-failed']);

/**
 * Whether RDP still works after a restore, from the facts re-read after it: the loopback
 * handshake (when the probe ran one) must get through (TLS done, or standard RDP security
 * where SecurityLayer 0 was what was restored), and no finding of RESTORE_LOCKOUT_FINDINGS may
 * block. Facts that could not be read count as locked out: the VM must not be left unreachable
 * on a guess.
 */
export function restoreLockout(after: ProbeFacts | null, now: Date): { readonly lockedOut: boolean; readonly why: readonly string[]; readonly remaining: readonly FindingCode[] } {
  if (after === null) return { lockedOut: true, why: ['the VM could not be re-read after the restore'], remaining: [] };
  const why: string[] = [];
  const verdict = handshakeVerdict(after, now);
  if (verdict.kind === 'failed') why.push(`the loopback RDP handshake fails: ${describeHandshake(verdict.attempt)}`);
  const remaining = [...new Set(blockingFindings(diagnose(after, now)).map((f) => f.code))];
  const locking = remaining.filter((code) => RESTORE_LOCKOUT_FINDINGS.has(code));
  if (locking.length > 0) why.push(`blocking: ${locking.join(', ')}`);
  return { lockedOut: why.length > 0, why, remaining };
}

/**
 * What a restore run earned: `restored` when every action verified and RDP still works
 * after it; `locked-out` when RDP would not (whatever the actions reported: the VM must stay
 * reachable); `not-restored` when an action or the payload failed but RDP works, so the
 * relaxation is still in force.
 */
export type RestoreVerdict =
  | { readonly kind: 'restored' }
  | { readonly kind: 'locked-out' | 'not-restored'; readonly reason: string; readonly remaining: readonly FindingCode[] };

export function judgeRestoreRun(run: { readonly ok: boolean; readonly error: FixResult['error']; readonly actions: readonly ActionResult[] }, after: ProbeFacts | null, now: Date): RestoreVerdict {
  const lockout = restoreLockout(after, now);
  if (lockout.lockedOut) return { kind: 'locked-out', reason: `the restore would lock RDP out: ${lockout.why.join('; ')}`, remaining: lockout.remaining };
  const reasons: string[] = [];
  if (!run.ok && run.error) reasons.push(`fix payload failed: ${run.error.message}`);
  const restore = run.actions.find((a) => a.id === 'restore-rdp-security');
  if (restore === undefined) reasons.push('restore-rdp-security did not run');
  for (const a of run.actions) {
    if (a.error !== null || !a.verified) reasons.push(a.error ? `${a.id}: ${a.error.code} ${a.error.message}` : `${a.id} did not verify`);
  }
  return reasons.length === 0 ? { kind: 'restored' } : { kind: 'not-restored', reason: `the restore did not take: ${reasons.join('; ')}`, remaining: lockout.remaining };
}

/** A restore run and, when it would have locked RDP out, the run that applied the relaxation again. */
export interface RestoreRuns {
  readonly restore: { readonly actions: readonly ActionResult[]; readonly verify: ProbeFacts | null; readonly backupDir: string | null };
  readonly relax?: { readonly ok: boolean; readonly error: FixResult['error']; readonly actions: readonly ActionResult[]; readonly verify: ProbeFacts | null; readonly backupDir: string | null; readonly expiresAt: string };
  readonly readBack?: ReadBack;
}

/**
 * The outcome of a restore from its verdict and runs. A re-relaxation's security changes carry
 * its own expiry; when it changed nothing the relaxation in force is the one being restored, and
 * the outcome has no security changes of its own.
 */
export function restoreOutcome(evidence: Evidence, verdict: RestoreVerdict, restoreParameters: RestoreParameters, runs: RestoreRuns, now: Date): Outcome {
  const actions = [...runs.restore.actions, ...(runs.relax?.actions ?? [])];
  const backupDir = runs.relax?.backupDir ?? runs.restore.backupDir;
  const readBack = runs.readBack ? { readBack: runs.readBack } : {};
  const interrupted = runs.readBack ? `${interruptedNote(runs.readBack.attempt)}: ` : '';
  // A restored verdict is only given on facts that were read (restoreLockout counts none as locked out).
  if (verdict.kind === 'restored' && runs.restore.verify !== null) {
    return { status: 'restored', ...evidence, restoreParameters, actions, after: runs.restore.verify, securityChanges: [], backupDir, ...readBack };
  }
  const reasons = [`${interrupted}${verdict.kind === 'restored' ? 'the VM could not be re-read after the restore' : verdict.reason}`];
  let securityChanges: SecurityChange[] = [];
  if (verdict.kind === 'locked-out') {
    const relax = runs.relax;
    if (relax === undefined) {
      reasons.push('the relaxation was not applied again');
    } else {
      securityChanges = withExpiry(securityChangesOf(relax.actions), relax.expiresAt);
      const failed = relax.actions.filter((a) => a.error !== null || !a.verified).map((a) => (a.error ? `${a.id}: ${a.error.code} ${a.error.message}` : `${a.id} did not verify`));
      if (!relax.ok && relax.error) failed.unshift(`fix payload failed: ${relax.error.message}`);
      const stillLocked = restoreLockout(relax.verify, now).lockedOut;
      reasons.push(
        failed.length > 0
          ? `applying the relaxation again failed: ${failed.join('; ')}`
          : `the relaxation was applied again (${relax.actions.filter((a) => a.changed).map((a) => a.id).join(', ') || 'nothing needed changing'})${securityChanges.length ? `, reverted next at ${relax.expiresAt}` : ''}${stillLocked ? '; RDP still does not pass the checks' : ''}`,
      );
    }
  }
  return {
    status: 'restore-failed',
    reason: reasons.join('; '),
    lockedOut: verdict.kind === 'locked-out',
    remaining: verdict.kind === 'restored' ? [] : verdict.remaining,
    ...evidence,
    restoreParameters,
    actions,
    after: runs.relax?.verify ?? runs.restore.verify,
    securityChanges,
    backupDir,
    ...readBack,
  };
}

/** Exit code for the CLI: 0 only when RDP works and nothing is left to do (fixed, healthy, restored). */
export function exitCodeFor(status: OutcomeStatus): number {
  switch (status) {
    case 'fixed':
    case 'healthy':
    case 'restored':
      return 0;
    case 'not-fixed':
    case 'restore-failed':
      return 2;
    case 'skipped':
      return 3;
    case 'failed':
      return 1;
  }
}
