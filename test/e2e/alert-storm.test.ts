/**
 * 500 webhook deliveries end to end through Azurite: 400 VMs, 100 of the deliveries repeats.
 * Every VM is remediated exactly once and no job is lost.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { scenarioVm } from '../../emulator/fleet.js';
import { startLocalStack, type LocalStack } from '../../demo/stack.js';
import { alertId, logAlertV2 } from '../../demo/alert-payloads.js';
import { requirePowerShellForFile } from '../support/powershell.js';

// Every test here runs the real payloads through the emulator.
requirePowerShellForFile('alert-storm e2e');

const SUB = '00000000-0000-0000-0000-0000000005a0';
let stack: LocalStack;

beforeAll(async () => {
  stack = await startLocalStack({
    // ARM's buckets, sped up 20 times so the test takes seconds; the app paced to match.
    emulator: { runLatencyMs: 50, throttle: { timeScale: 20 } },
    settings: { ARM_WRITES_PER_SECOND: '200', ARM_WRITE_BURST: '200', ARM_READS_PER_SECOND: '500', ARM_READ_BURST: '250' },
    host: { batchSize: 32, newBatchThreshold: 16 },
  });
});
afterAll(async () => {
  await stack?.stop();
});

it('500 deliveries for 400 VMs: each VM remediated exactly once, nothing lost', async () => {
  const vms = Array.from({ length: 400 }, (_, i) => stack.emulator.addVm(scenarioVm(i % 2 ? 'tls12-disabled' : 'healthy', { subscriptionId: SUB, resourceGroup: 'rg-storm', name: `vm-s${i}` })));
  const alerts = vms.map((vm) => logAlertV2({ targets: [vm], alertId: alertId() }));
  const deliveries = [...alerts, ...alerts.slice(0, 100)];
  let next = 0;
  const statuses: number[] = [];
  await Promise.all(
    Array.from({ length: 25 }, async () => {
      while (next < deliveries.length) statuses.push((await stack.postAlert(deliveries[next++])).status);
    }),
  );
  expect(statuses.filter((s) => s === 202)).toHaveLength(500);
  await stack.host.drain(240_000);

  const { getServices } = await import('../../src/app/services.js');
  const { store } = getServices();
  let duplicates = 0;
  for (const [i, vm] of vms.entries()) {
    const records = await store.listByVm(vm.toLowerCase());
    expect(records, vm).toHaveLength(1);
    const record = records[0];
    // The outcome's reason in the message: a VM that ends otherwise says why.
    expect(record?.state === 'completed' && record.outcome.status, `${vm}: ${record?.state === 'completed' && 'reason' in record.outcome ? record.outcome.reason : (record?.state ?? 'no record')}`).toBe(i % 2 ? 'fixed' : 'healthy');
    duplicates += record?.duplicates ?? 0;
    const runs = stack.emulator.runCommands.filter((r) => r.vmId === vm).map((r) => r.payload);
    expect(runs, vm).toEqual(i % 2 ? ['probe', 'fix'] : ['probe']);
  }
  expect(duplicates).toBe(100);
  expect(stack.emulator.maxConcurrentRunsPerVm).toBe(1);
  expect(stack.emulator.runCommands.every((r) => r.outcome === 'succeeded')).toBe(true);
}, 300_000);
