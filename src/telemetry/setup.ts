/**
 * Telemetry into Application Insights through OpenTelemetry, as Azure Functions does it in
 * `"telemetryMode": "OpenTelemetry"` (host.json): the Azure Monitor distro (useAzureMonitor)
 * exports the worker's spans, metrics and logs; the host exports its own (the invocations).
 *
 * startTelemetry runs once, as the app's entry module loads and before the host asks the worker
 * for its capabilities. With APPLICATIONINSIGHTS_CONNECTION_STRING set it starts:
 * - useAzureMonitor, authenticating with the credential passed in (Entra ID: the app's managed
 *   identity; no instrumentation key is used for auth, the resource can disable local auth).
 *   Resource `service.name` SERVICE_NAME (cloud_RoleName). Sampling: none (every trace kept,
 *   samplingRatio 1 and no rate limit) — a remediation is one trace of a few dozen spans, the
 *   volume is bounded by the fleet, and the workbook's percentiles and the failure-rate alert
 *   read the spans, which a sampled-out remediation would leave wrong. OTEL_TRACES_SAMPLER and
 *   OTEL_TRACES_SAMPLER_ARG, which the distro reads, can lower it without a deployment.
 *   Live Metrics off (a ping loop per instance for a view nobody depends on); the distro's
 *   standard metrics and performance counters as it sets them.
 * - Instrumentations: the Azure SDK's (spans for ARM, Logs, Table and Queue calls, CLIENT for
 *   each HTTP request; useAzureMonitor 1.21 applies it to @azure/core-tracing eagerly, without
 *   waiting for a module hook that ESM and the bundle never trigger: there is one
 *   @azure/core-tracing in node_modules and in the bundle, so that is the one the SDKs use; the
 *   end-to-end and bundle tests check the CLIENT spans). The Functions one (functions.ts) when
 *   the host is there. Not the HTTP one: every outgoing call goes through the Azure SDK's
 *   pipeline, which already makes its CLIENT span, and its hook would fire only where something
 *   require()s http (so in the bundle, not in ESM). None of the database ones.
 * Without a connection string it does nothing at all (local runs, the CLI, the demo, tests): no
 * exporter, no global provider, no warning, and the distro is never loaded. It and the
 * instrumentations load only with one (a dynamic import: in the bundle, a chunk of their own),
 * which a cold start then pays once (the distro is about 2.8 MB of the bundle; loading and
 * starting it took some 175 ms bundled, 550 ms unbundled, where it was measured).
 */
import type { AzureMonitorOpenTelemetryOptions } from '@azure/monitor-opentelemetry';
import { metrics, trace } from '@opentelemetry/api';
import type { TokenCredential } from '@azure/identity';
import { ConfigurationError } from '../errors.js';
import { SERVICE_NAME } from './names.js';

type SpanProcessor = NonNullable<AzureMonitorOpenTelemetryOptions['spanProcessors']>[number];
type MetricReader = NonNullable<AzureMonitorOpenTelemetryOptions['metricReaders']>[number];
type LogRecordProcessor = NonNullable<AzureMonitorOpenTelemetryOptions['logRecordProcessors']>[number];

export const CONNECTION_STRING_SETTING = 'APPLICATIONINSIGHTS_CONNECTION_STRING';

/** The APPLICATIONINSIGHTS_CONNECTION_STRING setting, trimmed; empty when telemetry is not configured. */
export function configuredConnectionString(env: Readonly<Record<string, string | undefined>> = process.env): string {
  return (env[CONNECTION_STRING_SETTING] ?? '').trim();
}

export interface TelemetryOptions {
  /** What the exporter authenticates with (Entra ID): in the function app, its ManagedIdentityCredential. */
  readonly credential: TokenCredential;
  /** Default: the APPLICATIONINSIGHTS_CONNECTION_STRING setting. Unset or blank: telemetry stays off. */
  readonly connectionString?: string | undefined;
  /** Run beside the exporter's (tests: in-memory exporters). They need a connection string too. */
  readonly spanProcessors?: readonly SpanProcessor[];
  readonly metricReaders?: readonly MetricReader[];
  readonly logRecordProcessors?: readonly LogRecordProcessor[];
  /**
   * Apply the Functions instrumentation to @azure/functions. Default: when running in the
   * Functions host (outside it @azure/functions is in test mode and its hooks only warn).
   */
  readonly instrumentFunctions?: boolean;
}

export interface TelemetryHandle {
  /** Whether anything was started (false: no connection string). */
  readonly enabled: boolean;
  /** Exports what is buffered: spans, metrics (a collection), logs. */
  forceFlush(): Promise<void>;
  /** Flushes and stops the exporters and the instrumentations; telemetry is off afterwards. */
  shutdown(): Promise<void>;
}

const DISABLED: TelemetryHandle = { enabled: false, forceFlush: () => Promise.resolve(), shutdown: () => Promise.resolve() };

let running: Promise<TelemetryHandle> | undefined;

/**
 * Starts telemetry (see the module comment) and returns its handle; a no-op handle without a
 * connection string. A second call while it runs returns the same handle.
 */
export function startTelemetry(options: TelemetryOptions): Promise<TelemetryHandle> {
  const connectionString = (options.connectionString ?? configuredConnectionString()).trim();
  if (connectionString === '') {
    const extras = [options.spanProcessors, options.metricReaders, options.logRecordProcessors].some((list) => (list?.length ?? 0) > 0);
    // Extra processors ride on the distro's providers, which need a connection string to exist.
    if (extras) return Promise.reject(new ConfigurationError(`telemetry: span processors, metric readers or log record processors were given without ${CONNECTION_STRING_SETTING}`));
    return Promise.resolve(DISABLED);
  }
  running ??= start(connectionString, options).catch((error: unknown) => {
    running = undefined;
    throw error;
  });
  return running;
}

async function start(connectionString: string, options: TelemetryOptions): Promise<TelemetryHandle> {
  const [{ useAzureMonitor, shutdownAzureMonitor }, { resourceFromAttributes }, functions] = await Promise.all([
    import('@azure/monitor-opentelemetry'),
    import('@opentelemetry/resources'),
    import('./functions.js'),
  ]);
  useAzureMonitor({
    azureMonitorExporterOptions: { connectionString, credential: options.credential },
    resource: resourceFromAttributes({ 'service.name': SERVICE_NAME }),
    samplingRatio: 1,
    tracesPerSecond: 0,
    enableLiveMetrics: false,
    instrumentationOptions: {
      azureSdk: { enabled: true },
      http: { enabled: false },
      mongoDb: { enabled: false },
      mySql: { enabled: false },
      postgreSql: { enabled: false },
      redis: { enabled: false },
      redis4: { enabled: false },
    },
    spanProcessors: [...(options.spanProcessors ?? [])],
    metricReaders: [...(options.metricReaders ?? [])],
    logRecordProcessors: [...(options.logRecordProcessors ?? [])],
  });
  if (options.instrumentFunctions ?? functions.inFunctionsHost()) {
    const azureFunctions = await import('@azure/functions');
    // The module's exports object (CommonJS): the one `app` the registrations use.
    functions.instrumentFunctions(azureFunctions.default);
  }
  let stopped: Promise<void> | undefined;
  return {
    enabled: true,
    forceFlush: flushProviders,
    shutdown() {
      stopped ??= (async () => {
        await flushProviders();
        await shutdownAzureMonitor();
        running = undefined;
      })();
      return stopped;
    },
  };
}

interface Flushable {
  forceFlush(): Promise<void>;
}

/** The global tracer, meter and logger providers the distro registered, each flushed. */
async function flushProviders(): Promise<void> {
  const { logs } = await import('@opentelemetry/api-logs');
  const providers: unknown[] = [trace.getTracerProvider(), metrics.getMeterProvider(), logs.getLoggerProvider()];
  await Promise.all(providers.map((provider) => flushable(provider)?.forceFlush() ?? Promise.resolve()));
}

/** The provider itself, or the one a proxy provider delegates to, when it can flush. */
function flushable(provider: unknown): Flushable | undefined {
  const delegate = (provider as { getDelegate?: () => unknown }).getDelegate?.() ?? provider;
  return typeof (delegate as Partial<Flushable>).forceFlush === 'function' ? (delegate as Flushable) : undefined;
}
