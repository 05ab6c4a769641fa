/**
 * The HTTP functions in process, as the host calls them (@azure/functions' own HttpRequest and
 * InvocationContext), with their real services over Azurite: so what a request stored and
 * queued can be read back and checked.
 */
import functions, { type HttpResponseInit } from '@azure/functions';
import { TableClient } from '@azure/data-tables';
import { QueueClient } from '@azure/storage-queue';
import { startAzurite, type Azurite } from '../../demo/azurite.js';
import { postAlert } from '../../functions/alerts.js';
import { getRemediation, postRemediation } from '../../functions/remediations.js';
import { resetServices } from '../../src/app/services.js';
import { ALERT_QUEUE_NAME, QUEUE_NAME } from '../../src/config.js';

const { HttpRequest, InvocationContext } = functions;

export const APP_URL = 'http://localhost:7071';

export interface Reply {
  readonly status: number;
  readonly body: unknown;
}

export interface LogLine {
  readonly level: string;
  readonly message: string;
}

export interface FunctionsUnderTest {
  readonly azurite: Azurite;
  readonly logs: LogLine[];
  /** POST /api/remediations; a string body is sent as is, anything else as JSON. */
  postRemediation(body: unknown): Promise<Reply>;
  /** GET /api/remediations/{id}, with `id` as the route parameter the host would bind. */
  getRemediation(id: string): Promise<Reply>;
  /** POST /api/alerts, as an action group delivers it. */
  postAlert(body: unknown): Promise<Reply>;
  /** Every message on the remediation and alert queues, decoded (and hidden for ten minutes, so each is drained once). */
  drainQueues(): Promise<{ jobs: unknown[]; alerts: unknown[]; rawSizes: number[] }>;
  /** Every entity in the audit and lock tables. */
  entities(): Promise<Record<string, unknown>[]>;
  stop(): Promise<void>;
}

const SETTINGS = ['AzureWebJobsStorage', 'REMEDIATION_TABLE', 'REMEDIATION_LOCK_TABLE', 'ALERT_RULES', 'ALERT_ACCEPTED_SERVICES'] as const;

export async function startFunctions(): Promise<FunctionsUnderTest> {
  const azurite = await startAzurite();
  const saved = Object.fromEntries(SETTINGS.map((k) => [k, process.env[k]]));
  for (const k of SETTINGS) Reflect.deleteProperty(process.env, k);
  process.env.AzureWebJobsStorage = azurite.connectionString;
  resetServices();
  const logs: LogLine[] = [];
  const context = (functionName: string) =>
    new InvocationContext({ functionName, invocationId: crypto.randomUUID(), logHandler: (level, ...args) => logs.push({ level, message: args.map(String).join(' ') }) });
  const reply = (response: HttpResponseInit): Reply => ({ status: response.status ?? 200, body: response.jsonBody });
  const post = (route: string, body: unknown) =>
    new HttpRequest({ method: 'POST', url: `${APP_URL}${route}`, headers: { 'content-type': 'application/json' }, body: { string: typeof body === 'string' ? body : JSON.stringify(body) } });

  const queues = [QUEUE_NAME, ALERT_QUEUE_NAME].map((name) => new QueueClient(azurite.connectionString, name));
  const tables = ['remediations', 'remediationlocks'].map((name) => TableClient.fromConnectionString(azurite.connectionString, name, { allowInsecureConnection: true }));

  async function drain(queue: QueueClient, rawSizes: number[]): Promise<unknown[]> {
    if (!(await queue.exists())) return [];
    const out: unknown[] = [];
    for (;;) {
      const { receivedMessageItems } = await queue.receiveMessages({ numberOfMessages: 32, visibilityTimeout: 600 });
      if (receivedMessageItems.length === 0) return out;
      for (const m of receivedMessageItems) {
        rawSizes.push(m.messageText.length);
        // Left invisible, not deleted: the next drain does not see it again, at half the round trips.
        out.push(JSON.parse(Buffer.from(m.messageText, 'base64').toString('utf8')));
      }
    }
  }

  return {
    azurite,
    logs,
    postRemediation: async (body) => reply(await postRemediation(post('/api/remediations', body), context('remediations-post'))),
    postAlert: async (body) => reply(await postAlert(post('/api/alerts', body), context('alerts'))),
    async getRemediation(id) {
      // The URL only has to be one (a lone surrogate cannot be percent-encoded); the handler reads the route parameter.
      const request = new HttpRequest({ method: 'GET', url: `${APP_URL}/api/remediations/${encodeURIComponent(id.replace(/\p{Cs}/gu, '\ufffd'))}`, params: { id } });
      return reply(await getRemediation(request, context('remediations-get')));
    },
    async drainQueues() {
      const rawSizes: number[] = [];
      const [jobs = [], alerts = []] = await Promise.all(queues.map((q) => drain(q, rawSizes)));
      return { jobs, alerts, rawSizes };
    },
    async entities() {
      const all: Record<string, unknown>[] = [];
      for (const table of tables) {
        try {
          for await (const e of table.listEntities<Record<string, unknown>>()) all.push(e);
        } catch (error) {
          if ((error as { statusCode?: number }).statusCode !== 404) throw error;
        }
      }
      return all;
    },
    async stop() {
      await azurite.stop();
      for (const k of SETTINGS) {
        if (saved[k] === undefined) Reflect.deleteProperty(process.env, k);
        else process.env[k] = saved[k];
      }
      resetServices();
    },
  };
}

/** The error codes the HTTP functions answer with; a body outside these fails the tests. */
export const ERROR_CODES = new Set(['InvalidJson', 'InvalidRequest', 'NotAVirtualMachine', 'VmBusy', 'NotFound', 'PayloadTooLarge', 'MalformedAlert', 'AlertTooLarge']);

/** Whether a reply is well formed: a JSON body, with a typed error code for every 4xx. */
export function wellFormed(reply: Reply): boolean {
  const body = reply.body as { error?: { code?: unknown; message?: unknown } } | undefined;
  if (reply.status >= 400) return typeof body?.error?.message === 'string' && typeof body.error.code === 'string' && ERROR_CODES.has(body.error.code);
  return typeof reply.body === 'object' && reply.body !== null;
}
