/**
 * One way to run work under an active INTERNAL span, for every span the app makes: while `run`
 * runs the span is the active one, so what it calls (the Azure SDKs' CLIENT spans included)
 * becomes its children. An error ends the span as ERROR with the exception recorded, and is
 * rethrown unchanged; the span always ends.
 */
import { SpanKind, SpanStatusCode, trace, type Attributes, type Span } from '@opentelemetry/api';
import { errorMessage } from '../errors.js';
import { INSTRUMENTATION_SCOPE, type SpanName } from './names.js';

export function inActiveSpan<T>(name: SpanName, attributes: Attributes, run: (span: Span) => Promise<T>): Promise<T> {
  return trace.getTracer(INSTRUMENTATION_SCOPE).startActiveSpan(name, { kind: SpanKind.INTERNAL, attributes }, async (span) => {
    try {
      return await run(span);
    } catch (error) {
      span.recordException(error instanceof Error ? error : errorMessage(error));
      span.setStatus({ code: SpanStatusCode.ERROR, message: errorMessage(error) });
      throw error;
    } finally {
      span.end();
    }
  });
}
