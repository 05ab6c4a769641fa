/** Command-line parsing for `rdp-remediator`: a pure function from argv to a command. */
import { PermissionSchema, type Permission } from '../contract/actions.js';
import { RunIdSchema } from '../contract/parameters.js';
import { MAX_RELAX_TTL_HOURS, MIN_RELAX_TTL_HOURS } from '../core/job.js';
import { RequestModeSchema, type RequestMode } from '../core/modes.js';
import { fail, ok, type Result } from '../core/result.js';

export type CliCommand =
  | {
      readonly command: 'remediate';
      readonly vmResourceId: string;
      readonly mode: RequestMode;
      readonly allow: readonly Permission[];
      /** Repair only: hours a relaxation may stand (SECURITY_RELAX_TTL_HOURS caps it). */
      readonly relaxForHours?: number;
      readonly json: boolean;
    }
  | { readonly command: 'restore'; readonly remediationId: string; readonly reason?: string; readonly json: boolean }
  | { readonly command: 'alert'; readonly payloadFile: string; readonly dryRun: boolean; readonly json: boolean }
  | { readonly command: 'help' };

export const USAGE = `Usage:
  rdp-remediator remediate <vmResourceId> [--mode diagnose|repair] [--allow <permission>[,<permission>]] [--relax-hours <n>] [--json]
  rdp-remediator restore <remediationId> [--reason <text>] [--json]   put back the security that remediation lowered
  rdp-remediator alert <payload.json> [--dry-run] [--json]   process an alert exactly as POST /api/alerts would
  rdp-remediator help

Permissions for --allow (security-lowering, off unless given): ${PermissionSchema.options.join(', ')}
--relax-hours: how long a relaxation may stand before it is reverted (${MIN_RELAX_TTL_HOURS}-${MAX_RELAX_TTL_HOURS}; SECURITY_RELAX_TTL_HOURS caps it).
restore reads the remediation's record, so it needs the app's storage (AzureWebJobsStorage).
Exit codes (remediate, restore): 0 fixed, healthy or restored, 2 not fixed or restore failed, 3 skipped, 1 failed,
  64 usage error, 65 nothing to restore (unknown remediation, no security change, already restored).
Exit codes (alert): 0 processed (accepted, ignored or deduplicated), 65 malformed payload, 1 failed, 64 usage error.
Environment: see the README's configuration table (AZURE_RESOURCE_MANAGER_ENDPOINT, REMEDIATION_DEFAULT_MODE, ...).`;

export function parseArgs(argv: readonly string[]): Result<CliCommand, string> {
  const [command, ...rest] = argv;
  if (command === undefined || command === 'help' || command === '--help' || command === '-h') return ok({ command: 'help' });
  if (command === 'alert') return parseAlertArgs(rest);
  if (command === 'restore') return parseRestoreArgs(rest);
  if (command !== 'remediate') return fail(`unknown command "${command}"`);

  let vmResourceId: string | undefined;
  let mode: RequestMode = 'diagnose';
  const allow = new Set<Permission>();
  let relaxForHours: number | undefined;
  let json = false;
  for (let i = 0; i < rest.length; i++) {
    const arg = rest[i] ?? '';
    const [flag, inline] = splitFlag(arg);
    const value = () => inline ?? rest[++i];
    switch (flag) {
      case '--json':
        json = true;
        break;
      case '--mode': {
        const parsed = RequestModeSchema.safeParse(value());
        if (!parsed.success) return fail('--mode must be diagnose or repair');
        mode = parsed.data;
        break;
      }
      case '--allow': {
        for (const entry of (value() ?? '').split(',').filter(Boolean)) {
          const parsed = PermissionSchema.safeParse(entry);
          if (!parsed.success) return fail(`--allow: unknown permission "${entry}" (known: ${PermissionSchema.options.join(', ')})`);
          allow.add(parsed.data);
        }
        break;
      }
      case '--relax-hours': {
        const text = value() ?? '';
        const hours = /^\d+$/.test(text) ? Number(text) : NaN;
        if (!(hours >= MIN_RELAX_TTL_HOURS && hours <= MAX_RELAX_TTL_HOURS)) return fail(`--relax-hours must be a whole number of hours from ${MIN_RELAX_TTL_HOURS} to ${MAX_RELAX_TTL_HOURS}`);
        relaxForHours = hours;
        break;
      }
      default:
        if (flag.startsWith('-')) return fail(`unknown option "${flag}"`);
        if (vmResourceId !== undefined) return fail(`unexpected argument "${arg}"`);
        vmResourceId = arg;
    }
  }
  if (vmResourceId === undefined) return fail('remediate needs a VM resource ID');
  if (relaxForHours !== undefined && mode !== 'repair') return fail('--relax-hours needs --mode repair: only a repair relaxes security');
  return ok({ command: 'remediate', vmResourceId, mode, allow: [...allow], ...(relaxForHours === undefined ? {} : { relaxForHours }), json });
}

/** `--flag=value` as [flag, value]; anything else as [arg, undefined]. */
function splitFlag(arg: string): [string, string | undefined] {
  return arg.startsWith('--') && arg.includes('=') ? [arg.slice(0, arg.indexOf('=')), arg.slice(arg.indexOf('=') + 1)] : [arg, undefined];
}

function parseRestoreArgs(rest: readonly string[]): Result<CliCommand, string> {
  let remediationId: string | undefined;
  let reason: string | undefined;
  let json = false;
  for (let i = 0; i < rest.length; i++) {
    const arg = rest[i] ?? '';
    const [flag, inline] = splitFlag(arg);
    if (flag === '--json') json = true;
    else if (flag === '--reason') {
      reason = inline ?? rest[++i];
      if (reason === undefined) return fail('--reason needs a text');
    } else if (flag.startsWith('-')) return fail(`unknown option "${flag}"`);
    else if (remediationId !== undefined) return fail(`unexpected argument "${arg}"`);
    else remediationId = arg;
  }
  if (remediationId === undefined) return fail('restore needs the id of the remediation whose security changes to put back');
  if (!RunIdSchema.safeParse(remediationId).success) return fail(`restore: "${remediationId}" is not a remediation id (a lower-case GUID)`);
  return ok({ command: 'restore', remediationId, ...(reason === undefined ? {} : { reason }), json });
}

function parseAlertArgs(rest: readonly string[]): Result<CliCommand, string> {
  let payloadFile: string | undefined;
  let dryRun = false;
  let json = false;
  for (const arg of rest) {
    if (arg === '--dry-run') dryRun = true;
    else if (arg === '--json') json = true;
    else if (arg.startsWith('-')) return fail(`unknown option "${arg}"`);
    else if (payloadFile !== undefined) return fail(`unexpected argument "${arg}"`);
    else payloadFile = arg;
  }
  if (payloadFile === undefined) return fail('alert needs a payload file (a common-alert-schema JSON body)');
  return ok({ command: 'alert', payloadFile, dryRun, json });
}
