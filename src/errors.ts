/**
 * Typed errors. Each names one failure, carries the context needed to act on it, and keeps
 * the underlying error as `cause`. Adapters classify SDK errors into these so the core can
 * decide without string matching.
 */

export type ErrorContext = Readonly<Record<string, unknown>>;

export class RemediatorError extends Error {
  public readonly context: ErrorContext;
  public constructor(message: string, context: ErrorContext = {}, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
    this.context = context;
  }
}

/** An external input (HTTP body, queue message, alert, CLI argument) failed validation. */
export class InputValidationError extends RemediatorError {
  /** The offending field, as a dotted path (`vmResourceId`, `allow.1`). */
  public readonly field: string;
  public constructor(field: string, message: string, context: ErrorContext = {}) {
    super(`${field}: ${message}`, { ...context, field });
    this.field = field;
  }
}

/** A resource ID parsed but names something that is not a VM or a scale set VM. */
export class NotAVirtualMachineError extends InputValidationError {
  public readonly resourceType: string;
  public constructor(resourceId: string, resourceType: string) {
    super('vmResourceId', `${resourceType} is not a virtual machine or a scale set instance`, { resourceId });
    this.resourceType = resourceType;
  }
}

export class ConfigurationError extends RemediatorError {}

export class PayloadCompositionError extends RemediatorError {}

/** A payload's stdout held no valid result line. */
export class PayloadOutputError extends RemediatorError {}

/** Classified failures of the compute (ARM) adapter. */
export type ComputeFailureKind =
  | 'not-found'
  | 'busy' // 409: a run command is already in progress on the VM
  | 'wrong-os' // 409: the command's OS type does not match the VM's
  | 'not-running' // OperationNotAllowed: deallocated or stopped
  | 'agent-not-ready' // VMAgentStatusCommunicationError
  | 'throttled' // 429 that outlived the SDK's retries
  | 'forbidden'
  | 'transient'
  | 'unknown';

export class ComputeError extends RemediatorError {
  public readonly kind: ComputeFailureKind;
  public readonly statusCode: number | undefined;
  public readonly code: string | undefined;
  public constructor(kind: ComputeFailureKind, message: string, context: ErrorContext & { statusCode?: number; code?: string }, options?: ErrorOptions) {
    super(message, context, options);
    this.kind = kind;
    this.statusCode = context.statusCode;
    this.code = context.code;
  }
}

/** Another remediation holds the VM's lock. */
export class VmLockedError extends RemediatorError {
  public readonly holder: string;
  public constructor(vmKey: string, holder: string) {
    super(`VM ${vmKey} is being remediated by ${holder}`, { vmKey, holder });
    this.holder = holder;
  }
}

export class RecordNotFoundError extends RemediatorError {}

/** The job cannot proceed now but will later (VM lease held by its own earlier delivery, ARM throttling): put it back on the queue. */
export class RetryLaterError extends RemediatorError {
  public readonly delayMs: number;
  public constructor(message: string, delayMs: number, context: ErrorContext = {}, options?: ErrorOptions) {
    super(message, { ...context, delayMs }, options);
    this.delayMs = delayMs;
  }
}

/**
 * An input is well formed but larger than the app can carry (a queue message is at most 64 KiB,
 * a table key 1 KiB): answered with 413, which callers such as action groups do not retry.
 */
export class PayloadTooLargeError extends RemediatorError {
  /** The offending field, as a dotted path (`data.essentials.alertId`, `body`). */
  public readonly field: string;
  /** The bound that was exceeded, in the unit the message names. */
  public readonly limit: number;
  public constructor(field: string, message: string, limit: number, context: ErrorContext = {}) {
    super(`${field}: ${message}`, { ...context, field, limit });
    this.field = field;
    this.limit = limit;
  }
}

/** A call to a backing service (table, queue) failed: the one kind of failure an HTTP function answers with 5xx. */
export class DependencyError extends RemediatorError {
  /** Which dependency: `vm-lock`, `remediation-store`, `remediation-queue`, `alert-queue`. */
  public readonly dependency: string;
  /** The dependency's HTTP status, when it answered with one. */
  public readonly statusCode: number | undefined;
  public constructor(dependency: string, message: string, options?: ErrorOptions) {
    const cause = options?.cause;
    const statusCode = typeof cause === 'object' && cause !== null && typeof (cause as { statusCode?: unknown }).statusCode === 'number' ? (cause as { statusCode: number }).statusCode : undefined;
    super(`${dependency}: ${message}`, { dependency, statusCode }, options);
    this.dependency = dependency;
    this.statusCode = statusCode;
  }
}

/** The external systems the adapters call; a DependencyTimeoutError names one. */
export type Dependency = 'arm' | 'logs' | 'table' | 'queue';

/**
 * A call to a dependency got no answer within its bound (per-try timeouts and the bounded
 * retries included). Nothing was changed by the call that timed out, or it was a read: the
 * job may be retried later. (A Run Command POST that timed out is a RunCommandOutcomeUnknownError.)
 */
export class DependencyTimeoutError extends RemediatorError {
  public readonly dependency: Dependency;
  /** The bound that ran out, in milliseconds. */
  public readonly timeoutMs: number;
  public constructor(dependency: Dependency, timeoutMs: number, message: string, context: ErrorContext = {}, options?: ErrorOptions) {
    super(message, { ...context, dependency, timeoutMs }, options);
    this.dependency = dependency;
    this.timeoutMs = timeoutMs;
  }
}

/**
 * Why a Run Command's outcome is unknown:
 * - `still-running`: our run was seen (or accepted) but had not finished within the wait bound;
 * - `not-found`: the POST may have reached ARM, but no run of this payload showed up in the
 *   VM's instance view within the bound (it may never have started, or ARM does not show it);
 * - `unreadable`: the instance view could not be read (ARM unreachable or hung);
 * - `unidentifiable`: the payload carries no RunId, so its run cannot be told from another.
 */
export type RunCommandOutcomeReason = 'still-running' | 'not-found' | 'unreadable' | 'unidentifiable';

/**
 * A Run Command POST may have started the payload on the VM, but its result could not be
 * established. The payload must not be sent again: record the remediation as failed with this
 * kind (the VM may have been changed), never retry it blindly.
 */
export class RunCommandOutcomeUnknownError extends RemediatorError {
  public readonly reason: RunCommandOutcomeReason;
  public readonly vm: string;
  public readonly runId: string | null;
  public readonly payload: string | null;
  public constructor(
    reason: RunCommandOutcomeReason,
    message: string,
    context: ErrorContext & { vm: string; runId: string | null; payload: string | null },
    options?: ErrorOptions,
  ) {
    super(message, { ...context, reason }, options);
    this.reason = reason;
    this.vm = context.vm;
    this.runId = context.runId;
    this.payload = context.payload;
  }
}

export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
