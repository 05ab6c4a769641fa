/**
 * One function app instance of the storm benchmark, as a process of its own: a LocalFunctionsHost
 * draining the real queues with the app's four queue functions (demo/local-functions-host.ts,
 * appQueueBindings), and an HTTP server in front of the real webhook handler.
 *
 * - `POST /api/alerts` builds @azure/functions' own HttpRequest and InvocationContext, as the
 *   Functions host hands them to the function (and as demo/stack.ts does), calls `postAlert` and
 *   writes its answer.
 * - `POST /api/bare` does the same adaptation (body read, HttpRequest and InvocationContext built)
 *   and calls a handler that answers 202 and does nothing else: the baseline the webhook's
 *   acknowledgement latency is held against, in the same process, under the same load.
 *
 * The app's settings come from the environment the orchestrator gives it. Completions (the
 * worker's `remediation.completed` log line) are sent to the orchestrator as they happen, with
 * this machine's wall clock, which every process of the benchmark shares.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import functions, { type HttpResponseInit } from '@azure/functions';
import { appQueueBindings, LocalFunctionsHost } from '../../demo/local-functions-host.js';
import { APP_METHODS, emitEvent, serveRpc, usageNow, type Completed } from './protocol.js';

const { HttpRequest, InvocationContext } = functions;

type Handler = (request: InstanceType<typeof HttpRequest>, context: InstanceType<typeof InvocationContext>) => Promise<HttpResponseInit>;

let host: LocalFunctionsHost | undefined;
let server: ReturnType<typeof createServer> | undefined;
const events: Record<string, number> = {};
let pending: Completed[] = [];
let flushTimer: NodeJS.Timeout | undefined;

const EVENT_NAME = /"event":"([^"]+)"/;

function onLog(_functionName: string, level: string, message: string): void {
  const name = EVENT_NAME.exec(message)?.[1] ?? (level === 'error' ? 'error' : undefined);
  if (name === undefined) return;
  events[name] = (events[name] ?? 0) + 1;
  if (name === 'remediation.deferred' || level === 'error') {
    // Why, in a few words: ids, resource ids and numbers dropped so that equal reasons count together.
    const reason = (/"(?:reason|error|message)":"([^"]{0,400})/.exec(message)?.[1] ?? message.slice(0, 400))
      .replace(/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/gi, 'ID')
      .replace(/\/subscriptions\/[^\s"']*/gi, 'VM')
      .replace(/\d+(\.\d+)?/g, 'N')
      .slice(0, 140);
    const key = `${name}: ${reason}`;
    events[key] = (events[key] ?? 0) + 1;
  }
  if (name !== 'remediation.completed') return;
  const at = Date.now();
  const entry = JSON.parse(message) as { vm?: unknown; status?: unknown };
  if (typeof entry.vm !== 'string') return;
  pending.push({ vm: entry.vm.toLowerCase(), status: typeof entry.status === 'string' ? entry.status : 'unknown', at });
  // Batched, so a storm's thousands of completions are a few dozen IPC messages.
  flushTimer ??= setTimeout(flush, 100);
}

function flush(): void {
  flushTimer = undefined;
  if (pending.length === 0) return;
  emitEvent('completed', { items: pending });
  pending = [];
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(String(chunk)));
  return Buffer.concat(chunks).toString('utf8');
}

async function serve(req: IncomingMessage, res: ServerResponse, handlers: Readonly<Record<string, { functionName: string; handler: Handler }>>): Promise<void> {
  const path = (req.url ?? '/').split('?')[0] ?? '/';
  const route = handlers[path];
  if (req.method !== 'POST' || route === undefined) {
    res.writeHead(404).end();
    return;
  }
  const body = await readBody(req);
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(req.headers)) if (typeof value === 'string') headers[name] = value;
  const request = new HttpRequest({ method: 'POST', url: `http://${req.headers.host ?? 'localhost'}${req.url ?? '/'}`, headers, body: { string: body } });
  const context = new InvocationContext({ functionName: route.functionName, invocationId: crypto.randomUUID(), logHandler: (level, ...args) => onLog(route.functionName, level, args.map(String).join(' ')) });
  const answer = await route.handler(request, context);
  const text = answer.jsonBody !== undefined ? JSON.stringify(answer.jsonBody) : typeof answer.body === 'string' ? answer.body : '';
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries((answer.headers ?? {}) as Record<string, string>)) out[name.toLowerCase()] = String(value);
  res.writeHead(answer.status ?? 200, { ...out, 'content-length': String(Buffer.byteLength(text)) });
  res.end(text);
}

serveRpc(APP_METHODS, {
  async start({ batchSize, newBatchThreshold, failureVisibilitySeconds }) {
    const connectionString = process.env['AzureWebJobsStorage'];
    if (!connectionString) throw new Error('AzureWebJobsStorage is not set');
    const { postAlert } = await import('../../functions/alerts.js');
    const bare: Handler = () => Promise.resolve({ status: 202 });
    const routes = { '/api/alerts': { functionName: 'alerts', handler: postAlert }, '/api/bare': { functionName: 'bare', handler: bare } };
    host = new LocalFunctionsHost(await appQueueBindings(connectionString), {
      batchSize,
      newBatchThreshold,
      // A running invocation's lease, renewed at half of it: the Functions host takes a message for 10 minutes.
      visibilityTimeoutSeconds: 600,
      // Empty queues are polled at most this far apart (host.json maxPollingInterval, 1 min by
      // default, here 1 s so that an alert is picked up at once): idle polls load Azurite too.
      maxPollIntervalMs: 1_000,
      // host.json's visibilityTimeout (00:01:00): the retry delay of a failed invocation, scaled.
      failureVisibilitySeconds,
      // A receive that fails (a reset connection under the storm) is polled again, as the Functions host does.
      survivePollErrors: true,
      maxDequeueCount: 5,
      log: onLog,
    });
    await host.start();
    const listening = createServer((req, res) => {
      serve(req, res, routes).catch((error: unknown) => {
        if (!res.headersSent) res.writeHead(500);
        res.end(String(error));
      });
    });
    listening.keepAliveTimeout = 60_000;
    await new Promise<void>((resolve) => listening.listen(0, '127.0.0.1', resolve));
    server = listening;
    const address = listening.address();
    if (address === null || typeof address === 'string') throw new Error('the HTTP server has no port');
    return { port: address.port, pid: process.pid };
  },

  usage() {
    flush();
    return Promise.resolve({ ...usageNow(), events: { ...events } });
  },

  async drain({ timeoutMs }) {
    try {
      await host?.drain(timeoutMs);
      flush();
      return { drained: true, error: null };
    } catch (error) {
      return { drained: false, error: error instanceof Error ? error.message : String(error) };
    }
  },

  async stop() {
    flush();
    await host?.stop();
    await new Promise<void>((resolve) => {
      if (!server) return resolve();
      server.close(() => resolve());
      server.closeAllConnections();
    });
    setImmediate(() => process.exit(0));
    return {};
  },
});

process.on('disconnect', () => process.exit(0));
// Counted and reported rather than fatal: one stray rejection should not take a whole instance's
// invocations down mid-storm, and the count says it happened.
process.on('unhandledRejection', (reason) => onLog('process', 'error', JSON.stringify({ event: 'unhandled-rejection', error: String(reason) })));
