/**
 * Azure resource IDs for the two kinds of machine Run Command can reach: a VM and a scale
 * set VM. Alerts deliver IDs lower-cased and the portal mixed-case, so matching is
 * case-insensitive; `key` is the canonical lower-case form used for locks and records.
 */
import { InputValidationError, NotAVirtualMachineError } from '../errors.js';
import { fail, ok, type Result } from './result.js';

interface VmRefBase {
  readonly subscriptionId: string;
  readonly resourceGroup: string;
  /** The ID in canonical casing of its fixed segments, names as given. */
  readonly id: string;
  /** Lower-case ID: one VM, one key. */
  readonly key: string;
}

export type VmRef =
  | (VmRefBase & { readonly kind: 'vm'; readonly name: string })
  | (VmRefBase & { readonly kind: 'vmss-vm'; readonly scaleSetName: string; readonly instanceId: string });

const NAME = /^[^/\\#?%]{1,128}$/;
const GUIDISH = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export function parseVmResourceId(raw: string): Result<VmRef, InputValidationError> {
  const field = 'vmResourceId';
  const trimmed = raw.trim().replace(/\/+$/, '');
  const parts = trimmed.split('/');
  // ['', 'subscriptions', sub, 'resourceGroups', rg, 'providers', ns, type, name, ...]
  if (parts[0] !== '' || parts.length < 9) {
    return fail(new InputValidationError(field, 'must be an Azure resource ID like /subscriptions/{id}/resourceGroups/{rg}/providers/Microsoft.Compute/virtualMachines/{name}', { raw }));
  }
  const [, subs, subscriptionId = '', rgs, resourceGroup = '', providers, namespace = '', ...rest] = parts;
  if (subs?.toLowerCase() !== 'subscriptions' || rgs?.toLowerCase() !== 'resourcegroups' || providers?.toLowerCase() !== 'providers') {
    return fail(new InputValidationError(field, 'must start with /subscriptions/{id}/resourceGroups/{rg}/providers/', { raw }));
  }
  if (!GUIDISH.test(subscriptionId)) return fail(new InputValidationError(field, `subscription "${subscriptionId}" is not a GUID`, { raw }));
  if (!NAME.test(resourceGroup)) return fail(new InputValidationError(field, 'resource group name is not valid', { raw }));
  if (rest.some((segment) => !NAME.test(segment))) return fail(new InputValidationError(field, 'contains an empty or invalid segment', { raw }));

  const types = rest.filter((_, i) => i % 2 === 0);
  const names = rest.filter((_, i) => i % 2 === 1);
  const resourceType = `${namespace}/${types.join('/')}`;
  if (types.length !== names.length) return fail(new InputValidationError(field, `${resourceType} has a type without a name`, { raw }));

  const lowerType = resourceType.toLowerCase();
  const base = `/subscriptions/${subscriptionId}/resourceGroups/${resourceGroup}/providers/Microsoft.Compute`;
  if (lowerType === 'microsoft.compute/virtualmachines') {
    const name = names[0] ?? '';
    const id = `${base}/virtualMachines/${name}`;
    return ok({ kind: 'vm', subscriptionId, resourceGroup, name, id, key: id.toLowerCase() });
  }
  if (lowerType === 'microsoft.compute/virtualmachinescalesets/virtualmachines') {
    const scaleSetName = names[0] ?? '';
    const instanceId = names[1] ?? '';
    if (!/^\d+$/.test(instanceId) && !GUIDISH.test(instanceId) && !/^[\w-]+$/.test(instanceId)) {
      return fail(new InputValidationError(field, `scale set instance ID "${instanceId}" is not valid`, { raw }));
    }
    const id = `${base}/virtualMachineScaleSets/${scaleSetName}/virtualMachines/${instanceId}`;
    return ok({ kind: 'vmss-vm', subscriptionId, resourceGroup, scaleSetName, instanceId, id, key: id.toLowerCase() });
  }
  return fail(new NotAVirtualMachineError(trimmed, resourceType));
}

/** A short human label: `rg/vm` or `rg/vmss/instance`. */
export function vmLabel(ref: VmRef): string {
  return ref.kind === 'vm' ? `${ref.resourceGroup}/${ref.name}` : `${ref.resourceGroup}/${ref.scaleSetName}/${ref.instanceId}`;
}
