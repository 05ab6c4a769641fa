/**
 * The Azure-side records the emulator keeps: VMs (plain and scale set instances), Run Command
 * operations, and the logs tests assert on.
 */
import type { PayloadKind } from '../src/contract/parameters.js';
import type { WindowsState } from './windows-state.js';

/** Power states as `PowerState/<state>` codes spell them. */
export type PowerState = 'starting' | 'running' | 'stopping' | 'stopped' | 'deallocating' | 'deallocated';
export type OsType = 'Windows' | 'Linux';

export interface RunCommandInvocation {
  readonly commandId: string;
  readonly script: readonly string[];
  readonly parameters: readonly { readonly name: string; readonly value: string }[];
}

/** Output for scripts that are not rdp-remediator payloads (any script on Linux, any other script on Windows). */
export type ScriptHandler = (input: RunCommandInvocation) => { stdout: string; stderr?: string };

export interface VmSpec {
  readonly subscriptionId: string;
  readonly resourceGroup: string;
  /** The VM name. For a scale set instance it defaults to `<scaleSet>_<instanceId>`. */
  readonly name?: string;
  /** Makes this a scale set VM (`.../virtualMachineScaleSets/{name}/virtualMachines/{instanceId}`). */
  readonly scaleSet?: { readonly name: string; readonly instanceId: string };
  readonly location?: string;
  readonly tags?: Readonly<Record<string, string>>;
  readonly osType?: OsType;
  readonly powerState?: PowerState;
  /** The VM agent reports Ready. Default true. */
  readonly agentReady?: boolean;
  /** How long a Run Command takes on this VM; default: the emulator's. */
  readonly runLatencyMs?: number;
  readonly computerName?: string;
  /** The Windows machine state; default a healthy VM. Ignored for Linux. */
  readonly windows?: WindowsState;
  readonly otherScript?: ScriptHandler;
}

export interface VmRecord {
  readonly id: string;
  readonly subscriptionId: string;
  readonly resourceGroup: string;
  readonly name: string;
  readonly scaleSet: { readonly name: string; readonly instanceId: string } | null;
  readonly location: string;
  readonly tags: Record<string, string>;
  readonly osType: OsType;
  readonly vmId: string;
  readonly computerName: string;
  readonly createdAt: Date;
  readonly osDiskName: string;
  powerState: PowerState;
  agentReady: boolean;
  runLatencyMs: number | undefined;
  windows: WindowsState | null;
  otherScript: ScriptHandler | undefined;
  activeRun: RunOperation | null;
  /**
   * What the VM agent last reported for the Run Command extension, shown in the instance view;
   * undefined until the first run the agent picked up (see emulator/README.md, instance view).
   */
  runCommandExtension?: RunCommandExtensionState;
}

/** The Run Command extension's last reported status: `transitioning` while a run goes, then the run's end with its output. */
export interface RunCommandExtensionState {
  readonly status: 'transitioning' | 'succeeded' | 'failed';
  /** When the agent reported it (the run's start, then its end). */
  readonly time: Date;
  /** The run's StdOut/StdErr (last 4,096 bytes each), once it succeeded. */
  readonly stdout: string;
  readonly stderr: string;
  readonly message: string;
  /** The operation the status belongs to (for tests). */
  readonly operationId: string;
}

export type RunStatus = 'InProgress' | 'Succeeded' | 'Failed';

export interface RunOperation {
  readonly id: string;
  readonly vm: VmRecord;
  readonly subscriptionId: string;
  readonly location: string;
  readonly input: RunCommandInvocation;
  readonly startTime: Date;
  readonly dueAt: number;
  readonly record: RunCommandRecord;
  status: RunStatus;
  endTime: Date | null;
  stdout: string;
  stderr: string;
  error: { code: string; message: string } | null;
  timer: NodeJS.Timeout | null;
  /** The execution once started (by the timer or a poll at the due time). */
  finishing: Promise<void> | null;
}

export interface ArmRequestRecord {
  readonly method: string;
  /** The path as sent (not decoded). */
  readonly path: string;
  /** Query parameters, names and values decoded (`$expand`, not `%24expand`). */
  readonly query: Readonly<Record<string, string>>;
  readonly status: number;
  /** When the request arrived (epoch ms). */
  readonly time: number;
  readonly durationMs: number;
  readonly operationType: 'read' | 'write';
  readonly requestId: string;
  /** The token's principal; null when authentication failed. */
  readonly principal: string | null;
  /** The ARM error code of an error response. */
  readonly errorCode: string | null;
  /** 429/503 came from injectArmFaults rather than the token bucket or a handler. */
  readonly injected: boolean;
}

export interface RunCommandRecord {
  readonly operationId: string;
  readonly vmId: string;
  readonly commandId: string;
  /** Which rdp-remediator payload ran, from the script's marker line; null for any other script. */
  readonly payload: PayloadKind | null;
  readonly parameters: Readonly<Record<string, string>>;
  readonly startTime: number;
  endTime: number | null;
  outcome: 'running' | 'succeeded' | 'failed';
  errorCode: string | null;
  stdout: string | null;
  stderr: string | null;
}
