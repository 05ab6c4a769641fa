/**
 * `npm start`: the embedded default. Starts Azurite and the local Azure emulator, seeds a
 * small fleet (one VM per root cause, plus healthy, deallocated and agent-not-ready VMs),
 * first scans it read-only with the real CLI (`rdp-remediator scan`: which VMs would fail RDP),
 * then asks for a repair of each through the real HTTP handler, lets the real queue worker do
 * the work, and prints a summary table. Needs no Azure account. The payloads run for real under
 * PowerShell 7 against a Windows double; the verdicts come from them and the emulator's oracle.
 */
import { scenarioVm, type Scenario } from '../emulator/fleet.js';
import { PowerShellNotFoundError } from '../emulator/powershell.js';
import { windowsHost } from '../emulator/windows-runner.js';
import { handshakeLabel, padCell, textTable } from '../src/cli/format.js';
import { main as cli } from '../src/cli/main.js';
import { handshakeVerdict } from '../src/core/diagnose.js';
import type { RemediationRecord } from '../src/core/outcome.js';
import { startLocalStack } from './stack.js';

const SUBSCRIPTION = '00000000-0000-0000-0000-0000000000de';
const RESOURCE_GROUP = 'rg-rdp-demo';
/** One PowerShell process runs every payload: on two cores a second one only competes with Node and Azurite. */
const WINDOWS = { poolSize: 1 } as const;

interface DemoVm {
  readonly scenario: Scenario;
  readonly tags?: Record<string, string>;
  readonly note: string;
}

/** Each broken VM is one the remediator fixes; the rest show what it leaves alone and why. */
const FLEET: readonly DemoVm[] = [
  { scenario: 'expired-self-signed-cert', note: 'self-signed RDP certificate expired' },
  { scenario: 'missing-cert', note: 'no certificate in the Remote Desktop store' },
  { scenario: 'stale-binding', note: 'SSLCertificateSHA1Hash points at a deleted certificate' },
  { scenario: 'key-file-acl', note: 'NETWORK SERVICE lost read on the RDP key' },
  { scenario: 'machinekeys-folder-acl', note: 'MachineKeys folder ACL reset' },
  { scenario: 'key-file-missing', note: 'RDP private key file deleted' },
  { scenario: 'tls12-disabled', note: 'SCHANNEL TLS 1.2 Server disabled' },
  { scenario: 'termservice-stopped', note: 'Remote Desktop Services stopped' },
  { scenario: 'firewall-rdp-rules-disabled', note: 'guest firewall: Remote Desktop rules disabled' },
  { scenario: 'nla-dc-unreachable', tags: { 'rdp-remediator-allow': 'disable-nla' }, note: 'NLA on, DC unreachable (tag allows disable-nla)' },
  { scenario: 'healthy', note: 'nothing wrong' },
  { scenario: 'ca-cert-bound', note: 'healthy CA-issued certificate: left alone' },
  { scenario: 'deallocated', note: 'deallocated: Run Command cannot run' },
  { scenario: 'agent-not-ready', note: 'VM agent not ready' },
];

function summaryRow(vm: DemoVm, record: RemediationRecord): string[] {
  if (record.state !== 'completed') return [vm.scenario, '-', '-', '-', record.state, '-', '-'];
  const o = record.outcome;
  const cause = 'findings' in o && o.findings ? o.findings.filter((f) => f.severity === 'blocking').map((f) => f.code).join(', ') || 'none' : o.status === 'skipped' ? o.reason : '-';
  const actions = 'actions' in o && o.actions ? o.actions.filter((a) => a.changed).map((a) => a.id).join(', ') || 'none' : '-';
  const at = new Date(record.completedAt);
  const before = 'before' in o ? handshakeLabel(o.before, at) : '-';
  const after = 'after' in o ? handshakeLabel(o.after, at) : o.status === 'healthy' ? before : '-';
  const handshake = before === '-' ? '-' : `${before} → ${after}`;
  return [vm.scenario, cause, actions, handshake, o.status, String(o.runCommands), `${(o.timings.totalMs / 1000).toFixed(2)} s`];
}

function table(rows: string[][]): string {
  return textTable(['VM', 'cause found', 'actions', 'handshake before → after', 'outcome', 'Run Commands', 'time'], rows, 48);
}

async function main(): Promise<number> {
  const started = Date.now();
  // The emulator runs the real payloads under PowerShell 7; there is no model to fall back on.
  try {
    const host = await windowsHost(WINDOWS);
    console.log(`rdp-remediator demo: PowerShell ${host.pwshPath} runs the payloads against a Windows double`);
  } catch (error) {
    if (!(error instanceof PowerShellNotFoundError)) throw error;
    console.error(`rdp-remediator demo: ${error.message}`);
    return 2;
  }
  console.log('rdp-remediator demo: starting Azurite and the local Azure emulator …');
  const stack = await startLocalStack({ emulator: { runLatencyMs: 400, pollRetryAfterSeconds: 0, windows: WINDOWS } });
  try {
    console.log(`  ARM emulator ${stack.emulator.armEndpoint}, managed identity ${stack.emulator.identityEndpoint}, Azurite queue :${stack.azurite.queuePort} table :${stack.azurite.tablePort}`);
    const vms = FLEET.map((vm) => ({
      vm,
      id: stack.emulator.addVm(scenarioVm(vm.scenario, { subscriptionId: SUBSCRIPTION, resourceGroup: RESOURCE_GROUP, name: `vm-${vm.scenario}`, ...(vm.tags ? { tags: vm.tags } : {}) })),
    }));
    console.log(`Seeded ${vms.length} VMs in ${RESOURCE_GROUP}.`);

    // Before any repair: which VMs would fail RDP? The real CLI, read-only (probes only, no records).
    console.log(`\nWhich VMs would fail RDP? rdp-remediator scan --subscription ${SUBSCRIPTION} (read-only) …\n`);
    const scanStarted = Date.now();
    const scanExit = await cli(['scan', '--subscription', SUBSCRIPTION], { out: (s) => console.log(s), err: () => undefined });
    const scanRuns = stack.emulator.runCommands.length;
    console.log(`\nscan: exit ${scanExit} (2: some VM would fail RDP), ${scanRuns} probe Run Commands, ${((Date.now() - scanStarted) / 1000).toFixed(1)} s`);

    console.log(`\nRequesting a repair of each VM (POST /api/remediations, mode "repair") …\n`);

    const accepted = await Promise.all(
      vms.map(async ({ vm, id }) => {
        const response = await stack.post({ vmResourceId: id, mode: 'repair', reason: 'demo' });
        if (response.status !== 202) throw new Error(`POST for ${vm.scenario} answered ${response.status}: ${JSON.stringify(response.body)}`);
        const remediationId = (response.body as { id: string }).id;
        console.log(`  202 ${padCell(`vm-${vm.scenario}`, 30)} → ${remediationId}  (${vm.note})`);
        return { vm, remediationId };
      }),
    );
    console.log('\nThe queue worker is remediating; waiting for every record to complete …');
    const records = await Promise.all(
      accepted.map(async ({ vm, remediationId }) => {
        const record = await stack.waitForCompletion(remediationId, 120_000);
        console.log(`  done ${padCell(`vm-${vm.scenario}`, 30)} ${record.state === 'completed' ? record.outcome.status : record.state}`);
        return { vm, record };
      }),
    );

    console.log(`\n${table(records.map(({ vm, record }) => summaryRow(vm, record)))}`);
    const runs = stack.emulator.runCommands.length - scanRuns;
    const broken = records.filter(({ record }) => record.state === 'completed' && 'findings' in record.outcome && record.outcome.findings?.some((f) => f.severity === 'blocking'));
    const fixed = broken.filter(({ record }) => record.state === 'completed' && record.outcome.status === 'fixed');
    const connectable = vms.filter(({ id }) => stack.emulator.vm(id).rdp?.connectable).length;
    // A fixed record must show it the way a client feels it: the after-handshake got through TLS with the configured certificate.
    const provenFixed = fixed.filter(({ record }) => record.state === 'completed' && record.outcome.status === 'fixed' && handshakeVerdict(record.outcome.after, new Date(record.completedAt)).kind === 'tls');
    console.log(
      `\n${fixed.length} of ${broken.length} broken VMs fixed, ${provenFixed.length} of them proven by a loopback TLS handshake with the configured certificate; ${runs} Run Command calls for the repairs (after the scan's ${scanRuns} probes); ${connectable} of ${vms.length} VMs accept RDP now (emulator ground truth); ${((Date.now() - started) / 1000).toFixed(1)} s.`,
    );
    return fixed.length === broken.length && provenFixed.length === fixed.length ? 0 : 1;
  } finally {
    await stack.stop();
  }
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    console.error(error);
    process.exitCode = 1;
  },
);
