import { describe, expect, it } from 'vitest';
import { parseVmResourceId, parseWorkspaceResourceId, vmLabel } from '../../src/core/resource-id.js';
import { InputValidationError, NotAVirtualMachineError } from '../../src/errors.js';

const SUB = '00000000-0000-0000-0000-000000000001';
const BASE = `/subscriptions/${SUB}/resourceGroups/rg/providers/Microsoft.Compute`;
const vmId = (name: string, rg = 'rg') => `/subscriptions/${SUB}/resourceGroups/${rg}/providers/Microsoft.Compute/virtualMachines/${name}`;

describe('parseVmResourceId', () => {
  it('parses a VM ID and canonicalises the fixed segments', () => {
    const r = parseVmResourceId(`/subscriptions/${SUB}/resourceGroups/RG-Prod/providers/Microsoft.Compute/virtualMachines/Web01`);
    expect(r.success && r.data).toMatchObject({ kind: 'vm', subscriptionId: SUB, resourceGroup: 'RG-Prod', name: 'Web01' });
    expect(r.success && vmLabel(r.data)).toBe('RG-Prod/Web01');
  });

  it('matches lower-cased IDs from alerts to the same key', () => {
    const a = parseVmResourceId(`/subscriptions/${SUB}/resourceGroups/RG-Prod/providers/Microsoft.Compute/virtualMachines/Web01`);
    const b = parseVmResourceId(`/subscriptions/${SUB}/resourcegroups/rg-prod/providers/microsoft.compute/virtualmachines/web01`);
    expect(a.success && b.success && a.data.key === b.data.key).toBe(true);
    expect(b.success && b.data.id).toBe(`/subscriptions/${SUB}/resourceGroups/rg-prod/providers/Microsoft.Compute/virtualMachines/web01`);
  });

  it('parses a scale set VM in either spelling', () => {
    for (const segment of ['virtualMachines', 'virtualmachines', 'VIRTUALMACHINES']) {
      const r = parseVmResourceId(`${BASE}/virtualMachineScaleSets/ss1/${segment}/7`);
      expect(r.success && r.data).toMatchObject({ kind: 'vmss-vm', scaleSetName: 'ss1', instanceId: '7' });
    }
  });

  it.each([
    ['a 64-character name', vmId('a'.repeat(64))],
    ['a name with underscores and periods (a Flexible scale set VM)', vmId('vmss-web_1a2b3c4d')],
    ['a name ending in an underscore', vmId('web01_')],
    ['a one-character name', vmId('w')],
    ['a resource group with parentheses, periods and underscores', vmId('web01', 'rg_(prod).eu-1')],
    ['a resource group of Unicode letters and digits', vmId('web01', 'rg-müller-東京-٣')],
    ['a 90-character resource group', vmId('web01', 'r'.repeat(90))],
  ])('accepts %s, as Azure does', (_label, id) => {
    const r = parseVmResourceId(id);
    expect(r.success).toBe(true);
  });

  it('gives one key to resource group names ARM takes for one (case-insensitive, simple case mapping)', () => {
    const a = parseVmResourceId(vmId('web01', 'rg-ſ'));
    const b = parseVmResourceId(vmId('web01', 'RG-S'));
    expect(a.success && b.success && a.data.key === b.data.key).toBe(true);
    const c = parseVmResourceId(vmId('web01', 'RG-Ä'));
    expect(c.success && c.data.key).toBe(vmId('web01', 'rg-ä').toLowerCase());
  });

  it('rejects other resource types with NotAVirtualMachineError', () => {
    for (const id of [
      `${BASE}/virtualMachineScaleSets/ss1`,
      `/subscriptions/${SUB}/resourceGroups/rg/providers/Microsoft.OperationalInsights/workspaces/ws`,
      `${BASE}/disks/d1`,
      `${BASE}/virtualMachines/vm1/extensions/ext`,
      `/subscriptions/${SUB}`,
      `/subscriptions/${SUB}/resourceGroups/rg`,
      `/subscriptions/${SUB}/providers/Microsoft.Security/pricings/default`,
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
    [`${BASE}/virtualMachines`, 'must be an Azure resource ID'],
    [`${BASE}/virtualMachines/a%2fb`, 'not URL-encoded'],
  ])('rejects %j with a message naming the field', (id, message) => {
    const r = parseVmResourceId(id);
    expect(r.success).toBe(false);
    expect(!r.success && r.error.field).toBe('vmResourceId');
    expect(!r.success && r.error.message).toContain(message);
  });

  // Issue 9: each of these was accepted, and the first group reached ARM as another VM.
  it.each([
    ['a dot segment in place of the scale set', `${BASE}/virtualMachineScaleSets/../virtualMachines/victim`, 'dot segment'],
    ['a dot segment in place of the resource group', `/subscriptions/${SUB}/resourceGroups/../resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/victim`, 'dot segment'],
    ['a dot segment after the VM', `${BASE}/virtualMachines/other/../victim`, 'dot segment'],
    ['a "." name', `${BASE}/virtualMachines/.`, 'dot segment'],
    ['a URL-encoded dot segment', `${BASE}/virtualMachineScaleSets/%2e%2e/virtualMachines/victim`, 'not URL-encoded'],
    ['an empty segment', `${BASE}//virtualMachines/victim`, 'empty segment'],
    ['a trailing slash', `${vmId('web01')}/`, 'empty segment'],
    ['a backslash', `${BASE}/virtualMachines/a\\..\\victim`, 'backslash'],
  ])('rejects %s', (_label, id, message) => {
    const r = parseVmResourceId(id);
    expect(!r.success && r.error).toBeInstanceOf(InputValidationError);
    expect(!r.success && r.error).not.toBeInstanceOf(NotAVirtualMachineError);
    expect(!r.success && r.error.message).toContain(message === 'backslash' ? '"\\\\"' : message);
  });

  it.each(['\u0000', '\u0001', '\n', '\r', '\t', '\u007f', '\u0085', '\u200b', '\u202e', ' ', '\u00a0', '\u2028', '\ud800'])(
    'rejects the character %j anywhere in the ID',
    (ch) => {
      for (const id of [vmId(`web${ch}01`), vmId('web01', `rg${ch}x`), `${vmId('web01')}${ch}`, `${ch}${vmId('web01')}`]) {
        const r = parseVmResourceId(id);
        expect(!r.success && r.error.message).toContain('control or whitespace character');
      }
    },
  );

  it.each([';', '$', '$(calc)', '`', "'", '"', '&', '|', '<', '>', '*', '+', '=', '@', ',', ':', '!', '~', '^', '[', ']', '{', '}', '(', ')', 'é', 'ｗ'])(
    'rejects %j in a VM or scale set name (Azure forbids it)',
    (bad) => {
      for (const id of [vmId(`web${bad}01`), `${BASE}/virtualMachineScaleSets/ss${bad}1/virtualMachines/0`]) {
        const r = parseVmResourceId(id);
        expect(!r.success && r.error.message).toMatch(/breaks Azure's naming rules|which no Azure resource ID holds/);
      }
    },
  );

  it.each([
    ['a 65-character VM name', vmId('a'.repeat(65)), 'naming rules'],
    ['a VM name ending in a period', vmId('web01.'), 'naming rules'],
    ['a VM name ending in a hyphen', vmId('web01-'), 'naming rules'],
    ['a VM name starting with an underscore', vmId('_web01'), 'naming rules'],
    ['a VM name starting with a hyphen', vmId('-web01'), 'naming rules'],
    ['a 91-character resource group', vmId('web01', 'r'.repeat(91)), 'resource group name'],
    ['a resource group ending in a period', vmId('web01', 'rg.'), 'resource group name'],
    ['a resource group with a semicolon', vmId('web01', 'rg;x'), 'resource group name'],
    ['a resource group with "$"', vmId('web01', 'rg$(x)'), 'resource group name'],
    ['a resource group with a combining mark', vmId('web01', 'rge\u0301'), 'resource group name'],
    ['an instance ID with leading zeros (instance 7 to ARM)', `${BASE}/virtualMachineScaleSets/ss1/virtualMachines/007`, 'instance ID'],
    ['a negative instance ID', `${BASE}/virtualMachineScaleSets/ss1/virtualMachines/-1`, 'instance ID'],
    ['a named instance', `${BASE}/virtualMachineScaleSets/ss1/virtualMachines/victim`, 'instance ID'],
    ['an 11-digit instance ID', `${BASE}/virtualMachineScaleSets/ss1/virtualMachines/12345678901`, 'instance ID'],
    ['an ID over 1,024 characters', `${vmId('web01')}${'/x/y'.repeat(300)}`, 'characters long'],
  ])('rejects %s', (_label, id, message) => {
    const r = parseVmResourceId(id);
    expect(!r.success && r.error).not.toBeInstanceOf(NotAVirtualMachineError);
    expect(!r.success && r.error.message).toContain(message);
  });

  it('names the caller\'s field and never echoes more than a short quoted excerpt', () => {
    const r = parseVmResourceId(vmId(`${'x'.repeat(500)};`), 'data.essentials.alertTargetIDs.3');
    expect(!r.success && r.error.field).toBe('data.essentials.alertTargetIDs.3');
    expect(!r.success && r.error.message.length).toBeLessThan(300);
  });
});

describe('parseWorkspaceResourceId', () => {
  const ws = (name: string) => `/subscriptions/${SUB}/resourceGroups/rg/providers/Microsoft.OperationalInsights/workspaces/${name}`;
  it('accepts a workspace ID as given', () => {
    expect(parseWorkspaceResourceId(ws('law-rdp'), 'f')).toEqual({ success: true, data: ws('law-rdp') });
  });
  it.each([ws('law..x/../other'), ws('law_rdp'), ws('-law'), `/subscriptions/${SUB}/resourceGroups/../providers/Microsoft.OperationalInsights/workspaces/law`, vmId('web01')])('rejects %j', (id) => {
    expect(parseWorkspaceResourceId(id, 'f').success).toBe(false);
  });
});
