/**
 * Manual intake: validate a request, refuse it while the VM is being remediated, hand it to
 * the worker and record it as queued. Returns a typed result the HTTP adapter maps to status codes.
 */
import { randomUUID } from 'node:crypto';
import { parseRemediationRequest, type Job, type Source } from '../core/job.js';
import type { RemediationRecord } from '../core/outcome.js';
import { ConfigurationError, DependencyError, errorMessage, type InputValidationError, NotAVirtualMachineError } from '../errors.js';
import { queuedRecord } from '../pipeline/remediate.js';
import type { Services } from './services.js';

export type IntakeResult =
  | {
      readonly kind: 'accepted';
      readonly job: Job;
      readonly record: RemediationRecord;
      /** false: the job is queued but its record could not be written; the worker writes it when it takes the job. */
      readonly recorded?: boolean;
    }
  | { readonly kind: 'invalid'; readonly error: InputValidationError }
  | { readonly kind: 'not-a-vm'; readonly error: NotAVirtualMachineError }
  | { readonly kind: 'busy'; readonly vmResourceId: string; readonly activeRemediationId: string };

export async function submitRemediation(body: unknown, services: Services, source: Source = 'manual'): Promise<IntakeResult> {
  const parsed = parseRemediationRequest(body, { id: randomUUID(), source, now: new Date() });
  if (!parsed.success) {
    return parsed.error instanceof NotAVirtualMachineError ? { kind: 'not-a-vm', error: parsed.error } : { kind: 'invalid', error: parsed.error };
  }
  const job = parsed.data;
  const { queue } = services;
  if (!queue) throw new ConfigurationError('no queue configured');
  const holder = await dependency('vm-lock', 'could not read the VM lease', () => services.lock.holder(job.vm.key));
  if (holder !== undefined) return { kind: 'busy', vmResourceId: job.vm.id, activeRemediationId: holder };
  const record = queuedRecord(job);
  // The message first: if it cannot be queued, nothing is written and the caller gets a
  // DependencyError (503), with nothing left behind to sit in "queued" forever. Once it is
  // queued the request is accepted, even if the record then cannot be written: the worker
  // creates a missing record from the message (the store's create is idempotent either way).
  await dependency('remediation-queue', 'could not queue the job', () => queue.enqueue(job));
  try {
    await services.store.create(record);
  } catch {
    return { kind: 'accepted', job, record, recorded: false };
  }
  return { kind: 'accepted', job, record };
}

/** Runs a call to a backing service; its failure becomes a DependencyError naming the service. */
export async function dependency<T>(name: string, what: string, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (error) {
    throw new DependencyError(name, `${what}: ${errorMessage(error)}`, { cause: error });
  }
}
