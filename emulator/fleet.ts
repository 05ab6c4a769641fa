/**
 * Named scenarios for seeding the emulator: one Windows state per RDP root cause the remediator
 * knows, Azure-side variants (power, agent, OS, scale set), and a demo fleet for `npm start`.
 */
import type { Emulator } from './index.js';
import type { PowerState, VmSpec } from './model.js';
import { bootListener, caIssuedCertificate, healthyWindows, newThumbprint, type WindowsState } from './windows.js';

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
  'weak-security-layer',
  'gpo-enforced-security-layer',
  'nla-dc-unreachable',
] as const;
export type WindowsScenario = (typeof WINDOWS_SCENARIOS)[number];

export const AZURE_VARIANTS = ['deallocated', 'stopped', 'agent-not-ready', 'linux', 'vmss-instance'] as const;
export type AzureVariant = (typeof AZURE_VARIANTS)[number];

export type Scenario = WindowsScenario | AzureVariant;

const DAY_MS = 24 * 3600 * 1000;

/** The key-file ACL after someone "reset" it: NETWORK SERVICE lost its read grant. */
export const BROKEN_KEY_FILE_SDDL = 'O:SYG:SYD:(A;;FA;;;SY)(A;;FA;;;BA)';
/** The MachineKeys folder after permissions were reset to inherit from ProgramData. */
export const BROKEN_MACHINEKEYS_FOLDER_SDDL = 'O:SYG:SYD:AI(A;OICIID;FA;;;SY)(A;OICIID;FA;;;BA)(A;OICIID;0x1200a9;;;BU)';

export interface WindowsScenarioOptions {
  readonly computerName: string;
  readonly now?: Date;
}

/** The Windows state of a scenario, with TermService's listener as it was loaded at boot. */
export function windowsScenario(name: WindowsScenario, options: WindowsScenarioOptions): WindowsState {
  const now = options.now ?? new Date();
  const w = healthyWindows({ computerName: options.computerName, now });
  const expireSelfSigned = (): void => {
    for (const cert of w.stores.remoteDesktop) {
      cert.notBefore = new Date(now.getTime() - 192 * DAY_MS).toISOString().replace(/\.\d{3}Z$/, 'Z');
      cert.notAfter = new Date(now.getTime() - 10 * DAY_MS).toISOString().replace(/\.\d{3}Z$/, 'Z');
    }
  };
  switch (name) {
    case 'healthy':
      break;
    case 'expired-self-signed-cert':
      expireSelfSigned();
      break;
    case 'missing-cert':
      w.stores.remoteDesktop = [];
      break;
    case 'ca-cert-bound': {
      const cert = caIssuedCertificate(`CN=${options.computerName.toLowerCase()}.corp.contoso.com`, 'CN=Contoso Issuing CA 01, DC=corp, DC=contoso, DC=com', new Date(now.getTime() + 300 * DAY_MS));
      w.stores.my.push(cert);
      w.registry.rdpTcp.SSLCertificateSHA1Hash = cert.thumb;
      break;
    }
    case 'stale-binding':
      // The binding names a certificate that was deleted from LocalMachine\My.
      w.registry.rdpTcp.SSLCertificateSHA1Hash = newThumbprint();
      break;
    case 'key-file-acl':
      w.machineKeys.keyFileSddl = BROKEN_KEY_FILE_SDDL;
      break;
    case 'machinekeys-folder-acl':
      // TermService can't use the key under a broken MachineKeys ACL (Schannel event 36870), and
      // Windows can't issue a new certificate until the ACL is repaired.
      w.machineKeys.folderSddl = BROKEN_MACHINEKEYS_FOLDER_SDDL;
      break;
    case 'key-file-missing':
      // The certificate still names its key container (HasPrivateKey stays true); the file is gone.
      w.machineKeys.keyFileSddl = null;
      break;
    case 'tls12-disabled':
      w.registry.schannelTls12Server = { Enabled: 0, DisabledByDefault: 1 };
      break;
    case 'termservice-stopped':
      w.services.TermService = 'Stopped';
      w.services.UmRdpService = 'Stopped';
      break;
    case 'weak-security-layer':
      w.registry.rdpTcp.SecurityLayer = 0;
      w.registry.rdpTcp.UserAuthentication = 0;
      break;
    case 'gpo-enforced-security-layer':
      // NLA can't reach a DC, and Group Policy owns both settings a workaround would lower.
      w.registry.policies.SecurityLayer = 2;
      w.registry.policies.UserAuthentication = 1;
      w.domain = { joined: true, secureChannel: 'broken' };
      break;
    case 'nla-dc-unreachable':
      w.domain = { joined: true, secureChannel: 'broken' };
      break;
  }
  return bootListener(w);
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
}

function isWindowsScenario(name: Scenario): name is WindowsScenario {
  return (WINDOWS_SCENARIOS as readonly string[]).includes(name);
}

/** A VmSpec for `emulator.addVm`: a Windows root cause on a running VM, or an Azure-side variant of a healthy one. */
export function scenarioVm(scenario: Scenario, target: ScenarioTarget): VmSpec {
  const name = target.name ?? `vm-${scenario}`;
  const computerName = target.computerName ?? name.replace(/[^A-Za-z0-9-]/g, '').slice(0, 15);
  const windows = windowsScenario(isWindowsScenario(scenario) ? scenario : 'healthy', { computerName, ...(target.now ? { now: target.now } : {}) });
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
