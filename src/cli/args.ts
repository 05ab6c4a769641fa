/** Command-line parsing for `rdp-remediator`: a pure function from argv to a command. */
import { PermissionSchema, type Permission } from '../contract/actions.js';
import { RequestModeSchema, type RequestMode } from '../core/modes.js';
import { fail, ok, type Result } from '../core/result.js';

export type CliCommand =
  | { readonly command: 'remediate'; readonly vmResourceId: string; readonly mode: RequestMode; readonly allow: readonly Permission[]; readonly json: boolean }
  | { readonly command: 'alert'; readonly payloadFile: string; readonly dryRun: boolean; readonly json: boolean }
  | { readonly command: 'help' };

export const USAGE = `Usage:
  rdp-remediator remediate <vmResourceId> [--mode diagnose|repair] [--allow <permission>[,<permission>]] [--json]
  rdp-remediator alert <payload.json> [--dry-run] [--json]   process an alert exactly as POST /api/alerts would
  rdp-remediator help

Permissions for --allow (security-lowering, off unless given): ${PermissionSchema.options.join(', ')}
Exit codes (remediate): 0 fixed or healthy, 2 not fixed, 3 skipped, 1 failed, 64 usage error.
Exit codes (alert): 0 processed (accepted, ignored or deduplicated), 65 malformed payload, 1 failed, 64 usage error.
Environment: see the README's configuration table (AZURE_RESOURCE_MANAGER_ENDPOINT, REMEDIATION_DEFAULT_MODE, ...).`;

export function parseArgs(argv: readonly string[]): Result<CliCommand, string> {
  const [command, ...rest] = argv;
  if (command === undefined || command === 'help' || command === '--help' || command === '-h') return ok({ command: 'help' });
  if (command === 'alert') return parseAlertArgs(rest);
  if (command !== 'remediate') return fail(`unknown command "${command}"`);

  let vmResourceId: string | undefined;
  let mode: RequestMode = 'diagnose';
  const allow = new Set<Permission>();
  let json = false;
  for (let i = 0; i < rest.length; i++) {
    const arg = rest[i] ?? '';
    const [flag, inline] = arg.startsWith('--') && arg.includes('=') ? [arg.slice(0, arg.indexOf('=')), arg.slice(arg.indexOf('=') + 1)] : [arg, undefined];
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
      default:
        if (flag.startsWith('-')) return fail(`unknown option "${flag}"`);
        if (vmResourceId !== undefined) return fail(`unexpected argument "${arg}"`);
        vmResourceId = arg;
    }
  }
  if (vmResourceId === undefined) return fail('remediate needs a VM resource ID');
  return ok({ command: 'remediate', vmResourceId, mode, allow: [...allow], json });
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
