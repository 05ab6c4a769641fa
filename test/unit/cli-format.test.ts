/** The CLI's rendering of outcomes: restores, relaxation expiries, and the client-side hints. */
import { describe, expect, it } from 'vitest';
import { CLIENT_HINTS, describeOutcome, handshakeLabel } from '../../src/cli/format.js';
import { diagnose } from '../../src/core/diagnose.js';
import type { Outcome, RemediationRecord } from '../../src/core/outcome.js';
import { healthyFacts, NOW, RELAXED, resetHandshake, TEMPLATE_CERT_EXPIRED } from '../support/facts.js';

const ID = '0d5e6f70-8192-4a3b-9c4d-5e6f708192a3';
const record = (outcome: Outcome, extra: { readonly mode?: RemediationRecord['mode']; readonly restoreOf?: string } = {}): RemediationRecord => ({
  id: ID,
  vmResourceId: '/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm1',
  vmKey: 'k',
  source: 'cli',
  mode: 'repair',
  allow: [],
  requestedAt: NOW.toISOString(),
  updatedAt: NOW.toISOString(),
  state: 'completed',
  startedAt: NOW.toISOString(),
  completedAt: NOW.toISOString(),
  outcome,
  ...extra,
});

const evidence = { mode: 'repair' as const, findings: diagnose(TEMPLATE_CERT_EXPIRED(), NOW), plan: { actions: [], refused: [], unresolved: [] }, before: TEMPLATE_CERT_EXPIRED(), runCommands: 2, timings: { totalMs: 1500 } };
const change = {
  action: 'relax-security-layer',
  before: { securityLayer: 2, userAuthentication: 1 },
  after: { securityLayer: 0, userAuthentication: 0 },
  restore: { action: 'restore-rdp-security' as const, parameters: { RestoreSecurityLayer: '2' as const, RestoreUserAuthentication: '1' as const } },
  expiresAt: '2026-11-21T20:00:00.000Z',
};

describe('describeOutcome', () => {
  it('ends a not-fixed outcome with one line per client-side hint: VPN, client, host name vs IP, gateway', () => {
    const text = describeOutcome(record({ status: 'not-fixed', reason: 'still broken: cert-expired', remaining: ['cert-expired'], actions: [], after: null, securityChanges: [], backupDir: null, ...evidence }));
    const hints = text.split('\n').filter((l) => l.startsWith('  hint  '));
    expect(hints).toHaveLength(4);
    expect(hints.map((h) => h.slice(8))).toEqual([...CLIENT_HINTS]);
    expect(text).toMatch(/VPN[\s\S]*Bastion[\s\S]*mstsc[\s\S]*Windows App[\s\S]*CredSSP[\s\S]*IP[\s\S]*DNS[\s\S]*Gateway/);
    expect(text.split('\n').at(-5)).toContain('docs/client-side.md');
  });

  it('says until when a relaxation stands and how to restore it now', () => {
    const text = describeOutcome(record({ status: 'fixed', actions: [], after: RELAXED(), securityChanges: [change], backupDir: null, ...evidence }));
    expect(text).toContain(`SECURITY LOWERED by relax-security-layer until 2026-11-21T20:00:00.000Z, then reverted automatically; to restore now: rdp-remediator restore ${ID}`);
    expect(text).not.toContain('hint');
  });

  it('renders a restore: what it put back, or why it failed and that the relaxation stands again, with the hints', () => {
    const restored = describeOutcome(
      record({ status: 'restored', restoreParameters: change.restore.parameters, actions: [], after: healthyFacts(), securityChanges: [], backupDir: null, ...evidence, mode: 'restore' }, { mode: 'restore', restoreOf: 'e1e2e3e4-0000-4000-8000-000000000001' }),
    );
    expect(restored).toMatch(/^outcome: RESTORED/);
    expect(restored).toContain('restore of: e1e2e3e4-0000-4000-8000-000000000001');
    expect(restored).toContain('restored: SecurityLayer=2 UserAuthentication=1');
    expect(restored).not.toContain('hint');
    const failed = describeOutcome(
      record(
        { status: 'restore-failed', reason: 'the restore would lock RDP out: blocking: cert-expired', lockedOut: true, remaining: ['cert-expired'], restoreParameters: change.restore.parameters, actions: [], after: RELAXED(), securityChanges: [change], backupDir: null, ...evidence, mode: 'restore' },
        { mode: 'restore', restoreOf: 'e1e2e3e4-0000-4000-8000-000000000001' },
      ),
    );
    expect(failed).toMatch(/^outcome: RESTORE-FAILED/);
    expect(failed).toContain('reason: the restore would lock RDP out');
    expect(failed).toContain('SECURITY LOWERED by relax-security-layer until 2026-11-21T20:00:00.000Z');
    expect(failed.split('\n').filter((l) => l.startsWith('  hint  '))).toHaveLength(4);
  });
});

describe('handshakeLabel', () => {
  it('says in a few characters what the loopback handshake showed', () => {
    expect(handshakeLabel(healthyFacts(), NOW)).toBe('TLS ok (RD cert)');
    expect(handshakeLabel({ ...healthyFacts(), handshake: { attempts: [resetHandshake()] } }, NOW)).toBe('reset in TLS');
    expect(handshakeLabel({ ...healthyFacts(), handshake: { attempts: [{ ...resetHandshake(), stage: 'negotiate', error: 'negotiation-failure', failureCode: 3 }] } }, NOW)).toBe('neg. failure 3');
    expect(handshakeLabel({ ...healthyFacts(), handshake: null }, NOW)).toBe('not run');
    expect(handshakeLabel(null, NOW)).toBe('-');
  });
});
