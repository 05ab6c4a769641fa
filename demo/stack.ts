/**
 * The whole app running locally as it runs in Azure: the emulator (ARM + managed identity),
 * Azurite (queues, tables), the app's settings in the environment, the real HTTP handlers
 * called with @azure/functions' own HttpRequest, and the real queue functions driven by a
 * local host. Used by `npm start` and the end-to-end tests.
 */
import functions, { type HttpResponseInit } from '@azure/functions';
import * as compiledAlerts from '../functions/alerts.js';
import * as compiledRemediationWorker from '../functions/remediation-worker.js';
import * as compiledRemediations from '../functions/remediations.js';
import { queueClient } from '../src/adapters/storage.js';
import { resetServices } from '../src/app/services.js';
import { ALERT_POISON_QUEUE_NAME, ALERT_QUEUE_NAME, POISON_QUEUE_NAME, QUEUE_NAME } from '../src/config.js';
import type { RemediationRecord } from '../src/core/outcome.js';
import { startEmulator, trustEmulatorCa, type Emulator, type EmulatorOptions } from '../emulator/index.js';
import { startAzurite, type Azurite } from './azurite.js';
import { LocalFunctionsHost, type LocalHostOptions } from './local-functions-host.js';

const { HttpRequest, InvocationContext } = functions;

export const APP_URL = 'http://localhost:7071';

/** The app's handlers the stack drives, by function module. */
export interface AppHandlers {
  readonly remediations: Pick<typeof compiledRemediations, 'postRemediation' | 'getRemediation'>;
  readonly alerts: Pick<typeof compiledAlerts, 'postAlert' | 'alertWorker' | 'alertPoison'>;
  readonly remediationWorker: Pick<typeof compiledRemediationWorker, 'remediationWorker' | 'remediationPoison'>;
}

/** The function modules as compiled from functions/*.ts (the default). */
export const COMPILED_HANDLERS: AppHandlers = { remediations: compiledRemediations, alerts: compiledAlerts, remediationWorker: compiledRemediationWorker };

export interface LocalStackOptions {
  /**
   * The handlers to drive; default the compiled function modules. The bundle's end-to-end test
   * passes the bundled ones (dist-bundle/functions/*.mjs). Those keep their own copy of the
   * services, which resetServices() here does not reach: they read the settings below at their
   * first call, so they must not have been called before this stack set them.
   */
  readonly handlers?: AppHandlers;
  readonly emulator?: EmulatorOptions;
  /** App settings on top of the ones pointing at the emulator and Azurite. */
  readonly settings?: Readonly<Record<string, string>>;
  readonly host?: LocalHostOptions;
  /** Start the queue host now (default true). */
  readonly startHost?: boolean;
}

export interface HttpResult {
  readonly status: number;
  readonly body: unknown;
  readonly headers: Readonly<Record<string, string>>;
}

export interface LocalStack {
  readonly emulator: Emulator;
  readonly azurite: Azurite;
  readonly host: LocalFunctionsHost;
  readonly logs: { functionName: string; level: string; message: string }[];
  post(body: unknown): Promise<HttpResult>;
  /** POST /api/alerts, as an action group delivers it. */
  postAlert(body: unknown): Promise<HttpResult>;
  get(id: string): Promise<HttpResult>;
  /** Polls the status endpoint until the record is completed. */
  waitForCompletion(id: string, timeoutMs?: number): Promise<RemediationRecord>;
  stop(): Promise<void>;
}

function toResult(response: HttpResponseInit): HttpResult {
  const headers = Object.fromEntries(Object.entries((response.headers ?? {}) as Record<string, string>).map(([k, v]) => [k.toLowerCase(), String(v)]));
  return { status: response.status ?? 200, body: response.jsonBody, headers };
}

export async function startLocalStack(options: LocalStackOptions = {}): Promise<LocalStack> {
  const [emulator, azurite] = await Promise.all([startEmulator(options.emulator), startAzurite()]);
  // In-process, the app trusts the emulator's CA the way NODE_EXTRA_CA_CERTS does for a child process.
  trustEmulatorCa(emulator.caPem);
  const { NODE_EXTRA_CA_CERTS: _ca, ...env } = emulator.env();
  Object.assign(process.env, env, {
    AzureWebJobsStorage: azurite.connectionString,
    REMEDIATION_DEFAULT_MODE: 'repair',
    RUN_COMMAND_POLL_SECONDS: '0.02',
    // The emulator's runs take milliseconds, not Run Command's 20 s minimum.
    RUN_COMMAND_MIN_SECONDS: '0',
    RUN_COMMAND_BUSY_DELAY_SECONDS: '0.05',
    ...options.settings,
  });
  resetServices();
  const { remediations, alerts, remediationWorker: worker } = options.handlers ?? COMPILED_HANDLERS;
  const { postRemediation, getRemediation } = remediations;
  const { postAlert, alertWorker, alertPoison } = alerts;
  const { remediationWorker, remediationPoison } = worker;

  const logs: LocalStack['logs'] = [];
  const connection = { kind: 'connection-string' as const, connectionString: azurite.connectionString };
  const host = new LocalFunctionsHost(
    [
      { functionName: 'remediation-worker', queue: queueClient(connection, QUEUE_NAME), poison: queueClient(connection, POISON_QUEUE_NAME), handler: remediationWorker },
      { functionName: 'remediation-poison', queue: queueClient(connection, POISON_QUEUE_NAME), handler: remediationPoison },
      { functionName: 'alert-worker', queue: queueClient(connection, ALERT_QUEUE_NAME), poison: queueClient(connection, ALERT_POISON_QUEUE_NAME), handler: alertWorker },
      { functionName: 'alert-poison', queue: queueClient(connection, ALERT_POISON_QUEUE_NAME), handler: alertPoison },
    ],
    { visibilityTimeoutSeconds: 2, ...options.host, log: (functionName, level, message) => logs.push({ functionName, level, message }) },
  );
  if (options.startHost ?? true) await host.start();

  const context = (functionName: string) =>
    new InvocationContext({ functionName, invocationId: crypto.randomUUID(), logHandler: (level, ...args) => logs.push({ functionName, level, message: args.map(String).join(' ') }) });

  /** A JSON POST as the host hands it to an HTTP function; a string body is sent as is. */
  const postJson = async (
    route: string,
    body: unknown,
    handler: (request: InstanceType<typeof HttpRequest>, context: InstanceType<typeof InvocationContext>) => Promise<HttpResponseInit>,
    functionName: string,
  ): Promise<HttpResult> => {
    const request = new HttpRequest({
      method: 'POST',
      url: `${APP_URL}${route}`,
      headers: { 'content-type': 'application/json' },
      body: { string: typeof body === 'string' ? body : JSON.stringify(body) },
    });
    return toResult(await handler(request, context(functionName)));
  };

  const stack: LocalStack = {
    emulator,
    azurite,
    host,
    logs,
    post: (body) => postJson('/api/remediations', body, postRemediation, 'remediations-post'),
    postAlert: (body) => postJson('/api/alerts', body, postAlert, 'alerts'),
    async get(id) {
      const request = new HttpRequest({ method: 'GET', url: `${APP_URL}/api/remediations/${id}`, params: { id } });
      return toResult(await getRemediation(request, context('remediations-get')));
    },
    async waitForCompletion(id, timeoutMs = 60_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const { status, body } = await stack.get(id);
        if (status === 200 && (body as RemediationRecord).state === 'completed') return body as RemediationRecord;
        if (Date.now() > deadline) throw new Error(`remediation ${id} not completed within ${timeoutMs} ms (last: ${status} ${JSON.stringify(body)})`);
        await new Promise((r) => setTimeout(r, 25));
      }
    },
    async stop() {
      await host.stop();
      await Promise.all([emulator.stop(), azurite.stop()]);
      resetServices();
    },
  };
  return stack;
}
