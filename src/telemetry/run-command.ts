/**
 * The span of one Run Command (SPAN.runCommand): its POST, its polls and, when the POST's answer
 * was lost, the instance-view reads that look for the run, all made while it is the active span,
 * so the Azure SDK's HTTP CLIENT spans for them are its children. A child of the remediation's
 * span (remediation.ts) when one is active.
 */
import { SpanKind, SpanStatusCode, trace } from '@opentelemetry/api';
import { errorMessage } from '../errors.js';
import { ATTR, INSTRUMENTATION_SCOPE, SPAN } from './names.js';

/**
 * Runs `run` under an active INTERNAL span SPAN.runCommand on the VM (its lower-case key) for
 * the payload's kind (probe, fix, restore; `other` for a script without one). An error ends the
 * span as ERROR with the exception recorded, and is rethrown unchanged.
 */
export async function traceRunCommand<T>(vmKey: string, payload: string | null, run: () => Promise<T>): Promise<T> {
  const tracer = trace.getTracer(INSTRUMENTATION_SCOPE);
  const attributes = { [ATTR.vm]: vmKey, [ATTR.payload]: payload ?? 'other' };
  return tracer.startActiveSpan(SPAN.runCommand, { kind: SpanKind.INTERNAL, attributes }, async (span) => {
    try {
      return await run();
    } catch (error) {
      span.recordException(error instanceof Error ? error : errorMessage(error));
      span.setStatus({ code: SpanStatusCode.ERROR, message: errorMessage(error) });
      throw error;
    } finally {
      span.end();
    }
  });
}
