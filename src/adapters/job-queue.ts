/** Hands messages to the queue-triggered functions: jobs to the worker, accepted alerts to the alert worker. */
import type { QueueClient } from '@azure/storage-queue';
import type { AcceptedAlert } from '../alerts/classify.js';
import { toAlertMessage } from '../alerts/message.js';
import { toJobMessage, type Job } from '../core/job.js';

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

/** A storage queue of JSON messages, created on first use, encoded as the Functions queue trigger expects. */
class JsonStorageQueue {
  private ready: Promise<unknown> | undefined;

  public constructor(private readonly queue: QueueClient) {}

  public async send(message: unknown, options: EnqueueOptions = {}): Promise<void> {
    this.ready ??= this.queue.createIfNotExists();
    await this.ready;
    // The Functions queue trigger expects base64 (host.json messageEncoding "base64", the default).
    await this.queue.sendMessage(Buffer.from(JSON.stringify(message), 'utf8').toString('base64'), {
      ...(options.delaySeconds ? { visibilityTimeout: Math.ceil(options.delaySeconds) } : {}),
    });
  }
}

export class StorageJobQueue implements JobQueue {
  private readonly queue: JsonStorageQueue;

  public constructor(queue: QueueClient) {
    this.queue = new JsonStorageQueue(queue);
  }

  public enqueue(job: Job, options: EnqueueOptions = {}): Promise<void> {
    return this.queue.send(toJobMessage(job), options);
  }
}

export class StorageAlertQueue implements AlertQueue {
  private readonly queue: JsonStorageQueue;

  public constructor(queue: QueueClient) {
    this.queue = new JsonStorageQueue(queue);
  }

  public enqueue(alert: AcceptedAlert, receivedAt: Date): Promise<void> {
    return this.queue.send(toAlertMessage(alert, receivedAt));
  }
}
