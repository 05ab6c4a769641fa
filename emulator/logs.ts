/**
 * The Azure Monitor Logs query API (`https://api.loganalytics.io/v1`) on the emulator's HTTPS
 * server, as its public REST reference describes it (see emulator/README.md): workspaces addressed by GUID
 * (`/v1/workspaces/{id}/query`) or by ARM resource id (`/v1/{resourceId}/query`), stored
 * `Event` rows, partial results and injected 429/503s. The emulator cannot run KQL: it
 * recognises the one query rdp-remediator sends by its marker line and evaluates that query's
 * semantics in code; any other query is refused with 400.
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { z } from 'zod';
import { EVENT_QUERY_MARKER, EVENT_SOURCES } from '../src/alerts/event-query.js';
import { decodePath, headerValue } from './arm.js';
import { bearerChallenge, verifyBearer, wrongAudienceMessage, type TokenRegistry } from './identity.js';
import type { ArmFault, FaultQueue } from './throttle.js';

/** A row of the `Event` table, with the columns the shipped query reads. */
export interface LogEvent {
  readonly TimeGenerated: Date | string;
  readonly _ResourceId: string;
  readonly Computer: string;
  readonly EventLog: string;
  readonly Source: string;
  readonly EventID: number;
  readonly RenderedDescription?: string;
}

export interface WorkspaceSpec {
  /** The workspace (customer) id, a GUID: what `queryWorkspace` takes. */
  readonly workspaceId: string;
  /** ARM id of the Microsoft.OperationalInsights/workspaces resource: what `queryResource` takes. */
  readonly resourceId: string;
}

/** Makes queries that read this workspace answer 200 with a top-level `PartialError`. */
export interface PartialErrorSpec {
  readonly message: string;
  /** Rows of these `_ResourceId`s (case-insensitive) are missing from the partial result. */
  readonly dropResourceIds?: readonly string[];
}

/** Forces the next `count` Logs responses to fail, after authentication and before routing. */
export type LogsFault = Omit<ArmFault, 'match'>;

export interface LogsRequestRecord {
  readonly method: string;
  /** The path as sent, so the SDK's `/v1//subscriptions/...` shows. */
  readonly path: string;
  readonly status: number;
  readonly time: number;
  readonly durationMs: number;
  readonly requestId: string;
  readonly principal: string | null;
  /** How the request addressed its data, once routed. */
  readonly target: 'workspace' | 'resource' | null;
  /** Workspace ids (GUIDs, lower-case) the query read; empty when it failed before reading. */
  readonly workspaceIds: readonly string[];
  /** Whether the query's first line is the event-query marker; null when the request carried no query. */
  readonly recognised: boolean | null;
  /** The `timespan` as sent. */
  readonly timespan: string | null;
  /** The interval the timespan resolved to (start inclusive, end exclusive), ISO strings. */
  readonly window: { readonly start: string; readonly end: string } | null;
  /** `Prefer: wait=N`, seconds. */
  readonly wait: number | null;
  /** Rows returned (200 only). */
  readonly rows: number | null;
  /** The 200 carried a top-level PartialError. */
  readonly partial: boolean;
  readonly errorCode: string | null;
  readonly injected: boolean;
}

export interface LogsServiceOptions {
  readonly onRequest: ((record: LogsRequestRecord) => void) | undefined;
  /** Whether ARM knows a (non-workspace) resource, for resource-centric queries on VMs. */
  readonly resourceExists: (resourceId: string) => boolean;
}

/** The Logs API's own audience, plus the emulator's endpoint for clients that scope tokens to it. */
const LOGS_AUDIENCES = ['https://api.loganalytics.io'];

const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const WORKSPACE_RESOURCE = /^\/subscriptions\/[^/]+\/resourcegroups\/[^/]+\/providers\/microsoft\.operationalinsights\/workspaces\/[^/]+$/i;

const QueryBodySchema = z.object({
  query: z.string().min(1),
  timespan: z.string().optional(),
  workspaces: z.array(z.string()).optional(),
});

/** The error envelope the Logs API uses: code, message, correlationId, optional inner error. */
class LogsError extends Error {
  public constructor(
    public readonly status: number,
    public readonly code: string,
    message: string,
    public readonly headers: Record<string, string> = {},
    public readonly innererror?: { code: string; message: string },
  ) {
    super(message);
  }
}

interface StoredEvent {
  readonly time: number;
  readonly resourceId: string;
  readonly computer: string;
  readonly eventLog: string;
  readonly source: string;
  readonly eventId: number;
  readonly description: string;
}

interface Workspace {
  readonly workspaceId: string;
  readonly resourceId: string;
  readonly events: StoredEvent[];
  partial: PartialErrorSpec | null;
}

interface Window {
  readonly start: number;
  readonly end: number;
}

/** What a query reads: whole workspaces, or (resource-centric) only one resource's rows in them. */
interface Scope {
  readonly target: 'workspace' | 'resource';
  readonly workspaces: readonly Workspace[];
  readonly resourceFilter: string | null;
}

interface ParsedRequest {
  readonly query: string | null;
  readonly timespan: string | null;
  readonly workspaces: readonly string[];
  readonly wait: number | null;
  readonly bodyError: string | null;
}

export class LogsService {
  private readonly workspaces = new Map<string, Workspace>();
  private readonly byResourceId = new Map<string, Workspace>();
  public readonly requests: LogsRequestRecord[] = [];
  private stopped = false;

  public constructor(
    private readonly tokens: TokenRegistry,
    private readonly faults: FaultQueue,
    private readonly options: LogsServiceOptions,
    private readonly extraAudiences: () => readonly string[],
  ) {}

  public addWorkspace(spec: WorkspaceSpec): string {
    if (!GUID.test(spec.workspaceId)) throw new Error(`addWorkspace: workspaceId '${spec.workspaceId}' is not a GUID`);
    const resourceKey = normaliseResourceId(spec.resourceId);
    if (!WORKSPACE_RESOURCE.test(resourceKey)) throw new Error(`addWorkspace: '${spec.resourceId}' is not a Microsoft.OperationalInsights/workspaces resource id`);
    const key = spec.workspaceId.toLowerCase();
    if (this.workspaces.has(key) || this.byResourceId.has(resourceKey)) throw new Error(`workspace ${spec.workspaceId} (${spec.resourceId}) already exists in the emulator`);
    const workspace: Workspace = { workspaceId: spec.workspaceId, resourceId: spec.resourceId, events: [], partial: null };
    this.workspaces.set(key, workspace);
    this.byResourceId.set(resourceKey, workspace);
    return spec.workspaceId;
  }

  public addEvents(workspaceId: string, events: readonly LogEvent[]): void {
    const workspace = this.workspace(workspaceId);
    const stored = events.map((event, i): StoredEvent => {
      const time = event.TimeGenerated instanceof Date ? event.TimeGenerated.getTime() : parseInstant(event.TimeGenerated);
      if (time === null || Number.isNaN(time)) throw new Error(`addEvents: event ${i} has an invalid TimeGenerated '${String(event.TimeGenerated)}'`);
      if (!Number.isInteger(event.EventID)) throw new Error(`addEvents: event ${i} has a non-integer EventID`);
      return {
        time,
        // Stored as given: real workspaces often hold _ResourceId in lower case, and tests
        // seed that shape deliberately to exercise the app's case handling.
        resourceId: event._ResourceId,
        computer: event.Computer,
        eventLog: event.EventLog,
        source: event.Source,
        eventId: event.EventID,
        description: event.RenderedDescription ?? '',
      };
    });
    workspace.events.push(...stored);
  }

  public setPartialError(workspaceId: string, partial: PartialErrorSpec | null): void {
    this.workspace(workspaceId).partial = partial === null ? null : { message: partial.message, dropResourceIds: [...(partial.dropResourceIds ?? [])] };
  }

  public clearRequests(): void {
    this.requests.length = 0;
  }

  public stop(): void {
    this.stopped = true;
  }

  private workspace(workspaceId: string): Workspace {
    const workspace = this.workspaces.get(workspaceId.toLowerCase());
    if (!workspace) throw new Error(`no workspace ${workspaceId} in the emulator`);
    return workspace;
  }

  // -------------------------------------------------------------------------------------------
  // Pipeline

  public async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const time = Date.now();
    const method = (req.method ?? 'GET').toUpperCase();
    const url = new URL(req.url ?? '/', 'https://emulator.invalid');
    const requestId = randomUUID();
    const correlationId = headerValue(req, 'x-ms-correlation-request-id') ?? randomUUID();
    const headers: Record<string, string> = { 'x-ms-request-id': requestId, 'x-ms-correlation-request-id': correlationId };
    let principal: string | null = null;
    let injected = false;
    let parsed: ParsedRequest = { query: null, timespan: null, workspaces: [], wait: parseWait(headerValue(req, 'prefer')), bodyError: null };
    let scope: Scope | null = null;
    let window: Window | null = null;
    let rows: number | null = null;
    let partial = false;

    const send = (status: number, body: unknown, extra: Record<string, string> = {}): void => {
      const text = JSON.stringify(body);
      res.writeHead(status, { ...headers, ...extra, 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text) });
      res.end(text);
      const record: LogsRequestRecord = {
        method,
        path: url.pathname,
        status,
        time,
        durationMs: Date.now() - time,
        requestId,
        principal,
        target: scope?.target ?? null,
        workspaceIds: status === 200 ? (scope?.workspaces.map((w) => w.workspaceId.toLowerCase()) ?? []) : [],
        recognised: parsed.query === null ? null : isEventQuery(parsed.query),
        timespan: parsed.timespan,
        window: window === null ? null : { start: new Date(window.start).toISOString(), end: new Date(window.end).toISOString() },
        wait: parsed.wait,
        rows,
        partial,
        errorCode: status === 200 ? null : errorCodeOf(body),
        injected,
      };
      this.requests.push(record);
      this.options.onRequest?.(record);
    };

    try {
      const body = await readBody(req);
      // Read the request before authenticating, so that every record says which query it carried.
      parsed = parseRequest(method, url, body, parsed.wait);
      if (this.stopped) throw new LogsError(503, 'ServiceUnavailableError', 'The emulator is shutting down.');

      principal = this.authenticate(req);

      const fault = this.faults.take(method === 'GET' ? 'read' : 'write', decodePath(url.pathname));
      if (fault) {
        injected = true;
        throw faultError(fault);
      }

      scope = this.route(method, decodePath(url.pathname), parsed.workspaces);
      if (parsed.bodyError !== null) throw new LogsError(400, 'BadArgumentError', 'The request had some invalid properties', {}, { code: 'InvalidRequestBody', message: parsed.bodyError });
      const query = parsed.query ?? '';
      if (!isEventQuery(query)) {
        throw new LogsError(400, 'BadArgumentError', 'The emulator evaluates only the rdp-remediator event query', {}, {
          code: 'UnsupportedQuery',
          message: `The first line of the query must be '${EVENT_QUERY_MARKER}'; the emulator cannot run other KQL.`,
        });
      }
      window = parsed.timespan === null ? null : parseTimespan(parsed.timespan, Date.now());

      const result = evaluate(scope, window);
      rows = result.rows.length;
      partial = result.error !== null;
      const table = { name: 'PrimaryResult', columns: EVENT_QUERY_COLUMNS, rows: result.rows };
      send(200, result.error === null ? { tables: [table] } : { tables: [table], error: result.error });
    } catch (error) {
      if (error instanceof LogsError) {
        // Every non-200 carries `error`: the SDK's deserializer reads body.error unconditionally.
        const envelope: Record<string, unknown> = { message: error.message, code: error.code, correlationId };
        if (error.innererror) envelope['innererror'] = error.innererror;
        send(error.status, { error: envelope }, error.headers);
        return;
      }
      const message = error instanceof Error ? error.message : String(error);
      send(500, { error: { message: `The emulator failed: ${message}`, code: 'InternalServerError', correlationId } });
    }
  }

  private authenticate(req: IncomingMessage): string {
    const checked = verifyBearer(headerValue(req, 'authorization'), this.tokens, [...LOGS_AUDIENCES, ...this.extraAudiences()]);
    if (checked.ok) return checked.issued.principal;
    const challenge = (description: string) => bearerChallenge(this.tokens.tenantId, description);
    const { failure } = checked;
    switch (failure.reason) {
      case 'missing':
        throw new LogsError(401, 'AuthorizationRequiredError', 'Valid authentication was not provided', challenge('The Authorization header is missing.'));
      case 'malformed':
      case 'invalid':
        throw new LogsError(401, 'AuthorizationRequiredError', 'Valid authentication was not provided: the access token is invalid.', challenge('The access token is invalid.'));
      case 'expired':
        throw new LogsError(401, 'AuthorizationRequiredError', 'Valid authentication was not provided: the access token has expired.', challenge('The access token has expired.'));
      case 'audience':
        throw new LogsError(401, 'InvalidAuthenticationTokenAudience', wrongAudienceMessage(failure.resource, failure.allowed), challenge('The access token has an invalid audience.'));
    }
  }

  // -------------------------------------------------------------------------------------------
  // Routes

  /** Resolves the path (already `//`-collapsed by decodePath) and any additional workspaces. */
  private route(method: string, path: string, additional: readonly string[]): Scope {
    const rest = /^\/v1(\/.*)?$/i.exec(path)?.[1] ?? '';
    const queryPath = /^(.*)\/query$/i.exec(rest)?.[1];
    if (queryPath === undefined || queryPath === '' || (method !== 'POST' && method !== 'GET')) {
      if (/^\/\$batch$/i.test(rest)) throw new LogsError(400, 'BadArgumentError', 'The emulator does not serve $batch queries; send each query on its own.');
      throw new LogsError(404, 'PathNotFoundError', 'The requested path does not exist');
    }
    const byId = /^\/workspaces\/([^/]+)$/i.exec(queryPath);
    let primary: Scope;
    if (byId) {
      primary = { target: 'workspace', workspaces: [this.resolveWorkspace(byId[1] ?? '')], resourceFilter: null };
    } else if (/^\/subscriptions\//i.test(queryPath)) {
      primary = this.resolveResource(queryPath);
    } else {
      throw new LogsError(404, 'PathNotFoundError', 'The requested path does not exist');
    }
    const extra = additional.map((name) => this.resolveWorkspace(name));
    const all = [...primary.workspaces];
    for (const ws of extra) if (!all.includes(ws)) all.push(ws);
    return { ...primary, workspaces: all };
  }

  /** A workspace by GUID or by ARM id (the forms `additionalWorkspaces` also accepts). */
  private resolveWorkspace(name: string): Workspace {
    const workspace = this.workspaces.get(name.toLowerCase()) ?? this.byResourceId.get(normaliseResourceId(name));
    if (!workspace) throw new LogsError(404, 'WorkspaceNotFoundError', `The workspace could not be found: '${name}'.`);
    return workspace;
  }

  private resolveResource(resourceId: string): Scope {
    const key = normaliseResourceId(resourceId);
    const workspace = this.byResourceId.get(key);
    if (workspace) return { target: 'resource', workspaces: [workspace], resourceFilter: null };
    if (WORKSPACE_RESOURCE.test(key)) throw new LogsError(404, 'WorkspaceNotFoundError', `The workspace could not be found: '${resourceId}'.`);
    // A resource-centric query on another resource (a VM) reads that resource's rows from every
    // workspace, as the service does for resources whose logs land in workspaces.
    if (this.options.resourceExists(resourceId)) return { target: 'resource', workspaces: [...this.workspaces.values()], resourceFilter: key };
    throw new LogsError(404, 'ResourceNotFoundError', `The resource '${resourceId}' could not be found.`);
  }
}

// ---------------------------------------------------------------------------------------------
// The event query (infra/queries/rdp-events.kql, v1), evaluated in code

const EVENT_QUERY_COLUMNS = [
  { name: '_ResourceId', type: 'string' },
  { name: 'Computer', type: 'string' },
  { name: 'Count', type: 'long' },
  { name: 'EventIDs', type: 'dynamic' },
  { name: 'LastSeen', type: 'datetime' },
] as const;

/** KQL `has "Remote Desktop Services"`: case-insensitive, the words as whole terms in a row. */
const RDP_SERVICES_TERM = /(?<![\p{L}\p{N}_])remote[^\p{L}\p{N}_]+desktop[^\p{L}\p{N}_]+services(?![\p{L}\p{N}_])/iu;

export function isEventQuery(query: string): boolean {
  const first = query.replace(/^\uFEFF/, '').split('\n', 1)[0] ?? '';
  return first.trim() === EVENT_QUERY_MARKER;
}

/** The query's `where` clauses: KQL `==` on strings is case-sensitive, so these are too. */
function matchesEventQuery(event: StoredEvent): boolean {
  if (event.eventLog !== 'System') return false;
  if (!Object.hasOwn(EVENT_SOURCES, event.source)) return false;
  const ids: readonly number[] = EVENT_SOURCES[event.source as keyof typeof EVENT_SOURCES];
  if (!ids.includes(event.eventId)) return false;
  if (event.source === 'Service Control Manager') return RDP_SERVICES_TERM.test(event.description);
  return true;
}

interface EvaluationResult {
  readonly rows: unknown[][];
  readonly error: Record<string, unknown> | null;
}

function evaluate(scope: Scope, window: Window | null): EvaluationResult {
  const groups = new Map<string, { resourceId: string; computer: string; count: number; ids: Set<number>; last: number }>();
  const details: Record<string, unknown>[] = [];
  let message: string | null = null;
  for (const workspace of scope.workspaces) {
    const dropped = new Set((workspace.partial?.dropResourceIds ?? []).map((id) => id.toLowerCase()));
    if (workspace.partial) {
      message ??= workspace.partial.message;
      details.push({
        code: 'EngineError',
        message: workspace.partial.message,
        target: workspace.workspaceId,
        resources: [...(workspace.partial.dropResourceIds ?? [])],
        innererror: { code: 'EmulatedPartialFailure', message: `Rows of ${dropped.size} resource(s) could not be read from workspace ${workspace.workspaceId}.`, severity: 2, severityName: 'Error' },
      });
    }
    for (const event of workspace.events) {
      if (window !== null && (event.time < window.start || event.time >= window.end)) continue;
      if (scope.resourceFilter !== null && normaliseResourceId(event.resourceId) !== scope.resourceFilter) continue;
      if (!matchesEventQuery(event)) continue;
      // `isnotempty(_ResourceId)`: only null and "" are empty in KQL.
      if (event.resourceId === '') continue;
      if (dropped.has(event.resourceId.toLowerCase())) continue;
      // `summarize ... by _ResourceId, Computer` groups on exact (case-sensitive) values.
      const key = `${event.resourceId}\u0000${event.computer}`;
      const group = groups.get(key) ?? { resourceId: event.resourceId, computer: event.computer, count: 0, ids: new Set<number>(), last: event.time };
      group.count += 1;
      group.ids.add(event.eventId);
      group.last = Math.max(group.last, event.time);
      groups.set(key, group);
    }
  }
  // summarize has no defined order; sorting makes the emulator's answer repeatable.
  const sorted = [...groups.values()].sort((a, b) => compare(a.resourceId, b.resourceId) || compare(a.computer, b.computer));
  // On the wire, long cells are JSON numbers, datetime cells ISO strings and dynamic cells
  // JSON text (the SDK JSON.parses dynamic columns and turns datetime columns into Dates).
  const rows = sorted.map((g) => [g.resourceId, g.computer, g.count, JSON.stringify([...g.ids].sort((a, b) => a - b)), new Date(g.last).toISOString()]);
  const error = message === null ? null : { code: 'PartialError', message, details };
  return { rows, error };
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

// ---------------------------------------------------------------------------------------------
// Timespans (ISO 8601 intervals, as convertTimespanToInterval in @azure/monitor-query-logs writes them)

const DURATION = /^P(?:(\d+(?:\.\d+)?)Y)?(?:(\d+(?:\.\d+)?)M)?(?:(\d+(?:\.\d+)?)W)?(?:(\d+(?:\.\d+)?)D)?(?:T(?:(\d+(?:\.\d+)?)H)?(?:(\d+(?:\.\d+)?)M)?(?:(\d+(?:\.\d+)?)S)?)?$/i;
const INSTANT = /^\d{4}-\d{2}-\d{2}(?:T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?$/i;

/**
 * Milliseconds of an ISO 8601 duration, or null. Years and months are fixed lengths (365 and
 * 30 days), as .NET's XmlConvert.ToTimeSpan counts them, since an interval has to be absolute.
 */
export function parseDuration(text: string): number | null {
  const match = DURATION.exec(text);
  if (!match || text.endsWith('T') || text.length < 3) return null;
  const n = (i: number): number => Number(match[i] ?? 0);
  const days = n(1) * 365 + n(2) * 30 + n(3) * 7 + n(4);
  return Math.round((days * 86_400 + n(5) * 3600 + n(6) * 60 + n(7)) * 1000);
}

/** Milliseconds since the epoch of an ISO 8601 date(-time), or null; no zone means UTC. */
function parseInstant(text: string): number | null {
  const match = INSTANT.exec(text.trim());
  if (!match) return null;
  const hasTime = text.includes('T') || text.includes('t');
  const value = Date.parse(hasTime && match[1] === undefined ? `${text.trim()}Z` : text.trim());
  return Number.isNaN(value) ? null : value;
}

/** `start/end`, `start/duration`, `duration/end`, or a bare duration ending now. */
export function parseTimespan(text: string, now: number): Window {
  const invalid = (): LogsError =>
    new LogsError(400, 'BadArgumentError', 'The request had some invalid properties', {}, { code: 'InvalidTimespan', message: `Failed to parse the timespan '${text}' as an ISO 8601 interval.` });
  const parts = text.trim().split('/');
  let window: Window;
  if (parts.length === 1) {
    const duration = parseDuration(parts[0] ?? '');
    if (duration === null) throw invalid();
    window = { start: now - duration, end: now };
  } else if (parts.length === 2) {
    const [a = '', b = ''] = parts;
    const startAt = parseInstant(a);
    const endAt = parseInstant(b);
    if (startAt !== null && endAt !== null) window = { start: startAt, end: endAt };
    else if (startAt !== null) {
      const duration = parseDuration(b);
      if (duration === null) throw invalid();
      window = { start: startAt, end: startAt + duration };
    } else if (endAt !== null) {
      const duration = parseDuration(a);
      if (duration === null) throw invalid();
      window = { start: endAt - duration, end: endAt };
    } else throw invalid();
  } else throw invalid();
  if (window.end < window.start) throw invalid();
  return window;
}

// ---------------------------------------------------------------------------------------------
// Helpers

/** Lower case, one slash between segments, leading slash, no trailing slash. */
function normaliseResourceId(id: string): string {
  return `/${id.split('/').filter((s) => s !== '').join('/')}`.toLowerCase();
}

function parseWait(prefer: string | undefined): number | null {
  const match = /(?:^|[,;\s])wait\s*=\s*(\d+)/i.exec(prefer ?? '');
  return match?.[1] === undefined ? null : Number(match[1]);
}

/** The query from a POST body (JSON) or a GET query string; problems are reported later, in order. */
function parseRequest(method: string, url: URL, body: string, wait: number | null): ParsedRequest {
  if (method === 'GET') {
    const param = (name: string): string | null => {
      for (const [k, v] of url.searchParams) if (k.toLowerCase() === name) return v;
      return null;
    };
    const query = param('query');
    const workspaces = (param('workspaces') ?? '').split(',').map((s) => s.trim()).filter((s) => s !== '');
    return { query, timespan: param('timespan'), workspaces, wait, bodyError: query === null || query === '' ? "The 'query' parameter is required." : null };
  }
  let json: unknown;
  try {
    json = body === '' ? undefined : JSON.parse(body);
  } catch (error) {
    return { query: null, timespan: null, workspaces: [], wait, bodyError: `The request body is not valid JSON: ${error instanceof Error ? error.message : String(error)}` };
  }
  const parsed = QueryBodySchema.safeParse(json);
  if (!parsed.success) {
    const raw = typeof json === 'object' && json !== null && 'query' in json && typeof json.query === 'string' ? json.query : null;
    return { query: raw, timespan: null, workspaces: [], wait, bodyError: parsed.error.issues.map((i) => `'${i.path.join('.') || 'body'}': ${i.message}`).join('; ') };
  }
  return { query: parsed.data.query, timespan: parsed.data.timespan ?? null, workspaces: parsed.data.workspaces ?? [], wait, bodyError: null };
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    const buffer = Buffer.isBuffer(chunk) ? chunk : Buffer.from(String(chunk));
    size += buffer.length;
    if (size > 4 * 1024 * 1024) throw new LogsError(413, 'BadArgumentError', 'The request content exceeds the maximum allowed size.');
    chunks.push(buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

function errorCodeOf(body: unknown): string | null {
  if (typeof body !== 'object' || body === null || !('error' in body)) return null;
  const error = body.error;
  if (typeof error !== 'object' || error === null || !('code' in error)) return null;
  return typeof error.code === 'string' ? error.code : null;
}

function faultError(fault: LogsFault): LogsError {
  const headers: Record<string, string> = fault.retryAfterSeconds === undefined ? {} : { 'retry-after': String(fault.retryAfterSeconds) };
  return fault.status === 429
    ? new LogsError(429, 'ThrottledError', 'The request was throttled: too many queries are running or queued for this user. Retry after the time in the Retry-After header.', headers)
    : new LogsError(503, 'ServiceUnavailableError', 'The service is temporarily unavailable. Please try again later.', headers);
}
