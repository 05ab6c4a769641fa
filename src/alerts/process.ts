/**
 * An accepted alert → one decision per target: a new remediation job, a duplicate of one
 * already admitted, or ignored with a reason. Workspace targets are resolved to VMs through
 * the Logs API first. Used by the alert worker and by the CLI.
 */
import { createHash } from 'node:crypto';
import type { LogsEvidence, LogsGateway } from '../adapters/logs.js';
import type { RemediationStore } from '../adapters/remediation-store.js';
import { MAX_ALERT_LOG_ROWS, type AlertEvidence, type Job } from '../core/job.js';
import type { RequestMode } from '../core/modes.js';
import { parseVmResourceId, type VmRef } from '../core/resource-id.js';
import { queuedRecord } from '../pipeline/remediate.js';
import { admissionKey, stillCovers, type AdmissionStore, type DedupeSettings } from './admission.js';
import type { AcceptedAlert } from './classify.js';

export type TargetDecision =
  | { readonly target: string; readonly decision: 'accepted'; readonly remediationId: string }
  | { readonly target: string; readonly decision: 'deduplicated'; readonly remediationId: string }
  | { readonly target: string; readonly decision: 'ignored'; readonly reason: string };

export interface AlertProcessingResult {
  readonly alertId: string;
  readonly resolvedThrough: 'alert-targets' | 'logs-query';
  readonly decisions: readonly TargetDecision[];
  readonly warnings: readonly string[];
}

export interface ProcessAlertDeps {
  readonly logs: LogsGateway;
  readonly admissions: AdmissionStore;
  readonly store: RemediationStore;
  /** Hands an admitted job on: the remediation queue, or an in-process run. */
  readonly dispatch: (job: Job) => Promise<void>;
  readonly mode: RequestMode;
  readonly dedupe: DedupeSettings;
  readonly now?: () => Date;
  /** Decide and report, but write and dispatch nothing. */
  readonly dryRun?: boolean;
}

/**
 * The remediation id for an alert and a VM: the same for every delivery of the same alert,
 * so a redelivered or retried message finds its own admission instead of a new one.
 */
export function remediationIdFor(alertId: string, vmKey: string): string {
  const h = createHash('sha256').update(`${alertId.toLowerCase()}\n${vmKey}`).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-8${h.slice(13, 16)}-${((parseInt(h.slice(16, 17), 16) & 0x3) | 0x8).toString(16)}${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

interface ResolvedTargets {
  readonly vms: VmRef[];
  readonly ignored: TargetDecision[];
  readonly warnings: string[];
  /** The Logs rows per VM key (workspace-targeted alerts only). */
  readonly logRows: ReadonlyMap<string, readonly LogsEvidence[]>;
}

async function resolveTargets(alert: AcceptedAlert, deps: ProcessAlertDeps): Promise<ResolvedTargets> {
  const ignored: TargetDecision[] = alert.otherTargets.map((target) => ({ target, decision: 'ignored', reason: 'not a virtual machine' }));
  if (alert.workspace === null) return { vms: [...alert.vms], ignored, warnings: [], logRows: new Map() };
  const found = await deps.logs.findAffectedVms(alert.workspace, alert.window, alert.computers);
  const logRows = new Map<string, LogsEvidence[]>();
  for (const row of found.evidence) {
    const ref = parseVmResourceId(row.resourceId);
    if (!ref.success) continue;
    const rows = logRows.get(ref.data.key) ?? [];
    if (rows.length < MAX_ALERT_LOG_ROWS) rows.push(row);
    logRows.set(ref.data.key, rows);
  }
  const warnings = found.partialError ? [`the Logs query returned a partial result: ${found.partialError}`] : [];
  const vms = new Map<string, VmRef>();
  for (const id of found.resourceIds) {
    const ref = parseVmResourceId(id);
    if (ref.success) vms.set(ref.data.key, ref.data);
    else ignored.push({ target: id, decision: 'ignored', reason: 'not a virtual machine' });
  }
  if (vms.size === 0) warnings.push(`no VM in workspace ${alert.workspace.resourceId} logged RDP failure events between ${alert.window.start} and ${alert.window.end}`);
  return { vms: [...vms.values()], ignored, warnings, logRows };
}

/** Text from the alert or a Logs row, made fit for the record: no control or format characters, bounded. */
function printable(text: string, max: number): string {
  return text.replace(/[\p{Cc}\p{Cf}\p{Cs}]/gu, '').slice(0, max);
}

/** The alert's own evidence for one VM, as the record keeps it (and the job message carries it). */
export function alertEvidenceFor(alert: AcceptedAlert, rows: readonly LogsEvidence[]): AlertEvidence {
  return {
    alertId: alert.alertId,
    rule: alert.alertRule === null ? null : printable(alert.alertRule, 260),
    monitoringService: printable(alert.monitoringService, 64),
    firedAt: alert.firedAt.slice(0, 64),
    window: { start: alert.window.start.slice(0, 64), end: alert.window.end.slice(0, 64) },
    logs: rows.slice(0, MAX_ALERT_LOG_ROWS).map((r) => ({
      computer: r.computer === null ? null : printable(r.computer, 256),
      count: r.count,
      eventIds: [...r.eventIds],
      lastSeen: r.lastSeen,
    })),
  };
}

/**
 * Admissions in flight at once for one alert. A workspace alert can name a thousand VMs;
 * admitting them in waves hands the first jobs to the workers sooner than a thousand-wide
 * burst against storage would.
 */
const ADMISSION_CONCURRENCY = 32;

async function mapLimited<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      results[i] = await fn(items[i] as T);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}

export async function processAlert(alert: AcceptedAlert, deps: ProcessAlertDeps): Promise<AlertProcessingResult> {
  const now = deps.now ?? (() => new Date());
  const { vms, ignored, warnings, logRows } = await resolveTargets(alert, deps);
  const covers = async (remediationId: string, admittedAt?: string) =>
    stillCovers(await deps.store.get(remediationId), now().getTime(), deps.dedupe.cooldownMs, {
      ...(admittedAt === undefined ? {} : { admittedAt: Date.parse(admittedAt) }),
      ...(deps.dedupe.queuedCoversMs === undefined ? {} : { queuedCoversMs: deps.dedupe.queuedCoversMs }),
    });

  const decisions = await mapLimited(
    vms,
    ADMISSION_CONCURRENCY,
    async (vm): Promise<TargetDecision> => {
      const key = admissionKey(deps.dedupe, alert.alertId, vm.key);
      const remediationId = remediationIdFor(alert.alertId, vm.key);
      if (deps.dryRun) {
        const existing = await deps.admissions.peek(key);
        return existing !== undefined && existing !== remediationId && (await covers(existing))
          ? { target: vm.id, decision: 'deduplicated', remediationId: existing }
          : { target: vm.id, decision: 'accepted', remediationId };
      }
      const admission = await deps.admissions.admit(key, remediationId, alert.alertId, covers, now());
      if (!admission.admitted) {
        await deps.store.addDuplicate(admission.existingRemediationId);
        return { target: vm.id, decision: 'deduplicated', remediationId: admission.existingRemediationId };
      }
      if (admission.redelivery && (await deps.store.get(remediationId))) {
        // A redelivery of this alert: its job exists already (a record is written only once its
        // message is out, below). Counted, not queued again.
        await deps.store.addDuplicate(remediationId);
        return { target: vm.id, decision: 'deduplicated', remediationId };
      }
      const job: Job = {
        id: remediationId,
        vm,
        mode: deps.mode,
        allow: [],
        source: 'alert',
        requestedAt: now().toISOString(),
        reason: `alert ${alert.alertRule ?? alert.alertId}`,
        alert: alertEvidenceFor(alert, logRows.get(vm.key) ?? []),
      };
      // The message first, then the record. A record written before a dispatch that then failed
      // would stay queued with no message behind it, and its redelivery would count as a
      // duplicate. This way a queued record always has a message on its way; a failed dispatch
      // leaves no record, so the alert's redelivery (the message fails, the host retries it)
      // dispatches again; and a record write that fails after the dispatch is harmless: the
      // worker writes the record itself when the message comes first. A second message for the
      // same job (a dispatch repeated after a failed write) is absorbed by the worker: the same
      // id, the same lease, the record already completed.
      await deps.dispatch(job);
      await deps.store.create(queuedRecord(job));
      if (admission.redelivery) {
        // A repeated delivery of this alert that found no record yet: the first delivery's
        // dispatch may have failed, or may still be on its way (copies that arrive together).
        // It was dispatched again to be safe (the worker absorbs a second message of a job),
        // and the delivery is counted as the repeat it is.
        await deps.store.addDuplicate(remediationId);
      }
      return { target: vm.id, decision: 'accepted', remediationId };
    },
  );
  return { alertId: alert.alertId, resolvedThrough: alert.workspace ? 'logs-query' : 'alert-targets', decisions: [...decisions, ...ignored], warnings };
}
