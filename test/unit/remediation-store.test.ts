/**
 * The audit store's create is idempotent and its saves can be conditional (src/adapters/remediation-store.ts),
 * in memory and in Table storage (Azurite), including the two ways the two-entity create used to
 * wedge a request: a create that wrote only the index, and a 201 lost on the way back that the
 * SDK's retry turned into 409 EntityAlreadyExists. Also intake's order (src/app/intake.ts): a
 * job that cannot be queued leaves no record behind.
 *
 * Regression tests, each failing on the code before issue 9: "half-success", "lost 201", "the
 * worker wrote it first" (create threw 409), and "leaves nothing queued" (intake recorded first).
 */
import { randomUUID } from 'node:crypto';
import { TableClient } from '@azure/data-tables';
import { RestError, type PipelinePolicy } from '@azure/core-rest-pipeline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InMemoryRemediationStore, TableRemediationStore, type RemediationStore } from '../../src/adapters/remediation-store.js';
import { submitRemediation } from '../../src/app/intake.js';
import { createServices } from '../../src/app/services.js';
import type { Job, RestoreJob } from '../../src/core/job.js';
import type { RemediationRecord } from '../../src/core/outcome.js';
import { parseVmResourceId } from '../../src/core/resource-id.js';
import { queuedRecord } from '../../src/pipeline/remediate.js';
import { startAzurite, type Azurite } from '../../demo/azurite.js';

const vmId = (name: string) => `/subscriptions/00000000-0000-0000-0000-0000000000aa/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/${name}`;

function job(name = `vm-${randomUUID().slice(0, 8)}`, id = randomUUID()): Job {
  const vm = parseVmResourceId(vmId(name));
  if (!vm.success) throw new Error('bad test VM id');
  return { id, vm: vm.data, mode: 'repair', allow: [], source: 'manual', requestedAt: new Date().toISOString() };
}

function restore(of: string, id = randomUUID(), source: RestoreJob['source'] = 'manual'): RestoreJob {
  const { vm } = job('vm-restored');
  return { id, vm, mode: 'restore', restoreOf: of, source, requestedAt: new Date().toISOString() };
}

const running = (record: RemediationRecord): RemediationRecord => ({ ...record, state: 'running', startedAt: new Date().toISOString(), updatedAt: new Date().toISOString(), progress: { attempt: 1, phase: 'probing', runCommands: 1, fixRuns: 0 } });

/** What both stores must do. */
function storeContract(name: string, make: () => RemediationStore | Promise<RemediationStore>) {
  describe(`${name}: create is idempotent`, () => {
    it('a second create of the same request succeeds and returns what is stored', async () => {
      const store = await make();
      const record = queuedRecord(job());
      const first = await store.create(record);
      const second = await store.create(record);
      expect(second.record).toEqual(record);
      expect(second.version).toBe(first.version);
      expect(await store.get(record.id)).toEqual(record);
    });

    it('the worker wrote it first: create returns the running record and does not overwrite it', async () => {
      const store = await make();
      const record = queuedRecord(job());
      await store.create(running(record));
      const again = await store.create(record);
      expect(again.record.state).toBe('running');
      expect((await store.get(record.id))?.state).toBe('running');
    });

    it('the same id for another VM is a conflict', async () => {
      const store = await make();
      const id = randomUUID();
      await store.create(queuedRecord(job('vm-a', id)));
      await expect(store.create(queuedRecord(job('vm-b', id)))).rejects.toMatchObject({ name: 'RecordConflictError' });
    });

    it('a restore is the same request when it restores the same remediation, whoever asked', async () => {
      const store = await make();
      const of = randomUUID();
      const first = restore(of, randomUUID(), 'manual');
      await store.create(queuedRecord(first));
      expect((await store.create(queuedRecord({ ...first, source: 'expiry' }))).record.source).toBe('manual');
      await expect(store.create(queuedRecord({ ...first, restoreOf: randomUUID() }))).rejects.toMatchObject({ name: 'RecordConflictError' });
    });
  });

  describe(`${name}: relaxations due`, () => {
    const entry = (dueAt: string, remediationId = randomUUID()) => ({ dueAt, remediationId, vmResourceId: vmId('vm-relaxed') });

    it('lists what is due at a time, earliest first, up to and including that time', async () => {
      const store = await make();
      const later = entry('2026-11-21T14:00:00.000Z');
      const now = entry('2026-11-21T12:00:00.000Z');
      const earlier = entry('2026-11-21T08:00:00.000Z');
      for (const e of [later, now, earlier]) await store.addRelaxationDue(e);
      expect(await store.listRelaxationsDue(new Date('2026-11-21T12:00:00.000Z'))).toEqual([earlier, now]);
      expect(await store.listRelaxationsDue(new Date('2026-11-21T07:59:59.999Z'))).toEqual([]);
      expect(await store.listRelaxationsDue(new Date('2026-11-22T00:00:00.000Z'))).toEqual([earlier, now, later]);
    });

    it('adds idempotently, and removes once (a second remove is no error)', async () => {
      const store = await make();
      const e = entry('2026-11-21T08:00:00.000Z');
      await store.addRelaxationDue(e);
      await store.addRelaxationDue(e);
      expect(await store.listRelaxationsDue(new Date('2026-11-22T00:00:00.000Z'))).toEqual([e]);
      await store.removeRelaxationDue(e);
      await store.removeRelaxationDue(e);
      expect(await store.listRelaxationsDue(new Date('2026-11-22T00:00:00.000Z'))).toEqual([]);
    });

    it('keeps two entries of one remediation apart (a retry beside the first expiry)', async () => {
      const store = await make();
      const id = randomUUID();
      await store.addRelaxationDue(entry('2026-11-21T08:00:00.000Z', id));
      await store.addRelaxationDue(entry('2026-11-21T09:00:00.000Z', id));
      expect((await store.listRelaxationsDue(new Date('2026-11-22T00:00:00.000Z'))).map((e) => e.dueAt)).toEqual(['2026-11-21T08:00:00.000Z', '2026-11-21T09:00:00.000Z']);
    });
  });

  describe(`${name}: conditional saves`, () => {
    it('saves at the version read, refuses a stale one', async () => {
      const store = await make();
      const record = queuedRecord(job());
      const created = await store.create(record);
      const v2 = await store.save(running(record), { ifVersion: created.version });
      await expect(store.save(running(record), { ifVersion: created.version })).rejects.toMatchObject({ name: 'RecordVersionConflictError' });
      const read = await store.read(record.id);
      expect(read?.version).toBe(v2);
      expect(read?.record.state).toBe('running');
    });

    it('a counted duplicate moves the version but keeps the record, and survives saves', async () => {
      const store = await make();
      const record = queuedRecord(job());
      const created = await store.create(record);
      await store.addDuplicate(record.id);
      const read = await store.read(record.id);
      expect(read?.version).not.toBe(created.version);
      expect(read?.record.duplicates).toBe(1);
      await store.save(running(record), { ifVersion: read?.version ?? '' });
      expect((await store.get(record.id))?.duplicates).toBe(1);
    });
  });
}

storeContract('in memory', () => new InMemoryRemediationStore());

let azurite: Azurite | undefined;
beforeAll(async () => {
  azurite = await startAzurite();
}, 60_000);
afterAll(async () => {
  await azurite?.stop();
});

/**
 * A Table client whose next matching POST reaches the service, and then loses the answer: the
 * SDK's retry policy sends it again (as it does after a reset connection) and gets 409.
 * `fail` instead makes the matching POST fail outright with a 500 that is not retried.
 */
function faultyTable(name: string) {
  const faults: { match: (body: string) => boolean; kind: 'lose-response' | 'fail' }[] = [];
  const policy: PipelinePolicy = {
    name: 'test-faults',
    async sendRequest(request, next) {
      const body = typeof request.body === 'string' ? request.body : '';
      const at = request.method === 'POST' ? faults.findIndex((f) => f.match(body)) : -1;
      const fault = at >= 0 ? faults.splice(at, 1)[0] : undefined;
      if (fault?.kind === 'fail') throw new RestError('injected: the service failed', { statusCode: 400, request });
      const response = await next(request);
      if (fault?.kind === 'lose-response') throw new RestError('socket hang up (injected: the 201 was lost)', { code: 'ECONNRESET', request });
      return response;
    },
  };
  if (!azurite) throw new Error('no Azurite');
  const table = TableClient.fromConnectionString(azurite.connectionString, name, {
    allowInsecureConnection: true,
    additionalPolicies: [{ policy, position: 'perRetry' }],
    retryOptions: { maxRetries: 3, retryDelayInMs: 10, maxRetryDelayInMs: 50 },
  });
  return { store: new TableRemediationStore(table), table, faults };
}

const tableName = () => `t${randomUUID().replace(/-/g, '').slice(0, 20)}`;

storeContract('Table storage', () => faultyTable(tableName()).store);

describe('Table storage: the two-entity create cannot wedge a request', () => {
  it('lost 201 on the record entity: the SDK retries into 409, and create still succeeds', async () => {
    const { store, faults } = faultyTable(tableName());
    const record = queuedRecord(job());
    faults.push({ match: (body) => body.includes('"record"'), kind: 'lose-response' });
    const created = await store.create(record);
    expect(faults).toEqual([]); // the fault fired
    expect(created.record).toEqual(record);
    expect(await store.get(record.id)).toEqual(record);
  });

  it('lost 201 on the index entity: create still succeeds', async () => {
    const { store, faults } = faultyTable(tableName());
    const record = queuedRecord(job());
    faults.push({ match: (body) => body.includes('"vmPartition"'), kind: 'lose-response' });
    await store.create(record);
    expect(faults).toEqual([]);
    expect(await store.get(record.id)).toEqual(record);
  });

  it('half-success (index written, record write failed): the retried create completes it', async () => {
    const { store, faults } = faultyTable(tableName());
    const record = queuedRecord(job());
    faults.push({ match: (body) => body.includes('"record"'), kind: 'fail' });
    await expect(store.create(record)).rejects.toThrow(/injected/);
    expect(await store.get(record.id)).toBeUndefined();
    await store.create(record);
    expect(await store.get(record.id)).toEqual(record);
  });
});

describe('intake: the job is queued before anything is recorded', () => {
  it('leaves nothing queued when the enqueue fails, and answers with a dependency error (503)', async () => {
    const base = createServices({ env: {}, allowInMemory: true });
    const store = new InMemoryRemediationStore();
    const queue = { enqueue: () => Promise.reject(new RestError('queue unavailable (injected)', { statusCode: 503 })) };
    const vm = vmId(`vm-${randomUUID().slice(0, 8)}`);
    const submitted = submitRemediation({ vmResourceId: vm, mode: 'repair' }, { ...base, store, queue });
    await expect(submitted).rejects.toMatchObject({ name: 'DependencyError', dependency: 'remediation-queue', statusCode: 503 });
    const key = parseVmResourceId(vm);
    expect(key.success && (await store.listByVm(key.data.key))).toEqual([]);
  });

  it('accepts a queued job whose record could not be written: the worker writes it', async () => {
    const base = createServices({ env: {}, allowInMemory: true });
    const sent: Job[] = [];
    const store = new InMemoryRemediationStore();
    store.create = () => Promise.reject(new Error('table down (injected)'));
    const result = await submitRemediation({ vmResourceId: vmId('vm-x'), mode: 'repair' }, { ...base, store, queue: { enqueue: (j: Job) => (sent.push(j), Promise.resolve()) } });
    expect(result).toMatchObject({ kind: 'accepted', recorded: false });
    expect(sent).toHaveLength(1);
  });
});
