import { describe, expect, it } from 'vitest';
import type { ActionId, Permission } from '../../src/contract/actions.js';
import type { ProbeFacts } from '../../src/contract/facts.js';
import { blockingFindings, diagnose } from '../../src/core/diagnose.js';
import { planRemediation } from '../../src/core/planner.js';
import { CA_BOUND, factsWith, healthyFacts, NOW, PAST, ROOT_CAUSES } from '../support/facts.js';

function planFor(facts: ProbeFacts, permissions: Permission[] = []) {
  const findings = diagnose(facts, NOW);
  return { findings: findings.map((f) => f.code), blocking: blockingFindings(findings).map((f) => f.code), plan: planRemediation(findings, facts, permissions) };
}
const ids = (actions: readonly { id: ActionId }[]) => actions.map((a) => a.id);

describe('diagnose + planRemediation, one root cause at a time', () => {
  it.each([
    ['expired-self-signed-cert', ['cert-expired'], ['regenerate-self-signed-cert', 'restart-rdp-services']],
    ['missing-cert', ['cert-missing'], ['regenerate-self-signed-cert', 'restart-rdp-services']],
    ['stale-binding', ['stale-cert-binding'], ['remove-stale-cert-binding', 'restart-rdp-services']],
    ['key-file-acl', ['key-file-acl'], ['repair-key-acl', 'restart-rdp-services']],
    ['machinekeys-folder-acl', ['machinekeys-folder-acl'], ['repair-key-acl', 'restart-rdp-services']],
    ['key-file-missing', ['cert-no-private-key', 'key-file-missing'], ['regenerate-self-signed-cert', 'restart-rdp-services']],
    ['tls12-disabled', ['tls12-server-disabled'], ['enable-tls12-server', 'restart-rdp-services']],
    ['termservice-stopped', ['termservice-not-running'], ['restart-rdp-services']],
  ] as const)('%s → %j → %j', (cause, findings, actions) => {
    const { blocking, plan } = planFor(ROOT_CAUSES[cause]());
    expect(blocking).toEqual(findings);
    expect(ids(plan.actions)).toEqual(actions);
    expect(plan.refused).toEqual([]);
    expect(plan.unresolved).toEqual([]);
  });

  it('plans nothing for a healthy VM', () => {
    const { findings, plan } = planFor(healthyFacts());
    expect(findings).toEqual([]);
    expect(plan.actions).toEqual([]);
  });

  it('leaves a healthy CA-issued binding alone even when the self-signed certificate has expired', () => {
    const facts = CA_BOUND();
    facts.cert.store = [{ thumb: 'C'.repeat(40), notAfter: PAST, hasKey: true, selfSigned: true, template: false }];
    expect(planFor(facts).findings).toEqual([]);
  });

  it('reports a weakened security layer without acting on it', () => {
    const { findings, blocking, plan } = planFor(factsWith({ rdp: { securityLayer: 1, userAuthentication: 0 } }));
    expect(findings).toEqual(['security-layer-weakened']);
    expect(blocking).toEqual([]);
    expect(plan.actions).toEqual([]);
  });

  it('does not count TLS faults as blocking while SecurityLayer is 0', () => {
    const facts = ROOT_CAUSES['expired-self-signed-cert']();
    facts.rdp.securityLayer = 0;
    expect(planFor(facts).blocking).toEqual([]);
  });
});

describe('security-lowering actions', () => {
  it('refuses disable-nla without permission and plans it with', () => {
    const without = planFor(ROOT_CAUSES['nla-dc-unreachable']());
    expect(without.plan.actions).toEqual([]);
    expect(without.plan.refused).toMatchObject([{ id: 'disable-nla', reason: 'needs-permission', because: ['nla-domain-unreachable'] }]);
    expect(without.plan.unresolved).toEqual(['nla-domain-unreachable']);

    const withAllow = planFor(ROOT_CAUSES['nla-dc-unreachable'](), ['disable-nla']);
    expect(ids(withAllow.plan.actions)).toEqual(['disable-nla', 'restart-rdp-services']);
  });

  it('does not let relax-security-layer permission unlock disable-nla', () => {
    expect(planFor(ROOT_CAUSES['nla-dc-unreachable'](), ['relax-security-layer']).plan.refused).toMatchObject([{ id: 'disable-nla', reason: 'needs-permission' }]);
  });

  it('refuses to fight Group Policy even with permission', () => {
    const facts = ROOT_CAUSES['nla-dc-unreachable']();
    facts.policy.userAuthentication = true;
    expect(planFor(facts, ['disable-nla']).plan.refused).toMatchObject([{ id: 'disable-nla', reason: 'gpo-enforced' }]);
  });

  it('falls back to relaxing the security layer only where no safe fix exists (RD Connection Broker binding)', () => {
    const facts = ROOT_CAUSES['stale-binding']();
    facts.rdcb = true;
    const without = planFor(facts);
    expect(without.plan.actions).toEqual([]);
    expect(without.plan.refused.map((r) => [r.id, r.reason])).toEqual([
      ['remove-stale-cert-binding', 'rdcb-installed'],
      ['relax-security-layer', 'needs-permission'],
    ]);
    expect(ids(planFor(facts, ['relax-security-layer']).plan.actions)).toEqual(['relax-security-layer', 'restart-rdp-services']);
  });

  it('never deletes a template certificate; relaxes only with permission', () => {
    const facts = ROOT_CAUSES['expired-self-signed-cert']();
    facts.policy.certTemplate = true;
    expect(planFor(facts).plan.refused.map((r) => r.reason)).toEqual(['gpo-template', 'needs-permission']);
    const securityGpo = { ...facts, policy: { ...facts.policy, securityLayer: true } };
    expect(planFor(securityGpo, ['relax-security-layer']).plan.refused.map((r) => r.reason)).toEqual(['gpo-template', 'gpo-enforced']);
  });
});

describe('combinations', () => {
  it('repairs the folder ACL before regenerating, so Windows can write the new key', () => {
    const facts = ROOT_CAUSES['expired-self-signed-cert']();
    facts.keys = ROOT_CAUSES['machinekeys-folder-acl']().keys;
    expect(ids(planFor(facts).plan.actions)).toEqual(['repair-key-acl', 'regenerate-self-signed-cert', 'restart-rdp-services']);
  });

  it('orders every safe action least invasive first, with one restart at the end', () => {
    const facts = ROOT_CAUSES['stale-binding']();
    facts.tls12Server = 'disabled-by-default';
    facts.cert.store = [];
    facts.keys = { ...ROOT_CAUSES['key-file-acl']().keys, folderOk: false };
    facts.services.TermService = 'Stopped';
    const { plan } = planFor(facts);
    expect(ids(plan.actions)).toEqual(['enable-tls12-server', 'repair-key-acl', 'remove-stale-cert-binding', 'regenerate-self-signed-cert', 'restart-rdp-services']);
    expect(plan.unresolved).toEqual([]);
  });

  it('plans each pair of root causes without refusals and covers every blocking finding', () => {
    const causes = Object.keys(ROOT_CAUSES).filter((c) => c !== 'nla-dc-unreachable') as (keyof typeof ROOT_CAUSES)[];
    for (const a of causes) {
      for (const b of causes) {
        const fa = ROOT_CAUSES[a]();
        const fb = ROOT_CAUSES[b]();
        const healthy = healthyFacts();
        // Combine: take every fact that differs from healthy in either.
        const combined = structuredClone(fa);
        for (const key of Object.keys(healthy) as (keyof ProbeFacts)[]) {
          if (JSON.stringify(fb[key]) !== JSON.stringify(healthy[key])) (combined as Record<string, unknown>)[key] = structuredClone(fb[key]);
        }
        const { plan } = planFor(combined);
        expect(plan.unresolved, `${a} + ${b}`).toEqual([]);
        expect(plan.refused, `${a} + ${b}`).toEqual([]);
        expect(plan.actions.at(-1)?.id, `${a} + ${b}`).toBe('restart-rdp-services');
      }
    }
  });
});
