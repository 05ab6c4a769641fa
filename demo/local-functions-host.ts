/**
 * Runs the app's queue-triggered functions the way the Functions host does, without the
 * host: receive with a visibility timeout, call the handler with a real InvocationContext,
 * delete on success, leave the message to reappear on failure, and after maxDequeueCount
 * attempts move it to `<queue>-poison`, whose own trigger then runs.
 *
 * Run as a program (`runWorkerProcess`, below), it is the remediation worker as a process of
 * its own, which the crash tests SIGKILL at random points: a killed host's messages stay
 * invisible until their visibility timeout runs out, then come back with a higher dequeue
 * count, as they do when a Functions host dies.
 */
import { pathToFileURL } from 'node:url';
import functions, { type InvocationContext as InvocationContextType } from '@azure/functions';
import type { QueueClient } from '@azure/storage-queue';

const { InvocationContext } = functions;

export type QueueHandler = (message: unknown, context: InvocationContextType) => Promise<void>;

export interface QueueBinding {
  readonly functionName: string;
  readonly queue: QueueClient;
  readonly handler: QueueHandler;
  /** Where failed messages go after maxDequeueCount attempts; absent for the poison trigger itself. */
  readonly poison?: QueueClient;
}

export interface LocalHostOptions {
  readonly maxDequeueCount?: number;
  readonly visibilityTimeoutSeconds?: number;
  /** Messages fetched at once (host.json queues.batchSize; at most 32). */
  readonly batchSize?: number;
  /** Fetch the next batch once this few are still running (host.json queues.newBatchThreshold). */
  readonly newBatchThreshold?: number;
  /** First wait after an empty receive; doubles up to maxPollIntervalMs, like the host's backoff. */
  readonly pollIntervalMs?: number;
  /** host.json queues.maxPollingInterval. */
  readonly maxPollIntervalMs?: number;
  /**
   * When set, a failed invocation's message becomes visible again after this many seconds (the
   * Functions host's visibilityTimeout, its retry delay) rather than after the lease's
   * visibilityTimeoutSeconds; the lease keeps running invocations hidden either way.
   */
  readonly failureVisibilitySeconds?: number;
  /**
   * Keep polling when a receive (or a move to the poison queue) fails, as the Functions host
   * does, after the poll back-off, instead of ending the loop with the error. Default false.
   */
  readonly survivePollErrors?: boolean;
  readonly log?: (functionName: string, level: string, message: string) => void;
}

export class LocalFunctionsHost {
  private running = false;
  private loops: Promise<void>[] = [];
  private inFlight = 0;
  public readonly invocations: { functionName: string; dequeueCount: number; ok: boolean }[] = [];

  public constructor(
    private readonly bindings: readonly QueueBinding[],
    private readonly options: LocalHostOptions = {},
  ) {}

  public async start(): Promise<void> {
    for (const b of this.bindings) {
      await b.queue.createIfNotExists();
      await b.poison?.createIfNotExists();
    }
    this.running = true;
    this.loops = this.bindings.map((b) => this.loop(b));
  }

  public async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.loops);
  }

  /** Resolves once every bound queue is empty and nothing is being processed. */
  public async drain(timeoutMs = 120_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const counts = await Promise.all(this.bindings.map(async (b) => (await b.queue.getProperties()).approximateMessagesCount ?? 0));
      if (this.inFlight === 0 && counts.every((c) => c === 0)) return;
      if (Date.now() > deadline) throw new Error(`queues not drained within ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  private async loop(binding: QueueBinding): Promise<void> {
    const maxDequeueCount = this.options.maxDequeueCount ?? 5;
    const batchSize = Math.min(32, this.options.batchSize ?? 16);
    const threshold = this.options.newBatchThreshold ?? Math.floor(batchSize / 2);
    const running = new Set<Promise<void>>();
    const minWait = this.options.pollIntervalMs ?? 50;
    const maxWait = this.options.maxPollIntervalMs ?? 250;
    let wait = minWait;
    while (this.running) {
      if (running.size > threshold) {
        await Promise.race(running);
        continue;
      }
      let received: Awaited<ReturnType<QueueClient['receiveMessages']>>;
      try {
        received = await binding.queue.receiveMessages({ numberOfMessages: batchSize, visibilityTimeout: this.options.visibilityTimeoutSeconds ?? 30 });
      } catch (error) {
        if (!this.options.survivePollErrors) throw error;
        this.options.log?.(binding.functionName, 'error', `receive failed: ${String(error)}`);
        await new Promise((r) => setTimeout(r, maxWait));
        continue;
      }
      if (received.receivedMessageItems.length === 0) {
        await new Promise((r) => setTimeout(r, wait));
        wait = Math.min(maxWait, wait * 2);
        continue;
      }
      wait = minWait;
      for (const item of received.receivedMessageItems) {
        this.inFlight++;
        const invocation = this.invoke(binding, item, maxDequeueCount);
        const guarded = this.options.survivePollErrors
          ? invocation.catch((error: unknown) => this.options.log?.(binding.functionName, 'error', `message handling failed: ${String(error)}`))
          : invocation;
        const task = guarded.finally(() => {
          this.inFlight--;
          running.delete(task);
        });
        running.add(task);
      }
    }
    await Promise.all(running);
  }

  private async invoke(
    binding: QueueBinding,
    item: { messageId: string; popReceipt: string; messageText: string; dequeueCount: number },
    maxDequeueCount: number,
  ): Promise<void> {
    const text = Buffer.from(item.messageText, 'base64').toString('utf8');
    if (item.dequeueCount > maxDequeueCount && binding.poison) {
      await binding.poison.sendMessage(item.messageText);
      await binding.queue.deleteMessage(item.messageId, item.popReceipt);
      return;
    }
    const context = new InvocationContext({
      functionName: binding.functionName,
      invocationId: item.messageId,
      triggerMetadata: { dequeueCount: item.dequeueCount, id: item.messageId },
      logHandler: (level, ...args) => this.options.log?.(binding.functionName, level, args.map(String).join(' ')),
    });
    let ok = false;
    // Like the host, keep a running message invisible by renewing its visibility, so a slow
    // invocation is not delivered a second time while it still runs.
    const visibilitySeconds = this.options.visibilityTimeoutSeconds ?? 30;
    let popReceipt = item.popReceipt;
    let renewing = Promise.resolve();
    const renewal = setInterval(() => {
      renewing = renewing.then(async () => {
        try {
          popReceipt = (await binding.queue.updateMessage(item.messageId, popReceipt, undefined, visibilitySeconds)).popReceipt ?? popReceipt;
        } catch {
          // The message is gone or changed hands; the delete below will say so.
        }
      });
    }, (visibilitySeconds * 1000) / 2);
    try {
      // The host hands a JSON message to the handler already parsed.
      await binding.handler(parseMaybeJson(text), context);
      ok = true;
      clearInterval(renewal);
      await renewing;
      await binding.queue.deleteMessage(item.messageId, popReceipt);
    } catch (error) {
      this.options.log?.(binding.functionName, 'error', `invocation failed (attempt ${item.dequeueCount}): ${String(error)}`);
      // Left in the queue: it becomes visible again after the visibility timeout.
      const retryAfter = this.options.failureVisibilitySeconds;
      if (retryAfter !== undefined) {
        clearInterval(renewal);
        await renewing;
        await binding.queue.updateMessage(item.messageId, popReceipt, undefined, retryAfter).catch(() => undefined);
      }
    } finally {
      clearInterval(renewal);
      this.invocations.push({ functionName: binding.functionName, dequeueCount: item.dequeueCount, ok });
    }
  }
}

function parseMaybeJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text;
  }
}

/**
 * The remediation worker and its poison trigger as a process of their own, against the storage
 * and ARM endpoints the environment names (AzureWebJobsStorage, AZURE_RESOURCE_MANAGER_ENDPOINT,
 * the identity endpoint, NODE_EXTRA_CA_CERTS for the emulator's CA; emulator.env() has them).
 * LOCAL_HOST_VISIBILITY_SECONDS, LOCAL_HOST_MAX_DEQUEUE_COUNT and LOCAL_HOST_BATCH_SIZE set the
 * host's options. Prints `ready` once it polls, then one JSON line per log entry, and runs
 * until it is killed (or SIGTERM, which stops it after the running invocations).
 */
export async function runWorkerProcess(env: NodeJS.ProcessEnv = process.env, out: (line: string) => void = (line) => process.stdout.write(`${line}\n`)): Promise<void> {
  const [{ remediationPoison, remediationWorker }, { queueClient }, { POISON_QUEUE_NAME, QUEUE_NAME }] = await Promise.all([
    import('../functions/remediation-worker.js'),
    import('../src/adapters/storage.js'),
    import('../src/config.js'),
  ]);
  const connectionString = env['AzureWebJobsStorage'];
  if (!connectionString) throw new Error('AzureWebJobsStorage is not set');
  const connection = { kind: 'connection-string' as const, connectionString };
  const number = (name: string, fallback: number) => (env[name] ? Number(env[name]) : fallback);
  const host = new LocalFunctionsHost(
    [
      { functionName: 'remediation-worker', queue: queueClient(connection, QUEUE_NAME), poison: queueClient(connection, POISON_QUEUE_NAME), handler: remediationWorker },
      { functionName: 'remediation-poison', queue: queueClient(connection, POISON_QUEUE_NAME), handler: remediationPoison },
    ],
    {
      visibilityTimeoutSeconds: number('LOCAL_HOST_VISIBILITY_SECONDS', 30),
      maxDequeueCount: number('LOCAL_HOST_MAX_DEQUEUE_COUNT', 5),
      batchSize: number('LOCAL_HOST_BATCH_SIZE', 16),
      log: (functionName, level, message) => out(JSON.stringify({ functionName, level, message })),
    },
  );
  await host.start();
  out('ready');
  await new Promise<void>((resolve) => process.once('SIGTERM', () => resolve()));
  await host.stop();
}

/**
 * All four queue functions of the app (remediation-worker, remediation-poison, alert-worker,
 * alert-poison) bound to their queues in the storage account the connection string names, as
 * demo/stack.ts binds them: for a process that hosts the whole function app (the storm
 * benchmark's instances). The function modules are imported here, not at the top, so that
 * importing the host does not load the app.
 */
export async function appQueueBindings(connectionString: string): Promise<QueueBinding[]> {
  const [{ remediationPoison, remediationWorker }, { alertPoison, alertWorker }, { queueClient }, { ALERT_POISON_QUEUE_NAME, ALERT_QUEUE_NAME, POISON_QUEUE_NAME, QUEUE_NAME }] = await Promise.all([
    import('../functions/remediation-worker.js'),
    import('../functions/alerts.js'),
    import('../src/adapters/storage.js'),
    import('../src/config.js'),
  ]);
  const connection = { kind: 'connection-string' as const, connectionString };
  return [
    { functionName: 'remediation-worker', queue: queueClient(connection, QUEUE_NAME), poison: queueClient(connection, POISON_QUEUE_NAME), handler: remediationWorker },
    { functionName: 'remediation-poison', queue: queueClient(connection, POISON_QUEUE_NAME), handler: remediationPoison },
    { functionName: 'alert-worker', queue: queueClient(connection, ALERT_QUEUE_NAME), poison: queueClient(connection, ALERT_POISON_QUEUE_NAME), handler: alertWorker },
    { functionName: 'alert-poison', queue: queueClient(connection, ALERT_POISON_QUEUE_NAME), handler: alertPoison },
  ];
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  runWorkerProcess().then(
    () => process.exit(0),
    (error: unknown) => {
      process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
      process.exit(1);
    },
  );
}
