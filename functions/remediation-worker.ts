/**
 * The queue-triggered worker: one message, one VM, one remediation. Its poison twin
 * records jobs the host gave up on (after host.json's maxDequeueCount attempts), so no
 * request disappears without an outcome.
 *
 * A message that is delivered again (the worker crashed, or failed to write the record)
 * resumes the remediation from the progress in its record (src/pipeline/remediate.ts). How
 * soon it comes back: after a failed invocation, host.json's visibilityTimeout (1 min); after
 * a crashed host, once the message's lease runs out (the Functions host takes a message for
 * 10 minutes and renews that while the invocation runs). The VM's lease (90 s, renewed every
 * 30 s) has run out by then, so the new delivery resumes at once.
 */
import type { InvocationContext } from '@azure/functions';
import { remediationDeps } from '../src/app/services.js';
import { POISON_QUEUE_NAME } from '../src/config.js';
import { parseJobMessage, type Job } from '../src/core/job.js';
import { requestPartOf, type RemediationRecord } from '../src/core/outcome.js';
import { RecordVersionConflictError } from '../src/adapters/remediation-store.js';
import { RetryLaterError } from '../src/errors.js';
import { queuedRecord, runRemediation } from '../src/pipeline/remediate.js';
import { relaxationDueAfter } from '../src/pipeline/restore.js';
import { isSecurityLowering, type ActionId } from '../src/contract/actions.js';
import { traceRemediation, type TraceRemediationOptions } from '../src/telemetry/remediation.js';
import { queueHandler, withMessage, type LogEntry } from './queue-handler.js';

export const remediationWorker = queueHandler<Job>({
  invalidEvent: 'remediation.invalid-message',
  parse: (message) => withMessage(parseJobMessage(message)),
  handle: async (job, services, context) => {
    try {
      const deps = remediationDeps(services, {
        deferThrottledMs: THROTTLED_RETRY_MS,
        onProgress: (e) => context.debug(JSON.stringify({ event: 'remediation.progress', id: job.id, ...flatten(e) })),
      });
      const record = await traceRemediation(job, () => runRemediation(job, deps), deliveryOf(context));
      return outcomeEntry(record);
    } catch (error) {
      if (!(error instanceof RetryLaterError) || !services.queue) throw error;
      // A fresh message with a delay, rather than a failed attempt that counts towards the poison queue.
      await services.queue.enqueue(job, { delaySeconds: error.delayMs / 1000 });
      return { level: 'warn', event: 'remediation.deferred', fields: { id: job.id, reason: error.message, delayMs: error.delayMs } };
    }
  },
});

/** Which delivery of its message this is, as the queue trigger's metadata says (absent outside the host). */
function deliveryOf(context: InvocationContext): TraceRemediationOptions {
  const count = context.triggerMetadata?.['dequeueCount'];
  return typeof count === 'number' && Number.isInteger(count) && count > 0 ? { attempt: count } : {};
}

/** How long a job ARM throttled beyond the SDK's retries waits before it is tried again. */
const THROTTLED_RETRY_MS = 30_000;

export const remediationPoison = queueHandler<Job>({
  invalidEvent: 'remediation.poison-invalid',
  parse: (message) => withMessage(parseJobMessage(message)),
  handle: async (job, { store, lock }, _context, message) => {
    const poisonEntry = { kind: 'remediation' as const, key: job.id, reason: 'the worker failed on every attempt', message: JSON.stringify(message).slice(0, 8_000) };
    if ((await lock.holder(job.vm.key)) === job.id) {
      // Another delivery of this job (a second message for it) is alive and renews the VM's
      // lease: it completes the record itself, and may be posting the fix right now.
      await store.recordPoison(poisonEntry);
      return { level: 'warn', event: 'remediation.poison-while-running', fields: { id: job.id } };
    }
    let entry: LogEntry | undefined;
    for (let tries = 1; ; tries++) {
      const stored = await store.read(job.id);
      const existing = stored?.record ?? queuedRecord(job);
      if (existing.state === 'completed') break; // it finished after all; nothing to add
      const record = poisoned(existing);
      try {
        // A restore that gave up leaves its remediation's relaxation in force: the sweep tries again.
        const due = record.state === 'completed' ? relaxationDueAfter(job, record.outcome) : undefined;
        if (due) await store.addRelaxationDue(due);
        if (stored) await store.save(record, { ifVersion: stored.version });
        else if ((await store.create(record)).record.state !== 'completed') continue; // a worker wrote it first: look again
        entry = outcomeEntry(record);
        break;
      } catch (error) {
        // Changed meanwhile (a duplicate counted, a late write of the worker): look again.
        if (!(error instanceof RecordVersionConflictError) || tries >= 5) throw error;
      }
    }
    await store.recordPoison(poisonEntry);
    return entry;
  },
});

/** The record completed as failed/poison, keeping what the attempts got to (without the evidence). */
function poisoned(existing: RemediationRecord): RemediationRecord {
  const at = new Date().toISOString();
  const id = existing.id;
  const progress = existing.progress ? (({ evidence: _evidence, ...rest }) => rest)(existing.progress) : undefined;
  const fixRuns = progress?.fixRuns ?? 0;
  const lowering = (progress?.plannedActions ?? []).some((a: ActionId) => isSecurityLowering(a)) || progress?.relaxRun !== undefined;
  const note =
    fixRuns > 0
      ? `; a fix was posted for this remediation: its manifest in %ProgramData%\\RdpRemediation\\${id} on the VM records what it did${lowering ? ', including any security it lowered, which nothing reverts automatically' : ''}`
      : '';
  return {
    ...requestPartOf(existing),
    ...(progress ? { progress } : {}),
    state: 'completed',
    startedAt: existing.state === 'running' ? existing.startedAt : null,
    completedAt: at,
    updatedAt: at,
    outcome: {
      status: 'failed',
      error: { kind: 'poison', message: `the worker failed on every attempt; the job was moved to ${POISON_QUEUE_NAME}${note}` },
      runCommands: progress?.runCommands ?? 0,
      timings: { totalMs: 0 },
    },
  };
}

/** The log line of a completed remediation, at the level its outcome calls for. */
function outcomeEntry(record: RemediationRecord): LogEntry | undefined {
  if (record.state !== 'completed') return undefined;
  const { outcome } = record;
  const fields = {
    id: record.id,
    vm: record.vmResourceId,
    status: outcome.status,
    runCommands: outcome.runCommands,
    totalMs: outcome.timings.totalMs,
    ...('findings' in outcome && outcome.findings ? { findings: outcome.findings.map((f) => f.code) } : {}),
    ...('actions' in outcome && outcome.actions ? { changed: outcome.actions.filter((a) => a.changed).map((a) => a.id) } : {}),
    ...(record.restoreOf ? { restoreOf: record.restoreOf } : {}),
    ...('securityChanges' in outcome && outcome.securityChanges.length > 0
      ? { securityChanges: outcome.securityChanges.map((c) => c.action), relaxedUntil: outcome.securityChanges[0]?.expiresAt ?? null }
      : 'securityChanges' in outcome
        ? { securityChanges: [] }
        : {}),
    ...('restoreParameters' in outcome ? { restored: outcome.restoreParameters } : {}),
    ...('lockedOut' in outcome ? { lockedOut: outcome.lockedOut } : {}),
    ...('reason' in outcome ? { reason: outcome.reason } : {}),
    ...('readBack' in outcome && outcome.readBack ? { readBack: outcome.readBack } : {}),
    ...(record.progress ? { attempt: record.progress.attempt, fixRuns: record.progress.fixRuns } : {}),
    ...(outcome.status === 'failed' ? { error: outcome.error } : {}),
  };
  // A restore that did not put the security back leaves the VM relaxed (or re-relaxed): never quietly.
  const restoreLeftRelaxed = record.mode === 'restore' && outcome.status !== 'restored' && !(outcome.status === 'skipped' && outcome.reason === 'duplicate');
  const level = outcome.status === 'failed' || outcome.status === 'restore-failed' || restoreLeftRelaxed ? 'error' : outcome.status === 'not-fixed' ? 'warn' : 'info';
  return { level, event: 'remediation.completed', fields };
}

function flatten(event: object): Record<string, unknown> {
  return Object.fromEntries(Object.entries(event).map(([k, v]) => [k, typeof v === 'object' && v !== null && !Array.isArray(v) ? '[object]' : v]));
}
