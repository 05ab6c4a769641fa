import { describe, expect, it } from 'vitest';
import { admissionKey, stillCovers } from '../../src/alerts/admission.js';
import { ALERT_LIMITS, classifyAlert, DEFAULT_ACCEPTED_SERVICES, durationMs, type AcceptedAlert } from '../../src/alerts/classify.js';
import { ALERT_MESSAGE_MAX_BYTES, alertMessageBytes, fromAlertMessage, splitAlert, toAlertMessage } from '../../src/alerts/message.js';
import { processAlert, remediationIdFor } from '../../src/alerts/process.js';
import { InMemoryAdmissionStore } from '../../src/alerts/admission.js';
import { InMemoryRemediationStore } from '../../src/adapters/remediation-store.js';
import type { Job } from '../../src/core/job.js';
import { affectedResourceIds, affectedVmEvidence } from '../../src/adapters/logs.js';
import { TokenBucket } from '../../src/adapters/pacing.js';
import { RunIdSchema } from '../../src/contract/parameters.js';
import type { RemediationRecord } from '../../src/core/outcome.js';
import { logAlertV2 } from '../../demo/alert-payloads.js';

const settings = { acceptedServices: DEFAULT_ACCEPTED_SERVICES, alertRules: [] };
const SUB = '00000000-0000-0000-0000-0000000000b1';
const vm = (name: string) => `/subscriptions/${SUB}/resourcegroups/rg/providers/microsoft.compute/virtualmachines/${name}`;
const vmss = (name: string, i: number) => `/subscriptions/${SUB}/resourcegroups/rg/providers/microsoft.compute/virtualmachinescalesets/${name}/virtualmachines/${i}`;
const workspace = `/subscriptions/${SUB}/resourcegroups/rg/providers/microsoft.operationalinsights/workspaces/law-rdp`;

describe('classifyAlert', () => {
  it('takes VM targets from alertTargetIDs and _ResourceId dimensions, case-insensitively and once each', () => {
    const d = classifyAlert(logAlertV2({ targets: [vm('A')], resourceIds: [vm('a'), vmss('ss', 2), `/subscriptions/${SUB}/resourceGroups/rg/providers/Microsoft.Web/sites/app`] }), settings);
    if (d.kind !== 'accepted') throw new Error(JSON.stringify(d));
    expect(d.alert.vms.map((v) => v.kind)).toEqual(['vm', 'vmss-vm']);
    expect(d.alert.otherTargets).toHaveLength(1);
    expect(d.alert.workspace).toBeNull();
  });

  it('falls back to the workspace only when no VM is named', () => {
    const d = classifyAlert(logAlertV2({ targets: [workspace], computers: ['web01'], workspaceGuid: 'c0c0c0c0-0000-4000-8000-000000000001' }), settings);
    expect(d.kind === 'accepted' && d.alert.workspace).toEqual({ resourceId: workspace, workspaceId: 'c0c0c0c0-0000-4000-8000-000000000001' });
    expect(d.kind === 'accepted' && d.alert.computers).toEqual(['web01']);
    const both = classifyAlert(logAlertV2({ targets: [workspace], resourceIds: [vm('b')] }), settings);
    expect(both.kind === 'accepted' && both.alert.workspace).toBeNull();
  });

  it('ignores alerts without a VM, Resolved alerts, other services and rules not allowed', () => {
    expect(classifyAlert(logAlertV2({ targets: [`/subscriptions/${SUB}/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/s`] }), settings)).toMatchObject({ kind: 'ignored', reason: 'no-vm-target' });
    expect(classifyAlert(logAlertV2({ targets: [vm('c')], condition: 'Resolved' }), settings)).toMatchObject({ kind: 'ignored', reason: 'resolved' });
    expect(classifyAlert(logAlertV2({ targets: [vm('c')], rule: 'other' }), { ...settings, alertRules: ['rdp-remediator-rdp-failures'] })).toMatchObject({ kind: 'ignored', reason: 'rule-not-allowed' });
    expect(classifyAlert(logAlertV2({ targets: [vm('c')] }), { ...settings, acceptedServices: ['Log Analytics'] })).toMatchObject({ kind: 'ignored', reason: 'unsupported-service' });
  });

  it('uses the alert window, or the window size before its end when start equals end', () => {
    const d = classifyAlert(logAlertV2({ targets: [vm('d')], window: { start: '2026-11-21T10:00:00Z', end: '2026-11-21T10:15:00Z' } }), settings);
    expect(d.kind === 'accepted' && d.alert.window).toEqual({ start: '2026-11-21T10:00:00.000Z', end: '2026-11-21T10:15:00.000Z' });
    const same = classifyAlert(logAlertV2({ targets: [vm('d')], window: { start: '2026-11-21T10:15:00Z', end: '2026-11-21T10:15:00Z' } }), settings);
    expect(same.kind === 'accepted' && same.alert.window.start).toBe('2026-11-21T10:00:00.000Z');
  });

  it('round-trips through the alert queue message', () => {
    const d = classifyAlert(logAlertV2({ targets: [vm('e')], resourceIds: [vmss('ss', 1)] }), settings);
    if (d.kind !== 'accepted') throw new Error('not accepted');
    const back = fromAlertMessage(JSON.parse(JSON.stringify(toAlertMessage(d.alert, new Date()))));
    expect(back.success && back.alert).toEqual(d.alert);
    expect(fromAlertMessage({ v: 1 }).success).toBe(false);
  });

  it('skips and reports targets that break the naming rules, and still accepts the valid ones', () => {
    const hostile = [
      `/subscriptions/${SUB}/resourcegroups/rg/providers/microsoft.compute/virtualmachinescalesets/../virtualmachines/victim`,
      vm('web\u0000'),
      vm('web;calc'),
      vm('web%2e%2e'),
      `${vm('web')}/`,
    ];
    const d = classifyAlert(logAlertV2({ targets: [vm('ok'), ...hostile.slice(0, 3)], resourceIds: hostile.slice(3) }), settings);
    if (d.kind !== 'accepted') throw new Error(JSON.stringify(d));
    expect(d.alert.vms.map((v) => v.key)).toEqual([vm('ok')]);
    expect(d.alert.otherTargets).toEqual([]);
    expect(d.rejectedTargets.map((r) => r.field)).toEqual([
      'data.essentials.alertTargetIDs.1',
      'data.essentials.alertTargetIDs.2',
      'data.essentials.alertTargetIDs.3',
      'data.alertContext.condition.allOf.0.dimensions.0.value',
      'data.alertContext.condition.allOf.0.dimensions.1.value',
    ]);
    const only = classifyAlert(logAlertV2({ targets: hostile }), settings);
    expect(only).toMatchObject({ kind: 'ignored', reason: 'no-vm-target' });
    expect(only.kind === 'ignored' && only.rejectedTargets).toHaveLength(hostile.length);
  });

  it('does not follow a workspace target or Logs link that is not what it claims', () => {
    const tricky = `/subscriptions/${SUB}/resourcegroups/rg/providers/microsoft.compute/virtualmachines/x/../../microsoft.operationalinsights/workspaces/law-rdp`;
    expect(classifyAlert(logAlertV2({ targets: [tricky] }), settings)).toMatchObject({ kind: 'ignored', reason: 'no-vm-target' });
    const link = classifyAlert(logAlertV2({ targets: [workspace], workspaceGuid: '../../c0c0c0c0-0000-4000-8000-000000000001' }), settings);
    expect(link.kind === 'accepted' && link.alert.workspace?.workspaceId).toBeNull();
  });

  it('answers a huge alert id with AlertTooLarge and a control character in it with MalformedAlert', () => {
    const long = classifyAlert(logAlertV2({ targets: [vm('a')], alertId: `/subscriptions/${SUB}/providers/Microsoft.AlertsManagement/alerts/${'a'.repeat(100_000)}` }), settings);
    expect(long).toMatchObject({ kind: 'malformed', code: 'AlertTooLarge', field: 'data.essentials.alertId', limit: ALERT_LIMITS.alertIdLength });
    for (const alertId of ['/alerts/a\u0000b', '/alerts/a#b', '/alerts/a?b', '/alerts/a\\b', '/alerts/ü']) {
      expect(classifyAlert(logAlertV2({ targets: [vm('a')], alertId }), settings)).toMatchObject({ kind: 'malformed', code: 'MalformedAlert', field: 'data.essentials.alertId' });
    }
  });

  it('bounds what it reads: rule names, target counts, Computer values', () => {
    expect(classifyAlert(logAlertV2({ targets: [vm('a')], rule: 'r'.repeat(261) }), settings)).toMatchObject({ kind: 'malformed', field: 'data.essentials.alertRule' });
    expect(classifyAlert(logAlertV2({ targets: [vm('a')], rule: 'rule\nforged' }), settings)).toMatchObject({ kind: 'malformed', field: 'data.essentials.alertRule' });
    const many = Array.from({ length: ALERT_LIMITS.vms + 1 }, (_, i) => vm(`vm${i}`));
    expect(classifyAlert(logAlertV2({ targets: many }), settings)).toMatchObject({ kind: 'malformed', code: 'AlertTooLarge' });
    expect(classifyAlert(logAlertV2({ targets: [workspace], computers: ['c'.repeat(256)] }), settings)).toMatchObject({ kind: 'malformed', code: 'MalformedAlert' });
    const others = Array.from({ length: 50 }, (_, i) => `/subscriptions/${SUB}/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/s${i}`);
    const d = classifyAlert(logAlertV2({ targets: [vm('a'), ...others] }), settings);
    expect(d.kind === 'accepted' && d.alert.otherTargets).toHaveLength(ALERT_LIMITS.reported + 1);
  });

  it('never throws on windows beyond the Date range', () => {
    for (const window of [{ start: '2026-01-01T00:00:00Z', end: '2026-01-01T00:00:00Z' }, { start: 'x', end: '+275760-09-13T00:00:00.000Z' }]) {
      const body = logAlertV2({ targets: [vm('a')], window }) as { data: { alertContext: { condition: { windowSize: string } } } };
      for (const size of ['P99999999999D', `PT${'9'.repeat(400)}M`, 'P0D']) {
        body.data.alertContext.condition.windowSize = size;
        const d = classifyAlert(body, settings);
        expect(d.kind === 'accepted' && Date.parse(d.alert.window.end) > Date.parse(d.alert.window.start)).toBe(true);
      }
    }
  });

  it.each([
    ['PT15M', 900_000],
    ['PT1H', 3_600_000],
    ['P1D', 86_400_000],
    ['PT1H30M', 5_400_000],
    ['P', null],
    ['15m', null],
  ])('durationMs(%s) = %s', (iso, ms) => expect(durationMs(iso)).toBe(ms));
});

describe('splitAlert', () => {
  const accepted = (body: unknown): AcceptedAlert => {
    const d = classifyAlert(body, settings);
    if (d.kind !== 'accepted') throw new Error(JSON.stringify(d));
    return d.alert;
  };

  it('keeps an alert that fits as one message', () => {
    const alert = accepted(logAlertV2({ targets: [vm('a')] }));
    expect(splitAlert(alert)).toEqual([alert]);
  });

  it('splits an alert naming 1,000 VMs into disjoint parts that each fit a queue message', () => {
    const ids = Array.from({ length: 1000 }, (_, i) => vm(`vm-${String(i).padStart(4, '0')}`));
    const others = [`/subscriptions/${SUB}/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/s1`];
    const alert = accepted(logAlertV2({ targets: [...ids, ...others], computers: ['web01'] }));
    expect(alertMessageBytes(alert)).toBeGreaterThan(64 * 1024);
    const parts = splitAlert(alert);
    expect(parts.length).toBeGreaterThan(2);
    for (const part of parts) {
      expect(alertMessageBytes(part)).toBeLessThanOrEqual(ALERT_MESSAGE_MAX_BYTES);
      // Base64, as the queue trigger reads it: under the 64 KiB message limit.
      expect(Buffer.from(JSON.stringify(toAlertMessage(part, new Date()))).toString('base64').length).toBeLessThanOrEqual(64 * 1024);
      expect(part.alertId).toBe(alert.alertId);
    }
    expect(parts.flatMap((p) => p.vms.map((v) => v.key))).toEqual(ids);
    expect(parts.map((p) => p.otherTargets.length)).toEqual([1, ...parts.slice(1).map(() => 0)]);
    // Each part survives the queue.
    for (const part of parts) expect(fromAlertMessage(JSON.parse(JSON.stringify(toAlertMessage(part, new Date())))).success).toBe(true);
  });

  it('splits a workspace alert by its Computer values, never leaving a part without them', () => {
    const computers = Array.from({ length: 1500 }, (_, i) => `computer-${i}.corp.example.com`);
    const alert = accepted(logAlertV2({ targets: [workspace], computers }));
    const parts = splitAlert(alert);
    expect(parts.length).toBeGreaterThan(1);
    expect(parts.every((p) => p.workspace?.resourceId === workspace && p.computers.length > 0)).toBe(true);
    expect(parts.flatMap((p) => p.computers)).toEqual(computers);
  });
});

describe('processAlert over hostile Logs rows', () => {
  it('turns only rows whose _ResourceId follows the naming rules into jobs', async () => {
    const d = classifyAlert(logAlertV2({ targets: [workspace], workspaceGuid: 'c0c0c0c0-0000-4000-8000-000000000001' }), settings);
    if (d.kind !== 'accepted') throw new Error(JSON.stringify(d));
    const hostile = [
      `/subscriptions/${SUB}/resourcegroups/rg/providers/microsoft.compute/virtualmachinescalesets/../virtualmachines/victim`,
      vm('web\u0001'),
      vm('web;calc'),
      `${vm('web')}/`,
    ];
    const dispatched: Job[] = [];
    const result = await processAlert(d.alert, {
      logs: { findAffectedVms: () => Promise.resolve({ resourceIds: [vm('good'), ...hostile], evidence: [], partialError: null }) },
      admissions: new InMemoryAdmissionStore(),
      store: new InMemoryRemediationStore(),
      dispatch: (job) => {
        dispatched.push(job);
        return Promise.resolve();
      },
      mode: 'repair',
      dedupe: { scope: 'vm', cooldownMs: 0 },
    });
    expect(dispatched.map((j) => j.vm.key)).toEqual([vm('good')]);
    expect(result.decisions.filter((x) => x.decision === 'ignored').map((x) => x.target)).toEqual(hostile);
  });
});

describe('admission', () => {
  const completedAt = (iso: string) => ({ state: 'completed', completedAt: iso }) as RemediationRecord;
  it('keys by VM, or by alert and VM', () => {
    expect(admissionKey({ scope: 'vm', cooldownMs: 0 }, '/A', 'vm1')).toBe('vm1');
    expect(admissionKey({ scope: 'alert-and-vm', cooldownMs: 0 }, '/A', 'vm1')).toBe('/a|vm1');
  });
  it('covers while queued or running, during the cooldown, and only briefly while the record is being created', () => {
    const now = Date.parse('2026-11-21T12:00:00Z');
    // A missing record covers only just after its admission row was taken, never for ever.
    expect(stillCovers(undefined, now, 0, { admittedAt: now - 1000 })).toBe(true);
    expect(stillCovers(undefined, now, 0)).toBe(false);
    expect(stillCovers({ state: 'running' } as RemediationRecord, now, 0)).toBe(true);
    expect(stillCovers(completedAt('2026-11-21T11:45:00Z'), now, 30 * 60_000)).toBe(true);
    expect(stillCovers(completedAt('2026-11-21T11:15:00Z'), now, 30 * 60_000)).toBe(false);
  });
  it('derives one remediation id per alert and VM, a valid run id', () => {
    const a = remediationIdFor('/subscriptions/x/alerts/1', 'vm1');
    expect(RunIdSchema.safeParse(a).success).toBe(true);
    expect(remediationIdFor('/SUBSCRIPTIONS/X/ALERTS/1', 'vm1')).toBe(a);
    expect(remediationIdFor('/subscriptions/x/alerts/2', 'vm1')).not.toBe(a);
  });
});

describe('affectedResourceIds', () => {
  const table = {
    name: 'PrimaryResult',
    columnDescriptors: [{ name: '_ResourceId', type: 'string' }, { name: 'Computer', type: 'string' }, { name: 'Count', type: 'long' }],
    rows: [
      [vm('a'), 'WEB-A', 3],
      [vm('b'), 'web-b', 1],
      ['', 'NO-ID', 1],
      [vm('a'), 'WEB-A', 2],
    ],
  };
  it('reads _ResourceId, narrowed to the Computer dimension values when given', () => {
    expect(affectedResourceIds([table as never], [])).toEqual([vm('a'), vm('b')]);
    expect(affectedResourceIds([table as never], ['WEB-B'])).toEqual([vm('b')]);
  });

  it("keeps each row's counts as the alert's evidence, tolerating odd cells", () => {
    const full = {
      name: 'PrimaryResult',
      columnDescriptors: ['_ResourceId', 'Computer', 'Count', 'EventIDs', 'LastSeen'].map((name) => ({ name, type: 'string' })),
      rows: [
        [vm('a'), 'WEB-A', 3, [36870, 1057, 36870], new Date('2026-11-21T11:58:00Z')],
        [vm('b'), 'WEB-B', '2', '[56]', '2026-11-21T11:00:00Z'],
        [vm('c'), null, 'x', 'not json', 'not a date'],
      ],
    };
    expect(affectedVmEvidence([full as never], [])).toEqual([
      { resourceId: vm('a'), computer: 'WEB-A', count: 3, eventIds: [1057, 36870], lastSeen: '2026-11-21T11:58:00.000Z' },
      { resourceId: vm('b'), computer: 'WEB-B', count: 2, eventIds: [56], lastSeen: '2026-11-21T11:00:00.000Z' },
      { resourceId: vm('c'), computer: null, count: 0, eventIds: [], lastSeen: null },
    ]);
  });
});

describe('TokenBucket', () => {
  it('serves the burst at once, then paces at the refill rate', async () => {
    let t = 0;
    const bucket = new TokenBucket({ perSecond: 1000, burst: 3 }, () => t);
    for (let i = 0; i < 3; i++) await bucket.take();
    const waiting = bucket.take();
    let done = false;
    void waiting.then(() => (done = true));
    await new Promise((r) => setTimeout(r, 0));
    expect(done).toBe(false);
    t += 2; // 2 ms later a token is back
    await waiting;
    expect(done).toBe(true);
  });
});
