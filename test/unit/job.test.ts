import { describe, expect, it } from 'vitest';
import { parseJobMessage, parseRemediationRequest, toJobMessage } from '../../src/core/job.js';

const VM = '/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm1';
const meta = { id: '11111111-2222-4333-8444-555555555555', source: 'manual' as const, now: new Date('2026-11-21T00:00:00Z') };

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
    const r = parseRemediationRequest({ vmResourceId: VM, mode: 'repair', allow: ['disable-nla', 'disable-nla'], reason: 'INC-42' }, meta);
    if (!r.success) throw r.error;
    expect(r.data.allow).toEqual(['disable-nla']);
    const back = parseJobMessage(JSON.parse(JSON.stringify(toJobMessage(r.data))));
    expect(back.success && back.data).toEqual(r.data);
  });

  it('rejects a queue message with an unknown version or a non-GUID id', () => {
    const r = parseRemediationRequest({ vmResourceId: VM }, meta);
    if (!r.success) throw r.error;
    expect(parseJobMessage({ ...toJobMessage(r.data), v: 2 }).success).toBe(false);
    expect(parseJobMessage({ ...toJobMessage(r.data), id: '../../etc' }).success).toBe(false);
  });

  it('applies the resource ID rules to a queue message too', () => {
    const r = parseRemediationRequest({ vmResourceId: VM }, meta);
    if (!r.success) throw r.error;
    const message = toJobMessage(r.data);
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
