/**
 * Finds the VMs behind a workspace-targeted log alert: runs the shipped event query over
 * the alert's window with the real @azure/monitor-query-logs client and reads `_ResourceId`.
 */
import type { TokenCredential } from '@azure/identity';
import { LogsQueryClient, LogsQueryResultStatus, type LogsTable } from '@azure/monitor-query-logs';
import { eventQuery } from '../alerts/event-query.js';
import type { AlertWindow, WorkspaceTarget } from '../alerts/classify.js';
import { deadlinePolicy, DEFAULT_BOUNDS, tryTimeoutPolicy, type CallBounds, type PipelinePolicy } from './pacing.js';

export interface AffectedVms {
  /** `_ResourceId` values, as the workspace stores them (often lower-case). */
  readonly resourceIds: readonly string[];
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
    return { resourceIds: affectedResourceIds(tables, computers), partialError };
  }
}

/** `_ResourceId` of each row, narrowed to the alert's Computer dimension values when it has any. */
export function affectedResourceIds(tables: readonly LogsTable[], computers: readonly string[]): string[] {
  const wanted = new Set(computers.map((c) => c.toLowerCase()));
  const ids = new Set<string>();
  for (const table of tables) {
    const names = table.columnDescriptors.map((c) => (c.name ?? '').toLowerCase());
    const idColumn = names.indexOf('_resourceid');
    const computerColumn = names.indexOf('computer');
    if (idColumn < 0) continue;
    for (const row of table.rows) {
      const id = row[idColumn];
      if (typeof id !== 'string' || id === '') continue;
      const computer = computerColumn >= 0 ? row[computerColumn] : undefined;
      if (wanted.size > 0 && !(typeof computer === 'string' && wanted.has(computer.toLowerCase()))) continue;
      ids.add(id);
    }
  }
  return [...ids];
}
