/**
 * Named scenarios for seeding the emulator: one Windows state per RDP root cause the remediator
 * knows, Azure-side variants (power, agent, OS, scale set), and a demo fleet for `npm start`.
 */
import type { Emulator } from './index.js';
import type { PowerState, VmSpec } from './model.js';
import {
  bootTermService,
  caIssuedCertificate,
  DEFAULT_KEY_FILE_SDDL,
  dword,
  EVENT_PROVIDERS,
  firewallRule,
  healthyWindows,
  isoSeconds,
  logSystemEvents,
  newThumbprint,
  RDP_USER_MODE_RULES,
  requireKeyFilePath,
  seededThumbprint,
  selfSignedCertificate,
  setFirewallRuleEnabled,
  setRegistryValue,
  SYSTEM_EVENT_TEXT,
} from './windows.js';
import { HKLM, machineKeysFolder, PERSONAL_STORE, REMOTE_DESKTOP_STORE, type Certificate, type RegistryValue, type WindowsState } from './windows-state.js';

export const WINDOWS_SCENARIOS = [
  'healthy',
  'expired-self-signed-cert',
  'missing-cert',
  'ca-cert-bound',
  'stale-binding',
  'key-file-acl',
  'machinekeys-folder-acl',
  'key-file-missing',
  'tls12-disabled',
  'termservice-stopped',
  'firewall-rdp-rules-disabled',
  'weak-security-layer',
  'gpo-enforced-security-layer',
  'nla-dc-unreachable',
] as const;
export type WindowsScenario = (typeof WINDOWS_SCENARIOS)[number];

/**
 * Further states for the cross-language scenario matrix (test/e2e/scenarios.test.ts): each is
 * a way Windows can be that the payloads must read and repair correctly. They are not in the
 * demo fleet.
 */
export const MATRIX_SCENARIOS = [
  'keyless-self-signed-cert',
  'gpo-template-cert',
  'key-file-inherited-read',
  'key-file-acl-unreadable',
  'machinekeys-folder-long-acl',
  'security-layer-rdp',
  'security-layer-negotiate',
  'nla-off',
  'termservice-start-pending',
  'gpo-nla-wmi',
  'gpo-nla-policy-key',
  'rdcb-installed',
  'many-causes',
  'custom-port-no-rule',
  'firewall-gpo',
  'listener-bound-to-adapter',
  'port-changed-not-restarted',
] as const;
export type MatrixScenario = (typeof MATRIX_SCENARIOS)[number];

export const AZURE_VARIANTS = ['deallocated', 'stopped', 'agent-not-ready', 'linux', 'vmss-instance'] as const;
export type AzureVariant = (typeof AZURE_VARIANTS)[number];

export type Scenario = WindowsScenario | AzureVariant;

const DAY_MS = 24 * 3600 * 1000;

/** The key-file ACL after someone "reset" it: NETWORK SERVICE lost its read grant. */
export const BROKEN_KEY_FILE_SDDL = 'O:SYG:SYD:(A;;FA;;;SY)(A;;FA;;;BA)';
/**
 * The MachineKeys folder after its permissions were reset to inherit from Crypto\RSA and Users
 * was removed: NETWORK SERVICE can no longer list it, so Schannel can't find the key (36870).
 */
export const BROKEN_MACHINEKEYS_FOLDER_SDDL = 'O:SYG:SYD:AI(A;OICIID;FA;;;SY)(A;OICIID;FA;;;BA)';
/** A folder that hands NETWORK SERVICE read to its files by inheritance only. */
const INHERITING_MACHINEKEYS_FOLDER_SDDL = 'O:SYG:SYD:AI(A;OICIID;FA;;;SY)(A;OICIID;FA;;;BA)(A;OICI;FR;;;NS)';

export interface WindowsScenarioOptions {
  readonly computerName: string;
  readonly now?: Date;
  /** Equal seeds give equal states (MachineGuid, thumbprints). */
  readonly seed?: string;
}

function setFileSddl(w: WindowsState, path: string, sddl: string): void {
  const entry = w.files[path];
  if (!entry) throw new Error(`no file ${path} in the state`);
  entry.sddl = sddl;
}

/** The Windows state of a scenario, with TermService's listener as it was loaded at boot. */
export function windowsScenario(name: WindowsScenario | MatrixScenario, options: WindowsScenarioOptions): WindowsState {
  const now = options.now ?? new Date();
  const w = healthyWindows({ computerName: options.computerName, now, ...(options.seed === undefined ? {} : { seed: options.seed }) });
  const seeded = (label: string): string => (options.seed === undefined ? newThumbprint() : seededThumbprint(`${options.seed}:${label}`));
  const rdpStore = (): Certificate[] => w.certificates[REMOTE_DESKTOP_STORE] ?? [];
  const folder = machineKeysFolder(w);
  const keyFile = requireKeyFilePath(w);
  const expireSelfSigned = (): void => {
    for (const cert of rdpStore()) {
      cert.notBefore = isoSeconds(new Date(now.getTime() - 192 * DAY_MS));
      cert.notAfter = isoSeconds(new Date(now.getTime() - 10 * DAY_MS));
    }
  };
  switch (name) {
    case 'healthy':
      break;
    case 'expired-self-signed-cert':
      expireSelfSigned();
      break;
    case 'missing-cert':
      w.certificates[REMOTE_DESKTOP_STORE] = [];
      break;
    case 'keyless-self-signed-cert':
      for (const cert of rdpStore()) cert.hasPrivateKey = false;
      break;
    case 'gpo-template-cert':
      // Auto-enrolment issued the listener certificate from a template that Group Policy names; it expired.
      w.certificates[REMOTE_DESKTOP_STORE] = [selfSignedCertificate(options.computerName, new Date(now.getTime() - 5 * DAY_MS), { template: true, thumbprint: seeded('template') })];
      setRegistryValue(w, HKLM.tsPolicy, 'CertTemplateName', { kind: 'String', value: 'RemoteDesktopComputer' });
      break;
    case 'ca-cert-bound': {
      const cert = caIssuedCertificate(`CN=${options.computerName.toLowerCase()}.corp.contoso.com`, 'CN=Contoso Issuing CA 01, DC=corp, DC=contoso, DC=com', new Date(now.getTime() + 300 * DAY_MS), { thumbprint: seeded('ca') });
      (w.certificates[PERSONAL_STORE] ??= []).push(cert);
      setRegistryValue(w, HKLM.rdpTcp, 'SSLCertificateSHA1Hash', binaryThumbprint(cert.thumbprint));
      break;
    }
    case 'stale-binding':
      // The binding names a certificate that was deleted from LocalMachine\My.
      setRegistryValue(w, HKLM.rdpTcp, 'SSLCertificateSHA1Hash', binaryThumbprint(seeded('stale')));
      break;
    case 'key-file-acl':
      setFileSddl(w, keyFile, BROKEN_KEY_FILE_SDDL);
      break;
    case 'key-file-inherited-read':
      // NETWORK SERVICE reads the key only through an ACE inherited from a non-default folder ACL.
      setFileSddl(w, folder, INHERITING_MACHINEKEYS_FOLDER_SDDL);
      setFileSddl(w, keyFile, 'O:SYG:SYD:AI(A;;FA;;;SY)(A;;FA;;;BA)(A;ID;FA;;;SY)(A;ID;FA;;;BA)(A;ID;FR;;;NS)');
      break;
    case 'key-file-acl-unreadable':
      // Owned by a departed admin account whose ACE is all that is left: SYSTEM can't even read the ACL.
      setFileSddl(w, keyFile, 'O:S-1-5-21-1004336348-1177238915-682003330-1001G:SYD:(A;;FA;;;S-1-5-21-1004336348-1177238915-682003330-1001)');
      break;
    case 'machinekeys-folder-acl':
      setFileSddl(w, folder, BROKEN_MACHINEKEYS_FOLDER_SDDL);
      setFileSddl(w, keyFile, `${DEFAULT_KEY_FILE_SDDL}(A;ID;FA;;;SY)(A;ID;FA;;;BA)`);
      break;
    case 'machinekeys-folder-long-acl': {
      // Years of hand-made grants: 72 explicit ACEs for domain accounts on top of a broken ACL.
      const aces = Array.from({ length: 72 }, (_, i) => `(A;;0x1200a9;;;S-1-5-21-3623811015-3361044348-30300820-${1100 + i})`).join('');
      setFileSddl(w, folder, `${BROKEN_MACHINEKEYS_FOLDER_SDDL}${aces}`);
      break;
    }
    case 'key-file-missing':
      // The certificate still names its key container (HasPrivateKey stays true); the file is gone.
      delete w.files[keyFile];
      break;
    case 'tls12-disabled':
      w.registry[HKLM.tls12Server] = { Enabled: dword(0), DisabledByDefault: dword(1) };
      break;
    case 'termservice-stopped':
      setStatus(w, 'TermService', 'Stopped');
      setStatus(w, 'UmRdpService', 'Stopped');
      break;
    case 'termservice-start-pending':
      // A slow start: TermService is stopped and, once started, stays StartPending for a few polls.
      setStatus(w, 'TermService', 'Stopped');
      setStatus(w, 'UmRdpService', 'Stopped');
      for (const svc of ['TermService', 'UmRdpService']) {
        const entry = w.services[svc];
        if (entry) entry.startPendingReads = 3;
      }
      break;
    case 'weak-security-layer':
      setRegistryValue(w, HKLM.rdpTcp, 'SecurityLayer', dword(0));
      setRegistryValue(w, HKLM.rdpTcp, 'UserAuthentication', dword(0));
      break;
    case 'security-layer-rdp':
      setRegistryValue(w, HKLM.rdpTcp, 'SecurityLayer', dword(0));
      setRegistryValue(w, HKLM.rdpTcp, 'UserAuthentication', dword(0));
      break;
    case 'security-layer-negotiate':
      setRegistryValue(w, HKLM.rdpTcp, 'SecurityLayer', dword(1));
      break;
    case 'nla-off':
      setRegistryValue(w, HKLM.rdpTcp, 'UserAuthentication', dword(0));
      break;
    case 'gpo-enforced-security-layer':
      // NLA can't reach a DC, and Group Policy owns both settings a workaround would lower.
      setRegistryValue(w, HKLM.tsPolicy, 'SecurityLayer', dword(2));
      setRegistryValue(w, HKLM.tsPolicy, 'UserAuthentication', dword(1));
      w.wmi.policySourceSecurityLayer = 1;
      w.wmi.policySourceUserAuthenticationRequired = 1;
      w.domain = { partOfDomain: true, secureChannel: false };
      break;
    case 'gpo-nla-wmi':
      // Group Policy owns NLA; WMI says so, the policy key was already cleaned up locally.
      w.wmi.policySourceUserAuthenticationRequired = 1;
      w.domain = { partOfDomain: true, secureChannel: false };
      break;
    case 'gpo-nla-policy-key':
      // WMI is broken; only the policy key shows that Group Policy owns NLA.
      setRegistryValue(w, HKLM.tsPolicy, 'UserAuthentication', dword(1));
      w.wmi.readable = false;
      w.domain = { partOfDomain: true, secureChannel: 'unreachable' };
      break;
    case 'nla-dc-unreachable':
      w.domain = { partOfDomain: true, secureChannel: false };
      break;
    case 'rdcb-installed':
      // A Connection Broker manages the listener certificate; its binding went stale.
      w.features['RDS-Connection-Broker'] = true;
      setRegistryValue(w, HKLM.rdpTcp, 'SSLCertificateSHA1Hash', binaryThumbprint(seeded('rdcb')));
      break;
    case 'many-causes':
      expireSelfSigned();
      setFileSddl(w, keyFile, BROKEN_KEY_FILE_SDDL);
      w.registry[HKLM.tls12Server] = { Enabled: dword(0), DisabledByDefault: dword(1) };
      setRegistryValue(w, HKLM.rdpTcp, 'SSLCertificateSHA1Hash', binaryThumbprint(seeded('stale')));
      break;
    case 'firewall-rdp-rules-disabled':
      // The built-in Remote Desktop rules were switched off (a hardening baseline): remote clients
      // are dropped, while the listener itself is fine (loopback is never filtered).
      for (const rule of RDP_USER_MODE_RULES) setFirewallRuleEnabled(w, rule, false);
      break;
    case 'custom-port-no-rule':
      // RDP was moved to 3390 and TermService restarted on it, but only the built-in 3389 rules exist.
      setRegistryValue(w, HKLM.rdpTcp, 'PortNumber', dword(CUSTOM_RDP_PORT));
      break;
    case 'firewall-gpo':
      // Group Policy ("Allow inbound Remote Desktop exceptions": Disabled) owns the rules: its
      // copies in the policy store are off, and so are the local ones.
      for (const rule of RDP_USER_MODE_RULES) {
        setFirewallRuleEnabled(w, rule, false);
        w.firewall.rules.push({ ...structuredClone(firewallRule(w, rule)), policyStore: 'GroupPolicy' });
      }
      setRegistryValue(w, `${HKLM.firewallPolicy}\\FirewallRules`, 'RemoteDesktop-UserMode-In-TCP', { kind: 'String', value: gpoRdpRule(6) });
      setRegistryValue(w, `${HKLM.firewallPolicy}\\FirewallRules`, 'RemoteDesktop-UserMode-In-UDP', { kind: 'String', value: gpoRdpRule(17) });
      setRegistryValue(w, `${HKLM.firewallPolicy}\\DomainProfile`, 'EnableFirewall', dword(1));
      setRegistryValue(w, `${HKLM.firewallPolicy}\\PublicProfile`, 'EnableFirewall', dword(1));
      break;
    case 'listener-bound-to-adapter':
      // RDP-Tcp listens on one network adapter only: nothing on loopback, the primary address works.
      setRegistryValue(w, HKLM.rdpTcp, 'LanAdapter', dword(1));
      break;
    case 'port-changed-not-restarted':
      // PortNumber is changed below, after TermService came up on 3389.
      break;
  }
  seedEvents(w, name);
  bootTermService(w);
  if (name === 'port-changed-not-restarted') setRegistryValue(w, HKLM.rdpTcp, 'PortNumber', dword(CUSTOM_RDP_PORT));
  return w;
}

const CUSTOM_RDP_PORT = 3390;

/** A Remote Desktop rule as a GPO stores it under ...\\WindowsFirewall\\FirewallRules (Active=FALSE: disabled). */
function gpoRdpRule(protocol: 6 | 17): string {
  const name = protocol === 6 ? '@FirewallAPI.dll,-28775' : '@FirewallAPI.dll,-28776';
  return `v2.30|Action=Allow|Active=FALSE|Dir=In|Protocol=${protocol}|LPort=3389|App=%SystemRoot%\\system32\\svchost.exe|Svc=termservice|Name=${name}|Desc=@FirewallAPI.dll,-28756|EmbedCtxt=@FirewallAPI.dll,-28752|`;
}

/**
 * The System-log events Windows would have written for the scenario's cause while clients kept
 * trying (playbook section 4.1), minutes before the state's clock: Schannel 36870 each time the
 * key cannot be opened, 36871 when no TLS server credential can be built, RCM 1057/1058 when a
 * self-signed certificate cannot be created or replaced, TermDD 56 for each failed NLA logon.
 */
function seedEvents(w: WindowsState, name: WindowsScenario | MatrixScenario): void {
  const keyAccess = (minutes: readonly number[]): void => logSystemEvents(w, EVENT_PROVIDERS.schannel, 36870, SYSTEM_EVENT_TEXT.schannelKeyAccess, minutes);
  const credential = (minutes: readonly number[]): void => logSystemEvents(w, EVENT_PROVIDERS.schannel, 36871, SYSTEM_EVENT_TEXT.schannelCredential, minutes);
  const replaceFailed = (minutes: readonly number[]): void => logSystemEvents(w, EVENT_PROVIDERS.rcm, 1058, SYSTEM_EVENT_TEXT.rcmReplaceFailed, minutes);
  switch (name) {
    case 'expired-self-signed-cert':
      replaceFailed([95]);
      break;
    case 'key-file-acl':
    case 'key-file-acl-unreadable':
    case 'machinekeys-folder-acl':
    case 'machinekeys-folder-long-acl':
      keyAccess([52, 23, 7]);
      break;
    case 'key-file-missing':
      logSystemEvents(w, EVENT_PROVIDERS.rcm, 1057, SYSTEM_EVENT_TEXT.rcmCreateFailed, [64]);
      keyAccess([52, 23, 7]);
      break;
    case 'tls12-disabled':
      credential([41, 18, 3]);
      break;
    case 'nla-dc-unreachable':
    case 'gpo-enforced-security-layer':
    case 'gpo-nla-wmi':
    case 'gpo-nla-policy-key':
      logSystemEvents(w, EVENT_PROVIDERS.termDd, 56, SYSTEM_EVENT_TEXT.termDdProtocol, [33, 12]);
      break;
    case 'many-causes':
      replaceFailed([120]);
      credential([44, 9]);
      keyAccess([43, 8]);
      break;
    default:
      break;
  }
}

function setStatus(w: WindowsState, name: string, status: 'Running' | 'Stopped'): void {
  const entry = w.services[name];
  if (!entry) throw new Error(`no service ${name} in the state`);
  entry.status = status;
}

/** SSLCertificateSHA1Hash is REG_BINARY: the thumbprint's 20 bytes. */
function binaryThumbprint(thumbprint: string): RegistryValue {
  return { kind: 'Binary', value: (thumbprint.match(/../g) ?? []).map((pair) => Number.parseInt(pair, 16)) };
}

export interface ScenarioTarget {
  readonly subscriptionId: string;
  readonly resourceGroup: string;
  /** Default `vm-<scenario>` (the scale set name for `vmss-instance`). */
  readonly name?: string;
  readonly computerName?: string;
  readonly location?: string;
  readonly tags?: Readonly<Record<string, string>>;
  readonly now?: Date;
  /** Overrides on top of the scenario. */
  readonly powerState?: PowerState;
  readonly agentReady?: boolean;
  readonly runLatencyMs?: number;
  readonly scaleSet?: { readonly name: string; readonly instanceId: string };
  /** Equal seeds (with equal computer names) give equal Windows states, which replay can match. */
  readonly seed?: string;
}

function isWindowsScenario(name: Scenario): name is WindowsScenario {
  return (WINDOWS_SCENARIOS as readonly string[]).includes(name);
}

/** A VmSpec for `emulator.addVm`: a Windows root cause on a running VM, or an Azure-side variant of a healthy one. */
export function scenarioVm(scenario: Scenario, target: ScenarioTarget): VmSpec {
  const name = target.name ?? `vm-${scenario}`;
  const computerName = target.computerName ?? name.replace(/[^A-Za-z0-9-]/g, '').slice(0, 15);
  const windows = windowsScenario(isWindowsScenario(scenario) ? scenario : 'healthy', { computerName, ...(target.now ? { now: target.now } : {}), ...(target.seed === undefined ? {} : { seed: target.seed }) });
  const base = {
    subscriptionId: target.subscriptionId,
    resourceGroup: target.resourceGroup,
    computerName,
    ...(target.location ? { location: target.location } : {}),
    ...(target.tags ? { tags: target.tags } : {}),
    ...(target.runLatencyMs !== undefined ? { runLatencyMs: target.runLatencyMs } : {}),
  };
  const variant: { -readonly [K in keyof VmSpec]?: VmSpec[K] } = {};
  switch (scenario) {
    case 'deallocated':
      variant.powerState = 'deallocated';
      break;
    case 'stopped':
      variant.powerState = 'stopped';
      break;
    case 'agent-not-ready':
      variant.agentReady = false;
      break;
    case 'linux':
      variant.osType = 'Linux';
      break;
    case 'vmss-instance':
      variant.scaleSet = { name: target.name ?? 'vmss-rdp', instanceId: '0' };
      break;
    default:
      break;
  }
  const scaleSet = target.scaleSet ?? variant.scaleSet;
  return {
    ...base,
    ...variant,
    ...(scaleSet ? { scaleSet } : { name }),
    ...(target.powerState ? { powerState: target.powerState } : {}),
    ...(target.agentReady !== undefined ? { agentReady: target.agentReady } : {}),
    ...(variant.osType === 'Linux' ? {} : { windows }),
  };
}

export type DemoScenario = WindowsScenario | 'deallocated' | 'agent-not-ready';

/** Root causes, then the VMs the remediator must handle without running anything. */
export const DEMO_FLEET: readonly DemoScenario[] = [...WINDOWS_SCENARIOS.filter((s) => s !== 'healthy'), 'healthy', 'deallocated', 'agent-not-ready'];

/**
 * Adds one VM per root cause plus a healthy, a deallocated and an agent-not-ready VM.
 * Returns their resource ids by scenario.
 */
export function seedDemoFleet(emulator: Pick<Emulator, 'addVm'>, target: { subscriptionId: string; resourceGroup: string; location?: string }): Record<DemoScenario, string> {
  const ids: Partial<Record<DemoScenario, string>> = {};
  DEMO_FLEET.forEach((scenario, i) => {
    const spec = scenarioVm(scenario, {
      subscriptionId: target.subscriptionId,
      resourceGroup: target.resourceGroup,
      name: `vm-${scenario}`,
      computerName: `RDPDEMO${String(i + 1).padStart(2, '0')}`,
      ...(target.location ? { location: target.location } : {}),
    });
    ids[scenario] = emulator.addVm(spec);
  });
  return ids as Record<DemoScenario, string>;
}
