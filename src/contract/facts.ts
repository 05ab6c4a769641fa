/**
 * What the read-only probe observes on the VM: raw facts, not conclusions. The TypeScript
 * side turns facts into findings (src/core/diagnose.ts), so the rules live in one place.
 * The fix payload re-reads the same facts after its changes, as its verification.
 */
import * as z from 'zod';

export const CertFactSchema = z.object({
  thumb: z.string().regex(/^[0-9A-F]{40}$/),
  notAfter: z.string(), // ISO 8601, UTC
  hasKey: z.boolean(),
  selfSigned: z.boolean(),
  /** Issued from a certificate template (GPO auto-enrolment): never deleted. */
  template: z.boolean(),
});
export type CertFact = z.infer<typeof CertFactSchema>;

export const ServiceStateSchema = z.enum(['Running', 'Stopped', 'StartPending', 'StopPending', 'Paused', 'Missing', 'Other']);
export type ServiceState = z.infer<typeof ServiceStateSchema>;

export const Tls12StateSchema = z.enum(['os-default', 'enabled', 'disabled', 'disabled-by-default']);
export type Tls12State = z.infer<typeof Tls12StateSchema>;

/** MS-RDPBCGR 2.2.1.1.1 requestedProtocols / 2.2.1.2.1 selectedProtocol: 0 RDP, 1 SSL, 2 HYBRID (NLA), 8 HYBRID_EX. */
export const RDP_PROTOCOL = { rdp: 0, ssl: 1, hybrid: 2, rdstls: 4, hybridEx: 8 } as const;

/** MS-RDPBCGR 2.2.1.2.2 RDP_NEG_FAILURE failureCode. */
export const NEG_FAILURE = {
  sslRequiredByServer: 1,
  sslNotAllowedByServer: 2,
  sslCertNotOnServer: 3,
  inconsistentFlags: 4,
  hybridRequiredByServer: 5,
  sslWithUserAuthRequiredByServer: 6,
} as const;

/** The specification's names of the failure codes, for people. */
export const NEG_FAILURE_NAMES: Readonly<Record<number, string>> = {
  1: 'SSL_REQUIRED_BY_SERVER',
  2: 'SSL_NOT_ALLOWED_BY_SERVER',
  3: 'SSL_CERT_NOT_ON_SERVER',
  4: 'INCONSISTENT_FLAGS',
  5: 'HYBRID_REQUIRED_BY_SERVER',
  6: 'SSL_WITH_USER_AUTH_REQUIRED_BY_SERVER',
};

/**
 * Where a loopback handshake stopped: `connect` (TCP), `negotiate` (X.224 Connection Request
 * with RDP_NEG_REQ, answered by RDP_NEG_RSP or RDP_NEG_FAILURE), `tls` (SslStream on the same
 * socket), or `done` (the TLS handshake completed; the check stops there, no credentials).
 */
export const HandshakeStageSchema = z.enum(['connect', 'negotiate', 'tls', 'done']);
export type HandshakeStage = z.infer<typeof HandshakeStageSchema>;

/**
 * Why it stopped: `refused` (nothing accepts on the port), `timeout` (connect, read or TLS
 * exceeded its bound), `reset` (the server closed or reset the connection), `protocol` (the
 * answer was not a well-formed X.224 Connection Confirm), `negotiation-failure` (RDP_NEG_FAILURE,
 * code in `failureCode`), `tls` (the TLS handshake failed: alert or error), null when `done`.
 */
export const HandshakeErrorSchema = z.enum(['refused', 'timeout', 'reset', 'protocol', 'negotiation-failure', 'tls']);
export type HandshakeError = z.infer<typeof HandshakeErrorSchema>;

/** One loopback handshake, as Test-RrRdpHandshake ran it and the probe classified the certificate. */
export const HandshakeAttemptSchema = z.object({
  /** '127.0.0.1', or the primary IPv4 address when the listener is bound to one adapter (LanAdapter <> 0). */
  address: z.string().max(45),
  port: z.number().int().min(1).max(65535),
  stage: HandshakeStageSchema,
  error: HandshakeErrorSchema.nullable(),
  /** RDP_NEG_FAILURE failureCode (NEG_FAILURE), when the server sent one. */
  failureCode: z.number().int().min(0).nullable(),
  /** RDP_NEG_RSP selectedProtocol (RDP_PROTOCOL), when the server sent one. */
  selectedProtocol: z.number().int().min(0).nullable(),
  /** 'Tls12', 'Tls13', ... as SslStream.SslProtocol names it; null before TLS completed. */
  tlsVersion: z.string().max(16).nullable(),
  /** The negotiated cipher suite where the runtime names it, else the cipher algorithm and strength. */
  cipher: z.string().max(64).nullable(),
  /** The certificate the server presented, even when TLS then failed. */
  cert: z.object({ thumb: z.string().regex(/^[0-9A-F]{40}$/), notAfter: z.string() }).nullable(),
  /**
   * Which configured certificate it was: `binding` (RDP-Tcp SSLCertificateSHA1Hash),
   * `remote-desktop` (one in Cert:\LocalMachine\Remote Desktop), `other`; null when none was served.
   */
  servedCert: z.enum(['binding', 'remote-desktop', 'other']).nullable(),
  /** Milliseconds per stage that ran (null for a stage not reached). */
  ms: z.object({ connect: z.number().int().min(0).nullable(), negotiate: z.number().int().min(0).nullable(), tls: z.number().int().min(0).nullable() }),
  /** One short line for people (the exception's message, shortened by the size guard first). */
  detail: z.string().max(200).nullable(),
});
export type HandshakeAttempt = z.infer<typeof HandshakeAttemptSchema>;

/** Cause-naming System-log events (playbook section 4), grouped by id. */
export const EventEvidenceSchema = z.object({
  /** 'Schannel', 'TerminalServices-RemoteConnectionManager' shortened to 'RCM', 'TermDD'. */
  source: z.enum(['Schannel', 'RCM', 'TermDD']),
  id: z.number().int().min(0).max(65535),
  /** Events with this id in the window read. */
  count: z.number().int().min(1),
  /** The newest one's time, ISO 8601 UTC. */
  last: z.string(),
  /** The newest one's message, first line, shortened. */
  text: z.string().max(200),
});
export type EventEvidence = z.infer<typeof EventEvidenceSchema>;

export const FirewallProfileSchema = z.enum(['Domain', 'Private', 'Public']);
export type FirewallProfile = z.infer<typeof FirewallProfileSchema>;

/** A built-in Remote Desktop inbound rule (group @FirewallAPI.dll,-28752), or the one this tool adds for a custom port. */
export const FirewallRuleFactSchema = z.object({
  /** The rule's Name (language-neutral: RemoteDesktop-UserMode-In-TCP, ...). */
  name: z.string().max(128),
  enabled: z.boolean(),
  /** Profiles it applies to; all three for 'Any'. */
  profiles: z.array(FirewallProfileSchema),
  protocol: z.string().max(8),
  /** Its LocalPort filter as Windows prints it ('3389', 'Any', 'RPC', ...). */
  localPorts: z.array(z.string().max(16)).max(8),
  /** Where it comes from: the local store, or Group Policy (then it is reported, never changed). */
  store: z.enum(['local', 'gpo']),
});
export type FirewallRuleFact = z.infer<typeof FirewallRuleFactSchema>;

export const FirewallFactsSchema = z.object({
  /** false when the firewall could not be read (no NetSecurity module, the service stopped...). */
  readable: z.boolean(),
  /** The profiles of the connected networks (Get-NetConnectionProfile), Public when none is known. */
  activeProfiles: z.array(FirewallProfileSchema),
  /** Whether the firewall is on for each active profile (off admits everything). */
  enabledProfiles: z.array(FirewallProfileSchema),
  /** The Remote Desktop group's inbound rules, and the custom-port rule (at most 6). */
  rdpRules: z.array(FirewallRuleFactSchema).max(6),
  /**
   * Whether some enabled inbound Allow rule (of any group) admits TCP on PortNumber for every
   * active profile where the firewall is on; true when the firewall is off for them all.
   */
  portAdmitted: z.boolean(),
  /** Group Policy sets firewall rules or profiles (HKLM\SOFTWARE\Policies\Microsoft\WindowsFirewall). */
  gpo: z.boolean(),
});
export type FirewallFacts = z.infer<typeof FirewallFactsSchema>;

export const ProbeFactsSchema = z.object({
  os: z.object({ caption: z.string(), build: z.string() }),
  cert: z.object({
    /** `WinStations\SelfSignedCertStore`; must be "Remote Desktop". */
    storeName: z.string().nullable(),
    /** Certificates in Cert:\LocalMachine\Remote Desktop, newest first, at most 3. */
    store: z.array(CertFactSchema).max(3),
    /** RDP-Tcp `SSLCertificateSHA1Hash` (custom binding) and what it points at in LocalMachine\My. */
    binding: z.object({
      hash: z.string().regex(/^[0-9A-F]{40}$/).nullable(),
      /** WMI SSLCertificateSHA1HashType: 0 invalid, 1 self-signed, 2 GPO, 3 custom. */
      type: z.number().int().min(0).max(3).nullable(),
      cert: CertFactSchema.nullable(),
    }),
  }),
  keys: z.object({
    /** The f686aace6942fb7f7ceb231212eef4a4_<MachineGuid> key file. */
    file: z.enum(['present', 'missing']),
    fileSddl: z.string().nullable(),
    /** SYSTEM full control and NETWORK SERVICE read, both present. */
    fileOk: z.boolean(),
    folderSddl: z.string(),
    /** Folder ACL grants Administrators full and Everyone the default this-folder-only rights. */
    folderOk: z.boolean(),
  }),
  rdp: z.object({
    securityLayer: z.number().int().min(0).max(2),
    userAuthentication: z.number().int().min(0).max(1),
    minEncryptionLevel: z.number().int().min(1).max(4),
    portNumber: z.number().int().min(1).max(65535),
    /** Something listens on portNumber. */
    listening: z.boolean(),
    /** RDP-Tcp LanAdapter: 0 all adapters, else the listener is bound to one adapter. */
    lanAdapter: z.number().int().min(0),
    fDenyTSConnections: z.number().int().min(0).max(1),
  }),
  /** true where Group Policy enforces the value (WMI PolicySource* = 1, or a policy registry value). */
  policy: z.object({
    securityLayer: z.boolean(),
    userAuthentication: z.boolean(),
    minEncryptionLevel: z.boolean(),
    certTemplate: z.boolean(),
  }),
  tls12Server: Tls12StateSchema,
  services: z.object({
    TermService: ServiceStateSchema,
    SessionEnv: ServiceStateSchema,
    UmRdpService: ServiceStateSchema,
  }),
  domain: z.object({
    joined: z.boolean(),
    secureChannel: z.enum(['n/a', 'ok', 'broken']),
  }),
  /** RD Connection Broker role installed: the custom binding must not be touched. */
  rdcb: z.boolean(),
  /** The loopback RDP handshake (1 or 2 attempts); null when the check itself could not run. */
  handshake: z.object({ attempts: z.array(HandshakeAttemptSchema).min(1).max(2) }).nullable(),
  /**
   * Cause-naming System-log events of the last `hours` (at most 12 ids, newest first); null when
   * the log could not be read, and always in a fix's re-read (`verify`): events tell what went
   * wrong before, not what the fix did.
   */
  events: z.object({ hours: z.number().int().min(1), items: z.array(EventEvidenceSchema).max(12) }).nullable(),
  firewall: FirewallFactsSchema,
});
export type ProbeFacts = z.infer<typeof ProbeFactsSchema>;
