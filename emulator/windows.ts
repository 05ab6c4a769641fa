/**
 * The emulator's model of the Windows side of a VM: the registry values, certificate stores,
 * MachineKeys ACLs and services that the probe reads, and the effects of every fix action as
 * docs/payload-contract.md specifies them. Running a payload against this model prints the same
 * one JSON line the real script prints, so the TypeScript side can't tell the difference.
 *
 * The state is plain data (structuredClone-able): the emulator hands out copies, and a dry run
 * simulates an action on a clone.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { ActionIdSchema, type ActionId } from '../src/contract/actions.js';
import type { CertFact, ProbeFacts, ServiceState, Tls12State } from '../src/contract/facts.js';
import { PAYLOAD_MARKER, type PayloadKind } from '../src/contract/parameters.js';
import { RESULT_LINE_MAX_BYTES, type ActionResult, type FixResult, type PayloadError, type ProbeResult, type Restore, type Values } from '../src/contract/results.js';
import { DEFAULT_KEY_FILE_SDDL, DEFAULT_MACHINEKEYS_FOLDER_SDDL, keyFileAclOk, machineKeysFolderAclOk, withDefaultFolderDacl, withKeyFileGrants } from './sddl.js';

export interface WindowsCertificate {
  /** SHA-1 thumbprint, 40 upper-case hex digits. */
  thumb: string;
  subject: string;
  /** Self-signed when equal to `subject`. */
  issuer: string;
  notBefore: string;
  notAfter: string;
  hasKey: boolean;
  /** Carries the certificate-template extension (GPO auto-enrolment). */
  template: boolean;
}

export type RdpServiceName = 'TermService' | 'SessionEnv' | 'UmRdpService';

/** What TermService loaded when it last started: registry changes reach the listener only on a restart. */
export interface ListenerConfig {
  port: number;
  fDenyTSConnections: number;
  /** Effective value (policy over RDP-Tcp over default). */
  securityLayer: number;
  tls12Server: Tls12State;
}

/** A registry value is `null` when absent. */
export interface WindowsRegistry {
  /** HKLM\SYSTEM\CurrentControlSet\Control\Terminal Server */
  terminalServer: { fDenyTSConnections: number | null };
  /** ...\Terminal Server\WinStations */
  winStations: { SelfSignedCertStore: string | null };
  /** ...\Terminal Server\WinStations\RDP-Tcp */
  rdpTcp: {
    SSLCertificateSHA1Hash: string | null;
    SecurityLayer: number | null;
    UserAuthentication: number | null;
    MinEncryptionLevel: number | null;
    PortNumber: number | null;
  };
  /** ...\SCHANNEL\Protocols\TLS 1.2\Server; `null` when the key itself is absent. */
  schannelTls12Server: { Enabled: number | null; DisabledByDefault: number | null } | null;
  /** Values Group Policy enforces (HKLM\SOFTWARE\Policies\Microsoft\Windows NT\Terminal Services). */
  policies: {
    SecurityLayer: number | null;
    UserAuthentication: number | null;
    MinEncryptionLevel: number | null;
    CertTemplateName: string | null;
  };
}

export interface WindowsState {
  os: { caption: string; build: string };
  computerName: string;
  machineGuid: string;
  registry: WindowsRegistry;
  /** False makes Win32_TSGeneralSetting unreadable (binding type reads as null). */
  wmiReadable: boolean;
  stores: {
    /** Cert:\LocalMachine\Remote Desktop */
    remoteDesktop: WindowsCertificate[];
    /** Cert:\LocalMachine\My */
    my: WindowsCertificate[];
  };
  machineKeys: {
    folderSddl: string;
    /** The f686aace6942fb7f7ceb231212eef4a4_<MachineGuid> file; `null` when missing. */
    keyFileSddl: string | null;
  };
  services: Record<RdpServiceName, ServiceState>;
  /** `null` while TermService is not running. */
  listener: ListenerConfig | null;
  domain: { joined: boolean; secureChannel: 'ok' | 'broken' };
  rdcb: boolean;
  /** Files the payloads wrote (backups, manifests), by Windows path. */
  files: Record<string, string>;
  faults: {
    /** One-shot: the next run of the action throws with this message. */
    actionExceptions: Partial<Record<ActionId, string>>;
  };
}

export const BACKUP_ROOT = 'C:\\ProgramData\\RdpRemediation';
const KEY_FILE_PREFIX = 'f686aace6942fb7f7ceb231212eef4a4_';
const MACHINE_KEYS_DIR = 'C:\\ProgramData\\Microsoft\\Crypto\\RSA\\MachineKeys';
const RDP_TCP_KEY = 'HKEY_LOCAL_MACHINE\\SYSTEM\\CurrentControlSet\\Control\\Terminal Server\\WinStations\\RDP-Tcp';
const TLS12_KEY = 'HKEY_LOCAL_MACHINE\\SYSTEM\\CurrentControlSet\\Control\\SecurityProviders\\SCHANNEL\\Protocols\\TLS 1.2';
const TLS12_KEY_SHORT = 'HKLM\\SYSTEM\\CurrentControlSet\\Control\\SecurityProviders\\SCHANNEL\\Protocols\\TLS 1.2';
/** The DACL-only SDDL `repair-key-acl` writes on the MachineKeys folder. */
const MACHINE_KEYS_FOLDER_DACL = 'D:PAI(A;;0x12019f;;;WD)(A;;FA;;;BA)';
/** Windows issues the RDP self-signed certificate for six months. */
const SELF_SIGNED_LIFETIME_MS = 182 * 24 * 3600 * 1000;

// ---------------------------------------------------------------------------------------------
// Building states

export function newThumbprint(): string {
  return randomBytes(20).toString('hex').toUpperCase();
}

function isoSeconds(date: Date): string {
  return date.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

export function selfSignedCertificate(computerName: string, notAfter: Date, options: { hasKey?: boolean; template?: boolean } = {}): WindowsCertificate {
  return {
    thumb: newThumbprint(),
    subject: `CN=${computerName}`,
    issuer: `CN=${computerName}`,
    notBefore: isoSeconds(new Date(notAfter.getTime() - SELF_SIGNED_LIFETIME_MS)),
    notAfter: isoSeconds(notAfter),
    hasKey: options.hasKey ?? true,
    template: options.template ?? false,
  };
}

export function caIssuedCertificate(subject: string, issuer: string, notAfter: Date, options: { hasKey?: boolean; template?: boolean } = {}): WindowsCertificate {
  return {
    thumb: newThumbprint(),
    subject,
    issuer,
    notBefore: isoSeconds(new Date(notAfter.getTime() - 365 * 24 * 3600 * 1000)),
    notAfter: isoSeconds(notAfter),
    hasKey: options.hasKey ?? true,
    template: options.template ?? false,
  };
}

export interface HealthyWindowsOptions {
  computerName: string;
  now?: Date;
  caption?: string;
  build?: string;
}

/** A Windows Server 2022 VM whose RDP works: valid self-signed certificate, default ACLs, services running. */
export function healthyWindows(options: HealthyWindowsOptions): WindowsState {
  const now = options.now ?? new Date();
  const state: WindowsState = {
    os: { caption: options.caption ?? 'Microsoft Windows Server 2022 Datacenter', build: options.build ?? '20348' },
    computerName: options.computerName,
    machineGuid: randomUUID(),
    registry: {
      terminalServer: { fDenyTSConnections: 0 },
      winStations: { SelfSignedCertStore: 'Remote Desktop' },
      rdpTcp: { SSLCertificateSHA1Hash: null, SecurityLayer: 2, UserAuthentication: 1, MinEncryptionLevel: 2, PortNumber: 3389 },
      schannelTls12Server: null,
      policies: { SecurityLayer: null, UserAuthentication: null, MinEncryptionLevel: null, CertTemplateName: null },
    },
    wmiReadable: true,
    stores: { remoteDesktop: [selfSignedCertificate(options.computerName, new Date(now.getTime() + 150 * 24 * 3600 * 1000))], my: [] },
    machineKeys: { folderSddl: DEFAULT_MACHINEKEYS_FOLDER_SDDL, keyFileSddl: DEFAULT_KEY_FILE_SDDL },
    services: { TermService: 'Running', SessionEnv: 'Running', UmRdpService: 'Running' },
    listener: null,
    domain: { joined: false, secureChannel: 'ok' },
    rdcb: false,
    files: {},
    faults: { actionExceptions: {} },
  };
  return bootListener(state);
}


// ---------------------------------------------------------------------------------------------
// Reading settings and facts, with the payload's rules for absent and out-of-range values.

/** A DWORD setting: absent or outside its documented range reads as the Windows default. */
function dwordSetting(value: number | null, fallback: number, min: number, max: number): number {
  return value === null || value < min || value > max ? fallback : value;
}

/** A 0/1 switch: any non-zero value switches it on. */
function flagSetting(value: number | null, fallback: number): number {
  return value === null ? fallback : value !== 0 ? 1 : 0;
}

function securityLayerSetting(state: WindowsState): number {
  return dwordSetting(state.registry.rdpTcp.SecurityLayer, 2, 0, 2);
}

function userAuthenticationSetting(state: WindowsState): number {
  return flagSetting(state.registry.rdpTcp.UserAuthentication, 1);
}

function portSetting(state: WindowsState): number {
  return dwordSetting(state.registry.rdpTcp.PortNumber, 3389, 1, 65535);
}

export function tls12ServerState(state: WindowsState): Tls12State {
  const key = state.registry.schannelTls12Server;
  const enabled = key?.Enabled ?? null;
  const disabledByDefault = key?.DisabledByDefault ?? null;
  if (enabled === null && disabledByDefault === null) return 'os-default';
  if (enabled === 0) return 'disabled';
  if (disabledByDefault !== null && disabledByDefault !== 0) return 'disabled-by-default';
  return 'enabled';
}

function tlsUsable(tls: Tls12State): boolean {
  return tls === 'enabled' || tls === 'os-default';
}

/** What the listener and the handshake use: a Group Policy value wins over RDP-Tcp. */
function effectiveSecurityLayer(state: WindowsState): number {
  return dwordSetting(state.registry.policies.SecurityLayer, securityLayerSetting(state), 0, 2);
}

function effectiveUserAuthentication(state: WindowsState): number {
  return state.registry.policies.UserAuthentication === null ? userAuthenticationSetting(state) : flagSetting(state.registry.policies.UserAuthentication, 1);
}

function listenerConfig(state: WindowsState): ListenerConfig {
  return {
    port: portSetting(state),
    fDenyTSConnections: flagSetting(state.registry.terminalServer.fDenyTSConnections, 0),
    securityLayer: effectiveSecurityLayer(state),
    tls12Server: tls12ServerState(state),
  };
}

/** Sets the listener to what a TermService started on the current configuration would load. */
export function bootListener(state: WindowsState): WindowsState {
  state.listener = state.services.TermService === 'Running' ? listenerConfig(state) : null;
  return state;
}

/**
 * A TCP listener on the configured port. The listener runs on the configuration TermService
 * loaded when it started: it is down when connections were denied, or when it started with the
 * TLS security layer and no usable TLS 1.2; and a port change only applies after a restart.
 */
export function isListening(state: WindowsState): boolean {
  const l = state.listener;
  if (state.services.TermService !== 'Running' || l === null) return false;
  if (l.fDenyTSConnections !== 0) return false;
  if (l.securityLayer === 2 && !tlsUsable(l.tls12Server)) return false;
  return l.port === portSetting(state);
}

function isExpired(cert: WindowsCertificate, now: Date): boolean {
  return Date.parse(cert.notAfter) <= now.getTime();
}

function isSelfSigned(cert: WindowsCertificate): boolean {
  return cert.subject === cert.issuer;
}

function certFact(cert: WindowsCertificate): CertFact {
  return { thumb: cert.thumb.toUpperCase(), notAfter: cert.notAfter, hasKey: cert.hasKey, selfSigned: isSelfSigned(cert), template: cert.template };
}

function newestFirst(certs: readonly WindowsCertificate[]): WindowsCertificate[] {
  return [...certs].sort((a, b) => Date.parse(b.notAfter) - Date.parse(a.notAfter));
}

/** RDP-Tcp SSLCertificateSHA1Hash as upper-case hex (REG_BINARY), null when absent. */
function bindingHashHex(state: WindowsState): string | null {
  const raw = state.registry.rdpTcp.SSLCertificateSHA1Hash;
  return raw === null ? null : raw.replace(/[^0-9A-Fa-f]/g, '').toUpperCase();
}

function findCertificate(certs: readonly WindowsCertificate[], thumb: string): WindowsCertificate | null {
  return certs.find((c) => c.thumb.toUpperCase() === thumb.toUpperCase()) ?? null;
}

/** WMI SSLCertificateSHA1HashType: 0 invalid, 1 self-signed, 2 GPO, 3 custom. */
function bindingType(state: WindowsState): number | null {
  if (!state.wmiReadable) return null;
  if (state.registry.rdpTcp.SSLCertificateSHA1Hash !== null) return state.registry.policies.CertTemplateName !== null ? 2 : 3;
  return state.stores.remoteDesktop.length > 0 ? 1 : 0;
}

/** The facts the probe reports, read the way the payload reads them. */
export function readFacts(state: WindowsState): ProbeFacts {
  const rawHash = bindingHashHex(state);
  const hash = rawHash !== null && /^[0-9A-F]{40}$/.test(rawHash) ? rawHash : null;
  const bound = hash === null ? null : findCertificate(state.stores.my, hash);
  const keyFileSddl = state.machineKeys.keyFileSddl;
  const policies = state.registry.policies;
  return {
    os: { caption: state.os.caption.trim(), build: state.os.build.trim() },
    cert: {
      storeName: state.registry.winStations.SelfSignedCertStore,
      store: newestFirst(state.stores.remoteDesktop).slice(0, 3).map(certFact),
      binding: { hash, type: bindingType(state), cert: bound === null ? null : certFact(bound) },
    },
    keys: {
      file: keyFileSddl === null ? 'missing' : 'present',
      fileSddl: keyFileSddl,
      fileOk: keyFileSddl !== null && keyFileAclOk(keyFileSddl),
      folderSddl: state.machineKeys.folderSddl,
      folderOk: machineKeysFolderAclOk(state.machineKeys.folderSddl),
    },
    rdp: {
      securityLayer: securityLayerSetting(state),
      userAuthentication: userAuthenticationSetting(state),
      minEncryptionLevel: dwordSetting(state.registry.rdpTcp.MinEncryptionLevel, 2, 1, 4),
      portNumber: portSetting(state),
      listening: isListening(state),
      fDenyTSConnections: flagSetting(state.registry.terminalServer.fDenyTSConnections, 0),
    },
    policy: {
      securityLayer: policies.SecurityLayer !== null,
      userAuthentication: policies.UserAuthentication !== null,
      minEncryptionLevel: policies.MinEncryptionLevel !== null,
      certTemplate: policies.CertTemplateName !== null,
    },
    tls12Server: tls12ServerState(state),
    services: { TermService: state.services.TermService, SessionEnv: state.services.SessionEnv, UmRdpService: state.services.UmRdpService },
    domain: { joined: state.domain.joined, secureChannel: state.domain.joined ? state.domain.secureChannel : 'n/a' },
    rdcb: state.rdcb,
  };
}

/** The Remote Desktop store as Windows (and the regenerate action) judge it. */
function rdpCertificateState(state: WindowsState, now: Date): { newestSelfSigned: WindowsCertificate | null; usable: WindowsCertificate | null; removable: WindowsCertificate[] } {
  // HasPrivateKey only says the certificate names a key container; without the key file the key is gone.
  const keyFilePresent = state.machineKeys.keyFileSddl !== null;
  const certificates = newestFirst(state.stores.remoteDesktop);
  const selfSigned = certificates.filter(isSelfSigned);
  return {
    newestSelfSigned: selfSigned[0] ?? null,
    usable: selfSigned.find((c) => c.hasKey && keyFilePresent && !isExpired(c, now)) ?? null,
    removable: selfSigned.filter((c) => !c.template && (isExpired(c, now) || !c.hasKey || !keyFilePresent)),
  };
}

export interface RdpAssessment {
  /** Whether an RDP client would get a session (the emulator's ground truth; no probe reports this). */
  readonly connectable: boolean;
  readonly problems: readonly string[];
}

/** Ground truth for tests and the demo: would an RDP connection succeed right now? */
export function assessRdp(state: WindowsState, now: Date): RdpAssessment {
  const problems: string[] = [];
  if (!isListening(state)) problems.push('not-listening');
  const nla = effectiveUserAuthentication(state) === 1;
  // The TLS layer, and CredSSP (NLA) on top of it, need TLS 1.2 in TermService and a usable certificate.
  if (effectiveSecurityLayer(state) === 2 || nla) {
    if (state.listener !== null && !tlsUsable(state.listener.tls12Server)) problems.push('tls12-unavailable');
    const hash = bindingHashHex(state);
    if (hash !== null) {
      const bound = findCertificate(state.stores.my, hash);
      if (bound === null || isExpired(bound, now) || !bound.hasKey) problems.push('bound-certificate-unusable');
    } else {
      const usable = rdpCertificateState(state, now).usable;
      if (usable === null) problems.push('no-usable-certificate');
      else if (state.machineKeys.keyFileSddl === null || !keyFileAclOk(state.machineKeys.keyFileSddl)) problems.push('private-key-inaccessible');
      if (!machineKeysFolderAclOk(state.machineKeys.folderSddl)) problems.push('machinekeys-acl');
    }
  }
  if (nla && state.domain.joined && state.domain.secureChannel === 'broken') problems.push('nla-dc-unreachable');
  return { connectable: problems.length === 0, problems };
}

// ---------------------------------------------------------------------------------------------
// Services

function serviceNotFound(name: RdpServiceName): Error {
  return new Error(`Cannot find any service with service name '${name}'.`);
}

function startService(state: WindowsState, name: RdpServiceName, now: Date): void {
  if (state.services[name] === 'Missing') throw serviceNotFound(name);
  // UmRdpService depends on TermService: the SCM starts the dependency first.
  if (name === 'UmRdpService' && state.services.TermService !== 'Running') startService(state, 'TermService', now);
  state.services[name] = 'Running';
  if (name === 'TermService') state.listener = listenerConfig(state);
  if (name === 'SessionEnv') issueSelfSignedCertificateIfNeeded(state, now);
}

/** Restart-Service -Force: dependants (UmRdpService for TermService) stop with it and stay stopped. */
function restartService(state: WindowsState, name: RdpServiceName, now: Date): void {
  if (state.services[name] === 'Missing') throw serviceNotFound(name);
  if (name === 'TermService') {
    if (state.services.UmRdpService !== 'Missing') state.services.UmRdpService = 'Stopped';
    state.listener = null;
  }
  state.services[name] = 'Stopped';
  startService(state, name, now);
}

/**
 * What SessionEnv does at start: when the Remote Desktop store holds no usable self-signed
 * certificate it creates a key container and a new certificate. Creating the key file needs
 * the MachineKeys folder ACL to be intact; the new file gets the default ACL.
 */
function issueSelfSignedCertificateIfNeeded(state: WindowsState, now: Date): void {
  if (rdpCertificateState(state, now).usable !== null) return;
  if (!machineKeysFolderAclOk(state.machineKeys.folderSddl)) return;
  state.machineKeys.keyFileSddl = DEFAULT_KEY_FILE_SDDL;
  state.stores.remoteDesktop.unshift(selfSignedCertificate(state.computerName, new Date(now.getTime() + SELF_SIGNED_LIFETIME_MS)));
}

// ---------------------------------------------------------------------------------------------
// Backups (file contents are illustrative; their paths are what the contract fixes)

function regExport(key: string, values: Record<string, number | string | null>): string {
  const lines = ['Windows Registry Editor Version 5.00', '', `[${key}]`];
  for (const [name, value] of Object.entries(values)) {
    if (value === null) continue;
    if (typeof value === 'number') lines.push(`"${name}"=dword:${value.toString(16).padStart(8, '0')}`);
    else if (name === 'SSLCertificateSHA1Hash') lines.push(`"${name}"=hex:${value.match(/../g)?.join(',').toLowerCase() ?? ''}`);
    else lines.push(`"${name}"="${value}"`);
  }
  return lines.join('\r\n') + '\r\n';
}

function writeBackup(state: WindowsState, ctx: FixContext, name: string, content: () => string): string {
  const path = joinPath(ctx.backupDir ?? BACKUP_ROOT, name);
  // Several actions back up RDP-Tcp: the first export of a run is the state before the run.
  state.files[path] ??= content();
  return path;
}

function joinPath(parent: string, child: string): string {
  return `${parent.replace(/\\+$/, '')}\\${child}`;
}

// ---------------------------------------------------------------------------------------------
// Actions, step for step as scripts/lib/Actions.ps1 does them

interface FixContext {
  readonly now: Date;
  readonly dryRun: boolean;
  readonly backupDir: string | null;
  readonly restoreSecurityLayer: string;
  readonly restoreUserAuthentication: string;
  changedSoFar: boolean;
}

const MESSAGE_MAX_LENGTH = 400;

function limitText(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, Math.max(0, max - 3))}...`;
}

function payloadError(code: string, message: string): PayloadError {
  return { code, message: limitText(message, MESSAGE_MAX_LENGTH) };
}

function newActionResult(id: ActionId): ActionResult {
  return { id, changed: false, before: {}, after: {}, backup: null, verified: false, error: null };
}

function fail(result: ActionResult, code: string, message: string): void {
  result.error = payloadError(code, message);
}

/** The target state already holds: nothing to back up or change. Dry runs verify nothing. */
function unchanged(ctx: FixContext, result: ActionResult): void {
  result.after = { ...result.before };
  result.verified = !ctx.dryRun;
}

function restoreOf(securityLayer: string, userAuthentication: string): Restore {
  return { action: 'restore-rdp-security', parameters: { RestoreSecurityLayer: securityLayer, RestoreUserAuthentication: userAuthentication } };
}

function enableTls12Server(state: WindowsState, ctx: FixContext, result: ActionResult): void {
  const current = tls12ServerState(state);
  result.before = { tls12Server: current };
  if (current === 'enabled') return unchanged(ctx, result);
  result.after = { tls12Server: 'enabled' };
  if (ctx.dryRun) return;
  if (state.registry.schannelTls12Server !== null) {
    const key = state.registry.schannelTls12Server;
    result.backup = writeBackup(state, ctx, 'schannel-tls12.reg', () => regExport(`${TLS12_KEY}\\Server`, { ...key }));
  } else {
    // Nothing to export; the note tells the admin that undoing means deleting the key.
    result.backup = writeBackup(state, ctx, 'schannel-tls12.json', () =>
      JSON.stringify({ key: TLS12_KEY_SHORT, existed: false, undo: `reg delete "${TLS12_KEY_SHORT}" /f` }, null, 2),
    );
  }
  result.changed = true;
  state.registry.schannelTls12Server = { Enabled: 1, DisabledByDefault: 0 };
  const after = tls12ServerState(state);
  result.after = { tls12Server: after };
  result.verified = after === 'enabled';
}

/** What `icacls /setowner` + `/grant` would leave, as the payload predicts it for a dry run. */
function plannedKeyFileSddl(sddl: string | null): string {
  const grants = '(A;;FA;;;SY)(A;;FR;;;NS)';
  if (sddl === null || sddl === '') return `O:BAD:${grants}`;
  let withOwner = sddl.replace(/^O:[^:]*?(?=[GDS]:)/, 'O:BA');
  if (!withOwner.startsWith('O:')) withOwner = `O:BA${withOwner}`;
  if (withOwner.includes('D:')) return withOwner.replace(/(D:[A-Z_]*(?:\([^)]*\))*)/, `$1${grants}`);
  return `${withOwner}D:${grants}`;
}

function repairKeyAcl(state: WindowsState, ctx: FixContext, result: ActionResult): void {
  const keys = readFacts(state).keys;
  result.before = { fileSddl: keys.fileSddl, folderSddl: keys.folderSddl };
  const folderNeedsRepair = !keys.folderOk;
  // A missing key file is regenerate-self-signed-cert's business.
  const fileNeedsRepair = keys.file === 'present' && !keys.fileOk;
  if (!folderNeedsRepair && !fileNeedsRepair) return unchanged(ctx, result);
  result.after = {
    fileSddl: fileNeedsRepair ? plannedKeyFileSddl(keys.fileSddl) : keys.fileSddl,
    folderSddl: folderNeedsRepair ? MACHINE_KEYS_FOLDER_DACL : keys.folderSddl,
  };
  if (ctx.dryRun) return;
  result.backup = writeBackup(state, ctx, 'machinekeys.acl', () => machineKeysAclBackup(state));
  result.changed = true;
  if (folderNeedsRepair) state.machineKeys.folderSddl = withDefaultFolderDacl(state.machineKeys.folderSddl);
  if (fileNeedsRepair && state.machineKeys.keyFileSddl !== null) state.machineKeys.keyFileSddl = withKeyFileGrants(state.machineKeys.keyFileSddl);
  const after = readFacts(state).keys;
  result.after = { fileSddl: after.fileSddl, folderSddl: after.folderSddl };
  result.verified = after.folderOk && (after.file === 'missing' || after.fileOk);
}

function machineKeysAclBackup(state: WindowsState): string {
  // icacls /save format: an object name on one line, its SDDL on the next.
  const lines = ['MachineKeys', state.machineKeys.folderSddl];
  if (state.machineKeys.keyFileSddl !== null) lines.push(`MachineKeys\\${KEY_FILE_PREFIX}${state.machineGuid}`, state.machineKeys.keyFileSddl);
  return lines.join('\r\n') + '\r\n';
}

function staleBindingReason(state: WindowsState, hash: string, now: Date): string | null {
  if (!/^[0-9A-F]{40}$/.test(hash)) return 'the value is not a SHA-1 thumbprint';
  const certificate = findCertificate(state.stores.my, hash);
  if (certificate === null) return 'no such certificate in LocalMachine\\My';
  if (isExpired(certificate, now)) return 'the certificate expired';
  if (!certificate.hasKey) return 'the certificate has no private key';
  return null;
}

function removeStaleCertBinding(state: WindowsState, ctx: FixContext, result: ActionResult): void {
  const hash = bindingHashHex(state);
  result.before = { hash };
  if (hash === null) return unchanged(ctx, result);
  if (state.rdcb) return fail(result, 'rdcb-installed', 'The RD Connection Broker role manages the listener certificate; the binding is left alone.');
  if (staleBindingReason(state, hash, ctx.now) === null) {
    return fail(result, 'not-applicable', `The bound certificate ${hash} is in LocalMachine\\My, unexpired and has a private key.`);
  }
  result.after = { hash: null };
  if (ctx.dryRun) return;
  result.backup = writeBackup(state, ctx, 'rdp-tcp.reg', () => regExport(RDP_TCP_KEY, { ...state.registry.rdpTcp }));
  result.changed = true;
  // Only the value goes; the certificate stays in LocalMachine\My.
  state.registry.rdpTcp.SSLCertificateSHA1Hash = null;
  const after = bindingHashHex(state);
  result.after = { hash: after };
  result.verified = after === null;
}

function certValues(cert: WindowsCertificate | null): Values {
  return cert === null ? { thumb: null, notAfter: null } : { thumb: cert.thumb.toUpperCase(), notAfter: cert.notAfter };
}

function regenerateSelfSignedCert(state: WindowsState, ctx: FixContext, result: ActionResult): void {
  const current = rdpCertificateState(state, ctx.now);
  result.before = certValues(current.newestSelfSigned);
  if (state.registry.policies.CertTemplateName !== null) {
    return fail(result, 'gpo-template', 'Group Policy names a certificate template (CertTemplateName); the listener certificate comes from auto-enrolment.');
  }
  if (current.usable !== null) {
    result.before = certValues(current.usable);
    return unchanged(ctx, result);
  }
  // The new certificate's thumbprint is not known before Windows issues it.
  result.after = { thumb: null, notAfter: null };
  if (ctx.dryRun) return;
  const backups = current.removable.map((cert) =>
    writeBackup(state, ctx, `rdp-${cert.thumb.toUpperCase()}.cer`, () => `-----BEGIN CERTIFICATE-----\r\n(public part of ${cert.subject}, ${cert.thumb}, NotAfter ${cert.notAfter})\r\n-----END CERTIFICATE-----\r\n`),
  );
  if (backups.length > 0) result.backup = backups.join(';');
  result.changed = true;
  const doomed = new Set(current.removable.map((c) => c.thumb));
  state.stores.remoteDesktop = state.stores.remoteDesktop.filter((c) => !doomed.has(c.thumb));
  // SessionEnv issues the self-signed certificate when it starts and finds none usable.
  restartService(state, 'SessionEnv', ctx.now);
  const after = rdpCertificateState(state, ctx.now);
  if (after.usable !== null) {
    result.after = certValues(after.usable);
    result.verified = true;
  } else {
    result.after = certValues(after.newestSelfSigned);
    fail(result, 'timeout', 'No usable self-signed certificate appeared in the Remote Desktop store within 30 s of restarting SessionEnv.');
  }
}

function rdpServiceValues(state: WindowsState): Values {
  return { TermService: state.services.TermService, UmRdpService: state.services.UmRdpService };
}

function restartRdpServices(state: WindowsState, ctx: FixContext, result: ActionResult): void {
  result.before = rdpServiceValues(state);
  const healthy = state.services.TermService === 'Running' && state.services.UmRdpService === 'Running' && isListening(state);
  // A restart is what makes TermService take up a certificate or TLS change made earlier in the run.
  if (healthy && !ctx.changedSoFar) return unchanged(ctx, result);
  result.after = { TermService: 'Running', UmRdpService: 'Running' };
  if (ctx.dryRun) return;
  result.changed = true;
  restartService(state, 'TermService', ctx.now);
  if (state.services.UmRdpService === 'Stopped') startService(state, 'UmRdpService', ctx.now);
  result.after = rdpServiceValues(state);
  result.verified = state.services.TermService === 'Running' && state.services.UmRdpService === 'Running' && isListening(state);
  if (!result.verified) fail(result, 'timeout', `TermService and UmRdpService were not both running with port ${portSetting(state)} listening within 60 s.`);
}

function disableNla(state: WindowsState, ctx: FixContext, result: ActionResult): void {
  const userAuthentication = userAuthenticationSetting(state);
  result.before = { userAuthentication };
  if (state.registry.policies.UserAuthentication !== null) {
    return fail(result, 'gpo-enforced', 'Group Policy sets UserAuthentication (NLA); a local change would be overwritten.');
  }
  if (userAuthentication === 0) return unchanged(ctx, result);
  result.after = { userAuthentication: 0 };
  if (ctx.dryRun) return;
  result.backup = writeBackup(state, ctx, 'rdp-tcp.reg', () => regExport(RDP_TCP_KEY, { ...state.registry.rdpTcp }));
  result.changed = true;
  result.restore = restoreOf('', String(userAuthentication));
  state.registry.rdpTcp.UserAuthentication = 0;
  result.after = { userAuthentication: userAuthenticationSetting(state) };
  result.verified = userAuthenticationSetting(state) === 0;
}

function relaxSecurityLayer(state: WindowsState, ctx: FixContext, result: ActionResult): void {
  const securityLayer = securityLayerSetting(state);
  const userAuthentication = userAuthenticationSetting(state);
  result.before = { securityLayer, userAuthentication };
  if (state.registry.policies.SecurityLayer !== null || state.registry.policies.UserAuthentication !== null) {
    return fail(result, 'gpo-enforced', 'Group Policy sets SecurityLayer or UserAuthentication; a local change would be overwritten.');
  }
  if (securityLayer === 0 && userAuthentication === 0) return unchanged(ctx, result);
  result.after = { securityLayer: 0, userAuthentication: 0 };
  if (ctx.dryRun) return;
  result.backup = writeBackup(state, ctx, 'rdp-tcp.reg', () => regExport(RDP_TCP_KEY, { ...state.registry.rdpTcp }));
  result.changed = true;
  result.restore = restoreOf(String(securityLayer), String(userAuthentication));
  // The RDP security layer cannot carry NLA: NLA goes off before the layer drops.
  state.registry.rdpTcp.UserAuthentication = 0;
  state.registry.rdpTcp.SecurityLayer = 0;
  result.after = { securityLayer: securityLayerSetting(state), userAuthentication: userAuthenticationSetting(state) };
  result.verified = securityLayerSetting(state) === 0 && userAuthenticationSetting(state) === 0;
}

function restoreRdpSecurity(state: WindowsState, ctx: FixContext, result: ActionResult): void {
  const wantedSecurityLayer = ctx.restoreSecurityLayer;
  const wantedUserAuthentication = ctx.restoreUserAuthentication;
  const securityLayer = securityLayerSetting(state);
  const userAuthentication = userAuthenticationSetting(state);
  result.before = { securityLayer, userAuthentication };
  if (wantedSecurityLayer === '' && wantedUserAuthentication === '') {
    return fail(result, 'not-applicable', 'RestoreSecurityLayer and RestoreUserAuthentication are both empty: nothing to restore.');
  }
  const policies = state.registry.policies;
  if ((wantedSecurityLayer !== '' && policies.SecurityLayer !== null) || (wantedUserAuthentication !== '' && policies.UserAuthentication !== null)) {
    return fail(result, 'gpo-enforced', 'Group Policy sets a value this restore would write; a local change would be overwritten.');
  }
  const targetSecurityLayer = wantedSecurityLayer === '' ? securityLayer : Number(wantedSecurityLayer);
  const targetUserAuthentication = wantedUserAuthentication === '' ? userAuthentication : Number(wantedUserAuthentication);
  const setSecurityLayer = targetSecurityLayer !== securityLayer;
  const setUserAuthentication = targetUserAuthentication !== userAuthentication;
  if (!setSecurityLayer && !setUserAuthentication) return unchanged(ctx, result);
  result.after = { securityLayer: targetSecurityLayer, userAuthentication: targetUserAuthentication };
  if (ctx.dryRun) return;
  result.backup = writeBackup(state, ctx, 'rdp-tcp.reg', () => regExport(RDP_TCP_KEY, { ...state.registry.rdpTcp }));
  result.changed = true;
  if (setSecurityLayer) state.registry.rdpTcp.SecurityLayer = targetSecurityLayer;
  if (setUserAuthentication) state.registry.rdpTcp.UserAuthentication = targetUserAuthentication;
  result.after = { securityLayer: securityLayerSetting(state), userAuthentication: userAuthenticationSetting(state) };
  result.verified = securityLayerSetting(state) === targetSecurityLayer && userAuthenticationSetting(state) === targetUserAuthentication;
}

const ACTIONS: Readonly<Record<ActionId, (state: WindowsState, ctx: FixContext, result: ActionResult) => void>> = {
  'enable-tls12-server': enableTls12Server,
  'repair-key-acl': repairKeyAcl,
  'remove-stale-cert-binding': removeStaleCertBinding,
  'regenerate-self-signed-cert': regenerateSelfSignedCert,
  'restart-rdp-services': restartRdpServices,
  'disable-nla': disableNla,
  'relax-security-layer': relaxSecurityLayer,
  'restore-rdp-security': restoreRdpSecurity,
};

// ---------------------------------------------------------------------------------------------
// Payloads: PowerShell's parameter binding, then the payload's own checks and main.

/** The RunCommandWindows extension saves the script under this name before running it. */
const SCRIPT_PATH = 'C:\\Packages\\Plugins\\Microsoft.CPlat.Core.RunCommandWindows\\1.1.18\\Downloads\\script0.ps1';

interface ParamDecl {
  readonly name: string;
  /** [ValidateSet()], case-insensitive like PowerShell's. */
  readonly set?: readonly string[];
  /** [ValidatePattern()], matched case-insensitively like PowerShell's -match. */
  readonly pattern?: string;
}

const RUN_ID_PATTERN = '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$';
const ACTIONS_PATTERN = '^[a-z0-9-]+(,[a-z0-9-]+)*$';
/** The param() blocks of scripts/probe.ps1 and scripts/fix.ps1 (no parameter is mandatory). */
const PARAMS: Readonly<Record<PayloadKind, readonly ParamDecl[]>> = {
  probe: [{ name: 'RunId', pattern: RUN_ID_PATTERN }],
  fix: [
    { name: 'RunId', pattern: RUN_ID_PATTERN },
    { name: 'Actions', pattern: ACTIONS_PATTERN },
    { name: 'DryRun', set: ['true', 'false'] },
    { name: 'RestoreSecurityLayer', set: ['', '0', '1', '2'] },
    { name: 'RestoreUserAuthentication', set: ['', '0', '1'] },
  ],
};

function bindingError(message: string, category: string, errorId: string): string {
  return [`${SCRIPT_PATH} : ${message}`, `    + CategoryInfo          : ${category}`, `    + FullyQualifiedErrorId : ${errorId},script0.ps1`, ''].join('\r\n');
}

type Bound = { ok: true; values: Record<string, string> } | { ok: false; stderr: string };

const BINDING = 'InvalidArgument: (:) [script0.ps1], ParameterBindingException';
const VALIDATION = 'InvalidData: (:) [script0.ps1], ParameterBindingValidationException';

function bindParameters(kind: PayloadKind, given: readonly { name: string; value: string }[]): Bound {
  const decls = PARAMS[kind];
  const values: Record<string, string> = {};
  for (const { name, value } of given) {
    // PowerShell accepts any unambiguous prefix of a parameter name.
    const lower = name.toLowerCase();
    const exact = decls.find((d) => d.name.toLowerCase() === lower);
    const candidates = exact ? [exact] : decls.filter((d) => d.name.toLowerCase().startsWith(lower));
    const decl = candidates[0];
    if (decl === undefined || lower === '') return { ok: false, stderr: bindingError(`A parameter cannot be found that matches parameter name '${name}'.`, BINDING, 'NamedParameterNotFound') };
    if (candidates.length > 1) {
      return {
        ok: false,
        stderr: bindingError(`Parameter cannot be processed because the parameter name '${name}' is ambiguous. Possible matches include: ${candidates.map((c) => `-${c.name}`).join(' ')}.`, BINDING, 'AmbiguousParameter'),
      };
    }
    if (values[decl.name] !== undefined) {
      return { ok: false, stderr: bindingError(`Cannot bind parameter because parameter '${decl.name}' is specified more than once.`, BINDING, 'ParameterAlreadyBound') };
    }
    if (decl.set && !decl.set.some((v) => v.toLowerCase() === value.toLowerCase())) {
      return {
        ok: false,
        stderr: bindingError(
          `Cannot validate argument on parameter '${decl.name}'. The argument "${value}" does not belong to the set "${decl.set.join(',')}" specified by the ValidateSet attribute. Supply an argument that is in the set and then try the command again.`,
          VALIDATION,
          'ParameterArgumentValidationError',
        ),
      };
    }
    if (decl.pattern && !new RegExp(decl.pattern, 'i').test(value)) {
      return {
        ok: false,
        stderr: bindingError(
          `Cannot validate argument on parameter '${decl.name}'. The argument "${value}" does not match the "${decl.pattern}" pattern. Supply an argument that matches "${decl.pattern}" and try the command again.`,
          VALIDATION,
          'ParameterArgumentValidationError',
        ),
      };
    }
    values[decl.name] = value;
  }
  // An absent [string] parameter is '' in the script body.
  for (const d of decls) values[d.name] ??= '';
  return { ok: true, values };
}

/** The payload a script is, from its marker line; null for any other script. */
export function payloadKind(script: readonly string[]): PayloadKind | null {
  const first = (script.join('\n').split('\n')[0] ?? '').replace(/^\uFEFF/, '').trim();
  if (first === `${PAYLOAD_MARKER}probe`) return 'probe';
  if (first === `${PAYLOAD_MARKER}fix`) return 'fix';
  return null;
}

function runIdProblem(runId: string): string | null {
  // param() validation is case-insensitive and skips absent parameters; this check is not.
  return new RegExp(RUN_ID_PATTERN).test(runId) ? null : 'RunId must be a lower-case GUID';
}

function fixParameterProblem(values: Record<string, string>): string | null {
  const runId = runIdProblem(values['RunId'] ?? '');
  if (runId !== null) return runId;
  const actions = values['Actions'] ?? '';
  if (!new RegExp(ACTIONS_PATTERN).test(actions)) return 'Actions must be a comma-separated list of action ids';
  for (const id of actions.split(',')) if (!ActionIdSchema.safeParse(id).success) return `Unknown action id: ${id}`;
  const dryRun = values['DryRun'] ?? '';
  if (dryRun !== 'true' && dryRun !== 'false') return "DryRun must be 'true' or 'false'";
  if (!['', '0', '1', '2'].includes(values['RestoreSecurityLayer'] ?? '')) return "RestoreSecurityLayer must be '', '0', '1' or '2'";
  if (!['', '0', '1'].includes(values['RestoreUserAuthentication'] ?? '')) return "RestoreUserAuthentication must be '', '0' or '1'";
  return null;
}

function formatDate(date: Date): string {
  return isoSeconds(date);
}

function runProbe(state: WindowsState, values: Record<string, string>): ProbeResult {
  const runId = values['RunId'] ?? '';
  const problem = runIdProblem(runId);
  if (problem !== null) return { kind: 'probe', v: 1, ok: false, runId, error: payloadError('invalid-parameter', problem) };
  return { kind: 'probe', v: 1, ok: true, runId, facts: readFacts(state) };
}

function runFix(state: WindowsState, values: Record<string, string>, now: Date): FixResult {
  const runId = values['RunId'] ?? '';
  const dryRun = values['DryRun'] === 'true';
  const result: FixResult = { kind: 'fix', v: 1, ok: true, runId, dryRun, backupDir: null, actions: [], verify: null, error: null };
  const problem = fixParameterProblem(values);
  if (problem !== null) {
    result.ok = false;
    result.error = payloadError('invalid-parameter', problem);
    return result;
  }
  const backupDir = dryRun ? null : joinPath(BACKUP_ROOT, runId);
  result.backupDir = backupDir;
  const ctx: FixContext = {
    now,
    dryRun,
    backupDir,
    restoreSecurityLayer: values['RestoreSecurityLayer'] ?? '',
    restoreUserAuthentication: values['RestoreUserAuthentication'] ?? '',
    changedSoFar: false,
  };
  for (const id of (values['Actions'] ?? '').split(',')) {
    const actionId = ActionIdSchema.parse(id);
    // The driver owns the result, so whatever an action recorded before it threw survives.
    const actionResult = newActionResult(actionId);
    result.actions.push(actionResult);
    let threw = false;
    try {
      const injected = state.faults.actionExceptions[actionId];
      if (injected !== undefined) {
        delete state.faults.actionExceptions[actionId];
        throw new Error(injected);
      }
      ACTIONS[actionId](state, ctx, actionResult);
    } catch (error) {
      fail(actionResult, 'exception', error instanceof Error ? error.message : String(error));
      threw = true;
    }
    if (actionResult.changed) ctx.changedSoFar = true;
    if (threw) break;
  }
  if (backupDir !== null) {
    const manifest = {
      kind: 'rdp-remediator-fix-manifest',
      v: 1,
      runId,
      writtenAt: formatDate(now),
      actions: result.actions.map((a) => ({ id: a.id, changed: a.changed, before: a.before, after: a.after, backup: a.backup, restore: a.restore ?? null, verified: a.verified, error: a.error })),
    };
    state.files[joinPath(backupDir, 'manifest.json')] = JSON.stringify(manifest, null, 2);
  }
  result.verify = readFacts(state);
  return result;
}

// ---------------------------------------------------------------------------------------------
// The result line: compact JSON as Windows PowerShell 5.1 writes it, within 4,096 bytes.

/**
 * ConvertTo-Json (5.1) escapes < > & ' as \u00XX, and the payload escapes every non-ASCII
 * character so the line survives the console code page.
 */
export function powershellJson(value: unknown): string {
  return JSON.stringify(value).replace(/[<>&'\u0080-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

function limitFactDetail(facts: ProbeFacts | null, stage: number): void {
  if (facts === null) return;
  if (stage === 1 && facts.cert.store.length > 1) facts.cert.store = facts.cert.store.slice(0, 1);
  else if (stage === 2) facts.cert.store = [];
  else if (stage === 3) {
    facts.keys.folderSddl = limitText(facts.keys.folderSddl, 64);
    if (facts.keys.fileSddl !== null) facts.keys.fileSddl = limitText(facts.keys.fileSddl, 64);
  }
}

function limitActionDetail(actions: ActionResult[], stage: number): void {
  for (const action of actions) {
    if (stage === 4) {
      for (const part of ['before', 'after'] as const) {
        const values = action[part];
        for (const [key, value] of Object.entries(values)) if (typeof value === 'string') values[key] = limitText(value, 64);
      }
    } else if (stage === 5) {
      action.before = {};
      action.after = {};
    } else if (stage === 6 && action.error !== null) {
      action.error.message = limitText(action.error.message, 80);
    }
  }
}

/** Drops detail in the payload's stages, least useful first, until the line fits. */
export function resultLine(input: ProbeResult | FixResult): string {
  const result = structuredClone(input);
  let line = powershellJson(result);
  const fits = (): boolean => Buffer.byteLength(line, 'utf8') <= RESULT_LINE_MAX_BYTES;
  for (let stage = 1; stage <= 8 && !fits(); stage++) {
    if (stage <= 3) limitFactDetail(result.kind === 'fix' ? result.verify : result.ok ? result.facts : null, stage);
    else if (result.kind === 'fix' && stage <= 6) limitActionDetail(result.actions, stage);
    else if (stage === 7) {
      const error = 'error' in result ? result.error : null;
      if (error) error.message = limitText(error.message, 80);
    }
    else if (stage === 8 && result.kind === 'fix') result.verify = null;
    line = powershellJson(result);
  }
  if (fits()) return line;
  const error = payloadError('result-too-large', `The result did not fit in ${RESULT_LINE_MAX_BYTES} bytes; see the manifest in the backup directory.`);
  const failure: ProbeResult | FixResult =
    result.kind === 'fix'
      ? { kind: 'fix', v: 1, ok: false, runId: result.runId, dryRun: result.dryRun, backupDir: result.backupDir, actions: [], verify: null, error }
      : { kind: 'probe', v: 1, ok: false, runId: result.runId, error };
  return powershellJson(failure);
}

export interface ScriptOutput {
  readonly stdout: string;
  readonly stderr: string;
}

/**
 * Runs a RunPowerShellScript body on this Windows model. A payload prints its one result line;
 * a parameter-binding failure writes PowerShell's error to stderr and nothing to stdout (the
 * param() block stops the script before its first statement). Any other script prints nothing.
 */
export function runPowerShellScript(state: WindowsState, script: readonly string[], parameters: readonly { name: string; value: string }[], now: Date): ScriptOutput & { kind: PayloadKind | null } {
  const kind = payloadKind(script);
  if (kind === null) return { kind, stdout: '', stderr: '' };
  const bound = bindParameters(kind, parameters);
  if (!bound.ok) return { kind, stdout: '', stderr: bound.stderr };
  const result = kind === 'probe' ? runProbe(state, bound.values) : runFix(state, bound.values, now);
  return { kind, stdout: resultLine(result), stderr: '' };
}

/** The path of the RDP key file on this machine. */
export function keyFilePath(state: WindowsState): string {
  return `${MACHINE_KEYS_DIR}\\${KEY_FILE_PREFIX}${state.machineGuid}`;
}
