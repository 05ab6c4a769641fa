/**
 * The emulator speaks the protocols the real SDKs expect: @azure/identity gets a token from its
 * managed-identity endpoint, and @azure/arm-compute reads VMs and runs commands over HTTPS,
 * through the LRO, conflict, power-state, agent and throttling paths. Payload output (the real scripts
 * under PowerShell, against the Windows double) validates against the contract, and the loopback
 * handshake the probe runs is answered by the emulator's Windows model, also tested here on its own.
 */
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { promisify } from 'node:util';
import { ComputeManagementClient, type RunCommandInput, type RunCommandResult } from '@azure/arm-compute';
import { DefaultAzureCredential } from '@azure/identity';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { scenarioVm, seedDemoFleet, WINDOWS_SCENARIOS, windowsScenario, type DemoScenario, type MatrixScenario, type WindowsScenario } from '../../emulator/fleet.js';
import { startEmulator, trustEmulatorCa, type Emulator, type WindowsState } from '../../emulator/index.js';
import { activeFirewallProfiles, assessRdp, firewallAdmits, firewallRule, HANDSHAKE_CIPHER, rdpHandshake, type RdpHandshakeAnswer } from '../../emulator/windows.js';
import type { ActionId } from '../../src/contract/actions.js';
import { FixResultSchema, ProbeResultSchema, type FixResult, type ProbeResult } from '../../src/contract/results.js';
import { composePayload } from '../../src/payloads/compose.js';
import { requirePowerShellForFile } from '../support/powershell.js';

// Every test here runs the real payloads through the emulator.
requirePowerShellForFile('emulator e2e');

const SUB = '00000000-0000-0000-0000-0000000000aa';
const RG = 'rg-emulator-e2e';

let emu: Emulator;
let client: ComputeManagementClient;
let credential: DefaultAzureCredential;
let fleet: Record<DemoScenario, string>;
const savedEnv = { IDENTITY_ENDPOINT: process.env['IDENTITY_ENDPOINT'], IDENTITY_HEADER: process.env['IDENTITY_HEADER'] };

function vmName(id: string): string {
  return id.split('/').pop() ?? '';
}

function stdoutOf(result: RunCommandResult): string {
  return result.value?.find((s) => s.code?.startsWith('ComponentStatus/StdOut/'))?.message ?? '';
}

function stderrOf(result: RunCommandResult): string {
  return result.value?.find((s) => s.code?.startsWith('ComponentStatus/StdErr/'))?.message ?? '';
}

function probeInput(runId = randomUUID()): RunCommandInput {
  const payload = composePayload({ kind: 'probe', parameters: { RunId: runId } });
  return { commandId: payload.commandId, script: [...payload.script], parameters: payload.parameters.map((p) => ({ ...p })) };
}

function fixInput(actions: readonly ActionId[], options: { dryRun?: boolean; runId?: string; restoreSecurityLayer?: '0' | '1' | '2'; restoreUserAuthentication?: '0' | '1' } = {}): RunCommandInput {
  const payload = composePayload({
    kind: 'fix',
    parameters: {
      RunId: options.runId ?? randomUUID(),
      Actions: actions.join(','),
      DryRun: options.dryRun ? 'true' : 'false',
      ...(options.restoreSecurityLayer === undefined ? {} : { RestoreSecurityLayer: options.restoreSecurityLayer }),
      ...(options.restoreUserAuthentication === undefined ? {} : { RestoreUserAuthentication: options.restoreUserAuthentication }),
    },
  });
  return { commandId: payload.commandId, script: [...payload.script], parameters: payload.parameters.map((p) => ({ ...p })) };
}

async function probe(id: string): Promise<ProbeResult> {
  const result = await client.virtualMachines.runCommand(RG, vmName(id), probeInput(), { updateIntervalInMs: 10 });
  return ProbeResultSchema.parse(JSON.parse(stdoutOf(result)));
}

async function fix(id: string, actions: readonly ActionId[], options: Parameters<typeof fixInput>[1] = {}): Promise<FixResult> {
  const result = await client.virtualMachines.runCommand(RG, vmName(id), fixInput(actions, options), { updateIntervalInMs: 10 });
  return FixResultSchema.parse(JSON.parse(stdoutOf(result)));
}

beforeAll(async () => {
  emu = await startEmulator({ runLatencyMs: 30 });
  trustEmulatorCa(emu.caPem);
  // DefaultAzureCredential reads these when it is constructed (App Service managed identity).
  process.env['IDENTITY_ENDPOINT'] = emu.identityEndpoint;
  process.env['IDENTITY_HEADER'] = emu.identityHeader;
  credential = new DefaultAzureCredential();
  // No tlsOptions: trust comes from trustEmulatorCa alone.
  client = new ComputeManagementClient(credential, SUB, { endpoint: emu.armEndpoint, credentials: { scopes: [`${emu.armEndpoint}/.default`] } });
  fleet = seedDemoFleet(emu, { subscriptionId: SUB, resourceGroup: RG });
});

afterAll(async () => {
  for (const [name, value] of Object.entries(savedEnv)) {
    if (value === undefined) delete process.env[name];
    else process.env[name] = value;
  }
  await emu.stop();
});

describe('managed identity endpoint', () => {
  it('gives DefaultAzureCredential a token, and refuses callers without the secret header', async () => {
    const token = await credential.getToken(`${emu.armEndpoint}/.default`);
    expect(token.token.split('.')).toHaveLength(3);
    expect(token.expiresOnTimestamp).toBeGreaterThan(Date.now() + 3600_000);
    expect(emu.identityRequests.some((r) => r.status === 200 && r.resource === emu.armEndpoint)).toBe(true);

    const url = `${emu.identityEndpoint}?api-version=2019-08-01&resource=${encodeURIComponent('https://management.azure.com')}`;
    expect((await fetch(url)).status).toBe(400);
    expect((await fetch(url, { headers: { 'X-IDENTITY-HEADER': 'wrong' } })).status).toBe(401);
    const ok = await fetch(url, { headers: { 'X-IDENTITY-HEADER': emu.identityHeader } });
    const body = (await ok.json()) as Record<string, unknown>;
    expect(body).toMatchObject({ token_type: 'Bearer', resource: 'https://management.azure.com' });
    expect(typeof body['expires_on']).toBe('string');
  });

  it('ARM answers 401 AuthenticationFailed without a token it issued', async () => {
    const path = `/subscriptions/${SUB}/resourceGroups/${RG}/providers/Microsoft.Compute/virtualMachines/vm-healthy?api-version=2026-04-01`;
    const bare = await fetch(`${emu.armEndpoint}${path}`);
    expect(bare.status).toBe(401);
    expect(await bare.json()).toMatchObject({ error: { code: 'AuthenticationFailed' } });
    const forged = await fetch(`${emu.armEndpoint}${path}`, { headers: { authorization: 'Bearer not-issued-here' } });
    expect(forged.status).toBe(401);
  });

  it('child processes trust the emulator through env() (NODE_EXTRA_CA_CERTS)', async () => {
    const script = `fetch(process.env.AZURE_RESOURCE_MANAGER_ENDPOINT + '/subscriptions/x?api-version=1').then(r => console.log(r.status), e => { console.log(String(e.cause ?? e)); process.exit(1); })`;
    const { stdout } = await promisify(execFile)(process.execPath, ['-e', script], { env: { ...process.env, ...emu.env() } });
    expect(stdout.trim()).toBe('401');
  });
});

describe('VM resources', () => {
  it('gets a VM with its instance view (power state, agent, OS)', async () => {
    const vm = await client.virtualMachines.get(RG, 'vm-healthy', { expand: 'instanceView' });
    expect(vm.id).toBe(fleet.healthy);
    expect(vm.type).toBe('Microsoft.Compute/virtualMachines');
    expect(vm.storageProfile?.osDisk?.osType).toBe('Windows');
    const statuses = vm.instanceView?.statuses?.map((s) => s.code);
    expect(statuses).toEqual(['ProvisioningState/succeeded', 'PowerState/running']);
    expect(vm.instanceView?.vmAgent?.statuses?.[0]).toMatchObject({ code: 'ProvisioningState/succeeded', displayStatus: 'Ready' });
    expect(vm.instanceView?.computerName).toBe(emu.vm(fleet.healthy).computerName);
    const request = emu.requests.findLast((r) => r.method === 'GET' && r.path.endsWith('/vm-healthy'));
    expect(request?.query['$expand']).toBe('instanceView');
  });

  it('reports deallocated and agent-not-ready VMs as Azure does', async () => {
    const deallocated = await client.virtualMachines.get(RG, 'vm-deallocated', { expand: 'instanceView' });
    expect(deallocated.instanceView?.statuses?.[1]?.code).toBe('PowerState/deallocated');
    expect(deallocated.instanceView?.vmAgent).toBeUndefined();
    const notReady = await client.virtualMachines.get(RG, 'vm-agent-not-ready', { expand: 'instanceView' });
    expect(notReady.instanceView?.vmAgent?.statuses?.[0]).toMatchObject({ code: 'ProvisioningState/Unavailable', displayStatus: 'Not Ready', level: 'Warning' });
  });

  it('answers 404 ResourceNotFound for an unknown VM', async () => {
    await expect(client.virtualMachines.get(RG, 'no-such-vm')).rejects.toMatchObject({ statusCode: 404, code: 'ResourceNotFound' });
  });
});

describe('Run Command', () => {
  it('runs 202 → Azure-AsyncOperation polling → Location result', async () => {
    emu.clearLogs();
    const result = await probe(fleet.healthy);
    expect(result.ok).toBe(true);
    const trail = emu.requests.map((r) => `${r.method} ${r.status} ${r.query['monitor'] === 'true' ? 'location' : r.path.includes('/operations/') ? 'async' : 'resource'}`);
    expect(trail[0]).toBe('POST 202 resource');
    expect(trail.slice(1, -1).every((t) => t === 'GET 200 async')).toBe(true);
    expect(trail.at(-1)).toBe('GET 200 location');
    expect(emu.runCommands).toHaveLength(1);
    expect(emu.runCommands[0]).toMatchObject({ vmId: fleet.healthy, payload: 'probe', outcome: 'succeeded' });
  });

  it('answers 409 Conflict to a second run while one is in flight', async () => {
    emu.clearLogs();
    const id = fleet.healthy;
    emu.setRunLatency(id, 400);
    const first = client.virtualMachines.runCommand(RG, vmName(id), probeInput(), { updateIntervalInMs: 20 });
    await first.submitted();
    await expect(client.virtualMachines.runCommand(RG, vmName(id), probeInput(), { updateIntervalInMs: 20 })).rejects.toMatchObject({
      statusCode: 409,
      code: 'Conflict',
      message: 'Run command extension execution is in progress. Please wait for completion before invoking a run command.',
    });
    expect(stdoutOf(await first)).toContain('"kind":"probe"');
    emu.setRunLatency(id, undefined);
    expect(emu.maxConcurrentRunsPerVm).toBe(2);
  });

  it('refuses a deallocated VM with OperationNotAllowed', async () => {
    await expect(client.virtualMachines.runCommand(RG, 'vm-deallocated', probeInput(), { updateIntervalInMs: 10 })).rejects.toMatchObject({
      statusCode: 409,
      code: 'OperationNotAllowed',
      message: 'The operation requires the VM to be running (or set to run).',
    });
  });

  it('fails the LRO with VMAgentStatusCommunicationError when the agent is not ready', async () => {
    await expect(client.virtualMachines.runCommand(RG, 'vm-agent-not-ready', probeInput(), { updateIntervalInMs: 10 })).rejects.toThrow(/VMAgentStatusCommunicationError/);
    expect(emu.runCommands.at(-1)).toMatchObject({ vmId: fleet['agent-not-ready'], outcome: 'failed', errorCode: 'VMAgentStatusCommunicationError' });
  });

  it('absorbs injected 429s with Retry-After inside the SDK', async () => {
    emu.clearLogs();
    emu.injectArmFaults({ status: 429, count: 2, retryAfterSeconds: 0, match: 'write' });
    const result = await probe(fleet.healthy);
    expect(result.ok).toBe(true);
    const posts = emu.requests.filter((r) => r.method === 'POST').map((r) => r.status);
    expect(posts).toEqual([429, 429, 202]);
  });

  it('throttles with a token bucket per principal and sends Retry-After in seconds', async () => {
    emu.clearLogs();
    // One write token, refilled ten times faster than one per second.
    emu.configureThrottle({ writes: { capacity: 1, refillPerSecond: 1 }, timeScale: 10, retryAfterMs: true });
    try {
      // At once, on two VMs: a probe now runs real PowerShell, long enough for the bucket to refill between two in a row.
      await Promise.all([probe(fleet.healthy), probe(fleet['ca-cert-bound'])]);
      const throttled = emu.requests.filter((r) => r.status === 429);
      expect(throttled.length).toBeGreaterThanOrEqual(1);
      expect(throttled.every((r) => r.errorCode === 'TooManyRequests' && !r.injected && r.operationType === 'write')).toBe(true);
      expect(emu.runCommands.filter((r) => r.outcome === 'succeeded')).toHaveLength(2);
    } finally {
      emu.configureThrottle({});
    }
    const raw = await fetch(`${emu.armEndpoint}/subscriptions/${SUB}/resourceGroups/${RG}/providers/Microsoft.Compute/virtualMachines/vm-healthy?api-version=2026-04-01`, {
      headers: { authorization: `Bearer ${emu.issueToken()}` },
    });
    expect(Number(raw.headers.get('x-ms-ratelimit-remaining-subscription-reads'))).toBeGreaterThan(0);
    expect(raw.headers.get('x-ms-request-id')).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('runs on a scale set VM', async () => {
    const id = emu.addVm(scenarioVm('vmss-instance', { subscriptionId: SUB, resourceGroup: RG, name: 'vmss-web' }));
    const vm = await client.virtualMachineScaleSetVMs.get(RG, 'vmss-web', '0', { expand: 'instanceView' });
    expect(vm.type).toBe('Microsoft.Compute/virtualMachineScaleSets/virtualMachines');
    expect(vm.instanceId).toBe('0');
    expect(vm.instanceView?.statuses?.[1]?.code).toBe('PowerState/running');
    const result = await client.virtualMachineScaleSetVMs.runCommand(RG, 'vmss-web', '0', probeInput(), { updateIntervalInMs: 10 });
    expect(ProbeResultSchema.parse(JSON.parse(stdoutOf(result))).ok).toBe(true);
    expect(emu.runCommands.at(-1)?.vmId).toBe(id);
  });

  it('refuses RunPowerShellScript on a Linux VM (409, OS type mismatch)', async () => {
    emu.addVm(scenarioVm('linux', { subscriptionId: SUB, resourceGroup: RG }));
    await expect(client.virtualMachines.runCommand(RG, 'vm-linux', probeInput(), { updateIntervalInMs: 10 })).rejects.toMatchObject({
      statusCode: 409,
      message: "Run command OS type 'Windows' does not match the target OS Linux.",
    });
  });

  it('keeps only the last 4096 bytes of output, and prints nothing for other scripts', async () => {
    const big = 'x'.repeat(6000) + 'END';
    emu.addVm({ ...scenarioVm('healthy', { subscriptionId: SUB, resourceGroup: RG, name: 'vm-chatty' }), otherScript: () => ({ stdout: big }) });
    const chatty = await client.virtualMachines.runCommand(RG, 'vm-chatty', { commandId: 'RunPowerShellScript', script: ['Write-Output lots'] }, { updateIntervalInMs: 10 });
    expect(stdoutOf(chatty)).toBe(big.slice(-4096));
    const quiet = await client.virtualMachines.runCommand(RG, 'vm-healthy', { commandId: 'RunPowerShellScript', script: ['Get-Date'] }, { updateIntervalInMs: 10 });
    expect(stdoutOf(quiet)).toBe('');
  });

  it('writes a parameter-binding error to stderr, as PowerShell does', async () => {
    const input = probeInput();
    input.parameters = [{ name: 'RunId', value: 'not-a-guid' }];
    const result = await client.virtualMachines.runCommand(RG, 'vm-healthy', input, { updateIntervalInMs: 10 });
    expect(stdoutOf(result)).toBe('');
    expect(stderrOf(result)).toContain("Cannot validate argument on parameter 'RunId'");
  });
});

describe('the real payloads under PowerShell, with the Windows double behind every VM', () => {
  it('probes every root cause into a contract-valid result with the expected facts', async () => {
    const roots = WINDOWS_SCENARIOS.filter((s) => s !== 'healthy');
    const results = await Promise.all(roots.map(async (scenario) => [scenario, await probe(fleet[scenario])] as const));
    const facts = Object.fromEntries(results.map(([scenario, r]) => [scenario, r.ok ? r.facts : undefined]));
    const now = Date.now();
    expect(Date.parse(facts['expired-self-signed-cert']?.cert.store[0]?.notAfter ?? '')).toBeLessThan(now);
    expect(facts['missing-cert']?.cert.store).toEqual([]);
    expect(facts['ca-cert-bound']?.cert.binding).toMatchObject({ type: 3, cert: { selfSigned: false, hasKey: true } });
    expect(facts['stale-binding']?.cert.binding.cert).toBeNull();
    expect(facts['key-file-acl']?.keys).toMatchObject({ file: 'present', fileOk: false, folderOk: true });
    expect(facts['machinekeys-folder-acl']?.keys).toMatchObject({ folderOk: false, fileOk: true });
    expect(facts['key-file-missing']?.keys).toMatchObject({ file: 'missing', fileSddl: null, fileOk: false });
    expect(facts['tls12-disabled']).toMatchObject({ tls12Server: 'disabled' });
    expect(facts['termservice-stopped']?.services).toEqual({ TermService: 'Stopped', SessionEnv: 'Running', UmRdpService: 'Stopped' });
    expect(facts['weak-security-layer']?.rdp).toMatchObject({ securityLayer: 0, userAuthentication: 0 });
    expect(facts['gpo-enforced-security-layer']?.policy).toMatchObject({ securityLayer: true, userAuthentication: true });
    expect(facts['nla-dc-unreachable']?.domain).toEqual({ joined: true, secureChannel: 'broken' });
    // The handshake is the Windows model's answer for each VM, asked in the middle of the probe.
    expect(facts['firewall-rdp-rules-disabled']?.handshake?.attempts[0]).toMatchObject({ address: '127.0.0.1', port: 3389, stage: 'done', servedCert: 'remote-desktop' });
    expect(facts['firewall-rdp-rules-disabled']?.firewall).toMatchObject({ readable: true, portAdmitted: false, gpo: false });
    expect(facts['key-file-acl']?.handshake?.attempts[0]).toMatchObject({ stage: 'tls', error: 'reset', cert: null });
    expect(facts['missing-cert']?.handshake?.attempts[0]).toMatchObject({ stage: 'negotiate', error: 'negotiation-failure', failureCode: 3 });
    expect(facts['termservice-stopped']?.handshake?.attempts[0]).toMatchObject({ stage: 'connect', error: 'refused' });
    expect(facts['tls12-disabled']?.events?.items).toEqual([expect.objectContaining({ source: 'Schannel', id: 36871, count: 3 })]);
  });

  it('enables the Remote Desktop firewall rules, and remote clients get in', async () => {
    const id = fleet['firewall-rdp-rules-disabled'];
    expect(emu.vm(id).rdp).toEqual({ connectable: false, problems: ['firewall-blocks-port'] });
    const fixed = await fix(id, ['enable-rdp-firewall-rules']);
    expect(fixed.actions.map((a) => [a.id, a.changed, a.verified, a.error])).toEqual([['enable-rdp-firewall-rules', true, true, null]]);
    expect(fixed.verify?.firewall.portAdmitted).toBe(true);
    expect(emu.vm(id).rdp).toEqual({ connectable: true, problems: [] });
  });

  it('fixes TLS 1.2 only once TermService restarts, backs up under the RunId, and a second run is a no-op', async () => {
    const id = fleet['tls12-disabled'];
    const runId = randomUUID();
    const first = await fix(id, ['enable-tls12-server', 'restart-rdp-services'], { runId });
    expect(first.ok).toBe(true);
    expect(first.backupDir).toBe(`C:\\ProgramData\\RdpRemediation\\${runId}`);
    expect(first.actions.map((a) => [a.id, a.changed, a.verified, a.error])).toEqual([
      ['enable-tls12-server', true, true, null],
      ['restart-rdp-services', true, true, null],
    ]);
    expect(first.actions[0]?.backup).toMatch(new RegExp(`^C:\\\\ProgramData\\\\RdpRemediation\\\\${runId}\\\\schannel-tls12\\.reg$`));
    expect(first.verify).toMatchObject({ tls12Server: 'enabled', rdp: { listening: true } });
    expect(emu.vm(id).rdp).toEqual({ connectable: true, problems: [] });
    expect(Object.keys(emu.vm(id).windows?.files ?? {}).some((f) => f.startsWith(`C:\\ProgramData\\RdpRemediation\\${runId}\\manifest`))).toBe(true);

    const second = await fix(id, ['enable-tls12-server', 'restart-rdp-services']);
    expect(second.actions.every((a) => !a.changed && a.verified && a.error === null && a.backup === null)).toBe(true);
  });

  it('a new certificate is no use while TermService cannot reach the MachineKeys folder', async () => {
    const id = emu.addVm(scenarioVm('machinekeys-folder-acl', { subscriptionId: SUB, resourceGroup: RG, name: 'vm-folder-acl-expired' }));
    emu.updateWindows(id, (w) => {
      for (const cert of w.certificates['Remote Desktop'] ?? []) cert.notAfter = new Date(Date.now() - 86_400_000).toISOString().replace(/\.\d{3}Z$/, 'Z');
    });
    const regenerated = await fix(id, ['regenerate-self-signed-cert', 'restart-rdp-services']);
    expect(regenerated.actions.map((a) => a.error)).toEqual([null, null]);
    expect(regenerated.verify?.cert.store[0]).toMatchObject({ selfSigned: true, hasKey: true });
    expect(emu.vm(id).rdp?.problems).toEqual(['machinekeys-folder-inaccessible']);

    const repaired = await fix(id, ['repair-key-acl', 'restart-rdp-services']);
    expect(repaired.actions.map((a) => a.error)).toEqual([null, null]);
    expect(repaired.verify?.keys).toMatchObject({ folderOk: true, fileOk: true, file: 'present' });
    expect(emu.vm(id).rdp?.connectable).toBe(true);
  });

  it('an injected write fault fails one run only, and the record says what changed', async () => {
    const id = emu.addVm(scenarioVm('tls12-disabled', { subscriptionId: SUB, resourceGroup: RG, name: 'vm-write-fault' }));
    // Write 1 is the backup folder, 2 the TLS 1.2 key's export, 3 the first registry value.
    emu.updateWindows(id, (w) => {
      w.faults.throwAtWrite = 3;
    });
    const failed = await fix(id, ['enable-tls12-server', 'restart-rdp-services']);
    expect(failed.actions).toHaveLength(1);
    expect(failed.actions[0]).toMatchObject({ id: 'enable-tls12-server', verified: false, after: { tls12Server: 'disabled' }, error: { code: 'exception' } });
    expect(failed.actions[0]?.backup).toMatch(/schannel-tls12\.reg$/);
    expect(emu.vm(id).windows?.faults.throwAtWrite).toBeNull();

    const again = await fix(id, ['enable-tls12-server', 'restart-rdp-services']);
    expect(again.actions.map((a) => [a.id, a.error, a.verified])).toEqual([
      ['enable-tls12-server', null, true],
      ['restart-rdp-services', null, true],
    ]);
    expect(emu.vm(id).rdp?.connectable).toBe(true);
  });

  it('leaves a healthy CA-issued binding alone, and refuses GPO-enforced values', async () => {
    const before = await probe(fleet['ca-cert-bound']);
    const bound = await fix(fleet['ca-cert-bound'], ['remove-stale-cert-binding']);
    expect(bound.actions[0]).toMatchObject({ changed: false, error: { code: 'not-applicable' } });
    expect(bound.verify?.cert.binding.hash).toBe(before.ok ? before.facts.cert.binding.hash : 'probe failed');

    const gpo = await fix(fleet['gpo-enforced-security-layer'], ['relax-security-layer', 'disable-nla']);
    expect(gpo.actions.map((a) => a.error?.code)).toEqual(['gpo-enforced', 'gpo-enforced']);
    expect(gpo.actions.every((a) => !a.changed)).toBe(true);
  });

  it('changes nothing on a dry run, and returns the restore for a security-lowering change', async () => {
    const id = fleet['nla-dc-unreachable'];
    const withoutClock = (w: WindowsState | null): unknown => (w === null ? null : { ...w, now: undefined });
    const before = withoutClock(emu.vm(id).windows);
    const dry = await fix(id, ['disable-nla'], { dryRun: true });
    expect(dry).toMatchObject({ dryRun: true, backupDir: null });
    expect(dry.actions[0]).toMatchObject({ changed: false, verified: false, after: { userAuthentication: 0 }, backup: null });
    expect(withoutClock(emu.vm(id).windows)).toEqual(before);

    const real = await fix(id, ['disable-nla']);
    expect(real.actions[0]?.restore).toEqual({ action: 'restore-rdp-security', parameters: { RestoreUserAuthentication: '1' } });
    expect(emu.vm(id).rdp?.connectable).toBe(true);
    const undone = await fix(id, ['restore-rdp-security'], { restoreUserAuthentication: '1' });
    expect(undone.actions[0]).toMatchObject({ changed: true, verified: true, after: { userAuthentication: 1 } });
  });
});

describe('the Windows model: what a client would observe, and whether a remote client gets in', () => {
  const NOW = new Date('2026-06-01T10:00:00Z');
  const state = (scenario: WindowsScenario | MatrixScenario): WindowsState => windowsScenario(scenario, { computerName: 'RDPMODEL01', now: NOW, seed: scenario });
  const loopback = (w: WindowsState, port = 3389): RdpHandshakeAnswer => rdpHandshake(w, { address: '127.0.0.1', port, timeoutMs: 2000 });

  it('a healthy listener completes TLS with the Remote Desktop certificate, the same way every time', () => {
    const w = state('healthy');
    const answer = loopback(w);
    expect(answer).toEqual({
      address: '127.0.0.1',
      port: 3389,
      stage: 'done',
      error: null,
      message: null,
      failureCode: null,
      selectedProtocol: 2,
      tlsVersion: 'Tls12',
      cipher: HANDSHAKE_CIPHER,
      certificateThumbprint: w.certificates['Remote Desktop']?.[0]?.thumbprint,
      certificateNotAfter: w.certificates['Remote Desktop']?.[0]?.notAfter,
      connectMs: 1,
      negotiateMs: 2,
      tlsMs: 6,
    });
    expect(loopback(structuredClone(w))).toEqual(answer);
    expect(loopback(state('nla-off')).selectedProtocol).toBe(1);
    // A custom binding serves the bound certificate.
    const bound = state('ca-cert-bound');
    expect(loopback(bound).certificateThumbprint).toBe(bound.certificates['My']?.[0]?.thumbprint);
  });

  it('stops where Windows would: refused connect, negotiation failure, TLS failure, reset', () => {
    const outcome = (a: RdpHandshakeAnswer): string => `${a.stage} ${a.error ?? '-'} ${a.failureCode ?? '-'} ${a.certificateThumbprint === null ? 'no-cert' : 'cert'}`;
    expect(outcome(loopback(state('termservice-stopped')))).toBe('connect refused - no-cert');
    expect(outcome(loopback(state('healthy'), 3390))).toBe('connect refused - no-cert');
    // TermService still listens on the port it started with.
    expect(outcome(loopback(state('port-changed-not-restarted'), 3390))).toBe('connect refused - no-cert');
    expect(outcome(loopback(state('security-layer-rdp')))).toBe('negotiate negotiation-failure 2 no-cert');
    expect(outcome(loopback(state('expired-self-signed-cert')))).toBe('negotiate negotiation-failure 3 no-cert');
    expect(outcome(loopback(state('missing-cert')))).toBe('negotiate negotiation-failure 3 no-cert');
    expect(outcome(loopback(state('tls12-disabled')))).toBe('tls tls - no-cert');
    for (const scenario of ['key-file-acl', 'machinekeys-folder-acl', 'key-file-missing', 'stale-binding'] as const) {
      expect(outcome(loopback(state(scenario))), scenario).toBe('tls reset - no-cert');
    }
    expect(loopback(state('termservice-stopped')).message).toBe('No connection could be made because the target machine actively refused it. 127.0.0.1:3389');
  });

  it('a listener bound to one adapter refuses loopback and accepts on the primary address; an address not on the VM times out', () => {
    const w = state('listener-bound-to-adapter');
    expect(loopback(w)).toMatchObject({ stage: 'connect', error: 'refused' });
    expect(rdpHandshake(w, { address: '10.0.0.4', port: 3389 })).toMatchObject({ stage: 'done', error: null });
    expect(rdpHandshake(state('healthy'), { address: '10.0.0.4', port: 3389 })).toMatchObject({ stage: 'done' });
    expect(rdpHandshake(w, { address: '192.0.2.10', port: 3389, timeoutMs: 1500 })).toMatchObject({ stage: 'connect', error: 'timeout', connectMs: 1500 });
    expect(assessRdp(w)).toEqual({ connectable: true, problems: [] });
  });

  it('remote clients pass the guest firewall only through an enabled inbound Allow rule for the port and no Block rule; loopback is never filtered', () => {
    const disabled = state('firewall-rdp-rules-disabled');
    expect(loopback(disabled).stage).toBe('done');
    expect(assessRdp(disabled)).toEqual({ connectable: false, problems: ['firewall-blocks-port'] });
    expect(firewallAdmits(disabled, 3389)).toBe(false);

    const healthy = state('healthy');
    expect(firewallAdmits(healthy, 3389)).toBe(true);
    expect(firewallAdmits(healthy, 3390)).toBe(false);
    // Block wins over Allow.
    const blocked = structuredClone(healthy);
    blocked.firewall.rules.push({ ...firewallRule(healthy, 'RemoteDesktop-UserMode-In-TCP'), name: 'Block-RDP', group: '', action: 'Block', service: null });
    expect(assessRdp(blocked).problems).toEqual(['firewall-blocks-port']);
    // A rule scoped to another service does not admit TermService's connections.
    const otherService = structuredClone(disabled);
    otherService.firewall.rules.push({ ...firewallRule(healthy, 'RemoteDesktop-UserMode-In-TCP'), name: 'Other', service: 'w3svc' });
    expect(firewallAdmits(otherService, 3389)).toBe(false);
    // A firewall that is off for the active profile admits everything; the profile follows the network category.
    const off = structuredClone(disabled);
    off.firewall.profiles.Public = false;
    expect(assessRdp(off).connectable).toBe(true);
    off.firewall.networkCategories = ['DomainAuthenticated'];
    expect(activeFirewallProfiles(off.firewall)).toEqual(['Domain']);
    expect(assessRdp(off).connectable).toBe(false);
    off.firewall.networkCategories = [];
    expect(activeFirewallProfiles(off.firewall)).toEqual(['Public']);
    // The custom-port case: listening on 3390, only the built-in 3389 rules.
    expect(assessRdp(state('custom-port-no-rule'))).toEqual({ connectable: false, problems: ['firewall-blocks-port'] });
    expect(assessRdp(state('port-changed-not-restarted'))).toEqual({ connectable: false, problems: ['not-listening', 'firewall-blocks-port'] });
  });

  it('the acceptance oracle lets a client fall back to standard RDP security where the server allows it', () => {
    expect(assessRdp(state('security-layer-rdp')).connectable).toBe(true);
    // Negotiate without NLA: a client that cannot do TLS falls back.
    const negotiate = state('security-layer-negotiate');
    negotiate.registry['HKLM\\SYSTEM\\CurrentControlSet\\Control\\Terminal Server\\WinStations\\RDP-Tcp'] = {
      ...negotiate.registry['HKLM\\SYSTEM\\CurrentControlSet\\Control\\Terminal Server\\WinStations\\RDP-Tcp'],
      UserAuthentication: { kind: 'DWord', value: 0 },
    };
    negotiate.certificates['Remote Desktop'] = [];
    expect(loopback(negotiate)).toMatchObject({ error: 'negotiation-failure', failureCode: 3 });
    expect(assessRdp(negotiate).connectable).toBe(true);
    expect(assessRdp(state('many-causes')).problems).toEqual(['tls12-unavailable', 'bound-certificate-unusable']);
  });

  it('seeds the System-log events Windows would have written, the same for the same seed and clock', () => {
    const ids = (w: WindowsState): string[] => (w.events ?? []).map((e) => `${e.provider}:${e.id}`);
    expect(ids(state('key-file-acl'))).toEqual(['Schannel:36870', 'Schannel:36870', 'Schannel:36870']);
    expect(ids(state('key-file-missing'))).toEqual(['Microsoft-Windows-TerminalServices-RemoteConnectionManager:1057', 'Schannel:36870', 'Schannel:36870', 'Schannel:36870']);
    expect(ids(state('tls12-disabled'))).toEqual(['Schannel:36871', 'Schannel:36871', 'Schannel:36871']);
    expect(ids(state('expired-self-signed-cert'))).toEqual(['Microsoft-Windows-TerminalServices-RemoteConnectionManager:1058']);
    expect(ids(state('nla-dc-unreachable'))).toEqual(['TermDD:56', 'TermDD:56']);
    expect(ids(state('healthy'))).toEqual([]);
    const events = state('many-causes').events ?? [];
    expect(events.map((e) => e.timeCreated)).toEqual([...events.map((e) => e.timeCreated)].sort());
    expect(events.every((e) => Date.parse(e.timeCreated) < NOW.getTime())).toBe(true);
    expect(state('many-causes')).toEqual(state('many-causes'));
  });
});
