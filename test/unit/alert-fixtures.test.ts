/** Conformance: every official common-alert-schema sample has a defined, tested decision. */
import { describe, expect, it } from 'vitest';
import { classifyAlert, DEFAULT_ACCEPTED_SERVICES, type AlertClassification } from '../../src/alerts/classify.js';
import { alertFixtures, sharedFixturesAvailable } from '../support/shared-fixtures.js';

const settings = { acceptedServices: DEFAULT_ACCEPTED_SERVICES, alertRules: [] };
const available = sharedFixturesAvailable();

type Expected = { kind: 'ignored'; reason: string } | { kind: 'accepted'; workspace: boolean; computers: string[]; vms: number } | { kind: 'malformed' };

const FULL: Record<string, Expected> = {
  'full_metric-platform-resolved_common-schema-doc.json': { kind: 'ignored', reason: 'resolved' },
  'full_test-action_activity-log-administrative.json': { kind: 'ignored', reason: 'unsupported-service' },
  'full_test-action_availability-test.json': { kind: 'ignored', reason: 'unsupported-service' },
  'full_test-action_budget.json': { kind: 'ignored', reason: 'unsupported-service' },
  'full_test-action_cost-budget.json': { kind: 'ignored', reason: 'unsupported-service' },
  'full_test-action_forecasted-budget.json': { kind: 'ignored', reason: 'unsupported-service' },
  'full_test-action_log-alert-v1-metric-measurement.json': { kind: 'accepted', workspace: true, computers: [], vms: 0 },
  'full_test-action_log-alert-v1-number-of-results.json': { kind: 'accepted', workspace: true, computers: ['test-computer'], vms: 0 },
  'full_test-action_log-alerts-v2.json': { kind: 'accepted', workspace: true, computers: ['test-computer'], vms: 0 },
  'full_test-action_metric-dynamic-threshold.json': { kind: 'ignored', reason: 'unsupported-service' },
  'full_test-action_metric-static-threshold.json': { kind: 'ignored', reason: 'unsupported-service' },
  'full_test-action_resource-health.json': { kind: 'ignored', reason: 'unsupported-service' },
  'full_test-action_service-health.json': { kind: 'ignored', reason: 'unsupported-service' },
  'full_test-action_smart-alert.json': { kind: 'ignored', reason: 'unsupported-service' },
};

/** The context-only samples, wrapped in the essentials their monitoring service would send, with a lower-cased VM target. */
const CONTEXT: Record<string, { service: string; expected: Expected }> = {
  'context_log-alerts-v2.json': { service: 'Log Alerts V2', expected: { kind: 'accepted', workspace: false, computers: ['TestComputer'], vms: 1 } },
  'context_log-search-v1_log-analytics.json': { service: 'Log Analytics', expected: { kind: 'accepted', workspace: false, computers: ['INC-Gen2Alert'], vms: 1 } },
  'context_log-search-v1_application-insights.json': { service: 'Application Insights', expected: { kind: 'ignored', reason: 'unsupported-service' } },
  'context_metric-static-threshold_platform.json': { service: 'Platform', expected: { kind: 'ignored', reason: 'unsupported-service' } },
  'context_metric-dynamic-threshold_platform.json': { service: 'Platform', expected: { kind: 'ignored', reason: 'unsupported-service' } },
  'context_metric-availability-test_platform.json': { service: 'Platform', expected: { kind: 'ignored', reason: 'unsupported-service' } },
  'context_activity-log-administrative.json': { service: 'Activity Log - Administrative', expected: { kind: 'ignored', reason: 'unsupported-service' } },
  'context_activity-log-policy.json': { service: 'Activity Log - Policy', expected: { kind: 'ignored', reason: 'unsupported-service' } },
  'context_activity-log-autoscale.json': { service: 'Activity Log - Autoscale', expected: { kind: 'ignored', reason: 'unsupported-service' } },
  'context_activity-log-security.json': { service: 'Activity Log - Security', expected: { kind: 'ignored', reason: 'unsupported-service' } },
  'context_service-health.json': { service: 'ServiceHealth', expected: { kind: 'ignored', reason: 'unsupported-service' } },
  'context_resource-health.json': { service: 'Resource Health', expected: { kind: 'ignored', reason: 'unsupported-service' } },
  'context_prometheus.json': { service: 'Prometheus', expected: { kind: 'ignored', reason: 'unsupported-service' } },
};

const VM = '/subscriptions/11111111-1111-1111-1111-111111111111/resourcegroups/test-rg/providers/microsoft.compute/virtualmachines/test-vm';

function check(decision: AlertClassification, expected: Expected): void {
  expect(decision.kind).toBe(expected.kind);
  if (expected.kind === 'ignored' && decision.kind === 'ignored') expect(decision.reason).toBe(expected.reason);
  if (expected.kind === 'accepted' && decision.kind === 'accepted') {
    expect(decision.alert.workspace !== null).toBe(expected.workspace);
    expect(decision.alert.computers).toEqual(expected.computers);
    expect(decision.alert.vms).toHaveLength(expected.vms);
    expect(Date.parse(decision.alert.window.end)).toBeGreaterThan(Date.parse(decision.alert.window.start));
  }
}

describe.skipIf(!available)('official alert payloads (../shared/fixtures/azure-monitor-alerts)', () => {
  const fixtures = available ? alertFixtures() : [];

  it('covers every fixture file with an expectation', () => {
    expect(fixtures.map((f) => f.name).sort()).toEqual([...Object.keys(FULL), ...Object.keys(CONTEXT)].sort());
  });

  it.each(Object.entries(FULL))('%s → %j', (name, expected) => {
    const body = fixtures.find((f) => f.name === name)?.body;
    check(classifyAlert(body, settings), expected);
  });

  it.each(Object.keys(CONTEXT))('%s alone is malformed (no envelope)', (name) => {
    expect(classifyAlert(fixtures.find((f) => f.name === name)?.body, settings).kind).toBe('malformed');
  });

  it.each(Object.entries(CONTEXT))('%s wrapped → %j', (name, { service, expected }) => {
    const { alertContext } = fixtures.find((f) => f.name === name)?.body as { alertContext: unknown };
    const body = {
      schemaId: 'azureMonitorCommonAlertSchema',
      data: {
        essentials: {
          alertId: '/subscriptions/11111111-1111-1111-1111-111111111111/providers/Microsoft.AlertsManagement/alerts/aaaaaaaa-0000-0000-0000-000000000001',
          alertRule: 'rule',
          severity: 'Sev3',
          signalType: 'Log',
          monitorCondition: 'Fired',
          monitoringService: service,
          alertTargetIDs: [VM],
          configurationItems: ['test-vm'],
          originAlertId: 'x',
          firedDateTime: '2025-04-15T18:08:03.626Z',
          description: '',
          essentialsVersion: '1.0',
          alertContextVersion: '1.0',
        },
        alertContext,
      },
    };
    check(classifyAlert(body, settings), expected);
  });
});
