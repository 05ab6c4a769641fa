/**
 * The span of one remediation (SPAN.remediation) and what it carries: the job's identity when it
 * starts, the completed record's outcome when it ends. It is the active span while the
 * remediation runs, so the Run Command spans (run-command.ts) and the Azure SDK's CLIENT spans
 * (ARM, Logs, Table, Queue) made meanwhile are its children. The same end also counts the
 * remediation in the metrics (metrics.ts).
 *
 * Like the rest of src/telemetry, this uses only the OpenTelemetry API: before startTelemetry
 * (setup.ts) the tracer is the API's no-op one, and nothing is recorded or exported.
 */
import { SpanStatusCode, type Attributes } from '@opentelemetry/api';
import { blockingFindings } from '../core/diagnose.js';
import type { Job } from '../core/job.js';
import type { Outcome, RemediationRecord } from '../core/outcome.js';
import { queuedRecord } from '../pipeline/remediate.js';
import { recordRemediation } from './metrics.js';
import { ATTR, SPAN } from './names.js';
import { inActiveSpan } from './span.js';

/** A span attribute's values as this module sets them: never undefined, arrays of strings only. */
export type RemediationAttributes = Readonly<Record<string, string | number | boolean | string[]>>;

/** The cause a remediation is counted under when no blocking finding was found. */
export const NO_CAUSE = 'none';

/** Free-text reasons (a not-fixed outcome's) are cut here: a dimension, not a report. */
const MAX_REASON_LENGTH = 512;

export interface TraceRemediationOptions {
  /** The delivery of the job (the queue message's dequeue count), when the caller knows it. */
  readonly attempt?: number;
}

/**
 * Runs one remediation under an active INTERNAL span SPAN.remediation: the job's attributes at
 * the start, the completed record's at the end (remediationAttributes), status ERROR for a
 * failed or restore-failed outcome. When `run` throws, the exception is recorded on the span,
 * which ends as ERROR, and the error is rethrown unchanged.
 */
export async function traceRemediation(job: Job, run: () => Promise<RemediationRecord>, options: TraceRemediationOptions = {}): Promise<RemediationRecord> {
  const startedAt = Date.now();
  return inActiveSpan(SPAN.remediation, jobAttributes(job, options), async (span) => {
    const record = await run();
    const attributes = remediationAttributes(record);
    // The delivery's own number, where the caller gave it, wins over the record's count of attempts.
    span.setAttributes(options.attempt === undefined ? attributes : withoutKey(attributes, ATTR.attempt));
    if (record.state === 'completed') {
      // A message delivered again finds the work done and returns the stored record: the
      // span says so, and the remediation is not counted a second time.
      if (Date.parse(record.completedAt) < startedAt) span.setAttribute(ATTR.completedEarlier, true);
      else recordRemediation(record, causeOf(record.outcome));
      const failure = failureOf(record.outcome);
      if (failure !== undefined) span.setStatus({ code: SpanStatusCode.ERROR, message: failure });
    }
    return record;
  });
}

/** What is known when the job starts (who, which VM, what was asked): the request part of its queued record. */
function jobAttributes(job: Job, options: TraceRemediationOptions): Attributes {
  return { ...remediationAttributes(queuedRecord(job)), ...(options.attempt === undefined ? {} : { [ATTR.attempt]: options.attempt }) };
}

/**
 * A record's span attributes (names.ts ATTR): the request's part always, the outcome's once it
 * is completed. Pure; no value is undefined, lists are string arrays (empty when none).
 */
export function remediationAttributes(record: RemediationRecord): RemediationAttributes {
  const attributes: Record<string, string | number | boolean | string[]> = {
    [ATTR.remediationId]: record.id,
    [ATTR.vm]: record.vmKey,
    [ATTR.mode]: record.mode,
    [ATTR.requestedMode]: record.mode,
    [ATTR.source]: record.source,
  };
  if (record.restoreOf !== undefined) attributes[ATTR.restoreOf] = record.restoreOf;
  if (record.progress !== undefined) attributes[ATTR.attempt] = record.progress.attempt;
  if (record.state !== 'completed') return attributes;
  const { outcome } = record;
  attributes[ATTR.mode] = effectiveMode(record.mode, outcome);
  attributes[ATTR.outcome] = outcome.status;
  attributes[ATTR.findings] = blockingFindingsOf(outcome);
  attributes[ATTR.cause] = causeOf(outcome);
  attributes[ATTR.actions] = 'actions' in outcome && outcome.actions ? outcome.actions.map((a) => a.id) : [];
  attributes[ATTR.refused] = 'plan' in outcome ? outcome.plan.refused.map((r) => r.id) : [];
  attributes[ATTR.runCommands] = outcome.runCommands;
  attributes[ATTR.timeToFixMs] = outcome.timings.totalMs;
  const reason = reasonOf(outcome);
  if (reason !== undefined) attributes[ATTR.reason] = reason;
  const relaxedUntil = relaxedUntilOf(outcome);
  if (relaxedUntil !== undefined) attributes[ATTR.relaxedUntil] = relaxedUntil;
  return attributes;
}

/** The first blocking finding, or NO_CAUSE: what METRIC.remediations counts a remediation under. */
export function causeOf(outcome: Outcome): string {
  return blockingFindingsOf(outcome)[0] ?? NO_CAUSE;
}

function blockingFindingsOf(outcome: Outcome): string[] {
  return 'findings' in outcome && outcome.findings ? blockingFindings(outcome.findings).map((f) => f.code) : [];
}

/**
 * The mode the remediation ran in: the probe's evidence says (the narrower of the request and
 * the VM's policy); a skip for policy says off; otherwise (not eligible, busy, failed before the
 * policy was read) the mode asked for is all that is known.
 */
function effectiveMode(requested: RemediationRecord['mode'], outcome: Outcome): string {
  if ('mode' in outcome) return outcome.mode;
  if (outcome.status === 'skipped' && outcome.reason === 'policy-off') return 'off';
  return requested;
}

function reasonOf(outcome: Outcome): string | undefined {
  switch (outcome.status) {
    case 'skipped':
      return outcome.reason;
    case 'failed':
      return outcome.error.kind;
    case 'not-fixed':
    case 'restore-failed':
      return outcome.reason.length > MAX_REASON_LENGTH ? `${outcome.reason.slice(0, MAX_REASON_LENGTH - 1)}…` : outcome.reason;
    default:
      return undefined;
  }
}

/** When the relaxation this remediation leaves is reverted: the latest expiry among its security changes. */
function relaxedUntilOf(outcome: Outcome): string | undefined {
  if (!('securityChanges' in outcome)) return undefined;
  const expiries = outcome.securityChanges.flatMap((c) => (c.expiresAt === undefined ? [] : [c.expiresAt]));
  // ISO 8601 in UTC, as the pipeline writes them: text order is time order.
  return expiries.length > 0 ? expiries.reduce((a, b) => (b > a ? b : a)) : undefined;
}

/** The span status message of an outcome that failed, or undefined for any other. */
function failureOf(outcome: Outcome): string | undefined {
  if (outcome.status === 'failed') return `${outcome.error.kind}: ${outcome.error.message}`;
  if (outcome.status === 'restore-failed') return outcome.reason;
  return undefined;
}

function withoutKey(attributes: RemediationAttributes, key: string): RemediationAttributes {
  const { [key]: _dropped, ...rest } = attributes;
  return rest;
}
