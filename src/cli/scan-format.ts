/** Renderings of a fleet scan: the table, the totals, the per-VM progress line, CSV and JSON. Pure. */
import { countsInOrder, type ScanTotals, type ScanVm } from '../core/scan.js';
import { textTable } from './format.js';

export interface ScanReport {
  readonly subscriptionId: string;
  readonly resourceGroups: readonly string[];
  readonly tags: readonly { readonly key: string; readonly value: string }[];
  readonly startedAt: string;
  readonly elapsedMs: number;
  readonly vms: readonly ScanVm[];
  readonly totals: ScanTotals;
  readonly exitCode: number;
}

const MAX_CELL = 56;

function verdictLabel(vm: ScanVm): string {
  switch (vm.verdict) {
    case 'healthy':
      return 'accepts RDP';
    case 'would-fail':
      return 'WOULD FAIL';
    case 'not-probed':
      return `not probed: ${vm.notProbed?.reason ?? '?'}`;
    case 'error':
      return `error: ${vm.error?.kind ?? '?'}`;
  }
}

const powerAgent = (vm: ScanVm) => `${vm.powerState ?? '?'}/${vm.agent ?? '-'}`;

/** Blocking findings, then advisory ones in parentheses; for a VM not probed or errored, why. */
function findingsCell(vm: ScanVm): string {
  if (vm.notProbed) return vm.notProbed.detail;
  if (vm.error) return vm.error.message;
  const blocking = vm.findings.filter((f) => f.severity === 'blocking').map((f) => f.code);
  const advisory = vm.findings.filter((f) => f.severity === 'advisory').map((f) => f.code);
  const parts = [...(blocking.length ? [blocking.join(', ')] : vm.verdict === 'would-fail' ? [`handshake ${vm.handshake ?? '?'}`] : ['none']), ...(advisory.length ? [`(${advisory.join(', ')})`] : [])];
  return parts.join(' ');
}

const planCell = (vm: ScanVm) => (vm.plan.length ? vm.plan.join(' → ') : '-');
const refusedCell = (vm: ScanVm) => (vm.refused.length ? vm.refused.map((r) => `${r.id} (${r.reason})`).join(', ') : '-');

export function scanTable(vms: readonly ScanVm[]): string {
  const header = ['VM', 'resource group', 'power/agent', 'RDP', 'findings (advisory)', 'a repair would run', 'refused (why)'];
  const rows = vms.map((vm) => [vm.name, vm.resourceGroup, powerAgent(vm), verdictLabel(vm), findingsCell(vm), planCell(vm), refusedCell(vm)]);
  return textTable(header, rows, MAX_CELL);
}

const listCounts = (counts: Readonly<Partial<Record<string, number>>>) =>
  countsInOrder(counts)
    .map(([key, n]) => `${key} ${n}`)
    .join(', ');

/** The totals under the table, and why refused actions were refused (the policy's or planner's words). */
export function scanSummary(report: Pick<ScanReport, 'vms' | 'totals' | 'elapsedMs'>): string {
  const t = report.totals;
  const lines = [
    `${t.vms} VM${t.vms === 1 ? '' : 's'}: ${t.probed} probed (${t.healthy} accept RDP, ${t.wouldFail} would fail), ${t.notProbed} not probed, ${t.errors} error${t.errors === 1 ? '' : 's'}; ${(report.elapsedMs / 1000).toFixed(1)} s`,
  ];
  if (t.wouldFail > 0) lines.push(`would fail RDP, by cause: ${listCounts(t.byCause) || 'failed handshake only'}`);
  if (t.notProbed > 0) lines.push(`not probed, by reason: ${listCounts(t.notProbedBy)}`);
  if (t.errors > 0) lines.push(`probe errors, by kind: ${listCounts(t.errorsBy)}`);
  const refusals = new Map<string, string>();
  for (const vm of report.vms) for (const r of vm.refused) refusals.set(`${r.id} (${r.reason})`, r.detail);
  for (const [what, why] of refusals) lines.push(`refused ${what}: ${why}`);
  if (t.vms === 0) lines.push('no VM matched the subscription, resource groups and tags given');
  return lines.join('\n');
}

/** One line per VM as it finishes, where no progress bar is drawn (not a TTY). */
export function scanProgressLine(vm: ScanVm, done: number, total: number): string {
  const digits = String(total).length;
  const time = vm.durationMs === null ? '' : ` (${(vm.durationMs / 1000).toFixed(1)} s)`;
  const detail = vm.verdict === 'would-fail' || vm.verdict === 'healthy' ? findingsCell(vm) : (vm.notProbed?.detail ?? vm.error?.message ?? '');
  return `[${String(done).padStart(digits)}/${total}] ${vm.resourceGroup}/${vm.name}: ${verdictLabel(vm)}${detail ? ` - ${detail}` : ''}${time}`;
}

export const CSV_COLUMNS = [
  'vm_resource_id',
  'name',
  'resource_group',
  'os',
  'power_state',
  'agent',
  'rdp',
  'not_probed_reason',
  'detail',
  'blocking_findings',
  'advisory_findings',
  'handshake',
  'plan',
  'refused',
  'unresolved',
  'run_commands',
  'duration_ms',
] as const;

/** RFC 4180: a field with a comma, a quote or a line break is quoted, its quotes doubled. */
export function csvField(value: string): string {
  return /[",\r\n]/.test(value) ? `"${value.replace(/"/g, '""')}"` : value;
}

/** One row per VM under a header, CRLF line ends (RFC 4180); lists inside a field are joined with "; ". */
export function scanCsv(vms: readonly ScanVm[]): string {
  const row = (vm: ScanVm): string[] => [
    vm.vmResourceId,
    vm.name,
    vm.resourceGroup,
    vm.osType,
    vm.powerState ?? '',
    vm.agent ?? '',
    vm.verdict,
    vm.notProbed?.reason ?? (vm.error ? `error:${vm.error.kind}` : ''),
    vm.notProbed?.detail ?? vm.error?.message ?? '',
    vm.findings
      .filter((f) => f.severity === 'blocking')
      .map((f) => f.code)
      .join('; '),
    vm.findings
      .filter((f) => f.severity === 'advisory')
      .map((f) => f.code)
      .join('; '),
    vm.handshake ?? '',
    vm.plan.join('; '),
    vm.refused.map((r) => `${r.id} (${r.reason}): ${r.detail}`).join('; '),
    vm.unresolved.join('; '),
    String(vm.runCommands),
    vm.durationMs === null ? '' : String(vm.durationMs),
  ];
  return [CSV_COLUMNS as readonly string[], ...vms.map(row)].map((cells) => cells.map(csvField).join(',')).join('\r\n') + '\r\n';
}

/** The one JSON document of `scan --json`. */
export function scanJson(report: ScanReport): string {
  return JSON.stringify(report);
}
