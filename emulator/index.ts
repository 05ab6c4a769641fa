/**
 * A local, protocol-faithful Azure for rdp-remediator: an HTTPS ARM endpoint (VMs, scale set
 * VMs, action Run Command as an LRO, throttling), the Azure Monitor Logs query API under `/v1/`
 * on the same server, and an App Service managed-identity endpoint, with a Windows machine state behind
 * every VM (the real payloads run against it under PowerShell). The real @azure/arm-compute, @azure/monitor-query-logs and @azure/identity talk to
 * it over sockets; see emulator/README.md for what is emulated and the choices made.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import * as https from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ArmService, vmResourceId, type RunDuration } from './arm.js';
import { startIdentityServer, TokenRegistry, type IdentityRequestRecord } from './identity.js';
import { LogsService, type LogEvent, type LogsFault, type LogsRequestRecord, type PartialErrorSpec, type WorkspaceSpec } from './logs.js';
import type { ArmRequestRecord, OsType, PowerState, RunCommandRecord, VmRecord, VmSpec } from './model.js';
import { FaultQueue, TokenBuckets, type ArmFault, type ThrottleOptions } from './throttle.js';
import { createTlsMaterial } from './tls.js';
import { windowsScriptRunner, type WindowsRunOptions } from './windows-runner.js';
import { assessRdp, healthyWindows, type RdpAssessment } from './windows.js';
import type { WindowsState } from './windows-state.js';

export type { RunDuration, RunDurationQuery } from './arm.js';
export type { ArmFault, ThrottleOptions } from './throttle.js';
export type { ArmRequestRecord, OsType, PowerState, RunCommandInvocation, RunCommandRecord, ScriptHandler, VmSpec } from './model.js';
export type { IdentityRequestRecord } from './identity.js';
export type { LogEvent, LogsFault, LogsRequestRecord, PartialErrorSpec, WorkspaceSpec } from './logs.js';
export type { RdpAssessment } from './windows.js';
export type { Certificate, WindowsState } from './windows-state.js';
export type { WindowsRunOptions } from './windows-runner.js';
export { trustEmulatorCa } from './tls.js';

export interface EmulatorOptions {
  /** 0 (default) picks a free port. */
  readonly armPort?: number;
  readonly identityPort?: number;
  /** How long a Run Command takes, unless the VM says otherwise. Default 50 ms. */
  readonly runLatencyMs?: number;
  /** How long each run lasts, drawn per run (benchmarks); a VM's own latency still wins. Overrides runLatencyMs. */
  readonly runDurationMs?: RunDuration;
  /**
   * Retry-After (whole seconds) on the 202 and on in-progress polls. Default 0, which the SDK
   * ignores (it then polls every `updateIntervalInMs`); 1 or more slows polling down like Azure.
   */
  readonly pollRetryAfterSeconds?: number;
  readonly throttle?: ThrottleOptions;
  /** Lifetime of issued tokens. Default 24 h, like managed-identity tokens. */
  readonly tokenLifetimeSeconds?: number;
  readonly tenantId?: string;
  /** Called after every ARM response (for `npm start` logging). */
  readonly onRequest?: (record: ArmRequestRecord) => void;
  /** Called after every Logs query API response. */
  readonly onLogsRequest?: (record: LogsRequestRecord) => void;
  /** How Windows VMs run payloads: the real scripts under PowerShell, with the Windows double. */
  readonly windows?: WindowsRunOptions;
}

/** Environment variables an app process needs to use the emulator. */
export interface EmulatorEnv {
  readonly AZURE_RESOURCE_MANAGER_ENDPOINT: string;
  /** The Logs API base including /v1, for `LogsQueryClient({ endpoint })`. */
  readonly AZURE_LOGS_ENDPOINT: string;
  readonly IDENTITY_ENDPOINT: string;
  readonly IDENTITY_HEADER: string;
  readonly NODE_EXTRA_CA_CERTS: string;
}

export interface VmSnapshot {
  readonly id: string;
  readonly name: string;
  readonly subscriptionId: string;
  readonly resourceGroup: string;
  readonly scaleSet: { readonly name: string; readonly instanceId: string } | null;
  readonly location: string;
  readonly tags: Readonly<Record<string, string>>;
  readonly osType: OsType;
  readonly computerName: string;
  readonly powerState: PowerState;
  readonly agentReady: boolean;
  readonly runLatencyMs: number;
  readonly runInProgress: boolean;
  /** A copy of the Windows state (null for Linux). */
  readonly windows: WindowsState | null;
  /** Whether an RDP client would connect right now: the emulator's ground truth. */
  readonly rdp: RdpAssessment | null;
}

export interface Emulator {
  /** https://127.0.0.1:PORT */
  readonly armEndpoint: string;
  /** https://127.0.0.1:PORT/v1: the Logs query API on the same server, used verbatim by LogsQueryClient. */
  readonly logsEndpoint: string;
  /** http://127.0.0.1:PORT/msi/token */
  readonly identityEndpoint: string;
  readonly identityHeader: string;
  readonly caPem: string;
  readonly caFile: string;
  readonly tenantId: string;
  /** The system-assigned identity's object id: the principal of tokens issued without client_id. */
  readonly systemPrincipal: string;
  env(): EmulatorEnv;
  /** Adds a VM and returns its resource id. */
  addVm(spec: VmSpec): string;
  vm(id: string): VmSnapshot;
  vmIds(): string[];
  setPowerState(id: string, state: PowerState): void;
  setAgentReady(id: string, ready: boolean): void;
  /** undefined: back to the emulator's default. */
  setRunLatency(id: string, ms: number | undefined): void;
  /** Draws each run's duration from `duration` (undefined: back to the default latency). */
  configureRunDuration(duration: RunDuration | undefined): void;
  /** Changes the Windows state in place (e.g. to break something mid-test). */
  updateWindows(id: string, change: (windows: WindowsState) => void): void;
  /** Every ARM request, in order of response. */
  readonly requests: readonly ArmRequestRecord[];
  /** Every accepted Run Command, updated when it finishes. */
  readonly runCommands: readonly RunCommandRecord[];
  readonly identityRequests: readonly IdentityRequestRecord[];
  /** Peak runs on one VM at once; a run refused with 409 Conflict counts as a second one. */
  readonly maxConcurrentRunsPerVm: number;
  injectArmFaults(fault: ArmFault): void;
  clearArmFaults(): void;
  /** Adds a Log Analytics workspace and returns its workspace id. */
  addWorkspace(spec: WorkspaceSpec): string;
  /** Appends rows to the workspace's `Event` table. */
  addEvents(workspaceId: string, events: readonly LogEvent[]): void;
  /** null: back to complete results. */
  setPartialError(workspaceId: string, partial: PartialErrorSpec | null): void;
  injectLogsFaults(fault: LogsFault): void;
  clearLogsFaults(): void;
  /** Every Logs query API request, in order of response. */
  readonly logsRequests: readonly LogsRequestRecord[];
  configureThrottle(options: ThrottleOptions): void;
  /** A token as the identity endpoint would issue it, for clients that bring their own credential. */
  issueToken(options?: { resource?: string; clientId?: string }): string;
  clearLogs(): void;
  stop(): Promise<void>;
}

const DEFAULT_LOCATION = 'westeurope';

class LocalAzure implements Emulator {
  public constructor(
    public readonly armEndpoint: string,
    public readonly identityEndpoint: string,
    public readonly identityHeader: string,
    public readonly caPem: string,
    public readonly caFile: string,
    private readonly arm: ArmService,
    private readonly tokens: TokenRegistry,
    private readonly buckets: TokenBuckets,
    private readonly faults: FaultQueue,
    private readonly logs: LogsService,
    private readonly logsFaults: FaultQueue,
    private readonly identityLog: IdentityRequestRecord[],
    private readonly shutdown: () => Promise<void>,
    private readonly defaultLatencyMs: number,
  ) {}

  public get logsEndpoint(): string {
    return `${this.armEndpoint}/v1`;
  }

  public get tenantId(): string {
    return this.tokens.tenantId;
  }

  public get systemPrincipal(): string {
    return this.tokens.systemIdentity.objectId;
  }

  public env(): EmulatorEnv {
    return {
      AZURE_RESOURCE_MANAGER_ENDPOINT: this.armEndpoint,
      AZURE_LOGS_ENDPOINT: this.logsEndpoint,
      IDENTITY_ENDPOINT: this.identityEndpoint,
      IDENTITY_HEADER: this.identityHeader,
      NODE_EXTRA_CA_CERTS: this.caFile,
    };
  }

  public addVm(spec: VmSpec): string {
    const name = spec.name ?? (spec.scaleSet ? `${spec.scaleSet.name}_${spec.scaleSet.instanceId}` : undefined);
    if (name === undefined || name === '') throw new Error('addVm: a VM needs a name');
    const osType = spec.osType ?? 'Windows';
    const computerName = spec.computerName ?? (spec.scaleSet ? `${spec.scaleSet.name.slice(0, 9)}${spec.scaleSet.instanceId.padStart(6, '0')}` : name.slice(0, 15));
    const windows = osType === 'Windows' ? structuredClone(spec.windows ?? healthyWindows({ computerName })) : null;
    const vm: VmRecord = {
      id: vmResourceId({ subscriptionId: spec.subscriptionId, resourceGroup: spec.resourceGroup, name: spec.scaleSet ? spec.scaleSet.name : name, scaleSet: spec.scaleSet ?? null }),
      subscriptionId: spec.subscriptionId,
      resourceGroup: spec.resourceGroup,
      name,
      scaleSet: spec.scaleSet ?? null,
      location: spec.location ?? DEFAULT_LOCATION,
      tags: { ...spec.tags },
      osType,
      vmId: randomUUID(),
      computerName: windows?.computerName ?? computerName,
      createdAt: new Date(),
      osDiskName: `${name}_OsDisk_1_${randomBytes(16).toString('hex')}`,
      powerState: spec.powerState ?? 'running',
      agentReady: spec.agentReady ?? true,
      runLatencyMs: spec.runLatencyMs,
      windows,
      otherScript: spec.otherScript,
      activeRun: null,
    };
    this.arm.addVm(vm);
    return vm.id;
  }

  private record(id: string): VmRecord {
    const vm = this.arm.findVm(id);
    if (!vm) throw new Error(`no VM ${id} in the emulator`);
    return vm;
  }

  public vm(id: string): VmSnapshot {
    const vm = this.record(id);
    const windows = vm.windows === null ? null : structuredClone(vm.windows);
    return {
      id: vm.id,
      name: vm.name,
      subscriptionId: vm.subscriptionId,
      resourceGroup: vm.resourceGroup,
      scaleSet: vm.scaleSet,
      location: vm.location,
      tags: { ...vm.tags },
      osType: vm.osType,
      computerName: vm.computerName,
      powerState: vm.powerState,
      agentReady: vm.agentReady,
      runLatencyMs: vm.runLatencyMs ?? this.defaultLatencyMs,
      runInProgress: vm.activeRun !== null,
      windows,
      rdp: windows === null ? null : assessRdp({ ...windows, now: new Date().toISOString() }),
    };
  }

  public vmIds(): string[] {
    return [...this.arm.vms.values()].map((vm) => vm.id);
  }

  public setPowerState(id: string, state: PowerState): void {
    this.record(id).powerState = state;
  }

  public setAgentReady(id: string, ready: boolean): void {
    this.record(id).agentReady = ready;
  }

  public setRunLatency(id: string, ms: number | undefined): void {
    this.record(id).runLatencyMs = ms;
  }

  public configureRunDuration(duration: RunDuration | undefined): void {
    this.arm.runDuration = duration;
  }

  public updateWindows(id: string, change: (windows: WindowsState) => void): void {
    const vm = this.record(id);
    if (vm.windows === null) throw new Error(`${id} is not a Windows VM`);
    change(vm.windows);
  }

  public get requests(): readonly ArmRequestRecord[] {
    return this.arm.requests;
  }

  public get runCommands(): readonly RunCommandRecord[] {
    return this.arm.runCommands;
  }

  public get identityRequests(): readonly IdentityRequestRecord[] {
    return this.identityLog;
  }

  public get maxConcurrentRunsPerVm(): number {
    return this.arm.maxConcurrentRunsPerVm;
  }

  public injectArmFaults(fault: ArmFault): void {
    this.faults.add(fault);
  }

  public clearArmFaults(): void {
    this.faults.clear();
  }

  public addWorkspace(spec: WorkspaceSpec): string {
    return this.logs.addWorkspace(spec);
  }

  public addEvents(workspaceId: string, events: readonly LogEvent[]): void {
    this.logs.addEvents(workspaceId, events);
  }

  public setPartialError(workspaceId: string, partial: PartialErrorSpec | null): void {
    this.logs.setPartialError(workspaceId, partial);
  }

  public injectLogsFaults(fault: LogsFault): void {
    this.logsFaults.add(fault);
  }

  public clearLogsFaults(): void {
    this.logsFaults.clear();
  }

  public get logsRequests(): readonly LogsRequestRecord[] {
    return this.logs.requests;
  }

  public configureThrottle(options: ThrottleOptions): void {
    this.buckets.configure(options);
  }

  public issueToken(options: { resource?: string; clientId?: string } = {}): string {
    return this.tokens.issue(options.resource ?? 'https://management.azure.com', options.clientId).token;
  }

  public clearLogs(): void {
    this.arm.requests.length = 0;
    this.arm.runCommands.length = 0;
    this.identityLog.length = 0;
    this.logs.clearRequests();
    this.arm.maxConcurrentRunsPerVm = 0;
  }

  public stop(): Promise<void> {
    return this.shutdown();
  }
}

export async function startEmulator(options: EmulatorOptions = {}): Promise<Emulator> {
  const material = await createTlsMaterial();
  const dir = await mkdtemp(join(tmpdir(), 'rdp-remediator-emulator-'));
  const caFile = join(dir, 'emulator-ca.pem');
  await writeFile(caFile, material.caPem, 'utf8');

  const tokens = new TokenRegistry(options.tokenLifetimeSeconds ?? 24 * 3600, options.tenantId);
  const buckets = new TokenBuckets(options.throttle ?? {});
  const faults = new FaultQueue();
  const identityHeader = randomBytes(24).toString('hex');
  const runLatencyMs = options.runLatencyMs ?? 50;

  let armEndpoint = '';
  const ownAudiences = (): string[] => {
    const port = new URL(armEndpoint).port;
    return [armEndpoint, `https://localhost:${port}`];
  };
  const runWindowsScript = windowsScriptRunner(options.windows ?? {});
  const arm = new ArmService(tokens, buckets, faults, { runWindowsScript, runLatencyMs, runDurationMs: options.runDurationMs, pollRetryAfterSeconds: options.pollRetryAfterSeconds ?? 0, onRequest: options.onRequest }, ownAudiences);
  // Logs faults have their own queue, so a test can fail Logs queries without touching ARM calls.
  const logsFaults = new FaultQueue();
  const logs = new LogsService(tokens, logsFaults, { onRequest: options.onLogsRequest, resourceExists: (id) => arm.findVm(id) !== undefined }, ownAudiences);

  // One HTTPS server: ARM paths start with /subscriptions, the Logs API's with /v1.
  const armServer = https.createServer({ cert: material.certPem, key: material.keyPem }, (req, res) => {
    const service = /^\/v1(?:[/?]|$)/i.test(req.url ?? '') ? logs : arm;
    service.handle(req, res).catch((error: unknown) => {
      if (!res.headersSent) res.writeHead(500);
      res.end();
      process.emitWarning(`emulator: ${error instanceof Error ? error.message : String(error)}`);
    });
  });
  await new Promise<void>((resolve, reject) => {
    armServer.once('error', reject);
    armServer.listen(options.armPort ?? 0, '127.0.0.1', () => {
      armServer.off('error', reject);
      resolve();
    });
  });
  const address = armServer.address();
  if (address === null || typeof address === 'string') throw new Error('ARM server has no TCP address');
  armEndpoint = `https://127.0.0.1:${address.port}`;

  const identity = await startIdentityServer(tokens, identityHeader, options.identityPort ?? 0);

  let stopped: Promise<void> | undefined;
  const shutdown = (): Promise<void> => {
    stopped ??= (async () => {
      arm.stop();
      logs.stop();
      const close = (server: https.Server | typeof identity.server): Promise<void> =>
        new Promise((resolve) => {
          server.close(() => resolve());
          server.closeAllConnections();
        });
      await Promise.all([close(armServer), close(identity.server)]);
      await rm(dir, { recursive: true, force: true });
    })();
    return stopped;
  };

  return new LocalAzure(armEndpoint, identity.endpoint, identityHeader, material.caPem, caFile, arm, tokens, buckets, faults, logs, logsFaults, identity.requests, shutdown, runLatencyMs);
}

export { AZURE_VARIANTS, DEMO_FLEET, MATRIX_SCENARIOS, scenarioVm, seedDemoFleet, WINDOWS_SCENARIOS, windowsScenario } from './fleet.js';
export type { AzureVariant, DemoScenario, MatrixScenario, Scenario, ScenarioTarget, WindowsScenario } from './fleet.js';
