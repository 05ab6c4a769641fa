/**
 * Finds the VMs behind a workspace-targeted log alert: runs the shipped event query over
 * the alert's window with the real @azure/monitor-query-logs client and reads `_ResourceId`.
 */
import type { TokenCredential } from '@azure/identity';
import { LogsQueryClient, LogsQueryResultStatus, type LogsTable } from '@azure/monitor-query-logs';
import { eventQuery } from '../alerts/event-query.js';
import type { AlertWindow, WorkspaceTarget } from '../alerts/classify.js';
import { deadlinePolicy, DEFAULT_BOUNDS, tryTimeoutPolicy, type CallBounds, type PipelinePolicy } from './pacing.js';

/** What the shipped query's row said about one VM: the alert's own evidence, kept in the remediation's record. */
export interface LogsEvidence {
  /** `_ResourceId`, as the workspace stores it. */
  readonly resourceId: string;
  readonly computer: string | null;
  /** Matching events in the alert's window. */
  readonly count: number;
  /** The distinct event ids among them (at most 16 kept). */
  readonly eventIds: readonly number[];
  /** The newest one's TimeGenerated, ISO 8601. */
  readonly lastSeen: string | null;
}

export interface AffectedVms {
  /** `_ResourceId` values, as the workspace stores them (often lower-case). */
  readonly resourceIds: readonly string[];
  /** One entry per row kept, in the order of resourceIds (a VM with several Computer rows has several). */
  readonly evidence: readonly LogsEvidence[];
  /** Set when the service answered with a partial result. */
  readonly partialError: string | null;
}

export interface LogsGateway {
  findAffectedVms(workspace: WorkspaceTarget, window: AlertWindow, computers: readonly string[]): Promise<AffectedVms>;
}

export interface MonitorLogsGatewayOptions {
  /** Logs API base including /v1, e.g. https://api.loganalytics.io/v1. */
  readonly endpoint: string;
  readonly audience: string;
  readonly additionalPolicies?: readonly PipelinePolicy[];
  /** Per-try timeout, retries and per-query deadline; default DEFAULT_BOUNDS.logs. A hung query ends in DependencyTimeoutError('logs'). */
  readonly bounds?: Partial<CallBounds>;
}

export class MonitorLogsGateway implements LogsGateway {
  private readonly client: LogsQueryClient;
  private readonly serverTimeoutInSeconds: number;

  public constructor(credential: TokenCredential, options: MonitorLogsGatewayOptions) {
    const bounds: CallBounds = { ...DEFAULT_BOUNDS.logs, ...options.bounds };
    // Ask the service to give up before the client does, so a slow query answers with an error rather than silence.
    this.serverTimeoutInSeconds = Math.max(1, Math.floor(bounds.tryTimeoutMs / 1000) - 10);
    this.client = new LogsQueryClient(credential, {
      endpoint: options.endpoint,
      credentials: { scopes: [`${options.audience}/.default`] },
      retryOptions: { maxRetries: bounds.maxRetries, retryDelayInMs: bounds.retryDelayMs, maxRetryDelayInMs: bounds.maxRetryDelayMs },
      additionalPolicies: [
        { policy: deadlinePolicy('logs', bounds.operationTimeoutMs), position: 'perCall' as const },
        ...[...(options.additionalPolicies ?? []), tryTimeoutPolicy(bounds.tryTimeoutMs)].map((policy) => ({ policy, position: 'perRetry' as const })),
      ],
    });
  }

  public async findAffectedVms(workspace: WorkspaceTarget, window: AlertWindow, computers: readonly string[]): Promise<AffectedVms> {
    const timespan = { startTime: new Date(window.start), endTime: new Date(window.end) };
    const options = { serverTimeoutInSeconds: this.serverTimeoutInSeconds };
    const result = workspace.workspaceId
      ? await this.client.queryWorkspace(workspace.workspaceId, eventQuery(), timespan, options)
      : await this.client.queryResource(workspace.resourceId, eventQuery(), timespan, options);
    const tables = result.status === LogsQueryResultStatus.Success ? result.tables : result.partialTables;
    const partialError = result.status === LogsQueryResultStatus.Success ? null : `${result.partialError.code ?? 'PartialError'}: ${result.partialError.message}`;
    const evidence = affectedVmEvidence(tables, computers);
    return { resourceIds: [...new Set(evidence.map((e) => e.resourceId))], evidence, partialError };
  }
}

const MAX_EVIDENCE_EVENT_IDS = 16;

function countOf(value: unknown): number {
  const n = typeof value === 'number' ? value : typeof value === 'string' ? Number(value) : NaN;
  return Number.isSafeInteger(n) && n >= 0 ? n : 0;
}

function eventIdsOf(value: unknown): number[] {
  // A dynamic column: the SDK parses it to an array; a string is its JSON text.
  let parsed: unknown = value;
  if (typeof value === 'string') {
    try {
      parsed = JSON.parse(value);
    } catch {
      return [];
    }
  }
  if (!Array.isArray(parsed)) return [];
  const ids = parsed.map((v) => countOf(v)).filter((n) => n > 0 && n <= 65_535);
  return [...new Set(ids)].sort((a, b) => a - b).slice(0, MAX_EVIDENCE_EVENT_IDS);
}

function timeOf(value: unknown): string | null {
  const ms = value instanceof Date ? value.getTime() : typeof value === 'string' ? Date.parse(value) : NaN;
  return Number.isFinite(ms) ? new Date(ms).toISOString() : null;
}

/** Each row's `_ResourceId` with its counts, narrowed to the alert's Computer dimension values when it has any. */
export function affectedVmEvidence(tables: readonly LogsTable[], computers: readonly string[]): LogsEvidence[] {
  const wanted = new Set(computers.map((c) => c.toLowerCase()));
  const evidence: LogsEvidence[] = [];
  for (const table of tables) {
    const names = table.columnDescriptors.map((c) => (c.name ?? '').toLowerCase());
    const column = (name: string) => names.indexOf(name);
    const [idColumn, computerColumn, countColumn, idsColumn, lastColumn] = ['_resourceid', 'computer', 'count', 'eventids', 'lastseen'].map(column);
    if (idColumn === undefined || idColumn < 0) continue;
    for (const row of table.rows) {
      const id = row[idColumn];
      if (typeof id !== 'string' || id === '') continue;
      const computer = computerColumn !== undefined && computerColumn >= 0 ? row[computerColumn] : undefined;
      if (wanted.size > 0 && !(typeof computer === 'string' && wanted.has(computer.toLowerCase()))) continue;
      evidence.push({
        resourceId: id,
        computer: typeof computer === 'string' ? computer.slice(0, 256) : null,
        count: countColumn !== undefined && countColumn >= 0 ? countOf(row[countColumn]) : 0,
        eventIds: idsColumn !== undefined && idsColumn >= 0 ? eventIdsOf(row[idsColumn]) : [],
        lastSeen: lastColumn !== undefined && lastColumn >= 0 ? timeOf(row[lastColumn]) : null,
      });
    }
  }
  return evidence;
}

/** `_ResourceId` of each row, narrowed to the alert's Computer dimension values when it has any. */
export function affectedResourceIds(tables: readonly LogsTable[], computers: readonly string[]): string[] {
  return [...new Set(affectedVmEvidence(tables, computers).map((e) => e.resourceId))];
}
