import { describe, expect, it } from 'vitest';
import type { FixResult } from '../../src/contract/results.js';
import { diagnose } from '../../src/core/diagnose.js';
import { exitCodeFor, judgeFix } from '../../src/core/outcome.js';
import { planRemediation } from '../../src/core/planner.js';
import { healthyFacts, NOW, ROOT_CAUSES } from '../support/facts.js';

function evidenceFor(facts = ROOT_CAUSES['key-file-acl']()) {
  const findings = diagnose(facts, NOW);
  return { mode: 'repair' as const, findings, plan: planRemediation(findings, facts, []), before: facts, runCommands: 2, timings: { totalMs: 10 } };
}

const action = (over: Partial<FixResult['actions'][number]> = {}): FixResult['actions'][number] => ({
  id: 'repair-key-acl',
  changed: true,
  before: { fileSddl: 'O:BAG:SYD:(A;;FA;;;SY)' },
  after: { fileSddl: 'O:BAG:SYD:(A;;FA;;;SY)(A;;FR;;;NS)' },
  backup: 'C:\\ProgramData\\RdpRemediation\\x\\machinekeys.acl',
  verified: true,
  error: null,
  ...over,
});

const fix = (over: Partial<FixResult> = {}): FixResult => ({
  kind: 'fix',
  v: 1,
  ok: true,
  runId: 'x',
  dryRun: false,
  backupDir: 'C:\\ProgramData\\RdpRemediation\\x',
  actions: [action()],
  verify: healthyFacts(),
  error: null,
  ...over,
});

describe('judgeFix', () => {
  it('is fixed when every action verified and nothing blocking remains', () => {
    expect(judgeFix(evidenceFor(), fix(), NOW)).toMatchObject({ status: 'fixed', securityChanges: [] });
  });

  it('is not fixed when the re-read facts still show the fault, naming it', () => {
    const o = judgeFix(evidenceFor(), fix({ verify: ROOT_CAUSES['key-file-acl']() }), NOW);
    expect(o).toMatchObject({ status: 'not-fixed', remaining: ['key-file-acl'] });
    expect(o.status === 'not-fixed' && o.reason).toContain('still broken: key-file-acl');
  });

  it('is not fixed when an action failed, even if the facts look fine', () => {
    const o = judgeFix(evidenceFor(), fix({ actions: [action({ verified: false, error: { code: 'exception', message: 'access denied' } })] }), NOW);
    expect(o.status === 'not-fixed' && o.reason).toContain('repair-key-acl: exception access denied');
  });

  it('records security-lowering changes with their restore', () => {
    const restore = { action: 'restore-rdp-security' as const, parameters: { RestoreUserAuthentication: '1' as const } };
    const o = judgeFix(evidenceFor(ROOT_CAUSES['nla-dc-unreachable']()), fix({ actions: [action({ id: 'disable-nla', restore })] }), NOW);
    expect(o.status === 'fixed' && o.securityChanges).toEqual([{ action: 'disable-nla', before: action().before, after: action().after, restore }]);
  });

  it('maps statuses to CLI exit codes, zero only when RDP works', () => {
    expect(['fixed', 'healthy', 'not-fixed', 'skipped', 'failed'].map((s) => exitCodeFor(s as never))).toEqual([0, 0, 2, 3, 1]);
  });
});
