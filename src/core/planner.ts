/**
 * Findings + facts + permissions → an ordered plan. Least invasive first (the order of
 * ACTION_IDS); security-lowering actions only with permission and never against Group
 * Policy; nothing planned for a finding it cannot fix safely, but the reason is kept.
 */
import { ACTION_IDS, ACTIONS, inCanonicalOrder, type ActionId, type Permission } from '../contract/actions.js';
import type { ProbeFacts } from '../contract/facts.js';
import { type Finding, type FindingCode } from './diagnose.js';

export type RefusalReason = 'needs-permission' | 'gpo-enforced' | 'gpo-template' | 'rdcb-installed';

export interface PlannedAction {
  readonly id: ActionId;
  readonly because: readonly FindingCode[];
}

export interface RefusedAction {
  readonly id: ActionId;
  readonly because: readonly FindingCode[];
  readonly reason: RefusalReason;
  readonly detail: string;
}

export interface Plan {
  readonly actions: readonly PlannedAction[];
  readonly refused: readonly RefusedAction[];
  /** Blocking findings no planned action addresses. */
  readonly unresolved: readonly FindingCode[];
}

/**
 * Actions that change a setting TermService only picks up when it restarts: all but the
 * restart itself and the firewall rules, which Windows Firewall applies at once.
 */
const NEEDS_RESTART: ReadonlySet<ActionId> = new Set(ACTION_IDS.filter((id) => id !== 'restart-rdp-services' && id !== 'enable-rdp-firewall-rules'));

export function planRemediation(findings: readonly Finding[], facts: ProbeFacts, permissions: readonly Permission[]): Plan {
  const planned = new Map<ActionId, Set<FindingCode>>();
  const refused: RefusedAction[] = [];
  const addressed = new Set<FindingCode>();
  /** Findings on the TLS path that no safe action can fix: the case for relaxing the security layer. */
  const tlsDeadEnds: FindingCode[] = [];

  const plan = (id: ActionId, because: FindingCode) => {
    let set = planned.get(id);
    if (!set) planned.set(id, (set = new Set()));
    set.add(because);
    addressed.add(because);
  };
  const refuse = (id: ActionId, because: FindingCode[], reason: RefusalReason, detail: string) => refused.push({ id, because, reason, detail });

  for (const finding of findings) {
    if (finding.severity !== 'blocking') continue;
    const code = finding.code;
    switch (code) {
      case 'tls12-server-disabled':
        plan('enable-tls12-server', code);
        break;
      case 'machinekeys-folder-acl':
      case 'key-file-acl':
        plan('repair-key-acl', code);
        break;
      case 'stale-cert-binding':
        if (facts.rdcb) {
          refuse('remove-stale-cert-binding', [code], 'rdcb-installed', 'the RD Connection Broker role manages this binding; fix the certificate in the deployment');
          tlsDeadEnds.push(code);
        } else plan('remove-stale-cert-binding', code);
        break;
      case 'cert-missing':
      case 'cert-expired':
      case 'cert-no-private-key':
      case 'key-file-missing':
        if (facts.policy.certTemplate) {
          refuse('regenerate-self-signed-cert', [code], 'gpo-template', 'Group Policy issues the RDP certificate from a template; renew it through the CA');
          tlsDeadEnds.push(code);
        } else plan('regenerate-self-signed-cert', code);
        break;
      // rdp-handshake-failed: no setting explains it, and TermService runs on what it loaded
      // when it last started.
      case 'termservice-not-running':
      case 'rdp-not-listening':
      case 'rdp-handshake-failed':
        plan('restart-rdp-services', code);
        break;
      case 'firewall-rdp-rules-disabled':
      case 'firewall-port-closed':
        if (facts.firewall.gpo) refuse('enable-rdp-firewall-rules', [code], 'gpo-enforced', `Group Policy manages the Windows Firewall; admit TCP ${facts.rdp.portNumber} in the GPO`);
        else plan('enable-rdp-firewall-rules', code);
        break;
      case 'nla-domain-unreachable':
        planSecurityLowering('disable-nla', [code]);
        break;
      case 'security-layer-weakened':
      case 'rdp-disabled':
      case 'cert-store-misconfigured':
      case 'firewall-unreadable':
        break; // advisory only
    }
  }

  if (tlsDeadEnds.length > 0) planSecurityLowering('relax-security-layer', tlsDeadEnds);

  function planSecurityLowering(id: 'disable-nla' | 'relax-security-layer', because: FindingCode[]) {
    const info = ACTIONS[id];
    const permission = info.class.kind === 'security-lowering' ? info.class.permission : undefined;
    const gpo = id === 'disable-nla' ? facts.policy.userAuthentication : facts.policy.securityLayer || facts.policy.userAuthentication;
    if (gpo) return refuse(id, because, 'gpo-enforced', 'Group Policy enforces this setting; change the GPO instead');
    if (permission === undefined || !permissions.includes(permission)) {
      return refuse(id, because, 'needs-permission', `lowers security; allow "${permission ?? id}" in the request or the VM's tag to permit it`);
    }
    for (const code of because) plan(id, code);
  }

  // Regenerating needs a key file Windows can write; repairing the ACL first makes that possible.
  if (planned.has('regenerate-self-signed-cert') && !facts.keys.folderOk) plan('repair-key-acl', 'machinekeys-folder-acl');

  if ([...planned.keys()].some((id) => NEEDS_RESTART.has(id))) {
    const reasons = [...new Set([...planned.entries()].flatMap(([id, s]) => (NEEDS_RESTART.has(id) ? [...s] : [])))];
    for (const code of reasons) {
      const set = planned.get('restart-rdp-services') ?? new Set<FindingCode>();
      set.add(code);
      planned.set('restart-rdp-services', set);
    }
  }

  const actions = inCanonicalOrder(planned.keys()).map((id) => ({ id, because: [...(planned.get(id) ?? [])] }));
  const unresolved = findings.filter((f) => f.severity === 'blocking' && !addressed.has(f.code)).map((f) => f.code);
  return { actions, refused, unresolved: [...new Set(unresolved)] };
}
