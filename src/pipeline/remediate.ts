/**
 * One remediation of one VM, end to end: read the VM, check it can be reached, apply the
 * policy, take the VM's lock, probe, plan, fix and verify in one more call, judge and record.
 * All I/O comes in through `RemediationDeps`; the decisions are the core's pure functions.
 * At most two Run Command invocations per remediation.
 */
import type { ActionId } from '../contract/actions.js';
import type { FixParameters } from '../contract/parameters.js';
import type { ComputeGateway } from '../adapters/compute.js';
import type { RemediationStore } from '../adapters/remediation-store.js';
import type { Lease, VmLock } from '../adapters/vm-lock.js';
import { blockingFindings, diagnose } from '../core/diagnose.js';
import type { Job } from '../core/job.js';
import { judgeFix, type Outcome, type RemediationRecord, type Timings } from '../core/outcome.js';
import { planRemediation } from '../core/planner.js';
import { resolvePolicy, type PolicySettings } from '../core/policy.js';
import { checkEligibility, type VmView } from '../core/vm.js';
import { ComputeError, errorMessage, PayloadOutputError, RetryLaterError } from '../errors.js';
import { composePayload, type RunCommandPayload } from '../payloads/compose.js';
import { parseFixOutput, parseProbeOutput } from '../payloads/result-line.js';

/** Progress, for the CLI and logs. */
export type ProgressEvent =
  | { readonly step: 'vm-read'; readonly vm: VmView }
  | { readonly step: 'policy'; readonly mode: string; readonly permissions: readonly string[] }
  | { readonly step: 'lock-acquired' }
  | { readonly step: 'run-command'; readonly payload: 'probe' | 'fix'; readonly attempt: number }
  | { readonly step: 'run-command-busy'; readonly payload: 'probe' | 'fix'; readonly attempt: number; readonly delayMs: number }
  | { readonly step: 'probed'; readonly findings: readonly string[] }
  | { readonly step: 'planned'; readonly actions: readonly ActionId[]; readonly refused: readonly ActionId[] }
  | { readonly step: 'fixed'; readonly changed: readonly ActionId[] };

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
  readonly lockTtlMs: number;
  readonly busyRetry: BusyRetryStrategy;
  /**
   * Where a queue can retry the job later, ARM throttling that outlived the SDK's retries
   * puts the job back (RetryLaterError) instead of failing it. Absent in the CLI.
   */
  readonly deferThrottledMs?: number;
  readonly now?: () => Date;
  readonly sleep?: (ms: number) => Promise<void>;
  readonly onProgress?: (event: ProgressEvent) => void;
}

const defaultSleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export async function runRemediation(job: Job, deps: RemediationDeps): Promise<RemediationRecord> {
  const now = deps.now ?? (() => new Date());
  const sleep = deps.sleep ?? defaultSleep;
  const progress = deps.onProgress ?? (() => undefined);
  const started = now();
  const startedAt = started.toISOString();
  let runCommands = 0;
  const timings: { probeMs?: number; fixMs?: number } = {};
  const elapsed = (): Timings => ({ totalMs: now().getTime() - started.getTime(), ...timings });

  const base = baseRecord(job, startedAt);
  const existing = await deps.store.get(job.id);
  if (existing?.state === 'completed') return existing; // a redelivered message: the work is done
  const running: RemediationRecord = { ...base, state: 'running', startedAt, updatedAt: startedAt };
  await (existing ? deps.store.save(running) : deps.store.create(running));

  const finish = async (outcome: Outcome): Promise<RemediationRecord> => {
    const completedAt = now().toISOString();
    const record: RemediationRecord = { ...base, state: 'completed', startedAt, completedAt, updatedAt: completedAt, outcome };
    await deps.store.save(record);
    return record;
  };

  const runPayload = async (payload: RunCommandPayload, kind: 'probe' | 'fix'): Promise<{ stdout: string; stderr: string }> => {
    for (let attempt = 1; ; attempt++) {
      progress({ step: 'run-command', payload: kind, attempt });
      try {
        runCommands++;
        return await deps.compute.runCommand(job.vm, payload);
      } catch (error) {
        // A 409 means the call never started a run on the VM: it does not count.
        if (error instanceof ComputeError && error.kind === 'busy') {
          runCommands--;
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

  let lease: Lease | undefined;
  try {
    const vm = await deps.compute.getVm(job.vm);
    progress({ step: 'vm-read', vm });
    const eligibility = checkEligibility(vm);
    if (!eligibility.eligible) return await finish({ status: 'skipped', reason: eligibility.reason, detail: eligibility.detail, runCommands, timings: elapsed() });

    const policy = resolvePolicy(deps.policy, vm.tags, job);
    progress({ step: 'policy', mode: policy.mode, permissions: policy.permissions });
    if (policy.mode === 'off') {
      const detail = `remediation is off for this VM (${policy.vmModeSource === 'tag' ? 'tag' : 'deployment default'})${policy.ignoredTags.length ? `; unreadable tags: ${policy.ignoredTags.join(', ')}` : ''}`;
      return await finish({ status: 'skipped', reason: 'policy-off', detail, runCommands, timings: elapsed() });
    }

    const acquired = await deps.lock.acquire(job.vm.key, job.id, deps.lockTtlMs);
    if (!acquired.acquired && acquired.holder === job.id) {
      // An earlier delivery of this very job still holds the VM (or crashed holding it): wait for it.
      throw new RetryLaterError(`job ${job.id} already holds the VM`, Math.min(60_000, Math.max(1000, acquired.expiresAt - now().getTime())));
    }
    if (!acquired.acquired) {
      return await finish({ status: 'skipped', reason: 'vm-busy', detail: `remediation ${acquired.holder} holds this VM`, runCommands, timings: elapsed() });
    }
    lease = acquired.lease;
    progress({ step: 'lock-acquired' });

    const probeStart = now().getTime();
    const probeOut = await runPayload(composePayload({ kind: 'probe', parameters: { RunId: job.id } }), 'probe');
    timings.probeMs = now().getTime() - probeStart;
    const probe = parseProbeOutput(probeOut.stdout, probeOut.stderr);
    if (!probe.ok) {
      return await finish({ status: 'failed', error: { kind: 'payload', message: `probe failed on the VM: ${probe.error.code} ${probe.error.message}` }, runCommands, timings: elapsed() });
    }

    const findings = diagnose(probe.facts, now());
    const plan = planRemediation(findings, probe.facts, policy.permissions);
    progress({ step: 'probed', findings: findings.map((f) => f.code) });
    progress({ step: 'planned', actions: plan.actions.map((a) => a.id), refused: plan.refused.map((r) => r.id) });
    const evidence = { mode: policy.mode, findings, plan, before: probe.facts, runCommands, timings: elapsed() };

    if (blockingFindings(findings).length === 0) return await finish({ status: 'healthy', ...evidence });

    const notFixedWithoutChange = (reason: string): Outcome => ({
      status: 'not-fixed',
      reason,
      remaining: blockingFindings(findings).map((f) => f.code),
      actions: [],
      after: null,
      securityChanges: [],
      backupDir: null,
      ...evidence,
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
    const parameters: FixParameters = {
      RunId: job.id,
      Actions: plan.actions.map((a) => a.id).join(','),
      DryRun: 'false',
    };
    const fixStart = now().getTime();
    const fixOut = await runPayload(composePayload({ kind: 'fix', parameters }), 'fix');
    timings.fixMs = now().getTime() - fixStart;
    const fix = parseFixOutput(fixOut.stdout, fixOut.stderr);
    progress({ step: 'fixed', changed: fix.actions.filter((a) => a.changed).map((a) => a.id) });
    const outcome = judgeFix({ ...evidence, runCommands, timings: elapsed() }, fix, now());
    if (outcome.status === 'not-fixed' && plan.refused.length > 0) {
      return await finish({ ...outcome, reason: `${outcome.reason}; refused: ${plan.refused.map((r) => `${r.id} (${r.reason})`).join(', ')}` });
    }
    return await finish(outcome);
  } catch (error) {
    if (error instanceof RetryLaterError) throw error;
    if (deps.deferThrottledMs !== undefined && error instanceof ComputeError && error.kind === 'throttled') {
      await deps.store.save({ ...base, state: 'queued', updatedAt: now().toISOString() });
      throw new RetryLaterError('ARM throttled the job beyond the SDK retries', deps.deferThrottledMs, {}, { cause: error });
    }
    const kind = error instanceof ComputeError ? error.kind : error instanceof PayloadOutputError ? 'payload' : 'internal';
    return await finish({ status: 'failed', error: { kind, message: errorMessage(error) }, runCommands, timings: elapsed() });
  } finally {
    if (lease) await deps.lock.release(lease).catch(() => undefined);
  }
}

function baseRecord(job: Job, at: string) {
  return {
    id: job.id,
    vmResourceId: job.vm.id,
    vmKey: job.vm.key,
    source: job.source,
    mode: job.mode,
    allow: job.allow,
    requestedAt: job.requestedAt,
    ...(job.reason === undefined ? {} : { reason: job.reason }),
    updatedAt: at,
  };
}

/** A queued record, written by intake before the job is enqueued. */
export function queuedRecord(job: Job): RemediationRecord {
  return { ...baseRecord(job, job.requestedAt), state: 'queued' };
}
