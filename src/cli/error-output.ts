/**
 * How the CLI reports an error: under `--json`, one `{"error":{"code","message",...}}` object on
 * stdout, so a script reads one document whatever happened; otherwise a line on stderr. The exit
 * code is the caller's.
 */
import { ComputeError, errorMessage, InputValidationError, RemediatorError } from '../errors.js';

export interface CliError {
  /** What went wrong, in PascalCase: UsageError, InvalidRequest, RestoreRefused, or the thrown error's class. */
  readonly code: string;
  readonly message: string;
  readonly [detail: string]: unknown;
}

export function errorDocument(error: CliError): string {
  return JSON.stringify({ error });
}

/** A thrown error as a CliError: its class as the code, its failure kind and field where it has one. */
export function thrownError(error: unknown): CliError {
  const kind = error instanceof ComputeError ? error.kind : error instanceof RemediatorError && typeof error.context['kind'] === 'string' ? error.context['kind'] : undefined;
  return {
    code: error instanceof Error ? error.name : 'Error',
    message: errorMessage(error),
    ...(kind === undefined ? {} : { kind }),
    ...(error instanceof InputValidationError ? { field: error.field } : {}),
  };
}
