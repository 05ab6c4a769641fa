/** Telling our Run Command from any other in a VM's instance view (src/adapters/run-command-outcome.ts). */
import type { VirtualMachineExtensionInstanceView } from '@azure/arm-compute';
import { describe, expect, it } from 'vitest';
import { judgeObservation, observeRunCommandExtension, resultIdentity, runIdentity, sameRun, type ExtensionObservation } from '../../src/adapters/run-command-outcome.js';
import { composePayload } from '../../src/payloads/compose.js';

const RUN = '0b4a2f8e-6c1d-4e55-9a70-3f2b1c0d9e8a';
const OTHER = '9d8c7b6a-5f4e-4d3c-8b2a-1a0f9e8d7c6b';
const line = (kind: string, runId: string) => JSON.stringify({ kind, v: 1, ok: true, runId });

function extension(status: string, stdout?: string, time?: Date, type = 'Microsoft.CPlat.Core.RunCommandWindows'): VirtualMachineExtensionInstanceView {
  return {
    name: type.split('.').pop() ?? type,
    type,
    typeHandlerVersion: '1.1.22',
    statuses: [{ code: `ProvisioningState/${status}`, level: 'Info', displayStatus: status, ...(time ? { time } : {}) }],
    ...(stdout === undefined
      ? {}
      : {
          substatuses: [
            { code: 'ComponentStatus/StdOut/succeeded', level: 'Info', displayStatus: 'Provisioning succeeded', message: stdout },
            { code: 'ComponentStatus/StdErr/succeeded', level: 'Info', displayStatus: 'Provisioning succeeded', message: 'warning' },
          ],
        }),
  };
}

describe('runIdentity', () => {
  it('takes the RunId parameter and the payload kind from the marker line', () => {
    expect(runIdentity(composePayload({ kind: 'probe', parameters: { RunId: RUN } }))).toEqual({ runId: RUN, kind: 'probe' });
    expect(runIdentity(composePayload({ kind: 'fix', parameters: { RunId: RUN, Actions: 'restart-rdp-services', DryRun: 'false' } }))).toEqual({ runId: RUN, kind: 'fix' });
  });

  it('is null without a RunId, and has no kind for another script', () => {
    expect(runIdentity({ script: ['Get-Date'], parameters: [] })).toBeNull();
    expect(runIdentity({ script: ['Get-Date'], parameters: [{ name: 'RunId', value: RUN.toUpperCase() }] })).toEqual({ runId: RUN, kind: null });
  });

  it('the probe and the fix of one remediation share the RunId but are different runs', () => {
    expect(sameRun({ runId: RUN, kind: 'probe' }, { runId: RUN, kind: 'fix' })).toBe(false);
    expect(sameRun({ runId: RUN, kind: 'fix' }, { runId: RUN, kind: 'fix' })).toBe(true);
    expect(sameRun(null, { runId: RUN, kind: 'fix' })).toBe(false);
  });
});

describe('resultIdentity', () => {
  it('reads the last JSON line naming a runId, past noise and a cut-off first line', () => {
    expect(resultIdentity(`ction":"x"}\nWARNING: something\n${line('probe', OTHER)}\n${line('fix', RUN)}\n`)).toEqual({ runId: RUN, kind: 'fix' });
    expect(resultIdentity(`${line('fix', RUN)}\n{"not":"a result"}\n{broken`)).toEqual({ runId: RUN, kind: 'fix' });
  });

  it('is null when no line names a run', () => {
    expect(resultIdentity('')).toBeNull();
    expect(resultIdentity('hello\n{"a":1}')).toBeNull();
  });
});

describe('observeRunCommandExtension', () => {
  it('is absent without the Run Command extension (never run, or not shown)', () => {
    expect(observeRunCommandExtension(undefined)).toEqual({ state: 'absent' });
    expect(observeRunCommandExtension({ extensions: [] })).toEqual({ state: 'absent' });
    expect(observeRunCommandExtension({ extensions: [extension('succeeded', 'x', undefined, 'Microsoft.Compute.CustomScriptExtension')] })).toEqual({ state: 'absent' });
    expect(observeRunCommandExtension({ extensions: [{ type: 'Microsoft.CPlat.Core.RunCommandWindows' }] })).toEqual({ state: 'absent' });
  });

  it('is running while the extension is transitioning (or in a state it does not know)', () => {
    const at = new Date('2026-03-01T10:00:00Z');
    expect(observeRunCommandExtension({ extensions: [extension('transitioning', undefined, at)] })).toEqual({ state: 'running', time: at.getTime() });
    expect(observeRunCommandExtension({ extensions: [extension('creating')] })).toEqual({ state: 'running', time: null });
  });

  it('is finished with the run\'s streams and result line once succeeded or failed; Linux and case variants count', () => {
    const at = new Date('2026-03-01T10:00:05Z');
    const seen = observeRunCommandExtension({ extensions: [extension('running-other', 'x', undefined, 'Microsoft.Azure.Monitor.AzureMonitorWindowsAgent'), extension('succeeded', `noise\n${line('fix', RUN)}`, at)] });
    expect(seen).toEqual({ state: 'finished', succeeded: true, time: at.getTime(), output: { stdout: `noise\n${line('fix', RUN)}`, stderr: 'warning' }, result: { runId: RUN, kind: 'fix' } });
    expect(observeRunCommandExtension({ extensions: [extension('failed')] })).toMatchObject({ state: 'finished', succeeded: false, result: null, output: { stdout: '', stderr: '' } });
    expect(observeRunCommandExtension({ extensions: [extension('Succeeded', line('probe', RUN), undefined, 'microsoft.cplat.core.runcommandlinux')] })).toMatchObject({ state: 'finished', result: { kind: 'probe' } });
  });

  it('reads ARM time strings as well as the SDK\'s Dates', () => {
    const raw = { ...extension('succeeded', line('fix', RUN)), statuses: [{ code: 'ProvisioningState/succeeded', time: '2026-03-01T10:00:05.0000000+00:00' as unknown as Date }] };
    expect(observeRunCommandExtension({ extensions: [raw] })).toMatchObject({ time: Date.parse('2026-03-01T10:00:05Z') });
  });
});

describe('judgeObservation', () => {
  const expected = { runId: RUN, kind: 'fix' };
  const posted = Date.parse('2026-03-01T10:00:00Z');
  const options = { settleMs: 60_000, clockSkewMs: 30_000 };
  const finished = (result: { runId: string; kind: string } | null, endedAt: number | null): ExtensionObservation => ({
    state: 'finished',
    succeeded: true,
    time: endedAt,
    output: { stdout: result ? line(result.kind, result.runId) : 'no result', stderr: '' },
    result,
  });

  it('our run finished after the POST: ours, with its output', () => {
    expect(judgeObservation(finished(expected, posted + 20_000), expected, posted, posted + 25_000, options)).toEqual({ kind: 'ours', output: { stdout: line('fix', RUN), stderr: '' } });
    // No time in the status: the result line decides.
    expect(judgeObservation(finished(expected, null), expected, posted, posted + 25_000, options).kind).toBe('ours');
    // Ended a little before the POST by this host's clock: within the allowed skew.
    expect(judgeObservation(finished(expected, posted - 10_000), expected, posted, posted + 5_000, options).kind).toBe('ours');
  });

  it('a run going on: wait, however long after the POST', () => {
    expect(judgeObservation({ state: 'running', time: null }, expected, posted, posted + 10 * 60_000, options)).toEqual({ kind: 'wait', why: 'running' });
  });

  it('not ours yet, within the settle time: wait for ours to show', () => {
    for (const seen of [{ state: 'absent' } as const, finished({ runId: RUN, kind: 'probe' }, posted - 5_000), finished({ runId: OTHER, kind: 'fix' }, posted + 1_000), finished(null, posted)]) {
      expect(judgeObservation(seen, expected, posted, posted + 59_000, options)).toEqual({ kind: 'wait', why: 'not-yet-visible' });
    }
  });

  it('not ours after the settle time: the probe before it, someone else\'s run, no result line, nothing, or ours from long before', () => {
    const late = posted + 61_000;
    expect(judgeObservation(finished({ runId: RUN, kind: 'probe' }, posted - 5_000), expected, posted, late, options)).toMatchObject({ kind: 'not-ours', why: expect.stringContaining(`probe ${RUN}`) as unknown });
    expect(judgeObservation(finished({ runId: OTHER, kind: 'fix' }, posted + 1_000), expected, posted, late, options)).toMatchObject({ kind: 'not-ours', why: expect.stringContaining(OTHER) as unknown });
    expect(judgeObservation(finished(null, posted), expected, posted, late, options)).toMatchObject({ kind: 'not-ours', why: expect.stringContaining('no result line') as unknown });
    expect(judgeObservation({ state: 'absent' }, expected, posted, late, options)).toMatchObject({ kind: 'not-ours', why: expect.stringContaining('no Run Command extension') as unknown });
    // The same payload (a redelivered job's earlier run) that ended well before this POST is not this POST's run.
    expect(judgeObservation(finished(expected, posted - 120_000), expected, posted, late, options)).toMatchObject({ kind: 'not-ours', why: expect.stringContaining('ended before the POST') as unknown });
  });
});
