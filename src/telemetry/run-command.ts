/**
 * The span of one Run Command (SPAN.runCommand): its POST, its polls and, when the POST's answer
 * was lost, the instance-view reads that look for the run, all made while it is the active span,
 * so the Azure SDK's HTTP CLIENT spans for them are its children. A child of the remediation's
 * span (remediation.ts) when one is active.
 */
import { ATTR, OTHER_PAYLOAD, SPAN } from './names.js';
import { inActiveSpan } from './span.js';

/**
 * Runs `run` under an active span SPAN.runCommand on the VM (its lower-case key) for the
 * payload's kind (probe, fix, restore; OTHER_PAYLOAD for a script without one).
 */
export function traceRunCommand<T>(vmKey: string, payload: string | null, run: () => Promise<T>): Promise<T> {
  return inActiveSpan(SPAN.runCommand, { [ATTR.vm]: vmKey, [ATTR.payload]: payload ?? OTHER_PAYLOAD }, () => run());
}
