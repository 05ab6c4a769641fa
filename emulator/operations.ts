/**
 * Which Azure RBAC operation each request the emulator served needs: the provider operation
 * names ARM checks (Microsoft.Compute/virtualMachines/read …). Lets a test derive the app's
 * least-privilege role from what it actually sent, rather than from a hand-kept list.
 */
const GUIDISH = '[^/]+';
const ARM_OPERATIONS: readonly { readonly method: string; readonly pattern: RegExp; readonly operation: string }[] = [
  { method: 'GET', pattern: new RegExp(`^/subscriptions/${GUIDISH}/resourcegroups/${GUIDISH}/providers/microsoft\\.compute/virtualmachines/${GUIDISH}$`), operation: 'Microsoft.Compute/virtualMachines/read' },
  // Listing a subscription's or a group's VMs is the same read permission as getting one.
  { method: 'GET', pattern: new RegExp(`^/subscriptions/${GUIDISH}(?:/resourcegroups/${GUIDISH})?/providers/microsoft\\.compute/virtualmachines$`), operation: 'Microsoft.Compute/virtualMachines/read' },
  {
    method: 'POST',
    pattern: new RegExp(`^/subscriptions/${GUIDISH}/resourcegroups/${GUIDISH}/providers/microsoft\\.compute/virtualmachines/${GUIDISH}/runcommand$`),
    operation: 'Microsoft.Compute/virtualMachines/runCommand/action',
  },
  {
    method: 'GET',
    pattern: new RegExp(`^/subscriptions/${GUIDISH}/resourcegroups/${GUIDISH}/providers/microsoft\\.compute/virtualmachinescalesets/${GUIDISH}/virtualmachines/${GUIDISH}$`),
    operation: 'Microsoft.Compute/virtualMachineScaleSets/virtualMachines/read',
  },
  {
    method: 'POST',
    pattern: new RegExp(`^/subscriptions/${GUIDISH}/resourcegroups/${GUIDISH}/providers/microsoft\\.compute/virtualmachinescalesets/${GUIDISH}/virtualmachines/${GUIDISH}/runcommand$`),
    operation: 'Microsoft.Compute/virtualMachineScaleSets/virtualMachines/runCommand/action',
  },
  { method: 'GET', pattern: new RegExp(`^/subscriptions/${GUIDISH}/providers/microsoft\\.compute/locations/${GUIDISH}/operations/${GUIDISH}$`), operation: 'Microsoft.Compute/locations/operations/read' },
];

/** The operation an ARM request needs, or null for a path the emulator does not map. */
export function armOperation(method: string, path: string): string | null {
  const lower = decodeURIComponent(path.split('?')[0] ?? '').toLowerCase().replace(/\/+$/, '');
  return ARM_OPERATIONS.find((o) => o.method === method.toUpperCase() && o.pattern.test(lower))?.operation ?? null;
}

/**
 * A Logs API query needs workspace query rights, plus read on each table it touches (table-level
 * RBAC). The shipped event query reads the Event table only.
 */
export function logsQueryOperations(tables: readonly string[]): string[] {
  return ['Microsoft.OperationalInsights/workspaces/query/read', ...tables.map((t) => `Microsoft.OperationalInsights/workspaces/query/${t}/read`)];
}
