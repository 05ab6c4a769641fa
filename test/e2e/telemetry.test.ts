/**
 * Telemetry end to end, without Azure: the local stack (Azurite and the emulator, the real SDKs
 * over real sockets), telemetry started through startTelemetry, so through useAzureMonitor itself,
 * with in-memory span, metric and log processors beside the Azure Monitor exporter. The exporter
 * cannot be turned off (it refuses to start without a connection string), so its connection
 * string points at a local HTTPS ingestion endpoint started here (HTTPS: the SDK sends no bearer
 * token over plain HTTP), and the exporter signs in with a ManagedIdentityCredential against the
 * emulator's managed-identity endpoint, as the function app does against its own.
 *
 * One known repair (an expired self-signed certificate), its intake and its worker each inside a
 * span standing for the host's invocation. What the tests read: the spans and their tree, the
 * metric values after a forced collection, what went over the wire to the ingestion endpoint, and
 * the Functions instrumentation's patch applied to a stand-in for the host's hook API.
 */
import { randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:https';
import { gunzipSync } from 'node:zlib';
import { generate } from 'selfsigned';
import { InvocationContext } from '@azure/functions';
import { ManagedIdentityCredential } from '@azure/identity';
import { context as otelContext, SpanKind, SpanStatusCode, trace, type SpanContext } from '@opentelemetry/api';
import { InMemoryLogRecordExporter, SimpleLogRecordProcessor } from '@opentelemetry/sdk-logs';
import { DataPointType, type MetricData } from '@opentelemetry/sdk-metrics';
import { InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startLocalStack, type LocalStack } from '../../demo/stack.js';
import { scenarioVm } from '../../emulator/fleet.js';
import { trustEmulatorCa } from '../../emulator/tls.js';
import { remediationWorker } from '../../functions/remediation-worker.js';
import { queueClient } from '../../src/adapters/storage.js';
import { getServices } from '../../src/app/services.js';
import { QUEUE_NAME } from '../../src/config.js';
import { parseJobMessage, type Job } from '../../src/core/job.js';
import type { RemediationRecord } from '../../src/core/outcome.js';
import { sweepExpiredRelaxations } from '../../src/pipeline/relaxation-sweep.js';
import { instrumentFunctions, type FunctionsModule } from '../../src/telemetry/functions.js';
import { setRelaxedVms } from '../../src/telemetry/metrics.js';
import { CollectingReader } from '../support/metric-reader.js';
import { ATTR, METRIC, SERVICE_NAME, SPAN } from '../../src/telemetry/names.js';
import { startTelemetry, type TelemetryHandle } from '../../src/telemetry/setup.js';
import { requirePowerShellForFile } from '../support/powershell.js';

// The repair runs the real payloads through the emulator.
requirePowerShellForFile('telemetry e2e');

const SUB = '00000000-0000-0000-0000-0000000007e1';
const INSTRUMENTATION_KEY = '00000000-0000-0000-0000-00000000a11e';

interface Envelope {
  readonly name: string;
  readonly tags?: Record<string, string>;
  readonly data?: { readonly baseType?: string; readonly baseData?: { readonly name?: string; readonly metrics?: { name: string; value: number; count?: number }[]; readonly properties?: Record<string, string> } };
}

/** Application Insights' ingestion endpoint (POST /v2.1/track), over HTTPS on loopback: every envelope and how it was authorised. */
interface IngestionSink {
  readonly url: string;
  readonly envelopes: Envelope[];
  readonly authorizations: string[];
  close(): Promise<void>;
}

/**
 * A certificate for 127.0.0.1, self-signed, trusted by this process. Not the emulator's TLS
 * material: its CA has the emulator CA's name, and two trusted CAs of one name fail the chain.
 */
async function sinkCertificate(): Promise<{ readonly cert: string; readonly key: string }> {
  const pems = await generate([{ name: 'commonName', value: 'telemetry ingestion test endpoint' }], {
    keyType: 'ec',
    curve: 'P-256',
    algorithm: 'sha256',
    notBeforeDate: new Date(Date.now() - 60_000),
    notAfterDate: new Date(Date.now() + 24 * 3_600_000),
    extensions: [{ name: 'subjectAltName', altNames: [{ type: 7, ip: '127.0.0.1' }] }],
  });
  trustEmulatorCa(pems.cert);
  return { cert: pems.cert, key: pems.private };
}

async function startIngestionSink(): Promise<IngestionSink> {
  const tlsMaterial = await sinkCertificate();
  const envelopes: Envelope[] = [];
  const authorizations: string[] = [];
  const server: Server = createServer(tlsMaterial, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const raw = Buffer.concat(chunks);
      const body = req.headers['content-encoding'] === 'gzip' ? gunzipSync(raw) : raw;
      const received = req.method === 'POST' && req.url?.startsWith('/v2.1/track') ? (JSON.parse(body.toString('utf8')) as Envelope[]) : [];
      envelopes.push(...received);
      authorizations.push(req.headers.authorization ?? '');
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ itemsReceived: received.length, itemsAccepted: received.length, errors: [] }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('the ingestion sink has no TCP address');
  return { url: `https://127.0.0.1:${address.port}/`, envelopes, authorizations, close: () => new Promise((resolve) => (server.close(() => resolve()), server.closeAllConnections())) };
}

let stack: LocalStack;
let sink: IngestionSink;
let telemetry: TelemetryHandle;
const spans = new InMemorySpanExporter();
const logs = new InMemoryLogRecordExporter();
const reader = new CollectingReader();

beforeAll(async () => {
  // The exporter's own usage reports (statsbeat) go to Microsoft's endpoints, never to the one configured.
  process.env.APPLICATIONINSIGHTS_STATSBEAT_DISABLED = 'true';
  sink = await startIngestionSink();
  stack = await startLocalStack({ startHost: false, emulator: { runLatencyMs: 30 } });
  telemetry = await startTelemetry({
    // After startLocalStack: it points IDENTITY_ENDPOINT at the emulator, which the credential reads when made.
    credential: new ManagedIdentityCredential(),
    connectionString: `InstrumentationKey=${INSTRUMENTATION_KEY};IngestionEndpoint=${sink.url}`,
    spanProcessors: [new SimpleSpanProcessor(spans)],
    metricReaders: [reader],
    logRecordProcessors: [new SimpleLogRecordProcessor({ exporter: logs })],
  });
});
afterAll(async () => {
  // Each one whatever the others do: a stack left running leaves Azurite behind.
  const stopped = await Promise.allSettled([telemetry?.shutdown(), stack?.stop()]);
  await sink?.close();
  for (const result of stopped) if (result.status === 'rejected') throw result.reason;
});

/** Runs `work` inside a SERVER span, standing for the Functions host's invocation of `functionName`. */
async function inHostInvocation<T>(functionName: string, work: () => Promise<T>): Promise<{ readonly result: T; readonly span: SpanContext }> {
  return trace.getTracer('host').startActiveSpan(`invoke ${functionName}`, { kind: SpanKind.SERVER }, async (span) => {
    try {
      return { result: await work(), span: span.spanContext() };
    } finally {
      span.end();
    }
  });
}

/** Takes the one message intake queued, as the queue trigger would hand it to the worker (base64 JSON, decoded). */
async function takeJobMessage(): Promise<unknown> {
  const queue = queueClient({ kind: 'connection-string', connectionString: stack.azurite.connectionString }, QUEUE_NAME);
  const [message] = (await queue.receiveMessages({ numberOfMessages: 1 })).receivedMessageItems;
  if (message === undefined) throw new Error('intake queued no message');
  await queue.deleteMessage(message.messageId, message.popReceipt);
  return JSON.parse(Buffer.from(message.messageText, 'base64').toString('utf8')) as unknown;
}

/** The record the worker completed, read back as the status endpoint does. */
async function completedRecord(id: string): Promise<RemediationRecord> {
  const record = await getServices().store.get(id);
  if (record?.state !== 'completed') throw new Error(`remediation ${id} is not completed: ${JSON.stringify(record)}`);
  return record;
}

const workerContext = () => new InvocationContext({ functionName: 'remediation-worker', invocationId: randomUUID(), triggerMetadata: { dequeueCount: 1 }, logHandler: () => undefined });

const isHex = (id: string | undefined, length: number) => id !== undefined && new RegExp(`^[0-9a-f]{${length}}$`).test(id);
const spanId = (span: ReadableSpan) => span.spanContext().spanId;
const parentOf = (span: ReadableSpan) => span.parentSpanContext?.spanId;
const urlOf = (span: ReadableSpan) => String(span.attributes['url.full'] ?? span.attributes['http.url'] ?? '');
const methodOf = (span: ReadableSpan) => String(span.attributes['http.request.method'] ?? span.attributes['http.method'] ?? '');

/** Every span below `root` in the finished spans, at any depth. */
function descendants(all: readonly ReadableSpan[], root: ReadableSpan): ReadableSpan[] {
  const below = (id: string): ReadableSpan[] => all.filter((s) => parentOf(s) === id).flatMap((s) => [s, ...below(spanId(s))]);
  return below(spanId(root));
}

function metric(collected: readonly MetricData[], name: string): MetricData {
  const found = collected.find((m) => m.descriptor.name === name);
  if (found === undefined) throw new Error(`no metric ${name} among ${collected.map((m) => m.descriptor.name).join(', ')}`);
  return found;
}

describe('telemetry of one repair', () => {
  let vm: string;
  let job: Job;
  let record: RemediationRecord;
  let intake: SpanContext;
  let invocation: SpanContext;

  beforeAll(async () => {
    vm = stack.emulator.addVm(scenarioVm('expired-self-signed-cert', { subscriptionId: SUB, resourceGroup: 'rg-telemetry', name: 'vm-telemetry' }));
    const accepted = await inHostInvocation('remediations-post', () => stack.post({ vmResourceId: vm, mode: 'repair' }));
    expect(accepted.result.status, JSON.stringify(accepted.result.body)).toBe(202);
    intake = accepted.span;
    const message = await takeJobMessage();
    const parsed = parseJobMessage(message);
    if (!parsed.success) throw parsed.error;
    job = parsed.data;
    const worked = await inHostInvocation('remediation-worker', async () => {
      // The worker traces the remediation itself (functions/remediation-worker.ts): no wrapping here.
      await remediationWorker(message, workerContext());
      return completedRecord(job.id);
    });
    record = worked.result;
    invocation = worked.span;
    await telemetry.forceFlush();
  });

  const finished = () => spans.getFinishedSpans();
  const remediationSpan = () => {
    const found = finished().filter((s) => s.name === SPAN.remediation && s.attributes[ATTR.remediationId] === job.id);
    expect(found).toHaveLength(1);
    return found[0] as ReadableSpan;
  };

  it('ends fixed, with a probe and one fix', () => {
    expect(record.state === 'completed' && record.outcome.status, JSON.stringify(record)).toBe('fixed');
    expect(stack.emulator.runCommands.filter((r) => r.vmId === vm).map((r) => r.payload)).toEqual(['probe', 'fix']);
  });

  it('records the remediation span with the job and the outcome on it', () => {
    const span = remediationSpan();
    if (record.state !== 'completed') throw new Error('not completed');
    const cause = span.attributes[ATTR.cause];
    expect(span.kind).toBe(SpanKind.INTERNAL);
    expect(span.status.code).toBe(SpanStatusCode.UNSET);
    expect(span.attributes).toMatchObject({
      [ATTR.remediationId]: job.id,
      [ATTR.vm]: job.vm.key,
      [ATTR.mode]: 'repair',
      [ATTR.requestedMode]: 'repair',
      [ATTR.source]: 'manual',
      [ATTR.attempt]: 1,
      [ATTR.outcome]: 'fixed',
      [ATTR.actions]: ['regenerate-self-signed-cert', 'restart-rdp-services'],
      [ATTR.refused]: [],
      [ATTR.runCommands]: 2,
      [ATTR.timeToFixMs]: record.outcome.timings.totalMs,
    });
    expect(span.attributes[ATTR.findings]).toEqual(expect.arrayContaining([cause]));
    expect(cause).toMatch(/^cert-/);
    for (const absent of [ATTR.reason, ATTR.relaxedUntil, ATTR.restoreOf, ATTR.completedEarlier]) expect(span.attributes).not.toHaveProperty(absent);
  });

  it('is a child of the invocation it ran in, and one trace from there down', () => {
    const span = remediationSpan();
    expect(parentOf(span)).toBe(invocation.spanId);
    expect(span.spanContext().traceId).toBe(invocation.traceId);
    for (const child of descendants(finished(), span)) expect(child.spanContext().traceId).toBe(invocation.traceId);
  });

  it('has the two Run Commands as children, each over its ARM POST and polls (CLIENT spans)', () => {
    const span = remediationSpan();
    const runCommands = finished()
      .filter((s) => s.name === SPAN.runCommand && parentOf(s) === spanId(span))
      .sort((a, b) => a.startTime[0] - b.startTime[0] || a.startTime[1] - b.startTime[1]);
    expect(runCommands.map((s) => s.attributes[ATTR.payload])).toEqual(['probe', 'fix']);
    for (const run of runCommands) {
      expect(run.kind).toBe(SpanKind.INTERNAL);
      expect(run.attributes[ATTR.vm]).toBe(job.vm.key);
      const http = descendants(finished(), run).filter((s) => s.kind === SpanKind.CLIENT);
      const arm = http.filter((s) => urlOf(s).startsWith(stack.emulator.env().AZURE_RESOURCE_MANAGER_ENDPOINT.replace(/\/+$/, '')));
      expect(arm.filter((s) => methodOf(s) === 'POST' && /\/runCommand\b/i.test(urlOf(s)))).toHaveLength(1);
      expect(arm.filter((s) => methodOf(s) === 'GET').length).toBeGreaterThanOrEqual(1);
    }
  });

  it('has the VM read, and the Table calls for the record and the lease, as CLIENT spans under it', () => {
    const below = descendants(finished(), remediationSpan()).filter((s) => s.kind === SpanKind.CLIENT);
    const arm = stack.emulator.env().AZURE_RESOURCE_MANAGER_ENDPOINT.replace(/\/+$/, '');
    expect(below.some((s) => methodOf(s) === 'GET' && urlOf(s).startsWith(arm) && /\/virtualMachines\/vm-telemetry\?/i.test(urlOf(s)))).toBe(true);
    const table = below.filter((s) => new URL(urlOf(s)).port === String(stack.azurite.tablePort));
    expect(table.map(methodOf)).toEqual(expect.arrayContaining(['GET', 'PUT']));
  });

  it('has the intake\'s Table and Queue calls as CLIENT spans under the intake\'s invocation', () => {
    const intakeSpan = finished().find((s) => spanId(s) === intake.spanId);
    if (intakeSpan === undefined) throw new Error('no intake span');
    const below = descendants(finished(), intakeSpan).filter((s) => s.kind === SpanKind.CLIENT);
    const queue = below.filter((s) => new URL(urlOf(s)).port === String(stack.azurite.queuePort));
    expect(queue.some((s) => methodOf(s) === 'POST' && new URL(urlOf(s)).pathname === `/devstoreaccount1/${QUEUE_NAME}/messages`)).toBe(true);
    expect(below.some((s) => new URL(urlOf(s)).port === String(stack.azurite.tablePort))).toBe(true);
  });

  it('counts the remediation, its time to fix and its Run Commands by payload, and the relaxations in force', async () => {
    if (record.state !== 'completed') throw new Error('not completed');
    const cause = remediationSpan().attributes[ATTR.cause];
    // The relaxation sweep's count: one relaxation on record, not due for hours (so this tick queues nothing).
    const { store, queue } = getServices();
    if (queue === undefined) throw new Error('no queue');
    await store.addRelaxationDue({ dueAt: new Date(Date.now() + 3_600_000).toISOString(), remediationId: randomUUID(), vmResourceId: vm });
    const sweep = await sweepExpiredRelaxations({ store, queue });
    expect(sweep).toMatchObject({ due: 0, inForce: 1 });
    // What the sweep's handler does with it.
    setRelaxedVms(sweep.inForce ?? 0);

    const { resourceMetrics, errors } = await reader.collect();
    expect(errors).toEqual([]);
    const collected = resourceMetrics.scopeMetrics.flatMap((s) => s.metrics);

    const remediations = metric(collected, METRIC.remediations);
    expect(remediations.dataPointType).toBe(DataPointType.SUM);
    expect(remediations.dataPoints.map((p) => ({ value: p.value, attributes: p.attributes }))).toEqual([{ value: 1, attributes: { [ATTR.outcome]: 'fixed', [ATTR.cause]: cause } }]);

    const timeToFix = metric(collected, METRIC.timeToFix);
    expect(timeToFix.dataPointType).toBe(DataPointType.HISTOGRAM);
    expect(timeToFix.dataPoints.map((p) => ({ count: (p.value as { count: number }).count, sum: (p.value as { sum: number }).sum, attributes: p.attributes }))).toEqual([
      { count: 1, sum: record.outcome.timings.totalMs, attributes: { [ATTR.outcome]: 'fixed' } },
    ]);

    const runCommands = metric(collected, METRIC.runCommandDuration);
    const byPayload = Object.fromEntries(runCommands.dataPoints.map((p) => [String(p.attributes[ATTR.payload]), (p.value as { count: number }).count]));
    expect(byPayload).toEqual({ probe: 1, fix: 1 });
    // As ARM timed them: the emulator's startTime/endTime, which the emulated run's latency bounds from below.
    for (const p of runCommands.dataPoints) expect((p.value as { min?: number }).min ?? 0).toBeGreaterThanOrEqual(0);

    const relaxed = metric(collected, METRIC.relaxedVms);
    expect(relaxed.dataPointType).toBe(DataPointType.GAUGE);
    expect(relaxed.dataPoints.map((p) => p.value)).toEqual([1]);
  });

  it('sends the spans and metrics to the ingestion endpoint, with an Entra token for Azure Monitor', async () => {
    await telemetry.forceFlush();
    const dependency = sink.envelopes.find((e) => e.data?.baseType === 'RemoteDependencyData' && e.data.baseData?.name === SPAN.remediation);
    expect(dependency?.tags?.['ai.cloud.role']).toBe(SERVICE_NAME);
    expect(dependency?.tags?.['ai.operation.id']).toBe(invocation.traceId);
    expect(dependency?.data?.baseData?.properties).toMatchObject({
      [ATTR.remediationId]: job.id,
      [ATTR.outcome]: 'fixed',
      [ATTR.runCommands]: '2',
      [ATTR.actions]: JSON.stringify(['regenerate-self-signed-cert', 'restart-rdp-services']),
    });
    const sent = sink.envelopes.flatMap((e) => (e.data?.baseType === 'MetricData' ? (e.data.baseData?.metrics ?? []).map((m) => ({ ...m, properties: e.data?.baseData?.properties ?? {} })) : []));
    expect(sent.find((m) => m.name === METRIC.remediations)).toMatchObject({ value: 1, properties: { [ATTR.outcome]: 'fixed' } });
    // Every batch signed in with a token from the (emulated) managed identity, for Azure Monitor's audience.
    expect(sink.authorizations.length).toBeGreaterThan(0);
    for (const authorization of sink.authorizations) {
      const [scheme, token] = authorization.split(' ');
      expect(scheme).toBe('Bearer');
      const claims = JSON.parse(Buffer.from(token?.split('.')[1] ?? '', 'base64url').toString('utf8')) as { aud?: string };
      expect(claims.aud).toBe('https://monitor.azure.com');
    }
  });
});

describe('the Functions instrumentation, applied to @azure/functions by hand', () => {
  /** The part of @azure/functions the patch uses, recording what it is given, as the host's hook API would take it. */
  function functionsStandIn() {
    const setups: unknown[] = [];
    const hooks = { log: [] as ((context: unknown) => void)[], preInvocation: [] as ((context: unknown) => void)[] };
    const disposable = { dispose: () => undefined };
    const module = {
      app: {
        setup: (options: unknown) => void setups.push(options),
        hook: {
          log: (handler: (context: unknown) => void) => (hooks.log.push(handler), disposable),
          preInvocation: (handler: (context: unknown) => void) => (hooks.preInvocation.push(handler), disposable),
        },
      },
    };
    return { module: module as unknown as FunctionsModule, setups, hooks };
  }

  it('tells the host the worker sends its own telemetry, and emits the context\'s logs as log records', async () => {
    const { module, setups, hooks } = functionsStandIn();
    instrumentFunctions(module);
    expect(setups).toEqual([{ capabilities: { WorkerOpenTelemetryEnabled: true } }]);
    expect(hooks.log).toHaveLength(1);
    hooks.log[0]?.({ message: '{"event":"remediation.completed"}', level: 'information', category: 'user' });
    await telemetry.forceFlush();
    expect(logs.getFinishedLogRecords().map((r) => ({ body: r.body, severityText: r.severityText }))).toContainEqual({ body: '{"event":"remediation.completed"}', severityText: 'information' });
  });

  it('runs each handler in the host\'s trace context, so its spans are children of the host\'s invocation', async () => {
    const { module, hooks } = functionsStandIn();
    instrumentFunctions(module);
    const traceId = randomUUID().replaceAll('-', '');
    const parentId = randomUUID().replaceAll('-', '').slice(0, 16);
    const invocation = {
      invocationContext: { traceContext: { traceParent: `00-${traceId}-${parentId}-01`, traceState: '' } },
      functionHandler: () => trace.getTracer('handler').startActiveSpan('handler work', (span) => (span.end(), span.spanContext())),
    };
    hooks.preInvocation[0]?.(invocation);
    const seen = invocation.functionHandler();
    expect(seen.traceId).toBe(traceId);
    await telemetry.forceFlush();
    const handlerSpan = spans.getFinishedSpans().find((s) => s.spanContext().spanId === seen.spanId);
    expect(handlerSpan?.parentSpanContext?.spanId).toBe(parentId);
    expect(isHex(handlerSpan?.parentSpanContext?.spanId, 16)).toBe(true);
    // Outside the bound handler, nothing of the host's context leaks.
    expect(trace.getSpanContext(otelContext.active())?.traceId).not.toBe(traceId);
  });
});
