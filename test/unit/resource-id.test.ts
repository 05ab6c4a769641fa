import { describe, expect, it } from 'vitest';
import { parseVmResourceId, vmLabel } from '../../src/core/resource-id.js';
import { NotAVirtualMachineError } from '../../src/errors.js';

const SUB = '00000000-0000-0000-0000-000000000001';

describe('parseVmResourceId', () => {
  it('parses a VM ID and canonicalises the fixed segments', () => {
    const r = parseVmResourceId(`/subscriptions/${SUB}/resourceGroups/RG-Prod/providers/Microsoft.Compute/virtualMachines/Web01`);
    expect(r.success && r.data).toMatchObject({ kind: 'vm', subscriptionId: SUB, resourceGroup: 'RG-Prod', name: 'Web01' });
    expect(r.success && vmLabel(r.data)).toBe('RG-Prod/Web01');
  });

  it('matches lower-cased IDs from alerts to the same key', () => {
    const a = parseVmResourceId(`/subscriptions/${SUB}/resourceGroups/RG-Prod/providers/Microsoft.Compute/virtualMachines/Web01`);
    const b = parseVmResourceId(`/subscriptions/${SUB}/resourcegroups/rg-prod/providers/microsoft.compute/virtualmachines/web01/`);
    expect(a.success && b.success && a.data.key === b.data.key).toBe(true);
    expect(b.success && b.data.id).toBe(`/subscriptions/${SUB}/resourceGroups/rg-prod/providers/Microsoft.Compute/virtualMachines/web01`);
  });

  it('parses a scale set VM in either spelling', () => {
    for (const segment of ['virtualMachines', 'virtualmachines', 'VIRTUALMACHINES']) {
      const r = parseVmResourceId(`/subscriptions/${SUB}/resourceGroups/rg/providers/Microsoft.Compute/virtualMachineScaleSets/ss1/${segment}/7`);
      expect(r.success && r.data).toMatchObject({ kind: 'vmss-vm', scaleSetName: 'ss1', instanceId: '7' });
    }
  });

  it('rejects other resource types with NotAVirtualMachineError', () => {
    for (const id of [
      `/subscriptions/${SUB}/resourceGroups/rg/providers/Microsoft.Compute/virtualMachineScaleSets/ss1`,
      `/subscriptions/${SUB}/resourceGroups/rg/providers/Microsoft.OperationalInsights/workspaces/ws`,
      `/subscriptions/${SUB}/resourceGroups/rg/providers/Microsoft.Compute/disks/d1`,
      `/subscriptions/${SUB}/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm1/extensions/ext`,
    ]) {
      const r = parseVmResourceId(id);
      expect(r.success).toBe(false);
      expect(!r.success && r.error).toBeInstanceOf(NotAVirtualMachineError);
    }
  });

  it.each([
    ['', 'must be an Azure resource ID'],
    ['vm1', 'must be an Azure resource ID'],
    [`/subscriptions/not-a-guid/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm`, 'is not a GUID'],
    [`/subs/${SUB}/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm`, 'must start with'],
    [`/subscriptions/${SUB}/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines`, 'must be an Azure resource ID'],
    [`/subscriptions/${SUB}/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/a%2fb`, 'invalid segment'],
  ])('rejects %j with a message naming the field', (id, message) => {
    const r = parseVmResourceId(id);
    expect(r.success).toBe(false);
    expect(!r.success && r.error.field).toBe('vmResourceId');
    expect(!r.success && r.error.message).toContain(message);
  });
});
