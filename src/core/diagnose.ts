/**
 * Facts → findings. Every rule that says "this VM's RDP is broken because …" lives here, as
 * a pure function of what the probe read (see docs/payload-contract.md for each fact).
 */
import type { CertFact, ProbeFacts } from '../contract/facts.js';

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
] as const;
export type FindingCode = (typeof FINDING_CODES)[number];

/** Blocking findings explain the failure and call for a fix; advisory ones are reported only. */
export type Severity = 'blocking' | 'advisory';

export interface Finding {
  readonly code: FindingCode;
  readonly severity: Severity;
  readonly detail: string;
}

const blocking = (code: FindingCode, detail: string): Finding => ({ code, severity: 'blocking', detail });
const advisory = (code: FindingCode, detail: string): Finding => ({ code, severity: 'advisory', detail });

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
  const findings = collectFindings(facts, now);
  if (facts.rdp.securityLayer !== 0) return findings;
  // SecurityLayer=0 is the RDP security layer: no TLS handshake, so TLS faults no longer block
  // a connection. They stay on record, and the weakened layer is reported beside them.
  return findings.map((f) => (TLS_PATH.has(f.code) ? { ...f, severity: 'advisory' as const, detail: `${f.detail} (TLS not in use: SecurityLayer=0)` } : f));
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
    findings.push(blocking('rdp-not-listening', `nothing listens on port ${facts.rdp.portNumber}`));
  }

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
