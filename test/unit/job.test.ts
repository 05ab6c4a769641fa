import { describe, expect, it } from 'vitest';
import { RunIdSchema } from '../../src/contract/parameters.js';
import {
  parseJobMessage,
  parseRemediationRequest,
  relaxationExpiry,
  relaxationHours,
  restoreJob,
  restoreJobId,
  toJobMessage,
  type RemediateJob,
  type RestoreRequest,
} from '../../src/core/job.js';
import { parseVmResourceId } from '../../src/core/resource-id.js';

const VM = '/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm1';
const meta = { id: '11111111-2222-4333-8444-555555555555', source: 'manual' as const, now: new Date('2026-11-21T00:00:00Z') };
const ORIGINAL = '9a9b9c9d-8888-4777-8666-5555555555ee';

/** A remediation request's job (the test fails on a restore). */
function remediateJob(body: unknown): RemediateJob {
  const r = parseRemediationRequest(body, meta);
  if (!r.success) throw r.error;
  if (r.data.mode === 'restore') throw new Error('parsed as a restore');
  return r.data;
}

describe('parseRemediationRequest', () => {
  it('defaults to diagnose with no permissions', () => {
    const r = parseRemediationRequest({ vmResourceId: VM }, meta);
    expect(r.success && r.data).toMatchObject({ mode: 'diagnose', allow: [], source: 'manual', requestedAt: '2026-11-21T00:00:00.000Z' });
  });

  it.each([
    [{}, 'vmResourceId'],
    [{ vmResourceId: 42 }, 'vmResourceId'],
    [{ vmResourceId: VM, mode: 'fix-everything' }, 'mode'],
    [{ vmResourceId: VM, allow: ['disable-firewall'] }, 'allow.0'],
    [{ vmResourceId: VM, allow: 'disable-nla' }, 'allow'],
    [{ vmResourceId: VM, extra: true }, 'body'],
    [null, 'body'],
    [{ vmResourceId: 'not-an-id' }, 'vmResourceId'],
    [{ vmResourceId: `${VM}\u0007` }, 'vmResourceId'],
    [{ vmResourceId: VM.replace('/virtualMachines/', '/virtualMachineScaleSets/../virtualMachines/') }, 'vmResourceId'],
    [{ vmResourceId: VM.replace('vm1', 'vm1;calc') }, 'vmResourceId'],
    [{ vmResourceId: 'x'.repeat(1025) }, 'vmResourceId'],
    [{ vmResourceId: VM, reason: 'INC-1\nforged: log line' }, 'reason'],
    [{ vmResourceId: VM, reason: 'x'.repeat(257) }, 'reason'],
    [{ vmResourceId: VM, allow: ['disable-nla', 'disable-nla', 'disable-nla'] }, 'allow'],
  ])('names the offending field for %j', (body, field) => {
    const r = parseRemediationRequest(body, meta);
    expect(r.success).toBe(false);
    expect(!r.success && r.error.field).toBe(field);
  });

  it('round-trips through the queue message', () => {
    const job = remediateJob({ vmResourceId: VM, mode: 'repair', allow: ['disable-nla', 'disable-nla'], reason: 'INC-42', relaxForHours: 2 });
    expect(job.allow).toEqual(['disable-nla']);
    expect(job.relaxForHours).toBe(2);
    const back = parseJobMessage(JSON.parse(JSON.stringify(toJobMessage(job))));
    expect(back.success && back.data).toEqual(job);
  });

  it("carries an alert's evidence through the queue message, and refuses an unbounded one", () => {
    const alert = {
      alertId: '/subscriptions/s/providers/Microsoft.AlertsManagement/alerts/a1',
      rule: 'rdp-0x904',
      monitoringService: 'Log Alerts V2',
      firedAt: '2026-11-21T12:00:00Z',
      window: { start: '2026-11-21T11:45:00Z', end: '2026-11-21T12:00:00Z' },
      logs: [{ computer: 'WEB-A', count: 3, eventIds: [1057, 36870], lastSeen: '2026-11-21T11:58:00.000Z' }],
    };
    const job = { ...remediateJob({ vmResourceId: VM, mode: 'repair' }), source: 'alert' as const, alert };
    const back = parseJobMessage(JSON.parse(JSON.stringify(toJobMessage(job))));
    expect(back.success && back.data).toEqual(job);
    const many = { ...alert, logs: Array.from({ length: 9 }, () => alert.logs[0]) };
    expect(parseJobMessage({ ...toJobMessage(job), alert: many }).success).toBe(false);
    expect(parseJobMessage({ ...toJobMessage(job), alert: { ...alert, rule: 'bad\u0000rule' } }).success).toBe(false);
  });

  it('rejects a queue message with an unknown version or a non-GUID id', () => {
    const job = remediateJob({ vmResourceId: VM });
    expect(parseJobMessage({ ...toJobMessage(job), v: 2 }).success).toBe(false);
    expect(parseJobMessage({ ...toJobMessage(job), id: '../../etc' }).success).toBe(false);
  });

  it('applies the resource ID rules to a queue message too', () => {
    const job = remediateJob({ vmResourceId: VM });
    const message = toJobMessage(job);
    for (const vmResourceId of [`${VM}/`, VM.replace('vm1', '..'), VM.replace('vm1', 'vm%31'), `${VM}\u0000`]) {
      const back = parseJobMessage({ ...message, vmResourceId });
      expect(!back.success && back.error.field).toBe('vmResourceId');
    }
  });

  it('keeps zod messages that quote the input short', () => {
    const r = parseRemediationRequest({ vmResourceId: VM, ['k'.repeat(10_000)]: 1 }, meta);
    expect(!r.success && r.error.field).toBe('body');
    expect(!r.success && r.error.message.length).toBeLessThan(400);
  });
});

describe('restore requests', () => {
  it('are a restore of a remediation id, without a VM or permissions', () => {
    const r = parseRemediationRequest({ mode: 'restore', restoreOf: ORIGINAL, reason: 'INC-7' }, meta);
    expect(r).toEqual({
      success: true,
      data: { mode: 'restore', id: meta.id, restoreOf: ORIGINAL, source: 'manual', requestedAt: '2026-11-21T00:00:00.000Z', reason: 'INC-7' } satisfies RestoreRequest,
    });
  });

  it.each([
    [{ mode: 'restore' }, 'restoreOf'],
    [{ mode: 'restore', restoreOf: 'not-a-guid' }, 'restoreOf'],
    [{ mode: 'restore', restoreOf: ORIGINAL.toUpperCase() }, 'restoreOf'],
    [{ mode: 'restore', restoreOf: ORIGINAL, vmResourceId: VM }, 'vmResourceId'],
    [{ mode: 'restore', restoreOf: ORIGINAL, allow: ['disable-nla'] }, 'allow'],
    [{ mode: 'restore', restoreOf: ORIGINAL, allow: [] }, 'allow'],
    [{ mode: 'restore', restoreOf: ORIGINAL, relaxForHours: 2 }, 'relaxForHours'],
    [{ mode: 'restore', restoreOf: ORIGINAL, extra: 1 }, 'body'],
    [{ vmResourceId: VM, restoreOf: ORIGINAL }, 'body'],
    [{ vmResourceId: VM, mode: 'repair', restoreOf: ORIGINAL }, 'body'],
  ])('refuse %j, naming %s', (body, field) => {
    const r = parseRemediationRequest(body, meta);
    expect(!r.success && r.error.field).toBe(field);
  });

  it('become a restore job on the VM of the remediation they restore, and round-trip through the queue', () => {
    const r = parseRemediationRequest({ mode: 'restore', restoreOf: ORIGINAL }, meta);
    if (!r.success || r.data.mode !== 'restore') throw new Error('not a restore');
    const vm = parseVmResourceId(VM);
    if (!vm.success) throw vm.error;
    const job = restoreJob(r.data, vm.data);
    expect(job).toMatchObject({ mode: 'restore', restoreOf: ORIGINAL, vm: { id: VM } });
    expect('allow' in job).toBe(false);
    const message = toJobMessage(job);
    expect(message).toEqual({ v: 1, id: meta.id, vmResourceId: VM, mode: 'restore', restoreOf: ORIGINAL, source: 'manual', requestedAt: '2026-11-21T00:00:00.000Z' });
    expect(parseJobMessage(JSON.parse(JSON.stringify(message)))).toEqual({ success: true, data: job });
  });

  it('queue messages of a restore carry no permissions, and a remediation none to restore', () => {
    const job = remediateJob({ vmResourceId: VM, mode: 'repair' });
    const restore = { v: 1, id: meta.id, vmResourceId: VM, mode: 'restore', restoreOf: ORIGINAL, source: 'expiry', requestedAt: meta.now.toISOString() };
    expect(parseJobMessage({ ...restore, allow: ['disable-nla'] }).success).toBe(false);
    expect(parseJobMessage({ ...restore, restoreOf: '../x' }).success).toBe(false);
    expect(parseJobMessage({ ...toJobMessage(job), restoreOf: ORIGINAL }).success).toBe(false);
    expect(parseJobMessage(restore).success).toBe(true);
  });
});

describe('relaxForHours', () => {
  it('is taken by a repair, refused for a diagnose, and bounded to 1..168 whole hours', () => {
    expect(remediateJob({ vmResourceId: VM, mode: 'repair', relaxForHours: 1 }).relaxForHours).toBe(1);
    expect(remediateJob({ vmResourceId: VM, mode: 'repair' }).relaxForHours).toBeUndefined();
    for (const [body, field] of [
      [{ vmResourceId: VM, relaxForHours: 2 }, 'relaxForHours'],
      [{ vmResourceId: VM, mode: 'diagnose', relaxForHours: 2 }, 'relaxForHours'],
      [{ vmResourceId: VM, mode: 'repair', relaxForHours: 0 }, 'relaxForHours'],
      [{ vmResourceId: VM, mode: 'repair', relaxForHours: 169 }, 'relaxForHours'],
      [{ vmResourceId: VM, mode: 'repair', relaxForHours: 1.5 }, 'relaxForHours'],
      [{ vmResourceId: VM, mode: 'repair', relaxForHours: '2' }, 'relaxForHours'],
    ] as const) {
      const r = parseRemediationRequest(body, meta);
      expect(!r.success && r.error.field, JSON.stringify(body)).toBe(field);
    }
  });

  it('is capped by the deployment setting, which is the default', () => {
    expect(relaxationHours(undefined, 8)).toBe(8);
    expect(relaxationHours(2, 8)).toBe(2);
    expect(relaxationHours(24, 8)).toBe(8);
    expect(relaxationHours(168, 1)).toBe(1);
  });

  it('gives an expiry that sorts as text in time order', () => {
    expect(relaxationExpiry(new Date('2026-11-21T23:30:00Z'), 8)).toBe('2026-11-22T07:30:00.000Z');
    const times = [1, 2, 10, 100].map((h) => relaxationExpiry(meta.now, h));
    expect([...times].sort()).toEqual(times);
  });
});

describe('restoreJobId', () => {
  it('is a lower-case GUID (a RunId), the same for the same remediation and expiry', () => {
    const id = restoreJobId(ORIGINAL, '2026-11-21T08:00:00.000Z');
    expect(RunIdSchema.safeParse(id).success).toBe(true);
    expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(restoreJobId(ORIGINAL, '2026-11-21T08:00:00.000Z')).toBe(id);
  });

  it('differs for another remediation or another expiry', () => {
    const id = restoreJobId(ORIGINAL, '2026-11-21T08:00:00.000Z');
    expect(restoreJobId(meta.id, '2026-11-21T08:00:00.000Z')).not.toBe(id);
    expect(restoreJobId(ORIGINAL, '2026-11-21T09:00:00.000Z')).not.toBe(id);
    expect(restoreJobId(ORIGINAL, '2026-11-21T08:00:00.000Z')).not.toBe(ORIGINAL);
  });
});
