/**
 * Command-line parsing for `rdp-remediator`: a pure function from argv to a command, on
 * node:util's parseArgs (strict: an unknown option or a value where none belongs is a usage
 * error). Each command's usage, options and exit codes live here, in one place, and
 * `<command> --help` prints them.
 */
import { parseArgs as parseArgv } from 'node:util';
import { PermissionSchema, type Permission } from '../contract/actions.js';
import { RunIdSchema } from '../contract/parameters.js';
import { MAX_RELAX_TTL_HOURS, MIN_RELAX_TTL_HOURS } from '../core/job.js';
import { RequestModeSchema, type RequestMode } from '../core/modes.js';
import { parseVmResourceId } from '../core/resource-id.js';
import { fail, ok, type Result } from '../core/result.js';
import { DEFAULT_SCAN_CONCURRENCY, MAX_SCAN_CONCURRENCY, type TagFilter } from '../core/scan.js';

export const COMMAND_NAMES = ['remediate', 'restore', 'alert', 'scan'] as const;
export type CommandName = (typeof COMMAND_NAMES)[number];

export type ScanOutput = 'table' | 'json' | 'csv';

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
  | {
      readonly command: 'scan';
      readonly subscriptionId: string;
      /** Empty: the whole subscription. */
      readonly resourceGroups: readonly string[];
      readonly tags: readonly TagFilter[];
      readonly concurrency: number;
      readonly output: ScanOutput;
      readonly json: boolean;
    }
  | { readonly command: 'help'; readonly topic?: CommandName }
  | { readonly command: 'version' };

/** A command line that cannot run: the message, the command it was for, and whether errors go out as JSON (`--json` was given). */
export interface UsageError {
  readonly message: string;
  readonly command?: CommandName;
  readonly json: boolean;
}

export const EXIT_USAGE = 64;

const JSON_ERRORS = '--json                     print the result as JSON on stdout; any error as one {"error":{"code","message",...}} object there too';
const HELP_OPTION = '-h, --help                 show this help';
const ENVIRONMENT = "Environment: see the README's configuration table (AZURE_RESOURCE_MANAGER_ENDPOINT, REMEDIATION_DEFAULT_MODE, ...).";

/** Each command's help: usage line, what it does, options, exit codes. */
const HELP: Readonly<Record<CommandName, string>> = {
  remediate: `Usage: rdp-remediator remediate <vmResourceId> [--mode diagnose|repair] [--allow <permission>[,<permission>]]... [--relax-hours <n>] [--json]

Diagnoses or repairs one VM in-process, through the same pipeline as the queue worker.

Options:
  --mode diagnose|repair     diagnose (the default) probes and prints the plan; repair runs it
  --allow <permissions>      security-lowering actions to permit (off unless given): ${PermissionSchema.options.join(', ')}
  --relax-hours <n>          repair only: hours a relaxation may stand before it is reverted (${MIN_RELAX_TTL_HOURS}-${MAX_RELAX_TTL_HOURS}; SECURITY_RELAX_TTL_HOURS caps it)
  ${JSON_ERRORS}
  ${HELP_OPTION}

Exit codes: 0 fixed or healthy, 2 not fixed, 3 skipped (not running, agent not ready, Linux, policy off, VM busy),
  1 failed, 64 usage error.`,
  restore: `Usage: rdp-remediator restore <remediationId> [--reason <text>] [--json]

Puts back the security that a remediation lowered (disable-nla, relax-security-layer), in-process.
It reads the remediation's record, so it needs the app's storage (AzureWebJobsStorage).

Options:
  --reason <text>            why, for the record (a ticket number)
  ${JSON_ERRORS}
  ${HELP_OPTION}

Exit codes: 0 restored, 2 restore failed, 3 skipped, 1 failed, 64 usage error,
  65 nothing to restore (unknown remediation, no security change, already restored).`,
  alert: `Usage: rdp-remediator alert <payload.json> [--dry-run] [--json]

Processes an alert payload (common alert schema) exactly as POST /api/alerts and the alert worker would.

Options:
  --dry-run                  decide per target, write and run nothing
  ${JSON_ERRORS}
  ${HELP_OPTION}

Exit codes: 0 processed (accepted, ignored or deduplicated), 65 malformed payload or unreadable file, 1 failed, 64 usage error.`,
  scan: `Usage: rdp-remediator scan --subscription <id> [--resource-group <name>]... [--tag <key>=<value>]... [--concurrency <n>] [--json|--csv]

Read-only fleet scan: lists the subscription's VMs, keeps those in the resource groups and with
all the tags given (keys in any case, values exact), and diagnoses each running Windows VM with
the read-only probe, at most --concurrency at once. It changes nothing and writes no records.
VMs that cannot be probed (deallocated, stopped, agent not ready, Linux) or that their policy
keeps out (rdp-remediator-mode=off) are listed with the reason. ARM's VM lists do not include
Uniform scale set instances; remediate one with 'remediate <its resource ID>'.

Options:
  --subscription <id>        the subscription (a GUID); required
  -g, --resource-group <rg>  only this resource group; repeat for several
  --tag <key>=<value>        only VMs with this tag; repeat: all must match
  --concurrency <n>          probes at once, 1-${MAX_SCAN_CONCURRENCY} (default ${DEFAULT_SCAN_CONCURRENCY})
  --json                     one JSON document ({vms, totals}) instead of the table; errors as {"error":{...}}
  --csv                      CSV (RFC 4180) instead of the table
  ${HELP_OPTION}

Progress goes to stderr: a progress bar on a terminal, a line per VM otherwise (NO_COLOR: no colour).

Exit codes: 0 every probed VM would accept RDP (VMs not probed do not count), 2 at least one would fail RDP
  (a blocking finding or a failed handshake), 1 the scan failed (listing the VMs) or a probe errored and
  none would fail, 64 usage error.`,
};

export const USAGE = `Usage: rdp-remediator <command> [options]

Commands:
  remediate <vmResourceId>   diagnose or repair one VM
  restore <remediationId>    put back the security that a remediation lowered
  alert <payload.json>       process an alert as POST /api/alerts would
  scan --subscription <id>   read-only scan of a subscription's VMs: which would fail RDP
  help [command]             show help (also: rdp-remediator <command> --help)

Options:
  ${HELP_OPTION}
  -V, --version              print the version

Exit codes: 0 success, 1 failed, 2 not fixed / would fail, 3 skipped, 64 usage error, 65 nothing to do
  (per command: rdp-remediator <command> --help). With --json, errors are one {"error":{...}} object on stdout.
${ENVIRONMENT}`;

export function helpFor(topic: CommandName | undefined): string {
  return topic === undefined ? USAGE : `${HELP[topic]}\n${ENVIRONMENT}`;
}

const isCommand = (name: string): name is CommandName => (COMMAND_NAMES as readonly string[]).includes(name);

/** The arguments before a `--` terminator: only those can be options. */
const optionPart = (args: readonly string[]): readonly string[] => {
  const end = args.indexOf('--');
  return end === -1 ? args : args.slice(0, end);
};

/** Whether a command line asks for JSON, read before (or without) parsing it: only options before a `--` count. */
export function asksForJson(args: readonly string[]): boolean {
  return optionPart(args).includes('--json');
}

export function parseArgs(argv: readonly string[]): Result<CliCommand, UsageError> {
  const [command, ...rest] = argv;
  if (command === undefined || command === '--help' || command === '-h') return ok({ command: 'help' });
  if (command === '--version' || command === '-V') return ok({ command: 'version' });
  if (command === 'help') {
    const [topic, ...extra] = rest;
    if (topic === undefined) return ok({ command: 'help' });
    if (!isCommand(topic)) return fail({ message: `help: unknown command "${topic}" (commands: ${COMMAND_NAMES.join(', ')})`, json: false });
    if (extra.length > 0) return fail({ message: `help: unexpected argument "${extra[0] ?? ''}"`, json: false });
    return ok({ command: 'help', topic });
  }
  if (!isCommand(command)) return fail({ message: `unknown command "${command}" (commands: ${COMMAND_NAMES.join(', ')}, help)`, json: asksForJson(rest) });
  const options = optionPart(rest);
  // Help wins over everything else on the line, so `remediate --help` needs no VM.
  if (options.includes('--help') || options.includes('-h')) return ok({ command: 'help', topic: command });
  const json = asksForJson(rest);
  const usage = (message: string): Result<never, UsageError> => fail({ message, command, json });
  switch (command) {
    case 'remediate':
      return parseRemediate(rest, usage);
    case 'restore':
      return parseRestore(rest, usage);
    case 'alert':
      return parseAlert(rest, usage);
    case 'scan':
      return parseScan(rest, usage);
  }
}

type Usage = (message: string) => Result<never, UsageError>;

type OptionSpec = Readonly<Record<string, { readonly type: 'string' | 'boolean'; readonly multiple?: boolean; readonly short?: string }>>;

/** node:util parseArgs, its errors turned into our messages. */
function tokens<O extends OptionSpec>(args: readonly string[], options: O, usage: Usage) {
  try {
    return ok(parseArgv({ args: [...args], options: { ...options, help: { type: 'boolean', short: 'h' } }, allowPositionals: true, strict: true }));
  } catch (error) {
    const { code, message } = error as { code?: unknown; message?: unknown };
    const text = typeof message === 'string' ? message : String(error);
    const flag = /'(-[^' ]+)/.exec(text)?.[1] ?? '';
    if (code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') return usage(`unknown option "${flag}"`);
    if (code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE') {
      if (/does not take an argument/.test(text)) return usage(`${flag} takes no value`);
      if (/ambiguous/.test(text)) return usage(`${flag} needs a value (for one that starts with "-", write ${flag}=<value>)`);
      return usage(`${flag} needs a value`);
    }
    return usage(text.split('\n')[0] ?? text);
  }
}

/** At most `max` positionals: one more is a usage error (a missing one is each command's own message). */
function positionals(values: readonly string[], max: number, usage: Usage): Result<readonly string[], UsageError> {
  if (values.length > max) return usage(`unexpected argument "${values[max] ?? ''}"`);
  return ok(values);
}

function parseRemediate(args: readonly string[], usage: Usage): Result<CliCommand, UsageError> {
  const parsed = tokens(args, { mode: { type: 'string' }, allow: { type: 'string', multiple: true }, 'relax-hours': { type: 'string' }, json: { type: 'boolean' } } as const, usage);
  if (!parsed.success) return parsed;
  const { values } = parsed.data;
  const rest = positionals(parsed.data.positionals, 1, usage);
  if (!rest.success) return rest;
  const vmResourceId = rest.data[0];
  if (vmResourceId === undefined) return usage('remediate needs a VM resource ID');
  let mode: RequestMode = 'diagnose';
  if (values.mode !== undefined) {
    const m = RequestModeSchema.safeParse(values.mode);
    if (!m.success) return usage('--mode must be diagnose or repair');
    mode = m.data;
  }
  const allow = new Set<Permission>();
  for (const entry of (values.allow ?? []).flatMap((v) => v.split(',')).filter(Boolean)) {
    const p = PermissionSchema.safeParse(entry);
    if (!p.success) return usage(`--allow: unknown permission "${entry}" (known: ${PermissionSchema.options.join(', ')})`);
    allow.add(p.data);
  }
  let relaxForHours: number | undefined;
  const hoursText = values['relax-hours'];
  if (hoursText !== undefined) {
    const hours = /^\d+$/.test(hoursText) ? Number(hoursText) : NaN;
    if (!(hours >= MIN_RELAX_TTL_HOURS && hours <= MAX_RELAX_TTL_HOURS)) return usage(`--relax-hours must be a whole number of hours from ${MIN_RELAX_TTL_HOURS} to ${MAX_RELAX_TTL_HOURS}`);
    if (mode !== 'repair') return usage('--relax-hours needs --mode repair: only a repair relaxes security');
    relaxForHours = hours;
  }
  return ok({ command: 'remediate', vmResourceId, mode, allow: [...allow], ...(relaxForHours === undefined ? {} : { relaxForHours }), json: values.json === true });
}

function parseRestore(args: readonly string[], usage: Usage): Result<CliCommand, UsageError> {
  const parsed = tokens(args, { reason: { type: 'string' }, json: { type: 'boolean' } } as const, usage);
  if (!parsed.success) return parsed;
  const rest = positionals(parsed.data.positionals, 1, usage);
  if (!rest.success) return rest;
  const remediationId = rest.data[0];
  if (remediationId === undefined) return usage('restore needs the id of the remediation whose security changes to put back');
  if (!RunIdSchema.safeParse(remediationId).success) return usage(`restore: "${remediationId}" is not a remediation id (a lower-case GUID)`);
  const { reason, json } = parsed.data.values;
  return ok({ command: 'restore', remediationId, ...(reason === undefined ? {} : { reason }), json: json === true });
}

function parseAlert(args: readonly string[], usage: Usage): Result<CliCommand, UsageError> {
  const parsed = tokens(args, { 'dry-run': { type: 'boolean' }, json: { type: 'boolean' } } as const, usage);
  if (!parsed.success) return parsed;
  const rest = positionals(parsed.data.positionals, 1, usage);
  if (!rest.success) return rest;
  const payloadFile = rest.data[0];
  if (payloadFile === undefined) return usage('alert needs a payload file (a common-alert-schema JSON body)');
  return ok({ command: 'alert', payloadFile, dryRun: parsed.data.values['dry-run'] === true, json: parsed.data.values.json === true });
}

const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

function parseScan(args: readonly string[], usage: Usage): Result<CliCommand, UsageError> {
  const parsed = tokens(
    args,
    {
      subscription: { type: 'string' },
      'resource-group': { type: 'string', multiple: true, short: 'g' },
      tag: { type: 'string', multiple: true },
      concurrency: { type: 'string' },
      json: { type: 'boolean' },
      csv: { type: 'boolean' },
    } as const,
    usage,
  );
  if (!parsed.success) return parsed;
  const rest = positionals(parsed.data.positionals, 0, usage);
  if (!rest.success) return rest;
  const { values } = parsed.data;
  const subscriptionId = values.subscription;
  if (subscriptionId === undefined) return usage('scan needs --subscription <id>');
  if (!GUID.test(subscriptionId)) return usage(`--subscription: "${subscriptionId}" is not a subscription id (a GUID)`);
  const resourceGroups: string[] = [];
  for (const group of values['resource-group'] ?? []) {
    // The resource group rule is the resource ID parser's: checked on the ID of a VM in that group.
    const checked = group.includes('/') ? null : parseVmResourceId(`/subscriptions/${subscriptionId}/resourceGroups/${group}/providers/Microsoft.Compute/virtualMachines/vm`, '--resource-group');
    if (!checked?.success) return usage(checked ? checked.error.message : `--resource-group: "${group}" is a name, not a path`);
    if (!resourceGroups.some((g) => g.toLowerCase() === group.toLowerCase())) resourceGroups.push(group);
  }
  const tags: TagFilter[] = [];
  for (const tag of values.tag ?? []) {
    const at = tag.indexOf('=');
    if (at <= 0) return usage(`--tag: "${tag}" must be <key>=<value>`);
    tags.push({ key: tag.slice(0, at), value: tag.slice(at + 1) });
  }
  let concurrency = DEFAULT_SCAN_CONCURRENCY;
  if (values.concurrency !== undefined) {
    concurrency = /^\d+$/.test(values.concurrency) ? Number(values.concurrency) : NaN;
    if (!(concurrency >= 1 && concurrency <= MAX_SCAN_CONCURRENCY)) return usage(`--concurrency must be a whole number from 1 to ${MAX_SCAN_CONCURRENCY}`);
  }
  if (values.json === true && values.csv === true) return usage('--json and --csv exclude each other');
  const output: ScanOutput = values.json === true ? 'json' : values.csv === true ? 'csv' : 'table';
  return ok({ command: 'scan', subscriptionId, resourceGroups, tags, concurrency, output, json: output === 'json' });
}
