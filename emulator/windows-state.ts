/**
 * The machine state of a simulated Windows VM: one zod schema, read by the TypeScript side
 * (the emulator, the fleet's starting states, the RDP acceptance oracle, the tests) and by the
 * PowerShell Windows double (emulator/double/WindowsDouble.ps1), which validates the same
 * state against `windowsStateJsonSchema()` before a payload runs and hands the changed state
 * back after it.
 *
 * It is Windows as the access layer sees it, not a copy of what the payloads do: registry
 * values, certificate stores, file-system entries with their security descriptors, services,
 * WMI, OS and domain, features, TCP listeners, and canned native-command results. Paths are
 * Windows paths; the double compares them case-insensitively, as Windows does.
 */
import { z } from 'zod';

/** A registry value as the access layer's Get-RrRegistryValue returns it. */
export const RegistryValueSchema = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('DWord'), value: z.number().int().min(0).max(0xffffffff) }),
  z.object({ kind: z.literal('String'), value: z.string() }),
  z.object({ kind: z.literal('Binary'), value: z.array(z.number().int().min(0).max(255)) }),
]);
export type RegistryValue = z.infer<typeof RegistryValueSchema>;

/** Registry keys by 'HKLM\<subkey>' path; a key that exists with no values is `{}`. */
export const RegistrySchema = z.record(z.string().regex(/^HKLM\\/), z.record(z.string(), RegistryValueSchema));
export type Registry = z.infer<typeof RegistrySchema>;

export const CertificateSchema = z.object({
  /** SHA-1 thumbprint, 40 upper-case hex digits. */
  thumbprint: z.string().regex(/^[0-9A-F]{40}$/),
  subject: z.string(),
  /** Self-signed when equal to `subject`. */
  issuer: z.string(),
  notBefore: z.iso.datetime(),
  notAfter: z.iso.datetime(),
  /** The certificate names a private key container (X509Certificate2.HasPrivateKey). */
  hasPrivateKey: z.boolean(),
  extensionOids: z.array(z.string()),
});
export type Certificate = z.infer<typeof CertificateSchema>;

/**
 * A file or directory. `sddl` is its security descriptor as Get-Acl prints it, with inherited
 * ACEs (flag `ID`) present as Windows computed them from the parent.
 */
export const FileSystemEntrySchema = z.object({
  type: z.enum(['file', 'directory']),
  sddl: z.string(),
  /** Text content of files the payloads wrote (backups, manifests); absent for binary files we model by name only. */
  content: z.string().optional(),
});
export type FileSystemEntry = z.infer<typeof FileSystemEntrySchema>;

export const ServiceStatusSchema = z.enum(['Running', 'Stopped', 'StartPending', 'StopPending', 'Paused']);
export type ServiceStatus = z.infer<typeof ServiceStatusSchema>;

export const ServiceSchema = z.object({
  status: ServiceStatusSchema,
  /** Services this one needs; starting it starts them first, stopping them stops it. */
  dependsOn: z.array(z.string()),
  /** After a start, how many status reads still see StartPending before Running. */
  startPendingReads: z.number().int().min(0),
  /** Status reads left in the current StartPending (the double counts them down). */
  pendingReadsLeft: z.number().int().min(0),
  /** A start fails with this message (a service that cannot start). */
  startFailure: z.string().nullable(),
});
export type Service = z.infer<typeof ServiceSchema>;

/**
 * What TermService read when it last started: the listener runs on this until the next
 * restart. Raw registry keys (RDP-Tcp, Terminal Server, the TS policy key and SCHANNEL TLS 1.2
 * Server) as they were at that moment.
 */
export const LoadedConfigSchema = z.object({ registry: RegistrySchema });
export type LoadedConfig = z.infer<typeof LoadedConfigSchema>;

export const NativeResultSchema = z.object({ exitCode: z.number().int(), output: z.string() });

export const FirewallProfileNameSchema = z.enum(['Domain', 'Private', 'Public']);

/** One Windows Firewall rule as Get-NetFirewallRule and its port filter show it. */
export const FirewallRuleSchema = z.object({
  /** The rule's Name (the language-neutral id, e.g. RemoteDesktop-UserMode-In-TCP). */
  name: z.string().min(1),
  displayName: z.string(),
  /** The group as stored: '@FirewallAPI.dll,-28752' for the built-in Remote Desktop rules, '' for none. */
  group: z.string(),
  enabled: z.boolean(),
  direction: z.enum(['Inbound', 'Outbound']),
  action: z.enum(['Allow', 'Block']),
  protocol: z.enum(['TCP', 'UDP', 'Any']),
  /** LocalPort filter entries as Windows prints them: '3389', 'Any', 'RPC', '5000-5010'. */
  localPorts: z.array(z.string()),
  /** The profiles it applies to; all three is Windows' 'Any'. */
  profiles: z.array(FirewallProfileNameSchema).min(1),
  /** The service it is scoped to (its service filter), or null. */
  service: z.string().nullable(),
  /** Where the rule is stored: the local persistent store, or a Group Policy object (read-only here). */
  policyStore: z.enum(['Local', 'GroupPolicy']),
});
export type FirewallRule = z.infer<typeof FirewallRuleSchema>;

export const FirewallSchema = z.object({
  /** false: every Get-NetFirewall* call throws (NetSecurity unavailable, mpssvc stopped). */
  readable: z.boolean(),
  /** Whether the firewall is on, per profile. */
  profiles: z.object({ Domain: z.boolean(), Private: z.boolean(), Public: z.boolean() }),
  /** Get-NetConnectionProfile's NetworkCategory of each connected network. */
  networkCategories: z.array(z.enum(['DomainAuthenticated', 'Private', 'Public'])),
  rules: z.array(FirewallRuleSchema),
});
export type Firewall = z.infer<typeof FirewallSchema>;

/** A System-log event, as Get-WinEvent returns it. */
export const WindowsEventSchema = z.object({
  /** ProviderName: 'Schannel', 'Microsoft-Windows-TerminalServices-RemoteConnectionManager', 'TermDD', ... */
  provider: z.string().min(1),
  id: z.number().int().min(0).max(65535),
  timeCreated: z.iso.datetime(),
  message: z.string(),
});
export type WindowsEvent = z.infer<typeof WindowsEventSchema>;

export const WindowsStateSchema = z.object({
  v: z.literal(1),
  /** The VM's clock. The double's Start-RrSleep advances it instead of sleeping. */
  now: z.iso.datetime(),
  computerName: z.string().min(1),
  os: z.object({ caption: z.string(), buildNumber: z.string() }),
  /** Server SKUs have Get-WindowsFeature; clients do not. */
  serverSku: z.boolean(),
  /** Installed Windows features by name (RDS-Connection-Broker, ...). */
  features: z.record(z.string(), z.boolean()),
  domain: z.object({
    partOfDomain: z.boolean(),
    /** Test-ComputerSecureChannel: true, false, or 'unreachable' (it throws). */
    secureChannel: z.union([z.boolean(), z.literal('unreachable')]),
  }),
  /** %ProgramData% */
  programData: z.string(),
  registry: RegistrySchema,
  /** Cert:\LocalMachine\<store>; a store that does not exist is absent. */
  certificates: z.record(z.string(), z.array(CertificateSchema)),
  /** Files and directories by full path. */
  files: z.record(z.string(), FileSystemEntrySchema),
  services: z.record(z.string(), ServiceSchema),
  /** Win32_TSGeneralSetting for RDP-Tcp; `unreadable` makes the WMI query throw. */
  wmi: z.object({
    readable: z.boolean(),
    policySourceSecurityLayer: z.number().int(),
    policySourceUserAuthenticationRequired: z.number().int(),
    policySourceMinEncryptionLevel: z.number().int(),
  }),
  /** TCP ports in LISTEN state. */
  tcpListeners: z.array(z.number().int().min(1).max(65535)),
  /** The primary IPv4 address of the VM's NIC (where a listener bound to one adapter accepts), or null. */
  primaryIPv4: z.string().nullable(),
  firewall: FirewallSchema,
  /** The System event log, oldest first; `null` makes Get-WinEvent throw (log unreadable). */
  events: z.array(WindowsEventSchema).nullable(),
  /** What TermService loaded at its last start; null while it has not started. */
  termServiceLoaded: LoadedConfigSchema.nullable(),
  /**
   * Canned results for native commands, by `<program> <first argument after the path>` such as
   * 'icacls.exe /grant' or 'reg.exe export'. A canned result is returned and nothing changes.
   */
  nativeResults: z.record(z.string(), NativeResultSchema),
  faults: z.object({
    /** The Nth write of the next payload run (1-based) throws instead of changing anything. */
    throwAtWrite: z.number().int().min(1).nullable(),
    /** Get-Acl of these paths throws, whatever their DACL says. */
    unreadableAcls: z.array(z.string()),
  }),
});
export type WindowsState = z.infer<typeof WindowsStateSchema>;

/** One change the double made, in order. */
export const DoubleWriteSchema = z.object({
  /** The access-layer function that made it (Set-RrRegistryValue, Invoke-RrIcaclsGrant, ...). */
  op: z.string(),
  target: z.string(),
  detail: z.string(),
});
export type DoubleWrite = z.infer<typeof DoubleWriteSchema>;

/** The state as JSON Schema, for the double's Test-Json. */
export function windowsStateJsonSchema(): string {
  return JSON.stringify(z.toJSONSchema(WindowsStateSchema, { target: 'draft-2020-12' }));
}

// ---------------------------------------------------------------------------------------------
// Well-known places, as Windows names them.

export const HKLM = {
  terminalServer: 'HKLM\\SYSTEM\\CurrentControlSet\\Control\\Terminal Server',
  winStations: 'HKLM\\SYSTEM\\CurrentControlSet\\Control\\Terminal Server\\WinStations',
  rdpTcp: 'HKLM\\SYSTEM\\CurrentControlSet\\Control\\Terminal Server\\WinStations\\RDP-Tcp',
  tls12: 'HKLM\\SYSTEM\\CurrentControlSet\\Control\\SecurityProviders\\SCHANNEL\\Protocols\\TLS 1.2',
  tls12Server: 'HKLM\\SYSTEM\\CurrentControlSet\\Control\\SecurityProviders\\SCHANNEL\\Protocols\\TLS 1.2\\Server',
  tsPolicy: 'HKLM\\SOFTWARE\\Policies\\Microsoft\\Windows NT\\Terminal Services',
  firewallPolicy: 'HKLM\\SOFTWARE\\Policies\\Microsoft\\WindowsFirewall',
  cryptography: 'HKLM\\SOFTWARE\\Microsoft\\Cryptography',
} as const;

/** The RDP listener's key container (TSSecKeySet1) as a MachineKeys file name, before the MachineGuid. */
export const KEY_FILE_PREFIX = 'f686aace6942fb7f7ceb231212eef4a4_';
export const REMOTE_DESKTOP_STORE = 'Remote Desktop';
export const PERSONAL_STORE = 'My';
/** The built-in Remote Desktop firewall group, language-neutral (its display name is localized). */
export const RDP_FIREWALL_GROUP = '@FirewallAPI.dll,-28752';
/** Certificate Template Information (v2) and Certificate Template Name (v1). */
export const TEMPLATE_OIDS = ['1.3.6.1.4.1.311.21.7', '1.3.6.1.4.1.311.20.2'] as const;

export function machineKeysFolder(state: Pick<WindowsState, 'programData'>): string {
  return `${state.programData}\\Microsoft\\Crypto\\RSA\\MachineKeys`;
}

export function machineGuid(state: Pick<WindowsState, 'registry'>): string | null {
  const value = state.registry[HKLM.cryptography]?.['MachineGuid'];
  return value?.kind === 'String' ? value.value : null;
}

export function keyFilePath(state: Pick<WindowsState, 'programData' | 'registry'>): string | null {
  const guid = machineGuid(state);
  return guid === null ? null : `${machineKeysFolder(state)}\\${KEY_FILE_PREFIX}${guid}`;
}

/** Looks a path up as Windows does: case-insensitively. */
export function findPath<T>(record: Readonly<Record<string, T>>, path: string): [string, T] | null {
  const lower = path.toLowerCase();
  for (const [key, value] of Object.entries(record)) if (key.toLowerCase() === lower) return [key, value];
  return null;
}
