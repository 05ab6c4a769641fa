/**
 * Alert → decision, before any I/O: malformed (400) or too large (413), ignored with a reason
 * (200), or accepted with its targets (202). Pure, so the webhook answers in milliseconds and
 * every official payload has a tested outcome. Every target passes the resource ID rules of
 * src/core/resource-id.ts; one that breaks them is rejected (reported with the reason, never a job).
 */
import { parseVmResourceId, parseWorkspaceResourceId, quoted, type VmRef } from '../core/resource-id.js';
import { NotAVirtualMachineError } from '../errors.js';
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

/** A target that breaks Azure's naming rules: skipped, never a job, and reported with the reason. */
export interface RejectedTarget {
  /** The value, quoted and shortened for the report. */
  readonly target: string;
  /** Where the alert carried it (`data.essentials.alertTargetIDs.3`). */
  readonly field: string;
  readonly reason: string;
}

export type AlertClassification =
  /**
   * `MalformedAlert` (400): not the common alert schema, or a field no Azure alert could hold.
   * `AlertTooLarge` (413): well formed, but beyond what one alert may ask of the app (see ALERT_LIMITS).
   */
  | { readonly kind: 'malformed'; readonly code: 'MalformedAlert' | 'AlertTooLarge'; readonly reason: string; readonly field: string; readonly limit?: number }
  | { readonly kind: 'ignored'; readonly reason: IgnoreReason; readonly detail: string; readonly alertId: string; readonly rejectedTargets: readonly RejectedTarget[] }
  | { readonly kind: 'accepted'; readonly alert: AcceptedAlert; readonly rejectedTargets: readonly RejectedTarget[] };

/**
 * What one alert may carry. The alert id is about 130 characters from Azure Monitor; its
 * bound keeps an admission key (alert id, "|", a VM key of at most about 300 characters)
 * within the 512 characters of a table key. Beyond the target bounds an alert is answered
 * 413 rather than fanned out: a rule split by _ResourceId names one VM per alert, and a
 * workspace alert is resolved by a Logs query, so thousands of listed targets are not an
 * alert Azure Monitor sends.
 */
export const ALERT_LIMITS = {
  alertIdLength: 200,
  /** alertTargetIDs and resource-ID dimension values together. */
  targetCandidates: 10_000,
  vms: 2_000,
  computers: 2_000,
  /** A Computer value is a host name (an FQDN is at most 253 characters). */
  computerLength: 255,
  /** Reported non-VM and rejected targets, each; the rest are counted. */
  reported: 20,
} as const;

/** Printable ASCII without the characters a table key refuses (`\ # ?`): what an alert id is. */
const ALERT_ID = /^[\x20-\x22\x24-\x3e\x40-\x5b\x5d-\x7e]+$/;
const NO_CONTROL = /^[^\p{Cc}\p{Cf}\p{Cs}]*$/u;
const WORKSPACE_TYPE = 'microsoft.operationalinsights/workspaces';
const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const RESOURCE_ID_DIMENSIONS = new Set(['_resourceid', 'resourceid']);

const malformed = (field: string, reason: string): AlertClassification => ({ kind: 'malformed', code: 'MalformedAlert', field, reason: `${field}: ${reason}` });
const tooLarge = (field: string, reason: string, limit: number): AlertClassification => ({ kind: 'malformed', code: 'AlertTooLarge', field, reason: `${field}: ${reason}`, limit });

/** The first `max` entries, and how many more there were, as a readable list. */
function listed(values: readonly string[], max = 10): string {
  const shown = values.slice(0, max).join(', ');
  return values.length > max ? `${shown} and ${values.length - max} more` : shown;
}

export function classifyAlert(body: unknown, settings: AlertIntakeSettings): AlertClassification {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return malformed('body', 'must be a JSON object');
  const schemaId = (body as { schemaId?: unknown }).schemaId;
  if (schemaId !== COMMON_ALERT_SCHEMA_ID) {
    return malformed('schemaId', `must be "${COMMON_ALERT_SCHEMA_ID}"; enable the common alert schema on the action group's receiver`);
  }
  const parsed = AlertEnvelopeSchema.safeParse(body);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const field = issue && issue.path.length > 0 ? issue.path.map(String).join('.') : 'body';
    const message = issue?.message ?? 'invalid';
    return malformed(field, message.length > 300 ? `${message.slice(0, 300)}…` : message);
  }
  const envelope = parsed.data;
  const e = envelope.data.essentials;
  if (e.alertId.length > ALERT_LIMITS.alertIdLength) {
    return tooLarge('data.essentials.alertId', `${e.alertId.length} characters; an alert id is at most ${ALERT_LIMITS.alertIdLength}`, ALERT_LIMITS.alertIdLength);
  }
  if (!ALERT_ID.test(e.alertId)) return malformed('data.essentials.alertId', 'must be printable ASCII without "\\", "#" or "?"');

  const rejectedTargets: RejectedTarget[] = [];
  const ignore = (reason: IgnoreReason, detail: string): AlertClassification => ({ kind: 'ignored', reason, detail, alertId: e.alertId, rejectedTargets: rejectedTargets.slice(0, ALERT_LIMITS.reported) });

  if (e.monitorCondition.toLowerCase() !== 'fired') return ignore('resolved', `monitorCondition is ${quoted(e.monitorCondition)}; only Fired alerts start work`);
  if (!settings.acceptedServices.some((s) => s.toLowerCase() === e.monitoringService.toLowerCase())) {
    return ignore('unsupported-service', `${quoted(e.monitoringService)} alerts do not signal RDP failures (accepted: ${settings.acceptedServices.join(', ')})`);
  }
  if (settings.alertRules.length > 0 && !settings.alertRules.some((r) => r.toLowerCase() === (e.alertRule ?? '').toLowerCase())) {
    return ignore('rule-not-allowed', `alert rule ${quoted(e.alertRule ?? '')} is not in ALERT_RULES`);
  }

  const context = logContext(envelope);
  const candidates: Candidate[] = [...(e.alertTargetIDs ?? []).map((value, i) => ({ value, field: `data.essentials.alertTargetIDs.${i}` })), ...context.resourceIds];
  if (candidates.length > ALERT_LIMITS.targetCandidates) {
    return tooLarge('data.essentials.alertTargetIDs', `${candidates.length} targets; an alert may name at most ${ALERT_LIMITS.targetCandidates}`, ALERT_LIMITS.targetCandidates);
  }
  const badComputer = context.computers.find((c) => c.value.length > ALERT_LIMITS.computerLength || !NO_CONTROL.test(c.value));
  if (badComputer) return malformed(badComputer.field, `${quoted(badComputer.value)} is not a computer name (at most ${ALERT_LIMITS.computerLength} printable characters)`);
  const computers = [...new Set(context.computers.map((c) => c.value))];
  if (computers.length > ALERT_LIMITS.computers) {
    return tooLarge('data.alertContext', `${computers.length} Computer values; an alert may name at most ${ALERT_LIMITS.computers}`, ALERT_LIMITS.computers);
  }

  const vms = new Map<string, VmRef>();
  let workspace: WorkspaceTarget | null = null;
  const otherTargets = new Set<string>();
  for (const { value, field } of candidates) {
    const ref = parseVmResourceId(value, field);
    if (ref.success) {
      vms.set(ref.data.key, ref.data);
    } else if (!(ref.error instanceof NotAVirtualMachineError)) {
      rejectedTargets.push({ target: quoted(value), field, reason: ref.error.message });
    } else if (ref.error.resourceType.toLowerCase() === WORKSPACE_TYPE) {
      const ws = parseWorkspaceResourceId(value, field);
      if (!ws.success) rejectedTargets.push({ target: quoted(value), field, reason: ws.error.message });
      else workspace ??= { resourceId: ws.data, workspaceId: context.workspaceId };
    } else {
      otherTargets.add(value);
    }
  }
  if (vms.size > ALERT_LIMITS.vms) {
    return tooLarge('data.essentials.alertTargetIDs', `${vms.size} virtual machines; an alert may name at most ${ALERT_LIMITS.vms}`, ALERT_LIMITS.vms);
  }
  // A rule split by _ResourceId names the VM itself; the workspace is only the fallback.
  if (vms.size > 0) workspace = null;
  if (vms.size === 0 && workspace === null) {
    const named = [...[...otherTargets].map((t) => quoted(t, 200)), ...rejectedTargets.map((r) => `${r.target} (${r.reason})`)];
    return ignore('no-vm-target', `no virtual machine among the targets${named.length ? `: ${listed(named)}` : ''}`);
  }
  // Reported, not carried whole: a list of non-VM targets is information, not work.
  const others = [...otherTargets];
  const reportedOthers = others.length > ALERT_LIMITS.reported ? [...others.slice(0, ALERT_LIMITS.reported), `… and ${others.length - ALERT_LIMITS.reported} more`] : others;
  return {
    kind: 'accepted',
    rejectedTargets: rejectedTargets.slice(0, ALERT_LIMITS.reported),
    alert: {
      alertId: e.alertId,
      alertRule: e.alertRule ?? null,
      monitoringService: e.monitoringService,
      firedAt: e.firedDateTime,
      vms: [...vms.values()],
      workspace,
      otherTargets: reportedOthers,
      window: context.window ?? fallbackWindow(e.firedDateTime),
      computers,
    },
  };
}

interface Candidate {
  readonly value: string;
  /** Its place in the alert, as a dotted path. */
  readonly field: string;
}

interface LogContextFacts {
  readonly resourceIds: Candidate[];
  readonly computers: Candidate[];
  window: AlertWindow | null;
  workspaceId: string | null;
}

/** Adds a value once, in the order first seen; a set keeps a long hostile list linear. */
class UniqueCandidates {
  public readonly list: Candidate[] = [];
  private readonly seen = new Set<string>();
  public add(candidate: Candidate): void {
    if (this.seen.has(candidate.value)) return;
    this.seen.add(candidate.value);
    this.list.push(candidate);
  }
}

function logContext(envelope: AlertEnvelope): LogContextFacts {
  const ids = new UniqueCandidates();
  const names = new UniqueCandidates();
  const facts: LogContextFacts = { resourceIds: ids.list, computers: names.list, window: null, workspaceId: null };
  const collect = (name: string, value: unknown, field: string) => collectDimension(ids, names, name, value, field);
  const context = envelope.data.alertContext;
  const v2 = LogAlertV2ContextSchema.safeParse(context);
  if (v2.success && v2.data.condition.allOf.length > 0) {
    const c = v2.data.condition;
    c.allOf.forEach((criterion, i) => {
      (criterion.dimensions ?? []).forEach((d, j) => collect(d.name, d.value, `data.alertContext.condition.allOf.${i}.dimensions.${j}.value`));
      facts.workspaceId ??= workspaceGuidFromLink(criterion.linkToSearchResultsAPI ?? criterion.linkToFilteredSearchResultsAPI ?? null);
    });
    return { ...facts, window: windowOf(c.windowStartTime, c.windowEndTime, c.windowSize) };
  }
  const v1 = LogAlertV1ContextSchema.safeParse(context);
  if (v1.success && (v1.data.SearchQuery !== undefined || v1.data.WorkspaceId !== undefined)) {
    (v1.data.Dimensions ?? []).forEach((d, j) => collect(d.name, d.value, `data.alertContext.Dimensions.${j}.value`));
    (v1.data.AffectedConfigurationItems ?? []).forEach((item, j) => names.add({ value: item, field: `data.alertContext.AffectedConfigurationItems.${j}` }));
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

function collectDimension(ids: UniqueCandidates, computers: UniqueCandidates, name: string, value: unknown, field: string): void {
  if (typeof value !== 'string' || value === '') return;
  const key = name.toLowerCase();
  if (RESOURCE_ID_DIMENSIONS.has(key)) ids.add({ value, field });
  else if (key === 'computer') computers.add({ value, field });
}

/** The workspace GUID in a Logs API link; it becomes a URL path segment, so only a GUID is taken. */
function workspaceGuidFromLink(link: string | null): string | null {
  const match = link ? /\/workspaces\/([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\//i.exec(link) : null;
  return match?.[1] ?? null;
}

/** ISO-8601 durations of the forms alert rules use (PT5M, PT1H, P1D). */
export function durationMs(iso: string): number | null {
  const m = /^P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?$/i.exec(iso.trim());
  if (!m || iso.trim().toUpperCase() === 'P' || iso.trim().toUpperCase() === 'PT') return null;
  const [, d = '0', h = '0', min = '0', s = '0'] = m;
  return ((Number(d) * 24 + Number(h)) * 60 + Number(min)) * 60_000 + Number(s) * 1000;
}

/** Log alert windows are at most two days; a larger size is not one, and must not reach Date's limits. */
const MAX_WINDOW_MS = 31 * 86_400_000;
/** ECMAScript's Date range: ±8.64e15 ms around 1970. */
const DATE_LIMIT_MS = 8.64e15;

function windowAt(startMs: number, endMs: number): AlertWindow | null {
  if (!(Math.abs(startMs) <= DATE_LIMIT_MS && Math.abs(endMs) <= DATE_LIMIT_MS && endMs > startMs)) return null;
  return { start: new Date(startMs).toISOString(), end: new Date(endMs).toISOString() };
}

function windowOf(start: string | undefined, end: string | undefined, size: string | undefined): AlertWindow | null {
  const endMs = end ? Date.parse(end) : NaN;
  const startMs = start ? Date.parse(start) : NaN;
  const given = windowAt(startMs, endMs);
  if (given) return given;
  // Test payloads carry start == end; the window size then says how far back to look.
  const sizeMs = size ? durationMs(size) : null;
  if (Number.isFinite(endMs) && sizeMs !== null && sizeMs > 0 && sizeMs <= MAX_WINDOW_MS) return windowAt(endMs - sizeMs, endMs);
  return null;
}

/** Without a window in the payload: the hour before the alert fired (or before now, when that is not a time). */
function fallbackWindow(firedAt: string): AlertWindow {
  const fired = Date.parse(firedAt);
  return windowAt(fired - 3_600_000, fired) ?? (windowAt(Date.now() - 3_600_000, Date.now()) as AlertWindow);
}
