/**
 * Windows, as the emulator knows it: building machine states (emulator/windows-state.ts) and
 * the RDP acceptance oracle. What a payload does to a state is never modelled here: the
 * emulator runs the real composed payloads under PowerShell against the Windows double
 * (emulator/double/WindowsDouble.ps1), and reads the changed state back.
 *
 * The oracle answers one question the probe never does: would an RDP client's connection,
 * and its TLS handshake, succeed right now? It judges from the certificate, whether
 * TermService (NETWORK SERVICE) can read the key, TLS 1.2, and what TermService loaded when it
 * last started. It is the ground truth `npm start` and the end-to-end tests hold verdicts to.
 */
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { keyFileReadableBy, folderListableBy } from './sddl.js';
import {
  findPath,
  HKLM,
  keyFilePath,
  machineKeysFolder,
  PERSONAL_STORE,
  RDP_FIREWALL_GROUP,
  REMOTE_DESKTOP_STORE,
  TEMPLATE_OIDS,
  WindowsStateSchema,
  type Certificate,
  type Firewall,
  type FirewallRule,
  type Registry,
  type RegistryValue,
  type Service,
  type WindowsState,
} from './windows-state.js';

export type { Certificate, WindowsState } from './windows-state.js';

const DAY_MS = 24 * 3600 * 1000;
/** Windows issues the RDP self-signed certificate for six months. */
const SELF_SIGNED_LIFETIME_MS = 182 * DAY_MS;
/** Server Authentication EKU and Key Usage, as on the certificate Windows issues. */
const SELF_SIGNED_OIDS = ['2.5.29.37', '2.5.29.15'];

/** What Windows puts on the RDP key file when it creates the key container. */
export const DEFAULT_KEY_FILE_SDDL = 'O:SYG:SYD:(A;;FA;;;SY)(A;;FA;;;BA)(A;;FR;;;NS)';
/** The shipped MachineKeys folder ACL: protected, Everyone 0x12019f and Administrators full, this folder only. */
export const DEFAULT_MACHINEKEYS_FOLDER_SDDL = 'O:SYG:SYD:PAI(A;;0x12019f;;;WD)(A;;FA;;;BA)';
const PROGRAM_DATA_SDDL = 'O:SYG:SYD:P(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)(A;OICI;0x1200a9;;;BU)';
const CRYPTO_RSA_SDDL = 'O:SYG:SYD:AI(A;OICIID;FA;;;SY)(A;OICIID;FA;;;BA)(A;OICIID;0x1200a9;;;BU)';

// ---------------------------------------------------------------------------------------------
// Building states

export function newThumbprint(): string {
  return randomBytes(20).toString('hex').toUpperCase();
}

/** A thumbprint that is the same for the same seed: the storm benchmark clones states and replays runs by content. */
export function seededThumbprint(seed: string): string {
  return createHash('sha1').update(seed).digest('hex').toUpperCase();
}

export function isoSeconds(date: Date): string {
  return date.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

export interface CertificateOptions {
  readonly hasPrivateKey?: boolean;
  /** Carries the certificate-template extension (GPO auto-enrolment). */
  readonly template?: boolean;
  readonly thumbprint?: string;
}

export function selfSignedCertificate(computerName: string, notAfter: Date, options: CertificateOptions = {}): Certificate {
  return {
    thumbprint: options.thumbprint ?? newThumbprint(),
    subject: `CN=${computerName}`,
    issuer: `CN=${computerName}`,
    notBefore: isoSeconds(new Date(notAfter.getTime() - SELF_SIGNED_LIFETIME_MS)),
    notAfter: isoSeconds(notAfter),
    hasPrivateKey: options.hasPrivateKey ?? true,
    extensionOids: [...SELF_SIGNED_OIDS, ...(options.template ? [TEMPLATE_OIDS[0]] : [])],
  };
}

export function caIssuedCertificate(subject: string, issuer: string, notAfter: Date, options: CertificateOptions = {}): Certificate {
  return {
    thumbprint: options.thumbprint ?? newThumbprint(),
    subject,
    issuer,
    notBefore: isoSeconds(new Date(notAfter.getTime() - 365 * DAY_MS)),
    notAfter: isoSeconds(notAfter),
    hasPrivateKey: options.hasPrivateKey ?? true,
    extensionOids: [...SELF_SIGNED_OIDS, ...(options.template ? [TEMPLATE_OIDS[0]] : [])],
  };
}

const ALL_PROFILES = ['Domain', 'Private', 'Public'] as const;

/** The three built-in Remote Desktop inbound rules as a Windows Server image ships them, RDP enabled. */
export function builtInRdpFirewallRules(): FirewallRule[] {
  const rule = (name: string, displayName: string, protocol: 'TCP' | 'UDP', localPorts: string[], enabled: boolean): FirewallRule => ({
    name,
    displayName,
    group: RDP_FIREWALL_GROUP,
    enabled,
    direction: 'Inbound',
    action: 'Allow',
    protocol,
    localPorts,
    profiles: [...ALL_PROFILES],
    service: name === 'RemoteDesktop-Shadow-In-TCP' ? null : 'termservice',
    policyStore: 'Local',
  });
  return [
    rule('RemoteDesktop-UserMode-In-TCP', 'Remote Desktop - User Mode (TCP-In)', 'TCP', ['3389'], true),
    rule('RemoteDesktop-UserMode-In-UDP', 'Remote Desktop - User Mode (UDP-In)', 'UDP', ['3389'], true),
    rule('RemoteDesktop-Shadow-In-TCP', 'Remote Desktop - Shadow (TCP-In)', 'TCP', ['Any'], false),
  ];
}

/** The firewall on, for every profile, on a network Windows calls Public (as on an Azure VM that is not domain-joined). */
export function defaultFirewall(): Firewall {
  return { readable: true, profiles: { Domain: true, Private: true, Public: true }, networkCategories: ['Public'], rules: builtInRdpFirewallRules() };
}

function service(dependsOn: readonly string[] = []): Service {
  return { status: 'Running', dependsOn: [...dependsOn], startPendingReads: 0, pendingReadsLeft: 0, startFailure: null };
}

export interface HealthyWindowsOptions {
  readonly computerName: string;
  readonly now?: Date;
  readonly caption?: string;
  readonly build?: string;
  /** Fixes the MachineGuid and thumbprints, so that equal seeds give equal states. */
  readonly seed?: string;
}

/** A Windows Server 2022 VM whose RDP works: valid self-signed certificate, default ACLs, services running. */
export function healthyWindows(options: HealthyWindowsOptions): WindowsState {
  const now = options.now ?? new Date();
  const guid = options.seed === undefined ? randomUUID() : seededGuid(options.seed);
  const programData = 'C:\\ProgramData';
  const state: WindowsState = {
    v: 1,
    now: isoSeconds(now),
    computerName: options.computerName,
    os: { caption: options.caption ?? 'Microsoft Windows Server 2022 Datacenter', buildNumber: options.build ?? '20348' },
    serverSku: true,
    features: {},
    domain: { partOfDomain: false, secureChannel: true },
    programData,
    registry: {
      [HKLM.terminalServer]: { fDenyTSConnections: dword(0) },
      [HKLM.winStations]: { SelfSignedCertStore: { kind: 'String', value: REMOTE_DESKTOP_STORE } },
      [HKLM.rdpTcp]: { SecurityLayer: dword(2), UserAuthentication: dword(1), MinEncryptionLevel: dword(2), PortNumber: dword(3389) },
      [HKLM.cryptography]: { MachineGuid: { kind: 'String', value: guid } },
    },
    certificates: {
      [REMOTE_DESKTOP_STORE]: [
        selfSignedCertificate(options.computerName, new Date(now.getTime() + 150 * DAY_MS), options.seed === undefined ? {} : { thumbprint: seededThumbprint(`${options.seed}:rdp`) }),
      ],
      [PERSONAL_STORE]: [],
    },
    files: {},
    services: { TermService: service(), SessionEnv: service(), UmRdpService: service(['TermService']) },
    wmi: { readable: true, policySourceSecurityLayer: 0, policySourceUserAuthenticationRequired: 0, policySourceMinEncryptionLevel: 0 },
    tcpListeners: [],
    primaryIPv4: '10.0.0.4',
    firewall: defaultFirewall(),
    events: [],
    termServiceLoaded: null,
    nativeResults: {},
    faults: { throwAtWrite: null, unreadableAcls: [] },
  };
  const folder = machineKeysFolder(state);
  state.files[programData] = { type: 'directory', sddl: PROGRAM_DATA_SDDL };
  state.files[`${programData}\\Microsoft\\Crypto\\RSA`] = { type: 'directory', sddl: CRYPTO_RSA_SDDL };
  state.files[folder] = { type: 'directory', sddl: DEFAULT_MACHINEKEYS_FOLDER_SDDL };
  state.files[requireKeyFilePath(state)] = { type: 'file', sddl: DEFAULT_KEY_FILE_SDDL };
  return bootTermService(state);
}

function seededGuid(seed: string): string {
  const hex = createHash('sha256').update(seed).digest('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-4${hex.slice(13, 16)}-a${hex.slice(17, 20)}-${hex.slice(20, 32)}`;
}

export function dword(value: number): RegistryValue {
  return { kind: 'DWord', value };
}

export function requireKeyFilePath(state: WindowsState): string {
  const path = keyFilePath(state);
  if (path === null) throw new Error('the state has no MachineGuid');
  return path;
}

/** Sets (or with `null` removes) a registry value, creating the key. */
export function setRegistryValue(state: WindowsState, key: string, name: string, value: RegistryValue | null): void {
  const found = findPath(state.registry, key);
  const values = found?.[1] ?? {};
  if (!found) state.registry[key] = values;
  if (value === null) delete values[name];
  else values[name] = value;
}

export function registryDword(registry: Registry, key: string, name: string): number | null {
  const value = findPath(registry, key)?.[1][name];
  return value?.kind === 'DWord' ? value.value : null;
}

function registryString(registry: Registry, key: string, name: string): string | null {
  const value = findPath(registry, key)?.[1][name];
  return value?.kind === 'String' ? value.value : null;
}

/** The raw keys TermService reads when it starts. */
const LOADED_KEYS = [HKLM.rdpTcp, HKLM.terminalServer, HKLM.tsPolicy, HKLM.tls12Server] as const;

function rdpPort(registry: Registry): number {
  const port = registryDword(registry, HKLM.rdpTcp, 'PortNumber');
  return port !== null && port >= 1 && port <= 65535 ? port : 3389;
}

/**
 * For building starting states only: TermService as it came up at boot, on the configuration
 * the state holds now. (During a payload run the double does this when it starts TermService.)
 */
export function bootTermService(state: WindowsState): WindowsState {
  const running = state.services['TermService']?.status === 'Running';
  const registry: Registry = {};
  for (const key of LOADED_KEYS) {
    const found = findPath(state.registry, key);
    if (found) registry[found[0]] = structuredClone(found[1]);
  }
  state.termServiceLoaded = running ? { registry } : null;
  const port = rdpPort(state.registry);
  const denied = (registryDword(state.registry, HKLM.terminalServer, 'fDenyTSConnections') ?? 0) !== 0;
  state.tcpListeners = running && !denied ? [port] : [];
  return state;
}

/** Parses a state that came back from PowerShell or a file. */
export function parseWindowsState(value: unknown): WindowsState {
  return WindowsStateSchema.parse(value);
}

// ---------------------------------------------------------------------------------------------
// The RDP acceptance oracle

export interface RdpAssessment {
  /** Whether an RDP client would get a session (the emulator's ground truth; no probe reports this). */
  readonly connectable: boolean;
  readonly problems: readonly string[];
}

/** SCHANNEL: Enabled=0 switches TLS 1.2 off; DisabledByDefault<>0 keeps it off for a server that does not ask. */
function tls12Usable(registry: Registry): boolean {
  const enabled = registryDword(registry, HKLM.tls12Server, 'Enabled');
  const disabledByDefault = registryDword(registry, HKLM.tls12Server, 'DisabledByDefault');
  return enabled !== 0 && (disabledByDefault === null || disabledByDefault === 0);
}

/** A Group Policy value wins over RDP-Tcp; absent or out of range means the Windows default. */
function effectiveDword(registry: Registry, name: string, fallback: number, max: number): number {
  const inRange = (v: number | null): v is number => v !== null && v >= 0 && v <= max;
  const policy = registryDword(registry, HKLM.tsPolicy, name);
  if (inRange(policy)) return policy;
  const local = registryDword(registry, HKLM.rdpTcp, name);
  return inRange(local) ? local : fallback;
}

function isSelfSigned(cert: Certificate): boolean {
  return cert.subject === cert.issuer;
}

function expired(cert: Certificate, now: number): boolean {
  return Date.parse(cert.notAfter) <= now;
}

function bindingHash(registry: Registry): string | null {
  const value = findPath(registry, HKLM.rdpTcp)?.[1]['SSLCertificateSHA1Hash'];
  if (value === undefined) return null;
  if (value.kind === 'Binary') return value.value.map((b) => b.toString(16).padStart(2, '0')).join('').toUpperCase();
  return String(value.value).toUpperCase();
}

/** The certificate the listener presents: the custom binding when set, else the newest usable self-signed one. */
function certificateProblems(state: WindowsState, now: number): string[] {
  const hash = bindingHash(state.registry);
  if (hash !== null) {
    const bound = (findPath(state.certificates, PERSONAL_STORE)?.[1] ?? []).find((c) => c.thumbprint === hash);
    return bound === undefined || expired(bound, now) || !bound.hasPrivateKey ? ['bound-certificate-unusable'] : [];
  }
  const store = findPath(state.certificates, REMOTE_DESKTOP_STORE)?.[1] ?? [];
  const candidate = [...store].sort((a, b) => Date.parse(b.notAfter) - Date.parse(a.notAfter)).find((c) => isSelfSigned(c) && c.hasPrivateKey && !expired(c, now));
  if (candidate === undefined) return ['no-usable-certificate'];
  // The private key lives in the MachineKeys file; Schannel opens it as NETWORK SERVICE (event 36870 when it can't).
  const keyPath = keyFilePath(state);
  const keyFile = keyPath === null ? null : findPath(state.files, keyPath);
  if (keyFile === null) return ['private-key-missing'];
  const folder = findPath(state.files, machineKeysFolder(state));
  if (folder === null || !folderListableBy(folder[1].sddl, 'NS')) return ['machinekeys-folder-inaccessible'];
  if (!keyFileReadableBy(keyFile[1].sddl, 'NS')) return ['private-key-inaccessible'];
  return [];
}

/** Ground truth for tests and the demo: would an RDP connection succeed right now? */
export function assessRdp(state: WindowsState): RdpAssessment {
  const now = Date.parse(state.now);
  const problems: string[] = [];
  const loaded = state.termServiceLoaded;
  if (state.services['TermService']?.status !== 'Running' || loaded === null) {
    return { connectable: false, problems: ['termservice-not-running'] };
  }
  if (!state.tcpListeners.includes(rdpPort(loaded.registry))) problems.push('not-listening');
  const securityLayer = effectiveDword(loaded.registry, 'SecurityLayer', 2, 2);
  // NLA is read per connection, so the current registry decides it.
  const nla = effectiveDword(state.registry, 'UserAuthentication', 1, 1) !== 0;
  // Negotiate (1) without NLA falls back to the RDP security layer when TLS fails.
  const needsTls = securityLayer === 2 || nla;
  if (needsTls) {
    if (!tls12Usable(loaded.registry)) problems.push('tls12-unavailable');
    problems.push(...certificateProblems(state, now));
  }
  if (nla && state.domain.partOfDomain && state.domain.secureChannel !== true) problems.push('nla-dc-unreachable');
  return { connectable: problems.length === 0, problems };
}

/** Convenience for tests: the string value of a registry value, or null. */
export function registryText(state: WindowsState, key: string, name: string): string | null {
  return registryString(state.registry, key, name);
}
