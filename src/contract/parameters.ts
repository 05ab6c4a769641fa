/**
 * Run Command parameters: the only way a value reaches a payload. Each is validated here
 * against an allow-list, and again by the payload's own param() validation.
 */
import { z } from 'zod';
import { ActionIdSchema } from './actions.js';

export const RunIdSchema = z.string().regex(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/, 'must be a lower-case GUID');

export const ProbeParametersSchema = z.object({ RunId: RunIdSchema }).strict();
export type ProbeParameters = z.infer<typeof ProbeParametersSchema>;

export const FixParametersSchema = z
  .object({
    RunId: RunIdSchema,
    /** Comma-separated action ids, in order. */
    Actions: z.string().refine(
      (s) => s.split(',').every((a) => ActionIdSchema.safeParse(a).success),
      'every entry must be a known action id',
    ),
    DryRun: z.enum(['true', 'false']),
    /** Only for restore-rdp-security; '' leaves the value alone. */
    RestoreSecurityLayer: z.enum(['', '0', '1', '2']),
    RestoreUserAuthentication: z.enum(['', '0', '1']),
  })
  .strict();
export type FixParameters = z.infer<typeof FixParametersSchema>;

/** The marker on a payload's first line; the emulator reads it to know which payload ran. */
export const PAYLOAD_MARKER = '# rdp-remediator-payload:';
export type PayloadKind = 'probe' | 'fix';
