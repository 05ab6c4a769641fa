/**
 * `rdp-remediator scan`: a read-only sweep of a subscription's VMs. Lists them (one listing per
 * resource group, or the subscription's), keeps those the filters match, and diagnoses each
 * eligible one with a diagnose job through the real pipeline, at most `concurrency` at once.
 *
 * Never changes anything: a diagnose job runs only the probe payload. Writes no records: the
 * jobs get a store and a lock of their own, in memory, never the app's storage, so a scan
 * leaves no audit entries, and its lock only keeps its own probes of one VM apart (a worker's
 * Run Command on the same VM meets the scan's with a 409, which the pipeline waits out).
 */
import { randomUUID } from 'node:crypto';
import type { ComputeGateway, VmListScope } from '../adapters/compute.js';
import { InMemoryRemediationStore } from '../adapters/remediation-store.js';
import { InMemoryVmLock } from '../adapters/vm-lock.js';
import { parseRemediationRequest } from '../core/job.js';
import { erroredVm, inResourceGroups, matchesTags, notProbedVm, scanExitCode, scannedVm, scanTotals, type ScanVm, type TagFilter } from '../core/scan.js';
import { checkEligibility, type VmView } from '../core/vm.js';
import { ComputeError, errorMessage, RemediatorError } from '../errors.js';
import { runRemediation, type RemediationDeps } from '../pipeline/remediate.js';
import type { ScanReport } from './scan-format.js';

export interface ScanRequest {
  readonly subscriptionId: string;
  readonly resourceGroups: readonly string[];
  readonly tags: readonly TagFilter[];
  readonly concurrency: number;
}

export interface ScanDeps {
  readonly compute: ComputeGateway;
  /** The pipeline's dependencies but for its store and lock, which the scan brings (in memory). */
  readonly remediation: Omit<RemediationDeps, 'store' | 'lock' | 'compute' | 'onProgress'>;
  readonly now?: () => Date;
  /** Each VM as it is finished, with how many are; `total` is known once the listing is. */
  readonly onVm?: (vm: ScanVm, done: number, total: number) => void;
  readonly onListed?: (total: number) => void;
}

/** Listing the VMs failed: the scan has nothing to say (exit 1). */
export class ScanListingError extends RemediatorError {}

/** The VMs of the scopes the request names, each once, in the filters. */
async function listVms(request: ScanRequest, compute: ComputeGateway): Promise<VmView[]> {
  if (!compute.listVmViews) throw new ScanListingError('this compute gateway cannot list VMs');
  const scopes: VmListScope[] = request.resourceGroups.length ? request.resourceGroups.map((resourceGroup) => ({ subscriptionId: request.subscriptionId, resourceGroup })) : [{ subscriptionId: request.subscriptionId }];
  const seen = new Map<string, VmView>();
  for (const scope of scopes) {
    let views: readonly VmView[];
    try {
      views = await compute.listVmViews(scope);
    } catch (error) {
      const where = scope.resourceGroup === undefined ? `subscription ${scope.subscriptionId}` : `resource group ${scope.resourceGroup} of subscription ${scope.subscriptionId}`;
      throw new ScanListingError(`could not list the VMs of ${where}: ${errorMessage(error)}`, { ...scope, ...(error instanceof ComputeError ? { kind: error.kind } : {}) }, { cause: error });
    }
    for (const view of views) if (!seen.has(view.ref.key)) seen.set(view.ref.key, view);
  }
  const byName = (a: VmView, b: VmView) => a.ref.resourceGroup.localeCompare(b.ref.resourceGroup, 'en', { sensitivity: 'base' }) || a.ref.key.localeCompare(b.ref.key);
  return [...seen.values()].filter((view) => inResourceGroups(view, request.resourceGroups) && matchesTags(view.tags, request.tags)).sort(byName);
}

export async function runScan(request: ScanRequest, deps: ScanDeps): Promise<ScanReport> {
  const now = deps.now ?? (() => new Date());
  const started = now();
  const views = await listVms(request, deps.compute);
  deps.onListed?.(views.length);
  const results: (ScanVm | undefined)[] = views.map(() => undefined);
  let done = 0;
  const finished = (index: number, vm: ScanVm) => {
    results[index] = vm;
    deps.onVm?.(vm, ++done, views.length);
  };

  const eligible: number[] = [];
  views.forEach((view, index) => {
    const eligibility = checkEligibility(view);
    if (eligibility.eligible) eligible.push(index);
    else finished(index, notProbedVm(view, eligibility));
  });

  const pipeline: RemediationDeps = { ...deps.remediation, compute: deps.compute, store: new InMemoryRemediationStore(), lock: new InMemoryVmLock() };
  const diagnoseOne = async (view: VmView): Promise<ScanVm> => {
    const at = now();
    const job = parseRemediationRequest({ vmResourceId: view.ref.id, mode: 'diagnose', allow: [] }, { id: randomUUID(), source: 'cli', now: at });
    if (!job.success || job.data.mode !== 'diagnose') return erroredVm(view, { kind: 'internal', message: job.success ? 'not a diagnose job' : job.error.message }, null);
    try {
      return scannedVm(view, await runRemediation(job.data, pipeline));
    } catch (error) {
      return erroredVm(view, { kind: error instanceof ComputeError ? error.kind : error instanceof Error ? error.name : 'internal', message: errorMessage(error) }, now().getTime() - at.getTime());
    }
  };
  // A fixed pool of workers over the eligible VMs: at most `concurrency` probes at once.
  let next = 0;
  const worker = async (): Promise<void> => {
    for (let i = next++; i < eligible.length; i = next++) {
      const index = eligible[i] ?? 0;
      const view = views[index];
      if (view) finished(index, await diagnoseOne(view));
    }
  };
  await Promise.all(Array.from({ length: Math.min(request.concurrency, eligible.length) }, worker));

  const vms = results.filter((vm): vm is ScanVm => vm !== undefined);
  const totals = scanTotals(vms);
  return {
    subscriptionId: request.subscriptionId,
    resourceGroups: request.resourceGroups,
    tags: request.tags,
    startedAt: started.toISOString(),
    elapsedMs: now().getTime() - started.getTime(),
    vms,
    totals,
    exitCode: scanExitCode(totals),
  };
}
