/**
 * The telemetry's pure mapping (remediationAttributes), the remediation span and metrics over an
 * OpenTelemetry SDK registered here (no Azure Monitor: the end-to-end test,
 * test/e2e/telemetry.test.ts, goes through useAzureMonitor), startTelemetry's off switch, and the
 * relaxation count the sweep reports for the relaxed-VMs gauge.
 */
import { randomUUID } from 'node:crypto';
import { metrics, SpanStatusCode, trace } from '@opentelemetry/api';
import { MeterProvider, type MetricData } from '@opentelemetry/sdk-metrics';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { JobQueue } from '../../src/adapters/job-queue.js';
import { InMemoryRemediationStore, MAX_COUNTED_RELAXATIONS } from '../../src/adapters/remediation-store.js';
import { diagnose } from '../../src/core/diagnose.js';
import type { Job } from '../../src/core/job.js';
import type { Outcome, RemediationRecord } from '../../src/core/outcome.js';
import { parseVmResourceId } from '../../src/core/resource-id.js';
import { ConfigurationError } from '../../src/errors.js';
import { sweepExpiredRelaxations } from '../../src/pipeline/relaxation-sweep.js';
import { recordRunCommandDuration, RELAXED_VMS_VALID_MS, setRelaxedVms } from '../../src/telemetry/metrics.js';
import { CollectingReader } from '../support/metric-reader.js';
import { ATTR, METRIC, SPAN } from '../../src/telemetry/names.js';
import { NO_CAUSE, remediationAttributes, traceRemediation } from '../../src/telemetry/remediation.js';
import { CONNECTION_STRING_SETTING, startTelemetry } from '../../src/telemetry/setup.js';
import { healthyFacts, NOW, RELAXED, ROOT_CAUSES } from '../support/facts.js';

const VM = '/subscriptions/00000000-0000-0000-0000-0000000000a1/resourceGroups/RG/providers/Microsoft.Compute/virtualMachines/VM1';
const ref = (() => {
  const parsed = parseVmResourceId(VM);
  if (!parsed.success) throw parsed.error;
  return parsed.data;
})();
const ID = '0d5e6f70-8192-4a3b-9c4d-5e6f708192a3';
const RESTORE_OF = 'e1e2e3e4-0000-4000-8000-000000000001';

const expired = ROOT_CAUSES['expired-self-signed-cert']();
const evidence = { mode: 'repair' as const, findings: diagnose(expired, NOW), plan: { actions: [], refused: [], unresolved: [] }, before: expired, runCommands: 2, timings: { totalMs: 41_500 } };
const action = (id: 'regenerate-self-signed-cert' | 'restart-rdp-services' | 'relax-security-layer') => ({ id, changed: true, before: {}, after: {}, backup: null, verified: true, error: null });
const change = (expiresAt: string) => ({
  action: 'relax-security-layer',
  before: { securityLayer: 2 },
  after: { securityLayer: 0 },
  restore: { action: 'restore-rdp-security' as const, parameters: { RestoreSecurityLayer: '2' as const } },
  expiresAt,
});

function completed(outcome: Outcome, extra: Partial<Pick<RemediationRecord, 'mode' | 'restoreOf' | 'progress' | 'source'>> = {}, completedAt = new Date()): RemediationRecord {
  return {
    id: ID,
    vmResourceId: ref.id,
    vmKey: ref.key,
    source: 'manual',
    mode: 'repair',
    allow: [],
    requestedAt: NOW.toISOString(),
    updatedAt: completedAt.toISOString(),
    state: 'completed',
    startedAt: NOW.toISOString(),
    completedAt: completedAt.toISOString(),
    outcome,
    ...extra,
  };
}

const fixed = (): RemediationRecord =>
  completed(
    { status: 'fixed', actions: [action('regenerate-self-signed-cert'), action('restart-rdp-services')], after: healthyFacts(), securityChanges: [], backupDir: null, ...evidence },
    { progress: { attempt: 1, phase: 'fixing', runCommands: 2, fixRuns: 1 } },
  );
const job: Job = { id: ID, vm: ref, mode: 'repair', allow: [], source: 'alert', requestedAt: NOW.toISOString() };

/** Every value a span attribute may hold here: strings, numbers, booleans, arrays of strings. */
function expectWellFormed(attributes: Readonly<Record<string, unknown>>): void {
  for (const [key, value] of Object.entries(attributes)) {
    expect(value, key).not.toBeUndefined();
    expect(['string', 'number', 'boolean'].includes(typeof value) || (Array.isArray(value) && value.every((v) => typeof v === 'string')), key).toBe(true);
  }
}

describe('remediationAttributes', () => {
  it('maps a fixed repair: findings, cause, actions, Run Commands, time to fix; nothing it does not have', () => {
    const attributes = remediationAttributes(fixed());
    expect(attributes).toEqual({
      [ATTR.remediationId]: ID,
      [ATTR.vm]: ref.key,
      [ATTR.mode]: 'repair',
      [ATTR.requestedMode]: 'repair',
      [ATTR.source]: 'manual',
      [ATTR.attempt]: 1,
      [ATTR.outcome]: 'fixed',
      [ATTR.findings]: ['cert-expired'],
      [ATTR.cause]: 'cert-expired',
      [ATTR.actions]: ['regenerate-self-signed-cert', 'restart-rdp-services'],
      [ATTR.refused]: [],
      [ATTR.runCommands]: 2,
      [ATTR.timeToFixMs]: 41_500,
    });
    expect(attributes[ATTR.vm]).toBe(ref.key.toLowerCase());
    expectWellFormed(attributes);
  });

  it('a policy-off skip: effective mode off, the skip reason, no cause', () => {
    const attributes = remediationAttributes(completed({ status: 'skipped', reason: 'policy-off', detail: 'tag says off', runCommands: 0, timings: { totalMs: 12 } }));
    expect(attributes).toMatchObject({ [ATTR.mode]: 'off', [ATTR.requestedMode]: 'repair', [ATTR.outcome]: 'skipped', [ATTR.reason]: 'policy-off', [ATTR.cause]: NO_CAUSE, [ATTR.findings]: [], [ATTR.actions]: [] });
    expectWellFormed(attributes);
  });

  it('a diagnose run of a repair request: the effective mode from the evidence, the refused actions, the reason cut to a dimension', () => {
    const reason = `diagnose mode: ${'x'.repeat(2_000)}`;
    const outcome: Outcome = {
      status: 'not-fixed',
      reason,
      remaining: ['cert-expired'],
      actions: [],
      after: null,
      securityChanges: [],
      backupDir: null,
      ...evidence,
      mode: 'diagnose',
      plan: { actions: [], refused: [{ id: 'relax-security-layer', because: ['cert-expired'], reason: 'needs-permission', detail: '' }], unresolved: [] },
    };
    const attributes = remediationAttributes(completed(outcome));
    expect(attributes).toMatchObject({ [ATTR.mode]: 'diagnose', [ATTR.refused]: ['relax-security-layer'], [ATTR.cause]: 'cert-expired' });
    expect(String(attributes[ATTR.reason])).toMatch(/^diagnose mode: x+…$/);
    expect(String(attributes[ATTR.reason]).length).toBeLessThanOrEqual(512);
  });

  it('a failed run: the error kind as the reason, the findings it had learnt', () => {
    const attributes = remediationAttributes(completed({ status: 'failed', error: { kind: 'agent-not-ready', message: 'VM agent quiet' }, runCommands: 1, timings: { totalMs: 9 }, findings: diagnose(expired, NOW) }));
    expect(attributes).toMatchObject({ [ATTR.outcome]: 'failed', [ATTR.reason]: 'agent-not-ready', [ATTR.cause]: 'cert-expired', [ATTR.runCommands]: 1 });
    expect(attributes).not.toHaveProperty(ATTR.relaxedUntil);
  });

  it('a restore that re-relaxed: what it restores, until when the relaxation now stands (the latest expiry)', () => {
    const outcome: Outcome = {
      status: 'restore-failed',
      reason: 'the restore would lock RDP out',
      lockedOut: true,
      remaining: ['cert-expired'],
      restoreParameters: { RestoreSecurityLayer: '2' },
      actions: [action('relax-security-layer')],
      after: RELAXED(),
      securityChanges: [change('2026-11-21T20:00:00.000Z'), change('2026-11-22T04:00:00.000Z')],
      backupDir: null,
      ...evidence,
      mode: 'restore',
    };
    const attributes = remediationAttributes(completed(outcome, { mode: 'restore', restoreOf: RESTORE_OF, source: 'expiry' }));
    expect(attributes).toMatchObject({ [ATTR.mode]: 'restore', [ATTR.restoreOf]: RESTORE_OF, [ATTR.source]: 'expiry', [ATTR.relaxedUntil]: '2026-11-22T04:00:00.000Z', [ATTR.reason]: 'the restore would lock RDP out' });
    expectWellFormed(attributes);
  });

  it('a record not completed yet: the request only', () => {
    const { outcome: _outcome, completedAt: _completedAt, ...rest } = fixed() as RemediationRecord & { state: 'completed' };
    const attributes = remediationAttributes({ ...rest, state: 'running', startedAt: NOW.toISOString() });
    expect(Object.keys(attributes).sort()).toEqual([ATTR.attempt, ATTR.mode, ATTR.remediationId, ATTR.requestedMode, ATTR.source, ATTR.vm].sort());
  });
});

describe('traceRemediation and the metrics', () => {
  let spans: InMemorySpanExporter;
  let reader: CollectingReader;

  beforeEach(() => {
    spans = new InMemorySpanExporter();
    trace.setGlobalTracerProvider(new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(spans)] }));
    reader = new CollectingReader();
    metrics.setGlobalMeterProvider(new MeterProvider({ readers: [reader] }));
  });
  afterEach(() => {
    trace.disable();
    metrics.disable();
  });

  const count = (all: MetricData[], name: string) => all.find((m) => m.descriptor.name === name)?.dataPoints ?? [];

  it('one span from the job to the outcome, and the remediation counted once under its cause', async () => {
    const record = await traceRemediation(job, () => Promise.resolve(fixed()), { attempt: 3 });
    expect(record.state).toBe('completed');
    const [span] = spans.getFinishedSpans();
    expect(span?.name).toBe(SPAN.remediation);
    expect(span?.status.code).toBe(SpanStatusCode.UNSET);
    // The delivery's number from the caller, the outcome from the record.
    expect(span?.attributes).toMatchObject({ [ATTR.attempt]: 3, [ATTR.source]: 'manual', [ATTR.outcome]: 'fixed', [ATTR.cause]: 'cert-expired' });
    const all = await reader.metrics();
    expect(count(all, METRIC.remediations).map((p) => [p.value, p.attributes])).toEqual([[1, { [ATTR.outcome]: 'fixed', [ATTR.cause]: 'cert-expired' }]]);
    expect(count(all, METRIC.timeToFix).map((p) => (p.value as { count: number }).count)).toEqual([1]);
  });

  it('a failed outcome ends the span as ERROR; a diagnose run is counted but has no time to fix', async () => {
    await traceRemediation(job, () => Promise.resolve(completed({ status: 'failed', error: { kind: 'not-found', message: 'no such VM' }, runCommands: 0, timings: { totalMs: 5 } })));
    await traceRemediation(job, () => Promise.resolve(completed({ status: 'not-fixed', reason: 'diagnose mode', remaining: ['cert-expired'], actions: [], after: null, securityChanges: [], backupDir: null, ...evidence, mode: 'diagnose' })));
    const [failed, diagnosed] = spans.getFinishedSpans();
    expect(failed?.status).toEqual({ code: SpanStatusCode.ERROR, message: 'not-found: no such VM' });
    expect(diagnosed?.status.code).toBe(SpanStatusCode.UNSET);
    const all = await reader.metrics();
    expect(count(all, METRIC.remediations).map((p) => p.attributes[ATTR.outcome]).sort()).toEqual(['failed', 'not-fixed']);
    expect(count(all, METRIC.timeToFix)).toEqual([]);
  });

  it('records a thrown error on the span and rethrows it unchanged', async () => {
    const error = new ConfigurationError('no remediation queue configured');
    await expect(traceRemediation(job, () => Promise.reject(error))).rejects.toBe(error);
    const [span] = spans.getFinishedSpans();
    expect(span?.status).toEqual({ code: SpanStatusCode.ERROR, message: 'no remediation queue configured' });
    expect(span?.events.map((e) => [e.name, e.attributes?.['exception.type']])).toEqual([['exception', 'ConfigurationError']]);
    expect(count(await reader.metrics(), METRIC.remediations)).toEqual([]);
  });

  it('a delivery that finds the work done says so and counts nothing again', async () => {
    const earlier: RemediationRecord = { ...fixed(), completedAt: new Date(Date.now() - 60_000).toISOString() } as RemediationRecord;
    await traceRemediation(job, () => Promise.resolve(earlier));
    expect(spans.getFinishedSpans()[0]?.attributes[ATTR.completedEarlier]).toBe(true);
    expect(count(await reader.metrics(), METRIC.remediations)).toEqual([]);
  });

  it('takes its instruments from the meter provider in force, also when it changes after their first use', async () => {
    recordRunCommandDuration('probe', 21_000);
    const next = new CollectingReader();
    // As useAzureMonitor does: the old provider out, the new one in.
    metrics.disable();
    metrics.setGlobalMeterProvider(new MeterProvider({ readers: [next] }));
    recordRunCommandDuration('fix', 34_000);
    recordRunCommandDuration(null, 5_000);
    const points = count(await next.metrics(), METRIC.runCommandDuration);
    expect(Object.fromEntries(points.map((p) => [p.attributes[ATTR.payload], (p.value as { sum: number }).sum]))).toEqual({ fix: 34_000, other: 5_000 });
  });

  it('observes the relaxations in force as of the last sweep, and stops once that count is stale', async () => {
    setRelaxedVms(4);
    expect(count(await reader.metrics(), METRIC.relaxedVms).map((p) => p.value)).toEqual([4]);
    setRelaxedVms(2);
    expect(count(await reader.metrics(), METRIC.relaxedVms).map((p) => p.value)).toEqual([2]);
    const realNow = Date.now;
    Date.now = () => realNow() + RELAXED_VMS_VALID_MS + 1;
    try {
      expect(count(await reader.metrics(), METRIC.relaxedVms).map((p) => p.value)).toEqual([]);
    } finally {
      Date.now = realNow;
    }
  });
});

describe('startTelemetry without a connection string', () => {
  let saved: string | undefined;
  beforeEach(() => {
    saved = process.env[CONNECTION_STRING_SETTING];
    delete process.env[CONNECTION_STRING_SETTING];
  });
  afterEach(() => {
    if (saved !== undefined) process.env[CONNECTION_STRING_SETTING] = saved;
  });

  it('does nothing: no provider registered, nothing to flush', async () => {
    const handle = await startTelemetry({ credential: { getToken: () => Promise.reject(new Error('never asked')) } });
    expect(handle.enabled).toBe(false);
    await handle.forceFlush();
    await handle.shutdown();
    // The API's own no-op tracer: nothing was registered.
    expect(trace.getTracer('x').startSpan('y').isRecording()).toBe(false);
    expect((await startTelemetry({ credential: { getToken: () => Promise.resolve(null) }, connectionString: '  ' })).enabled).toBe(false);
  });

  it('refuses test processors without one: they would have no exporter pipeline to ride on', async () => {
    await expect(startTelemetry({ credential: { getToken: () => Promise.resolve(null) }, spanProcessors: [new SimpleSpanProcessor(new InMemorySpanExporter())] })).rejects.toBeInstanceOf(ConfigurationError);
  });
});

describe('the relaxations in force, as the sweep counts them', () => {
  const queue: JobQueue = { enqueue: () => Promise.resolve() };
  const entry = (dueAt: string) => ({ dueAt, remediationId: randomUUID(), vmResourceId: VM });

  it('counts what is left on record after the tick: not due yet, or due and not queued', async () => {
    const store = new InMemoryRemediationStore();
    for (const dueAt of ['2026-11-21T11:00:00.000Z', '2026-11-21T13:00:00.000Z', '2026-11-22T12:00:00.000Z']) await store.addRelaxationDue(entry(dueAt));
    expect(await store.countRelaxations()).toBe(3);
    const result = await sweepExpiredRelaxations({ store, queue, now: () => NOW });
    expect(result).toMatchObject({ due: 1, inForce: 2 });
    expect(result).not.toHaveProperty('countError');
  });

  it('a count that fails leaves the tick\'s restores queued and says why', async () => {
    const store = new InMemoryRemediationStore();
    await store.addRelaxationDue(entry('2026-11-21T11:00:00.000Z'));
    store.countRelaxations = () => Promise.reject(new Error('table unavailable (injected)'));
    const result = await sweepExpiredRelaxations({ store, queue, now: () => NOW });
    expect(result.decisions).toMatchObject([{ decision: 'queued' }]);
    expect(result).toMatchObject({ inForce: null, countError: 'table unavailable (injected)' });
  });

  it('stops counting at its bound', async () => {
    const store = new InMemoryRemediationStore();
    for (let i = 0; i <= MAX_COUNTED_RELAXATIONS; i++) await store.addRelaxationDue(entry(new Date(Date.UTC(2027, 0, 1) + i).toISOString()));
    expect(await store.countRelaxations()).toBe(MAX_COUNTED_RELAXATIONS);
  });
});
