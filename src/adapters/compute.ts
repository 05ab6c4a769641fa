/**
 * The compute adapter: reads a VM and runs a command on it through the real
 * @azure/arm-compute client, converting SDK shapes to the core's and classifying errors.
 */
import { ComputeManagementClient, type InstanceViewStatus, type RunCommandInput, type VirtualMachineInstanceView } from '@azure/arm-compute';
import type { TokenCredential } from '@azure/identity';
import type { VmRef } from '../core/resource-id.js';
import type { OsType, VmView } from '../core/vm.js';
import { ComputeError, errorMessage, type ComputeFailureKind } from '../errors.js';
import type { RunCommandPayload } from '../payloads/compose.js';
import type { PipelinePolicy } from './pacing.js';

export interface RunCommandOutput {
  readonly stdout: string;
  readonly stderr: string;
}

export interface RunCommandOptions {
  readonly abortSignal?: AbortSignal;
}

/** What the pipeline needs from Azure compute. Injected, so tests and the CLI can choose. */
export interface ComputeGateway {
  getVm(ref: VmRef): Promise<VmView>;
  runCommand(ref: VmRef, payload: RunCommandPayload, options?: RunCommandOptions): Promise<RunCommandOutput>;
}

export interface ArmComputeGatewayOptions {
  /** ARM endpoint, e.g. https://management.azure.com or a sovereign cloud's. */
  readonly endpoint: string;
  /** Token audience; the scope requested is `${audience}/.default`. */
  readonly audience: string;
  /** Poll interval when ARM sends no Retry-After. */
  readonly pollIntervalMs?: number;
  /** Retries of throttled (429 + Retry-After) and transient requests, done by the SDK's pipeline. */
  readonly maxRetries?: number;
  /** Policies every attempt passes through (client-side pacing). */
  readonly additionalPolicies?: readonly PipelinePolicy[];
}

export class ArmComputeGateway implements ComputeGateway {
  private readonly clients = new Map<string, ComputeManagementClient>();

  public constructor(
    private readonly credential: TokenCredential,
    private readonly options: ArmComputeGatewayOptions,
  ) {}

  private client(subscriptionId: string): ComputeManagementClient {
    const key = subscriptionId.toLowerCase();
    let client = this.clients.get(key);
    if (!client) {
      client = new ComputeManagementClient(this.credential, subscriptionId, {
        endpoint: this.options.endpoint,
        // The v25 client asks for management.azure.com whatever the endpoint; sovereign clouds need their own audience.
        credentials: { scopes: [`${this.options.audience.replace(/\/+$/, '')}/.default`] },
        retryOptions: { maxRetries: this.options.maxRetries ?? 10 },
        additionalPolicies: (this.options.additionalPolicies ?? []).map((policy) => ({ policy, position: 'perRetry' as const })),
        userAgentOptions: { userAgentPrefix: 'rdp-remediator' },
      });
      this.clients.set(key, client);
    }
    return client;
  }

  public async getVm(ref: VmRef): Promise<VmView> {
    try {
      const client = this.client(ref.subscriptionId);
      if (ref.kind === 'vm') {
        const vm = await client.virtualMachines.get(ref.resourceGroup, ref.name, { expand: 'instanceView' });
        return toVmView(ref, vm.location, vm.tags, vm.storageProfile?.osDisk?.osType, vm.instanceView);
      }
      const vm = await client.virtualMachineScaleSetVMs.get(ref.resourceGroup, ref.scaleSetName, ref.instanceId, { expand: 'instanceView' });
      return toVmView(ref, vm.location, vm.tags, vm.storageProfile?.osDisk?.osType, vm.instanceView);
    } catch (error) {
      throw classifyComputeError(error, { operation: 'get', vm: ref.id });
    }
  }

  public async runCommand(ref: VmRef, payload: RunCommandPayload, options: RunCommandOptions = {}): Promise<RunCommandOutput> {
    const input: RunCommandInput = {
      commandId: payload.commandId,
      script: [...payload.script],
      parameters: payload.parameters.map((p) => ({ name: p.name, value: p.value })),
    };
    const pollOptions = {
      updateIntervalInMs: this.options.pollIntervalMs ?? 5_000,
      ...(options.abortSignal ? { abortSignal: options.abortSignal } : {}),
    };
    try {
      const client = this.client(ref.subscriptionId);
      const result =
        ref.kind === 'vm'
          ? await client.virtualMachines.runCommand(ref.resourceGroup, ref.name, input, pollOptions)
          : await client.virtualMachineScaleSetVMs.runCommand(ref.resourceGroup, ref.scaleSetName, ref.instanceId, input, pollOptions);
      return toRunCommandOutput(result.value ?? []);
    } catch (error) {
      throw classifyComputeError(error, { operation: 'runCommand', vm: ref.id });
    }
  }
}

/** StdOut and StdErr substatuses of a RunCommandResult. */
export function toRunCommandOutput(statuses: readonly InstanceViewStatus[]): RunCommandOutput {
  const find = (stream: string) => statuses.find((s) => s.code?.toLowerCase().includes(`/${stream}/`))?.message ?? '';
  return { stdout: find('stdout'), stderr: find('stderr') };
}

export function toVmView(
  ref: VmRef,
  location: string,
  tags: Record<string, string> | undefined,
  osType: string | undefined,
  instanceView: VirtualMachineInstanceView | undefined,
): VmView {
  const statuses = instanceView?.statuses ?? [];
  const power = statuses.find((s) => s.code?.toLowerCase().startsWith('powerstate/'))?.code?.split('/')[1]?.toLowerCase() ?? null;
  const agentStatus = instanceView?.vmAgent?.statuses?.[0];
  const agentReady = agentStatus?.displayStatus?.toLowerCase() === 'ready';
  return {
    ref,
    location,
    osType: toOsType(osType, instanceView?.osName),
    powerState: power,
    agent: { ready: agentReady, status: agentStatus?.displayStatus ?? null, message: agentStatus?.message ?? null },
    tags: tags ?? {},
  };
}

function toOsType(osType: string | undefined, osName: string | undefined): OsType {
  const value = (osType ?? '').toLowerCase();
  if (value === 'windows') return 'Windows';
  if (value === 'linux') return 'Linux';
  if (osName && /windows/i.test(osName)) return 'Windows';
  return 'Unknown';
}

interface RestLikeError {
  statusCode?: number;
  code?: string;
  message?: string;
}

/** Maps an SDK error (RestError, failed LRO) to a ComputeError the pipeline can act on. */
export function classifyComputeError(error: unknown, context: Record<string, unknown>): ComputeError {
  if (error instanceof ComputeError) return error;
  const e = (typeof error === 'object' && error !== null ? error : {}) as RestLikeError;
  const message = errorMessage(error);
  const statusCode = typeof e.statusCode === 'number' ? e.statusCode : undefined;
  const code = typeof e.code === 'string' ? e.code : undefined;
  const kind = classify(statusCode, code, message);
  return new ComputeError(kind, message, { ...context, ...(statusCode === undefined ? {} : { statusCode }), ...(code === undefined ? {} : { code }) }, { cause: error });
}

function classify(statusCode: number | undefined, code: string | undefined, message: string): ComputeFailureKind {
  if (/VMAgentStatusCommunicationError|has not reported (latest )?status for VM agent/i.test(message) || code === 'VMAgentStatusCommunicationError') return 'agent-not-ready';
  if (code === 'OperationNotAllowed' && /requires the VM to be running|deallocated/i.test(message)) return 'not-running';
  // Only this 409 means "wait and retry": ARM also answers 409 Conflict when, say, the OS type does not match the command.
  if (statusCode === 409 && /run command extension execution is in progress/i.test(message)) return 'busy';
  if (statusCode === 409 && /os type .* does not match/i.test(message)) return 'wrong-os';
  if (statusCode === 404 || code === 'ResourceNotFound' || code === 'NotFound') return 'not-found';
  if (statusCode === 429) return 'throttled';
  if (statusCode === 401 || statusCode === 403) return 'forbidden';
  if (statusCode !== undefined && (statusCode >= 500 || statusCode === 408)) return 'transient';
  return 'unknown';
}
