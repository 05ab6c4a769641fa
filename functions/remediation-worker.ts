/**
 * The queue-triggered worker: one message, one VM, one remediation. Its poison twin
 * records jobs the host gave up on (after host.json's maxDequeueCount attempts), so no
 * request disappears without an outcome.
 */
import { app, type InvocationContext } from '@azure/functions';
import { getServices, remediationDeps } from '../src/app/services.js';
import { POISON_QUEUE_NAME, QUEUE_NAME } from '../src/config.js';
import { parseJobMessage } from '../src/core/job.js';
import type { RemediationRecord } from '../src/core/outcome.js';
import { RetryLaterError } from '../src/errors.js';
import { queuedRecord, runRemediation } from '../src/pipeline/remediate.js';

export async function remediationWorker(message: unknown, context: InvocationContext): Promise<void> {
  const parsed = parseJobMessage(message);
  if (!parsed.success) {
    // Retrying a malformed message cannot help; log it loudly and let it go.
    context.error(JSON.stringify({ event: 'remediation.invalid-message', error: parsed.error.message }));
    return;
  }
  const job = parsed.data;
  const services = getServices();
  try {
    const record = await runRemediation(
      job,
      remediationDeps(services, {
        deferThrottledMs: THROTTLED_RETRY_MS,
        onProgress: (e) => context.debug(JSON.stringify({ event: 'remediation.progress', id: job.id, ...flatten(e) })),
      }),
    );
    logOutcome(record, context);
  } catch (error) {
    if (!(error instanceof RetryLaterError) || !services.queue) throw error;
    // A fresh message with a delay, rather than a failed attempt that counts towards the poison queue.
    await services.queue.enqueue(job, { delaySeconds: error.delayMs / 1000 });
    context.warn(JSON.stringify({ event: 'remediation.deferred', id: job.id, reason: error.message, delayMs: error.delayMs }));
  }
}

/** How long a job ARM throttled beyond the SDK's retries waits before it is tried again. */
const THROTTLED_RETRY_MS = 30_000;

export async function remediationPoison(message: unknown, context: InvocationContext): Promise<void> {
  const parsed = parseJobMessage(message);
  if (!parsed.success) {
    context.error(JSON.stringify({ event: 'remediation.poison-invalid', error: parsed.error.message }));
    return;
  }
  const job = parsed.data;
  const { store } = getServices();
  const stored = await store.get(job.id);
  const existing = stored ?? queuedRecord(job);
  if (existing.state === 'completed') return; // it finished after all; nothing to add
  const at = new Date().toISOString();
  const record: RemediationRecord = {
    ...existing,
    state: 'completed',
    startedAt: existing.state === 'running' ? existing.startedAt : null,
    completedAt: at,
    updatedAt: at,
    outcome: { status: 'failed', error: { kind: 'poison', message: `the worker failed on every attempt; the job was moved to ${POISON_QUEUE_NAME}` }, runCommands: 0, timings: { totalMs: 0 } },
  };
  await (stored ? store.save(record) : store.create(record));
  await store.recordPoison({ kind: 'remediation', key: job.id, reason: 'the worker failed on every attempt', message: JSON.stringify(message).slice(0, 8_000) });
  logOutcome(record, context);
}

function logOutcome(record: RemediationRecord, context: InvocationContext): void {
  if (record.state !== 'completed') return;
  const { outcome } = record;
  const entry = {
    event: 'remediation.completed',
    id: record.id,
    vm: record.vmResourceId,
    status: outcome.status,
    runCommands: outcome.runCommands,
    totalMs: outcome.timings.totalMs,
    ...('findings' in outcome && outcome.findings ? { findings: outcome.findings.map((f) => f.code) } : {}),
    ...('actions' in outcome && outcome.actions ? { changed: outcome.actions.filter((a) => a.changed).map((a) => a.id) } : {}),
    ...('securityChanges' in outcome ? { securityChanges: outcome.securityChanges.map((c) => c.action) } : {}),
    ...('reason' in outcome ? { reason: outcome.reason } : {}),
    ...(outcome.status === 'failed' ? { error: outcome.error } : {}),
  };
  if (outcome.status === 'failed') context.error(JSON.stringify(entry));
  else if (outcome.status === 'not-fixed') context.warn(JSON.stringify(entry));
  else context.info(JSON.stringify(entry));
}

function flatten(event: object): Record<string, unknown> {
  return Object.fromEntries(Object.entries(event).map(([k, v]) => [k, typeof v === 'object' && v !== null && !Array.isArray(v) ? '[object]' : v]));
}

app.storageQueue('remediation-worker', { queueName: QUEUE_NAME, connection: 'AzureWebJobsStorage', handler: remediationWorker });
app.storageQueue('remediation-poison', { queueName: POISON_QUEUE_NAME, connection: 'AzureWebJobsStorage', handler: remediationPoison });
