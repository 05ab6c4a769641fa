/**
 * Run Command parameters: the only way a value reaches a payload. Each is validated here
 * against an allow-list, and again by the payload's own param() validation.
 *
 * The Run Command agent builds an unquoted command line from the parameters (public reports:
 * azure-powershell #7269, #29880): a value is split at whitespace, `^` is stripped, and an
 * empty value leaves its `-Name` without an argument, so the script dies in parameter binding
 * and prints no result line. Every value that is sent must therefore be a plain token, and a
 * parameter with no value is not sent at all.
 */
import * as z from 'zod';
import { ActionIdSchema } from './actions.js';

/**
 * What any Run Command parameter value may look like: non-empty, and nothing the agent's
 * command line could split, strip or interpret (no whitespace, quotes, `^`, backtick, `$`,
 * `;`, `|`, `&`, parentheses, ...). Each parameter's own schema is stricter still.
 */
export const PLAIN_TOKEN = /^[A-Za-z0-9,._-]+$/;
export const PlainTokenSchema = z.string().regex(PLAIN_TOKEN, 'must be a plain token (letters, digits, "," "." "_" "-"; not empty)');

export const RunIdSchema = z.string().regex(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/, 'must be a lower-case GUID');

export const ProbeParametersSchema = z
  .object({
    RunId: RunIdSchema,
    /**
     * `true`: also read back the fix manifests an earlier attempt left under this RunId
     * (`%ProgramData%\RdpRemediation\<RunId>\manifest*.json`) into the result's `previous`.
     * Sent only by a resumed job; absent (never '') reads nothing.
     */
    ReadManifests: z.enum(['true', 'false']).optional(),
  })
  .strict();
export type ProbeParameters = z.infer<typeof ProbeParametersSchema>;

/** `SecurityLayer` for restore-rdp-security; absent leaves the value alone. */
export const RestoreSecurityLayerSchema = z.enum(['0', '1', '2']);
/** `UserAuthentication` for restore-rdp-security; absent leaves the value alone. */
export const RestoreUserAuthenticationSchema = z.enum(['0', '1']);

export const FixParametersSchema = z
  .object({
    RunId: RunIdSchema,
    /** Comma-separated action ids, in order. */
    Actions: z.string().refine(
      (s) => s.split(',').every((a) => ActionIdSchema.safeParse(a).success),
      'every entry must be a known action id',
    ),
    DryRun: z.enum(['true', 'false']),
    /** Only for restore-rdp-security. Absent (never '') leaves the value alone, and is not sent. */
    RestoreSecurityLayer: RestoreSecurityLayerSchema.optional(),
    RestoreUserAuthentication: RestoreUserAuthenticationSchema.optional(),
  })
  .strict();
export type FixParameters = z.infer<typeof FixParametersSchema>;

/** The marker on a payload's first line; the emulator reads it to know which payload ran. */
export const PAYLOAD_MARKER = '# rdp-remediator-payload:';
export type PayloadKind = 'probe' | 'fix';
