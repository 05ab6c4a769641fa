/**
 * A remediation request as it travels from intake (HTTP, CLI, alert, the relaxation sweep) to
 * the worker, and the schemas that validate it at each boundary.
 *
 * Two kinds of job, told apart by `mode`:
 * - a remediation (`diagnose` or `repair`) of a VM named by the request, with the permissions
 *   (`allow`) it grants and, for a repair, how long a relaxation may stand (`relaxForHours`);
 * - a restore (`restore`) of the security a completed remediation lowered (`restoreOf`). It
 *   raises security, so it takes no permissions, and its VM is the one that remediation ran on.
 */
import { createHash } from 'node:crypto';
import * as z from 'zod';
import { PermissionSchema, type Permission } from '../contract/actions.js';
import { RunIdSchema } from '../contract/parameters.js';
import { InputValidationError } from '../errors.js';
import { RequestModeSchema, type RequestMode } from './modes.js';
import { MAX_RESOURCE_ID_LENGTH, parseVmResourceId, type VmRef } from './resource-id.js';
import { fail, ok, type Result } from './result.js';

/** `expiry`: the relaxation sweep, restoring a relaxation whose time ran out. */
export const SOURCES = ['manual', 'alert', 'cli', 'expiry'] as const;
export type Source = (typeof SOURCES)[number];

/** What a job does: a remediation's mode, or a restore. */
export type JobMode = RequestMode | 'restore';

/** SECURITY_RELAX_TTL_HOURS: its default and bounds (src/config.ts). */
export const DEFAULT_RELAX_TTL_HOURS = 8;
/** Logs rows kept per VM as an alert's evidence (one per Computer name the VM logged under). */
export const MAX_ALERT_LOG_ROWS = 8;
export const MIN_RELAX_TTL_HOURS = 1;
export const MAX_RELAX_TTL_HOURS = 168;

/** Free text for the audit trail: no control, format or lone surrogate characters (they end up in logs and table properties). */
const auditText = (max: number) =>
  z
    .string()
    .max(max)
    .regex(/^[^\p{Cc}\p{Cf}\p{Cs}]*$/u, 'must not contain control characters');

const VmResourceIdSchema = z.string().min(1).max(MAX_RESOURCE_ID_LENGTH);
const AllowSchema = z.array(PermissionSchema).max(PermissionSchema.options.length);
/** Whole hours; the deployment's SECURITY_RELAX_TTL_HOURS caps it further. */
const RelaxForHoursSchema = z.number().int().min(MIN_RELAX_TTL_HOURS).max(MAX_RELAX_TTL_HOURS);
const absent = (why: string) => z.never({ error: why }).optional();

const DiagnoseRequestSchema = z
  .object({
    mode: z.literal('diagnose'),
    vmResourceId: VmResourceIdSchema,
    allow: AllowSchema.default([]),
    /** Free text for the audit trail (ticket number, who asked). */
    reason: auditText(256).optional(),
    relaxForHours: absent('only a repair can relax security; diagnose changes nothing'),
  })
  .strict();

const RepairRequestSchema = z
  .object({
    mode: z.literal('repair'),
    vmResourceId: VmResourceIdSchema,
    allow: AllowSchema.default([]),
    reason: auditText(256).optional(),
    /** How long a security-lowering change may stand before it is reverted; at most SECURITY_RELAX_TTL_HOURS. */
    relaxForHours: RelaxForHoursSchema.optional(),
  })
  .strict();

const RestoreRequestSchema = z
  .object({
    mode: z.literal('restore'),
    /** The remediation whose security changes are put back. */
    restoreOf: RunIdSchema,
    reason: auditText(256).optional(),
    vmResourceId: absent("a restore runs on the VM of the remediation it restores; leave vmResourceId out"),
    allow: absent('a restore raises security and takes no permissions'),
    relaxForHours: absent('a restore raises security; relaxForHours belongs to a repair'),
  })
  .strict();

/**
 * Body of POST /api/remediations: a remediation (`mode` diagnose, the default, or repair) or a
 * restore. The resource ID's own rules (Azure's naming rules, no dot segments, no control
 * characters) are checked by parseVmResourceId after this shape.
 */
export const RemediationRequestSchema = z.preprocess(
  (body) => (isPlainObject(body) && body['mode'] === undefined ? { ...body, mode: 'diagnose' } : body),
  z.discriminatedUnion('mode', [DiagnoseRequestSchema, RepairRequestSchema, RestoreRequestSchema]),
);
export type RemediationRequest = z.infer<typeof RemediationRequestSchema>;

/**
 * What the alert said about this VM, kept in the remediation's record: which alert and rule,
 * when it fired over which window, and for a workspace-targeted log alert the rows of the
 * shipped event query that named the VM (src/adapters/logs.ts). Bounded: it travels in the
 * queue message.
 */
export const AlertEvidenceSchema = z
  .object({
    alertId: z.string().max(200),
    rule: auditText(260).nullable(),
    monitoringService: auditText(64),
    firedAt: z.string().max(64),
    window: z.object({ start: z.string().max(64), end: z.string().max(64) }),
    logs: z
      .array(
        z.object({
          computer: auditText(256).nullable(),
          count: z.number().int().min(0),
          eventIds: z.array(z.number().int().min(0).max(65_535)).max(16),
          lastSeen: z.string().max(64).nullable(),
        }),
      )
      .max(MAX_ALERT_LOG_ROWS),
  })
  .strict();
export type AlertEvidence = z.infer<typeof AlertEvidenceSchema>;

interface JobBase {
  readonly id: string;
  readonly vm: VmRef;
  readonly source: Source;
  readonly requestedAt: string;
  readonly reason?: string;
}

/** Diagnose or repair one VM. */
export interface RemediateJob extends JobBase {
  readonly mode: RequestMode;
  readonly allow: readonly Permission[];
  /** Repair only: the requested lifetime of a relaxation, before the deployment's cap. */
  readonly relaxForHours?: number;
  /** Source 'alert' only: the alert's own evidence for this VM. */
  readonly alert?: AlertEvidence;
  readonly restoreOf?: never;
}

/** Put back the security that remediation `restoreOf` lowered, on its VM. */
export interface RestoreJob extends JobBase {
  readonly mode: 'restore';
  readonly restoreOf: string;
  readonly allow?: never;
  readonly relaxForHours?: never;
}

export type Job = RemediateJob | RestoreJob;

/** A restore asked for at intake: its VM is known once the remediation it names has been read. */
export interface RestoreRequest {
  readonly mode: 'restore';
  readonly id: string;
  readonly restoreOf: string;
  readonly source: Source;
  readonly requestedAt: string;
  readonly reason?: string;
}

/** The restore job for a request, on the VM of the remediation it restores. */
export function restoreJob(request: RestoreRequest, vm: VmRef): RestoreJob {
  const { id, restoreOf, source, requestedAt, reason } = request;
  return { id, vm, mode: 'restore', restoreOf, source, requestedAt, ...(reason === undefined ? {} : { reason }) };
}

const MessageBase = {
  v: z.literal(1),
  id: RunIdSchema,
  vmResourceId: VmResourceIdSchema,
  source: z.enum(SOURCES),
  requestedAt: z.string().max(64),
  /** Manual reasons are at most 256 characters; an alert's is "alert " and its rule name (at most 260). */
  reason: auditText(1024).optional(),
};

/** The queue message: a job with its VM as a plain ID. */
export const JobMessageSchema = z.discriminatedUnion('mode', [
  z.object({ ...MessageBase, mode: RequestModeSchema, allow: AllowSchema, relaxForHours: RelaxForHoursSchema.optional(), alert: AlertEvidenceSchema.optional() }).strict(),
  z.object({ ...MessageBase, mode: z.literal('restore'), restoreOf: RunIdSchema }).strict(),
]);
export type JobMessage = z.infer<typeof JobMessageSchema>;

export function toJobMessage(job: Job): JobMessage {
  const base = {
    v: 1 as const,
    id: job.id,
    vmResourceId: job.vm.id,
    source: job.source,
    requestedAt: job.requestedAt,
    ...(job.reason === undefined ? {} : { reason: job.reason }),
  };
  if (job.mode === 'restore') return { ...base, mode: 'restore', restoreOf: job.restoreOf };
  return {
    ...base,
    mode: job.mode,
    allow: [...job.allow],
    ...(job.relaxForHours === undefined ? {} : { relaxForHours: job.relaxForHours }),
    ...(job.alert === undefined ? {} : { alert: job.alert }),
  };
}

/** Turns zod issues into the error for the first offending field. */
export function firstIssue(error: z.ZodError): InputValidationError {
  const issue = error.issues[0];
  const field = issue && issue.path.length > 0 ? issue.path.map(String).join('.') : 'body';
  // Messages can quote the input (unrecognised keys): keep them short.
  const message = issue?.message ?? 'invalid';
  return new InputValidationError(field.length > 200 ? `${field.slice(0, 200)}…` : field, message.length > 300 ? `${message.slice(0, 300)}…` : message);
}

export function parseJobMessage(input: unknown): Result<Job, InputValidationError> {
  const parsed = JobMessageSchema.safeParse(input);
  if (!parsed.success) return fail(firstIssue(parsed.error));
  const vm = parseVmResourceId(parsed.data.vmResourceId);
  if (!vm.success) return vm;
  const m = parsed.data;
  const base = { id: m.id, vm: vm.data, source: m.source, requestedAt: m.requestedAt, ...(m.reason === undefined ? {} : { reason: m.reason }) };
  if (m.mode === 'restore') return ok({ ...base, mode: 'restore', restoreOf: m.restoreOf });
  return ok({
    ...base,
    mode: m.mode,
    allow: dedupe(m.allow),
    ...(m.relaxForHours === undefined ? {} : { relaxForHours: m.relaxForHours }),
    ...(m.alert === undefined ? {} : { alert: m.alert }),
  });
}

/**
 * Validates a request body: a remediation becomes its job; a restore stays a request until
 * intake has read the remediation it names (`restoreJob`).
 */
export function parseRemediationRequest(
  body: unknown,
  meta: { readonly id: string; readonly source: Source; readonly now: Date },
): Result<RemediateJob | RestoreRequest, InputValidationError> {
  const parsed = RemediationRequestSchema.safeParse(body);
  if (!parsed.success) return fail(firstIssue(parsed.error));
  const request = parsed.data;
  const common = { id: meta.id, source: meta.source, requestedAt: meta.now.toISOString(), ...(request.reason === undefined ? {} : { reason: request.reason }) };
  if (request.mode === 'restore') return ok({ ...common, mode: 'restore', restoreOf: request.restoreOf });
  const vm = parseVmResourceId(request.vmResourceId);
  if (!vm.success) return vm;
  return ok({
    ...common,
    vm: vm.data,
    mode: request.mode,
    allow: dedupe(request.allow),
    ...(request.mode === 'repair' && request.relaxForHours !== undefined ? { relaxForHours: request.relaxForHours } : {}),
  });
}

/** How long a relaxation stands: what the request asked for, never longer than the deployment allows. */
export function relaxationHours(requested: number | undefined, ttlHours: number): number {
  return requested === undefined ? ttlHours : Math.min(requested, ttlHours);
}

/** When a relaxation made at `loweredAt` is due to be reverted (ISO 8601, UTC, milliseconds: sortable as text). */
export function relaxationExpiry(loweredAt: Date, hours: number): string {
  return new Date(loweredAt.getTime() + hours * 3_600_000).toISOString();
}

/** A fixed namespace for restoreJobId (RFC 9562 name-based, SHA-1). */
const RESTORE_ID_NAMESPACE = Buffer.from('6f1d3c2a8b9e4d7f9a0c5e2b7d4f1a3c', 'hex');

/**
 * The id of the restore the relaxation sweep starts for remediation `remediationId`'s relaxation
 * due at `dueAt`: a name-based (version 5) UUID, so every tick that finds the same due entry,
 * before or after a crash, asks for the same restore, which the store's idempotent create and
 * the worker then run once.
 */
export function restoreJobId(remediationId: string, dueAt: string): string {
  const hash = createHash('sha1').update(RESTORE_ID_NAMESPACE).update(`restore|${remediationId}|${dueAt}`, 'utf8').digest();
  hash[6] = ((hash[6] ?? 0) & 0x0f) | 0x50;
  hash[8] = ((hash[8] ?? 0) & 0x3f) | 0x80;
  const hex = hash.subarray(0, 16).toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20, 32)}`;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function dedupe<T>(values: readonly T[]): T[] {
  return [...new Set(values)];
}
