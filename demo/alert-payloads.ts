/** Common-alert-schema bodies, in the shape a Log Alerts V2 rule split by _ResourceId sends: for the tests, the benchmark and local trials. */
import { randomUUID } from 'node:crypto';

export interface LogAlertOptions {
  readonly alertId?: string;
  readonly condition?: 'Fired' | 'Resolved';
  /** Alert targets as sent (the service lower-cases them). */
  readonly targets: readonly string[];
  /** `_ResourceId` dimension values. */
  readonly resourceIds?: readonly string[];
  readonly computers?: readonly string[];
  readonly window?: { readonly start: string; readonly end: string };
  readonly workspaceGuid?: string;
  readonly rule?: string;
}

export function alertId(): string {
  return `/subscriptions/00000000-0000-0000-0000-0000000000a1/providers/Microsoft.AlertsManagement/alerts/${randomUUID()}`;
}

export function logAlertV2(options: LogAlertOptions): unknown {
  const end = options.window?.end ?? new Date().toISOString();
  const start = options.window?.start ?? new Date(Date.parse(end) - 15 * 60_000).toISOString();
  const dimensions = [
    ...(options.resourceIds ?? []).map((value) => ({ name: '_ResourceId', value })),
    ...(options.computers ?? []).map((value) => ({ name: 'Computer', value })),
  ];
  return {
    schemaId: 'azureMonitorCommonAlertSchema',
    data: {
      essentials: {
        alertId: options.alertId ?? alertId(),
        alertRule: options.rule ?? 'rdp-remediator-rdp-failures',
        severity: 'Sev2',
        signalType: 'Log',
        monitorCondition: options.condition ?? 'Fired',
        monitoringService: 'Log Alerts V2',
        alertTargetIDs: options.targets.map((t) => t.toLowerCase()),
        configurationItems: options.computers ?? [],
        originAlertId: randomUUID(),
        firedDateTime: end,
        description: 'RDP certificate, key or TLS failures',
        essentialsVersion: '1.0',
        alertContextVersion: '1.0',
      },
      alertContext: {
        properties: null,
        conditionType: 'LogQueryCriteria',
        condition: {
          windowSize: 'PT15M',
          allOf: [
            {
              searchQuery: '// rdp-remediator:event-query v1',
              metricMeasureColumn: null,
              targetResourceTypes: "['Microsoft.Compute/virtualMachines']",
              operator: 'GreaterThan',
              threshold: '0',
              timeAggregation: 'Count',
              dimensions,
              metricValue: 1,
              failingPeriods: { numberOfEvaluationPeriods: 1, minFailingPeriodsToAlert: 1 },
              ...(options.workspaceGuid
                ? { linkToSearchResultsAPI: `https://api.loganalytics.io/v1/workspaces/${options.workspaceGuid}/query?query=x&timespan=${start}%2f${end}` }
                : {}),
            },
          ],
          windowStartTime: start,
          windowEndTime: end,
        },
      },
    },
  };
}
