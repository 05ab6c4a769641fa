/** Hands messages to the queue-triggered functions: jobs to the worker, accepted alerts to the alert worker. */
import type { QueueClient } from '@azure/storage-queue';
import type { AcceptedAlert } from '../alerts/classify.js';
import { toAlertMessage } from '../alerts/message.js';
import { toJobMessage, type Job } from '../core/job.js';
import { DEFAULT_BOUNDS, withDeadline } from './pacing.js';

export interface EnqueueOptions {
  /** Keep the message invisible this long (a retry later). */
  readonly delaySeconds?: number;
}

export interface JobQueue {
  enqueue(job: Job, options?: EnqueueOptions): Promise<void>;
}

export interface AlertQueue {
  enqueue(alert: AcceptedAlert, receivedAt: Date): Promise<void>;
}

export interface StorageQueueOptions {
  /** Deadline of one queue call (create, send), the SDK's retries included. Default DEFAULT_BOUNDS.queue. */
  readonly operationTimeoutMs?: number;
}

/**
 * A storage queue of JSON messages, created on first use, encoded as the Functions queue
 * trigger expects. Every call is bounded: a hung queue service ends in DependencyTimeoutError('queue').
 */
class JsonStorageQueue {
  private ready: Promise<unknown> | undefined;
  private readonly timeoutMs: number;

  public constructor(
    private readonly queue: QueueClient,
    options: StorageQueueOptions = {},
  ) {
    this.timeoutMs = options.operationTimeoutMs ?? DEFAULT_BOUNDS.queue.operationTimeoutMs;
  }

  private create(): Promise<unknown> {
    // A failed attempt is tried again on the next send, not remembered.
    this.ready ??= withDeadline('queue', this.timeoutMs, `create queue ${this.queue.name}`, (abortSignal) => this.queue.createIfNotExists({ abortSignal })).catch((error: unknown) => {
      this.ready = undefined;
      throw error;
    });
    return this.ready;
  }

  public async send(message: unknown, options: EnqueueOptions = {}): Promise<void> {
    await this.create();
    // The Functions queue trigger expects base64 (host.json messageEncoding "base64", the default).
    const text = Buffer.from(JSON.stringify(message), 'utf8').toString('base64');
    await withDeadline('queue', this.timeoutMs, `send to queue ${this.queue.name}`, (abortSignal) =>
      this.queue.sendMessage(text, { abortSignal, ...(options.delaySeconds ? { visibilityTimeout: Math.ceil(options.delaySeconds) } : {}) }),
    );
  }
}

export class StorageJobQueue implements JobQueue {
  private readonly queue: JsonStorageQueue;

  public constructor(queue: QueueClient, options: StorageQueueOptions = {}) {
    this.queue = new JsonStorageQueue(queue, options);
  }

  public enqueue(job: Job, options: EnqueueOptions = {}): Promise<void> {
    return this.queue.send(toJobMessage(job), options);
  }
}

export class StorageAlertQueue implements AlertQueue {
  private readonly queue: JsonStorageQueue;

  public constructor(queue: QueueClient, options: StorageQueueOptions = {}) {
    this.queue = new JsonStorageQueue(queue, options);
  }

  public enqueue(alert: AcceptedAlert, receivedAt: Date): Promise<void> {
    return this.queue.send(toAlertMessage(alert, receivedAt));
  }
}
