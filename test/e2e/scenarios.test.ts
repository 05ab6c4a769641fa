/**
 * The scenario matrix, executed: for each way Windows can be, the real composed probe runs
 * under PowerShell 7.6.9 against the Windows double, the TypeScript `diagnose` and planner
 * decide, the real fix payload runs, and the probe runs again. Checked each time: the
 * findings, the actions, backups and restore records, that every action's `after` is what the
 * VM shows when read back, that every line parses with the contract's schema within 4,096
 * bytes, and the oracle's verdict on whether RDP now works.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { MATRIX_SCENARIOS, WINDOWS_SCENARIOS, windowsScenario, type MatrixScenario, type WindowsScenario } from '../../emulator/fleet.js';
import { PowerShellHost } from '../../emulator/powershell.js';
import { windowsDoublePath } from '../../emulator/windows-runner.js';
import { assessRdp } from '../../emulator/windows.js';
import type { DoubleWrite, WindowsState } from '../../emulator/windows-state.js';
import type { ActionId, Permission } from '../../src/contract/actions.js';
import type { FixParameters } from '../../src/contract/parameters.js';
import type { ProbeFacts } from '../../src/contract/facts.js';
import { FixResultSchema, ProbeResultSchema, RESULT_LINE_MAX_BYTES, type ActionResult, type FixResult } from '../../src/contract/results.js';
import { blockingFindings, diagnose, handshakeVerdict, type FindingCode, type HandshakeVerdict } from '../../src/core/diagnose.js';
import { planRemediation, type Plan } from '../../src/core/planner.js';
import { composePayload } from '../../src/payloads/compose.js';
import { powerShellForTests } from '../support/powershell.js';

const { describeWithPowerShell } = powerShellForTests('scenario matrix');
const NOW = new Date();

let host: PowerShellHost;
/** The largest result line any scenario printed, for the note and the size budget. */
const largest = { bytes: 0, scenario: '' };

interface Run<T> {
  readonly result: T;
  readonly state: WindowsState;
  readonly writes: readonly DoubleWrite[];
  readonly line: string;
}

function lastLine(stdout: string, scenario: string): string {
  const line = stdout.trimEnd().split('\n').pop() ?? '';
  const bytes = Buffer.byteLength(line, 'utf8');
  if (bytes > largest.bytes) Object.assign(largest, { bytes, scenario });
  expect(bytes, `${scenario}: result line within Run Command's window`).toBeLessThanOrEqual(RESULT_LINE_MAX_BYTES - 2);
  return line;
}

async function probe(state: WindowsState, scenario: string): Promise<Run<ProbeFacts>> {
  const payload = composePayload({ kind: 'probe', parameters: { RunId: randomUUID() } });
  const out = await host.run({ script: payload.script.join('\n'), parameters: payload.parameters, state });
  expect(out.stderr, `${scenario}: probe stderr`).toBe('');
  const line = lastLine(out.stdout, scenario);
  const result = ProbeResultSchema.parse(JSON.parse(line));
  if (!result.ok) throw new Error(`${scenario}: probe failed: ${result.error.code} ${result.error.message}`);
  expect(out.writes, `${scenario}: the probe writes nothing`).toEqual([]);
  return { result: result.facts, state: out.state, writes: out.writes, line };
}

async function fix(state: WindowsState, actions: readonly ActionId[], scenario: string, options: Partial<Pick<FixParameters, 'DryRun' | 'RestoreSecurityLayer' | 'RestoreUserAuthentication' | 'RunId'>> = {}): Promise<Run<FixResult>> {
  const parameters: FixParameters = { RunId: options.RunId ?? randomUUID(), Actions: actions.join(','), DryRun: options.DryRun ?? 'false', ...pick(options) };
  const payload = composePayload({ kind: 'fix', parameters });
  const out = await host.run({ script: payload.script.join('\n'), parameters: payload.parameters, state });
  expect(out.stderr, `${scenario}: fix stderr`).toBe('');
  const line = lastLine(out.stdout, scenario);
  return { result: FixResultSchema.parse(JSON.parse(line)), state: out.state, writes: out.writes, line };
}

function pick(options: Partial<FixParameters>): Partial<FixParameters> {
  const restore: Partial<FixParameters> = {};
  if (options.RestoreSecurityLayer !== undefined) restore.RestoreSecurityLayer = options.RestoreSecurityLayer;
  if (options.RestoreUserAuthentication !== undefined) restore.RestoreUserAuthentication = options.RestoreUserAuthentication;
  return restore;
}

/** What each action's `after` must equal in a fresh probe of the VM. */
function readBack(id: ActionId, facts: ProbeFacts): Record<string, unknown> | null {
  switch (id) {
    case 'enable-tls12-server':
      return { tls12Server: facts.tls12Server };
    case 'enable-rdp-firewall-rules':
      return { portAdmitted: facts.firewall.portAdmitted, ...Object.fromEntries(facts.firewall.rdpRules.map((r) => [r.name, r.enabled])) };
    case 'repair-key-acl':
      return { fileSddl: facts.keys.fileSddl, folderSddl: facts.keys.folderSddl };
    case 'remove-stale-cert-binding':
      return { hash: facts.cert.binding.hash };
    case 'regenerate-self-signed-cert': {
      const newest = facts.cert.store.find((c) => c.selfSigned && !c.template) ?? null;
      return { thumb: newest?.thumb ?? null, notAfter: newest?.notAfter ?? null };
    }
    case 'disable-nla':
      return { userAuthentication: facts.rdp.userAuthentication };
    case 'relax-security-layer':
    case 'restore-rdp-security':
      return { securityLayer: facts.rdp.securityLayer, userAuthentication: facts.rdp.userAuthentication };
    case 'restart-rdp-services':
      return { TermService: facts.services.TermService, UmRdpService: facts.services.UmRdpService };
  }
}

/** Changes to the VM itself, as opposed to the run's own bookkeeping (its backup folder, backups, manifest). */
function vmChanges(writes: readonly DoubleWrite[]): DoubleWrite[] {
  return writes.filter((w) => !/\\RdpRemediation(\\|$)/i.test(w.target));
}

function fileNames(state: WindowsState): string[] {
  return Object.keys(state.files);
}

function checkFixRecord(scenario: string, run: Run<FixResult>, after: ProbeFacts): void {
  const fixResult = run.result;
  for (const action of fixResult.actions) {
    // `after` is what the VM shows, never the plan: compare with a fresh read where the line kept the value whole.
    const expected = readBack(action.id, after);
    if (expected !== null && action.id !== 'restart-rdp-services') {
      for (const [key, value] of Object.entries(action.after)) {
        if (typeof value === 'string' && value.endsWith('...')) continue;
        if (key in expected) expect(value, `${scenario}: ${action.id}.after.${key}`).toEqual(expected[key]);
      }
    }
    if (action.backup !== null) {
      for (const file of action.backup.split(';')) expect(fileNames(run.state), `${scenario}: backup ${file}`).toContain(file);
    }
    // Every changed setting is backed up first; a restart changes no setting, and a regenerate
    // backs up only the certificates it removes.
    const backs = action.id !== 'restart-rdp-services' && (action.id !== 'regenerate-self-signed-cert' || action.before['thumb'] !== null);
    if (action.changed && backs) expect(action.backup, `${scenario}: ${action.id} changed without a backup`).not.toBeNull();
  }
  if (fixResult.backupDir !== null) {
    expect(fileNames(run.state).filter((f) => f.toLowerCase().startsWith(`${fixResult.backupDir?.toLowerCase()}\\manifest`)).length, `${scenario}: manifest`).toBeGreaterThan(0);
  }
}

interface Expectation {
  readonly blocking: readonly FindingCode[];
  readonly actions: readonly ActionId[];
  readonly refused?: readonly ActionId[];
  readonly permissions?: readonly Permission[];
  /** The oracle's verdict before and after. */
  readonly acceptsBefore: boolean;
  readonly acceptsAfter: boolean;
  /** The loopback handshake the probe ran, before and after (handshakeVerdict's kind). */
  readonly handshake: readonly [HandshakeVerdict['kind'], HandshakeVerdict['kind']];
}

const ALL: Record<WindowsScenario | MatrixScenario, Expectation> = {
  healthy: { blocking: [], actions: [], acceptsBefore: true, acceptsAfter: true, handshake: ['tls', 'tls'] },
  'expired-self-signed-cert': { blocking: ['cert-expired'], actions: ['regenerate-self-signed-cert', 'restart-rdp-services'], acceptsBefore: false, acceptsAfter: true, handshake: ['failed', 'tls'] },
  'missing-cert': { blocking: ['cert-missing'], actions: ['regenerate-self-signed-cert', 'restart-rdp-services'], acceptsBefore: false, acceptsAfter: true, handshake: ['failed', 'tls'] },
  'keyless-self-signed-cert': { blocking: ['cert-no-private-key'], actions: ['regenerate-self-signed-cert', 'restart-rdp-services'], acceptsBefore: false, acceptsAfter: true, handshake: ['failed', 'tls'] },
  'ca-cert-bound': { blocking: [], actions: [], acceptsBefore: true, acceptsAfter: true, handshake: ['tls', 'tls'] },
  'gpo-template-cert': { blocking: ['cert-expired'], actions: [], refused: ['regenerate-self-signed-cert', 'relax-security-layer'], acceptsBefore: false, acceptsAfter: false, handshake: ['failed', 'failed'] },
  'stale-binding': { blocking: ['stale-cert-binding'], actions: ['remove-stale-cert-binding', 'restart-rdp-services'], acceptsBefore: false, acceptsAfter: true, handshake: ['failed', 'tls'] },
  'key-file-acl': { blocking: ['key-file-acl'], actions: ['repair-key-acl', 'restart-rdp-services'], acceptsBefore: false, acceptsAfter: true, handshake: ['failed', 'tls'] },
  'key-file-inherited-read': { blocking: ['machinekeys-folder-acl'], actions: ['repair-key-acl', 'restart-rdp-services'], acceptsBefore: true, acceptsAfter: true, handshake: ['tls', 'tls'] },
  'key-file-acl-unreadable': { blocking: ['key-file-acl'], actions: ['repair-key-acl', 'restart-rdp-services'], acceptsBefore: false, acceptsAfter: true, handshake: ['failed', 'tls'] },
  'machinekeys-folder-acl': { blocking: ['machinekeys-folder-acl'], actions: ['repair-key-acl', 'restart-rdp-services'], acceptsBefore: false, acceptsAfter: true, handshake: ['failed', 'tls'] },
  'machinekeys-folder-long-acl': { blocking: ['machinekeys-folder-acl'], actions: ['repair-key-acl', 'restart-rdp-services'], acceptsBefore: false, acceptsAfter: true, handshake: ['failed', 'tls'] },
  'key-file-missing': { blocking: ['key-file-missing'], actions: ['regenerate-self-signed-cert', 'restart-rdp-services'], acceptsBefore: false, acceptsAfter: true, handshake: ['failed', 'tls'] },
  'tls12-disabled': { blocking: ['tls12-server-disabled'], actions: ['enable-tls12-server', 'restart-rdp-services'], acceptsBefore: false, acceptsAfter: true, handshake: ['failed', 'tls'] },
  'termservice-stopped': { blocking: ['termservice-not-running'], actions: ['restart-rdp-services'], acceptsBefore: false, acceptsAfter: true, handshake: ['failed', 'tls'] },
  'termservice-start-pending': { blocking: ['termservice-not-running'], actions: ['restart-rdp-services'], acceptsBefore: false, acceptsAfter: true, handshake: ['failed', 'tls'] },
  'weak-security-layer': { blocking: [], actions: [], acceptsBefore: true, acceptsAfter: true, handshake: ['rdp-security', 'rdp-security'] },
  'security-layer-rdp': { blocking: [], actions: [], acceptsBefore: true, acceptsAfter: true, handshake: ['rdp-security', 'rdp-security'] },
  'security-layer-negotiate': { blocking: [], actions: [], acceptsBefore: true, acceptsAfter: true, handshake: ['tls', 'tls'] },
  'nla-off': { blocking: [], actions: [], acceptsBefore: true, acceptsAfter: true, handshake: ['tls', 'tls'] },
  'gpo-enforced-security-layer': { blocking: ['nla-domain-unreachable'], actions: [], refused: ['disable-nla'], permissions: ['disable-nla'], acceptsBefore: false, acceptsAfter: false, handshake: ['tls', 'tls'] },
  'gpo-nla-wmi': { blocking: ['nla-domain-unreachable'], actions: [], refused: ['disable-nla'], permissions: ['disable-nla'], acceptsBefore: false, acceptsAfter: false, handshake: ['tls', 'tls'] },
  'gpo-nla-policy-key': { blocking: ['nla-domain-unreachable'], actions: [], refused: ['disable-nla'], permissions: ['disable-nla'], acceptsBefore: false, acceptsAfter: false, handshake: ['tls', 'tls'] },
  'nla-dc-unreachable': { blocking: ['nla-domain-unreachable'], actions: ['disable-nla', 'restart-rdp-services'], permissions: ['disable-nla'], acceptsBefore: false, acceptsAfter: true, handshake: ['tls', 'tls'] },
  'rdcb-installed': { blocking: ['stale-cert-binding'], actions: [], refused: ['remove-stale-cert-binding', 'relax-security-layer'], acceptsBefore: false, acceptsAfter: false, handshake: ['failed', 'failed'] },
  'firewall-rdp-rules-disabled': { blocking: ['firewall-rdp-rules-disabled'], actions: ['enable-rdp-firewall-rules'], acceptsBefore: false, acceptsAfter: true, handshake: ['tls', 'tls'] },
  'custom-port-no-rule': { blocking: ['firewall-port-closed'], actions: ['enable-rdp-firewall-rules'], acceptsBefore: false, acceptsAfter: true, handshake: ['tls', 'tls'] },
  'firewall-gpo': { blocking: ['firewall-rdp-rules-disabled'], actions: [], refused: ['enable-rdp-firewall-rules'], acceptsBefore: false, acceptsAfter: false, handshake: ['tls', 'tls'] },
  'listener-bound-to-adapter': { blocking: [], actions: [], acceptsBefore: true, acceptsAfter: true, handshake: ['tls', 'tls'] },
  'port-changed-not-restarted': {
    blocking: ['rdp-not-listening', 'firewall-port-closed'],
    actions: ['enable-rdp-firewall-rules', 'restart-rdp-services'],
    acceptsBefore: false,
    acceptsAfter: true,
    handshake: ['failed', 'tls'],
  },
  'many-causes': {
    blocking: ['tls12-server-disabled', 'stale-cert-binding', 'cert-expired', 'key-file-acl'],
    actions: ['enable-tls12-server', 'repair-key-acl', 'remove-stale-cert-binding', 'regenerate-self-signed-cert', 'restart-rdp-services'],
    acceptsBefore: false,
    acceptsAfter: true,
    handshake: ['failed', 'tls'],
  },
};

function state(scenario: WindowsScenario | MatrixScenario): WindowsState {
  return windowsScenario(scenario, { computerName: 'RDPMATRIX01', now: NOW, seed: scenario });
}

describeWithPowerShell('scenario matrix under PowerShell', () => {
  beforeAll(async () => {
    host = await PowerShellHost.start({ doublePath: windowsDoublePath() });
  }, 60_000);
  afterAll(async () => {
    await host.close();
    console.log(`scenario matrix: largest result line ${largest.bytes} bytes (${largest.scenario})`);
  });

  const scenarios = [...WINDOWS_SCENARIOS, ...MATRIX_SCENARIOS];
  it('covers every scenario of the fleet', () => {
    expect(Object.keys(ALL).sort()).toEqual([...scenarios].sort());
  });

  for (const scenario of scenarios) {
    const expected = ALL[scenario];
    it(`${scenario}: probe → diagnose → plan → fix → probe`, async () => {
      const start = state(scenario);
      expect(assessRdp(start).connectable, `${scenario}: oracle before (${assessRdp(start).problems.join(', ')})`).toBe(expected.acceptsBefore);
      const first = await probe(start, scenario);
      const findings = diagnose(first.result, NOW);
      expect(handshakeVerdict(first.result, NOW).kind, `${scenario}: handshake before`).toBe(expected.handshake[0]);
      expect(blockingFindings(findings).map((f) => f.code).sort()).toEqual([...expected.blocking].sort());
      const plan: Plan = planRemediation(findings, first.result, expected.permissions ?? []);
      expect(plan.actions.map((a) => a.id)).toEqual(expected.actions);
      expect(plan.refused.map((r) => r.id).sort()).toEqual([...(expected.refused ?? [])].sort());

      let current = first.state;
      if (plan.actions.length > 0) {
        const ids = plan.actions.map((a) => a.id);
        const fixed = await fix(current, ids, scenario);
        expect(fixed.result.ok, `${scenario}: ${fixed.line}`).toBe(true);
        expect(fixed.result.actions.map((a: ActionResult) => [a.id, a.error?.code ?? null, a.verified])).toEqual(ids.map((id) => [id, null, true]));
        // The fix's own re-read ran the handshake too, and it agrees with a fresh probe.
        expect(fixed.result.verify && handshakeVerdict(fixed.result.verify, NOW).kind, `${scenario}: handshake in the fix's re-read`).toBe(expected.handshake[1]);
        const again = await probe(fixed.state, scenario);
        expect(handshakeVerdict(again.result, NOW).kind, `${scenario}: handshake after`).toBe(expected.handshake[1]);
        checkFixRecord(scenario, fixed, again.result);
        expect(blockingFindings(diagnose(again.result, NOW)).map((f) => f.code)).toEqual([]);
        current = again.state;

        // A second remediation finds nothing to do and changes nothing.
        const second = await probe(current, scenario);
        expect(planRemediation(diagnose(second.result, NOW), second.result, expected.permissions ?? []).actions).toEqual([]);
        // The same fix again is a no-op on the VM (only its own bookkeeping is written).
        const rerun = await fix(current, ids, scenario);
        expect(vmChanges(rerun.writes), `${scenario}: rerun changed the VM`).toEqual([]);
        expect(rerun.result.actions.every((a) => !a.changed && a.verified)).toBe(true);
      }
      const verdict = assessRdp(current);
      expect(verdict.connectable, `${scenario}: oracle after (${verdict.problems.join(', ')})`).toBe(expected.acceptsAfter);
    });

    if (expected.actions.length > 0) {
      it(`${scenario}: a dry run writes nothing`, async () => {
        const dry = await fix(state(scenario), expected.actions, scenario, { DryRun: 'true' });
        expect(dry.writes).toEqual([]);
        expect(dry.result).toMatchObject({ ok: true, dryRun: true, backupDir: null });
        expect(dry.result.actions.every((a) => !a.changed && a.backup === null)).toBe(true);
      });
    }
  }

  it('never deletes a CA-issued certificate bound by hash, nor a GPO-template one, even when asked to', async () => {
    const bound = state('ca-cert-bound');
    const asked = await fix(bound, ['remove-stale-cert-binding', 'regenerate-self-signed-cert'], 'ca-cert-bound');
    expect(asked.result.actions.map((a) => [a.id, a.changed, a.error?.code ?? null])).toEqual([
      ['remove-stale-cert-binding', false, 'not-applicable'],
      ['regenerate-self-signed-cert', false, null],
    ]);
    expect(asked.state.certificates['My']).toEqual(bound.certificates['My']);
    expect(asked.state.registry).toEqual(bound.registry);

    const template = state('gpo-template-cert');
    const refused = await fix(template, ['regenerate-self-signed-cert'], 'gpo-template-cert');
    expect(refused.result.actions[0]).toMatchObject({ changed: false, error: { code: 'gpo-template' } });
    expect(refused.state.certificates['Remote Desktop']).toEqual(template.certificates['Remote Desktop']);
    expect(vmChanges(refused.writes)).toEqual([]);
  });

  it('relax-security-layer with permission, then restore-rdp-security puts both values back', async () => {
    const start = state('gpo-template-cert');
    // The template policy refuses regeneration; with permission the security layer is relaxed.
    const plan = planRemediation(diagnose((await probe(start, 'gpo-template-cert')).result, NOW), (await probe(start, 'gpo-template-cert')).result, ['relax-security-layer']);
    expect(plan.actions.map((a) => a.id)).toEqual(['relax-security-layer', 'restart-rdp-services']);
    const relaxed = await fix(start, plan.actions.map((a) => a.id), 'gpo-template-cert');
    const relax = relaxed.result.actions[0];
    expect(relax).toMatchObject({ id: 'relax-security-layer', changed: true, verified: true, after: { securityLayer: 0, userAuthentication: 0 } });
    expect(relax?.restore).toEqual({ action: 'restore-rdp-security', parameters: { RestoreSecurityLayer: '2', RestoreUserAuthentication: '1' } });
    expect(assessRdp(relaxed.state).connectable).toBe(true);

    const parameters = relax?.restore?.parameters ?? {};
    const restored = await fix(relaxed.state, ['restore-rdp-security', 'restart-rdp-services'], 'gpo-template-cert', parameters);
    expect(restored.result.actions[0]).toMatchObject({ changed: true, verified: true, after: { securityLayer: 2, userAuthentication: 1 } });
    const read = await probe(restored.state, 'gpo-template-cert');
    expect(read.result.rdp).toMatchObject({ securityLayer: 2, userAuthentication: 1 });
  });

  it('SecurityLayer 0 and UserAuthentication 0 are reported, and restore raises them', async () => {
    const start = state('security-layer-rdp');
    const read = await probe(start, 'security-layer-rdp');
    expect(read.result.rdp).toMatchObject({ securityLayer: 0, userAuthentication: 0 });
    expect(diagnose(read.result, NOW).map((f) => [f.code, f.severity])).toContainEqual(['security-layer-weakened', 'advisory']);
    const restored = await fix(start, ['restore-rdp-security'], 'security-layer-rdp', { RestoreSecurityLayer: '2', RestoreUserAuthentication: '1' });
    expect(restored.result.actions[0]).toMatchObject({ changed: true, verified: true, after: { securityLayer: 2, userAuthentication: 1 } });
    // The RDP-Tcp key was exported before the change.
    expect(restored.result.actions[0]?.backup).toMatch(/rdp-tcp\.reg$/);
  });

  it('a write that throws midway: the failure names what changed, backup and manifest are on disk, a rerun completes', async () => {
    const start = state('many-causes');
    const ids = ALL['many-causes'].actions;
    const runId = randomUUID();
    // Let the first actions through; fail inside the key ACL repair, after its backup.
    const dry = await fix(start, ids, 'many-causes', { DryRun: 'true' });
    expect(dry.writes).toEqual([]);
    const broken = structuredClone(start);
    broken.faults.throwAtWrite = 6;
    const failed = await fix(broken, ids, 'many-causes', { RunId: runId });
    const failing = failed.result.actions.find((a) => a.error !== null);
    expect(failing, failed.line).toBeDefined();
    expect(failing?.error?.message).toMatch(/Injected fault at write 6/);
    // What ran before the fault is recorded as changed, with its backup on disk.
    for (const action of failed.result.actions.slice(0, failed.result.actions.indexOf(failing as ActionResult))) {
      if (action.changed) expect(action.backup).not.toBeNull();
    }
    expect(fileNames(failed.state).some((f) => f.toLowerCase().startsWith(`c:\\programdata\\rdpremediation\\${runId}\\manifest`))).toBe(true);
    // `after` of the failed action is what the VM shows, not the plan.
    const read = await probe(failed.state, 'many-causes');
    const expectedAfter = readBack(failing?.id ?? 'restart-rdp-services', read.result) ?? {};
    for (const [key, value] of Object.entries(failing?.after ?? {})) {
      if (typeof value === 'string' && value.endsWith('...')) continue;
      if (key in expectedAfter) expect(value, `failed ${failing?.id}.after.${key}`).toEqual(expectedAfter[key]);
    }
    // The rerun with the same RunId completes and keeps the first run's record.
    const cleared = { ...failed.state, faults: { ...failed.state.faults, throwAtWrite: null } };
    const rerun = await fix(cleared, ids, 'many-causes', { RunId: runId });
    expect(rerun.result.actions.every((a) => a.error === null && a.verified), rerun.line).toBe(true);
    expect(assessRdp(rerun.state).connectable).toBe(true);
    const manifests = (w: WindowsState): [string, string | undefined][] =>
      Object.entries(w.files)
        .filter(([path]) => path.toLowerCase().startsWith(`c:\\programdata\\rdpremediation\\${runId}\\manifest`))
        .map(([path, entry]) => [path, entry.content]);
    const first = manifests(failed.state);
    expect(first).toHaveLength(1);
    // The first run's manifest is kept as it was; the rerun's record is a second one beside it.
    expect(manifests(rerun.state)).toEqual(expect.arrayContaining(first));
    expect(manifests(rerun.state)).toHaveLength(2);
  });
});
