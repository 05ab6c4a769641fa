import { describe, expect, it } from 'vitest';
import { resolvePolicy, TAG_ALLOW, TAG_MODE } from '../../src/core/policy.js';

describe('resolvePolicy', () => {
  it('uses the deployment default when the VM has no tag, and never widens the request', () => {
    expect(resolvePolicy({ defaultMode: 'repair' }, {}, { mode: 'diagnose', allow: [] }).mode).toBe('diagnose');
    expect(resolvePolicy({ defaultMode: 'diagnose' }, {}, { mode: 'repair', allow: [] })).toMatchObject({ mode: 'diagnose', vmModeSource: 'default' });
    expect(resolvePolicy({ defaultMode: 'off' }, {}, { mode: 'repair', allow: [] }).mode).toBe('off');
  });

  it('lets a tag set the VM mode either way, case-insensitively', () => {
    expect(resolvePolicy({ defaultMode: 'diagnose' }, { 'RDP-Remediator-Mode': 'Repair' }, { mode: 'repair', allow: [] })).toMatchObject({ mode: 'repair', vmModeSource: 'tag' });
    expect(resolvePolicy({ defaultMode: 'repair' }, { [TAG_MODE]: 'off' }, { mode: 'repair', allow: [] }).mode).toBe('off');
  });

  it('treats an unreadable mode tag as off and reports it', () => {
    const p = resolvePolicy({ defaultMode: 'repair' }, { [TAG_MODE]: 'yes please' }, { mode: 'repair', allow: [] });
    expect(p.mode).toBe('off');
    expect(p.ignoredTags).toEqual([`${TAG_MODE}=yes please`]);
  });

  it('grants security-lowering permissions only from the request or the allow tag', () => {
    expect(resolvePolicy({ defaultMode: 'repair' }, {}, { mode: 'repair', allow: [] }).permissions).toEqual([]);
    expect(resolvePolicy({ defaultMode: 'repair' }, {}, { mode: 'repair', allow: ['disable-nla'] }).permissions).toEqual(['disable-nla']);
    const p = resolvePolicy({ defaultMode: 'repair' }, { [TAG_ALLOW]: 'relax-security-layer, bogus' }, { mode: 'repair', allow: ['disable-nla'] });
    expect(p.permissions).toEqual(['relax-security-layer', 'disable-nla']);
    expect(p.ignoredTags).toEqual([`${TAG_ALLOW}=bogus`]);
  });
});
