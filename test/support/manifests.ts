/**
 * What the VM itself says a remediation did: the fix payload's manifests under its RunId
 * (`manifest.json`, then `manifest-2.json`, ... for reruns), read from the emulator's Windows
 * state, and how a record differs from them. Used by the crash and fault tests, whose claim is
 * that no record says other than the VM.
 */
import type { Emulator } from '../../emulator/index.js';
import type { ActionResult } from '../../src/contract/results.js';
import { securityChangesOf, type RemediationRecord } from '../../src/core/outcome.js';

/** The manifests the VM keeps for a RunId, by sequence, as the fix wrote them. */
export function manifestsOn(emulator: Pick<Emulator, 'vm'>, vmId: string, runId: string): { sequence: number; actions: ActionResult[] }[] {
  const files = emulator.vm(vmId).windows?.files ?? {};
  const dir = `\\rdpremediation\\${runId}\\`;
  const runs: { sequence: number; actions: ActionResult[] }[] = [];
  for (const [path, entry] of Object.entries(files)) {
    const at = path.toLowerCase().indexOf(dir);
    if (at < 0) continue;
    const name = /^manifest(?:-(\d+))?\.json$/.exec(path.toLowerCase().slice(at + dir.length));
    if (!name) continue;
    const manifest = JSON.parse(entry.content ?? '{}') as { actions: (ActionResult & { restore?: ActionResult['restore'] | null })[] };
    runs.push({ sequence: name[1] ? Number(name[1]) : 1, actions: manifest.actions.map(({ restore, ...a }) => ({ ...a, ...(restore ? { restore } : {}) })) });
  }
  return runs.sort((a, b) => a.sequence - b.sequence);
}

/** What must agree between a record and the VM: every action's decision values, backup and before / after. */
const comparable = (actions: readonly ActionResult[]) =>
  actions.map((a) => ({ id: a.id, changed: a.changed, verified: a.verified, backup: a.backup, error: a.error?.code ?? null, restore: a.restore ?? null, before: a.before, after: a.after }));

/** How a record differs from the VM's manifests for its RunId; null when it does not. */
export function mismatchWithVm(emulator: Pick<Emulator, 'vm'>, record: RemediationRecord): string | null {
  const onVm = manifestsOn(emulator, record.vmResourceId, record.id).flatMap((r) => r.actions);
  const outcome = record.state === 'completed' ? record.outcome : undefined;
  const recorded = outcome && 'actions' in outcome && outcome.actions ? outcome.actions : [];
  const recordedChanges = outcome && 'securityChanges' in outcome ? outcome.securityChanges : [];
  const a = JSON.stringify(comparable(recorded));
  const b = JSON.stringify(comparable(onVm));
  if (a !== b) return `actions: recorded ${a}, VM ${b}`;
  // The expiry is the remediator's, not the VM's: the manifests hold the change, not when it is reverted.
  const c = JSON.stringify(recordedChanges.map(({ expiresAt: _expiresAt, ...change }) => change));
  const d = JSON.stringify(securityChangesOf(onVm));
  return c === d ? null : `securityChanges: recorded ${c}, VM ${d}`;
}
