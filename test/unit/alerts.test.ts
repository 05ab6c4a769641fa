import { describe, expect, it } from 'vitest';
import { admissionKey, stillCovers } from '../../src/alerts/admission.js';
import { classifyAlert, DEFAULT_ACCEPTED_SERVICES, durationMs } from '../../src/alerts/classify.js';
import { fromAlertMessage, toAlertMessage } from '../../src/alerts/message.js';
import { remediationIdFor } from '../../src/alerts/process.js';
import { affectedResourceIds } from '../../src/adapters/logs.js';
import { TokenBucket } from '../../src/adapters/pacing.js';
import { RunIdSchema } from '../../src/contract/parameters.js';
import type { RemediationRecord } from '../../src/core/outcome.js';
import { logAlertV2 } from '../../demo/alert-payloads.js';

const settings = { acceptedServices: DEFAULT_ACCEPTED_SERVICES, alertRules: [] };
const SUB = '00000000-0000-0000-0000-0000000000b1';
const vm = (name: string) => `/subscriptions/${SUB}/resourcegroups/rg/providers/microsoft.compute/virtualmachines/${name}`;
const vmss = (name: string, i: number) => `/subscriptions/${SUB}/resourcegroups/rg/providers/microsoft.compute/virtualmachinescalesets/${name}/virtualmachines/${i}`;
const workspace = `/subscriptions/${SUB}/resourcegroups/rg/providers/microsoft.operationalinsights/workspaces/law`;

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

  it.each([
    ['PT15M', 900_000],
    ['PT1H', 3_600_000],
    ['P1D', 86_400_000],
    ['PT1H30M', 5_400_000],
    ['P', null],
    ['15m', null],
  ])('durationMs(%s) = %s', (iso, ms) => expect(durationMs(iso)).toBe(ms));
});

describe('admission', () => {
  const completedAt = (iso: string) => ({ state: 'completed', completedAt: iso }) as RemediationRecord;
  it('keys by VM, or by alert and VM', () => {
    expect(admissionKey({ scope: 'vm', cooldownMs: 0 }, '/A', 'vm1')).toBe('vm1');
    expect(admissionKey({ scope: 'alert-and-vm', cooldownMs: 0 }, '/A', 'vm1')).toBe('/a|vm1');
  });
  it('covers while queued or running, during the cooldown, and while the record is still being created', () => {
    const now = Date.parse('2026-11-21T12:00:00Z');
    expect(stillCovers(undefined, now, 0)).toBe(true);
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
