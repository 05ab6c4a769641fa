/**
 * Facts → findings. Every rule that says "this VM's RDP is broken because …" lives here, as
 * a pure function of what the probe read (see docs/payload-contract.md for each fact).
 */
import { NEG_FAILURE, NEG_FAILURE_NAMES, RDP_PROTOCOL, type CertFact, type EventEvidence, type HandshakeAttempt, type ProbeFacts } from '../contract/facts.js';

export const FINDING_CODES = [
  'tls12-server-disabled',
  'machinekeys-folder-acl',
  'key-file-acl',
  'key-file-missing',
  'stale-cert-binding',
  'cert-missing',
  'cert-expired',
  'cert-no-private-key',
  'termservice-not-running',
  'rdp-not-listening',
  'nla-domain-unreachable',
  'security-layer-weakened',
  'rdp-disabled',
  'cert-store-misconfigured',
  'firewall-rdp-rules-disabled',
  'firewall-port-closed',
  'firewall-unreadable',
  'rdp-handshake-failed',
] as const;
export type FindingCode = (typeof FINDING_CODES)[number];

/** Blocking findings explain the failure and call for a fix; advisory ones are reported only. */
export type Severity = 'blocking' | 'advisory';

export interface Finding {
  readonly code: FindingCode;
  readonly severity: Severity;
  readonly detail: string;
  /** System-log events on the VM that name this cause (facts.events), newest first. */
  readonly evidence?: readonly EventEvidence[];
}

const blocking = (code: FindingCode, detail: string): Finding => ({ code, severity: 'blocking', detail });
const advisory = (code: FindingCode, detail: string): Finding => ({ code, severity: 'advisory', detail });

/**
 * Which findings each cause-naming event is evidence for (playbook section 4.1). Events are
 * evidence only: they never raise a finding or plan an action by themselves, since an event
 * says what went wrong once, not what the VM is like now.
 */
const EVENT_EVIDENCE: Readonly<Record<EventEvidence['source'], Readonly<Record<number, readonly FindingCode[]>>>> = {
  Schannel: {
    // Fatal error accessing the TLS server credential private key (0x8009030D).
    36870: ['key-file-acl', 'key-file-missing', 'machinekeys-folder-acl', 'cert-no-private-key', 'rdp-handshake-failed'],
    // Fatal error creating a TLS server credential: protocols disabled.
    36871: ['tls12-server-disabled', 'rdp-handshake-failed'],
    // No cipher suite in common with the client.
    36874: ['tls12-server-disabled', 'rdp-handshake-failed'],
    // No suitable default server credential.
    36886: ['cert-missing', 'cert-expired', 'cert-no-private-key', 'stale-cert-binding', 'rdp-handshake-failed'],
    // Fatal alert generated and sent.
    36888: ['tls12-server-disabled', 'rdp-handshake-failed'],
  },
  RCM: {
    1050: ['security-layer-weakened'],
    // Configured certificate not usable; the default is used.
    1051: ['stale-cert-binding'],
    // The configured certificate's private key is inaccessible.
    1055: ['stale-cert-binding', 'key-file-acl'],
    // Failed to create a new self-signed certificate ("Keyset does not exist").
    1057: ['key-file-missing', 'machinekeys-folder-acl', 'key-file-acl', 'cert-missing'],
    // Failed to replace the expired self-signed certificate ("Access is denied").
    1058: ['cert-expired', 'machinekeys-folder-acl', 'key-file-acl'],
    // The certificate hash in the configuration is invalid.
    1059: ['stale-cert-binding'],
    // The template certificate expired and cannot be replaced.
    1065: ['cert-expired'],
  },
  // Every unsuccessful logon when the LSA (the domain) cannot be contacted.
  TermDD: { 56: ['nla-domain-unreachable'] },
};

function withEvidence(findings: readonly Finding[], facts: ProbeFacts): Finding[] {
  const items = facts.events?.items ?? [];
  if (items.length === 0) return [...findings];
  return findings.map((f) => {
    const evidence = items.filter((e) => EVENT_EVIDENCE[e.source][e.id]?.includes(f.code) === true);
    return evidence.length > 0 ? { ...f, evidence } : f;
  });
}

// ---------------------------------------------------------------------------------------------
// The loopback handshake

/**
 * What the probe's loopback RDP handshake showed:
 * - `tls`: TLS completed, with the certificate RDP is configured to serve;
 * - `rdp-security`: the listener speaks standard RDP security only (SecurityLayer 0): reachable, without TLS;
 * - `wrong-certificate`: TLS completed with another certificate than the configured one (TermService runs on what it loaded at its last start);
 * - `failed`: no attempt got through;
 * - `not-run`: the probe could not run the check (older payload, or the check itself failed).
 */
export type HandshakeVerdict =
  | { readonly kind: 'tls'; readonly attempt: HandshakeAttempt }
  | { readonly kind: 'rdp-security'; readonly attempt: HandshakeAttempt }
  | { readonly kind: 'wrong-certificate'; readonly attempt: HandshakeAttempt; readonly expected: 'binding' | 'remote-desktop' }
  | { readonly kind: 'failed'; readonly attempt: HandshakeAttempt }
  | { readonly kind: 'not-run' };

const RANK: Record<HandshakeVerdict['kind'], number> = { tls: 4, 'rdp-security': 3, 'wrong-certificate': 2, failed: 1, 'not-run': 0 };

/** The certificate a working listener serves: the custom binding when it is usable, else the Remote Desktop store's. */
export function expectedCertificate(facts: ProbeFacts, now: Date): 'binding' | 'remote-desktop' {
  return bindingState(facts, now) === 'healthy' ? 'binding' : 'remote-desktop';
}

function attemptVerdict(attempt: HandshakeAttempt, expected: 'binding' | 'remote-desktop'): HandshakeVerdict {
  if (attempt.stage === 'done') return attempt.servedCert === expected ? { kind: 'tls', attempt } : { kind: 'wrong-certificate', attempt, expected };
  const standardRdp =
    (attempt.error === 'negotiation-failure' && attempt.failureCode === NEG_FAILURE.sslNotAllowedByServer) ||
    (attempt.error === null && attempt.stage === 'negotiate' && attempt.selectedProtocol === RDP_PROTOCOL.rdp);
  return standardRdp ? { kind: 'rdp-security', attempt } : { kind: 'failed', attempt };
}

/** The best of the probe's attempts (loopback, and the adapter's address when the listener is bound to one). */
export function handshakeVerdict(facts: ProbeFacts, now: Date): HandshakeVerdict {
  const attempts = facts.handshake?.attempts ?? [];
  const expected = expectedCertificate(facts, now);
  let best: HandshakeVerdict = { kind: 'not-run' };
  for (const attempt of attempts) {
    const verdict = attemptVerdict(attempt, expected);
    if (RANK[verdict.kind] > RANK[best.kind]) best = verdict;
  }
  return best;
}

/** Whether a verdict means an RDP client gets past the security handshake. */
export function handshakeSucceeded(verdict: HandshakeVerdict): boolean {
  return verdict.kind === 'tls' || verdict.kind === 'rdp-security';
}

/** One line for people: where the handshake stopped and why. */
export function describeHandshake(attempt: HandshakeAttempt): string {
  const where = `${attempt.address}:${attempt.port}`;
  if (attempt.stage === 'done') return `${where} TLS ${attempt.tlsVersion ?? '?'} with ${attempt.cert?.thumb ?? 'no certificate'} (${attempt.servedCert ?? 'none'})`;
  if (attempt.error === 'negotiation-failure') {
    const code = attempt.failureCode ?? -1;
    return `${where} refused the negotiation: ${NEG_FAILURE_NAMES[code] ?? `failure code ${code}`}`;
  }
  const why = attempt.error ?? 'stopped';
  return `${where} ${why} at ${attempt.stage}${attempt.detail ? `: ${attempt.detail}` : ''}`;
}

/**
 * Blocking findings that explain a failed handshake by themselves (their fixes are what makes it
 * work again). The firewall does not filter loopback, and NLA's domain check comes after TLS.
 */
export const EXPLAINS_HANDSHAKE: ReadonlySet<FindingCode> = new Set([
  'tls12-server-disabled',
  'machinekeys-folder-acl',
  'key-file-acl',
  'key-file-missing',
  'stale-cert-binding',
  'cert-missing',
  'cert-expired',
  'cert-no-private-key',
  'termservice-not-running',
  'rdp-not-listening',
]);

function handshakeFinding(facts: ProbeFacts, now: Date, others: readonly Finding[]): Finding | null {
  const verdict = handshakeVerdict(facts, now);
  if (verdict.kind === 'not-run' || handshakeSucceeded(verdict)) return null;
  if (others.some((f) => f.severity === 'blocking' && EXPLAINS_HANDSHAKE.has(f.code))) return null;
  const detail =
    verdict.kind === 'wrong-certificate'
      ? `the listener serves ${verdict.attempt.cert?.thumb ?? '?'} (${verdict.attempt.servedCert ?? 'none'}), not the ${verdict.expected === 'binding' ? 'bound' : 'Remote Desktop'} certificate: TermService still runs on what it loaded at its last start`
      : `the loopback RDP handshake fails though no setting the probe reads explains it: ${describeHandshake(verdict.attempt)}`;
  return blocking('rdp-handshake-failed', detail);
}

// ---------------------------------------------------------------------------------------------
// The guest firewall

/** The built-in rule that admits RDP over TCP (language-neutral name). */
export const RDP_TCP_RULE = 'RemoteDesktop-UserMode-In-TCP';
const DEFAULT_RDP_PORT = 3389;

function firewallFindings(facts: ProbeFacts): Finding[] {
  const fw = facts.firewall;
  if (!fw.readable) return [advisory('firewall-unreadable', 'the Windows Firewall could not be read; whether it admits RDP is unknown')];
  const port = facts.rdp.portNumber;
  const tcpRule = fw.rdpRules.find((r) => r.name === RDP_TCP_RULE);
  const ruleOff = fw.enabledProfiles.filter((p) => tcpRule === undefined || !tcpRule.enabled || !tcpRule.profiles.includes(p));
  const profiles = fw.enabledProfiles.join(', ') || 'none';
  const gpo = fw.gpo ? ' (Group Policy manages the firewall)' : '';
  if (fw.portAdmitted) {
    return ruleOff.length > 0 && port === DEFAULT_RDP_PORT
      ? [advisory('firewall-rdp-rules-disabled', `the built-in Remote Desktop rule is off for ${ruleOff.join(', ')}, but another rule admits TCP ${port}`)]
      : [];
  }
  if (port === DEFAULT_RDP_PORT && ruleOff.length > 0) {
    return [blocking('firewall-rdp-rules-disabled', `the built-in Remote Desktop inbound rules are disabled for the active profile(s) ${ruleOff.join(', ')}: remote clients are dropped${gpo}`)];
  }
  return [blocking('firewall-port-closed', `no enabled inbound rule admits TCP ${port} for the active profile(s) ${profiles}${gpo}`)];
}

export function isUsable(cert: CertFact, now: Date): boolean {
  return cert.hasKey && Date.parse(cert.notAfter) > now.getTime();
}

/** Whether RDP is bound to a custom certificate, and whether that binding works. */
export type BindingState = 'none' | 'healthy' | 'stale';

export function bindingState(facts: ProbeFacts, now: Date): BindingState {
  const { hash, cert } = facts.cert.binding;
  if (hash === null) return 'none';
  return cert !== null && isUsable(cert, now) ? 'healthy' : 'stale';
}

function selfSignedPathFindings(facts: ProbeFacts, now: Date): Finding[] {
  const findings: Finding[] = [];
  const { store } = facts.cert;
  const usable = store.some((c) => isUsable(c, now));
  if (!usable) {
    if (store.length === 0) findings.push(blocking('cert-missing', 'no certificate in the Remote Desktop store'));
    else if (store.some((c) => Date.parse(c.notAfter) <= now.getTime()))
      findings.push(blocking('cert-expired', `Remote Desktop certificate ${store[0]?.thumb ?? ''} expired ${store[0]?.notAfter ?? ''}`));
    else findings.push(blocking('cert-no-private-key', 'the Remote Desktop certificate has no accessible private key'));
  }
  if (facts.keys.file === 'missing') {
    findings.push(blocking('key-file-missing', 'the RDP key file f686aace…_<MachineGuid> is missing from MachineKeys'));
  } else if (!facts.keys.fileOk) {
    findings.push(blocking('key-file-acl', `RDP key file ACL lacks SYSTEM full or NETWORK SERVICE read: ${facts.keys.fileSddl ?? 'unreadable'}`));
  }
  return findings;
}

/** Findings that only matter while RDP negotiates TLS (SecurityLayer 1 or 2). */
const TLS_PATH: ReadonlySet<FindingCode> = new Set([
  'tls12-server-disabled',
  'stale-cert-binding',
  'cert-missing',
  'cert-expired',
  'cert-no-private-key',
]);

export function diagnose(facts: ProbeFacts, now: Date): Finding[] {
  const collected = collectFindings(facts, now);
  // SecurityLayer=0 is the RDP security layer: no TLS handshake, so TLS faults no longer block
  // a connection. They stay on record, and the weakened layer is reported beside them.
  const findings =
    facts.rdp.securityLayer !== 0
      ? collected
      : collected.map((f) => (TLS_PATH.has(f.code) ? { ...f, severity: 'advisory' as const, detail: `${f.detail} (TLS not in use: SecurityLayer=0)` } : f));
  const handshake = handshakeFinding(facts, now, findings);
  return withEvidence(handshake ? [...findings, handshake] : findings, facts);
}

function collectFindings(facts: ProbeFacts, now: Date): Finding[] {
  const findings: Finding[] = [];

  if (facts.tls12Server === 'disabled' || facts.tls12Server === 'disabled-by-default') {
    findings.push(blocking('tls12-server-disabled', `SCHANNEL TLS 1.2 Server is ${facts.tls12Server}`));
  }
  if (!facts.keys.folderOk) {
    findings.push(blocking('machinekeys-folder-acl', `MachineKeys folder ACL is not the default: ${facts.keys.folderSddl}`));
  }

  const binding = bindingState(facts, now);
  if (binding === 'stale') {
    const cert = facts.cert.binding.cert;
    const why = cert === null ? 'is not in LocalMachine\\My' : !cert.hasKey ? 'has no private key' : `expired ${cert.notAfter}`;
    findings.push(blocking('stale-cert-binding', `SSLCertificateSHA1Hash ${facts.cert.binding.hash ?? ''} points at a certificate that ${why}`));
  }
  // With no binding, or one about to be removed, RDP falls back to the self-signed certificate.
  if (binding !== 'healthy') findings.push(...selfSignedPathFindings(facts, now));

  if (facts.services.TermService !== 'Running') {
    findings.push(blocking('termservice-not-running', `TermService is ${facts.services.TermService}`));
  } else if (!facts.rdp.listening) {
    // Typically PortNumber changed while TermService kept listening on the port it started with.
    findings.push(blocking('rdp-not-listening', `nothing listens on port ${facts.rdp.portNumber} (PortNumber); TermService listens on the port it read when it last started`));
  }
  findings.push(...firewallFindings(facts));

  if (facts.domain.joined && facts.domain.secureChannel === 'broken' && facts.rdp.userAuthentication === 1) {
    findings.push(blocking('nla-domain-unreachable', 'NLA is required but the domain secure channel is broken, so credentials cannot be checked'));
  }

  if (facts.rdp.securityLayer < 2 || facts.rdp.userAuthentication === 0) {
    findings.push(
      advisory('security-layer-weakened', `SecurityLayer=${facts.rdp.securityLayer} UserAuthentication=${facts.rdp.userAuthentication} (recommended 2 and 1)`),
    );
  }
  if (facts.rdp.fDenyTSConnections === 1) findings.push(advisory('rdp-disabled', 'fDenyTSConnections=1: Remote Desktop is turned off'));
  if (facts.cert.storeName !== null && facts.cert.storeName !== 'Remote Desktop') {
    findings.push(advisory('cert-store-misconfigured', `SelfSignedCertStore is "${facts.cert.storeName}", expected "Remote Desktop"`));
  }
  return findings;
}

export function blockingFindings(findings: readonly Finding[]): Finding[] {
  return findings.filter((f) => f.severity === 'blocking');
}
