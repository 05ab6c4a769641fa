/**
 * Finding out what became of a Run Command whose POST got no usable answer (pure functions,
 * used by the compute adapter). The action Run Command runs through the VM's Run Command
 * extension (`Microsoft.CPlat.Core.RunCommandWindows`), and the VM's instance view carries that
 * extension's last status with the last run's StdOut/StdErr substatuses (the same entries the
 * operation's result holds). Our payloads name their run: the RunId parameter is echoed in the
 * result line (`{"kind":"probe"|"fix","runId":…}`), so a finished run in the instance view is
 * ours when its result line carries our RunId and payload kind. See emulator/README.md for what
 * of ARM's answer is verified and what is not.
 */
import type { InstanceViewStatus, VirtualMachineExtensionInstanceView } from '@azure/arm-compute';
import { PAYLOAD_MARKER } from '../contract/parameters.js';
import { jsonLinesLastFirst } from '../payloads/result-line.js';

/** What tells one of our runs from any other: the RunId parameter and the payload kind (marker line). */
export interface RunIdentity {
  readonly runId: string;
  /** `probe` or `fix` from the `# rdp-remediator-payload:<kind>` marker; null for another script. */
  readonly kind: string | null;
}

export interface RunOutput {
  readonly stdout: string;
  readonly stderr: string;
}

/** The identity of a payload about to be sent, or null when it carries no RunId (it cannot be found again). */
export function runIdentity(payload: { readonly script: readonly string[]; readonly parameters: readonly { readonly name: string; readonly value: string }[] }): RunIdentity | null {
  const runId = payload.parameters.find((p) => p.name.toLowerCase() === 'runid')?.value;
  if (runId === undefined || runId === '') return null;
  const first = (payload.script.join('\n').split('\n')[0] ?? '').replace(/^\uFEFF/, '').trim();
  const kind = first.startsWith(PAYLOAD_MARKER) ? first.slice(PAYLOAD_MARKER.length).trim() || null : null;
  return { runId: runId.toLowerCase(), kind };
}

export function sameRun(a: RunIdentity | null, b: RunIdentity | null): boolean {
  return a !== null && b !== null && a.runId === b.runId && a.kind === b.kind;
}

/** The run a stdout belongs to: the last JSON line that names a `runId` (and a `kind`), as the result line does. */
export function resultIdentity(stdout: string): RunIdentity | null {
  for (const { json } of jsonLinesLastFirst(stdout)) {
    if (typeof json !== 'object' || json === null) continue;
    const { runId, kind } = json as { runId?: unknown; kind?: unknown };
    if (typeof runId !== 'string') continue;
    return { runId: runId.toLowerCase(), kind: typeof kind === 'string' ? kind : null };
  }
  return null;
}

/** StdOut and StdErr substatuses (`ComponentStatus/StdOut/succeeded`, …), of a RunCommandResult or of the extension's instance view. */
export function streamsOf(statuses: readonly InstanceViewStatus[] | undefined): RunOutput {
  const find = (stream: string) => (statuses ?? []).find((s) => s.code?.toLowerCase().includes(`/${stream}/`))?.message ?? '';
  return { stdout: find('stdout'), stderr: find('stderr') };
}

/** What the instance view says about the Run Command extension. */
export type ExtensionObservation =
  | { readonly state: 'absent' }
  | { readonly state: 'running'; readonly time: number | null }
  | { readonly state: 'finished'; readonly succeeded: boolean; readonly time: number | null; readonly output: RunOutput; readonly result: RunIdentity | null };

const EXTENSION_TYPE = /(^|\.)runcommand(windows|linux)$/i;

/** The Run Command extension, by its type (`Microsoft.CPlat.Core.RunCommandWindows`); by its name only when no type is given. */
export function isRunCommandExtension(extension: Pick<VirtualMachineExtensionInstanceView, 'type' | 'name'>): boolean {
  return extension.type ? EXTENSION_TYPE.test(extension.type) : EXTENSION_TYPE.test(extension.name ?? '');
}

function timeOf(status: InstanceViewStatus | undefined): number | null {
  const time = status?.time;
  if (time === undefined) return null;
  const ms = time instanceof Date ? time.getTime() : Date.parse(String(time));
  return Number.isFinite(ms) ? ms : null;
}

/**
 * Reads the Run Command extension's last status from a VM's instance view: `ProvisioningState/
 * transitioning` while a run is going, `succeeded` or `failed` (with the run's StdOut/StdErr
 * substatuses) once it has ended. No such extension (never run, or not shown): absent.
 */
export function observeRunCommandExtension(view: { readonly extensions?: readonly VirtualMachineExtensionInstanceView[] } | undefined): ExtensionObservation {
  const extension = (view?.extensions ?? []).find(isRunCommandExtension);
  if (!extension) return { state: 'absent' };
  const status = (extension.statuses ?? []).find((s) => s.code?.toLowerCase().startsWith('provisioningstate/'));
  const state = status?.code?.split('/')[1]?.toLowerCase();
  if (state === undefined) return { state: 'absent' };
  if (state === 'succeeded' || state === 'failed') {
    const output = streamsOf(extension.substatuses);
    return { state: 'finished', succeeded: state === 'succeeded', time: timeOf(status), output, result: resultIdentity(output.stdout) };
  }
  // transitioning, creating, updating, or a state we do not know: a run is (still) going.
  return { state: 'running', time: timeOf(status) };
}

export interface JudgeOptions {
  /** How long after our POST a run may take to show in the instance view. */
  readonly settleMs: number;
  /** Allowed difference between this host's clock and ARM's status times. */
  readonly clockSkewMs: number;
}

export type Verdict =
  | { readonly kind: 'ours'; readonly output: RunOutput }
  /** A run is going (ours, or one that is blocking ours), or ours may not show yet. */
  | { readonly kind: 'wait'; readonly why: 'running' | 'not-yet-visible' }
  /** What the instance view shows is not our run, and ours had time to show. */
  | { readonly kind: 'not-ours'; readonly why: string };

/**
 * Whether the instance view shows our run (expected, POSTed at postedAt) finished, still going,
 * or not at all. A finished run is ours only if its result line names our RunId and payload
 * kind and it did not end before we posted (with clock skew allowed).
 */
export function judgeObservation(observation: ExtensionObservation, expected: RunIdentity, postedAt: number, now: number, options: JudgeOptions): Verdict {
  if (observation.state === 'running') return { kind: 'wait', why: 'running' };
  if (observation.state === 'finished') {
    const endedBeforePost = observation.time !== null && observation.time < postedAt - options.clockSkewMs;
    if (sameRun(observation.result, expected) && !endedBeforePost) return { kind: 'ours', output: observation.output };
  }
  if (now - postedAt < options.settleMs) return { kind: 'wait', why: 'not-yet-visible' };
  const why =
    observation.state === 'absent'
      ? 'the instance view shows no Run Command extension status'
      : observation.result === null
        ? 'the last run in the instance view has no result line'
        : sameRun(observation.result, expected)
          ? 'the last run of this payload in the instance view ended before the POST'
          : `the last run in the instance view is ${observation.result.kind ?? 'a script'} ${observation.result.runId}`;
  return { kind: 'not-ours', why };
}
