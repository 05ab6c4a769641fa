/**
 * The rules diagnose() adds on top of the settings the probe reads: the loopback handshake as
 * evidence (and as a finding of its own when nothing else explains a failure), the guest
 * firewall, and the System-log events attached to the findings they name.
 */
import { describe, expect, it } from 'vitest';
import type { EventEvidence, HandshakeAttempt, ProbeFacts } from '../../src/contract/facts.js';
import { blockingFindings, describeHandshake, diagnose, handshakeSucceeded, handshakeVerdict } from '../../src/core/diagnose.js';
import { planRemediation } from '../../src/core/planner.js';
import { CA_BOUND, factsWith, healthyFacts, NOW, okHandshake, resetHandshake, ROOT_CAUSES } from '../support/facts.js';

const codes = (facts: ProbeFacts) => diagnose(facts, NOW).map((f) => `${f.code}:${f.severity}`);
const blockingCodes = (facts: ProbeFacts) => blockingFindings(diagnose(facts, NOW)).map((f) => f.code);
const plannedIds = (facts: ProbeFacts) => planRemediation(diagnose(facts, NOW), facts, []).actions.map((a) => a.id);

function withHandshake(facts: ProbeFacts, ...attempts: HandshakeAttempt[]): ProbeFacts {
  return { ...facts, handshake: { attempts } };
}

describe('the loopback handshake verdict', () => {
  it('is tls when TLS completed with the certificate RDP is configured to serve', () => {
    expect(handshakeVerdict(healthyFacts(), NOW).kind).toBe('tls');
    expect(handshakeVerdict(CA_BOUND(), NOW).kind).toBe('tls');
  });

  it('is wrong-certificate when another certificate is served than the configured one', () => {
    const served = withHandshake(CA_BOUND(), { ...okHandshake(), servedCert: 'remote-desktop' });
    const verdict = handshakeVerdict(served, NOW);
    expect(verdict).toMatchObject({ kind: 'wrong-certificate', expected: 'binding' });
    expect(handshakeSucceeded(verdict)).toBe(false);
  });

  it('is rdp-security when the listener refuses TLS (SSL_NOT_ALLOWED_BY_SERVER, SecurityLayer 0)', () => {
    const facts = withHandshake(factsWith({ rdp: { securityLayer: 0 } }), { ...resetHandshake(), stage: 'negotiate', error: 'negotiation-failure', failureCode: 2, detail: null });
    const verdict = handshakeVerdict(facts, NOW);
    expect(verdict.kind).toBe('rdp-security');
    expect(handshakeSucceeded(verdict)).toBe(true);
  });

  it('takes the best attempt: a listener bound to one adapter refuses loopback and accepts on its address', () => {
    const refused = { ...resetHandshake(), stage: 'connect' as const, error: 'refused' as const, selectedProtocol: null, ms: { connect: 1, negotiate: null, tls: null } };
    const facts = withHandshake(factsWith({ rdp: { lanAdapter: 1 } }), refused, { ...okHandshake(), address: '10.0.0.4' });
    expect(handshakeVerdict(facts, NOW)).toMatchObject({ kind: 'tls', attempt: { address: '10.0.0.4' } });
    expect(blockingCodes(facts)).toEqual([]);
  });

  it('is not-run when the probe could not run the check, and then judges by the settings alone', () => {
    const facts = { ...healthyFacts(), handshake: null };
    expect(handshakeVerdict(facts, NOW).kind).toBe('not-run');
    expect(blockingCodes(facts)).toEqual([]);
  });

  it('names the negotiation failure code and where a handshake stopped', () => {
    expect(describeHandshake({ ...resetHandshake(), stage: 'negotiate', error: 'negotiation-failure', failureCode: 3 })).toContain('SSL_CERT_NOT_ON_SERVER');
    expect(describeHandshake(resetHandshake())).toMatch(/^127\.0\.0\.1:3389 reset at tls/);
    expect(describeHandshake(okHandshake())).toContain('TLS Tls12');
  });
});

describe('rdp-handshake-failed', () => {
  it('is blocking when the handshake fails and no setting the probe reads explains it, and plans a restart', () => {
    const facts = withHandshake(healthyFacts(), resetHandshake());
    expect(blockingCodes(facts)).toEqual(['rdp-handshake-failed']);
    expect(plannedIds(facts)).toEqual(['restart-rdp-services']);
  });

  it('is blocking when the wrong certificate is served (TermService runs on what it loaded)', () => {
    const facts = withHandshake(CA_BOUND(), { ...okHandshake(), servedCert: 'remote-desktop' });
    const finding = diagnose(facts, NOW).find((f) => f.code === 'rdp-handshake-failed');
    expect(finding?.severity).toBe('blocking');
    expect(finding?.detail).toContain('not the bound certificate');
  });

  it('is not raised beside a finding that explains the failure', () => {
    const facts = withHandshake(ROOT_CAUSES['key-file-acl'](), resetHandshake());
    expect(blockingCodes(facts)).toEqual(['key-file-acl']);
  });

  it('is not raised for the firewall or the domain: loopback is not filtered, and NLA checks the domain after TLS', () => {
    const facts = withHandshake(ROOT_CAUSES['nla-dc-unreachable'](), resetHandshake());
    expect(blockingCodes(facts)).toEqual(['nla-domain-unreachable', 'rdp-handshake-failed']);
  });
});

describe('the guest firewall', () => {
  const rulesOff = (facts: ProbeFacts): ProbeFacts => ({
    ...facts,
    firewall: { ...facts.firewall, portAdmitted: false, rdpRules: facts.firewall.rdpRules.map((r) => ({ ...r, enabled: false })) },
  });

  it('finds the built-in Remote Desktop rules disabled for an active profile, and plans enabling them without a restart', () => {
    const facts = rulesOff(healthyFacts());
    expect(blockingCodes(facts)).toEqual(['firewall-rdp-rules-disabled']);
    expect(plannedIds(facts)).toEqual(['enable-rdp-firewall-rules']);
  });

  it('finds a custom port no rule admits', () => {
    const facts = factsWith({ rdp: { portNumber: 3390 }, firewall: { portAdmitted: false } });
    const finding = diagnose(facts, NOW).find((f) => f.code === 'firewall-port-closed');
    expect(finding).toMatchObject({ severity: 'blocking' });
    expect(finding?.detail).toContain('TCP 3390');
    expect(plannedIds(facts)).toEqual(['enable-rdp-firewall-rules']);
  });

  it('reports, and does not fight, a firewall Group Policy manages', () => {
    const facts = { ...rulesOff(healthyFacts()), firewall: { ...rulesOff(healthyFacts()).firewall, gpo: true } };
    const plan = planRemediation(diagnose(facts, NOW), facts, []);
    expect(plan.actions).toEqual([]);
    expect(plan.refused).toMatchObject([{ id: 'enable-rdp-firewall-rules', reason: 'gpo-enforced' }]);
  });

  it('is advisory only when another rule admits the port, and when the firewall cannot be read', () => {
    const other = { ...rulesOff(healthyFacts()), firewall: { ...rulesOff(healthyFacts()).firewall, portAdmitted: true } };
    expect(codes(other)).toEqual(['firewall-rdp-rules-disabled:advisory']);
    const unreadable = factsWith({ firewall: { readable: false, rdpRules: [], portAdmitted: true } });
    expect(codes(unreadable)).toEqual(['firewall-unreadable:advisory']);
  });

  it('restarts only for the settings that need it when the firewall and a certificate are both broken', () => {
    const facts = rulesOff(ROOT_CAUSES['expired-self-signed-cert']());
    const plan = planRemediation(diagnose(facts, NOW), facts, []);
    expect(plan.actions.map((a) => a.id)).toEqual(['enable-rdp-firewall-rules', 'regenerate-self-signed-cert', 'restart-rdp-services']);
    expect(plan.actions.find((a) => a.id === 'restart-rdp-services')?.because).toEqual(['cert-expired']);
  });
});

describe('event evidence', () => {
  const event = (source: EventEvidence['source'], id: number, text = 'text'): EventEvidence => ({ source, id, count: 3, last: '2026-11-21T11:00:00Z', text });

  it('attaches each event to the findings it names, and never raises a finding by itself', () => {
    const facts = { ...ROOT_CAUSES['key-file-acl'](), handshake: { attempts: [resetHandshake()] }, events: { hours: 72, items: [event('Schannel', 36870), event('RCM', 1058), event('TermDD', 56)] } };
    const findings = diagnose(facts, NOW);
    expect(findings.map((f) => f.code)).toEqual(['key-file-acl']);
    expect(findings[0]?.evidence?.map((e) => `${e.source}/${e.id}`)).toEqual(['Schannel/36870', 'RCM/1058']);
    const healthy = { ...healthyFacts(), events: { hours: 72, items: [event('Schannel', 36870)] } };
    expect(diagnose(healthy, NOW)).toEqual([]);
  });

  it('attaches TermDD 56 to the domain finding', () => {
    const facts = { ...ROOT_CAUSES['nla-dc-unreachable'](), events: { hours: 72, items: [event('TermDD', 56)] } };
    expect(diagnose(facts, NOW).find((f) => f.code === 'nla-domain-unreachable')?.evidence).toHaveLength(1);
  });
});
