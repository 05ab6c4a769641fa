/** Hands jobs to the queue-triggered worker. */
import type { QueueClient } from '@azure/storage-queue';
import { toJobMessage, type Job } from '../core/job.js';

export interface EnqueueOptions {
  /** Keep the message invisible this long (a retry later). */
  readonly delaySeconds?: number;
}

export interface JobQueue {
  enqueue(job: Job, options?: EnqueueOptions): Promise<void>;
}

export class StorageJobQueue implements JobQueue {
  private ready: Promise<unknown> | undefined;

  public constructor(private readonly queue: QueueClient) {}

  public async enqueue(job: Job, options: EnqueueOptions = {}): Promise<void> {
    this.ready ??= this.queue.createIfNotExists();
    await this.ready;
    // The Functions queue trigger expects base64 (host.json messageEncoding "base64", the default).
    await this.queue.sendMessage(Buffer.from(JSON.stringify(toJobMessage(job)), 'utf8').toString('base64'), {
      ...(options.delaySeconds ? { visibilityTimeout: Math.ceil(options.delaySeconds) } : {}),
    });
  }
}
