/**
 * The remediation actions the fix payload knows, in the order the planner applies them:
 * least invasive first, security-lowering last, and the service restart after every
 * setting change so TermService picks them all up at once. One list, shared by the
 * planner, the policy, the payload composer (as the PowerShell allow-list) and the emulator.
 */
import * as z from 'zod';

export const ACTION_IDS = [
  'enable-tls12-server',
  'enable-rdp-firewall-rules',
  'repair-key-acl',
  'remove-stale-cert-binding',
  'regenerate-self-signed-cert',
  'disable-nla',
  'relax-security-layer',
  'restore-rdp-security',
  'restart-rdp-services',
] as const;

export const ActionIdSchema = z.enum(ACTION_IDS);
export type ActionId = z.infer<typeof ActionIdSchema>;

/** Permissions a caller (request `allow`, or a VM tag) can grant. Each unlocks one security-lowering action. */
export const PERMISSIONS = ['relax-security-layer', 'disable-nla'] as const;
export const PermissionSchema = z.enum(PERMISSIONS);
export type Permission = z.infer<typeof PermissionSchema>;

export type ActionClass =
  | { readonly kind: 'safe' }
  | { readonly kind: 'security-lowering'; readonly permission: Permission }
  | { readonly kind: 'restore' };

export interface ActionInfo {
  readonly id: ActionId;
  readonly class: ActionClass;
  /** One line for humans: what the action changes on the VM. */
  readonly summary: string;
}

export const ACTIONS: Readonly<Record<ActionId, ActionInfo>> = {
  'enable-tls12-server': {
    id: 'enable-tls12-server',
    class: { kind: 'safe' },
    summary: 'Set SCHANNEL TLS 1.2 Server Enabled=1, DisabledByDefault=0',
  },
  'enable-rdp-firewall-rules': {
    id: 'enable-rdp-firewall-rules',
    class: { kind: 'safe' },
    summary:
      'Enable the built-in Remote Desktop inbound rules (group @FirewallAPI.dll,-28752) for the active profiles; for a custom PortNumber add one rule for TermService on that TCP port only',
  },
  'repair-key-acl': {
    id: 'repair-key-acl',
    class: { kind: 'safe' },
    summary: 'Grant SYSTEM full and NETWORK SERVICE read on the RDP key file; restore the MachineKeys folder ACL (by SID, icacls backup)',
  },
  'remove-stale-cert-binding': {
    id: 'remove-stale-cert-binding',
    class: { kind: 'safe' },
    summary: 'Delete RDP-Tcp SSLCertificateSHA1Hash that points at a missing, expired or keyless certificate',
  },
  'regenerate-self-signed-cert': {
    id: 'regenerate-self-signed-cert',
    class: { kind: 'safe' },
    summary: 'Remove the broken self-signed certificate from the Remote Desktop store and restart SessionEnv so Windows issues a new one',
  },
  'restart-rdp-services': {
    id: 'restart-rdp-services',
    class: { kind: 'safe' },
    summary: 'Restart TermService (with dependants) and UmRdpService; drops active RDP sessions',
  },
  'disable-nla': {
    id: 'disable-nla',
    class: { kind: 'security-lowering', permission: 'disable-nla' },
    summary: 'Set UserAuthentication=0 (Network Level Authentication off)',
  },
  'relax-security-layer': {
    id: 'relax-security-layer',
    class: { kind: 'security-lowering', permission: 'relax-security-layer' },
    summary: 'Set SecurityLayer=0 (RDP security layer, no TLS) and UserAuthentication=0, which that layer requires',
  },
  'restore-rdp-security': {
    id: 'restore-rdp-security',
    class: { kind: 'restore' },
    summary: 'Put SecurityLayer and UserAuthentication back to the values recorded before a relaxation',
  },
};

export function isSecurityLowering(id: ActionId): boolean {
  return ACTIONS[id].class.kind === 'security-lowering';
}

/** Sorts action ids into the canonical order of ACTION_IDS. */
export function inCanonicalOrder(ids: Iterable<ActionId>): ActionId[] {
  const wanted = new Set(ids);
  return ACTION_IDS.filter((id) => wanted.has(id));
}
