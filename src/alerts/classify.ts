/**
 * Alert → decision, before any I/O: malformed (400), ignored with a reason (200), or
 * accepted with its targets (202). Pure, so the webhook answers in milliseconds and every
 * official payload has a tested outcome.
 */
import { parseVmResourceId, type VmRef } from '../core/resource-id.js';
import { AlertEnvelopeSchema, COMMON_ALERT_SCHEMA_ID, LogAlertV1ContextSchema, LogAlertV2ContextSchema, type AlertEnvelope } from './schema.js';

export interface AlertIntakeSettings {
  /** essentials.monitoringService values that can signal an RDP failure. */
  readonly acceptedServices: readonly string[];
  /** When non-empty, only these alert rules are acted on. */
  readonly alertRules: readonly string[];
}

export const DEFAULT_ACCEPTED_SERVICES = ['Log Alerts V2', 'Log Analytics'] as const;

export type IgnoreReason = 'resolved' | 'unsupported-service' | 'rule-not-allowed' | 'no-vm-target';

export interface WorkspaceTarget {
  /** ARM ID of the Log Analytics workspace. */
  readonly resourceId: string;
  /** The workspace (customer) GUID, when the payload carries it. */
  readonly workspaceId: string | null;
}

export interface AlertWindow {
  readonly start: string;
  readonly end: string;
}

export interface AcceptedAlert {
  readonly alertId: string;
  readonly alertRule: string | null;
  readonly monitoringService: string;
  readonly firedAt: string;
  readonly vms: readonly VmRef[];
  readonly workspace: WorkspaceTarget | null;
  /** Targets that are neither VMs nor the workspace, kept so the decision can name them. */
  readonly otherTargets: readonly string[];
  /** The alert's evaluation window, for resolving a workspace target. */
  readonly window: AlertWindow;
  /** `Computer` dimension values: a workspace query is narrowed to these machines. */
  readonly computers: readonly string[];
}

export type AlertClassification =
  | { readonly kind: 'malformed'; readonly reason: string }
  | { readonly kind: 'ignored'; readonly reason: IgnoreReason; readonly detail: string; readonly alertId: string }
  | { readonly kind: 'accepted'; readonly alert: AcceptedAlert };

const WORKSPACE_TYPE = /\/providers\/microsoft\.operationalinsights\/workspaces\/[^/]+$/i;
const GUID = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/i;
const RESOURCE_ID_DIMENSIONS = new Set(['_resourceid', 'resourceid']);

export function classifyAlert(body: unknown, settings: AlertIntakeSettings): AlertClassification {
  if (typeof body !== 'object' || body === null) return { kind: 'malformed', reason: 'body: must be a JSON object' };
  const schemaId = (body as { schemaId?: unknown }).schemaId;
  if (schemaId !== COMMON_ALERT_SCHEMA_ID) {
    return { kind: 'malformed', reason: `schemaId: must be "${COMMON_ALERT_SCHEMA_ID}"; enable the common alert schema on the action group's receiver` };
  }
  const parsed = AlertEnvelopeSchema.safeParse(body);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    return { kind: 'malformed', reason: `${issue?.path.join('.') ?? 'body'}: ${issue?.message ?? 'invalid'}` };
  }
  const envelope = parsed.data;
  const e = envelope.data.essentials;
  const ignore = (reason: IgnoreReason, detail: string): AlertClassification => ({ kind: 'ignored', reason, detail, alertId: e.alertId });

  if (e.monitorCondition.toLowerCase() !== 'fired') return ignore('resolved', `monitorCondition is ${e.monitorCondition}; only Fired alerts start work`);
  if (!settings.acceptedServices.some((s) => s.toLowerCase() === e.monitoringService.toLowerCase())) {
    return ignore('unsupported-service', `${e.monitoringService} alerts do not signal RDP failures (accepted: ${settings.acceptedServices.join(', ')})`);
  }
  if (settings.alertRules.length > 0 && !settings.alertRules.some((r) => r.toLowerCase() === (e.alertRule ?? '').toLowerCase())) {
    return ignore('rule-not-allowed', `alert rule "${e.alertRule ?? ''}" is not in ALERT_RULES`);
  }

  const context = logContext(envelope);
  const candidates = [...(e.alertTargetIDs ?? []), ...context.resourceIds];
  const vms = new Map<string, VmRef>();
  let workspace: WorkspaceTarget | null = null;
  const otherTargets: string[] = [];
  for (const candidate of candidates) {
    const ref = parseVmResourceId(candidate);
    if (ref.success) vms.set(ref.data.key, ref.data);
    else if (WORKSPACE_TYPE.test(candidate.trim())) workspace ??= { resourceId: candidate.trim(), workspaceId: context.workspaceId };
    else otherTargets.push(candidate);
  }
  // A rule split by _ResourceId names the VM itself; the workspace is only the fallback.
  if (vms.size > 0) workspace = null;
  if (vms.size === 0 && workspace === null) {
    return ignore('no-vm-target', `no virtual machine among the targets${otherTargets.length ? `: ${otherTargets.join(', ')}` : ''}`);
  }
  return {
    kind: 'accepted',
    alert: {
      alertId: e.alertId,
      alertRule: e.alertRule ?? null,
      monitoringService: e.monitoringService,
      firedAt: e.firedDateTime,
      vms: [...vms.values()],
      workspace,
      otherTargets,
      window: context.window ?? fallbackWindow(e.firedDateTime),
      computers: context.computers,
    },
  };
}

interface LogContextFacts {
  readonly resourceIds: string[];
  readonly computers: string[];
  window: AlertWindow | null;
  workspaceId: string | null;
}

function logContext(envelope: AlertEnvelope): LogContextFacts {
  const facts: LogContextFacts = { resourceIds: [], computers: [], window: null, workspaceId: null };
  const context = envelope.data.alertContext;
  const v2 = LogAlertV2ContextSchema.safeParse(context);
  if (v2.success && v2.data.condition.allOf.length > 0) {
    const c = v2.data.condition;
    for (const criterion of c.allOf) {
      for (const d of criterion.dimensions ?? []) collectDimension(facts, d.name, d.value);
      facts.workspaceId ??= workspaceGuidFromLink(criterion.linkToSearchResultsAPI ?? criterion.linkToFilteredSearchResultsAPI ?? null);
    }
    return { ...facts, window: windowOf(c.windowStartTime, c.windowEndTime, c.windowSize) };
  }
  const v1 = LogAlertV1ContextSchema.safeParse(context);
  if (v1.success && (v1.data.SearchQuery !== undefined || v1.data.WorkspaceId !== undefined)) {
    for (const d of v1.data.Dimensions ?? []) collectDimension(facts, d.name, d.value);
    for (const item of v1.data.AffectedConfigurationItems ?? []) pushUnique(facts.computers, item);
    const minutes = Number(v1.data.SearchIntervalInMinutes ?? v1.data.SearchIntervalDurationMin ?? NaN);
    const duration = Number.isFinite(minutes) && minutes > 0 ? `PT${minutes}M` : undefined;
    return {
      ...facts,
      workspaceId: v1.data.WorkspaceId && GUID.test(v1.data.WorkspaceId) ? v1.data.WorkspaceId : null,
      window: windowOf(v1.data.SearchIntervalStartTimeUtc ?? undefined, v1.data.SearchIntervalEndtimeUtc ?? undefined, duration),
    };
  }
  return facts;
}

function collectDimension(facts: LogContextFacts, name: string, value: unknown): void {
  if (typeof value !== 'string' || value === '') return;
  const key = name.toLowerCase();
  if (RESOURCE_ID_DIMENSIONS.has(key)) pushUnique(facts.resourceIds, value);
  else if (key === 'computer') pushUnique(facts.computers, value);
}

function pushUnique(list: string[], value: string): void {
  if (!list.includes(value)) list.push(value);
}

function workspaceGuidFromLink(link: string | null): string | null {
  const match = link ? /\/workspaces\/([0-9a-f-]{36})\//i.exec(link) : null;
  return match?.[1] ?? null;
}

/** ISO-8601 durations of the forms alert rules use (PT5M, PT1H, P1D). */
export function durationMs(iso: string): number | null {
  const m = /^P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?$/i.exec(iso.trim());
  if (!m || iso.trim().toUpperCase() === 'P' || iso.trim().toUpperCase() === 'PT') return null;
  const [, d = '0', h = '0', min = '0', s = '0'] = m;
  return ((Number(d) * 24 + Number(h)) * 60 + Number(min)) * 60_000 + Number(s) * 1000;
}

function windowOf(start: string | undefined, end: string | undefined, size: string | undefined): AlertWindow | null {
  const endMs = end ? Date.parse(end) : NaN;
  const startMs = start ? Date.parse(start) : NaN;
  if (Number.isFinite(startMs) && Number.isFinite(endMs) && endMs > startMs) return { start: new Date(startMs).toISOString(), end: new Date(endMs).toISOString() };
  // Test payloads carry start == end; the window size then says how far back to look.
  const sizeMs = size ? durationMs(size) : null;
  if (Number.isFinite(endMs) && sizeMs) return { start: new Date(endMs - sizeMs).toISOString(), end: new Date(endMs).toISOString() };
  return null;
}

/** Without a window in the payload: the hour before the alert fired. */
function fallbackWindow(firedAt: string): AlertWindow {
  const end = Number.isFinite(Date.parse(firedAt)) ? Date.parse(firedAt) : Date.now();
  return { start: new Date(end - 3_600_000).toISOString(), end: new Date(end).toISOString() };
}
