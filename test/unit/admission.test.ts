/**
 * Admission's bounds (src/alerts/admission.ts) and alert processing's order (src/alerts/process.ts):
 * a VM whose alert-triggered job was lost is admitted again instead of staying wedged.
 *
 * Regression tests, each failing on the code before issue 9: "a dispatch that failed is
 * dispatched again on redelivery", "a queued record older than the bound", "a missing record
 * older than the grace", and "an old stuck record in Table storage" (stillCovers treated queued
 * and missing records as covering for ever; the record was written before the dispatch).
 */
import { randomUUID } from 'node:crypto';
import { TableClient } from '@azure/data-tables';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InMemoryRemediationStore } from '../../src/adapters/remediation-store.js';
import { InMemoryAdmissionStore, MISSING_COVERS_MS, QUEUED_COVERS_MS, stillCovers, TableAdmissionStore, type AdmissionStore } from '../../src/alerts/admission.js';
import type { AcceptedAlert } from '../../src/alerts/classify.js';
import { processAlert, remediationIdFor, type ProcessAlertDeps } from '../../src/alerts/process.js';
import type { Job } from '../../src/core/job.js';
import type { RemediationRecord } from '../../src/core/outcome.js';
import { parseVmResourceId, type VmRef } from '../../src/core/resource-id.js';
import { queuedRecord } from '../../src/pipeline/remediate.js';
import { startAzurite, type Azurite } from '../../demo/azurite.js';

const NOW = Date.parse('2026-11-21T12:00:00Z');
const iso = (ms: number) => new Date(ms).toISOString();
const base = { id: randomUUID(), vmResourceId: '/x', vmKey: 'x', source: 'alert', mode: 'repair', allow: [], requestedAt: iso(NOW - 3_600_000) } as const;
const queued = (updatedAt: number): RemediationRecord => ({ ...base, state: 'queued', updatedAt: iso(updatedAt) });
const running = (updatedAt: number): RemediationRecord => ({ ...base, state: 'running', startedAt: iso(updatedAt), updatedAt: iso(updatedAt) });
const completed = (at: number): RemediationRecord => ({
  ...base,
  state: 'completed',
  startedAt: iso(at),
  completedAt: iso(at),
  updatedAt: iso(at),
  outcome: { status: 'skipped', reason: 'vm-busy', detail: '', runCommands: 0, timings: { totalMs: 0 } },
});

describe('stillCovers: bounded', () => {
  it('a missing record covers only within the grace after its admission, and never without one', () => {
    expect(stillCovers(undefined, NOW, 0)).toBe(false);
    expect(stillCovers(undefined, NOW, 0, { admittedAt: NOW - 5_000 })).toBe(true);
    expect(stillCovers(undefined, NOW, 0, { admittedAt: NOW - MISSING_COVERS_MS - 1 })).toBe(false);
  });

  it('a queued record covers while it was updated within the bound', () => {
    expect(stillCovers(queued(NOW - 60_000), NOW, 0)).toBe(true);
    expect(stillCovers(queued(NOW - QUEUED_COVERS_MS - 1), NOW, 0)).toBe(false);
    expect(stillCovers(queued(NOW - 10 * 60_000), NOW, 0, { queuedCoversMs: 5 * 60_000 })).toBe(false);
    expect(stillCovers({ ...queued(NOW), updatedAt: 'not a date' }, NOW, 0)).toBe(false);
  });

  it('a running record covers (its lease and redelivery end it); a completed one during the cooldown', () => {
    expect(stillCovers(running(NOW - 6 * 3_600_000), NOW, 0)).toBe(true);
    expect(stillCovers(completed(NOW - 15 * 60_000), NOW, 30 * 60_000)).toBe(true);
    expect(stillCovers(completed(NOW - 45 * 60_000), NOW, 30 * 60_000)).toBe(false);
  });
});

const SUB = '00000000-0000-0000-0000-0000000000ad';
function vmRef(name: string): VmRef {
  const ref = parseVmResourceId(`/subscriptions/${SUB}/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/${name}`);
  if (!ref.success) throw new Error('bad VM id');
  return ref.data;
}
function alertFor(vm: VmRef, alertId = `/subscriptions/${SUB}/providers/Microsoft.AlertsManagement/alerts/${randomUUID()}`): AcceptedAlert {
  return {
    alertId,
    alertRule: 'rdp-failures',
    monitoringService: 'Log Alerts V2',
    firedAt: iso(NOW),
    vms: [vm],
    workspace: null,
    otherTargets: [],
    window: { start: iso(NOW - 900_000), end: iso(NOW) },
    computers: [],
  };
}

function deps(overrides: Partial<ProcessAlertDeps> & { dispatched?: Job[] } = {}): ProcessAlertDeps & { dispatched: Job[] } {
  const dispatched = overrides.dispatched ?? [];
  return {
    logs: { findAffectedVms: () => Promise.reject(new Error('no workspace in these tests')) },
    admissions: new InMemoryAdmissionStore(),
    store: new InMemoryRemediationStore(),
    dispatch: (job) => (dispatched.push(job), Promise.resolve()),
    mode: 'repair',
    dedupe: { scope: 'vm', cooldownMs: 30 * 60_000 },
    now: () => new Date(NOW),
    ...overrides,
    dispatched,
  };
}

describe('processAlert: a lost job does not wedge its VM', () => {
  it('a dispatch that failed is dispatched again when the alert is delivered again', async () => {
    const d = deps();
    const vm = vmRef('vm-dispatch-fails');
    const alert = alertFor(vm);
    let failNext = true;
    const dispatch = (job: Job) => {
      if (failNext) {
        failNext = false;
        return Promise.reject(new Error('queue unavailable (injected)'));
      }
      d.dispatched.push(job);
      return Promise.resolve();
    };
    await expect(processAlert(alert, { ...d, dispatch })).rejects.toThrow(/injected/);
    // The alert message fails and the host delivers it again.
    const again = await processAlert(alert, { ...d, dispatch });
    const id = remediationIdFor(alert.alertId, vm.key);
    expect(again.decisions).toEqual([{ target: vm.id, decision: 'accepted', remediationId: id }]);
    expect(d.dispatched.map((j) => j.id)).toEqual([id]);
    expect((await d.store.get(id))?.state).toBe('queued');
  });

  it('a record write that failed after the dispatch leaves a job that runs, and the redelivery writes the record', async () => {
    const d = deps();
    const vm = vmRef('vm-record-fails');
    const alert = alertFor(vm);
    const create = d.store.create.bind(d.store);
    let failNext = true;
    d.store.create = (record) => (failNext ? ((failNext = false), Promise.reject(new Error('table unavailable (injected)'))) : create(record));
    await expect(processAlert(alert, d)).rejects.toThrow(/injected/);
    expect(d.dispatched).toHaveLength(1);
    const again = await processAlert(alert, d);
    expect(again.decisions[0]).toMatchObject({ decision: 'accepted' });
    expect((await d.store.get(remediationIdFor(alert.alertId, vm.key)))?.state).toBe('queued');
  });

  it('a queued record older than the bound no longer makes a new alert a duplicate', async () => {
    const d = deps();
    const vm = vmRef('vm-stale-queued');
    const first = alertFor(vm);
    await processAlert(first, d);
    const firstId = remediationIdFor(first.alertId, vm.key);
    // Its message never reached a worker; the record sits in "queued".
    const later = deps({ ...d, now: () => new Date(NOW + QUEUED_COVERS_MS + 60_000) });
    const second = alertFor(vm);
    const result = await processAlert(second, later);
    expect(result.decisions[0]).toMatchObject({ decision: 'accepted', remediationId: remediationIdFor(second.alertId, vm.key) });
    // While it was fresh, it covered.
    const third = await processAlert(alertFor(vm), d);
    expect(third.decisions[0]).toMatchObject({ decision: 'deduplicated', remediationId: remediationIdFor(second.alertId, vm.key) });
    expect(firstId).not.toBe(remediationIdFor(second.alertId, vm.key));
  });

  it('an admission whose record was never written covers only within the grace', async () => {
    const d = deps({ dispatch: () => Promise.reject(new Error('lost (injected)')) });
    const vm = vmRef('vm-missing');
    await expect(processAlert(alertFor(vm), d)).rejects.toThrow(/injected/);
    // The alert's own retries gave up (poison): an admission row, no record, no message.
    const soon = await processAlert(alertFor(vm), { ...d, dispatch: () => Promise.resolve() });
    expect(soon.decisions[0]).toMatchObject({ decision: 'deduplicated' });
    const later = await processAlert(alertFor(vm), { ...d, dispatch: () => Promise.resolve(), now: () => new Date(NOW + MISSING_COVERS_MS + 1_000) });
    expect(later.decisions[0]).toMatchObject({ decision: 'accepted' });
  });
});

describe('TableAdmissionStore: the bounds with the admission time it stores', () => {
  let azurite: Azurite | undefined;
  beforeAll(async () => {
    azurite = await startAzurite();
  }, 60_000);
  afterAll(async () => {
    await azurite?.stop();
  });
  const table = () => TableClient.fromConnectionString(azurite?.connectionString ?? '', `adm${randomUUID().replace(/-/g, '').slice(0, 16)}`, { allowInsecureConnection: true });

  it('an old stuck record in Table storage (queued, admitted an hour ago) is superseded by the next alert', async () => {
    const admissions: AdmissionStore = new TableAdmissionStore(table());
    const d = deps({ admissions });
    const vm = vmRef('vm-table-stale');
    const hourAgo = new Date(NOW - 3_600_000);
    const stuck = alertFor(vm);
    const stuckId = remediationIdFor(stuck.alertId, vm.key);
    // What the code before issue 9 left behind: admitted, recorded, never dispatched.
    await admissions.admit(vm.key, stuckId, stuck.alertId, () => Promise.resolve(false), hourAgo);
    await d.store.create({ ...queuedRecord({ id: stuckId, vm, mode: 'repair', allow: [], source: 'alert', requestedAt: hourAgo.toISOString() }) });
    const next = alertFor(vm);
    const result = await processAlert(next, d);
    expect(result.decisions[0]).toMatchObject({ decision: 'accepted', remediationId: remediationIdFor(next.alertId, vm.key) });
    expect(d.dispatched).toHaveLength(1);
  });

  it('covers a missing record only within the grace after the stored admission time', async () => {
    const admissions: AdmissionStore = new TableAdmissionStore(table());
    const vm = vmRef('vm-table-missing');
    await admissions.admit(vm.key, randomUUID(), 'a1', () => Promise.resolve(false), new Date(NOW - 10_000));
    const d = deps({ admissions });
    expect((await processAlert(alertFor(vm), d)).decisions[0]).toMatchObject({ decision: 'deduplicated' });
    const later = deps({ admissions, now: () => new Date(NOW + MISSING_COVERS_MS) });
    expect((await processAlert(alertFor(vm), later)).decisions[0]).toMatchObject({ decision: 'accepted' });
  });
});
