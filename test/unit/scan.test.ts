/** The fleet scan's pure core (filters, rows, totals, exit code) and its worker pool. */
import { describe, expect, it } from 'vitest';
import type { ComputeGateway } from '../../src/adapters/compute.js';
import { runScan } from '../../src/cli/scan.js';
import type { ProbeFacts } from '../../src/contract/facts.js';
import { blockingFindings, diagnose } from '../../src/core/diagnose.js';
import type { Outcome, RemediationRecord } from '../../src/core/outcome.js';
import { planRemediation } from '../../src/core/planner.js';
import { parseVmResourceId } from '../../src/core/resource-id.js';
import { inResourceGroups, matchesTags, notProbedVm, scanExitCode, scannedVm, scanTotals, type ScanVm } from '../../src/core/scan.js';
import { checkEligibility, type VmView } from '../../src/core/vm.js';
import { ComputeError } from '../../src/errors.js';
import { healthyFacts, NOW, resetHandshake, ROOT_CAUSES } from '../support/facts.js';

const SUB = '00000000-0000-0000-0000-0000000000a1';

function view(name: string, patch: Partial<Omit<VmView, 'ref'>> & { readonly resourceGroup?: string } = {}): VmView {
  const { resourceGroup = 'rg-web', ...rest } = patch;
  const ref = parseVmResourceId(`/subscriptions/${SUB}/resourceGroups/${resourceGroup}/providers/Microsoft.Compute/virtualMachines/${name}`);
  if (!ref.success) throw ref.error;
  return { ref: ref.data, location: 'westeurope', osType: 'Windows', powerState: 'running', agent: { ready: true, status: 'Ready', message: null }, tags: {}, ...rest };
}

/** The completed record of a diagnose job over these facts, as the pipeline writes it. */
function diagnosed(vm: VmView, facts: ProbeFacts, permissions: readonly ('disable-nla' | 'relax-security-layer')[] = []): RemediationRecord {
  const findings = diagnose(facts, NOW);
  const plan = planRemediation(findings, facts, permissions);
  const evidence = { mode: 'diagnose' as const, findings, plan, before: facts, runCommands: 1, timings: { totalMs: 420, probeMs: 400 } };
  const outcome: Outcome = blockingFindings(findings).length
    ? { status: 'not-fixed', reason: 'diagnose mode: nothing changed', remaining: blockingFindings(findings).map((f) => f.code), actions: [], after: null, securityChanges: [], backupDir: null, ...evidence }
    : { status: 'healthy', ...evidence };
  return completed(vm, outcome);
}

function completed(vm: VmView, outcome: Outcome): RemediationRecord {
  const at = NOW.toISOString();
  return { id: '0d5e6f70-8192-4a3b-9c4d-5e6f708192a3', vmResourceId: vm.ref.id, vmKey: vm.ref.key, source: 'cli', mode: 'diagnose', allow: [], requestedAt: at, updatedAt: at, state: 'completed', startedAt: at, completedAt: at, outcome };
}

describe('scan filters', () => {
  it('matches every tag given, keys in any case, values exactly', () => {
    const tags = { Env: 'prod', owner: 'ops' };
    expect(matchesTags(tags, [])).toBe(true);
    expect(matchesTags(tags, [{ key: 'env', value: 'prod' }])).toBe(true);
    expect(matchesTags(tags, [{ key: 'ENV', value: 'prod' }, { key: 'Owner', value: 'ops' }])).toBe(true);
    expect(matchesTags(tags, [{ key: 'env', value: 'Prod' }])).toBe(false);
    expect(matchesTags(tags, [{ key: 'env', value: 'prod' }, { key: 'team', value: 'ops' }])).toBe(false);
    expect(matchesTags({ empty: '' }, [{ key: 'empty', value: '' }])).toBe(true);
  });
  it('keeps the resource groups given, in any case; all when none', () => {
    expect(inResourceGroups(view('a', { resourceGroup: 'RG-Web' }), [])).toBe(true);
    expect(inResourceGroups(view('a', { resourceGroup: 'RG-Web' }), ['rg-web', 'rg-db'])).toBe(true);
    expect(inResourceGroups(view('a', { resourceGroup: 'rg-app' }), ['rg-web'])).toBe(false);
  });
});

describe('scan rows', () => {
  it('a healthy VM accepts RDP and would run nothing', () => {
    const vm = view('web01');
    expect(scannedVm(vm, diagnosed(vm, healthyFacts()))).toMatchObject({ name: 'web01', resourceGroup: 'rg-web', verdict: 'healthy', handshake: 'tls', plan: [], refused: [], runCommands: 1, durationMs: 420 });
  });
  it('a VM with a blocking finding would fail, with the plan a repair would run', () => {
    const vm = view('web02');
    const row = scannedVm(vm, diagnosed(vm, ROOT_CAUSES['expired-self-signed-cert']()));
    expect(row).toMatchObject({ verdict: 'would-fail', plan: ['regenerate-self-signed-cert', 'restart-rdp-services'], refused: [] });
    expect(row.findings.map((f) => f.code)).toContain('cert-expired');
  });
  it('names the refused actions and the planner\'s reason', () => {
    const vm = view('web03');
    const row = scannedVm(vm, diagnosed(vm, ROOT_CAUSES['nla-dc-unreachable']()));
    expect(row.verdict).toBe('would-fail');
    expect(row.refused).toEqual([{ id: 'disable-nla', reason: 'needs-permission', detail: expect.stringContaining('lowers security') as unknown }]);
  });
  it('a failed handshake alone is enough to fail', () => {
    const vm = view('web04');
    const facts = { ...healthyFacts(), handshake: { attempts: [resetHandshake()] } };
    expect(scannedVm(vm, diagnosed(vm, facts)).verdict).toBe('would-fail');
  });
  it('an ineligible VM is not probed, with checkEligibility\'s reason', () => {
    for (const [patch, reason] of [
      [{ powerState: 'deallocated' }, 'not-running'],
      [{ agent: { ready: false, status: 'Not Ready', message: null } }, 'agent-not-ready'],
      [{ osType: 'Linux' as const }, 'linux'],
    ] as const) {
      const vm = view('x', patch);
      const eligibility = checkEligibility(vm);
      if (eligibility.eligible) throw new Error('eligible');
      expect(notProbedVm(vm, eligibility)).toMatchObject({ verdict: 'not-probed', notProbed: { reason }, runCommands: 0, durationMs: null });
    }
  });
  it('a skipped diagnosis is not probed; a failed one is an error; one that changed something is an error too', () => {
    const vm = view('x');
    const timings = { totalMs: 5 };
    expect(scannedVm(vm, completed(vm, { status: 'skipped', reason: 'policy-off', detail: 'remediation is off for this VM (tag)', runCommands: 0, timings }))).toMatchObject({ verdict: 'not-probed', notProbed: { reason: 'policy-off' } });
    expect(scannedVm(vm, completed(vm, { status: 'failed', error: { kind: 'transient', message: 'ARM 503' }, runCommands: 1, timings }))).toMatchObject({ verdict: 'error', error: { kind: 'transient' } });
    const fixed = diagnosed(vm, healthyFacts());
    if (fixed.state !== 'completed' || fixed.outcome.status !== 'healthy') throw new Error('setup');
    const changed = completed(vm, { ...fixed.outcome, status: 'fixed', actions: [], after: healthyFacts(), securityChanges: [], backupDir: null });
    expect(scannedVm(vm, changed)).toMatchObject({ verdict: 'error', error: { kind: 'internal', message: expect.stringContaining('must change nothing') as unknown } });
  });
});

describe('scan totals and exit code', () => {
  const vm = view('x');
  const healthy = scannedVm(vm, diagnosed(vm, healthyFacts()));
  const cert = scannedVm(vm, diagnosed(vm, ROOT_CAUSES['expired-self-signed-cert']()));
  const tls = scannedVm(vm, diagnosed(vm, ROOT_CAUSES['tls12-disabled']()));
  const off = scannedVm(vm, completed(vm, { status: 'skipped', reason: 'not-running', detail: 'VM is deallocated', runCommands: 0, timings: { totalMs: 1 } }));
  const error: ScanVm = { ...healthy, verdict: 'error', error: { kind: 'transient', message: '503' } };

  it('counts VMs by verdict, would-fail VMs by blocking cause, the rest by reason and kind', () => {
    expect(scanTotals([healthy, cert, tls, off, error])).toMatchObject({
      vms: 5,
      probed: 3,
      healthy: 1,
      wouldFail: 2,
      notProbed: 1,
      errors: 1,
      byCause: { 'cert-expired': 1, 'tls12-server-disabled': 1 },
      notProbedBy: { 'not-running': 1 },
      errorsBy: { transient: 1 },
    });
  });
  it('exits 2 when any VM would fail, else 1 when a probe errored, else 0 (VMs not probed do not count)', () => {
    expect(scanExitCode(scanTotals([healthy, cert, error]))).toBe(2);
    expect(scanExitCode(scanTotals([healthy, error]))).toBe(1);
    expect(scanExitCode(scanTotals([healthy, off]))).toBe(0);
    expect(scanExitCode(scanTotals([]))).toBe(0);
  });
});

describe('runScan', () => {
  /** A gateway whose VMs are listed as given and whose every Run Command fails after a while, counting how many run at once. */
  function gateway(views: readonly VmView[]) {
    const stats = { running: 0, peak: 0, runs: 0, lists: [] as (string | undefined)[] };
    const compute: ComputeGateway = {
      getVm: (ref) => Promise.resolve(views.find((v) => v.ref.key === ref.key) ?? views[0] ?? view('none')),
      runCommand: async () => {
        stats.runs++;
        stats.peak = Math.max(stats.peak, ++stats.running);
        await new Promise((r) => setTimeout(r, 5));
        stats.running--;
        throw new ComputeError('transient', 'ARM answered 503', {});
      },
      listVmViews: (scope) => {
        stats.lists.push(scope.resourceGroup);
        return Promise.resolve(views.filter((v) => scope.resourceGroup === undefined || v.ref.resourceGroup === scope.resourceGroup));
      },
    };
    return { compute, stats };
  }
  const remediation = { policy: { defaultMode: 'repair' as const }, lockTtlMs: 60_000, busyRetry: { attempts: 1, delayMs: () => 0 } };

  it('probes at most `concurrency` VMs at once, never the ineligible ones, and says each one done', async () => {
    const views = [...Array.from({ length: 9 }, (_, i) => view(`vm${i}`)), view('off', { powerState: 'deallocated' }), view('tux', { osType: 'Linux' })];
    const { compute, stats } = gateway(views);
    const seen: number[] = [];
    const report = await runScan({ subscriptionId: SUB, resourceGroups: [], tags: [], concurrency: 3 }, { compute, remediation, onVm: (_vm, done) => seen.push(done) });
    expect(stats.runs).toBe(9);
    expect(stats.peak).toBe(3);
    expect(seen).toEqual(Array.from({ length: 11 }, (_, i) => i + 1));
    expect(report.totals).toMatchObject({ vms: 11, errors: 9, notProbed: 2, notProbedBy: { 'not-running': 1, linux: 1 } });
    expect(report.exitCode).toBe(1);
  });
  it('lists each resource group given, once per VM, and filters by tag', async () => {
    const views = [view('a', { resourceGroup: 'rg-a', tags: { env: 'prod' } }), view('b', { resourceGroup: 'rg-b', tags: { ENV: 'prod' } }), view('c', { resourceGroup: 'rg-b', tags: { env: 'test' } }), view('d', { resourceGroup: 'rg-c', tags: { env: 'prod' } })];
    const { compute, stats } = gateway(views);
    const report = await runScan({ subscriptionId: SUB, resourceGroups: ['rg-a', 'rg-b'], tags: [{ key: 'env', value: 'prod' }], concurrency: 8 }, { compute, remediation });
    expect(stats.lists).toEqual(['rg-a', 'rg-b']);
    expect(report.vms.map((v) => v.name)).toEqual(['a', 'b']);
  });
  it('fails as a whole when the listing fails', async () => {
    const compute: ComputeGateway = { ...gateway([]).compute, listVmViews: () => Promise.reject(new ComputeError('forbidden', 'no read on the subscription', {})) };
    await expect(runScan({ subscriptionId: SUB, resourceGroups: [], tags: [], concurrency: 8 }, { compute, remediation })).rejects.toThrow(/could not list the VMs of subscription .*: no read on the subscription/);
  });
});
