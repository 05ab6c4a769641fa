/**
 * The fleet scan's decisions, as pure functions: which listed VMs a scan covers (resource
 * groups, tags), what each VM's read-only diagnosis says about RDP, the totals by cause, and
 * the scan's exit code. The I/O (listing, probing) is the CLI's (src/cli/scan.ts).
 */
import type { ActionId } from '../contract/actions.js';
import { blockingFindings, handshakeVerdict, type FindingCode, type HandshakeVerdict, type Severity } from './diagnose.js';
import type { RemediationRecord } from './outcome.js';
import type { RefusalReason } from './planner.js';
import { tagValue } from './policy.js';
import { vmLabel } from './resource-id.js';
import type { Eligibility, OsType, SkipReason, VmView } from './vm.js';

/** `--tag key=value`: the VM's tag `key` (any case, as Azure compares keys) must have exactly this value. */
export interface TagFilter {
  readonly key: string;
  readonly value: string;
}

/** What the scan says about one VM's RDP. */
export type ScanVerdict = 'healthy' | 'would-fail' | 'not-probed' | 'error';

export interface ScanVm {
  readonly vmResourceId: string;
  /** `name`, or `scale set/instance` for a scale set VM. */
  readonly name: string;
  readonly resourceGroup: string;
  readonly osType: OsType;
  readonly powerState: string | null;
  /** The VM agent's status as ARM shows it (`Ready`, `Not Ready`), null when it reports none. */
  readonly agent: string | null;
  readonly verdict: ScanVerdict;
  /** Why the VM was not probed: not eligible as listed, or skipped by the pipeline (policy off, busy). */
  readonly notProbed?: { readonly reason: SkipReason; readonly detail: string };
  readonly findings: readonly { readonly code: FindingCode; readonly severity: Severity; readonly detail: string }[];
  /** The probe's loopback RDP handshake; null when there was no probe. */
  readonly handshake: HandshakeVerdict['kind'] | null;
  /** What a repair would run, in order. */
  readonly plan: readonly ActionId[];
  /** What a repair would not run, and the policy's or planner's reason. */
  readonly refused: readonly { readonly id: ActionId; readonly reason: RefusalReason; readonly detail: string }[];
  /** Blocking findings that no action addresses. */
  readonly unresolved: readonly FindingCode[];
  readonly error?: { readonly kind: string; readonly message: string };
  readonly runCommands: number;
  readonly durationMs: number | null;
}

export interface ScanTotals {
  readonly vms: number;
  readonly probed: number;
  readonly healthy: number;
  readonly wouldFail: number;
  readonly notProbed: number;
  readonly errors: number;
  /** VMs per blocking finding (one VM can count under several causes). */
  readonly byCause: Readonly<Partial<Record<FindingCode, number>>>;
  /** VMs not probed, per reason. */
  readonly notProbedBy: Readonly<Partial<Record<SkipReason, number>>>;
  /** VMs whose probe errored, per error kind. */
  readonly errorsBy: Readonly<Record<string, number>>;
}

/**
 * Exit codes of `rdp-remediator scan`. Would-fail wins over errors: a VM known to fail RDP is
 * the news, and a scan with errors only cannot say every VM would accept RDP.
 */
export const SCAN_EXIT = { allAcceptRdp: 0, probeErrors: 1, wouldFail: 2 } as const;

export const MAX_SCAN_CONCURRENCY = 64;
export const DEFAULT_SCAN_CONCURRENCY = 8;

/** Tag keys are case-insensitive in Azure (one key per VM, whatever its case), values are not. */
export function matchesTags(tags: Readonly<Record<string, string>>, filters: readonly TagFilter[]): boolean {
  return filters.every((filter) => tagValue(tags, filter.key) === filter.value);
}

/** Whether a VM is in one of the resource groups (any case); every group when none is given. */
export function inResourceGroups(view: VmView, groups: readonly string[]): boolean {
  return groups.length === 0 || groups.some((group) => group.toLowerCase() === view.ref.resourceGroup.toLowerCase());
}

function vmPart(view: VmView): Pick<ScanVm, 'vmResourceId' | 'name' | 'resourceGroup' | 'osType' | 'powerState' | 'agent'> {
  const ref = view.ref;
  return {
    vmResourceId: ref.id,
    name: ref.kind === 'vm' ? ref.name : vmLabel(ref).slice(ref.resourceGroup.length + 1),
    resourceGroup: ref.resourceGroup,
    osType: view.osType,
    powerState: view.powerState,
    agent: view.agent.status,
  };
}

const NOTHING = { findings: [], handshake: null, plan: [], refused: [], unresolved: [], runCommands: 0 } as const;

/** A VM the scan did not probe because checkEligibility said no. */
export function notProbedVm(view: VmView, eligibility: Extract<Eligibility, { eligible: false }>): ScanVm {
  return { ...vmPart(view), verdict: 'not-probed', notProbed: { reason: eligibility.reason, detail: eligibility.detail }, ...NOTHING, durationMs: null };
}

/** A VM whose diagnosis threw instead of ending in a record. */
export function erroredVm(view: VmView, error: { readonly kind: string; readonly message: string }, durationMs: number | null): ScanVm {
  return { ...vmPart(view), verdict: 'error', error, ...NOTHING, durationMs };
}

/**
 * A VM's diagnose record as a scan row. Healthy means no blocking finding and a handshake that
 * did not fail; a diagnose job that ends in anything but healthy, not-fixed, skipped or failed
 * changed something, which a scan must never do, so it is shown as an error.
 */
export function scannedVm(view: VmView, record: RemediationRecord): ScanVm {
  if (record.state !== 'completed') return erroredVm(view, { kind: 'internal', message: `the diagnosis ended ${record.state}` }, null);
  const o = record.outcome;
  const base = vmPart(view);
  const cost = { runCommands: o.runCommands, durationMs: o.timings.totalMs };
  switch (o.status) {
    case 'skipped':
      return { ...base, verdict: 'not-probed', notProbed: { reason: o.reason, detail: o.detail }, ...NOTHING, ...cost };
    case 'failed':
      return {
        ...base,
        verdict: 'error',
        error: { kind: o.error.kind, message: o.error.message },
        ...NOTHING,
        findings: (o.findings ?? []).map(({ code, severity, detail }) => ({ code, severity, detail })),
        ...cost,
      };
    case 'healthy':
    case 'not-fixed': {
      const handshake = handshakeVerdict(o.before, new Date(record.completedAt)).kind;
      const wouldFail = blockingFindings(o.findings).length > 0 || handshake === 'failed';
      return {
        ...base,
        verdict: wouldFail ? 'would-fail' : 'healthy',
        findings: o.findings.map(({ code, severity, detail }) => ({ code, severity, detail })),
        handshake,
        plan: o.plan.actions.map((a) => a.id),
        refused: o.plan.refused.map(({ id, reason, detail }) => ({ id, reason, detail })),
        unresolved: o.plan.unresolved,
        ...cost,
      };
    }
    default:
      return { ...base, verdict: 'error', error: { kind: 'internal', message: `a diagnosis ended ${o.status}: it must change nothing` }, ...NOTHING, ...cost };
  }
}

function bump<K extends string>(counts: Partial<Record<K, number>>, key: K): void {
  counts[key] = (counts[key] ?? 0) + 1;
}

export function scanTotals(vms: readonly ScanVm[]): ScanTotals {
  const byCause: Partial<Record<FindingCode, number>> = {};
  const notProbedBy: Partial<Record<SkipReason, number>> = {};
  const errorsBy: Record<string, number> = {};
  for (const vm of vms) {
    if (vm.verdict === 'would-fail') for (const f of vm.findings) if (f.severity === 'blocking') bump(byCause, f.code);
    if (vm.notProbed) bump(notProbedBy, vm.notProbed.reason);
    if (vm.error) bump(errorsBy, vm.error.kind);
  }
  const count = (verdict: ScanVerdict) => vms.filter((vm) => vm.verdict === verdict).length;
  return {
    vms: vms.length,
    probed: vms.filter((vm) => vm.verdict === 'healthy' || vm.verdict === 'would-fail').length,
    healthy: count('healthy'),
    wouldFail: count('would-fail'),
    notProbed: count('not-probed'),
    errors: count('error'),
    byCause,
    notProbedBy,
    errorsBy,
  };
}

/** 2 when any VM would fail RDP; else 1 when any probe errored; else 0 (VMs not probed do not count). */
export function scanExitCode(totals: ScanTotals): number {
  if (totals.wouldFail > 0) return SCAN_EXIT.wouldFail;
  if (totals.errors > 0) return SCAN_EXIT.probeErrors;
  return SCAN_EXIT.allAcceptRdp;
}

/** Most frequent first, then by name: the order totals are printed in. */
export function countsInOrder<K extends string>(counts: Readonly<Partial<Record<K, number>>>): [K, number][] {
  return (Object.entries(counts) as [K, number][]).sort(([a, x], [b, y]) => y - x || a.localeCompare(b));
}
