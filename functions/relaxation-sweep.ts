/**
 * Every 15 minutes: queue the restore of every security relaxation whose time is up
 * (SECURITY_RELAX_TTL_HOURS, or a repair's shorter relaxForHours), once each. The work is
 * src/pipeline/relaxation-sweep.ts; this adapts the timer, the log and the relaxed-VMs gauge.
 * Two Table queries per tick, whatever the number of relaxations on record: what is due, and a
 * keys-only count of what is on record.
 *
 * The Functions host runs a timer function on one instance at a time (a blob lease in the
 * host's storage), and a tick that was missed while the app was down runs once on start
 * (`isPastDue`). Either way a second tick over the same entries queues the same restores,
 * which the worker runs once.
 */
import type { InvocationContext, Timer } from '@azure/functions';
import { getServices, type Services } from '../src/app/services.js';
import { ConfigurationError } from '../src/errors.js';
import { sweepExpiredRelaxations } from '../src/pipeline/relaxation-sweep.js';
import { setRelaxedVms } from '../src/telemetry/metrics.js';

/** NCRONTAB (seconds first): at 0 s of every 15th minute. */
export const RELAXATION_SWEEP_SCHEDULE = '0 */15 * * * *';

/** The handler over the given services (the process-wide ones in the app; tests bring their own). */
export function relaxationSweepWith(services: () => Services) {
  return async (timer: Timer, context: InvocationContext): Promise<void> => {
    const { store, queue } = services();
    if (!queue) throw new ConfigurationError('no remediation queue configured');
    const result = await sweepExpiredRelaxations({ store, queue });
    const count = (decision: string) => result.decisions.filter((d) => d.decision === decision).length;
    if (result.inForce !== null) setRelaxedVms(result.inForce);
    const inForce = result.inForce === null ? { inForce: null, countError: result.countError } : { inForce: result.inForce };
    context.info(JSON.stringify({ event: 'relaxation.sweep', at: result.at, due: result.due, queued: count('queued'), taken: count('taken'), errors: count('error'), ...inForce, pastDue: timer.isPastDue }));
    for (const d of result.decisions) {
      if (d.decision === 'queued') context.info(JSON.stringify({ event: 'relaxation.restore-queued', restoreOf: d.entry.remediationId, dueAt: d.entry.dueAt, vm: d.entry.vmResourceId, id: d.restoreId }));
      // A relaxation past its time whose restore could not be queued: the VM stays relaxed until a later tick does it.
      else if (d.decision === 'error') context.error(JSON.stringify({ event: 'relaxation.sweep-failed', restoreOf: d.entry.remediationId, dueAt: d.entry.dueAt, vm: d.entry.vmResourceId, id: d.restoreId, error: d.error }));
    }
  };
}

export const relaxationSweep = relaxationSweepWith(getServices);
