/**
 * The ARM side: request pipeline (authentication, api-version, injected faults, token-bucket
 * throttling), the VM / scale set VM resources with their instance views, and the action Run
 * Command as a long-running operation (202 + Azure-AsyncOperation + Location), as ARM's public
 * REST contract describes them; what is verified and what is assumed is listed in emulator/README.md.
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { z } from 'zod';
import { bearerChallenge, verifyBearer, wrongAudienceMessage, type TokenRegistry } from './identity.js';
import type { ArmRequestRecord, RunCommandExtensionState, RunCommandInvocation, RunCommandRecord, RunOperation, VmRecord } from './model.js';
import type { ArmFault, FaultQueue, OperationType, TokenBuckets } from './throttle.js';
import { PAYLOAD_MARKER, type PayloadKind } from '../src/contract/parameters.js';

/** Run Command returns only the last 4,096 bytes of each stream. */
export const RUN_COMMAND_OUTPUT_MAX_BYTES = 4096;

const WINDOWS_COMMAND_IDS = [
  'RunPowerShellScript',
  'IPConfig',
  'EnableWindowsUpdate',
  'DisableWindowsUpdate',
  'EnableAdminAccount',
  'EnableEMS',
  'EnableRemotePS',
  'IMDSCertCheck',
  'RDPSettings',
  'ResetRDPCert',
  'SetRDPPort',
  'DisableNLA',
  'Windows_WindowsActivation_Validation',
];
const LINUX_COMMAND_IDS = ['RunShellScript', 'ifconfig'];

const RunCommandInputSchema = z.object({
  commandId: z.string().min(1),
  script: z.array(z.string()).optional(),
  parameters: z.array(z.object({ name: z.string(), value: z.string() })).optional(),
});

/** ARM's own audiences, plus the emulator's endpoint for clients that scope tokens to it. */
const ARM_AUDIENCES = ['https://management.azure.com', 'https://management.core.windows.net'];

/** Runs a RunPowerShellScript body on a Windows VM: the real payload, under PowerShell, against the VM's state. */
export type WindowsScriptRunner = (vm: VmRecord, input: RunCommandInvocation, now: Date) => Promise<{ stdout: string; stderr: string }>;

/** The payload a script is, from its marker line; null for any other script. */
export function payloadKind(script: readonly string[]): PayloadKind | null {
  const first = (script.join('\n').split('\n')[0] ?? '').replace(/^\uFEFF/, '').trim();
  if (first === `${PAYLOAD_MARKER}probe`) return 'probe';
  if (first === `${PAYLOAD_MARKER}fix`) return 'fix';
  return null;
}

/** Which run a duration is asked for: the VM, the payload kind, and how many runs that VM had before. */
export interface RunDurationQuery {
  readonly vmId: string;
  readonly payload: PayloadKind | null;
  readonly index: number;
}

/** How long a run lasts (ms), for benchmarks that draw durations from a distribution. */
export type RunDuration = (run: RunDurationQuery) => number;

/** VMs per page of a list answer (ARM pages with nextLink; its page size for Compute lists is not documented). */
export const LIST_PAGE_SIZE = 100;

export interface ArmServiceOptions {
  readonly runWindowsScript: WindowsScriptRunner;
  readonly runLatencyMs: number;
  readonly runDurationMs?: RunDuration | undefined;
  readonly pollRetryAfterSeconds: number;
  readonly onRequest: ((record: ArmRequestRecord) => void) | undefined;
}

class ArmError extends Error {
  public constructor(
    public readonly status: number,
    public readonly code: string,
    message: string,
    public readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

/** ARM timestamps: seven fractional digits and an explicit offset. */
function armTime(date: Date): string {
  return date.toISOString().replace(/\.(\d{3})Z$/, '.$10000+00:00');
}

/** The last `max` bytes of a UTF-8 string, never starting inside a character. */
export function lastBytes(text: string, max: number): string {
  const bytes = Buffer.from(text, 'utf8');
  if (bytes.length <= max) return text;
  let start = bytes.length - max;
  while (start < bytes.length && ((bytes[start] ?? 0) & 0xc0) === 0x80) start += 1;
  return bytes.subarray(start).toString('utf8');
}

function vmKey(subscriptionId: string, resourceGroup: string, name: string, scaleSet?: { name: string; instanceId: string } | null): string {
  const base = `/subscriptions/${subscriptionId}/resourcegroups/${resourceGroup}/providers/microsoft.compute`;
  return (scaleSet ? `${base}/virtualmachinescalesets/${scaleSet.name}/virtualmachines/${scaleSet.instanceId}` : `${base}/virtualmachines/${name}`).toLowerCase();
}

export function vmResourceId(spec: { subscriptionId: string; resourceGroup: string; name: string; scaleSet?: { name: string; instanceId: string } | null }): string {
  const base = `/subscriptions/${spec.subscriptionId}/resourceGroups/${spec.resourceGroup}/providers/Microsoft.Compute`;
  return spec.scaleSet ? `${base}/virtualMachineScaleSets/${spec.scaleSet.name}/virtualMachines/${spec.scaleSet.instanceId}` : `${base}/virtualMachines/${spec.name}`;
}

const VM_PATH = /^\/subscriptions\/([^/]+)\/resourcegroups\/([^/]+)\/providers\/microsoft\.compute\/virtualmachines\/([^/]+)(?:\/(instanceview|runcommand))?$/i;
const VMSS_VM_PATH = /^\/subscriptions\/([^/]+)\/resourcegroups\/([^/]+)\/providers\/microsoft\.compute\/virtualmachinescalesets\/([^/]+)\/virtualmachines\/([^/]+)(?:\/(instanceview|runcommand))?$/i;
const OPERATION_PATH = /^\/subscriptions\/([^/]+)\/providers\/microsoft\.compute\/locations\/([^/]+)\/operations\/([^/]+)$/i;
/** The VMs of a subscription (listAll) or of a resource group (list). */
const VM_LIST_PATH = /^\/subscriptions\/([^/]+)(?:\/resourcegroups\/([^/]+))?\/providers\/microsoft\.compute\/virtualmachines$/i;

export class ArmService {
  public readonly vms = new Map<string, VmRecord>();
  public readonly operations = new Map<string, RunOperation>();
  public readonly requests: ArmRequestRecord[] = [];
  public readonly runCommands: RunCommandRecord[] = [];
  public maxConcurrentRunsPerVm = 0;
  /** Replaces runLatencyMs when set (configureRunDuration). */
  public runDuration: RunDuration | undefined;
  private readonly runsPerVm = new Map<string, number>();
  private stopped = false;

  public constructor(
    private readonly tokens: TokenRegistry,
    private readonly buckets: TokenBuckets,
    private readonly faults: FaultQueue,
    private readonly options: ArmServiceOptions,
    private readonly extraAudiences: () => readonly string[],
  ) {}

  public addVm(vm: VmRecord): void {
    const key = vmKey(vm.subscriptionId, vm.resourceGroup, vm.name, vm.scaleSet);
    if (this.vms.has(key)) throw new Error(`VM ${vm.id} already exists in the emulator`);
    this.vms.set(key, vm);
  }

  public findVm(id: string): VmRecord | undefined {
    return this.vms.get(id.replace(/\/+$/, '').toLowerCase());
  }

  public stop(): void {
    this.stopped = true;
    for (const op of this.operations.values()) if (op.timer) clearTimeout(op.timer);
  }

  // -------------------------------------------------------------------------------------------
  // Pipeline

  public async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const time = Date.now();
    const method = (req.method ?? 'GET').toUpperCase();
    const operationType: OperationType = method === 'GET' || method === 'HEAD' ? 'read' : 'write';
    const rawUrl = req.url ?? '/';
    const url = new URL(rawUrl, 'https://emulator.invalid');
    const query: Record<string, string> = {};
    for (const [name, value] of url.searchParams) query[name] = value;
    const queryLower = new Map(Object.entries(query).map(([k, v]) => [k.toLowerCase(), v]));
    const path = decodePath(url.pathname);
    const requestId = randomUUID();
    const headers: Record<string, string> = {
      'x-ms-request-id': requestId,
      'x-ms-correlation-request-id': headerValue(req, 'x-ms-correlation-request-id') ?? randomUUID(),
    };
    let principal: string | null = null;
    let injected = false;

    const send = (status: number, body: unknown, extra: Record<string, string> = {}): void => {
      const text = body === undefined ? '' : JSON.stringify(body);
      const all: Record<string, string | number> = { ...headers, ...extra, 'content-length': Buffer.byteLength(text) };
      if (text !== '') all['content-type'] = 'application/json; charset=utf-8';
      res.writeHead(status, all);
      res.end(text);
      const errorCode = status >= 400 && isErrorEnvelope(body) ? body.error.code : null;
      const record: ArmRequestRecord = { method, path: url.pathname, query, status, time, durationMs: Date.now() - time, operationType, requestId, principal, errorCode, injected };
      this.requests.push(record);
      this.options.onRequest?.(record);
    };

    try {
      const body = await readBody(req);
      if (this.stopped) throw new ArmError(503, 'ServiceUnavailable', 'The emulator is shutting down.');

      principal = this.authenticate(req).principal;

      if (!queryLower.has('api-version')) {
        throw new ArmError(400, 'MissingApiVersionParameter', "The api-version query parameter (?api-version=) is required for all requests.");
      }

      const fault = this.faults.take(operationType, path);
      if (fault) {
        injected = true;
        throw faultError(fault);
      }

      const subscriptionId = /^\/subscriptions\/([^/]+)/i.exec(path)?.[1] ?? '';
      const decision = this.buckets.take(subscriptionId, principal, operationType);
      headers[operationType === 'read' ? 'x-ms-ratelimit-remaining-subscription-reads' : 'x-ms-ratelimit-remaining-subscription-writes'] = String(decision.remaining);
      if (!decision.allowed) {
        const retry: Record<string, string> = { 'retry-after': String(decision.retryAfterSeconds) };
        if (this.buckets.sendsRetryAfterMs) retry['retry-after-ms'] = String(decision.retryAfterMs);
        throw new ArmError(
          429,
          'TooManyRequests',
          `The request is being throttled as the limit has been reached for operation type - ${operationType === 'read' ? 'Read' : 'Write'}_ObservationWindow_00:00:01. For more information, see - https://aka.ms/srpthrottlinglimits`,
          retry,
        );
      }

      const host = headerValue(req, 'host') ?? 'localhost';
      const baseUrl = `https://${host}`;
      await this.route(method, path, queryLower, body, baseUrl, send);
    } catch (error) {
      if (error instanceof ArmError) {
        send(error.status, { error: { code: error.code, message: error.message } }, error.headers);
        return;
      }
      const message = error instanceof Error ? error.message : String(error);
      send(500, { error: { code: 'InternalServerError', message: `The emulator failed: ${message}` } });
    }
  }

  private authenticate(req: IncomingMessage): { principal: string } {
    const checked = verifyBearer(headerValue(req, 'authorization'), this.tokens, [...ARM_AUDIENCES, ...this.extraAudiences()]);
    if (checked.ok) return { principal: checked.issued.principal };
    const challenge = (description: string) => bearerChallenge(this.tokens.tenantId, description);
    const { failure } = checked;
    switch (failure.reason) {
      case 'missing':
        throw new ArmError(401, 'AuthenticationFailed', "Authentication failed. The 'Authorization' header is missing.", challenge('The authentication failed because of missing \'Authorization\' header.'));
      case 'malformed':
        throw new ArmError(401, 'AuthenticationFailed', "Authentication failed. The 'Authorization' header is provided in an invalid format.", challenge('The authentication failed because of an invalid Authorization header.'));
      case 'invalid':
        throw new ArmError(401, 'AuthenticationFailed', 'Authentication failed. The access token is invalid.', challenge('The access token is invalid.'));
      case 'expired':
        throw new ArmError(401, 'ExpiredAuthenticationToken', 'The access token expiry UTC time is earlier than current UTC time.', challenge('The access token has expired.'));
      case 'audience':
        throw new ArmError(401, 'InvalidAuthenticationTokenAudience', wrongAudienceMessage(failure.resource, failure.allowed), challenge('The access token has an invalid audience.'));
    }
  }

  // -------------------------------------------------------------------------------------------
  // Routes

  private async route(method: string, path: string, query: Map<string, string>, body: string, baseUrl: string, send: (status: number, body: unknown, extra?: Record<string, string>) => void): Promise<void> {
    const vmMatch = VM_PATH.exec(path);
    const vmssMatch = vmMatch ? null : VMSS_VM_PATH.exec(path);
    if (vmMatch || vmssMatch) {
      const [subscriptionId, resourceGroup, name, instanceId, action] = vmMatch
        ? [vmMatch[1] ?? '', vmMatch[2] ?? '', vmMatch[3] ?? '', null, vmMatch[4]?.toLowerCase()]
        : [vmssMatch?.[1] ?? '', vmssMatch?.[2] ?? '', vmssMatch?.[3] ?? '', vmssMatch?.[4] ?? '', vmssMatch?.[5]?.toLowerCase()];
      const vm = this.resolveVm(subscriptionId, resourceGroup, name, instanceId);
      if (action === 'runcommand') {
        if (method !== 'POST') throw methodNotAllowed(method);
        const accepted = this.startRun(vm, body, query.get('api-version') ?? '', baseUrl);
        send(202, undefined, accepted);
        return;
      }
      if (method !== 'GET') throw methodNotAllowed(method);
      if (action === 'instanceview') {
        send(200, instanceView(vm));
        return;
      }
      const expand = (query.get('$expand') ?? '').toLowerCase();
      send(200, vmResource(vm, expand === 'instanceview'));
      return;
    }
    const listMatch = VM_LIST_PATH.exec(path);
    if (listMatch) {
      if (method !== 'GET') throw methodNotAllowed(method);
      send(200, this.listVms(listMatch[1] ?? '', listMatch[2] ?? null, query, baseUrl));
      return;
    }
    const opMatch = OPERATION_PATH.exec(path);
    if (opMatch) {
      if (method !== 'GET') throw methodNotAllowed(method);
      await this.getOperation(opMatch[1] ?? '', opMatch[2] ?? '', opMatch[3] ?? '', query, baseUrl, send);
      return;
    }
    throw new ArmError(404, 'NotFound', `The emulator serves no resource at '${path}'.`);
  }

  /**
   * One page of the VMs of a subscription or resource group, in a stable order, with a nextLink
   * while more remain. `statusOnly=true` (subscription only) adds each VM's instance view, as
   * the list-all documentation says ("fetching run time status of all Virtual Machines"); the
   * emulator keeps the model's fields beside it (the app falls back to one GET for a VM whose
   * listing lacks what it needs). Scale set VMs are not in these lists.
   */
  private listVms(subscriptionId: string, resourceGroup: string | null, query: Map<string, string>, baseUrl: string): Record<string, unknown> {
    const inScope = [...this.vms.values()]
      .filter((vm) => vm.scaleSet === null && vm.subscriptionId.toLowerCase() === subscriptionId.toLowerCase() && (resourceGroup === null || vm.resourceGroup.toLowerCase() === resourceGroup.toLowerCase()))
      .sort((a, b) => a.id.toLowerCase().localeCompare(b.id.toLowerCase()));
    if (inScope.length === 0 && ![...this.vms.values()].some((vm) => vm.subscriptionId.toLowerCase() === subscriptionId.toLowerCase())) {
      throw new ArmError(404, 'SubscriptionNotFound', `The subscription '${subscriptionId}' could not be found.`);
    }
    const statusOnly = resourceGroup === null && query.get('statusonly')?.toLowerCase() === 'true';
    const skip = Math.max(0, Number(query.get('$skiptoken') ?? 0) || 0);
    const page = inScope.slice(skip, skip + LIST_PAGE_SIZE);
    const result: Record<string, unknown> = { value: page.map((vm) => vmResource(vm, statusOnly)) };
    if (skip + LIST_PAGE_SIZE < inScope.length) {
      const next = new URLSearchParams();
      for (const [name, value] of query) if (name !== '$skiptoken') next.set(name, value);
      next.set('$skiptoken', String(skip + LIST_PAGE_SIZE));
      const scope = resourceGroup === null ? `/subscriptions/${subscriptionId}` : `/subscriptions/${subscriptionId}/resourceGroups/${resourceGroup}`;
      result['nextLink'] = `${baseUrl}${scope}/providers/Microsoft.Compute/virtualMachines?${next.toString()}`;
    }
    return result;
  }

  private resolveVm(subscriptionId: string, resourceGroup: string, name: string, instanceId: string | null): VmRecord {
    const scaleSet = instanceId === null ? null : { name, instanceId };
    const vm = this.vms.get(vmKey(subscriptionId, resourceGroup, name, scaleSet));
    if (vm) return vm;
    const all = [...this.vms.values()];
    const inSubscription = all.filter((v) => v.subscriptionId.toLowerCase() === subscriptionId.toLowerCase());
    if (inSubscription.length === 0) throw new ArmError(404, 'SubscriptionNotFound', `The subscription '${subscriptionId}' could not be found.`);
    const inGroup = inSubscription.filter((v) => v.resourceGroup.toLowerCase() === resourceGroup.toLowerCase());
    if (inGroup.length === 0) throw new ArmError(404, 'ResourceGroupNotFound', `Resource group '${resourceGroup}' could not be found.`);
    if (scaleSet !== null && inGroup.some((v) => v.scaleSet?.name.toLowerCase() === name.toLowerCase())) {
      // The scale set exists, the instance doesn't: Compute answers for its own child resource.
      throw new ArmError(404, 'NotFound', 'The entity was not found in this Azure location.');
    }
    const type = scaleSet === null ? 'Microsoft.Compute/virtualMachines' : 'Microsoft.Compute/virtualMachineScaleSets';
    throw new ArmError(404, 'ResourceNotFound', `The Resource '${type}/${name}' under resource group '${resourceGroup}' was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix`);
  }

  // -------------------------------------------------------------------------------------------
  // Run Command

  private startRun(vm: VmRecord, body: string, apiVersion: string, baseUrl: string): Record<string, string> {
    let json: unknown;
    try {
      json = body === '' ? undefined : JSON.parse(body);
    } catch (error) {
      throw new ArmError(400, 'InvalidRequestContent', `The request content was invalid and could not be deserialized: '${error instanceof Error ? error.message : String(error)}'.`);
    }
    const parsed = RunCommandInputSchema.safeParse(json);
    if (!parsed.success) {
      throw new ArmError(400, 'InvalidRequestContent', `The request content was invalid and could not be deserialized: ${parsed.error.issues.map((i) => `'${i.path.join('.') || 'body'}': ${i.message}`).join('; ')}.`);
    }
    if (vm.powerState !== 'running' && vm.powerState !== 'starting') {
      throw new ArmError(409, 'OperationNotAllowed', 'The operation requires the VM to be running (or set to run).');
    }
    const input: RunCommandInvocation = { commandId: parsed.data.commandId, script: parsed.data.script ?? [], parameters: parsed.data.parameters ?? [] };
    const own = vm.osType === 'Windows' ? WINDOWS_COMMAND_IDS : LINUX_COMMAND_IDS;
    const other = vm.osType === 'Windows' ? LINUX_COMMAND_IDS : WINDOWS_COMMAND_IDS;
    const sameId = (list: readonly string[]): boolean => list.some((id) => id.toLowerCase() === input.commandId.toLowerCase());
    if (!sameId(own)) {
      if (sameId(other)) {
        // What Compute answers for a Windows command on a Linux VM (and the reverse), synchronously.
        throw new ArmError(409, 'Conflict', `Run command OS type '${vm.osType === 'Windows' ? 'Linux' : 'Windows'}' does not match the target OS ${vm.osType}.`);
      }
      throw new ArmError(404, 'NotFound', 'The entity was not found in this Azure location.');
    }
    if (vm.activeRun !== null && vm.activeRun.status === 'InProgress') {
      this.maxConcurrentRunsPerVm = Math.max(this.maxConcurrentRunsPerVm, 2);
      throw new ArmError(409, 'Conflict', 'Run command extension execution is in progress. Please wait for completion before invoking a run command.');
    }
    this.maxConcurrentRunsPerVm = Math.max(this.maxConcurrentRunsPerVm, 1);

    const id = randomUUID();
    const startTime = new Date();
    const payload = vm.osType === 'Windows' && input.commandId.toLowerCase() === 'runpowershellscript' ? payloadKind(input.script) : null;
    const index = this.runsPerVm.get(vm.id) ?? 0;
    this.runsPerVm.set(vm.id, index + 1);
    const duration = this.runDuration ?? this.options.runDurationMs;
    const latency = vm.runLatencyMs ?? (duration ? Math.max(0, duration({ vmId: vm.id, payload, index })) : this.options.runLatencyMs);
    const record: RunCommandRecord = {
      operationId: id,
      vmId: vm.id,
      commandId: input.commandId,
      payload,
      parameters: Object.fromEntries(input.parameters.map((p) => [p.name, p.value])),
      startTime: startTime.getTime(),
      endTime: null,
      outcome: 'running',
      errorCode: null,
      stdout: null,
      stderr: null,
    };
    const op: RunOperation = {
      id,
      vm,
      subscriptionId: vm.subscriptionId,
      location: vm.location,
      input,
      startTime,
      dueAt: startTime.getTime() + latency,
      record,
      status: 'InProgress',
      endTime: null,
      stdout: '',
      stderr: '',
      error: null,
      timer: null,
      finishing: null,
    };
    op.timer = setTimeout(() => void this.complete(op), latency);
    vm.activeRun = op;
    // The agent picks the run up and reports the extension transitioning (an agent that is not ready reports nothing).
    if (vm.agentReady) vm.runCommandExtension = { status: 'transitioning', time: startTime, stdout: '', stderr: '', message: 'Enable in progress', operationId: id };
    this.operations.set(id, op);
    this.runCommands.push(record);

    const operationUrl = `${baseUrl}/subscriptions/${vm.subscriptionId}/providers/Microsoft.Compute/locations/${vm.location}/operations/${id}`;
    const version = encodeURIComponent(apiVersion);
    return {
      'azure-asyncoperation': `${operationUrl}?api-version=${version}`,
      location: `${operationUrl}?monitor=true&api-version=${version}`,
      'retry-after': String(this.options.pollRetryAfterSeconds),
    };
  }

  /**
   * Finishes a run: the script runs when it "ends", and its effects on the VM's state land then.
   * Memoised, so the timer and a poll that arrives at the due time share one execution.
   */
  private complete(op: RunOperation): Promise<void> {
    op.finishing ??= this.finish(op);
    return op.finishing;
  }

  private async finish(op: RunOperation): Promise<void> {
    if (op.timer) clearTimeout(op.timer);
    op.timer = null;
    const vm = op.vm;
    const now = new Date();
    if (vm.powerState !== 'running' && vm.powerState !== 'starting') {
      op.status = 'Failed';
      op.error = { code: 'OperationPreempted', message: 'Operation execution has been preempted by a more recent operation.' };
    } else if (!vm.agentReady) {
      op.status = 'Failed';
      op.error = {
        code: 'VMAgentStatusCommunicationError',
        message: `VM '${vm.name}' has not reported status for VM agent or extensions. Please verify the VM has a running VM agent, and can establish outbound connections to Azure storage.`,
      };
    } else {
      try {
        const output = await this.execute(vm, op.input, now);
        op.stdout = lastBytes(output.stdout, RUN_COMMAND_OUTPUT_MAX_BYTES);
        op.stderr = lastBytes(output.stderr, RUN_COMMAND_OUTPUT_MAX_BYTES);
        op.status = 'Succeeded';
      } catch (error) {
        op.status = 'Failed';
        op.error = { code: 'InternalExecutionError', message: `The emulator failed to run the script: ${error instanceof Error ? error.message : String(error)}` };
      }
    }
    const end = new Date();
    op.endTime = end;
    if (vm.activeRun === op) vm.activeRun = null;
    vm.runCommandExtension = extensionAfterRun(vm.runCommandExtension, op, end);
    const record = op.record;
    record.endTime = end.getTime();
    record.outcome = op.status === 'Succeeded' ? 'succeeded' : 'failed';
    record.errorCode = op.error?.code ?? null;
    record.stdout = op.status === 'Succeeded' ? op.stdout : null;
    record.stderr = op.status === 'Succeeded' ? op.stderr : null;
  }

  private async execute(vm: VmRecord, input: RunCommandInvocation, now: Date): Promise<{ stdout: string; stderr: string }> {
    if (vm.osType === 'Windows' && vm.windows !== null && input.commandId.toLowerCase() === 'runpowershellscript' && payloadKind(input.script) !== null) {
      return this.options.runWindowsScript(vm, input, now);
    }
    const other = vm.otherScript?.(input);
    return { stdout: other?.stdout ?? '', stderr: other?.stderr ?? '' };
  }

  private async getOperation(subscriptionId: string, location: string, id: string, query: Map<string, string>, baseUrl: string, send: (status: number, body: unknown, extra?: Record<string, string>) => void): Promise<void> {
    const op = this.operations.get(id.toLowerCase()) ?? this.operations.get(id);
    if (!op || op.subscriptionId.toLowerCase() !== subscriptionId.toLowerCase() || op.location.toLowerCase() !== location.toLowerCase()) {
      throw new ArmError(404, 'NotFound', `The operation '${id}' was not found.`);
    }
    // A poll that arrives just as the run is due sees it finished, whatever the timer's turn.
    if (op.status === 'InProgress' && Date.now() >= op.dueAt) await this.complete(op);
    const retryAfter = { 'retry-after': String(this.options.pollRetryAfterSeconds) };
    const output = {
      value: [
        { code: 'ComponentStatus/StdOut/succeeded', level: 'Info', displayStatus: 'Provisioning succeeded', message: op.stdout },
        { code: 'ComponentStatus/StdErr/succeeded', level: 'Info', displayStatus: 'Provisioning succeeded', message: op.stderr },
      ],
    };
    if (query.get('monitor')?.toLowerCase() === 'true') {
      // The Location URL: 202 while running, the RunCommandResult once done.
      if (op.status === 'InProgress') {
        const version = encodeURIComponent(query.get('api-version') ?? '');
        send(202, undefined, { ...retryAfter, location: `${baseUrl}/subscriptions/${op.subscriptionId}/providers/Microsoft.Compute/locations/${op.location}/operations/${op.id}?monitor=true&api-version=${version}` });
      } else if (op.status === 'Succeeded') {
        send(200, output);
      } else {
        throw new ArmError(409, op.error?.code ?? 'Failed', op.error?.message ?? 'The operation failed.');
      }
      return;
    }
    const status: Record<string, unknown> = { startTime: armTime(op.startTime), status: op.status, name: op.id };
    if (op.endTime) status['endTime'] = armTime(op.endTime);
    if (op.status === 'Succeeded') status['properties'] = { output };
    if (op.status === 'Failed') status['error'] = op.error;
    send(200, status, op.status === 'InProgress' ? retryAfter : {});
  }
}

/**
 * The extension status a finished run leaves: its output when it succeeded, failed with the
 * error otherwise. An agent that stopped reporting (VMAgentStatusCommunicationError) leaves
 * whatever it last reported.
 */
function extensionAfterRun(before: RunCommandExtensionState | undefined, op: RunOperation, end: Date): RunCommandExtensionState | undefined {
  if (op.status === 'Succeeded') return { status: 'succeeded', time: end, stdout: op.stdout, stderr: op.stderr, message: 'Finished executing command', operationId: op.id };
  if (op.error?.code === 'VMAgentStatusCommunicationError') return before;
  return { status: 'failed', time: end, stdout: '', stderr: '', message: op.error?.message ?? 'The script failed.', operationId: op.id };
}

// ---------------------------------------------------------------------------------------------
// Resource bodies

/** The action Run Command's extension, as the instance view names it (type verified; name and version are the emulator's). */
export function runCommandExtensionType(vm: VmRecord): { name: string; type: string; typeHandlerVersion: string } {
  return vm.osType === 'Windows'
    ? { name: 'RunCommandWindows', type: 'Microsoft.CPlat.Core.RunCommandWindows', typeHandlerVersion: '1.1.22' }
    : { name: 'RunCommandLinux', type: 'Microsoft.CPlat.Core.RunCommandLinux', typeHandlerVersion: '1.0.5' };
}

/** `extensions[]` entry: the last status (transitioning / succeeded / failed) and, after a successful run, its StdOut/StdErr substatuses. */
function runCommandExtensionView(vm: VmRecord, state: RunCommandExtensionState): Record<string, unknown> {
  const { name, type, typeHandlerVersion } = runCommandExtensionType(vm);
  const status =
    state.status === 'transitioning'
      ? { code: 'ProvisioningState/transitioning', level: 'Info', displayStatus: 'Transitioning', message: state.message, time: armTime(state.time) }
      : state.status === 'succeeded'
        ? { code: 'ProvisioningState/succeeded', level: 'Info', displayStatus: 'Provisioning succeeded', message: state.message, time: armTime(state.time) }
        : { code: 'ProvisioningState/failed', level: 'Error', displayStatus: 'Provisioning failed', message: state.message, time: armTime(state.time) };
  const view: Record<string, unknown> = { name, type, typeHandlerVersion };
  if (state.status === 'succeeded') {
    view['substatuses'] = [
      { code: 'ComponentStatus/StdOut/succeeded', level: 'Info', displayStatus: 'Provisioning succeeded', message: state.stdout },
      { code: 'ComponentStatus/StdErr/succeeded', level: 'Info', displayStatus: 'Provisioning succeeded', message: state.stderr },
    ];
  }
  view['statuses'] = [status];
  return view;
}

function powerDisplay(state: VmRecord['powerState']): string {
  return `VM ${state}`;
}

function osNameAndVersion(vm: VmRecord): { osName: string; osVersion: string } {
  if (vm.osType === 'Linux' || vm.windows === null) return { osName: 'ubuntu', osVersion: '22.04' };
  return { osName: vm.windows.os.caption.replace(/^Microsoft\s+/, ''), osVersion: `Microsoft Windows NT 10.0.${vm.windows.os.buildNumber}.0` };
}

export function instanceView(vm: VmRecord): Record<string, unknown> {
  const now = new Date();
  const statuses = [
    { code: 'ProvisioningState/succeeded', level: 'Info', displayStatus: 'Provisioning succeeded', time: armTime(vm.createdAt) },
    { code: `PowerState/${vm.powerState}`, level: 'Info', displayStatus: powerDisplay(vm.powerState) },
  ];
  // A deallocated VM has no host, hence no guest agent, disks or OS details to report.
  if (vm.powerState === 'deallocated') return vm.scaleSet ? { platformUpdateDomain: 0, platformFaultDomain: 0, statuses } : { statuses };
  const reporting = vm.agentReady && (vm.powerState === 'running' || vm.powerState === 'stopping');
  const view: Record<string, unknown> = {};
  if (vm.scaleSet) {
    view['platformUpdateDomain'] = 0;
    view['platformFaultDomain'] = 0;
  }
  if (reporting) {
    view['computerName'] = vm.computerName;
    Object.assign(view, osNameAndVersion(vm));
    view['vmAgent'] = {
      vmAgentVersion: vm.osType === 'Windows' ? '2.7.41491.1131' : '2.11.1.4',
      statuses: [
        { code: 'ProvisioningState/succeeded', level: 'Info', displayStatus: 'Ready', message: 'GuestAgent is running and accepting new configurations.', time: armTime(new Date(now.getTime() - 15_000)) },
      ],
      // Once a Run Command has run, the agent lists its handler (the shape of azure-compute-docs' hibernation sample).
      extensionHandlers: vm.runCommandExtension
        ? [{ type: runCommandExtensionType(vm).type, typeHandlerVersion: runCommandExtensionType(vm).typeHandlerVersion, status: { code: 'ProvisioningState/succeeded', level: 'Info', displayStatus: 'Ready' } }]
        : [],
    };
  } else {
    view['vmAgent'] = {
      vmAgentVersion: 'Unknown',
      statuses: [{ code: 'ProvisioningState/Unavailable', level: 'Warning', displayStatus: 'Not Ready', message: 'VM status blob not found.', time: armTime(now) }],
    };
  }
  view['disks'] = [{ name: vm.osDiskName, statuses: [{ code: 'ProvisioningState/succeeded', level: 'Info', displayStatus: 'Provisioning succeeded', time: armTime(vm.createdAt) }] }];
  if (reporting && vm.runCommandExtension) view['extensions'] = [runCommandExtensionView(vm, vm.runCommandExtension)];
  view['hyperVGeneration'] = 'V2';
  view['statuses'] = statuses;
  return view;
}

export function vmResource(vm: VmRecord, withInstanceView: boolean): Record<string, unknown> {
  const groupId = `/subscriptions/${vm.subscriptionId}/resourceGroups/${vm.resourceGroup}`;
  const properties: Record<string, unknown> = {
    vmId: vm.vmId,
    hardwareProfile: { vmSize: 'Standard_D2s_v5' },
    storageProfile: {
      imageReference:
        vm.osType === 'Windows'
          ? { publisher: 'MicrosoftWindowsServer', offer: 'WindowsServer', sku: '2022-datacenter-azure-edition', version: 'latest', exactVersion: '20348.2340.240303' }
          : { publisher: 'Canonical', offer: '0001-com-ubuntu-server-jammy', sku: '22_04-lts-gen2', version: 'latest', exactVersion: '22.04.202403010' },
      osDisk: {
        osType: vm.osType,
        name: vm.osDiskName,
        createOption: 'FromImage',
        caching: 'ReadWrite',
        managedDisk: { storageAccountType: 'Premium_LRS', id: `${groupId}/providers/Microsoft.Compute/disks/${vm.osDiskName}` },
        deleteOption: 'Delete',
        diskSizeGB: vm.osType === 'Windows' ? 127 : 30,
      },
      dataDisks: [],
    },
    osProfile: {
      computerName: vm.computerName,
      adminUsername: 'azureadmin',
      ...(vm.osType === 'Windows'
        ? { windowsConfiguration: { provisionVMAgent: true, enableAutomaticUpdates: true, patchSettings: { patchMode: 'AutomaticByOS', assessmentMode: 'ImageDefault' } } }
        : { linuxConfiguration: { disablePasswordAuthentication: true, provisionVMAgent: true } }),
      secrets: [],
      allowExtensionOperations: true,
      requireGuestProvisionSignal: true,
    },
    networkProfile: { networkInterfaces: [{ id: `${groupId}/providers/Microsoft.Network/networkInterfaces/${vm.name}-nic` }] },
    diagnosticsProfile: { bootDiagnostics: { enabled: true } },
    provisioningState: 'Succeeded',
    timeCreated: armTime(vm.createdAt),
  };
  if (vm.scaleSet) properties['latestModelApplied'] = true;
  if (withInstanceView) properties['instanceView'] = instanceView(vm);
  const resource: Record<string, unknown> = {
    name: vm.name,
    id: vm.id,
    type: vm.scaleSet ? 'Microsoft.Compute/virtualMachineScaleSets/virtualMachines' : 'Microsoft.Compute/virtualMachines',
    location: vm.location,
    tags: { ...vm.tags },
  };
  if (vm.scaleSet) {
    resource['instanceId'] = vm.scaleSet.instanceId;
    resource['sku'] = { name: 'Standard_D2s_v5', tier: 'Standard' };
  }
  resource['properties'] = properties;
  return resource;
}

// ---------------------------------------------------------------------------------------------
// Helpers

export function headerValue(req: IncomingMessage, name: string): string | undefined {
  const value = req.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

export function decodePath(pathname: string): string {
  return pathname
    .split('/')
    .filter((segment, i) => i === 0 || segment !== '')
    .map((segment) => {
      try {
        return decodeURIComponent(segment);
      } catch {
        return segment;
      }
    })
    .join('/')
    .replace(/\/+$/, '');
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    const buffer = Buffer.isBuffer(chunk) ? chunk : Buffer.from(String(chunk));
    size += buffer.length;
    if (size > 4 * 1024 * 1024) throw new ArmError(413, 'RequestEntityTooLarge', 'The request content exceeds the maximum allowed size.');
    chunks.push(buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

function isErrorEnvelope(body: unknown): body is { error: { code: string } } {
  if (typeof body !== 'object' || body === null || !('error' in body)) return false;
  const error = body.error;
  return typeof error === 'object' && error !== null && typeof (error as { code?: unknown }).code === 'string';
}

function methodNotAllowed(method: string): ArmError {
  return new ArmError(405, 'MethodNotAllowed', `The requested resource does not support http method '${method}'.`);
}

function faultError(fault: ArmFault): ArmError {
  const headers: Record<string, string> = fault.retryAfterSeconds === undefined ? {} : { 'retry-after': String(fault.retryAfterSeconds) };
  return fault.status === 429
    ? new ArmError(429, 'TooManyRequests', 'The request is being throttled as the limit has been reached for this subscription. For more information, see - https://aka.ms/srpthrottlinglimits', headers)
    : new ArmError(503, 'ServiceUnavailable', 'The service is temporarily unavailable. Please try again later.', headers);
}
