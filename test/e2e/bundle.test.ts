/**
 * The deployed bundle end to end, once: `npm run package` stages the app into a temporary
 * folder (tools/package.mjs: the esbuild bundle, host.json, the payloads, the event query, no
 * node_modules), and the bundled handlers from there, not the compiled functions/*.ts, take a
 * remediation request and a workspace-targeted alert through Azurite and the emulator, over
 * real sockets, with the real payloads under PowerShell. The alert path loads the Logs and
 * compute chunks that the bundle splits off and imports at first use.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { COMPILED_HANDLERS, startLocalStack, type AppHandlers, type LocalStack } from '../../demo/stack.js';
import { alertId, logAlertV2 } from '../../demo/alert-payloads.js';
import { scenarioVm, type Scenario } from '../../emulator/fleet.js';
import type { RemediationRecord } from '../../src/core/outcome.js';
import { requirePowerShellForFile } from '../support/powershell.js';

// Both tests run the real payloads through the emulator.
requirePowerShellForFile('bundle e2e');

interface PackageModule {
  buildPackage: (options: { out: string; stage: string; log: (line: string) => void }) => Promise<{ stage: string; files: string[] }>;
}

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const SUB = '00000000-0000-0000-0000-00000000b0d1';
let work: string;
let stage: string;
let stack: LocalStack;
let n = 0;

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'rdp-bundle-e2e-'));
  // tools/ is untyped JavaScript; the interface above is what the test relies on.
  const { buildPackage } = (await import(pathToFileURL(join(root, 'tools', 'package.mjs')).href)) as PackageModule;
  ({ stage } = await buildPackage({ out: join(work, 'app.zip'), stage: join(work, 'stage'), log: () => {} }));
  const bundled = async (name: string): Promise<unknown> => import(pathToFileURL(join(stage, 'dist-bundle', 'functions', `${name}.mjs`)).href);
  const handlers = {
    remediations: await bundled('remediations'),
    alerts: await bundled('alerts'),
    remediationWorker: await bundled('remediation-worker'),
  } as AppHandlers;
  stack = await startLocalStack({ handlers, emulator: { runLatencyMs: 30 } });
}, 120_000);

afterAll(async () => {
  await stack?.stop();
  if (work) rmSync(work, { recursive: true, force: true });
});

const addVm = (scenario: Scenario) => stack.emulator.addVm(scenarioVm(scenario, { subscriptionId: SUB, resourceGroup: 'rg-bundle', name: `vm-b${++n}` }));
const runsOn = (vm: string) => stack.emulator.runCommands.filter((r) => r.vmId.toLowerCase() === vm.toLowerCase()).map((r) => r.payload);

async function recordsFor(vm: string): Promise<RemediationRecord[]> {
  // The compiled store reads the same Azurite tables the bundled handlers wrote.
  const { getServices } = await import('../../src/app/services.js');
  return getServices().store.listByVm(vm.toLowerCase());
}

describe('the packaged bundle, end to end', () => {
  it('takes a repair request through the bundled HTTP handler and queue worker to fixed, with a probe and one fix', async () => {
    const vm = addVm('expired-self-signed-cert');
    expect(stack.emulator.vm(vm).rdp?.connectable).toBe(false);
    const response = await stack.post({ vmResourceId: vm, mode: 'repair' });
    expect(response.status, JSON.stringify(response.body)).toBe(202);
    const record = await stack.waitForCompletion((response.body as { id: string }).id);
    expect(record.state === 'completed' && record.outcome.status, JSON.stringify(record)).toBe('fixed');
    expect(record.state === 'completed' && record.outcome.runCommands).toBe(2);
    expect(runsOn(vm)).toEqual(['probe', 'fix']);
    expect(stack.emulator.vm(vm).rdp?.connectable).toBe(true);
  });

  it('takes a workspace-targeted alert through the bundled webhook and alert worker: Logs query, then one remediation', async () => {
    const WS_GUID = 'c0c0c0c0-0000-4000-8000-00000000b0d1';
    const WS_ID = `/subscriptions/${SUB}/resourceGroups/rg-monitor/providers/Microsoft.OperationalInsights/workspaces/law-bundle`;
    stack.emulator.addWorkspace({ workspaceId: WS_GUID, resourceId: WS_ID });
    const vm = addVm('tls12-disabled');
    stack.emulator.addEvents(WS_GUID, [
      {
        TimeGenerated: new Date(Date.now() - 2 * 60_000),
        _ResourceId: vm.toLowerCase(),
        Computer: 'WS-BUNDLE',
        EventLog: 'System',
        Source: 'Schannel',
        EventID: 36871,
        RenderedDescription: 'A fatal error occurred while creating a TLS server credential.',
      },
    ]);
    const response = await stack.postAlert(logAlertV2({ targets: [WS_ID], workspaceGuid: WS_GUID, computers: ['WS-BUNDLE'], alertId: alertId() }));
    expect(response).toMatchObject({ status: 202, body: { status: 'accepted', targets: { vms: [], workspace: WS_ID.toLowerCase() } } });
    await stack.host.drain(60_000);
    const records = await recordsFor(vm);
    expect(records.map((r) => r.state === 'completed' && r.outcome.status)).toEqual(['fixed']);
    expect(records[0]?.alert).toMatchObject({ logs: [{ computer: 'WS-BUNDLE', eventIds: [36871] }] });
    expect(runsOn(vm)).toEqual(['probe', 'fix']);
    expect(stack.emulator.logsRequests.some((r) => r.path.includes(`/workspaces/${WS_GUID}/query`) && r.status === 200)).toBe(true);
  });

  it('drove the staged bundle: handlers from a folder outside the repository with no node_modules to resolve from', async () => {
    const bundledAlerts = (await import(pathToFileURL(join(stage, 'dist-bundle', 'functions', 'alerts.mjs')).href)) as AppHandlers['alerts'];
    expect(bundledAlerts.postAlert).not.toBe(COMPILED_HANDLERS.alerts.postAlert);
    expect(relative(root, stage).startsWith('..')).toBe(true);
    for (let dir = stage; dir !== dirname(dir); dir = dirname(dir)) expect(existsSync(join(dir, 'node_modules')), dir).toBe(false);
  });
});
