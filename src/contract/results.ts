/**
 * The one JSON line each payload prints last. The TypeScript parser, the emulator and the
 * payload tests all use these schemas; the line must stay within Run Command's 4,096-byte
 * output window.
 */
import * as z from 'zod';
import { ActionIdSchema } from './actions.js';
import { RestoreSecurityLayerSchema, RestoreUserAuthenticationSchema } from './parameters.js';
import { ProbeFactsSchema } from './facts.js';

export const RESULT_LINE_MAX_BYTES = 4096;

export const PayloadErrorSchema = z.object({ code: z.string(), message: z.string() });
export type PayloadError = z.infer<typeof PayloadErrorSchema>;

const Value = z.union([z.string(), z.number(), z.boolean(), z.null()]);
export const ValuesSchema = z.record(z.string(), Value);
export type Values = z.infer<typeof ValuesSchema>;

/** How to undo a security-lowering change: the restore action and the parameters it needs. */
export const RestoreSchema = z.object({
  action: z.literal('restore-rdp-security'),
  /** Only the values to put back; never an empty string (an empty Run Command parameter breaks binding). */
  parameters: z
    .object({ RestoreSecurityLayer: RestoreSecurityLayerSchema.optional(), RestoreUserAuthentication: RestoreUserAuthenticationSchema.optional() })
    .strict(),
});
export type Restore = z.infer<typeof RestoreSchema>;

export const ActionResultSchema = z.object({
  id: ActionIdSchema,
  /** Whether the VM was changed (false on a no-op, on dry-run and on failure before any change). */
  changed: z.boolean(),
  before: ValuesSchema,
  after: ValuesSchema,
  /** Path of the backup written before the change, or null when nothing was changed. */
  backup: z.string().nullable(),
  /** The action re-read what it set and found the intended state. */
  verified: z.boolean(),
  error: PayloadErrorSchema.nullable(),
  restore: RestoreSchema.optional(),
});
export type ActionResult = z.infer<typeof ActionResultSchema>;

/**
 * What earlier fix runs with the probe's RunId left on the VM, read back from their manifests
 * (`ReadManifests=true`): one entry per readable `manifest.json` / `manifest-<n>.json`, in
 * sequence order, each action as the fix reported it. The size guard may shorten only the
 * display text in it (before / after strings, backup, error messages), and as a last resort
 * empty before / after; ids, `changed`, `verified`, error codes, `restore` and `sequence` stay.
 */
export const PreviousRunsSchema = z.object({
  /** The run's backup directory on the VM (where the manifests are). */
  dir: z.string(),
  runs: z.array(z.object({ sequence: z.number().int().min(1), actions: z.array(ActionResultSchema) })),
  /** Manifest files that exist but could not be read or parsed: a run happened whose record is lost. */
  unreadable: z.number().int().min(0),
});
export type PreviousRuns = z.infer<typeof PreviousRunsSchema>;

export const ProbeResultSchema = z.discriminatedUnion('ok', [
  z.object({ kind: z.literal('probe'), v: z.literal(1), ok: z.literal(true), runId: z.string(), facts: ProbeFactsSchema, previous: PreviousRunsSchema.optional() }),
  z.object({ kind: z.literal('probe'), v: z.literal(1), ok: z.literal(false), runId: z.string(), error: PayloadErrorSchema }),
]);
export type ProbeResult = z.infer<typeof ProbeResultSchema>;

export const FixResultSchema = z.object({
  kind: z.literal('fix'),
  v: z.literal(1),
  ok: z.boolean(),
  runId: z.string(),
  dryRun: z.boolean(),
  backupDir: z.string().nullable(),
  actions: z.array(ActionResultSchema),
  /** Facts re-read after the changes; null when the re-read itself failed. */
  verify: ProbeFactsSchema.nullable(),
  error: PayloadErrorSchema.nullable(),
});
export type FixResult = z.infer<typeof FixResultSchema>;
