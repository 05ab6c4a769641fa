/**
 * The compute adapter: reads a VM and runs a command on it through the real
 * @azure/arm-compute client, converting SDK shapes to the core's and classifying errors.
 *
 * Exactly once: a Run Command POST is not idempotent, so the client never re-sends it on its
 * own (see armRetryPolicy). When its answer is lost (reset, dropped, timed out, 5xx) or the
 * polls fail after ARM took it, the adapter finds the run in the VM's instance view by the
 * RunId and payload kind our result line carries, waits for it (bounded) and returns its
 * output. When it cannot tell, it throws RunCommandOutcomeUnknownError and remembers the POST,
 * so a later call for the same payload on the VM looks again instead of sending it twice, and
 * a 409 right after our own unanswered POST waits for our run rather than counting as busy.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { ComputeManagementClient, type InstanceViewStatus, type RunCommandInput, type RunCommandResult, type VirtualMachineExtensionInstanceView, type VirtualMachineInstanceView } from '@azure/arm-compute';
import { bearerTokenAuthenticationPolicyName, createDefaultHttpClient, createPipelineRequest, isRestError, RestError, type HttpClient, type PipelineRequest, type PipelineResponse } from '@azure/core-rest-pipeline';
import * as z from 'zod';
import type { TokenCredential } from '@azure/identity';
import { parseVmResourceId, type VmRef } from '../core/resource-id.js';
import type { OsType, VmView } from '../core/vm.js';
import { ComputeError, DependencyTimeoutError, errorMessage, RunCommandOutcomeUnknownError, type ComputeFailureKind, type RunCommandOutcomeReason } from '../errors.js';
import type { RunCommandPayload } from '../payloads/compose.js';
import { armRetryPolicy, deadlinePolicy, DEFAULT_BOUNDS, isRunCommandPost, tryTimeoutPolicy, wasNeverSent, type ArmBounds, type PipelinePolicy } from './pacing.js';
import { nextPollDelayMs, operationDurationMs, RunDurations } from './run-command-polls.js';
import { VmViewBatcher, type ListedVm, type VmViewBatchOptions } from './vm-views.js';
import { recordRunCommandDuration } from '../telemetry/metrics.js';
import { traceRunCommand } from '../telemetry/run-command.js';
import { judgeObservation, observeRunCommandExtension, runIdentity, sameRun, streamsOf, type RunIdentity, type Verdict } from './run-command-outcome.js';

export interface RunCommandOutput {
  readonly stdout: string;
  readonly stderr: string;
  /**
   * Where the output came from: the operation's result, or the VM's instance view after the
   * POST's answer was lost. Absent from gateways that do not say (test fakes).
   */
  readonly source?: 'operation' | 'instance-view';
  /** The POSTs this call sent (absent from gateways that do not count). */
  readonly posts?: RunCommandPostCount;
}

/** POSTs …/runCommand one call sent, by what ARM's answer says about a run having started. */
export interface RunCommandPostCount {
  readonly sent: number;
  /** ARM answered 2xx: a run started. */
  readonly accepted: number;
  /** ARM answered 4xx (409, 429, …) or no connection was made: no run started. */
  readonly refused: number;
  /** No answer, a reset, a timeout or a 5xx: a run may have started. */
  readonly ambiguous: number;
}

export type RunCommandPostOutcome = 'accepted' | 'refused' | 'ambiguous';

export interface RunCommandPostEvent {
  readonly vm: string;
  readonly runId: string | null;
  readonly payload: string | null;
  /** 1 for this call's first POST. */
  readonly attempt: number;
  readonly outcome: RunCommandPostOutcome;
  readonly statusCode: number | null;
}

export interface RunCommandOptions {
  readonly abortSignal?: AbortSignal;
  /** Called for every POST …/runCommand sent on the call's behalf, once its answer (or its lack) is known. */
  readonly onRunCommandPosted?: (event: RunCommandPostEvent) => void;
}

/** What the pipeline needs from Azure compute. Injected, so tests and the CLI can choose. */
export interface ComputeGateway {
  getVm(ref: VmRef): Promise<VmView>;
  runCommand(ref: VmRef, payload: RunCommandPayload, options?: RunCommandOptions): Promise<RunCommandOutput>;
  /**
   * The VMs of a subscription or of one of its resource groups, each with its status. ARM's VM
   * lists leave Uniform scale set instances out. Optional: the pipeline never lists (so its test
   * doubles need not); the fleet scan does.
   */
  listVmViews?(scope: VmListScope): Promise<readonly VmView[]>;
}

/** What a VM listing covers: a subscription, or one resource group of it. */
export interface VmListScope {
  readonly subscriptionId: string;
  readonly resourceGroup?: string;
}

export interface ReconcileOptions {
  /** How long to look for our run in the instance view after an ambiguous POST. Default 10 min. */
  readonly timeoutMs?: number;
  /** How long a run may take to show there after the POST. Default 60 s. */
  readonly settleMs?: number;
  /** Clock difference allowed between this host and ARM's status times. Default 30 s. */
  readonly clockSkewMs?: number;
  /** Between two instance-view reads. Default: pollIntervalMs. */
  readonly intervalMs?: number;
}

export interface ArmComputeGatewayOptions {
  /** ARM endpoint, e.g. https://management.azure.com or a sovereign cloud's. */
  readonly endpoint: string;
  /** Token audience; the scope requested is `${audience}/.default`. */
  readonly audience: string;
  /** Poll interval when ARM sends no Retry-After and the planned polls are past. Default 10 s. */
  readonly pollIntervalMs?: number;
  /** No poll of a run before this (Run Command's known minimum; the app's default is 20 s). Default 0. */
  readonly minRunMs?: number;
  /** Reads of many VMs of one subscription as one listing (see vm-views.ts). Default: 10 reads within 30 s; listThreshold 0 turns it off. */
  readonly vmViews?: Pick<VmViewBatchOptions, 'listThreshold' | 'ttlMs' | 'windowMs'>;
  /** Retries of reads and of definitely refused POSTs (overrides bounds.maxRetries). */
  readonly maxRetries?: number;
  /** Policies every attempt passes through (client-side pacing). */
  readonly additionalPolicies?: readonly PipelinePolicy[];
  /** Per-try timeout, retry budget and per-operation deadline; default DEFAULT_BOUNDS.arm. */
  readonly bounds?: Partial<ArmBounds>;
  /** Longest wait for one Run Command operation to end. Default 20 min. */
  readonly runTimeoutMs?: number;
  readonly reconcile?: ReconcileOptions;
}

/** A POST of ours whose outcome is not known, remembered per VM until it is (or the longest run would be over). */
interface PendingRun {
  readonly identity: RunIdentity;
  readonly postedAt: number;
  readonly expiresAt: number;
}

/** The POSTs of one runCommand call, seen by the pipeline as they go on the wire. */
interface PostContext {
  readonly posts: { sentAt: number; outcome: RunCommandPostOutcome; statusCode: number | null; answer: AcceptedAnswer | null }[];
  readonly onPosted: (outcome: RunCommandPostOutcome, statusCode: number | null) => void;
}

/** Where ARM said to follow an accepted Run Command, from its 202's headers. */
interface AcceptedAnswer {
  readonly at: number;
  readonly asyncOperation: string | undefined;
  readonly location: string | undefined;
  readonly retryAfterMs: number | undefined;
}

/** Run Command stops a script after 90 minutes; a run of ours unaccounted for is over by then. */
const PENDING_TTL_MS = 95 * 60_000;
const DEFAULT_RUN_TIMEOUT_MS = 20 * 60_000;
const DEFAULT_POLL_INTERVAL_MS = 10_000;
/** The app passes RUN_COMMAND_MIN_SECONDS (20 s by default); a gateway built without it polls from the start. */
const DEFAULT_MIN_RUN_MS = 0;
const DEFAULT_VM_VIEWS = { listThreshold: 10, ttlMs: 30_000 } as const;

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve) => {
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });

export class ArmComputeGateway implements ComputeGateway {
  private readonly clients = new Map<string, ComputeManagementClient>();
  /** Per VM key: our POSTs whose outcome is unknown, oldest first. */
  private readonly pending = new Map<string, PendingRun[]>();
  private readonly postContext = new AsyncLocalStorage<PostContext>();
  private readonly bounds: ArmBounds;
  /** How long recent runs took, per payload kind: where the next runs' polls go. */
  private readonly durations = new RunDurations();
  private readonly views: VmViewBatcher;
  private httpClient: HttpClient | undefined;

  public constructor(
    private readonly credential: TokenCredential,
    private readonly options: ArmComputeGatewayOptions,
  ) {
    this.bounds = { ...DEFAULT_BOUNDS.arm, ...options.bounds, ...(options.maxRetries === undefined ? {} : { maxRetries: options.maxRetries }) };
    this.views = new VmViewBatcher({ getOne: (ref) => this.readVm(ref), listSubscription: (subscriptionId) => this.listVms(subscriptionId) }, { ...DEFAULT_VM_VIEWS, ...options.vmViews });
  }

  /** VM reads answered by a GET, and by a subscription listing (see vm-views.ts). */
  public get vmReadStats() {
    return this.views.stats;
  }

  private client(subscriptionId: string): ComputeManagementClient {
    const key = subscriptionId.toLowerCase();
    let client = this.clients.get(key);
    if (!client) {
      const perRetry = [...(this.options.additionalPolicies ?? []), this.postObserver(), tryTimeoutPolicy(this.bounds.tryTimeoutMs)];
      client = new ComputeManagementClient(this.credential, subscriptionId, {
        endpoint: this.options.endpoint,
        // The v25 client asks for management.azure.com whatever the endpoint; sovereign clouds need their own audience.
        credentials: { scopes: [`${this.options.audience.replace(/\/+$/, '')}/.default`] },
        retryOptions: { maxRetries: this.bounds.maxRetries, retryDelayInMs: this.bounds.retryDelayMs, maxRetryDelayInMs: this.bounds.maxRetryDelayMs },
        additionalPolicies: perRetry.map((policy) => ({ policy, position: 'perRetry' as const })),
        userAgentOptions: { userAgentPrefix: 'rdp-remediator' },
      });
      // The SDK's default retry re-sends a POST whose answer was lost; ours does not (see armRetryPolicy).
      client.pipeline.removePolicy({ name: 'defaultRetryPolicy' });
      client.pipeline.addPolicy(armRetryPolicy(this.bounds), { phase: 'Retry' });
      // The deadline covers the token too (the bearer policy gets a token once per call, before the retries).
      client.pipeline.addPolicy(deadlinePolicy('arm', this.bounds.operationTimeoutMs), { beforePolicies: [bearerTokenAuthenticationPolicyName] });
      this.clients.set(key, client);
    }
    return client;
  }

  /** Sees every Run Command POST on the wire (after pacing, inside the try timeout) and tells the call that sent it. */
  private postObserver(): PipelinePolicy {
    return {
      name: 'rdpRemediatorRunCommandPosts',
      sendRequest: async (request: PipelineRequest, next) => {
        const context = isRunCommandPost(request) ? this.postContext.getStore() : undefined;
        if (!context) return next(request);
        const record = { sentAt: Date.now(), outcome: 'ambiguous' as RunCommandPostOutcome, statusCode: null as number | null, answer: null as AcceptedAnswer | null };
        context.posts.push(record);
        try {
          const response = await next(request);
          record.statusCode = response.status;
          if (response.status === 202) record.answer = acceptedAnswer(response);
          record.outcome = response.status >= 200 && response.status < 300 ? 'accepted' : response.status >= 400 && response.status < 500 && response.status !== 408 ? 'refused' : 'ambiguous';
          return response;
        } catch (error) {
          record.outcome = wasNeverSent(error) ? 'refused' : 'ambiguous';
          throw error;
        } finally {
          context.onPosted(record.outcome, record.statusCode);
        }
      },
    };
  }

  public getVm(ref: VmRef): Promise<VmView> {
    return this.views.get(ref);
  }

  /** One VM with its instance view. */
  private async readVm(ref: VmRef): Promise<VmView> {
    try {
      const client = this.client(ref.subscriptionId);
      if (ref.kind === 'vm') {
        const vm = await client.virtualMachines.get(ref.resourceGroup, ref.name, { expand: 'instanceView' });
        return toVmView(ref, vm.location, vm.tags, vm.storageProfile?.osDisk?.osType, vm.instanceView);
      }
      const vm = await client.virtualMachineScaleSetVMs.get(ref.resourceGroup, ref.scaleSetName, ref.instanceId, { expand: 'instanceView' });
      return toVmView(ref, vm.location, vm.tags, vm.storageProfile?.osDisk?.osType, vm.instanceView);
    } catch (error) {
      throw toAdapterError(error, { operation: 'get', vm: ref.id });
    }
  }

  /** One Run Command, as one span (SPAN.runCommand) over its POST, its polls and any reconciliation. */
  public runCommand(ref: VmRef, payload: RunCommandPayload, options: RunCommandOptions = {}): Promise<RunCommandOutput> {
    const identity = runIdentity(payload);
    return traceRunCommand(ref.key, identity?.kind ?? null, () => this.runCommandOnce(ref, payload, identity, options));
  }

  private async runCommandOnce(ref: VmRef, payload: RunCommandPayload, identity: RunIdentity | null, options: RunCommandOptions): Promise<RunCommandOutput> {
    const counts = { sent: 0, accepted: 0, refused: 0, ambiguous: 0 };
    const earlier = this.pendingFor(ref).find((run) => sameRun(run.identity, identity));
    if (earlier) {
      // An earlier POST of this very payload has no known outcome: look for that run, never send it again.
      return this.reconcile(ref, earlier, identity, counts, options, undefined);
    }
    const input: RunCommandInput = {
      commandId: payload.commandId,
      script: [...payload.script],
      parameters: payload.parameters.map((p) => ({ name: p.name, value: p.value })),
    };
    for (let round = 1; ; round++) {
      const context: PostContext = {
        posts: [],
        onPosted: (outcome, statusCode) => {
          counts.sent++;
          counts[outcome]++;
          options.onRunCommandPosted?.({ vm: ref.id, runId: identity?.runId ?? null, payload: identity?.kind ?? null, attempt: counts.sent, outcome, statusCode });
        },
      };
      const runTimeout = new AbortController();
      const timer = setTimeout(() => runTimeout.abort(), this.options.runTimeoutMs ?? DEFAULT_RUN_TIMEOUT_MS);
      const abortSignal = options.abortSignal ? AbortSignal.any([options.abortSignal, runTimeout.signal]) : runTimeout.signal;
      try {
        const output = await this.postContext.run(context, () => this.startRun(ref, input, abortSignal, context, identity?.kind ?? null));
        this.forget(ref, identity);
        return { ...output, source: 'operation', posts: { ...counts } };
      } catch (error) {
        const last = context.posts.at(-1);
        if (last === undefined || last.outcome === 'refused') {
          // ARM did not take this POST (or it never left): nothing of it runs on the VM.
          const mine = this.pendingFor(ref).at(-1);
          if (round === 1 && mine && isRunInProgressConflict(error) && !options.abortSignal?.aborted) {
            // A 409 right after our own unanswered POST: the run holding the VM may be ours, not someone else's.
            const verdict = await this.awaitRun(ref, mine, options.abortSignal);
            if (verdict.kind === 'ours') {
              this.forget(ref, mine.identity);
              continue; // our earlier run is over and this POST never ran: send it now
            }
          }
          throw toAdapterError(error, { operation: 'runCommand', vm: ref.id });
        }
        if (options.abortSignal?.aborted) {
          this.remember(ref, identity, last.sentAt);
          throw error;
        }
        if (last.outcome === 'accepted' && isOperationFailure(error)) {
          this.forget(ref, identity);
          throw classifyComputeError(error, { operation: 'runCommand', vm: ref.id });
        }
        const entry = this.remember(ref, identity, last.sentAt);
        if (runTimeout.signal.aborted) {
          throw new RunCommandOutcomeUnknownError('still-running', `Run Command on ${ref.id} did not end within ${this.options.runTimeoutMs ?? DEFAULT_RUN_TIMEOUT_MS} ms`, outcomeContext(ref, identity, counts), { cause: error });
        }
        // Accepted but the polls failed, or no usable answer: the run may be going on the VM.
        return await this.reconcile(ref, entry, identity, counts, options, error);
      } finally {
        clearTimeout(timer);
      }
    }
  }

  /**
   * Sends the POST through the SDK (its request shape, its errors), then follows the operation
   * itself over the client's own pipeline (token, pacing, retries, bounds): the SDK's poller
   * reads once right after the 202, then every interval, then GETs the result, while this
   * schedule polls by Run Command's minimum, ARM's Retry-After and the durations of recent
   * runs (run-command-polls.ts), and takes the output from the final status.
   */
  private async startRun(ref: VmRef, input: RunCommandInput, abortSignal: AbortSignal, context: PostContext, kind: string | null): Promise<RunCommandOutput> {
    const client = this.client(ref.subscriptionId);
    const poller =
      ref.kind === 'vm'
        ? client.virtualMachines.runCommand(ref.resourceGroup, ref.name, input, { abortSignal })
        : client.virtualMachineScaleSetVMs.runCommand(ref.resourceGroup, ref.scaleSetName, ref.instanceId, input, { abortSignal });
    await poller.submitted();
    if (poller.isDone) {
      // ARM answered the POST itself (200): the result is in that answer.
      const result: RunCommandResult = await poller.pollUntilDone({ abortSignal });
      return toRunCommandOutput(result.value ?? []);
    }
    const answer = context.posts.at(-1)?.answer ?? null;
    const pollUrl = answer?.asyncOperation ?? answer?.location;
    if (!answer || pollUrl === undefined) throw new Error(`Run Command on ${ref.id}: ARM accepted the run but named no operation to follow`);
    let retryAfterMs = answer.retryAfterMs;
    for (;;) {
      const delay = nextPollDelayMs(Date.now() - answer.at, this.durations.planned(kind), retryAfterMs, { minRunMs: this.options.minRunMs ?? DEFAULT_MIN_RUN_MS, intervalMs: this.options.pollIntervalMs ?? DEFAULT_POLL_INTERVAL_MS });
      await sleep(delay, abortSignal);
      abortSignal.throwIfAborted();
      const status = await this.pollRun(client, pollUrl, answer.asyncOperation !== undefined, abortSignal);
      retryAfterMs = status.retryAfterMs;
      if (status.state === 'running') continue;
      if (status.state === 'failed') throw new RunCommandOperationFailedError(status.code, status.message, ref.id);
      if (status.durationMs !== undefined) {
        this.durations.record(kind, status.durationMs);
        recordRunCommandDuration(kind, status.durationMs);
      }
      if (status.output) return toRunCommandOutput(status.output);
      // Succeeded without the output in the status: the result is at the Location URL (the SDK's one final GET).
      if (answer.location === undefined) throw new Error(`Run Command on ${ref.id}: the operation succeeded but ARM gave neither its output nor a Location`);
      const final = await this.pollRun(client, answer.location, false, abortSignal);
      if (final.state === 'succeeded' && final.output) return toRunCommandOutput(final.output);
      throw new Error(`Run Command on ${ref.id}: the operation succeeded but its result could not be read`);
    }
  }

  /** One GET of the operation (Azure-AsyncOperation, or Location when that is all ARM gave). */
  private async pollRun(client: ComputeManagementClient, url: string, asyncOperation: boolean, abortSignal: AbortSignal): Promise<OperationStatus> {
    this.httpClient ??= createDefaultHttpClient();
    const request = createPipelineRequest({ url, method: 'GET', abortSignal });
    const response = await client.pipeline.sendRequest(this.httpClient, request);
    return readOperationStatus(response, asyncOperation);
  }

  /**
   * The VMs of a subscription (listAll with statusOnly=true: the pages carry each instance view)
   * or of a resource group (list: models only, so each view is read as getVm reads it, which
   * turns many reads into one subscription listing). Through the same bounded, paced client as
   * every call. A VM deleted between the list and its read is left out.
   */
  public async listVmViews(scope: VmListScope): Promise<readonly VmView[]> {
    const { subscriptionId, resourceGroup } = scope;
    const context = { operation: 'list', subscriptionId, ...(resourceGroup === undefined ? {} : { resourceGroup }) };
    // Reads settle into values, never rejections, so none goes unhandled while the pages load.
    const readOne = async (ref: VmRef): Promise<{ readonly view: VmView | null } | { readonly error: unknown }> => {
      try {
        return { view: await this.getVm(ref) };
      } catch (error) {
        return error instanceof ComputeError && error.kind === 'not-found' ? { view: null } : { error };
      }
    };
    const reads: Promise<{ readonly view: VmView | null } | { readonly error: unknown }>[] = [];
    try {
      const client = this.client(subscriptionId);
      const pages = resourceGroup === undefined ? client.virtualMachines.listAll({ statusOnly: 'true' }) : client.virtualMachines.list(resourceGroup);
      for await (const vm of pages) {
        const ref = parseVmResourceId(vm.id ?? '');
        if (!ref.success) continue;
        const osType = vm.storageProfile?.osDisk?.osType;
        const instanceView = vm.instanceView;
        const listed = instanceView !== undefined && (osType !== undefined || instanceView.osName !== undefined);
        reads.push(listed ? Promise.resolve({ view: toVmView(ref.data, vm.location, vm.tags, osType, instanceView) }) : readOne(ref.data));
      }
    } catch (error) {
      await Promise.all(reads);
      throw toAdapterError(error, context);
    }
    const views: VmView[] = [];
    for (const read of await Promise.all(reads)) {
      if ('error' in read) throw toAdapterError(read.error, context);
      if (read.view !== null) views.push(read.view);
    }
    return views;
  }

  /** Every VM of the subscription with its status, in pages (listAll with statusOnly=true). */
  private async listVms(subscriptionId: string): Promise<ReadonlyMap<string, ListedVm>> {
    const client = this.client(subscriptionId);
    const listed = new Map<string, ListedVm>();
    for await (const vm of client.virtualMachines.listAll({ statusOnly: 'true' })) {
      if (vm.id === undefined) continue;
      const osType = vm.storageProfile?.osDisk?.osType;
      const instanceView = vm.instanceView;
      listed.set(vm.id.toLowerCase(), (ref) => (instanceView === undefined || (osType === undefined && instanceView.osName === undefined) ? null : toVmView(ref, vm.location, vm.tags, osType, instanceView)));
    }
    return listed;
  }

  /** Our POSTs on this VM whose outcome is unknown and whose run could still be going or be found. */
  private pendingFor(ref: VmRef): readonly PendingRun[] {
    const now = Date.now();
    const live = (this.pending.get(ref.key) ?? []).filter((run) => run.expiresAt > now);
    if (live.length) this.pending.set(ref.key, live);
    else this.pending.delete(ref.key);
    return live;
  }

  /**
   * Remembers a POST with no known outcome, so the same payload is never sent again while its
   * run may still be found. A payload without a RunId cannot be found again: the caller gets
   * `unidentifiable` and nothing is kept.
   */
  private remember(ref: VmRef, identity: RunIdentity | null, postedAt: number): PendingRun | null {
    if (identity === null) return null;
    const entry = { identity, postedAt, expiresAt: postedAt + PENDING_TTL_MS };
    this.pending.set(ref.key, [...this.pendingFor(ref).filter((run) => !sameRun(run.identity, identity)), entry]);
    return entry;
  }

  private forget(ref: VmRef, identity: RunIdentity | null): void {
    if (identity === null) return;
    const rest = this.pendingFor(ref).filter((run) => !sameRun(run.identity, identity));
    if (rest.length) this.pending.set(ref.key, rest);
    else this.pending.delete(ref.key);
  }

  private reconcileSettings() {
    const r = this.options.reconcile ?? {};
    return {
      timeoutMs: r.timeoutMs ?? 10 * 60_000,
      settleMs: r.settleMs ?? 60_000,
      clockSkewMs: r.clockSkewMs ?? 30_000,
      intervalMs: Math.max(10, r.intervalMs ?? this.options.pollIntervalMs ?? 5_000),
    };
  }

  /** Reads the instance view until it shows our run finished, or shows that it cannot be ours, or the wait bound runs out. */
  private async awaitRun(ref: VmRef, run: PendingRun, abortSignal: AbortSignal | undefined): Promise<Verdict | { kind: 'timeout'; last: Verdict | null; error: unknown }> {
    const settings = this.reconcileSettings();
    const deadline = new AbortController();
    const timer = setTimeout(() => deadline.abort(), settings.timeoutMs);
    const signal = abortSignal ? AbortSignal.any([abortSignal, deadline.signal]) : deadline.signal;
    let last: Verdict | null = null;
    let lastError: unknown;
    try {
      for (;;) {
        try {
          const view = await this.readInstanceView(ref, signal);
          lastError = undefined;
          last = judgeObservation(observeRunCommandExtension(view), run.identity, run.postedAt, Date.now(), settings);
          if (last.kind !== 'wait') return last;
        } catch (error) {
          if (abortSignal?.aborted) throw error;
          lastError = error;
        }
        if (signal.aborted) return { kind: 'timeout', last, error: lastError };
        await sleep(settings.intervalMs, signal);
        if (signal.aborted) return { kind: 'timeout', last, error: lastError };
      }
    } finally {
      clearTimeout(timer);
    }
  }

  private async reconcile(ref: VmRef, run: PendingRun | null, identity: RunIdentity | null, counts: RunCommandPostCount, options: RunCommandOptions, cause: unknown): Promise<RunCommandOutput> {
    const verdict = run === null ? ({ kind: 'not-ours', why: 'the payload carries no RunId' } as const) : await this.awaitRun(ref, run, options.abortSignal);
    const context = outcomeContext(ref, identity, counts);
    if (verdict.kind === 'ours') {
      this.forget(ref, identity);
      return { ...verdict.output, source: 'instance-view', posts: { ...counts } };
    }
    const what = `Run Command ${identity?.kind ?? 'script'} ${identity?.runId ?? '(no RunId)'} on ${ref.id}`;
    let reason: RunCommandOutcomeReason;
    let detail: string;
    if (identity === null) {
      reason = 'unidentifiable';
      detail = 'the payload carries no RunId, so its run cannot be found';
    } else if (verdict.kind === 'not-ours') {
      reason = 'not-found';
      detail = verdict.why;
    } else if (verdict.kind === 'wait') {
      reason = verdict.why === 'running' ? 'still-running' : 'not-found';
      detail = verdict.why;
    } else if (verdict.last === null) {
      reason = 'unreadable';
      detail = `the instance view could not be read: ${errorMessage(verdict.error)}`;
    } else if (verdict.last.kind === 'wait' && verdict.last.why === 'running') {
      reason = 'still-running';
      detail = `a run was still going after ${this.reconcileSettings().timeoutMs} ms`;
    } else {
      reason = 'not-found';
      detail = `no run of this payload showed in the instance view within ${this.reconcileSettings().timeoutMs} ms`;
    }
    // The probe only reads: sending it again changes nothing on the VM, so once no run of it can
    // be found its POST is forgotten and the next attempt sends it anew. (Kept, a probe whose
    // POST met a 5xx would block its job for PENDING_TTL_MS.) Only a fix is never sent twice.
    if (identity?.kind === 'probe' && reason !== 'still-running') this.forget(ref, identity);
    throw new RunCommandOutcomeUnknownError(reason, `${what}: outcome unknown (${detail})`, { ...context, cause: cause === undefined ? null : errorMessage(cause) }, { cause: verdict.kind === 'timeout' && verdict.error !== undefined ? verdict.error : cause });
  }

  private async readInstanceView(ref: VmRef, abortSignal: AbortSignal): Promise<{ extensions?: VirtualMachineExtensionInstanceView[] } | undefined> {
    const client = this.client(ref.subscriptionId);
    // GET with $expand=instanceView: the same read (and RBAC operation) as getVm.
    const vm =
      ref.kind === 'vm'
        ? await client.virtualMachines.get(ref.resourceGroup, ref.name, { expand: 'instanceView', abortSignal })
        : await client.virtualMachineScaleSetVMs.get(ref.resourceGroup, ref.scaleSetName, ref.instanceId, { expand: 'instanceView', abortSignal });
    return vm.instanceView;
  }
}

/** The operation ended Failed or Canceled, as its final status says (code and message are ARM's). */
export class RunCommandOperationFailedError extends Error {
  public override readonly name = 'RunCommandOperationFailedError';
  public constructor(
    public readonly code: string | undefined,
    message: string,
    public readonly vm: string,
  ) {
    super(`Run Command on ${vm} failed: ${message}`);
  }
}

/**
 * The wait a 202 or a poll answer asks for before the next poll (Retry-After in seconds); none
 * when absent, zero or unreadable. (pacing.ts's retryAfterMs reads the one a 429/503 carries.)
 */
function pollRetryAfterMs(response: PipelineResponse): number | undefined {
  const seconds = Number(response.headers.get('retry-after'));
  return Number.isFinite(seconds) && seconds > 0 ? seconds * 1000 : undefined;
}

function acceptedAnswer(response: PipelineResponse): AcceptedAnswer {
  return {
    at: Date.now(),
    asyncOperation: response.headers.get('azure-asyncoperation') ?? undefined,
    location: response.headers.get('location') ?? undefined,
    retryAfterMs: pollRetryAfterMs(response),
  };
}

const StatusEntrySchema = z.object({ code: z.string().optional(), level: z.string().optional(), displayStatus: z.string().optional(), message: z.string().optional() }).loose();
/** An Azure-AsyncOperation status: `{status, startTime, endTime, properties: {output}, error}`. */
const AsyncOperationSchema = z
  .object({
    status: z.string(),
    startTime: z.string().optional(),
    endTime: z.string().optional(),
    properties: z.object({ output: z.object({ value: z.array(StatusEntrySchema).optional() }).loose().optional() }).loose().optional(),
    error: z.object({ code: z.string().optional(), message: z.string().optional() }).loose().optional(),
  })
  .loose();
/** The Location URL's answer once done: a RunCommandResult. */
const RunCommandResultSchema = z.object({ value: z.array(StatusEntrySchema).optional() }).loose();

type OperationStatus =
  | { readonly state: 'running'; readonly retryAfterMs: number | undefined }
  | { readonly state: 'succeeded'; readonly output: InstanceViewStatus[] | undefined; readonly durationMs: number | undefined; readonly retryAfterMs: undefined }
  | { readonly state: 'failed'; readonly code: string | undefined; readonly message: string; readonly retryAfterMs: undefined };

/** What one poll answer says; an answer that is not a status (4xx/5xx after retries, no JSON) throws a RestError. */
export function readOperationStatus(response: PipelineResponse, asyncOperation: boolean): OperationStatus {
  const retryAfterMs = pollRetryAfterMs(response);
  const text = response.bodyAsText ?? '';
  const json = (): unknown => {
    try {
      return text === '' ? undefined : JSON.parse(text);
    } catch {
      return undefined;
    }
  };
  if (response.status >= 400 || response.status < 200) {
    const envelope = json() as { error?: { code?: unknown; message?: unknown } } | undefined;
    const code = typeof envelope?.error?.code === 'string' ? envelope.error.code : undefined;
    const message = typeof envelope?.error?.message === 'string' ? envelope.error.message : `poll answered ${response.status}`;
    throw new RestError(message, { statusCode: response.status, ...(code === undefined ? {} : { code }), request: response.request, response });
  }
  if (!asyncOperation) {
    // The Location URL: 202 while running, 200 with the RunCommandResult once done.
    if (response.status === 202) return { state: 'running', retryAfterMs };
    const result = RunCommandResultSchema.safeParse(json());
    if (!result.success) throw new RestError('the Run Command result could not be read', { statusCode: response.status, request: response.request, response });
    return { state: 'succeeded', output: (result.data.value ?? []) as InstanceViewStatus[], durationMs: undefined, retryAfterMs: undefined };
  }
  const parsed = AsyncOperationSchema.safeParse(json());
  if (!parsed.success) throw new RestError('the operation status could not be read', { statusCode: response.status, request: response.request, response });
  const status = parsed.data.status.toLowerCase();
  if (status.includes('succeeded')) {
    return { state: 'succeeded', output: parsed.data.properties?.output?.value as InstanceViewStatus[] | undefined, durationMs: operationDurationMs(parsed.data.startTime, parsed.data.endTime), retryAfterMs: undefined };
  }
  if (status.includes('fail') || status.startsWith('cancel')) {
    return { state: 'failed', code: parsed.data.error?.code, message: parsed.data.error?.message ?? `the operation ended ${parsed.data.status}`, retryAfterMs: undefined };
  }
  return { state: 'running', retryAfterMs };
}

function outcomeContext(ref: VmRef, identity: RunIdentity | null, counts: RunCommandPostCount) {
  return { vm: ref.id, runId: identity?.runId ?? null, payload: identity?.kind ?? null, posts: { ...counts } };
}

/** 409 "Run command extension execution is in progress": a run holds the VM. */
function isRunInProgressConflict(error: unknown): boolean {
  return isRestError(error) && error.statusCode === 409 && /run command extension execution is in progress/i.test(error.message);
}

/** The operation itself ended Failed (the LRO's verdict), as opposed to a poll that got no answer. */
function isOperationFailure(error: unknown): boolean {
  if (error instanceof RunCommandOperationFailedError) return true;
  return !isRestError(error) && !(error instanceof DependencyTimeoutError) && /long-running operation has failed/i.test(errorMessage(error));
}

function toAdapterError(error: unknown, context: Record<string, unknown>): Error {
  return error instanceof DependencyTimeoutError ? error : classifyComputeError(error, context);
}

/** StdOut and StdErr substatuses of a RunCommandResult. */
export function toRunCommandOutput(statuses: readonly InstanceViewStatus[]): RunCommandOutput {
  return streamsOf(statuses);
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
