/**
 * Windows, as the emulator knows it: building machine states (emulator/windows-state.ts), the
 * RDP listener as a client meets it, and the RDP acceptance oracle. What a payload does to a
 * state is never modelled here: the emulator runs the real composed payloads under PowerShell
 * against the Windows double (emulator/double/WindowsDouble.ps1), and reads the changed state
 * back.
 *
 * `rdpHandshake` answers what a client doing the payload's loopback check would observe right
 * now (TCP connect, X.224 negotiation, TLS up to the served certificate); the double's
 * Test-RrRdpHandshake asks it through the PowerShell host during a run. `assessRdp` answers the
 * question the probe never does: would a remote RDP client's connection succeed? It is built on
 * the same handshake at the VM's primary address, plus the guest firewall, the fallback to
 * standard RDP security and NLA's need of a domain controller. It judges from the certificate,
 * whether TermService (NETWORK SERVICE) can read the key, TLS 1.2, and what TermService loaded
 * when it last started. It is the ground truth `npm start` and the end-to-end tests hold
 * verdicts to.
 */
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { NEG_FAILURE, RDP_PROTOCOL, type HandshakeError, type HandshakeStage } from '../src/contract/facts.js';
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
// Firewall and event log: what Windows holds, for building states

/** NetworkCategory of a connected network -> the firewall profile Windows applies to it. */
const CATEGORY_PROFILE: Readonly<Record<Firewall['networkCategories'][number], FirewallProfileName>> = {
  DomainAuthenticated: 'Domain',
  Private: 'Private',
  Public: 'Public',
};

type FirewallProfileName = 'Domain' | 'Private' | 'Public';

/** The profiles of the connected networks; Public when none is connected (Windows' default category). */
export function activeFirewallProfiles(firewall: Firewall): FirewallProfileName[] {
  const profiles = new Set(firewall.networkCategories.map((c) => CATEGORY_PROFILE[c]));
  return profiles.size === 0 ? ['Public'] : ALL_PROFILES.filter((p) => profiles.has(p));
}

/** The rule of that Name in that store (default the local one), or throws: scenarios name rules that exist. */
export function firewallRule(state: WindowsState, name: string, store: FirewallRule['policyStore'] = 'Local'): FirewallRule {
  const rule = state.firewall.rules.find((r) => r.name.toLowerCase() === name.toLowerCase() && r.policyStore === store);
  if (rule === undefined) throw new Error(`no ${store} firewall rule ${name} in the state`);
  return rule;
}

export function setFirewallRuleEnabled(state: WindowsState, name: string, enabled: boolean, store: FirewallRule['policyStore'] = 'Local'): void {
  firewallRule(state, name, store).enabled = enabled;
}

/** The user-mode Remote Desktop rules (TCP and UDP) that admit RDP clients. */
export const RDP_USER_MODE_RULES = ['RemoteDesktop-UserMode-In-TCP', 'RemoteDesktop-UserMode-In-UDP'] as const;

/**
 * First lines of the System-log messages Windows writes for the RDP causes the remediator knows
 * (playbook section 4.1), by provider and event id.
 */
export const SYSTEM_EVENT_TEXT = {
  schannelKeyAccess:
    'A fatal error occurred when attempting to access the TLS server credential private key. The error code returned from the cryptographic module is 0x8009030D. The internal error state is 10001.',
  schannelCredential: 'A fatal error occurred while creating a TLS server credential. The internal error state is 10013.',
  rcmCreateFailed:
    'The RD Session Host Server has failed to create a new self signed certificate to be used for RD Session Host Server authentication on SSL connections. The relevant status code was Keyset does not exist.',
  rcmReplaceFailed:
    'The RD Session Host Server has failed to replace the expired self signed certificate used for RD Session Host Server authentication on SSL connections. The relevant status code was Access is denied.',
  termDdProtocol: 'The Terminal Server security layer detected an error in the protocol stream and has disconnected the client. Client IP: 203.0.113.25.',
} as const;

export const EVENT_PROVIDERS = { schannel: 'Schannel', rcm: 'Microsoft-Windows-TerminalServices-RemoteConnectionManager', termDd: 'TermDD' } as const;

/**
 * Appends events to the System log (kept oldest first), one per `minutesAgo`, relative to the
 * state's clock: deterministic for a given `now`.
 */
export function logSystemEvents(state: WindowsState, provider: string, id: number, message: string, minutesAgo: readonly number[]): void {
  const now = Date.parse(state.now);
  const log = (state.events ??= []);
  for (const minutes of minutesAgo) log.push({ provider, id, timeCreated: isoSeconds(new Date(now - minutes * 60_000)), message });
  log.sort((a, b) => Date.parse(a.timeCreated) - Date.parse(b.timeCreated));
}

// ---------------------------------------------------------------------------------------------
// The RDP listener as a client meets it, and the acceptance oracle

/** Where a client dials the listener. */
export interface RdpHandshakeTarget {
  readonly address: string;
  readonly port: number;
  /** The client's bound per stage; only a connect that nobody answers takes that long. */
  readonly timeoutMs?: number;
}

/**
 * What an RDP client that requests PROTOCOL_SSL|PROTOCOL_HYBRID and stops after TLS observes:
 * Test-RrRdpHandshake's answer (scripts/lib/Access.Handshake.ps1), in camelCase.
 */
export interface RdpHandshakeAnswer {
  readonly address: string;
  readonly port: number;
  readonly stage: HandshakeStage;
  readonly error: HandshakeError | null;
  readonly message: string | null;
  readonly failureCode: number | null;
  readonly selectedProtocol: number | null;
  readonly tlsVersion: string | null;
  readonly cipher: string | null;
  readonly certificateThumbprint: string | null;
  /** ISO 8601 UTC. */
  readonly certificateNotAfter: string | null;
  readonly connectMs: number | null;
  readonly negotiateMs: number | null;
  readonly tlsMs: number | null;
}

/** Fixed stage times: the model answers the same for the same state. */
const CONNECT_MS = 1;
const NEGOTIATE_MS = 2;
const TLS_MS = 6;
const DEFAULT_CONNECT_TIMEOUT_MS = 5000;
/** What Schannel picks on Windows Server 2022 for a TLS 1.2 client with an RSA certificate. */
export const HANDSHAKE_CIPHER = 'TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384';

/** The first lines of what .NET's TcpClient and SslStream throw, as the handshake check reports them. */
const CLIENT_MESSAGES = {
  refused: (address: string, port: number) => `No connection could be made because the target machine actively refused it. ${address}:${port}`,
  timeout:
    'A connection attempt failed because the connected party did not properly respond after a period of time, or established connection failed because connected host has failed to respond.',
  protocol: 'the answer was not an X.224 Connection Confirm',
  reset: 'Unable to read data from the transport connection: An existing connection was forcibly closed by the remote host.',
  tls: 'A call to SSPI failed, see inner exception.',
} as const;

const NEG_FAILURE_NAME: Readonly<Record<number, string>> = {
  [NEG_FAILURE.sslNotAllowedByServer]: 'SSL_NOT_ALLOWED_BY_SERVER',
  [NEG_FAILURE.sslCertNotOnServer]: 'SSL_CERT_NOT_ON_SERVER',
};

/** Why the listener cannot serve a certificate for TLS, as the oracle names it. */
type CertificateProblem = 'bound-certificate-unusable' | 'no-usable-certificate' | 'private-key-missing' | 'machinekeys-folder-inaccessible' | 'private-key-inaccessible';

interface ListenerCertificate {
  readonly served: Certificate | null;
  readonly problem: CertificateProblem | null;
}

/** The running RDP listener, as TermService set it up at its last start. */
interface Listener {
  /** The port it listens on: PortNumber as TermService loaded it. */
  readonly port: number;
  /** RDP-Tcp LanAdapter <> 0: it accepts on that one adapter's address only, not on loopback. */
  readonly boundToAdapter: boolean;
  readonly securityLayer: number;
  /** NLA is read per connection, so the current registry decides it. */
  readonly nla: boolean;
  readonly tls12: boolean;
  readonly certificate: ListenerCertificate;
}

function listener(state: WindowsState): Listener | null {
  const loaded = state.termServiceLoaded;
  if (state.services['TermService']?.status !== 'Running' || loaded === null) return null;
  return {
    port: rdpPort(loaded.registry),
    boundToAdapter: (registryDword(loaded.registry, HKLM.rdpTcp, 'LanAdapter') ?? 0) !== 0,
    securityLayer: effectiveDword(loaded.registry, 'SecurityLayer', 2, 2),
    nla: effectiveDword(state.registry, 'UserAuthentication', 1, 1) !== 0,
    tls12: tls12Usable(loaded.registry),
    certificate: listenerCertificate(state, Date.parse(state.now)),
  };
}

/** The conditions that fail a client's TLS handshake with this listener, whichever shows first. */
function tlsProblems(l: Listener): string[] {
  return [...(l.tls12 ? [] : ['tls12-unavailable']), ...(l.certificate.problem === null ? [] : [l.certificate.problem])];
}

type Route = 'loopback' | 'adapter' | 'elsewhere';

function routeOf(state: WindowsState, address: string): Route {
  const a = address.trim().toLowerCase();
  if (a === 'localhost' || a === '::1' || /^127\.\d+\.\d+\.\d+$/.test(a)) return 'loopback';
  return state.primaryIPv4 !== null && a === state.primaryIPv4 ? 'adapter' : 'elsewhere';
}

function handshakeOn(state: WindowsState, target: RdpHandshakeTarget, route: Route): RdpHandshakeAnswer {
  const { address, port } = target;
  const base: RdpHandshakeAnswer = {
    address,
    port,
    stage: 'connect',
    error: null,
    message: null,
    failureCode: null,
    selectedProtocol: null,
    tlsVersion: null,
    cipher: null,
    certificateThumbprint: null,
    certificateNotAfter: null,
    connectMs: CONNECT_MS,
    negotiateMs: null,
    tlsMs: null,
  };
  if (route === 'elsewhere') return { ...base, error: 'timeout', message: CLIENT_MESSAGES.timeout, connectMs: target.timeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS };
  const refused: RdpHandshakeAnswer = { ...base, error: 'refused', message: CLIENT_MESSAGES.refused(address, port) };
  if (!state.tcpListeners.includes(port)) return refused;
  const l = listener(state);
  // Something else listens there (TermService stopped, or on another port): no Connection Confirm.
  const negotiating: RdpHandshakeAnswer = { ...base, stage: 'negotiate', negotiateMs: NEGOTIATE_MS };
  if (l === null || l.port !== port) return { ...negotiating, error: 'protocol', message: CLIENT_MESSAGES.protocol };
  // Bound to one adapter, the listener's socket is not on loopback.
  if (route === 'loopback' && l.boundToAdapter) return refused;
  const failure = (code: number): RdpHandshakeAnswer => ({ ...negotiating, error: 'negotiation-failure', failureCode: code, message: `RDP_NEG_FAILURE ${NEG_FAILURE_NAME[code] ?? code}` });
  if (l.securityLayer === 0) return failure(NEG_FAILURE.sslNotAllowedByServer);
  if (l.certificate.problem === 'no-usable-certificate') return failure(NEG_FAILURE.sslCertNotOnServer);
  const tls: RdpHandshakeAnswer = { ...negotiating, stage: 'tls', selectedProtocol: l.nla ? RDP_PROTOCOL.hybrid : RDP_PROTOCOL.ssl, tlsMs: TLS_MS };
  // Schannel cannot build a server credential without TLS 1.2 (event 36871): the handshake fails.
  if (!l.tls12) return { ...tls, error: 'tls', message: CLIENT_MESSAGES.tls };
  // A certificate whose key TermService cannot open (36870): the server drops the connection mid-handshake.
  if (l.certificate.served === null) return { ...tls, error: 'reset', message: CLIENT_MESSAGES.reset };
  return {
    ...tls,
    stage: 'done',
    tlsVersion: 'Tls12',
    cipher: HANDSHAKE_CIPHER,
    certificateThumbprint: l.certificate.served.thumbprint,
    certificateNotAfter: l.certificate.served.notAfter,
  };
}

/**
 * What a client doing the loopback check (Test-RrRdpHandshake) would observe against this state
 * right now: TCP connect, X.224 negotiation requesting SSL|HYBRID, TLS up to the served
 * certificate. Deterministic: the same state and target give the same answer.
 */
export function rdpHandshake(state: WindowsState, target: RdpHandshakeTarget): RdpHandshakeAnswer {
  return handshakeOn(state, target, routeOf(state, target.address));
}

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
function listenerCertificate(state: WindowsState, now: number): ListenerCertificate {
  const hash = bindingHash(state.registry);
  if (hash !== null) {
    const bound = (findPath(state.certificates, PERSONAL_STORE)?.[1] ?? []).find((c) => c.thumbprint === hash);
    return bound === undefined || expired(bound, now) || !bound.hasPrivateKey ? { served: null, problem: 'bound-certificate-unusable' } : { served: bound, problem: null };
  }
  const store = findPath(state.certificates, REMOTE_DESKTOP_STORE)?.[1] ?? [];
  const candidate = [...store].sort((a, b) => Date.parse(b.notAfter) - Date.parse(a.notAfter)).find((c) => isSelfSigned(c) && c.hasPrivateKey && !expired(c, now));
  if (candidate === undefined) return { served: null, problem: 'no-usable-certificate' };
  // The private key lives in the MachineKeys file; Schannel opens it as NETWORK SERVICE (event 36870 when it can't).
  const keyPath = keyFilePath(state);
  const keyFile = keyPath === null ? null : findPath(state.files, keyPath);
  if (keyFile === null) return { served: null, problem: 'private-key-missing' };
  const folder = findPath(state.files, machineKeysFolder(state));
  if (folder === null || !folderListableBy(folder[1].sddl, 'NS')) return { served: null, problem: 'machinekeys-folder-inaccessible' };
  if (!keyFileReadableBy(keyFile[1].sddl, 'NS')) return { served: null, problem: 'private-key-inaccessible' };
  return { served: candidate, problem: null };
}

function localPortAdmits(entry: string, port: number): boolean {
  if (entry.toLowerCase() === 'any') return true;
  const range = /^(\d+)-(\d+)$/.exec(entry);
  if (range) return Number(range[1]) <= port && port <= Number(range[2]);
  return /^\d+$/.test(entry) && Number(entry) === port;
}

/** Whether an enabled inbound rule of this action applies to RDP's TCP connection on `port` for the profile. */
function ruleApplies(rule: FirewallRule, action: FirewallRule['action'], port: number, profile: FirewallProfileName): boolean {
  return (
    rule.enabled &&
    rule.direction === 'Inbound' &&
    rule.action === action &&
    (rule.protocol === 'TCP' || rule.protocol === 'Any') &&
    rule.profiles.includes(profile) &&
    rule.localPorts.some((p) => localPortAdmits(p, port)) &&
    // The listener runs in TermService's svchost: a rule scoped to another service does not match it.
    (rule.service === null || rule.service.toLowerCase() === 'termservice')
  );
}

/**
 * Whether the guest firewall lets a remote client's TCP connection to `port` in: for every active
 * profile where the firewall is on, an enabled inbound Allow rule (of any group or store) admits
 * it and no enabled inbound Block rule matches it (Block wins). The client's network is not
 * known to the state, so every active profile must admit it. A firewall that cannot be read
 * (NetSecurity, mpssvc) still filters by its rules. Loopback is never filtered.
 */
export function firewallAdmits(state: WindowsState, port: number): boolean {
  const fw = state.firewall;
  return activeFirewallProfiles(fw).every(
    (profile) => !fw.profiles[profile] || (fw.rules.some((r) => ruleApplies(r, 'Allow', port, profile)) && !fw.rules.some((r) => ruleApplies(r, 'Block', port, profile))),
  );
}

/**
 * Ground truth for tests and the demo: would a remote RDP client (mstsc) get a session right now?
 * It dials the configured PortNumber on the VM's primary address, through the guest firewall,
 * does the handshake rdpHandshake models, falls back to standard RDP security where the server
 * allows it (SecurityLayer 0 or 1 without NLA), and with NLA needs a domain controller when the
 * VM is domain-joined. `problems` lists every cause that blocks it, not only the first one hit.
 */
export function assessRdp(state: WindowsState): RdpAssessment {
  const l = listener(state);
  if (l === null) return { connectable: false, problems: ['termservice-not-running'] };
  const port = rdpPort(state.registry);
  const answer = handshakeOn(state, { address: state.primaryIPv4 ?? 'primary adapter', port }, 'adapter');
  const problems: string[] = [];
  if (answer.stage === 'connect' || answer.error === 'protocol') problems.push('not-listening');
  if (!firewallAdmits(state, port)) problems.push('firewall-blocks-port');
  // Standard RDP security carries no NLA: CredSSP runs inside TLS.
  if (l.securityLayer === 0 && l.nla) problems.push('nla-needs-tls');
  else if (l.securityLayer === 2 || l.nla) problems.push(...tlsProblems(l));
  if (l.nla && state.domain.partOfDomain && state.domain.secureChannel !== true) problems.push('nla-dc-unreachable');
  return { connectable: problems.length === 0, problems };
}

/** Convenience for tests: the string value of a registry value, or null. */
export function registryText(state: WindowsState, key: string, name: string): string | null {
  return registryString(state.registry, key, name);
}
