/**
 * What the read-only probe observes on the VM: raw facts, not conclusions. The TypeScript
 * side turns facts into findings (src/core/diagnose.ts), so the rules live in one place.
 * The fix payload re-reads the same facts after its changes, as its verification.
 */
import { z } from 'zod';

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
    listening: z.boolean(),
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
});
export type ProbeFacts = z.infer<typeof ProbeFactsSchema>;
