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
  it('shows help', () => {
    expect(parseArgs([])).toEqual({ success: true, data: { command: 'help' } });
  });
});
