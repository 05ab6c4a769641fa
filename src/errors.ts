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

export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
