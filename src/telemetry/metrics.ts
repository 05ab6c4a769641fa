/**
 * The app's metrics (names in names.ts): remediations by outcome and cause, time to fix, Run
 * Command durations as ARM timed them, and the relaxations in force as of the last sweep.
 *
 * The instruments are made at their first use, and again whenever the global meter provider
 * changes: the OpenTelemetry metrics API has no proxy provider, so a meter taken before
 * startTelemetry (setup.ts) registered the real one would stay a no-op for good. Until then
 * (local runs, the CLI, the demo, tests without telemetry) every call here records into the
 * API's no-op meter, which costs nothing.
 */
import { metrics, type Counter, type Histogram, type MeterProvider } from '@opentelemetry/api';
import type { RemediationRecord } from '../core/outcome.js';
import { ATTR, INSTRUMENTATION_SCOPE, METRIC, OTHER_PAYLOAD } from './names.js';

/**
 * How long the last sweep's count of relaxations stands. The timer runs every 15 minutes, on one
 * instance at a time but not always the same one: an instance the timer has moved away from
 * stops reporting its old count after two ticks and a margin, rather than forever.
 */
export const RELAXED_VMS_VALID_MS = 35 * 60_000;

interface Instruments {
  readonly provider: MeterProvider;
  readonly remediations: Counter;
  readonly timeToFix: Histogram;
  readonly runCommandDuration: Histogram;
}

let instruments: Instruments | undefined;
let relaxed: { readonly count: number; readonly at: number } | undefined;

function current(): Instruments {
  const provider = metrics.getMeterProvider();
  if (instruments?.provider === provider) return instruments;
  const meter = provider.getMeter(INSTRUMENTATION_SCOPE);
  const relaxedVms = meter.createObservableGauge(METRIC.relaxedVms, { description: 'VMs whose security relaxation is in force, as of the last relaxation sweep', unit: '{vm}' });
  relaxedVms.addCallback((result) => {
    if (relaxed !== undefined && Date.now() - relaxed.at <= RELAXED_VMS_VALID_MS) result.observe(relaxed.count);
  });
  instruments = {
    provider,
    remediations: meter.createCounter(METRIC.remediations, { description: 'Completed remediations, by outcome and cause', unit: '{remediation}' }),
    timeToFix: meter.createHistogram(METRIC.timeToFix, { description: 'From the request to the completed record, of remediations that ran a fix', unit: 'ms' }),
    runCommandDuration: meter.createHistogram(METRIC.runCommandDuration, { description: 'Run Command operations as ARM timed them (startTime to endTime)', unit: 'ms' }),
  };
  return instruments;
}

/** Counts a remediation this delivery completed (never one an earlier delivery completed: see ATTR.completedEarlier). */
export function recordRemediation(record: RemediationRecord, cause: string): void {
  if (record.state !== 'completed') return;
  const { outcome } = record;
  const { remediations, timeToFix } = current();
  remediations.add(1, { [ATTR.outcome]: outcome.status, [ATTR.cause]: cause });
  if ((outcome.status === 'fixed' || outcome.status === 'not-fixed') && ranAFix(record)) timeToFix.record(outcome.timings.totalMs, { [ATTR.outcome]: outcome.status });
}

/** A fix payload was posted for it (a diagnose run, or a plan that policy refused whole, posts none). */
function ranAFix(record: RemediationRecord & { readonly state: 'completed' }): boolean {
  const { outcome } = record;
  return (record.progress?.fixRuns ?? 0) > 0 || ('actions' in outcome && (outcome.actions?.length ?? 0) > 0);
}

/** One Run Command as ARM timed it; `payload` is the payload's kind (probe, fix, restore), or null for a script without one. */
export function recordRunCommandDuration(payload: string | null, durationMs: number): void {
  if (!Number.isFinite(durationMs) || durationMs < 0) return;
  current().runCommandDuration.record(durationMs, { [ATTR.payload]: payload ?? OTHER_PAYLOAD });
}

/**
 * The relaxations in force as the relaxation sweep just counted them (SweepResult.inForce),
 * observed by METRIC.relaxedVms at each export until the next sweep, or RELAXED_VMS_VALID_MS.
 */
export function setRelaxedVms(count: number): void {
  if (!Number.isFinite(count) || count < 0) return;
  relaxed = { count, at: Date.now() };
  current(); // the gauge exists on the current provider from now on
}
