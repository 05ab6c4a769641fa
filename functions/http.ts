/** Small converters from results to HTTP responses: one error shape everywhere. */
import type { HttpResponseInit } from '@azure/functions';

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
