/**
 * Every name the app's telemetry carries: span names, attribute keys, metric names and their
 * dimensions. One place, read by the code that emits them (src/telemetry/*) and by the checks
 * of the workbook's and the failure-rate alert's queries (infra/queries/telemetry/*.kql, see
 * test/unit/telemetry-queries.test.ts), so a renamed attribute cannot leave a dashboard empty.
 *
 * How they land in Application Insights (Azure Monitor's OpenTelemetry exporter):
 * - an INTERNAL or CLIENT span is a row of `dependencies` (`name`, `duration` in ms, `success`),
 *   its attributes in `customDimensions`, keyed as below; a string-array attribute (findings,
 *   actions, refused) arrives as its JSON text, `["a","b"]` (parse_json() it), numbers and
 *   booleans as their text;
 * - a metric is a row of `customMetrics` per export interval (`name`, `value`, `valueCount`,
 *   `valueSum`, `valueMin`, `valueMax`), its attributes in `customDimensions`. Histograms arrive
 *   pre-aggregated, so percentiles come from the spans, not from the histogram rows.
 */

import type { OutcomeStatus } from '../core/outcome.js';

/** The service name on every span and metric (`cloud_RoleName` in Application Insights). */
export const SERVICE_NAME = 'rdp-remediator';

/** The tracer and meter name (the instrumentation scope). */
export const INSTRUMENTATION_SCOPE = 'rdp-remediator';

export const SPAN = {
  /** One remediation of one VM (a repair, diagnose or restore), end to end, per delivery of its job. */
  remediation: 'rdp.remediation',
  /** One Run Command of a remediation: its POST and its polls are the child HTTP dependencies. */
  runCommand: 'rdp.run-command',
  /** One alert taken by the alert worker: resolving targets, admitting jobs. */
  alert: 'rdp.alert',
  /** One tick of the relaxation sweep. */
  relaxationSweep: 'rdp.relaxation-sweep',
} as const;

export const ATTR = {
  remediationId: 'rdp.remediation.id',
  /** The VM's ARM resource id, lower case as the job holds it. */
  vm: 'rdp.vm.id',
  /** The effective mode: off, diagnose, repair or restore. */
  mode: 'rdp.mode',
  /**
   * The mode the request asked for: diagnose, repair or restore. `rdp.mode` is the one the VM's
   * policy let it have, where the outcome says (it is this one until then).
   */
  requestedMode: 'rdp.mode.requested',
  /** Where the request came from: manual, alert, cli, or expiry (the relaxation sweep's restores). */
  source: 'rdp.source',
  /** The blocking finding codes the probe found (a string array). */
  findings: 'rdp.findings',
  /** The first blocking finding, or `none`: the cause a remediation is counted under. */
  cause: 'rdp.cause',
  /** The actions the plan ran (a string array). */
  actions: 'rdp.actions',
  /** The actions the policy refused (a string array). */
  refused: 'rdp.refused',
  /** The outcome's status: fixed, healthy, not-fixed, restored, restore-failed, skipped, failed. */
  outcome: 'rdp.outcome',
  /** Why: a skip reason, a not-fixed reason, or a failed outcome's error kind. */
  reason: 'rdp.reason',
  runCommands: 'rdp.run_commands',
  /** From the request to the completed record, in ms (the record's timings.totalMs). */
  timeToFixMs: 'rdp.time_to_fix_ms',
  /** ISO 8601: when the relaxation this remediation left is reverted; absent when it lowered nothing. */
  relaxedUntil: 'rdp.relaxed_until',
  /** The remediation a restore puts the security back for. */
  restoreOf: 'rdp.restore_of',
  /** The payload a Run Command ran: probe, fix, restore. */
  payload: 'rdp.payload',
  /** The delivery of the job (1 for the first). */
  attempt: 'rdp.attempt',
  /**
   * True on a remediation span whose delivery found the record completed by an earlier one (a
   * message delivered again): the span repeats that outcome, and METRIC.remediations and
   * METRIC.timeToFix do not count it again. Queries that count remediations from spans leave
   * these out. Absent otherwise.
   */
  completedEarlier: 'rdp.completed_earlier',
  alertId: 'rdp.alert.id',
} as const;

/** ATTR.payload of a Run Command whose script is none of the app's payloads. */
export const OTHER_PAYLOAD = 'other';

export const METRIC = {
  /** Counter, one per completed remediation, dimensions outcome and cause. */
  remediations: 'rdp.remediations',
  /** Histogram, ms, of completed remediations that ran a fix (fixed or not-fixed), dimension outcome. */
  timeToFix: 'rdp.time_to_fix',
  /** Histogram, ms, of Run Commands as ARM timed them (startTime to endTime), dimension payload. */
  runCommandDuration: 'rdp.run_command.duration',
  /** Gauge: the VMs whose relaxation is in force now (entries due on record), as of the last sweep. */
  relaxedVms: 'rdp.relaxed_vms',
} as const;

export type SpanName = (typeof SPAN)[keyof typeof SPAN];
export type AttributeKey = (typeof ATTR)[keyof typeof ATTR];
export type MetricName = (typeof METRIC)[keyof typeof METRIC];

/**
 * Every outcome status (the values of ATTR.outcome), as a runtime list: the workbook's and the
 * alert's queries compare against these (test/unit/telemetry-queries.test.ts checks each value
 * they use is one, and that this list is exactly core/outcome.ts's OutcomeStatus).
 */
export const OUTCOME_STATUSES = ['fixed', 'healthy', 'not-fixed', 'restored', 'restore-failed', 'skipped', 'failed'] as const satisfies readonly OutcomeStatus[];
