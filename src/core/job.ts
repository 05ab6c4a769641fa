/**
 * A remediation request as it travels from intake (HTTP, CLI, alert) to the worker, and the
 * schemas that validate it at each boundary.
 */
import { z } from 'zod';
import { PermissionSchema, type Permission } from '../contract/actions.js';
import { RunIdSchema } from '../contract/parameters.js';
import { InputValidationError } from '../errors.js';
import { RequestModeSchema, type RequestMode } from './modes.js';
import { parseVmResourceId, type VmRef } from './resource-id.js';
import { fail, ok, type Result } from './result.js';

export const SOURCES = ['manual', 'alert', 'cli'] as const;
export type Source = (typeof SOURCES)[number];

/** Body of POST /api/remediations. */
export const RemediationRequestSchema = z
  .object({
    vmResourceId: z.string().min(1).max(1024),
    mode: RequestModeSchema.default('diagnose'),
    allow: z.array(PermissionSchema).max(PermissionSchema.options.length).default([]),
    /** Free text for the audit trail (ticket number, who asked). */
    reason: z.string().max(256).optional(),
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
    vmResourceId: z.string().min(1),
    mode: RequestModeSchema,
    allow: z.array(PermissionSchema),
    source: z.enum(SOURCES),
    requestedAt: z.string(),
    reason: z.string().optional(),
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
  const field = issue && issue.path.length > 0 ? issue.path.join('.') : 'body';
  return new InputValidationError(field, issue?.message ?? 'invalid');
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
