/**
 * How a simulated Windows VM runs a Run Command payload: the real composed script, under
 * PowerShell 7 in a long-lived host, with the Windows double (emulator/double/WindowsDouble.ps1)
 * in the access layer's place, against the VM's state. The stdout and stderr are the script's
 * own; the state the double hands back becomes the VM's.
 */
import { join } from 'node:path';
import { packageRoot } from '../src/util/package-root.js';
import type { WindowsScriptRunner } from './arm.js';
import { sharedPowerShellHost, type PowerShellHost } from './powershell.js';
import { isoSeconds } from './windows.js';

export interface WindowsRunOptions {
  /** A host of the caller's; default the process-wide shared one. */
  readonly host?: PowerShellHost;
  /**
   * Replay result lines recorded from real runs of the same (state, payload, parameters) in
   * this process, keyed by content hash with the RunId substituted. For the storm benchmark.
   */
  readonly replay?: boolean;
  /** PowerShell processes in the shared host (default 1); `npm start` uses one per core. */
  readonly poolSize?: number;
}

export function windowsDoublePath(): string {
  return join(packageRoot(), 'emulator', 'double', 'WindowsDouble.ps1');
}

/**
 * The PowerShell host Windows VMs run on: the caller's, or the shared one (started on first
 * use, restoring the pinned PowerShell with `dotnet tool restore` where it can). Rejects with
 * PowerShellNotFoundError, whose message says how to install PowerShell 7.
 */
export async function windowsHost(options: WindowsRunOptions = {}): Promise<PowerShellHost> {
  return options.host ?? (await sharedPowerShellHost({ doublePath: windowsDoublePath(), replay: options.replay === true, ...(options.poolSize === undefined ? {} : { poolSize: options.poolSize }) }));
}

export function windowsScriptRunner(options: WindowsRunOptions): WindowsScriptRunner {
  return async (vm, input, now) => {
    if (vm.windows === null) throw new Error(`${vm.id} is not a Windows VM`);
    const host = await windowsHost(options);
    // The VM's clock is the emulator's; the double advances it while the script sleeps.
    const state = { ...vm.windows, now: isoSeconds(now) };
    const result = await host.run({ script: input.script.join('\n'), parameters: input.parameters, state });
    // The stored state keeps its own clock: the VM's time is the emulator's at each run.
    const after = { ...result.state, now: vm.windows.now };
    // An injected write fault is one-shot: gone once it fired (the double throws it by this text).
    const fault = after.faults.throwAtWrite;
    const fired = `Injected fault at write ${fault} `;
    if (fault !== null && (result.stdout.includes(fired) || result.stderr.includes(fired))) after.faults = { ...after.faults, throwAtWrite: null };
    vm.windows = after;
    return { stdout: result.stdout, stderr: result.stderr };
  };
}
