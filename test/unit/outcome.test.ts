import { describe, expect, it } from 'vitest';
import type { FixResult } from '../../src/contract/results.js';
import { diagnose } from '../../src/core/diagnose.js';
import {
  exitCodeFor,
  judgeFix,
  judgeRestoreRun,
  relaxationActionsOf,
  restoreLockout,
  restoreOutcome,
  restoreParametersOf,
  type RecordedChange,
} from '../../src/core/outcome.js';
import { planRemediation } from '../../src/core/planner.js';
import { factsWith, healthyFacts, NOW, RELAXED, resetHandshake, ROOT_CAUSES, TEMPLATE_CERT_EXPIRED } from '../support/facts.js';

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

  it('is not fixed when the handshake still fails after the fix, though the settings look right', () => {
    const o = judgeFix(evidenceFor(), fix({ verify: { ...healthyFacts(), handshake: { attempts: [resetHandshake()] } } }), NOW);
    expect(o).toMatchObject({ status: 'not-fixed', remaining: ['rdp-handshake-failed'] });
  });

  it('is not fixed when the probe ran the handshake before but the re-read could not run it', () => {
    const o = judgeFix(evidenceFor(), fix({ verify: { ...healthyFacts(), handshake: null } }), NOW);
    expect(o.status).toBe('not-fixed');
    expect(o.status === 'not-fixed' && o.reason).toContain('handshake could not be run after the changes');
    // Where the probe could not run it either, the settings alone decide (an older payload, a check that failed).
    const before = { ...ROOT_CAUSES['key-file-acl'](), handshake: null };
    expect(judgeFix(evidenceFor(before), fix({ verify: { ...healthyFacts(), handshake: null } }), NOW).status).toBe('fixed');
  });

  it('is not fixed when an action failed, even if the facts look fine', () => {
    const o = judgeFix(evidenceFor(), fix({ actions: [action({ verified: false, error: { code: 'exception', message: 'access denied' } })] }), NOW);
    expect(o.status === 'not-fixed' && o.reason).toContain('repair-key-acl: exception access denied');
  });

  it('records security-lowering changes with their restore and when they are reverted', () => {
    const restore = { action: 'restore-rdp-security' as const, parameters: { RestoreUserAuthentication: '1' as const } };
    const o = judgeFix(evidenceFor(ROOT_CAUSES['nla-dc-unreachable']()), fix({ actions: [action({ id: 'disable-nla', restore })] }), NOW, '2026-11-21T20:00:00.000Z');
    expect(o.status === 'fixed' && o.securityChanges).toEqual([{ action: 'disable-nla', before: action().before, after: action().after, restore, expiresAt: '2026-11-21T20:00:00.000Z' }]);
  });

  it('invents no expiry: the pipeline gives it, from when it posted the fix', () => {
    const restore = { action: 'restore-rdp-security' as const, parameters: { RestoreUserAuthentication: '1' as const } };
    const o = judgeFix(evidenceFor(ROOT_CAUSES['nla-dc-unreachable']()), fix({ actions: [action({ id: 'disable-nla', restore })] }), NOW);
    expect(o.status === 'fixed' && o.securityChanges).toEqual([{ action: 'disable-nla', before: action().before, after: action().after, restore }]);
  });

  it('maps statuses to CLI exit codes, zero only when RDP works and nothing is left to do', () => {
    expect(['fixed', 'healthy', 'restored', 'not-fixed', 'restore-failed', 'skipped', 'failed'].map((s) => exitCodeFor(s as never))).toEqual([0, 0, 0, 2, 2, 3, 1]);
  });
});

const relaxSecurityLayer: RecordedChange = {
  action: 'relax-security-layer',
  before: { securityLayer: 2, userAuthentication: 0 },
  after: { securityLayer: 0, userAuthentication: 0 },
  restore: { action: 'restore-rdp-security', parameters: { RestoreSecurityLayer: '2', RestoreUserAuthentication: '0' } },
};
const disableNla: RecordedChange = {
  action: 'disable-nla',
  before: { userAuthentication: 1 },
  after: { userAuthentication: 0 },
  restore: { action: 'restore-rdp-security', parameters: { RestoreUserAuthentication: '1' } },
};

describe('restoreParametersOf', () => {
  it('puts back each value as it was before the first change that touched it', () => {
    expect(restoreParametersOf([disableNla, relaxSecurityLayer])).toEqual({ RestoreSecurityLayer: '2', RestoreUserAuthentication: '1' });
    expect(restoreParametersOf([relaxSecurityLayer, disableNla])).toEqual({ RestoreSecurityLayer: '2', RestoreUserAuthentication: '0' });
  });

  it('sends only the values that were recorded', () => {
    expect(restoreParametersOf([disableNla])).toEqual({ RestoreUserAuthentication: '1' });
    expect(restoreParametersOf([])).toEqual({});
  });
});

describe('relaxationActionsOf', () => {
  it('applies the same relaxation again, in canonical order, then restarts TermService', () => {
    expect(relaxationActionsOf([relaxSecurityLayer, disableNla])).toEqual(['disable-nla', 'relax-security-layer', 'restart-rdp-services']);
    expect(relaxationActionsOf([disableNla, disableNla])).toEqual(['disable-nla', 'restart-rdp-services']);
  });

  it('never turns a recorded action that does not lower security into one', () => {
    expect(relaxationActionsOf([{ ...disableNla, action: 'restore-rdp-security' }, { ...disableNla, action: 'format-c' }])).toEqual(['restart-rdp-services']);
  });
});

describe('restoreLockout', () => {
  it('passes a restored VM whose handshake gets through TLS', () => {
    expect(restoreLockout(healthyFacts(), NOW)).toEqual({ lockedOut: false, why: [], remaining: [] });
  });

  it('locks out when no handshake attempt gets through', () => {
    const lockout = restoreLockout(factsWith({ handshake: { attempts: [resetHandshake()] } }), NOW);
    expect(lockout.lockedOut).toBe(true);
    expect(lockout.why.join(' ')).toContain('the loopback RDP handshake fails');
  });

  it('locks out on a finding on the TLS path, also before the probe reads the handshake', () => {
    const lockout = restoreLockout({ ...TEMPLATE_CERT_EXPIRED(), handshake: null }, NOW);
    expect(lockout).toMatchObject({ lockedOut: true, remaining: ['cert-expired'] });
    expect(lockout.why).toEqual(['blocking: cert-expired']);
  });

  it('locks out when NLA comes back without a domain controller to check credentials', () => {
    expect(restoreLockout(ROOT_CAUSES['nla-dc-unreachable'](), NOW)).toMatchObject({ lockedOut: true, remaining: ['nla-domain-unreachable'] });
  });

  it('locks out when the VM could not be re-read: it must not be left unreachable on a guess', () => {
    expect(restoreLockout(null, NOW).lockedOut).toBe(true);
  });

  it('does not count what the security layer does not change (the guest firewall)', () => {
    const blocked = factsWith({ firewall: { portAdmitted: false, rdpRules: [] } });
    const lockout = restoreLockout(blocked, NOW);
    expect(lockout.remaining.some((c) => c.startsWith('firewall-'))).toBe(true);
    expect(lockout.lockedOut).toBe(false);
  });

  it('accepts standard RDP security where SecurityLayer 0 was what the restore put back', () => {
    expect(restoreLockout(RELAXED({ rdp: { userAuthentication: 1 } }), NOW).lockedOut).toBe(false);
  });
});

const restoreAction = (over: Partial<FixResult['actions'][number]> = {}): FixResult['actions'][number] =>
  action({ id: 'restore-rdp-security', before: { securityLayer: 0, userAuthentication: 0 }, after: { securityLayer: 2, userAuthentication: 1 }, backup: 'C:\\ProgramData\\RdpRemediation\\r\\rdp-tcp.reg', ...over });
const restartAction = action({ id: 'restart-rdp-services', before: { TermService: 'Running' }, after: { TermService: 'Running' }, backup: null });

describe('judgeRestoreRun', () => {
  it('is restored when the actions verified and RDP works after them', () => {
    expect(judgeRestoreRun({ ok: true, error: null, actions: [restoreAction(), restartAction] }, healthyFacts(), NOW)).toEqual({ kind: 'restored' });
  });

  it('is locked out when RDP would not work, whatever the actions say', () => {
    const verdict = judgeRestoreRun({ ok: true, error: null, actions: [restoreAction(), restartAction] }, TEMPLATE_CERT_EXPIRED(), NOW);
    expect(verdict).toMatchObject({ kind: 'locked-out', remaining: ['cert-expired'] });
    expect(verdict.kind !== 'restored' && verdict.reason).toMatch(/^the restore would lock RDP out: the loopback RDP handshake fails: .*SSL_CERT_NOT_ON_SERVER; blocking: cert-expired$/);
  });

  it('is not restored when the restore did not take but RDP still works (the relaxation stays in force)', () => {
    const refused = restoreAction({ changed: false, verified: false, after: { securityLayer: 0, userAuthentication: 0 }, error: { code: 'gpo-enforced', message: 'Group Policy sets a value' } });
    const verdict = judgeRestoreRun({ ok: true, error: null, actions: [refused] }, RELAXED(), NOW);
    expect(verdict).toMatchObject({ kind: 'not-restored' });
    expect(verdict.kind !== 'restored' && verdict.reason).toContain('restore-rdp-security: gpo-enforced');
    expect(judgeRestoreRun({ ok: false, error: { code: 'no-manifest', message: 'no manifest' }, actions: [] }, RELAXED(), NOW)).toMatchObject({ kind: 'not-restored' });
  });
});

describe('restoreOutcome', () => {
  const evidence = { mode: 'restore' as const, findings: diagnose(RELAXED(), NOW), plan: { actions: [], refused: [], unresolved: [] }, before: RELAXED(), runCommands: 2, timings: { totalMs: 5 } };
  const parameters = { RestoreSecurityLayer: '2' as const, RestoreUserAuthentication: '1' as const };

  it('restored: the restore run, its re-read, no security change', () => {
    const o = restoreOutcome(evidence, { kind: 'restored' }, parameters, { restore: { actions: [restoreAction(), restartAction], verify: healthyFacts(), backupDir: 'C:\\b' } }, NOW);
    expect(o).toMatchObject({ status: 'restored', restoreParameters: parameters, securityChanges: [], backupDir: 'C:\\b', after: healthyFacts() });
  });

  it('restore-failed and locked out: both runs, and the re-relaxation with its own new expiry', () => {
    const relaxed = action({ id: 'relax-security-layer', before: { securityLayer: 2, userAuthentication: 1 }, after: { securityLayer: 0, userAuthentication: 0 }, restore: { action: 'restore-rdp-security', parameters } });
    const verdict = { kind: 'locked-out' as const, reason: 'the restore would lock RDP out: blocking: cert-expired', remaining: ['cert-expired' as const] };
    const o = restoreOutcome(
      evidence,
      verdict,
      parameters,
      { restore: { actions: [restoreAction(), restartAction], verify: TEMPLATE_CERT_EXPIRED(), backupDir: 'C:\\b' }, relax: { ok: true, error: null, actions: [relaxed, restartAction], verify: RELAXED(), backupDir: 'C:\\b', expiresAt: '2026-11-22T04:00:00.000Z' } },
      NOW,
    );
    if (o.status !== 'restore-failed') throw new Error(o.status);
    expect(o).toMatchObject({ lockedOut: true, remaining: ['cert-expired'], after: RELAXED() });
    expect(o.actions.map((a) => a.id)).toEqual(['restore-rdp-security', 'restart-rdp-services', 'relax-security-layer', 'restart-rdp-services']);
    expect(o.securityChanges).toEqual([{ action: 'relax-security-layer', before: relaxed.before, after: relaxed.after, restore: relaxed.restore, expiresAt: '2026-11-22T04:00:00.000Z' }]);
    expect(o.reason).toBe('the restore would lock RDP out: blocking: cert-expired; the relaxation was applied again (relax-security-layer, restart-rdp-services), reverted next at 2026-11-22T04:00:00.000Z');
  });

  it('restore-failed without a re-relaxation: the relaxation in force stays the one restored', () => {
    const o = restoreOutcome(evidence, { kind: 'not-restored', reason: 'the restore did not take: x', remaining: [] }, parameters, { restore: { actions: [], verify: RELAXED(), backupDir: null } }, NOW);
    expect(o).toMatchObject({ status: 'restore-failed', lockedOut: false, securityChanges: [], reason: 'the restore did not take: x' });
  });
});
