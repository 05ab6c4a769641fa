/**
 * The custom role in infra/main.bicep must hold exactly the operations the app calls. The set
 * is derived from an end-to-end run: every request the app sent to the emulator (a VM repaired,
 * a scale set VM repaired, a workspace alert resolved through the Logs API), mapped to the
 * RBAC operation ARM checks for it.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { scenarioVm } from '../../emulator/fleet.js';
import { armOperation, logsQueryOperations } from '../../emulator/operations.js';
import { startLocalStack, type LocalStack } from '../../demo/stack.js';
import { packageRoot } from '../../src/util/package-root.js';
import { logAlertV2 } from '../../demo/alert-payloads.js';
import { bicepStringArray } from '../support/bicep-parser.js';

const SUB = '00000000-0000-0000-0000-0000000000f1';
const WS = 'f1f1f1f1-0000-4000-8000-0000000000f1';
const WS_ID = `/subscriptions/${SUB}/resourceGroups/rg-mon/providers/Microsoft.OperationalInsights/workspaces/law`;
let stack: LocalStack;

beforeAll(async () => {
  stack = await startLocalStack();
});
afterAll(async () => {
  await stack?.stop();
});

it('the custom role equals the operations the app used in an end-to-end run', async () => {
  const vm = stack.emulator.addVm(scenarioVm('expired-self-signed-cert', { subscriptionId: SUB, resourceGroup: 'rg', name: 'vm-lp' }));
  const vmss = stack.emulator.addVm(scenarioVm('tls12-disabled', { subscriptionId: SUB, resourceGroup: 'rg', scaleSet: { name: 'ss-lp', instanceId: '1' } }));
  for (const id of [vm, vmss]) {
    const { body } = await stack.post({ vmResourceId: id, mode: 'repair' });
    await stack.waitForCompletion((body as { id: string }).id);
  }
  const viaLogs = stack.emulator.addVm(scenarioVm('key-file-acl', { subscriptionId: SUB, resourceGroup: 'rg', name: 'vm-lp-ws' }));
  stack.emulator.addWorkspace({ workspaceId: WS, resourceId: WS_ID });
  stack.emulator.addEvents(WS, [{ TimeGenerated: new Date(), _ResourceId: viaLogs.toLowerCase(), Computer: 'LP', EventLog: 'System', Source: 'Schannel', EventID: 36870 }]);
  await stack.postAlert(logAlertV2({ targets: [WS_ID], workspaceGuid: WS }));
  await stack.host.drain(60_000);

  const used = new Set<string>();
  const unmapped: string[] = [];
  for (const r of stack.emulator.requests) {
    const op = armOperation(r.method, r.path);
    if (op) used.add(op);
    else unmapped.push(`${r.method} ${r.path}`);
  }
  for (const r of stack.emulator.logsRequests) if (r.status === 200 && r.recognised) for (const op of logsQueryOperations(['Event'])) used.add(op);

  expect(unmapped).toEqual([]);
  const role = bicepStringArray(readFileSync(join(packageRoot(), 'infra', 'main.bicep'), 'utf8'), 'remediatorActions');
  expect([...used].sort()).toEqual([...role].sort());
});
