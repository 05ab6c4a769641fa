/**
 * A remediation request as it travels from intake (HTTP, CLI, alert) to the worker, and the
 * schemas that validate it at each boundary.
 */
import { z } from 'zod';
import { PermissionSchema, type Permission } from '../contract/actions.js';
import { RunIdSchema } from '../contract/parameters.js';
import { InputValidationError } from '../errors.js';
import { RequestModeSchema, type RequestMode } from './modes.js';
import { MAX_RESOURCE_ID_LENGTH, parseVmResourceId, type VmRef } from './resource-id.js';
import { fail, ok, type Result } from './result.js';

export const SOURCES = ['manual', 'alert', 'cli'] as const;
export type Source = (typeof SOURCES)[number];

/** Free text for the audit trail: no control, format or lone surrogate characters (they end up in logs and table properties). */
const auditText = (max: number) =>
  z
    .string()
    .max(max)
    .regex(/^[^\p{Cc}\p{Cf}\p{Cs}]*$/u, 'must not contain control characters');

/**
 * Body of POST /api/remediations. The resource ID's own rules (Azure's naming rules, no dot
 * segments, no control characters) are checked by parseVmResourceId after this shape.
 */
export const RemediationRequestSchema = z
  .object({
    vmResourceId: z.string().min(1).max(MAX_RESOURCE_ID_LENGTH),
    mode: RequestModeSchema.default('diagnose'),
    allow: z.array(PermissionSchema).max(PermissionSchema.options.length).default([]),
    /** Free text for the audit trail (ticket number, who asked). */
    reason: auditText(256).optional(),
  })
  .strict();
export type RemediationRequest = z.infer<typeof RemediationRequestSchema>;

export interface Job {
  readonly id: string;
  readonly vm: VmRef;
  readonly mode: RequestMode;
  readonly allow: readonly Permission[];
  readonly source: Source;
  readonly requestedAt: string;
  readonly reason?: string;
}

/** The queue message: a job with its VM as a plain ID. */
export const JobMessageSchema = z
  .object({
    v: z.literal(1),
    id: RunIdSchema,
    vmResourceId: z.string().min(1).max(MAX_RESOURCE_ID_LENGTH),
    mode: RequestModeSchema,
    allow: z.array(PermissionSchema).max(PermissionSchema.options.length),
    source: z.enum(SOURCES),
    requestedAt: z.string().max(64),
    /** Manual reasons are at most 256 characters; an alert's is "alert " and its rule name (at most 260). */
    reason: auditText(1024).optional(),
  })
  .strict();
export type JobMessage = z.infer<typeof JobMessageSchema>;

export function toJobMessage(job: Job): JobMessage {
  return {
    v: 1,
    id: job.id,
    vmResourceId: job.vm.id,
    mode: job.mode,
    allow: [...job.allow],
    source: job.source,
    requestedAt: job.requestedAt,
    ...(job.reason === undefined ? {} : { reason: job.reason }),
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
  const { id, mode, allow, source, requestedAt, reason } = parsed.data;
  return ok({ id, vm: vm.data, mode, allow: dedupe(allow), source, requestedAt, ...(reason === undefined ? {} : { reason }) });
}

/** Validates a request body and turns it into a job. */
export function parseRemediationRequest(
  body: unknown,
  meta: { readonly id: string; readonly source: Source; readonly now: Date },
): Result<Job, InputValidationError> {
  const parsed = RemediationRequestSchema.safeParse(body);
  if (!parsed.success) return fail(firstIssue(parsed.error));
  const vm = parseVmResourceId(parsed.data.vmResourceId);
  if (!vm.success) return vm;
  return ok({
    id: meta.id,
    vm: vm.data,
    mode: parsed.data.mode,
    allow: dedupe(parsed.data.allow),
    source: meta.source,
    requestedAt: meta.now.toISOString(),
    ...(parsed.data.reason === undefined ? {} : { reason: parsed.data.reason }),
  });
}

function dedupe<T>(values: readonly T[]): T[] {
  return [...new Set(values)];
}
