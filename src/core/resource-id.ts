/**
 * Azure resource IDs for the two kinds of machine Run Command can reach: a VM and a scale
 * set VM. Alerts deliver IDs lower-cased and the portal mixed-case, so matching is
 * case-insensitive; `key` is the canonical lower-case form used for locks and records.
 *
 * Every resource ID that enters the app (a request body, an alert target, a Logs row, a queue
 * message) passes through here, and each of its names must follow Azure's own naming rules
 * ("Naming rules and restrictions for Azure resources", learn.microsoft.com):
 *
 * - subscription: a GUID.
 * - resource group (Microsoft.Resources/resourcegroups): 1–90 characters; letters and digits
 *   as .NET's Char.IsLetterOrDigit defines them (Unicode categories Lu, Ll, Lt, Lm, Lo, Nd),
 *   underscores, hyphens, periods and parentheses; not ending in a period.
 * - virtual machine and scale set (Microsoft.Compute/virtualMachines, virtualMachineScaleSets):
 *   the resource name is 1–64 characters (the 15-character Windows limit in the table is the
 *   computer name's, a separate property). No spaces, control characters or
 *   `~ ! @ # $ % ^ & * ( ) = + [ ] { } \ | ; : ' " , < > / ?`; not starting with an
 *   underscore, not ending in a period or hyphen. Resource names do use underscores and
 *   periods (a Flexible scale set names its VMs `<scale set>_<8 hex>`), so this accepts ASCII
 *   letters, digits, `_`, `.` and `-`, starting with a letter or digit.
 * - scale set instance (Uniform orchestration): the instance ID, a decimal number. Only its
 *   canonical spelling is accepted: `007` would name instance 7 to ARM but another key here.
 *
 * So a name can never be `.` or `..`, contain `%` (no URL-encoded `%2e%2e`), a slash, a
 * backslash, whitespace or a control character, and no segment may be empty: the ID that is
 * locked and deduplicated is exactly the one ARM is called with. The ID is rebuilt from its
 * parts, never passed through as given.
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

/** Longer than any VM or scale set VM ID can be (about 300 characters at Azure's name limits). */
export const MAX_RESOURCE_ID_LENGTH = 1024;

const SHAPE = 'must be an Azure resource ID like /subscriptions/{id}/resourceGroups/{rg}/providers/Microsoft.Compute/virtualMachines/{name}';
const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const RESOURCE_GROUP_CHARS = /^[\p{Lu}\p{Ll}\p{Lt}\p{Lm}\p{Lo}\p{Nd}_\-.()]+$/u;
const RESOURCE_GROUP_MAX = 90;
const COMPUTE_NAME = /^[A-Za-z0-9](?:[A-Za-z0-9_.-]{0,62}[A-Za-z0-9_])?$/;
const INSTANCE_ID = /^(?:0|[1-9][0-9]{0,9})$/;
/**
 * Microsoft.OperationalInsights/workspaces: alphanumerics and hyphens, starting and ending with
 * an alphanumeric. Azure also asks for at least 4 characters; shorter names are let through,
 * as the length protects nothing here (and the test fleet has a workspace named `law`).
 */
const WORKSPACE_NAME = /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/;
/** Other resources' namespaces, types and names: only what no Azure name may hold is refused here. */
const OTHER_SEGMENT = /^[^\s/\\#?%]{1,260}$/u;
/** Control (Cc), format (Cf), surrogate (Cs), private-use and unassigned characters, and whitespace. */
const INVISIBLE = /[\p{C}\s]/u;

const COMPUTE_RULE = '1–64 letters, digits, "_", "." or "-", starting with a letter or digit and not ending in "." or "-"';

/** A short, printable rendering of an untrusted value for messages: quoted, escaped, at most 80 characters. */
export function quoted(value: string, max = 80): string {
  return JSON.stringify(value.length > max ? `${value.slice(0, max)}…` : value);
}

interface ArmPath {
  readonly subscriptionId: string;
  /** Absent for a subscription-scope ID. */
  readonly resourceGroup: string | undefined;
  /** `Microsoft.Compute/virtualMachines`, `Microsoft.Resources/resourceGroups`, ... */
  readonly resourceType: string;
  readonly names: readonly string[];
}

/** The structure every accepted ID shares, and the checks no segment of any ID may fail. */
function parseArmPath(raw: string, field: string): Result<ArmPath, InputValidationError> {
  const invalid = (message: string) => fail(new InputValidationError(field, message));
  if (raw.length === 0) return invalid(SHAPE);
  if (raw.length > MAX_RESOURCE_ID_LENGTH) return invalid(`is ${raw.length} characters long; no virtual machine's resource ID is longer than ${MAX_RESOURCE_ID_LENGTH}`);
  const hidden = INVISIBLE.exec(raw);
  if (hidden) {
    const code = (hidden[0].codePointAt(0) ?? 0).toString(16).toUpperCase().padStart(4, '0');
    return invalid(`contains a control or whitespace character (U+${code} at position ${hidden.index})`);
  }
  if (!raw.startsWith('/')) return invalid(SHAPE);
  const parts = raw.split('/').slice(1);
  if (parts.some((p) => p === '')) return invalid('contains an empty segment ("//" or a trailing "/")');
  if (parts.some((p) => p === '.' || p === '..')) return invalid('contains a dot segment ("." or ".."); name the resource itself');
  if (raw.includes('%')) return invalid('contains "%": resource IDs are not URL-encoded');
  const forbidden = /[\\#?]/.exec(raw);
  if (forbidden) return invalid(`contains ${quoted(forbidden[0])}, which no Azure resource ID holds`);

  const [subs, subscriptionId = '', scope, ...afterScope] = parts;
  if (subs?.toLowerCase() !== 'subscriptions') return invalid('must start with /subscriptions/{id}/resourceGroups/{rg}/providers/');
  if (!GUID.test(subscriptionId)) return invalid(`subscription ${quoted(subscriptionId)} is not a GUID`);
  if (scope === undefined) return ok({ subscriptionId, resourceGroup: undefined, resourceType: 'Microsoft.Resources/subscriptions', names: [] });
  let resourceGroup: string | undefined;
  let provider: string[];
  if (scope.toLowerCase() === 'resourcegroups') {
    const [name, ...afterGroup] = afterScope;
    if (name === undefined) return invalid(SHAPE);
    if (name.length > RESOURCE_GROUP_MAX || !RESOURCE_GROUP_CHARS.test(name) || name.endsWith('.')) {
      return invalid(`resource group name ${quoted(name)} is not valid: 1–90 letters, digits, "_", "-", ".", "(" or ")", not ending in "."`);
    }
    resourceGroup = name;
    if (afterGroup.length === 0) return ok({ subscriptionId, resourceGroup, resourceType: 'Microsoft.Resources/resourceGroups', names: [] });
    provider = afterGroup;
  } else {
    // A subscription-scope resource (/subscriptions/{id}/providers/...): never a VM, but well formed.
    provider = [scope, ...afterScope];
  }
  const [providers, namespace, ...rest] = provider;
  if (providers?.toLowerCase() !== 'providers') return invalid('must start with /subscriptions/{id}/resourceGroups/{rg}/providers/');
  if (namespace === undefined || rest.length < 2) return invalid(SHAPE);
  const types = rest.filter((_, i) => i % 2 === 0);
  const names = rest.filter((_, i) => i % 2 === 1);
  const resourceType = `${namespace}/${types.join('/')}`;
  if (types.length !== names.length) return invalid(`${quoted(resourceType, 120)} has a type without a name`);
  return ok({ subscriptionId, resourceGroup, resourceType, names });
}

export function parseVmResourceId(raw: string, field = 'vmResourceId'): Result<VmRef, InputValidationError> {
  const path = parseArmPath(raw, field);
  if (!path.success) return path;
  const { subscriptionId, resourceGroup, resourceType, names } = path.data;
  const lowerType = resourceType.toLowerCase();
  const invalid = (message: string) => fail(new InputValidationError(field, message));
  if (resourceGroup !== undefined && lowerType === 'microsoft.compute/virtualmachines') {
    const name = names[0] ?? '';
    if (!COMPUTE_NAME.test(name)) return invalid(`virtual machine name ${quoted(name)} breaks Azure's naming rules: ${COMPUTE_RULE}`);
    const id = `/subscriptions/${subscriptionId}/resourceGroups/${resourceGroup}/providers/Microsoft.Compute/virtualMachines/${name}`;
    return ok({ kind: 'vm', subscriptionId, resourceGroup, name, id, key: caseKey(id) });
  }
  if (resourceGroup !== undefined && lowerType === 'microsoft.compute/virtualmachinescalesets/virtualmachines') {
    const scaleSetName = names[0] ?? '';
    const instanceId = names[1] ?? '';
    if (!COMPUTE_NAME.test(scaleSetName)) return invalid(`scale set name ${quoted(scaleSetName)} breaks Azure's naming rules: ${COMPUTE_RULE}`);
    if (!INSTANCE_ID.test(instanceId)) return invalid(`scale set instance ID ${quoted(instanceId)} is not valid: a decimal number without leading zeros`);
    const id = `/subscriptions/${subscriptionId}/resourceGroups/${resourceGroup}/providers/Microsoft.Compute/virtualMachineScaleSets/${scaleSetName}/virtualMachines/${instanceId}`;
    return ok({ kind: 'vmss-vm', subscriptionId, resourceGroup, scaleSetName, instanceId, id, key: caseKey(id) });
  }
  // Some other resource: refused as not a VM, once nothing in it could be a trick either.
  const segments = resourceType.split('/').concat(names);
  const odd = segments.find((s) => !OTHER_SEGMENT.test(s));
  if (odd !== undefined) return invalid(`segment ${quoted(odd)} is not a valid Azure name`);
  return fail(new NotAVirtualMachineError(raw, resourceType));
}

/**
 * A Log Analytics workspace's resource ID (the target of a workspace-scoped log alert), under
 * the same rules: its ID reaches the Logs API's URL path, so it gets the same scrutiny.
 * Returns the ID as given: having passed, it is exactly its segments joined by "/".
 */
export function parseWorkspaceResourceId(raw: string, field: string): Result<string, InputValidationError> {
  const path = parseArmPath(raw, field);
  if (!path.success) return path;
  const { resourceGroup, resourceType, names } = path.data;
  const name = names[0] ?? '';
  if (resourceGroup === undefined || resourceType.toLowerCase() !== 'microsoft.operationalinsights/workspaces') {
    return fail(new InputValidationError(field, 'is not a Log Analytics workspace'));
  }
  if (!WORKSPACE_NAME.test(name)) return fail(new InputValidationError(field, `workspace name ${quoted(name)} is not valid: up to 63 letters, digits or "-", starting and ending with a letter or digit`));
  return ok(raw);
}

/**
 * The lower-case key of an ID. ARM compares names case-insensitively by each character's
 * simple upper-case mapping, so two spellings it takes for one resource group (`ſ` and `s`)
 * must give one key here too: each character is upper-cased, then lower-cased, where either
 * step keeps it one character. For ASCII this is plain lower-casing.
 */
function caseKey(id: string): string {
  // eslint-disable-next-line no-control-regex
  if (/^[\x00-\x7f]*$/.test(id)) return id.toLowerCase();
  let key = '';
  for (const ch of id) {
    const upper = ch.toUpperCase();
    const u = [...upper].length === 1 ? upper : ch;
    const lower = u.toLowerCase();
    key += [...lower].length === 1 ? lower : u;
  }
  return key;
}

/** A short human label: `rg/vm` or `rg/vmss/instance`. */
export function vmLabel(ref: VmRef): string {
  return ref.kind === 'vm' ? `${ref.resourceGroup}/${ref.name}` : `${ref.resourceGroup}/${ref.scaleSetName}/${ref.instanceId}`;
}
