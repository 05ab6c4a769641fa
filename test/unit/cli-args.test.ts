import { describe, expect, it } from 'vitest';
import { parseArgs } from '../../src/cli/args.js';

describe('parseArgs', () => {
  it('parses remediate with options in any order and either flag form', () => {
    expect(parseArgs(['remediate', '--mode=repair', '/sub/vm', '--allow', 'disable-nla,relax-security-layer', '--json'])).toEqual({
      success: true,
      data: { command: 'remediate', vmResourceId: '/sub/vm', mode: 'repair', allow: ['disable-nla', 'relax-security-layer'], json: true },
    });
  });
  it('defaults to diagnose', () => {
    expect(parseArgs(['remediate', '/x'])).toMatchObject({ success: true, data: { mode: 'diagnose', allow: [], json: false } });
  });
  it.each([
    [['frobnicate'], 'unknown command'],
    [['remediate'], 'needs a VM resource ID'],
    [['remediate', '/x', '--mode', 'yolo'], '--mode'],
    [['remediate', '/x', '--allow', 'everything'], 'unknown permission'],
    [['remediate', '/x', '--force'], 'unknown option'],
    [['remediate', '/x', '/y'], 'unexpected argument'],
  ])('rejects %j', (argv, message) => {
    const r = parseArgs(argv);
    expect(r.success).toBe(false);
    expect(!r.success && r.error).toContain(message);
  });
  it('parses restore with its remediation id, a reason and --json', () => {
    const id = '5b0c7d2e-1f3a-4b6c-8d9e-0a1b2c3d4e5f';
    expect(parseArgs(['restore', id, '--reason', 'INC-9', '--json'])).toEqual({ success: true, data: { command: 'restore', remediationId: id, reason: 'INC-9', json: true } });
    expect(parseArgs(['restore', '--reason=INC-9', id])).toEqual({ success: true, data: { command: 'restore', remediationId: id, reason: 'INC-9', json: false } });
  });
  it.each([
    [['restore'], 'needs the id'],
    [['restore', 'not-a-guid'], 'not a remediation id'],
    [['restore', '5B0C7D2E-1F3A-4B6C-8D9E-0A1B2C3D4E5F'], 'not a remediation id'],
    [['restore', '5b0c7d2e-1f3a-4b6c-8d9e-0a1b2c3d4e5f', '--allow', 'disable-nla'], 'unknown option'],
    [['restore', '5b0c7d2e-1f3a-4b6c-8d9e-0a1b2c3d4e5f', 'extra'], 'unexpected argument'],
    [['restore', '5b0c7d2e-1f3a-4b6c-8d9e-0a1b2c3d4e5f', '--reason'], '--reason needs'],
  ])('rejects %j', (argv, message) => {
    const r = parseArgs(argv);
    expect(!r.success && r.error).toContain(message);
  });
  it('takes --relax-hours for a repair only, in whole hours from 1 to 168', () => {
    expect(parseArgs(['remediate', '/x', '--mode', 'repair', '--relax-hours', '2'])).toMatchObject({ success: true, data: { relaxForHours: 2 } });
    expect(parseArgs(['remediate', '/x', '--mode=repair', '--relax-hours=168'])).toMatchObject({ success: true, data: { relaxForHours: 168 } });
    for (const argv of [['remediate', '/x', '--relax-hours', '2'], ['remediate', '/x', '--mode', 'repair', '--relax-hours', '0'], ['remediate', '/x', '--mode', 'repair', '--relax-hours', '1.5'], ['remediate', '/x', '--mode', 'repair', '--relax-hours', '169']]) {
      expect(parseArgs(argv).success, argv.join(' ')).toBe(false);
    }
  });
  it('shows help', () => {
    expect(parseArgs([])).toEqual({ success: true, data: { command: 'help' } });
  });
});
