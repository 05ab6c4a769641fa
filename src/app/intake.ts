/**
 * Manual intake: validate a request, refuse it while the VM is being remediated, record it
 * as queued and hand it to the worker. Returns a typed result the HTTP adapter maps to status codes.
 */
import { randomUUID } from 'node:crypto';
import { parseRemediationRequest, type Job, type Source } from '../core/job.js';
import type { RemediationRecord } from '../core/outcome.js';
import { ConfigurationError, type InputValidationError, NotAVirtualMachineError } from '../errors.js';
import { queuedRecord } from '../pipeline/remediate.js';
import type { Services } from './services.js';

export type IntakeResult =
  | { readonly kind: 'accepted'; readonly job: Job; readonly record: RemediationRecord }
  | { readonly kind: 'invalid'; readonly error: InputValidationError }
  | { readonly kind: 'not-a-vm'; readonly error: NotAVirtualMachineError }
  | { readonly kind: 'busy'; readonly vmResourceId: string; readonly activeRemediationId: string };

export async function submitRemediation(body: unknown, services: Services, source: Source = 'manual'): Promise<IntakeResult> {
  const parsed = parseRemediationRequest(body, { id: randomUUID(), source, now: new Date() });
  if (!parsed.success) {
    return parsed.error instanceof NotAVirtualMachineError ? { kind: 'not-a-vm', error: parsed.error } : { kind: 'invalid', error: parsed.error };
  }
  const job = parsed.data;
  const holder = await services.lock.holder(job.vm.key);
  if (holder !== undefined) return { kind: 'busy', vmResourceId: job.vm.id, activeRemediationId: holder };
  if (!services.queue) throw new ConfigurationError('no queue configured');
  const record = queuedRecord(job);
  await services.store.create(record);
  await services.queue.enqueue(job);
  return { kind: 'accepted', job, record };
}
