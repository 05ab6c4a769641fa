/** Small converters from results to HTTP responses: one error shape everywhere. */
import type { HttpRequest, HttpResponseInit, InvocationContext } from '@azure/functions';
import { ConfigurationError, DependencyError, errorMessage, InputValidationError, PayloadTooLargeError } from '../src/errors.js';

export interface ErrorBody {
  readonly error: { readonly code: string; readonly message: string; readonly field?: string; readonly [extra: string]: unknown };
}

export function json(status: number, body: unknown, headers: Record<string, string> = {}): HttpResponseInit {
  return { status, jsonBody: body, headers: { 'content-type': 'application/json', ...headers } };
}

export function problem(status: number, code: string, message: string, extra: Record<string, unknown> = {}): HttpResponseInit {
  const body: ErrorBody = { error: { code, message, ...extra } };
  return json(status, body);
}

export type JsonBody = { readonly ok: true; readonly body: unknown } | { readonly ok: false; readonly reason: 'too-large' | 'not-json'; readonly length: number };

/**
 * The request body as JSON, refused unread beyond `maxChars` (the body is read as text first,
 * so the bound holds before any parsing). An empty body is not JSON.
 */
export async function readJson(request: HttpRequest, maxChars: number): Promise<JsonBody> {
  let text: string;
  try {
    text = await request.text();
  } catch {
    return { ok: false, reason: 'not-json', length: 0 };
  }
  if (text.length > maxChars) return { ok: false, reason: 'too-large', length: text.length };
  try {
    return { ok: true, body: JSON.parse(text) as unknown };
  } catch {
    // Not JSON, or nested deeper than the parser's stack: either way not a request we can read.
    return { ok: false, reason: 'not-json', length: text.length };
  }
}

/**
 * The answer for an error a handler did not expect to return: typed 4xx for input errors that
 * surfaced late, 5xx only for a failed dependency or missing configuration, and every 5xx
 * logged with context.error. The message names the failure without internals.
 */
export function failure(error: unknown, context: InvocationContext, event: string): HttpResponseInit {
  if (error instanceof PayloadTooLargeError) return problem(413, 'PayloadTooLarge', error.message, { field: error.field, limit: error.limit });
  if (error instanceof InputValidationError) return problem(400, 'InvalidRequest', error.message, { field: error.field });
  if (error instanceof DependencyError) {
    context.error(JSON.stringify({ event, error: 'dependency-failed', dependency: error.dependency, statusCode: error.statusCode ?? null, message: error.message }));
    // Throttled or unavailable: worth a retry later (action groups retry 5xx).
    const transient = error.statusCode === undefined || error.statusCode === 429 || error.statusCode >= 500;
    return transient
      ? problem(503, 'DependencyUnavailable', `${error.dependency} is unavailable; try again later`, { dependency: error.dependency })
      : problem(500, 'DependencyFailed', `${error.dependency} refused the request`, { dependency: error.dependency });
  }
  if (error instanceof ConfigurationError) {
    context.error(JSON.stringify({ event, error: 'configuration', message: error.message }));
    return problem(500, 'ConfigurationError', 'the function app is not configured for this request');
  }
  context.error(JSON.stringify({ event, error: 'internal', message: errorMessage(error), stack: error instanceof Error ? error.stack : undefined }));
  return problem(500, 'InternalError', 'an unexpected error occurred; it has been logged');
}
