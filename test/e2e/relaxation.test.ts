/**
 * Security relaxations end to end, over Azurite and the emulator (which runs the real payloads
 * under PowerShell): a relaxation made with permission carries its expiry and leaves a due
 * entry; a restore on demand puts the security back and proves RDP still works; a restore that
 * would lock RDP out applies the relaxation again, with a new expiry, and says so; the timer
 * sweep queues each expired relaxation's restore once, with one Table query per tick, also
 * across a crash between queueing and removing the entry.
 *
 * The VM is the matrix scenario `gpo-template-cert`: Group Policy issues its RDP certificate from
 * a template, that certificate has expired, and the tool may not replace it, so RDP can only be
 * reached with the security layer relaxed, until the certificate authority renews it.
 */
import { randomUUID } from 'node:crypto';
import functions, { type Timer } from '@azure/functions';
import { TableClient } from '@azure/data-tables';
import type { PipelinePolicy } from '@azure/core-rest-pipeline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { relaxationSweepWith } from '../../functions/relaxation-sweep.js';
import { TableRemediationStore } from '../../src/adapters/remediation-store.js';
import { getServices, remediationDeps, type Services } from '../../src/app/services.js';
import type { Permission } from '../../src/contract/actions.js';
import { handshakeVerdict } from '../../src/core/diagnose.js';
import { restoreJobId, type RemediateJob } from '../../src/core/job.js';
import type { Outcome, RemediationRecord } from '../../src/core/outcome.js';
import { parseVmResourceId } from '../../src/core/resource-id.js';
import { runRemediation } from '../../src/pipeline/remediate.js';
import { scenarioVm, windowsScenario } from '../../emulator/fleet.js';
import { registryDword, selfSignedCertificate } from '../../emulator/windows.js';
import { HKLM, REMOTE_DESKTOP_STORE } from '../../emulator/windows-state.js';
import { startLocalStack, type LocalStack } from '../../demo/stack.js';
import { manifestsOn } from '../support/manifests.js';
import { requirePowerShellForFile } from '../support/powershell.js';

requirePowerShellForFile('relaxation e2e');

const { InvocationContext } = functions;
const SUB = '00000000-0000-0000-0000-0000000000f4';
const RG = 'rg-relax';
const HOUR = 3_600_000;
/** The deployment's SECURITY_RELAX_TTL_HOURS in this file: shorter than the default, to see the cap. */
const TTL_HOURS = 2;
let stack: LocalStack;
let counter = 0;

beforeAll(async () => {
  stack = await startLocalStack({ emulator: { runLatencyMs: 30 }, settings: { SECURITY_RELAX_TTL_HOURS: String(TTL_HOURS) } });
});
afterAll(async () => {
  await stack?.stop();
});

/** A VM whose template certificate expired: RDP works only with the security layer relaxed. */
function addTemplateCertVm(): string {
  const name = `vm-tpl-${++counter}`;
  return stack.emulator.addVm({ ...scenarioVm('healthy', { subscriptionId: SUB, resourceGroup: RG, name, computerName: name }), windows: windowsScenario('gpo-template-cert', { computerName: name }) });
}

/** The certificate authority renews the template certificate (auto-enrolment), as an admin would have it do. */
function renewTemplateCertificate(vm: string): void {
  stack.emulator.updateWindows(vm, (w) => {
    w.certificates[REMOTE_DESKTOP_STORE] = [selfSignedCertificate(w.computerName, new Date(Date.parse(w.now) + 300 * 24 * HOUR), { template: true })];
  });
}

async function completed(response: { status: number; body: unknown }): Promise<RemediationRecord & { state: 'completed' }> {
  expect(response.status, JSON.stringify(response.body)).toBe(202);
  const record = await stack.waitForCompletion((response.body as { id: string }).id);
  if (record.state !== 'completed') throw new Error('not completed');
  return record;
}

const relax = (vm: string, extra: Record<string, unknown> = {}) => stack.post({ vmResourceId: vm, mode: 'repair', allow: ['relax-security-layer'], ...extra }).then(completed);
const restore = (id: string) => stack.post({ mode: 'restore', restoreOf: id }).then(completed);

const rdpTcp = (vm: string) => {
  const registry = stack.emulator.vm(vm).windows?.registry ?? {};
  return { securityLayer: registryDword(registry, HKLM.rdpTcp, 'SecurityLayer'), userAuthentication: registryDword(registry, HKLM.rdpTcp, 'UserAuthentication') };
};
const vmKeyOf = (vmResourceId: string) => {
  const vm = parseVmResourceId(vmResourceId);
  if (!vm.success) throw vm.error;
  return vm.data.key;
};
const runsOf = (runId: string) => stack.emulator.runCommands.filter((r) => r.parameters['RunId'] === runId).map((r) => r.payload);
const dueEntries = () => getServices().store.listRelaxationsDue(new Date(Date.now() + 1_000 * HOUR));
/** The worker logs an outcome just after it wrote the record: wait for the line. */
async function logLine(match: (line: LocalStack['logs'][number]) => boolean): Promise<LocalStack['logs'][number]> {
  for (let i = 0; i < 400; i++) {
    const line = stack.logs.find(match);
    if (line) return line;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error('no such log line');
}
const changes = (outcome: Outcome) => ('securityChanges' in outcome ? outcome.securityChanges : []);

/** The re-read's loopback handshake got through TLS with the configured certificate, and the emulator's oracle agrees. */
function expectRdpOverTls(vm: string, after: Extract<Outcome, { status: 'restored' }>['after'], at: Date) {
  expect(after.handshake).not.toBeNull();
  expect(handshakeVerdict(after, at).kind).toBe('tls');
  expect(stack.emulator.vm(vm).rdp).toMatchObject({ connectable: true });
}

describe('a relaxation made with permission', () => {
  it('expires after the deployment\'s hours, or the request\'s fewer, and leaves a due entry for the sweep', async () => {
    const [capped, shorter, untold] = [addTemplateCertVm(), addTemplateCertVm(), addTemplateCertVm()];
    const records = await Promise.all([relax(capped, { relaxForHours: 24 }), relax(shorter, { relaxForHours: 1 }), relax(untold)]);
    const hoursOf = (r: RemediationRecord & { state: 'completed' }) => {
      const expiresAt = changes(r.outcome)[0]?.expiresAt ?? '';
      return (Date.parse(expiresAt) - Date.parse(r.progress?.fixPostedAt ?? '')) / HOUR;
    };
    for (const r of records) {
      expect(r.outcome.status, JSON.stringify(r.outcome)).toBe('fixed');
      expect(changes(r.outcome)).toMatchObject([{ action: 'relax-security-layer', restore: { parameters: { RestoreSecurityLayer: '2', RestoreUserAuthentication: '1' } } }]);
    }
    expect(records.map(hoursOf)).toEqual([TTL_HOURS, 1, TTL_HOURS]);
    expect(records.map((r) => r.relaxForHours)).toEqual([24, 1, undefined]);
    const due = await dueEntries();
    for (const r of records) expect(due).toContainEqual({ dueAt: changes(r.outcome)[0]?.expiresAt, remediationId: r.id, vmResourceId: r.vmResourceId });
    expect(rdpTcp(capped)).toEqual({ securityLayer: 0, userAuthentication: 0 });
    expect(stack.emulator.vm(capped).rdp?.connectable).toBe(true);
  });
});

describe('restore on demand', () => {
  it('puts SecurityLayer and UserAuthentication back, restarts TermService, and proves RDP still works over TLS', async () => {
    const vm = addTemplateCertVm();
    const relaxed = await relax(vm);
    renewTemplateCertificate(vm);
    const record = await restore(relaxed.id);
    if (record.outcome.status !== 'restored') throw new Error(JSON.stringify(record.outcome));
    expect(record).toMatchObject({ mode: 'restore', restoreOf: relaxed.id, allow: [], vmResourceId: relaxed.vmResourceId, source: 'manual' });
    expect(record.outcome.restoreParameters).toEqual({ RestoreSecurityLayer: '2', RestoreUserAuthentication: '1' });
    expect(record.outcome.actions.filter((a) => a.changed).map((a) => a.id)).toEqual(['restore-rdp-security', 'restart-rdp-services']);
    expect(record.outcome.securityChanges).toEqual([]);
    expect(rdpTcp(vm)).toEqual({ securityLayer: 2, userAuthentication: 1 });
    expectRdpOverTls(vm, record.outcome.after, new Date(record.completedAt));
    expect(runsOf(record.id)).toEqual(['probe', 'fix']);
    // Its relaxation is dealt with: no entry left for the sweep, and no second restore.
    expect((await dueEntries()).some((e) => e.remediationId === relaxed.id)).toBe(false);
    const again = await stack.post({ mode: 'restore', restoreOf: relaxed.id });
    expect(again).toMatchObject({ status: 409, body: { error: { code: 'AlreadyRestored', restoredBy: record.id } } });
  });

  it('refuses what there is nothing to restore: 404, 422, 409, and 400 for a restore that asks for permissions', async () => {
    const unknown = await stack.post({ mode: 'restore', restoreOf: randomUUID() });
    expect(unknown).toMatchObject({ status: 404, body: { error: { code: 'RemediationNotFound', field: 'restoreOf' } } });
    const vm = stack.emulator.addVm(scenarioVm('tls12-disabled', { subscriptionId: SUB, resourceGroup: RG, name: `vm-tls-${++counter}` }));
    const repaired = await completed(await stack.post({ vmResourceId: vm, mode: 'repair' }));
    expect(repaired.outcome.status).toBe('fixed');
    expect(await stack.post({ mode: 'restore', restoreOf: repaired.id })).toMatchObject({ status: 422, body: { error: { code: 'NothingToRestore' } } });
    const { store } = getServices();
    const { id: _id, startedAt: _s, completedAt: _c, outcome: _o, progress: _p, ...request } = repaired;
    const queued: RemediationRecord = { ...request, id: randomUUID(), state: 'queued' };
    await store.create(queued);
    expect(await stack.post({ mode: 'restore', restoreOf: queued.id })).toMatchObject({ status: 409, body: { error: { code: 'RemediationNotCompleted' } } });
    expect(await stack.post({ mode: 'restore', restoreOf: repaired.id, allow: ['relax-security-layer'] })).toMatchObject({ status: 400, body: { error: { field: 'allow' } } });
    expect(await stack.post({ mode: 'restore', restoreOf: repaired.id, vmResourceId: vm })).toMatchObject({ status: 400, body: { error: { field: 'vmResourceId' } } });
  });
});

describe('a restore that would lock RDP out', () => {
  it('applies the relaxation again with a new expiry and due entry, records restore-failed at error level, and the VM stays reachable', async () => {
    const vm = addTemplateCertVm();
    const relaxed = await relax(vm);
    const record = await restore(relaxed.id);
    if (record.outcome.status !== 'restore-failed') throw new Error(JSON.stringify(record.outcome));
    const { outcome } = record;
    expect(outcome.lockedOut).toBe(true);
    expect(outcome.remaining).toContain('cert-expired');
    expect(outcome.reason).toContain('the loopback RDP handshake fails');
    expect(outcome.reason).toMatch(/^the restore would lock RDP out: .*cert-expired.*; the relaxation was applied again \(relax-security-layer, restart-rdp-services\), reverted next at /);
    expect(outcome.actions.map((a) => `${a.id}:${a.changed}`)).toEqual(['restore-rdp-security:true', 'restart-rdp-services:true', 'relax-security-layer:true', 'restart-rdp-services:true']);
    // Two fix runs in one remediation, each once: manifest.json and manifest-2.json.
    expect(runsOf(record.id)).toEqual(['probe', 'fix', 'fix']);
    expect(manifestsOn(stack.emulator, vm, record.id).map((m) => m.sequence)).toEqual([1, 2]);
    expect(record.progress).toMatchObject({ fixRuns: 2, phase: 'relaxing', relaxRun: { plannedActions: ['relax-security-layer', 'restart-rdp-services'] } });
    // The new relaxation: its own expiry, later than the first, and its own due entry.
    const [again] = outcome.securityChanges;
    expect(again).toMatchObject({ action: 'relax-security-layer', restore: { parameters: { RestoreSecurityLayer: '2', RestoreUserAuthentication: '1' } } });
    expect(Date.parse(again?.expiresAt ?? '')).toBeGreaterThan(Date.parse(changes(relaxed.outcome)[0]?.expiresAt ?? ''));
    const due = await dueEntries();
    expect(due).toContainEqual({ dueAt: again?.expiresAt, remediationId: record.id, vmResourceId: record.vmResourceId });
    expect(due.some((e) => e.remediationId === relaxed.id)).toBe(false);
    // Reachable, by the emulator's own judgement, and relaxed as before.
    expect(stack.emulator.vm(vm).rdp?.connectable).toBe(true);
    expect(rdpTcp(vm)).toEqual({ securityLayer: 0, userAuthentication: 0 });
    const line = await logLine((l) => l.level === 'error' && l.message.includes('"remediation.completed"') && l.message.includes(record.id));
    expect(JSON.parse(line.message)).toMatchObject({ status: 'restore-failed', restoreOf: relaxed.id, lockedOut: true, securityChanges: ['relax-security-layer'], relaxedUntil: again?.expiresAt });
    // The relaxation now belongs to the restore's record: that is the one to restore next.
    expect(await stack.post({ mode: 'restore', restoreOf: relaxed.id })).toMatchObject({ status: 409, body: { error: { code: 'AlreadyRestored', restoredBy: record.id } } });
  });
});

describe('the relaxation sweep (timer)', () => {
  /** A Table client on the app's table that counts the calls and can fail the next delete, as a crash after the enqueue would leave things. */
  function countingServices(): { services: Services; calls: { method: string; url: string }[]; failNextDelete: () => void } {
    const calls: { method: string; url: string }[] = [];
    let failDelete = false;
    const policy: PipelinePolicy = {
      name: 'count-table-calls',
      async sendRequest(request, next) {
        calls.push({ method: request.method, url: request.url });
        if (request.method === 'DELETE' && failDelete) {
          failDelete = false;
          throw new Error('the worker process died before it removed the entry (injected)');
        }
        return next(request);
      },
    };
    const table = TableClient.fromConnectionString(stack.azurite.connectionString, getServices().config.tables.records, { allowInsecureConnection: true, additionalPolicies: [{ policy, position: 'perCall' }] });
    return { services: { ...getServices(), store: new TableRemediationStore(table) }, calls, failNextDelete: () => (failDelete = true) };
  }

  const timer = (): Timer => {
    const now = new Date();
    return { isPastDue: false, schedule: { adjustForDST: true }, scheduleStatus: { last: new Date(now.getTime() - 15 * 60_000).toISOString(), next: new Date(now.getTime() + 15 * 60_000).toISOString(), lastUpdated: now.toISOString() } };
  };
  const context = () => new InvocationContext({ functionName: 'relaxation-sweep', invocationId: randomUUID(), logHandler: (level, ...args) => stack.logs.push({ functionName: 'relaxation-sweep', level, message: args.map(String).join(' ') }) });

  /** A relaxation made three hours ago (the app's clock set back), so it expired an hour ago. */
  async function relaxedHoursAgo(vmId: string, allow: readonly Permission[]): Promise<RemediationRecord & { state: 'completed' }> {
    const vm = parseVmResourceId(vmId);
    if (!vm.success) throw vm.error;
    const past = () => new Date(Date.now() - 3 * HOUR);
    const job: RemediateJob = { id: randomUUID(), vm: vm.data, mode: 'repair', allow, source: 'manual', requestedAt: past().toISOString() };
    const record = await runRemediation(job, remediationDeps(getServices(), { now: past }));
    if (record.state !== 'completed') throw new Error('not completed');
    expect(Date.parse(changes(record.outcome)[0]?.expiresAt ?? '')).toBeLessThan(Date.now());
    return record;
  }

  it('queues each expired relaxation\'s restore once, with one Table query per tick, across a crash between queueing and removing the entry', async () => {
    const tpl = addTemplateCertVm();
    const nla = stack.emulator.addVm(scenarioVm('nla-dc-unreachable', { subscriptionId: SUB, resourceGroup: RG, name: `vm-nla-${++counter}` }));
    const relaxations = [await relaxedHoursAgo(tpl, ['relax-security-layer']), await relaxedHoursAgo(nla, ['disable-nla'])];
    // Since then the causes were dealt with: the certificate renewed, the domain reachable again.
    renewTemplateCertificate(tpl);
    stack.emulator.updateWindows(nla, (w) => {
      w.domain = { partOfDomain: true, secureChannel: true };
    });
    const restoreIds = relaxations.map((r) => restoreJobId(r.id, changes(r.outcome)[0]?.expiresAt ?? ''));
    const { services, calls, failNextDelete } = countingServices();
    const sweep = relaxationSweepWith(() => services);
    const filterOf = (c: { url: string }) => new URL(c.url).searchParams.get('$filter') ?? '';
    // Each tick: one range query for what is due, then one keys-only count of what is on record (the relaxed-VMs gauge).
    const queries = () => calls.filter((c) => c.method === 'GET' && filterOf(c).includes('RowKey le'));
    const counts = () => calls.filter((c) => c.method === 'GET' && filterOf(c) === "PartitionKey eq 'relax-due'");

    // Tick 1: both restores queued; the first entry's removal fails (the crash).
    failNextDelete();
    await sweep(timer(), context());
    expect(queries()).toHaveLength(1);
    expect(new URL(queries()[0]?.url ?? 'http://x').searchParams.get('$filter')).toMatch(/^PartitionKey eq 'relax-due' and RowKey le '[0-9T:.-]+Z~'$/);
    const left = (await dueEntries()).filter((e) => relaxations.some((r) => r.id === e.remediationId));
    expect(left.map((e) => e.remediationId)).toEqual([relaxations[0]?.id]);

    // Tick 2: the same restore again for the entry that stayed, never another one.
    const before = calls.length;
    await sweep(timer(), context());
    expect(queries()).toHaveLength(2);
    expect((await dueEntries()).filter((e) => relaxations.some((r) => r.id === e.remediationId))).toEqual([]);

    // Tick 3: nothing due from these; the due query and the count, and nothing else.
    const beforeEmpty = calls.length;
    await sweep(timer(), context());
    expect(calls.slice(beforeEmpty)).toHaveLength(2);
    expect(counts()).toHaveLength(3);
    expect(calls.slice(before, beforeEmpty).filter((c) => c.method === 'DELETE')).toHaveLength(1);

    const records = await Promise.all(restoreIds.map((id) => stack.waitForCompletion(id)));
    await stack.host.drain();
    for (const [i, record] of records.entries()) {
      expect(record.state === 'completed' && record.outcome.status, JSON.stringify(record)).toBe('restored');
      expect(record).toMatchObject({ mode: 'restore', source: 'expiry', restoreOf: relaxations[i]?.id });
      // Once each: one record of a restore per relaxation, one restore run on the VM.
      expect(runsOf(record.id)).toEqual(['probe', 'fix']);
      const history = await getServices().store.listByVm(vmKeyOf(record.vmResourceId));
      expect(history.filter((r) => r.mode === 'restore').map((r) => r.id)).toEqual([record.id]);
    }
    expect(rdpTcp(tpl)).toEqual({ securityLayer: 2, userAuthentication: 1 });
    expect(rdpTcp(nla).userAuthentication).toBe(1);
    expect(stack.emulator.vm(tpl).rdp?.connectable).toBe(true);
    expect(stack.emulator.vm(nla).rdp?.connectable).toBe(true);
    expect(stack.logs.some((l) => l.functionName === 'relaxation-sweep' && l.level === 'error' && l.message.includes('relaxation.sweep-failed'))).toBe(true);
  });
});
