/**
 * The relaxation sweep over the in-memory store (src/pipeline/relaxation-sweep.ts), and which
 * due entry a completed remediation leaves behind (src/pipeline/restore.ts). The same against
 * Azurite, with the worker and the emulator, is test/e2e/relaxation.test.ts.
 */
import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { JobQueue } from '../../src/adapters/job-queue.js';
import { InMemoryRemediationStore, type RelaxationDue } from '../../src/adapters/remediation-store.js';
import { restoreJobId, type Job, type RestoreJob } from '../../src/core/job.js';
import type { Outcome } from '../../src/core/outcome.js';
import { parseVmResourceId } from '../../src/core/resource-id.js';
import { queuedRecord } from '../../src/pipeline/remediate.js';
import { sweepExpiredRelaxations } from '../../src/pipeline/relaxation-sweep.js';
import { relaxationDueAfter, RESTORE_RETRY_MS } from '../../src/pipeline/restore.js';

const VM = '/subscriptions/00000000-0000-0000-0000-0000000000d1/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm-relaxed';
const NOW = new Date('2026-11-21T12:00:00.000Z');

function capturingQueue(): JobQueue & { readonly sent: Job[] } {
  const sent: Job[] = [];
  return { sent, enqueue: (job) => (sent.push(job), Promise.resolve()) };
}

const due = (dueAt: string, remediationId = randomUUID()): RelaxationDue => ({ dueAt, remediationId, vmResourceId: VM });

describe('sweepExpiredRelaxations', () => {
  it('queues one restore per due entry, with the id derived from it, and removes the entry', async () => {
    const store = new InMemoryRemediationStore();
    const queue = capturingQueue();
    const a = due('2026-11-21T11:00:00.000Z');
    const b = due('2026-11-21T12:00:00.000Z');
    const later = due('2026-11-21T12:00:00.001Z');
    for (const e of [a, b, later]) await store.addRelaxationDue(e);
    const result = await sweepExpiredRelaxations({ store, queue, now: () => NOW });
    expect(result.due).toBe(2);
    expect(queue.sent.map((j) => j.id)).toEqual([restoreJobId(a.remediationId, a.dueAt), restoreJobId(b.remediationId, b.dueAt)]);
    expect(queue.sent[0]).toMatchObject({ mode: 'restore', restoreOf: a.remediationId, source: 'expiry', vm: { id: VM } });
    expect((await store.get(queue.sent[0]?.id ?? ''))?.state).toBe('queued');
    expect(await store.listRelaxationsDue(new Date('2027-01-01T00:00:00.000Z'))).toEqual([later]);
    // The next tick finds nothing more.
    expect((await sweepExpiredRelaxations({ store, queue, now: () => NOW })).due).toBe(0);
    expect(queue.sent).toHaveLength(2);
  });

  it('a crash between queueing and removing the entry: the next tick asks for the same restore, never another', async () => {
    const store = new InMemoryRemediationStore();
    const queue = capturingQueue();
    const entry = due('2026-11-21T11:00:00.000Z');
    await store.addRelaxationDue(entry);
    const remove = store.removeRelaxationDue.bind(store);
    store.removeRelaxationDue = () => Promise.reject(new Error('the process died (injected)'));
    const first = await sweepExpiredRelaxations({ store, queue, now: () => NOW });
    expect(first.decisions).toMatchObject([{ decision: 'error', error: 'the process died (injected)' }]);
    store.removeRelaxationDue = remove;
    const second = await sweepExpiredRelaxations({ store, queue, now: () => new Date(NOW.getTime() + 15 * 60_000) });
    expect(second.decisions).toMatchObject([{ decision: 'queued' }]);
    // Two messages for one restore (the worker absorbs the second), one record.
    expect(new Set(queue.sent.map((j) => j.id))).toEqual(new Set([restoreJobId(entry.remediationId, entry.dueAt)]));
    expect(queue.sent).toHaveLength(2);
    expect(await store.listRelaxationsDue(NOW)).toEqual([]);
  });

  it('queues nothing for a restore a delivery took already, and still removes the entry', async () => {
    const store = new InMemoryRemediationStore();
    const queue = capturingQueue();
    const entry = due('2026-11-21T11:00:00.000Z');
    await store.addRelaxationDue(entry);
    const vm = parseVmResourceId(VM);
    if (!vm.success) throw vm.error;
    const job: RestoreJob = { id: restoreJobId(entry.remediationId, entry.dueAt), vm: vm.data, mode: 'restore', restoreOf: entry.remediationId, source: 'expiry', requestedAt: NOW.toISOString() };
    const queued = queuedRecord(job);
    await store.create({ ...queued, state: 'running', startedAt: NOW.toISOString() });
    const result = await sweepExpiredRelaxations({ store, queue, now: () => NOW });
    expect(result.decisions).toMatchObject([{ decision: 'taken', state: 'running', restoreId: job.id }]);
    expect(queue.sent).toEqual([]);
    expect(await store.listRelaxationsDue(NOW)).toEqual([]);
  });

  it('reads the due entries with one query per tick', async () => {
    const store = new InMemoryRemediationStore();
    let queries = 0;
    const list = store.listRelaxationsDue.bind(store);
    store.listRelaxationsDue = (now) => (queries++, list(now));
    for (let i = 0; i < 5; i++) await store.addRelaxationDue(due(`2026-11-21T0${i}:00:00.000Z`));
    await sweepExpiredRelaxations({ store, queue: capturingQueue(), now: () => NOW });
    expect(queries).toBe(1);
  });
});

describe('relaxationDueAfter', () => {
  const vm = parseVmResourceId(VM);
  if (!vm.success) throw vm.error;
  const repair: Job = { id: randomUUID(), vm: vm.data, mode: 'repair', allow: ['relax-security-layer'], source: 'manual', requestedAt: NOW.toISOString() };
  const restore: RestoreJob = { id: randomUUID(), vm: vm.data, mode: 'restore', restoreOf: randomUUID(), source: 'expiry', requestedAt: NOW.toISOString() };
  const timings = { totalMs: 1 };
  const change = { action: 'relax-security-layer', before: {}, after: {}, restore: { action: 'restore-rdp-security' as const, parameters: {} }, expiresAt: '2026-11-21T20:00:00.000Z' };

  it('a relaxation: its own entry, due when its changes expire', () => {
    const fixed = { status: 'fixed', securityChanges: [change] } as unknown as Outcome;
    expect(relaxationDueAfter(repair, fixed)).toEqual({ dueAt: change.expiresAt, remediationId: repair.id, vmResourceId: VM });
    expect(relaxationDueAfter(repair, { status: 'fixed', securityChanges: [] } as unknown as Outcome)).toBeUndefined();
  });

  it('a restore that put the security back, or found it dealt with: none', () => {
    expect(relaxationDueAfter(restore, { status: 'restored', securityChanges: [] } as unknown as Outcome)).toBeUndefined();
    expect(relaxationDueAfter(restore, { status: 'skipped', reason: 'duplicate', detail: '', runCommands: 0, timings })).toBeUndefined();
    expect(relaxationDueAfter(restore, { status: 'failed', error: { kind: 'not-restorable', message: '' }, runCommands: 0, timings })).toBeUndefined();
  });

  it('a restore that re-applied the relaxation: its own entry; one that could not run: a retry of the original an hour on', () => {
    expect(relaxationDueAfter(restore, { status: 'restore-failed', securityChanges: [change] } as unknown as Outcome)).toMatchObject({ remediationId: restore.id, dueAt: change.expiresAt });
    const retry = { dueAt: new Date(NOW.getTime() + RESTORE_RETRY_MS).toISOString(), remediationId: restore.restoreOf, vmResourceId: VM };
    expect(relaxationDueAfter(restore, { status: 'skipped', reason: 'not-running', detail: '', runCommands: 0, timings })).toEqual(retry);
    expect(relaxationDueAfter(restore, { status: 'failed', error: { kind: 'busy', message: '' }, runCommands: 1, timings })).toEqual(retry);
    expect(relaxationDueAfter(restore, { status: 'restore-failed', securityChanges: [] } as unknown as Outcome)).toEqual(retry);
  });
});
