/**
 * A long-lived PowerShell 7 host for the emulator's Windows VMs: the real composed payloads
 * run under `pwsh` with the Windows double (emulator/double/WindowsDouble.ps1) in the access
 * layer's place, each in a fresh runspace of one process (emulator/powershell/host.ps1), so a
 * Run Command costs tens of milliseconds instead of a 2.5 s process start.
 *
 * ```ts
 * const host = await PowerShellHost.start({ doublePath });
 * const out = await host.run({ script, parameters, state });   // stdout, stderr, state, writes, ...
 * await host.close();
 * // or, in the emulator: (await sharedPowerShellHost({ doublePath })).run(...)
 * ```
 *
 * - Runs are queued and served one at a time per process; `poolSize` processes serve the queue
 *   in parallel (default 1).
 * - A run that outlives `timeoutMs` rejects with PowerShellTimeoutError and its process is
 *   killed; a process that dies is started again for the next run (`stats.restarts`).
 * - The state is checked against WindowsStateSchema before it is sent and after it comes back.
 *   On the way back a value the double left as a single value or $null where the schema wants
 *   an array (a pipeline result assigned without @()) is made an array again, and a date with
 *   an offset becomes UTC; each such repair is listed in `stateRepairs`.
 * - Replay (`replay: true`, for the storm benchmark): a run whose content (the state without
 *   `now`, the script, the parameters with the RunId replaced by a placeholder, the double file)
 *   hashes to that of an earlier *real* run in this process returns that run's recorded result,
 *   with the RunId substituted back into stdout, stderr, state and writes and the state's clock
 *   moved on by as much as the recorded run moved it, without running PowerShell. It only ever
 *   replays what PowerShell printed and the double changed in this process; there is no
 *   hand-written model of the payloads behind it. Other times in the recorded output (dates the
 *   payload printed or wrote into the state) are the recorded run's.
 *
 * - Asks (the oracle channel): while a run goes, the double can ask this side a question about
 *   the Windows model and wait for the answer (host.ps1's header has the protocol). The double's
 *   Test-RrRdpHandshake asks `rdp-handshake` with the state as it holds it at that moment;
 *   `askHandler` answers (default: `rdpHandshake` from emulator/windows.ts). A handler that
 *   throws makes the double's call throw its message. The default handler is a pure function of
 *   the state, so a replayed run stays right; with a handler that is not, leave replay off.
 *
 * stdout is the success stream as Out-String -Stream formats it (width 120), with Write-Host and
 * `WARNING: ` lines in place, lines joined with "\n" and no trailing newline (Run Command on
 * Windows would have CRLF and a final newline). stderr is each error in Windows PowerShell 5.1's
 * console view (message, position, CategoryInfo, FullyQualifiedErrorId). The payloads target
 * Windows PowerShell 5.1; here they run under PowerShell 7.6.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createHash } from 'node:crypto';
import { rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { pathToFileURL } from 'node:url';
import { z } from 'zod';
import { RemediatorError, errorMessage, type ErrorContext } from '../src/errors.js';
import { packageRoot } from '../src/util/package-root.js';
import type * as PwshTools from '../tools/pwsh.mjs';
import { DoubleWriteSchema, WindowsStateSchema, windowsStateJsonSchema, type DoubleWrite, type WindowsState } from './windows-state.js';
import { rdpHandshake } from './windows.js';

// ---------------------------------------------------------------------------------------------
// Errors

/** The PowerShell host failed a run: it could not start, died, answered hostError or nonsense. */
export class PowerShellHostError extends RemediatorError {}

/** PowerShell 7 is not installed where tools/pwsh.mjs looks; the message says how to install it. */
export class PowerShellNotFoundError extends PowerShellHostError {}

/** A run (or the host's start) took longer than allowed: stopped by host.ps1, or its process killed. */
export class PowerShellTimeoutError extends PowerShellHostError {
  public readonly timeoutMs: number;
  public constructor(message: string, timeoutMs: number, context: ErrorContext = {}) {
    super(message, { ...context, timeoutMs });
    this.timeoutMs = timeoutMs;
  }
}

// ---------------------------------------------------------------------------------------------
// API types

export interface PowerShellHostOptions {
  /** The pwsh executable; default what tools/pwsh.mjs finds. */
  readonly pwshPath?: string;
  /** Let tools/pwsh.mjs run `dotnet tool restore` when PowerShell is missing (default true). */
  readonly install?: boolean;
  /** The Windows double dot-sourced before each payload (default emulator/double/WindowsDouble.ps1). */
  readonly doublePath?: string;
  /** PowerShell processes serving the queue in parallel (default 1). */
  readonly poolSize?: number;
  /**
   * Per run (default 60 s): host.ps1 stops the payload's pipeline after this long and answers
   * with a timeout (PowerShellTimeoutError; the process keeps serving).
   */
  readonly timeoutMs?: number;
  /**
   * How much longer than `timeoutMs` the client waits for that answer before it kills the
   * process (a payload stuck in a call PowerShell cannot stop) and starts another (default 10 s).
   */
  readonly killGraceMs?: number;
  /** Starting a process, up to its first answer (default 60 s). */
  readonly startTimeoutMs?: number;
  /** Replay results recorded from real runs in this process (see the module comment). Default false. */
  readonly replay?: boolean;
  /** Most results kept for replay, oldest dropped first (default 2000). */
  readonly replayLimit?: number;
  /**
   * Also have the host check the state with Test-Json against windowsStateJsonSchema() before
   * each run (default false: the client checks it with WindowsStateSchema, which is much faster).
   */
  readonly hostSchemaCheck?: boolean;
  /** The host processes' stderr lines (diagnostics; RR_PWSH_HOST_TRACE=1 adds timings). Default: kept for error messages only. */
  readonly onDiagnostic?: (line: string) => void;
  /**
   * Answers the double's asks during a run (default `defaultAskHandler`: the Windows model of
   * emulator/windows.ts). What it returns goes back as JSON; what it throws, as the error the
   * double's call throws.
   */
  readonly askHandler?: PowerShellAskHandler;
}

/** A question the double puts to this side during a run (host.ps1's header: Ask). */
export type PowerShellAsk = {
  readonly kind: 'rdp-handshake';
  /** The machine state as the double holds it when it asks. */
  readonly state: WindowsState;
  readonly address: string;
  readonly port: number;
  readonly timeoutMs: number | null;
};

export type PowerShellAskHandler = (ask: PowerShellAsk) => unknown;

/** The Windows model's answers: what a client's handshake would observe against the state. */
export function defaultAskHandler(ask: PowerShellAsk): unknown {
  switch (ask.kind) {
    case 'rdp-handshake':
      return rdpHandshake(ask.state, { address: ask.address, port: ask.port, ...(ask.timeoutMs === null ? {} : { timeoutMs: ask.timeoutMs }) });
  }
}

export interface PowerShellRunRequest {
  /** The full composed payload text. */
  readonly script: string;
  /** Run Command parameters, passed as the agent passes them (unquoted `-Name value`). */
  readonly parameters: readonly { readonly name: string; readonly value: string }[];
  readonly state: WindowsState;
  /** This run's double instead of the host's. */
  readonly doublePath?: string;
  /** This run's timeout instead of the host's. */
  readonly timeoutMs?: number;
}

export interface PowerShellRunResult {
  readonly stdout: string;
  readonly stderr: string;
  /** $global:RrDouble.State after the run. */
  readonly state: WindowsState;
  /** $global:RrDouble.Writes: the changes the double made, in order. */
  readonly writes: DoubleWrite[];
  /** The payload's own functions that the double's replaced (cut from the script). */
  readonly replaced: string[];
  /** The host's time for the run (parse, runspace, payload, serialisation); for a replay, the lookup's. */
  readonly durationMs: number;
  /** The result came from the replay cache, not from PowerShell. */
  readonly replayed: boolean;
  /** Values of the returned state put right to match WindowsStateSchema (see the module comment). */
  readonly stateRepairs: string[];
}

export interface PowerShellHostStats {
  /** Runs PowerShell executed (answered with a result, not a hostError). */
  runs: number;
  /** Runs answered from the replay cache. */
  replays: number;
  /** Processes started again after one died or was killed. */
  restarts: number;
  timeouts: number;
  /** Asks the double put during runs, answered or failed. */
  asks: number;
}

// ---------------------------------------------------------------------------------------------
// Protocol

const PingResponseSchema = z.object({ id: z.number(), pong: z.literal(true), psVersion: z.string(), pid: z.number() });
const HostErrorResponseSchema = z.object({ id: z.number().nullable(), hostError: z.string(), timedOut: z.boolean().optional() });
const RunResponseSchema = z.object({
  id: z.number(),
  stdout: z.string(),
  stderr: z.string(),
  state: z.unknown(),
  writes: z.array(z.unknown()),
  replaced: z.array(z.string()),
  durationMs: z.number(),
});
type RunResponse = z.infer<typeof RunResponseSchema>;

const AskMessageSchema = z.discriminatedUnion('ask', [
  z.object({
    ask: z.literal('rdp-handshake'),
    seq: z.number().int(),
    state: z.unknown(),
    address: z.string(),
    port: z.number().int(),
    timeoutMs: z.number().int().nullable().optional(),
  }),
]);

const DEFAULT_TIMEOUT_MS = 60_000;
const STDERR_TAIL_LINES = 30;

function hostScriptPath(): string {
  return join(packageRoot(), 'emulator', 'powershell', 'host.ps1');
}

export function defaultDoublePath(): string {
  return join(packageRoot(), 'emulator', 'double', 'WindowsDouble.ps1');
}

async function resolvePwsh(install: boolean): Promise<string> {
  // tools/ is not compiled: load it from the package root, from src/ and dist/ alike.
  const tools = (await import(pathToFileURL(join(packageRoot(), 'tools', 'pwsh.mjs')).href)) as typeof PwshTools;
  const found = tools.locatePwsh({ install });
  if (found.path === null) throw new PowerShellNotFoundError(found.message, { notes: found.notes });
  return found.path;
}

/** Child processes of every host in this process, ended when it exits. */
const liveProcesses = new Set<HostProcess>();
let exitHookInstalled = false;
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => {
    // An idle host reads EOF when this process's end of the pipe closes, and exits cleanly
    // (removing its work folder); one in the middle of a run may never read again.
    for (const p of liveProcesses) p.killIfBusy();
  });
}

/** One pwsh process running host.ps1; one request at a time. */
class HostProcess {
  private readonly child: ChildProcessWithoutNullStreams;
  private nextId = 1;
  private inFlight: { id: number; resolve: (value: unknown) => void; reject: (error: Error) => void; timer: NodeJS.Timeout } | null = null;
  private readonly stderrTail: string[] = [];
  private exitInfo: string | null = null;
  /** host.ps1's script0.ps1 folder, from its first stderr line; removed here when it is killed. */
  private workDir: string | null = null;
  public readonly exited: Promise<void>;

  private constructor(
    public readonly pwshPath: string,
    onDiagnostic: ((line: string) => void) | undefined,
    private readonly onAsk: (message: Record<string, unknown>) => Promise<unknown>,
  ) {
    this.child = spawn(pwshPath, ['-NoProfile', '-NonInteractive', '-File', hostScriptPath()], {
      cwd: tmpdir(),
      env: {
        ...process.env,
        RR_PWSH_HOST_CLIENT_PID: String(process.pid),
        POWERSHELL_TELEMETRY_OPTOUT: '1',
        POWERSHELL_UPDATECHECK: 'Off',
        DOTNET_CLI_TELEMETRY_OPTOUT: '1',
        NO_COLOR: '1',
      },
      stdio: ['pipe', 'pipe', 'pipe'],
      windowsHide: true,
    });
    // Neither the process nor its pipes keep Node running; a run's timer does while it lasts.
    this.child.unref();
    for (const stream of [this.child.stdin, this.child.stdout, this.child.stderr]) (stream as unknown as { unref?: () => void }).unref?.();
    liveProcesses.add(this);
    installExitHook();

    createInterface({ input: this.child.stdout, crlfDelay: Infinity }).on('line', (line) => this.onLine(line));
    createInterface({ input: this.child.stderr, crlfDelay: Infinity }).on('line', (line) => {
      this.workDir ??= /^\[host\.ps1\] PowerShell .* work dir (.*rr-pwsh-host-[^/\\]+)$/.exec(line)?.[1] ?? null;
      this.stderrTail.push(line);
      if (this.stderrTail.length > STDERR_TAIL_LINES) this.stderrTail.shift();
      onDiagnostic?.(line);
    });
    this.child.stdin.on('error', () => {
      // EPIPE when the process died; 'exit' reports it.
    });
    this.exited = new Promise((resolve) => {
      this.child.once('error', (error) => {
        this.exitInfo = `could not run ${pwshPath}: ${error.message}`;
        this.fail(new PowerShellHostError(`PowerShell host: ${this.exitInfo}`, { pwshPath }));
        liveProcesses.delete(this);
        resolve();
      });
      this.child.once('exit', (code, signal) => {
        this.exitInfo ??= `exited with ${signal === null ? `code ${code}` : signal}`;
        // A killed host could not remove its folder.
        if (signal !== null && this.workDir !== null) rmSync(this.workDir, { recursive: true, force: true });
        this.fail(new PowerShellHostError(`PowerShell host ${this.exitInfo}${this.stderrSummary()}`, { pwshPath, code, signal }));
        liveProcesses.delete(this);
        resolve();
      });
    });
  }

  /** Starts host.ps1 and waits for its answer to a ping. */
  public static async start(
    pwshPath: string,
    timeoutMs: number,
    onDiagnostic: ((line: string) => void) | undefined,
    onAsk: (message: Record<string, unknown>) => Promise<unknown>,
  ): Promise<HostProcess> {
    const p = new HostProcess(pwshPath, onDiagnostic, onAsk);
    try {
      const answer = PingResponseSchema.safeParse(await p.request({ ping: true }, timeoutMs, 'start'));
      if (!answer.success) throw new PowerShellHostError(`PowerShell host answered the start ping with ${z.prettifyError(answer.error)}`, { pwshPath });
    } catch (error) {
      p.kill();
      throw error;
    }
    return p;
  }

  public get alive(): boolean {
    return this.exitInfo === null;
  }

  public get busy(): boolean {
    return this.inFlight !== null;
  }

  public request(message: Record<string, unknown>, timeoutMs: number, what = 'run'): Promise<unknown> {
    if (!this.alive) return Promise.reject(new PowerShellHostError(`PowerShell host ${this.exitInfo ?? 'is gone'}`));
    if (this.inFlight !== null) return Promise.reject(new PowerShellHostError('PowerShell host is busy (one request at a time)'));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.fail(
          new PowerShellTimeoutError(`PowerShell host: no answer to the ${what} within ${timeoutMs} ms; the process was killed${this.stderrSummary()}`, timeoutMs, {
            pwshPath: this.pwshPath,
          }),
        );
        this.kill();
      }, timeoutMs);
      this.inFlight = { id, resolve, reject, timer };
      this.child.stdin.write(`${JSON.stringify({ ...message, id })}\n`);
    });
  }

  private onLine(line: string): void {
    if (line.trim() === '') return;
    const pending = this.inFlight;
    let parsed: unknown;
    try {
      parsed = JSON.parse(line);
    } catch {
      this.fail(new PowerShellHostError(`PowerShell host wrote a line that is not JSON: ${line.slice(0, 200)}`));
      this.kill();
      return;
    }
    const id = (parsed as { id?: unknown } | null)?.id;
    if (pending !== null && id === pending.id && typeof (parsed as { ask?: unknown }).ask === 'string') {
      // The run asks, and goes on waiting for its answer (its timer keeps running).
      this.answer(pending.id, parsed as Record<string, unknown>);
      return;
    }
    if (pending === null || (id !== pending.id && id !== null)) {
      this.fail(new PowerShellHostError(`PowerShell host answered request ${String(id)}, not ${pending?.id ?? 'none'}`));
      this.kill();
      return;
    }
    clearTimeout(pending.timer);
    this.inFlight = null;
    pending.resolve(parsed);
  }

  /** Answers one ask of the run in flight; an answer to a run that has ended is not sent. */
  private answer(runId: number, message: Record<string, unknown>): void {
    const seq = message['seq'];
    void this.onAsk(message).then(
      (answer) => ({ id: runId, seq, answer: answer ?? null }),
      (error: unknown) => ({ id: runId, seq, askError: errorMessage(error) }),
    ).then((reply) => {
      if (this.alive && this.inFlight?.id === runId) this.child.stdin.write(`${JSON.stringify(reply)}\n`);
    });
  }

  private fail(error: Error): void {
    const pending = this.inFlight;
    if (pending === null) return;
    clearTimeout(pending.timer);
    this.inFlight = null;
    pending.reject(error);
  }

  private stderrSummary(): string {
    const tail = this.stderrTail.filter((l) => l.trim() !== '').slice(-8);
    return tail.length === 0 ? '' : `; its stderr ended with:\n${tail.join('\n')}`;
  }

  /** Kills the process; it counts as gone at once, so no further request reaches it. */
  public kill(): void {
    if (!this.alive) return;
    this.exitInfo = 'was killed';
    this.child.kill('SIGKILL');
  }

  /** For this process's exit: kills a host in the middle of a run and removes its folder. */
  public killIfBusy(): void {
    if (!this.busy) return;
    this.kill();
    if (this.workDir !== null) rmSync(this.workDir, { recursive: true, force: true });
  }

  /** Ends stdin (the host exits after its current request) and waits, then kills. */
  public async close(graceMs: number): Promise<void> {
    if (!this.alive) return;
    this.child.stdin.end();
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<'late'>((resolve) => {
      timer = setTimeout(() => resolve('late'), graceMs);
    });
    if ((await Promise.race([this.exited.then(() => 'exited' as const), late])) === 'late') this.kill();
    clearTimeout(timer);
    await this.exited;
  }
}

// ---------------------------------------------------------------------------------------------
// Returned-state repair, guided by the JSON Schema of WindowsStateSchema.

interface JsonSchemaNode {
  readonly type?: string | readonly string[];
  readonly properties?: Readonly<Record<string, JsonSchemaNode>>;
  readonly additionalProperties?: JsonSchemaNode | boolean;
  readonly items?: JsonSchemaNode;
  readonly anyOf?: readonly JsonSchemaNode[];
  readonly oneOf?: readonly JsonSchemaNode[];
  readonly const?: unknown;
  readonly format?: string;
}

let stateJsonSchemaText: string | undefined;
let stateJsonSchema: JsonSchemaNode | undefined;
function windowsStateSchemaText(): string {
  stateJsonSchemaText ??= windowsStateJsonSchema();
  return stateJsonSchemaText;
}
function windowsStateSchemaNode(): JsonSchemaNode {
  stateJsonSchema ??= JSON.parse(windowsStateSchemaText()) as JsonSchemaNode;
  return stateJsonSchema;
}

type JsonKind = 'null' | 'array' | 'object' | 'string' | 'number' | 'boolean';
function kindOf(value: unknown): JsonKind {
  if (value === null || value === undefined) return 'null';
  if (Array.isArray(value)) return 'array';
  const t = typeof value;
  return t === 'string' || t === 'number' || t === 'boolean' ? t : 'object';
}

function types(node: JsonSchemaNode): readonly string[] {
  const t = node.type;
  if (t === undefined) return [];
  return typeof t === 'string' ? [t] : t;
}

function accepts(node: JsonSchemaNode, kind: JsonKind): boolean {
  return types(node).some((t) => t === kind || (t === 'integer' && kind === 'number'));
}

/** The node, or the anyOf/oneOf branch, that describes a value of this kind. */
function pick(node: JsonSchemaNode, value: unknown, kind: JsonKind): JsonSchemaNode | undefined {
  const branches = node.anyOf ?? node.oneOf;
  if (branches === undefined) return node;
  const candidates = branches.map((b) => pick(b, value, kind)).filter((b): b is JsonSchemaNode => b !== undefined);
  const matching = candidates.filter((b) => accepts(b, kind));
  if (matching.length > 1 && kind === 'object') {
    const record = value as Record<string, unknown>;
    const tagged = matching.find((b) => Object.entries(b.properties ?? {}).every(([k, p]) => !('const' in p) || record[k] === p.const));
    if (tagged !== undefined) return tagged;
  }
  return matching[0] ?? candidates.find((b) => accepts(b, 'array'));
}

function repairValue(value: unknown, node: JsonSchemaNode | undefined, path: string, repairs: string[]): unknown {
  if (node === undefined) return value;
  const kind = kindOf(value);
  const chosen = pick(node, value, kind);
  if (chosen === undefined) return value;
  if (!accepts(chosen, kind)) {
    if (accepts(chosen, 'array')) {
      if (kind === 'null') {
        repairs.push(`${path}: null made []`);
        return [];
      }
      repairs.push(`${path}: single value wrapped in an array`);
      return [repairValue(value, chosen.items, `${path}[0]`, repairs)];
    }
    if (accepts(chosen, 'object') && kind === 'array' && (value as unknown[]).length === 0) {
      repairs.push(`${path}: @() made {}`);
      return {};
    }
    return value;
  }
  if (kind === 'string' && chosen.format === 'date-time' && !(value as string).endsWith('Z')) {
    const ms = Date.parse(value as string);
    if (!Number.isNaN(ms)) {
      repairs.push(`${path}: ${value as string} made UTC`);
      return new Date(ms).toISOString();
    }
  }
  if (kind === 'array') return (value as unknown[]).map((item, i) => repairValue(item, chosen.items, `${path}[${i}]`, repairs));
  if (kind === 'object') {
    const out: Record<string, unknown> = {};
    const additional = typeof chosen.additionalProperties === 'object' ? chosen.additionalProperties : undefined;
    for (const [key, child] of Object.entries(value as Record<string, unknown>)) {
      out[key] = repairValue(child, chosen.properties?.[key] ?? additional, path === '' ? key : `${path}.${key}`, repairs);
    }
    return out;
  }
  return value;
}

// ---------------------------------------------------------------------------------------------
// Replay

const RUN_ID_PLACEHOLDER = '{{rr-replay-run-id}}';

interface Recorded {
  readonly stdout: string;
  readonly stderr: string;
  readonly stateJson: string;
  readonly writesJson: string;
  readonly replaced: readonly string[];
  readonly stateRepairs: readonly string[];
  /** How far the run moved the state's clock. */
  readonly clockMs: number;
}

/** JSON with object keys sorted, so equal content hashes equally whatever the key order. */
function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null';
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  const entries = Object.entries(value as Record<string, unknown>)
    .filter(([, v]) => v !== undefined)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
}

function replaceAll(text: string, from: string, to: string): string {
  return from === '' ? text : text.split(from).join(to);
}

// ---------------------------------------------------------------------------------------------

interface Job {
  readonly message: Record<string, unknown>;
  readonly timeoutMs: number;
  readonly resolve: (response: unknown) => void;
  readonly reject: (error: Error) => void;
}

export class PowerShellHost {
  public readonly stats: PowerShellHostStats = { runs: 0, replays: 0, restarts: 0, timeouts: 0, asks: 0 };
  public readonly pwshPath: string;
  public readonly doublePath: string;
  private readonly slots: (HostProcess | null)[];
  private readonly starting: (Promise<HostProcess> | null)[];
  private readonly busySlots = new Set<number>();
  private readonly queue: Job[] = [];
  private readonly timeoutMs: number;
  private readonly killGraceMs: number;
  private readonly startTimeoutMs: number;
  private readonly replay: Map<string, Recorded> | null;
  private readonly replayLimit: number;
  /** Real runs in flight whose result will be recorded, by replay key. */
  private readonly recording = new Map<string, Promise<void>>();
  private readonly hostSchemaCheck: boolean;
  private readonly onDiagnostic: ((line: string) => void) | undefined;
  private readonly askHandler: PowerShellAskHandler;
  private closed = false;

  private constructor(pwshPath: string, options: PowerShellHostOptions) {
    const poolSize = options.poolSize ?? 1;
    if (!Number.isInteger(poolSize) || poolSize < 1) throw new RangeError(`poolSize must be a positive integer, not ${poolSize}`);
    this.pwshPath = pwshPath;
    this.doublePath = options.doublePath ?? defaultDoublePath();
    this.slots = Array.from({ length: poolSize }, () => null);
    this.starting = Array.from({ length: poolSize }, () => null);
    this.timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.killGraceMs = options.killGraceMs ?? 10_000;
    this.startTimeoutMs = options.startTimeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.replay = options.replay === true ? new Map() : null;
    this.replayLimit = options.replayLimit ?? 2000;
    this.hostSchemaCheck = options.hostSchemaCheck === true;
    this.onDiagnostic = options.onDiagnostic;
    this.askHandler = options.askHandler ?? defaultAskHandler;
  }

  /** Finds PowerShell (tools/pwsh.mjs) unless given, and starts the pool's processes. */
  public static async start(options: PowerShellHostOptions = {}): Promise<PowerShellHost> {
    const pwshPath = options.pwshPath ?? (await resolvePwsh(options.install ?? true));
    const host = new PowerShellHost(pwshPath, options);
    try {
      await Promise.all(host.slots.map((_, i) => host.process(i)));
    } catch (error) {
      await host.close();
      throw error;
    }
    return host;
  }

  public get poolSize(): number {
    return this.slots.length;
  }

  /** Runs one payload as Run Command would, against `state`, with the double in the access layer's place. */
  public async run(request: PowerShellRunRequest): Promise<PowerShellRunResult> {
    if (this.closed) throw new PowerShellHostError('PowerShell host is closed');
    const input = WindowsStateSchema.safeParse(request.state);
    if (!input.success) throw new PowerShellHostError(`the state to run against does not match WindowsStateSchema: ${z.prettifyError(input.error)}`);
    const state = input.data;
    const doublePath = request.doublePath ?? this.doublePath;
    const started = performance.now();

    const replayKey = this.replayKey(request, state, doublePath);
    if (replayKey !== null) {
      // The same run already on its way (a storm sends many at once): wait for it, then replay.
      // No await unless one is pending, so that runs sent in the same tick find the first one's entry.
      const pending = this.recording.get(replayKey.key);
      if (pending !== undefined) await pending.catch(() => undefined);
      const recorded = this.replay?.get(replayKey.key);
      if (recorded !== undefined) {
        this.stats.replays++;
        return this.replayed(recorded, state, replayKey.runId, performance.now() - started);
      }
    }
    if (replayKey === null) return this.runInPowerShell(request, state, doublePath);
    const run = this.runInPowerShell(request, state, doublePath).then((result) => {
      this.record(replayKey, state, result);
      return result;
    });
    if (!this.recording.has(replayKey.key)) {
      const settled = run.then(() => undefined);
      this.recording.set(replayKey.key, settled);
      void settled.catch(() => undefined).finally(() => this.recording.delete(replayKey.key));
    }
    return run;
  }

  /** The real run, in a PowerShell process of the pool. */
  private async runInPowerShell(request: PowerShellRunRequest, state: WindowsState, doublePath: string): Promise<PowerShellRunResult> {
    const message: Record<string, unknown> = {
      script: request.script,
      parameters: request.parameters.map((p) => ({ name: p.name, value: p.value })),
      state,
      doublePath,
    };
    if (this.hostSchemaCheck) message['stateSchema'] = windowsStateSchemaText();
    const timeoutMs = request.timeoutMs ?? this.timeoutMs;
    message['timeoutMs'] = timeoutMs;
    const raw = await this.enqueue(message, timeoutMs + this.killGraceMs);

    const failure = HostErrorResponseSchema.safeParse(raw);
    if (failure.success) {
      if (failure.data.timedOut === true) {
        this.stats.timeouts++;
        throw new PowerShellTimeoutError(`PowerShell host: ${failure.data.hostError}`, timeoutMs, { doublePath });
      }
      throw new PowerShellHostError(`PowerShell host: ${failure.data.hostError}`, { doublePath });
    }
    const parsed = RunResponseSchema.safeParse(raw);
    if (!parsed.success) throw new PowerShellHostError(`PowerShell host answered with ${z.prettifyError(parsed.error)}`);
    this.stats.runs++;
    return this.toResult(parsed.data);
  }

  private toResult(response: RunResponse): PowerShellRunResult {
    const stateRepairs: string[] = [];
    const repaired = repairValue(response.state, windowsStateSchemaNode(), '', stateRepairs);
    const state = WindowsStateSchema.safeParse(repaired);
    if (!state.success) {
      throw new PowerShellHostError(`the state the double handed back does not match WindowsStateSchema: ${z.prettifyError(state.error)}`, {
        stdoutTail: response.stdout.slice(-300),
        stderrTail: response.stderr.slice(-600),
      });
    }
    const writes = z.array(DoubleWriteSchema).safeParse(response.writes);
    if (!writes.success) throw new PowerShellHostError(`the double's $global:RrDouble.Writes do not match DoubleWriteSchema: ${z.prettifyError(writes.error)}`);
    return {
      stdout: response.stdout,
      stderr: response.stderr,
      state: state.data,
      writes: writes.data,
      replaced: response.replaced,
      durationMs: response.durationMs,
      replayed: false,
      stateRepairs,
    };
  }

  // ---- asks ---------------------------------------------------------------------------------

  /** One ask of a run, checked and handed to the handler; rejects with what the double will throw. */
  private async ask(message: Record<string, unknown>): Promise<unknown> {
    this.stats.asks++;
    const parsed = AskMessageSchema.safeParse(message);
    if (!parsed.success) throw new PowerShellHostError(`the double asked what the client does not answer: ${z.prettifyError(parsed.error)}`);
    const ask = parsed.data;
    // The state comes from the double's dictionaries, as a run's result does: put right the same way.
    const state = WindowsStateSchema.safeParse(repairValue(ask.state, windowsStateSchemaNode(), '', []));
    if (!state.success) throw new PowerShellHostError(`the state the double asked about does not match WindowsStateSchema: ${z.prettifyError(state.error)}`);
    return await this.askHandler({ kind: ask.ask, state: state.data, address: ask.address, port: ask.port, timeoutMs: ask.timeoutMs ?? null });
  }

  // ---- replay -------------------------------------------------------------------------------

  private replayKey(request: PowerShellRunRequest, state: WindowsState, doublePath: string): { key: string; runId: string } | null {
    if (this.replay === null) return null;
    const runIdParameter = request.parameters.find((p) => p.name.toLowerCase() === 'runid');
    const runId = runIdParameter?.value ?? '';
    let doubleStamp: number;
    try {
      doubleStamp = statSync(doublePath).mtimeMs;
    } catch {
      return null;
    }
    const { now: _now, ...timeless } = state;
    const parameters = request.parameters.map((p) => ({ name: p.name, value: p === runIdParameter ? RUN_ID_PLACEHOLDER : p.value }));
    const key = createHash('sha256')
      .update(canonicalJson({ state: timeless, script: request.script, parameters, doublePath, doubleStamp }))
      .digest('hex');
    return { key, runId };
  }

  private record(replayKey: { key: string; runId: string }, input: WindowsState, result: PowerShellRunResult): void {
    if (this.replay === null) return;
    const { runId } = replayKey;
    const stateJson = JSON.stringify(result.state);
    const writesJson = JSON.stringify(result.writes);
    if (runId !== '') {
      // Substituting the RunId back is only sound when it came from the parameter alone.
      const inputJson = JSON.stringify(input);
      if (inputJson.includes(runId)) return;
      for (const text of [result.stdout, result.stderr, stateJson, writesJson]) if (text.includes(RUN_ID_PLACEHOLDER)) return;
    }
    const clockMs = Date.parse(result.state.now) - Date.parse(input.now);
    this.replay.set(replayKey.key, {
      stdout: replaceAll(result.stdout, runId, RUN_ID_PLACEHOLDER),
      stderr: replaceAll(result.stderr, runId, RUN_ID_PLACEHOLDER),
      stateJson: replaceAll(stateJson, runId, RUN_ID_PLACEHOLDER),
      writesJson: replaceAll(writesJson, runId, RUN_ID_PLACEHOLDER),
      replaced: [...result.replaced],
      stateRepairs: [...result.stateRepairs],
      clockMs: Number.isFinite(clockMs) ? clockMs : 0,
    });
    if (this.replay.size > this.replayLimit) {
      const oldest = this.replay.keys().next();
      if (oldest.done !== true) this.replay.delete(oldest.value);
    }
  }

  private replayed(recorded: Recorded, input: WindowsState, runId: string, elapsedMs: number): PowerShellRunResult {
    const fill = (text: string): string => (runId === '' ? text : replaceAll(text, RUN_ID_PLACEHOLDER, runId));
    const state = WindowsStateSchema.parse({ ...(JSON.parse(fill(recorded.stateJson)) as object), now: new Date(Date.parse(input.now) + recorded.clockMs).toISOString() });
    return {
      stdout: fill(recorded.stdout),
      stderr: fill(recorded.stderr),
      state,
      writes: z.array(DoubleWriteSchema).parse(JSON.parse(fill(recorded.writesJson))),
      replaced: [...recorded.replaced],
      durationMs: elapsedMs,
      replayed: true,
      stateRepairs: [...recorded.stateRepairs],
    };
  }

  // ---- queue and processes ------------------------------------------------------------------

  private enqueue(message: Record<string, unknown>, timeoutMs: number): Promise<unknown> {
    return new Promise((resolve, reject) => {
      this.queue.push({ message, timeoutMs, resolve, reject });
      this.pump();
    });
  }

  private pump(): void {
    for (let slot = 0; slot < this.slots.length && this.queue.length > 0; slot++) {
      if (this.busySlots.has(slot)) continue;
      const job = this.queue.shift();
      if (job === undefined) return;
      this.busySlots.add(slot);
      void this.execute(slot, job).finally(() => {
        this.busySlots.delete(slot);
        this.pump();
      });
    }
  }

  private async execute(slot: number, job: Job): Promise<void> {
    try {
      const p = await this.process(slot);
      job.resolve(await p.request(job.message, job.timeoutMs));
    } catch (error) {
      if (error instanceof PowerShellTimeoutError) this.stats.timeouts++;
      job.reject(error instanceof Error ? error : new PowerShellHostError(errorMessage(error)));
    }
  }

  /** The slot's live process, started (again) when it has none. */
  private process(slot: number): Promise<HostProcess> {
    const current = this.slots[slot];
    if (current !== null && current !== undefined && current.alive) return Promise.resolve(current);
    if (this.closed) return Promise.reject(new PowerShellHostError('PowerShell host is closed'));
    const pending = this.starting[slot];
    if (pending !== null && pending !== undefined) return pending;
    const restart = current !== null && current !== undefined;
    const start = HostProcess.start(this.pwshPath, this.startTimeoutMs, this.onDiagnostic, (message) => this.ask(message)).then(
      (p) => {
        this.starting[slot] = null;
        this.slots[slot] = p;
        if (restart) this.stats.restarts++;
        if (this.closed) void p.close(0);
        return p;
      },
      (error: unknown) => {
        this.starting[slot] = null;
        throw error;
      },
    );
    this.starting[slot] = start;
    return start;
  }

  /** Rejects queued runs, lets the processes finish their current run (up to 5 s) and stops them. */
  public async close(): Promise<void> {
    this.closed = true;
    for (const job of this.queue.splice(0)) job.reject(new PowerShellHostError('PowerShell host is closed'));
    await Promise.allSettled(this.starting.filter((s): s is Promise<HostProcess> => s !== null));
    await Promise.all(this.slots.map((p) => (p === null ? Promise.resolve() : p.close(5_000))));
  }
}

// ---------------------------------------------------------------------------------------------
// The emulator's shared hosts: one per distinct set of options, started on first use, stopped
// when this process exits (and by closeSharedPowerShellHosts).

const shared = new Map<string, Promise<PowerShellHost>>();

/**
 * A host shared by everything in this process that asks with the same options. Environment
 * defaults: RR_PWSH_POOL (pool size), RR_PWSH_REPLAY=1 (replay).
 */
export function sharedPowerShellHost(options: Omit<PowerShellHostOptions, 'onDiagnostic' | 'askHandler'> = {}): Promise<PowerShellHost> {
  const pool = Number(process.env['RR_PWSH_POOL']);
  const effective: PowerShellHostOptions = {
    ...(Number.isInteger(pool) && pool > 0 ? { poolSize: pool } : {}),
    ...(process.env['RR_PWSH_REPLAY'] === '1' ? { replay: true } : {}),
    ...options,
  };
  const key = canonicalJson(effective);
  let host = shared.get(key);
  if (host === undefined) {
    host = PowerShellHost.start(effective);
    shared.set(key, host);
    // A failed start is not cached: the next caller tries again.
    void host.catch(() => shared.delete(key));
  }
  return host;
}

export async function closeSharedPowerShellHosts(): Promise<void> {
  const hosts = [...shared.values()];
  shared.clear();
  await Promise.all(hosts.map(async (h) => (await h.catch(() => null))?.close()));
}
