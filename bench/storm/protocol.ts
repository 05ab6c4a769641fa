/**
 * What the storm orchestrator and its child processes (the emulator process, the app instances)
 * say to each other over Node's IPC channel: one schema per method for its parameters and its
 * result, checked on arrival on both sides, plus the events a child sends on its own.
 */
import type { ChildProcess } from 'node:child_process';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { z } from 'zod';

// ---------------------------------------------------------------------------------------------
// Envelopes

const CallSchema = z.object({ kind: z.literal('call'), id: z.number().int(), method: z.string(), params: z.unknown() });
const ReplySchema = z.union([
  z.object({ kind: z.literal('reply'), id: z.number().int(), ok: z.literal(true), result: z.unknown() }),
  z.object({ kind: z.literal('reply'), id: z.number().int(), ok: z.literal(false), error: z.string() }),
]);
const EventSchema = z.object({ kind: z.literal('event'), name: z.string(), data: z.unknown() });

export interface MethodSpec<P extends z.ZodType, R extends z.ZodType> {
  readonly params: P;
  readonly result: R;
}
type Methods = Record<string, MethodSpec<z.ZodType, z.ZodType>>;

export class ChildCallError extends Error {}

// ---------------------------------------------------------------------------------------------
// Shared shapes

export const UsageSchema = z.object({
  pid: z.number().int(),
  /** Event-loop delay since the last reading (monitorEventLoopDelay), ms: how late timers and I/O callbacks ran. */
  loopDelayMs: z.object({ p50: z.number(), p99: z.number(), max: z.number() }),
  /** process.cpuUsage(), µs. */
  userMicros: z.number(),
  systemMicros: z.number(),
  /** process.resourceUsage().maxRSS, KiB: the process's peak so far. */
  maxRssKb: z.number(),
  /** Epoch ms at which the usage was read. */
  at: z.number(),
});
export type Usage = z.infer<typeof UsageSchema>;

const ThrottleSchema = z.object({
  timeScale: z.number().positive(),
  reads: z.object({ capacity: z.number(), refillPerSecond: z.number() }),
  writes: z.object({ capacity: z.number(), refillPerSecond: z.number() }),
});

export const FaultSpecSchema = z.object({
  status: z.union([z.literal(429), z.literal(503)]),
  probability: z.number().min(0).max(1),
  seed: z.number().int(),
  /** Seconds; omitted: no Retry-After. */
  retryAfterSeconds: z.number().min(0).optional(),
  match: z.enum(['read', 'write']).optional(),
  /** A case-insensitive regular expression over the request path. */
  pathPattern: z.string().optional(),
});
export type FaultSpec = z.infer<typeof FaultSpecSchema>;

const CountsSchema = z.object({
  requests: z.number(),
  reads: z.number(),
  /** Reads by what they were for: vm, list, poll, location. */
  readsByKind: z.record(z.string(), z.number()),
  writes: z.number(),
  /** 429s from the token buckets (not injected). */
  throttled429: z.number(),
  injected429: z.number(),
  injected503: z.number(),
  /** Other answers ≥ 400, by status. */
  otherErrors: z.record(z.string(), z.number()),
  runCommandPosts: z.number(),
  runCommandPostsAccepted: z.number(),
});

export const ArmSummarySchema = z.object({
  total: CountsSchema,
  perSubscription: z.record(z.string(), CountsSchema.extend({ vmLists: z.number() })),
  /** Per time bucket from the scenario start: [ms, reads, writes, 429s (all)]. */
  perBucket: z.array(z.tuple([z.number(), z.number(), z.number(), z.number()])),
  runs: z.object({
    total: z.number(),
    byPayload: z.record(z.string(), z.number()),
    /** Runs beyond the first of the same payload kind on the same VM. */
    duplicates: z.number(),
    /** Of those, fix runs: a fix that ran twice on one VM (the probe may be re-read on purpose). */
    duplicateFixes: z.number(),
    duplicateExamples: z.array(z.string()),
    failed: z.number(),
    /** Run durations the emulator applied (end − start), ms. */
    durationsMs: z.array(z.number()),
  }),
  maxConcurrentRunsPerVm: z.number(),
  logsRequests: z.number(),
  /** Milliseconds from the scenario start to the last ARM request. */
  lastRequestMs: z.number(),
});
export type ArmSummary = z.infer<typeof ArmSummarySchema>;

// ---------------------------------------------------------------------------------------------
// The emulator process

export const EmulatorEnvSchema = z.object({
  AZURE_RESOURCE_MANAGER_ENDPOINT: z.string(),
  AZURE_LOGS_ENDPOINT: z.string(),
  IDENTITY_ENDPOINT: z.string(),
  IDENTITY_HEADER: z.string(),
  NODE_EXTRA_CA_CERTS: z.string(),
});

export const EMULATOR_METHODS = {
  start: { params: z.object({ replay: z.boolean() }), result: z.object({ env: EmulatorEnvSchema, pid: z.number() }) },
  /** Adds `count` VMs of one broken Windows state; with a workspace, a failure event per VM in it. */
  seedFleet: {
    params: z.object({
      subscriptionId: z.string(),
      resourceGroup: z.string(),
      prefix: z.string(),
      count: z.number().int().positive(),
      workspace: z.object({ workspaceId: z.string(), resourceId: z.string() }).optional(),
    }),
    result: z.object({ ids: z.array(z.string()) }),
  },
  /** Buckets refilled, faults replaced, run durations drawn from the benchmark's distribution at the scale. */
  configure: {
    params: z.object({ throttle: ThrottleSchema, runDuration: z.object({ seed: z.number().int(), timeScale: z.number().positive() }), faults: z.array(FaultSpecSchema) }),
    result: z.object({}),
  },
  clearLogs: { params: z.object({}), result: z.object({}) },
  usage: { params: z.object({}), result: UsageSchema.extend({ descendants: z.object({ pids: z.array(z.number()), cpuMs: z.number() }), powershell: z.object({ runs: z.number(), replays: z.number() }).nullable() }) },
  summary: { params: z.object({ startedAt: z.number(), bucketMs: z.number().positive(), subscriptions: z.array(z.string()) }), result: ArmSummarySchema },
  stop: { params: z.object({}), result: z.object({}) },
} satisfies Methods;

// ---------------------------------------------------------------------------------------------
// An app instance

export const CompletedSchema = z.object({ vm: z.string(), status: z.string(), at: z.number() });
export type Completed = z.infer<typeof CompletedSchema>;
export const CompletedBatchSchema = z.object({ items: z.array(CompletedSchema) });

export const APP_METHODS = {
  start: {
    params: z.object({ batchSize: z.number().int().positive(), newBatchThreshold: z.number().int().min(0), failureVisibilitySeconds: z.number().min(0) }),
    result: z.object({ port: z.number().int(), pid: z.number().int() }),
  },
  usage: { params: z.object({}), result: UsageSchema.extend({ events: z.record(z.string(), z.number()) }) },
  drain: { params: z.object({ timeoutMs: z.number() }), result: z.object({ drained: z.boolean(), error: z.string().nullable() }) },
  stop: { params: z.object({}), result: z.object({}) },
} satisfies Methods;

// ---------------------------------------------------------------------------------------------
// Both ends

/** The parent's side: typed calls to a forked child, and its events. */
export class ChildRpc<M extends Methods> {
  private nextId = 1;
  private readonly waiting = new Map<number, { resolve: (value: unknown) => void; reject: (error: Error) => void }>();
  private readonly listeners = new Map<string, ((data: unknown) => void)[]>();
  private exited: string | null = null;

  public constructor(
    public readonly name: string,
    public readonly child: ChildProcess,
    private readonly methods: M,
  ) {
    child.on('message', (message: unknown) => this.receive(message));
    child.once('exit', (code, signal) => {
      this.exited = `${name} exited (${code ?? signal ?? 'unknown'})`;
      for (const { reject } of this.waiting.values()) reject(new ChildCallError(this.exited));
      this.waiting.clear();
    });
  }

  public get hasExited(): boolean {
    return this.exited !== null;
  }

  public on(event: string, listener: (data: unknown) => void): void {
    this.listeners.set(event, [...(this.listeners.get(event) ?? []), listener]);
  }

  public async call<K extends keyof M & string>(method: K, params: z.input<M[K]['params']>, timeoutMs = 120_000): Promise<z.output<M[K]['result']>> {
    if (this.exited !== null) throw new ChildCallError(`${this.name}.${method}: ${this.exited}`);
    const spec = this.methods[method] as M[K];
    const checked: unknown = spec.params.parse(params);
    const id = this.nextId++;
    const raw = await new Promise<unknown>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.delete(id);
        reject(new ChildCallError(`${this.name}.${method}: no answer within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiting.set(id, {
        resolve: (value) => (clearTimeout(timer), resolve(value)),
        reject: (error) => (clearTimeout(timer), reject(error)),
      });
      this.child.send({ kind: 'call', id, method, params: checked });
    });
    const result = spec.result.safeParse(raw);
    if (!result.success) throw new ChildCallError(`${this.name}.${method} answered ${z.prettifyError(result.error)}`);
    return result.data as z.output<M[K]['result']>;
  }

  private receive(message: unknown): void {
    const reply = ReplySchema.safeParse(message);
    if (reply.success) {
      const waiter = this.waiting.get(reply.data.id);
      this.waiting.delete(reply.data.id);
      if (!waiter) return;
      if (reply.data.ok) waiter.resolve(reply.data.result);
      else waiter.reject(new ChildCallError(`${this.name}: ${reply.data.error}`));
      return;
    }
    const event = EventSchema.safeParse(message);
    if (event.success) for (const listener of this.listeners.get(event.data.name) ?? []) listener(event.data.data);
  }
}

export type Handlers<M extends Methods> = { readonly [K in keyof M]: (params: z.output<M[K]['params']>) => Promise<z.input<M[K]['result']>> };

/** The child's side: answers the parent's calls with `handlers`, each call's parameters checked first. */
export function serveRpc<M extends Methods>(methods: M, handlers: Handlers<M>): void {
  const send = (message: unknown) => {
    if (process.connected) process.send?.(message);
  };
  process.on('message', (message: unknown) => {
    const call = CallSchema.safeParse(message);
    if (!call.success) return;
    const { id, method } = call.data;
    const spec = Object.hasOwn(methods, method) ? methods[method] : undefined;
    if (!spec) {
      send({ kind: 'reply', id, ok: false, error: `no method ${method}` });
      return;
    }
    const params = spec.params.safeParse(call.data.params);
    if (!params.success) {
      send({ kind: 'reply', id, ok: false, error: `${method}: ${z.prettifyError(params.error)}` });
      return;
    }
    const handler = handlers[method as keyof M] as (p: unknown) => Promise<unknown>;
    handler(params.data).then(
      (result) => send({ kind: 'reply', id, ok: true, result }),
      (error: unknown) => send({ kind: 'reply', id, ok: false, error: error instanceof Error ? (error.stack ?? error.message) : String(error) }),
    );
  });
}

export function emitEvent(name: string, data: unknown): void {
  if (process.connected) process.send?.({ kind: 'event', name, data });
}

const loopDelay = monitorEventLoopDelay({ resolution: 10 });
loopDelay.enable();

/** This process's usage; the event-loop delay histogram starts again after each reading. */
export function usageNow(): Usage {
  const cpu = process.cpuUsage();
  const ms = (ns: number) => Number((ns / 1e6).toFixed(1));
  const delay = { p50: ms(loopDelay.percentile(50)), p99: ms(loopDelay.percentile(99)), max: ms(loopDelay.max) };
  loopDelay.reset();
  return { pid: process.pid, loopDelayMs: delay, userMicros: cpu.user, systemMicros: cpu.system, maxRssKb: process.resourceUsage().maxRSS, at: Date.now() };
}
