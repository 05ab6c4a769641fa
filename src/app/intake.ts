/**
 * Manual intake: validate a request, refuse it while the VM is being remediated, hand it to
 * the worker and record it as queued. Returns a typed result the HTTP adapter maps to status codes.
 *
 * A restore request names a remediation instead of a VM: intake reads that record, refuses a
 * restore of an unknown remediation (404), of one still running (409), of one that made no
 * security change (422) and of one already restored or being restored (409), and queues the
 * restore for the VM the remediation ran on.
 */
import { randomUUID } from 'node:crypto';
import { parseRemediationRequest, restoreJob, type Job, type RestoreRequest, type Source } from '../core/job.js';
import type { RemediationRecord } from '../core/outcome.js';
import { parseVmResourceId } from '../core/resource-id.js';
import { ConfigurationError, DependencyError, errorMessage, type InputValidationError, NotAVirtualMachineError, RemediatorError } from '../errors.js';
import { queuedRecord } from '../pipeline/remediate.js';
import { resolveRestoreTarget, type RestoreRefusal } from '../pipeline/restore.js';
import type { Services } from './services.js';

/** A restore that cannot be done: `reason` says why (see RestoreRefusal), `by` names the restore that did or does it. */
export class RestoreRefusedError extends RemediatorError {
  public readonly reason: RestoreRefusal['reason'];
  public readonly restoreOf: string;
  public readonly by: string | undefined;
  public constructor(restoreOf: string, refusal: RestoreRefusal) {
    super(refusal.detail, { restoreOf, reason: refusal.reason, ...('by' in refusal ? { by: refusal.by } : {}) });
    this.reason = refusal.reason;
    this.restoreOf = restoreOf;
    this.by = 'by' in refusal ? refusal.by : undefined;
  }
}

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
  | { readonly kind: 'busy'; readonly vmResourceId: string; readonly activeRemediationId: string }
  | { readonly kind: 'restore-refused'; readonly error: RestoreRefusedError };

/** A validated request, not yet queued: the job, or why it is refused. */
export type Admitted = { readonly kind: 'job'; readonly job: Job } | Exclude<IntakeResult, { readonly kind: 'accepted' | 'busy' }>;

/**
 * Validates a request and, for a restore, reads the remediation it names: the job to run, or
 * why not. Shared by the HTTP intake and the CLI, which runs the job in-process.
 */
export async function admitRequest(body: unknown, services: Pick<Services, 'store'>, source: Source, now: Date = new Date()): Promise<Admitted> {
  const parsed = parseRemediationRequest(body, { id: randomUUID(), source, now });
  if (!parsed.success) {
    return parsed.error instanceof NotAVirtualMachineError ? { kind: 'not-a-vm', error: parsed.error } : { kind: 'invalid', error: parsed.error };
  }
  if (parsed.data.mode !== 'restore') return { kind: 'job', job: parsed.data };
  return admitRestore(parsed.data, services);
}

async function admitRestore(request: RestoreRequest, services: Pick<Services, 'store'>): Promise<Admitted> {
  const resolved = await dependency('remediation-store', 'could not read the remediation to restore', () => resolveRestoreTarget(services.store, request.restoreOf));
  if (!resolved.ok) return { kind: 'restore-refused', error: new RestoreRefusedError(request.restoreOf, resolved.refusal) };
  const vm = parseVmResourceId(resolved.target.original.vmResourceId);
  // The record was written from a parsed resource id; one that no longer parses is a broken record.
  if (!vm.success) throw new RemediatorError(`remediation ${request.restoreOf} names an unreadable VM: ${vm.error.message}`, { restoreOf: request.restoreOf });
  return { kind: 'job', job: restoreJob(request, vm.data) };
}

export async function submitRemediation(body: unknown, services: Services, source: Source = 'manual'): Promise<IntakeResult> {
  const admitted = await admitRequest(body, services, source);
  if (admitted.kind !== 'job') return admitted;
  const { job } = admitted;
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
