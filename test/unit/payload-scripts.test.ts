/**
 * Static checks of the PowerShell payloads (scripts/*.ps1 and the composed probe/fix), read
 * through PowerShell's own parser (test/support/ps-ast.ps1 under pwsh 7.6). The payloads run
 * under Windows PowerShell 5.1 on .NET Framework 4.6.2 and later, which no test here runs, so
 * the 5.1 checks hold every command, parameter, type and static member against a committed
 * reference (test/support/ps51-commands.json) and look for syntax 5.1 does not parse.
 * Without PowerShell these tests skip loudly, and fail under CI=true.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { ACTION_IDS } from '../../src/contract/actions.js';
import { FixParametersSchema, PAYLOAD_MARKER, ProbeParametersSchema, type PayloadKind } from '../../src/contract/parameters.js';
import { FixResultSchema, ProbeResultSchema, RESULT_LINE_MAX_BYTES } from '../../src/contract/results.js';
import { composeScript, DEFAULT_LIBRARIES, INCLUDE_LINE, scriptsDirectory, stripCommentLines } from '../../src/payloads/compose.js';
import {
  codeText,
  codeTokens,
  parsePowerShellFiles,
  parserVersion,
  type PsArgument,
  type PsAstFile,
  type PsCommand,
  type PsCommandElement,
  type PsFunction,
  type PsInput,
  type PsParameter,
} from '../support/powershell-ast.js';
import { powerShellForTests } from '../support/powershell.js';

const { pwsh, describeWithPowerShell } = powerShellForTests('payload-scripts');

const scriptsDir = scriptsDirectory();
const PAYLOAD_KINDS: readonly PayloadKind[] = ['probe', 'fix'];

function listPs1(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return listPs1(path);
    return entry.name.toLowerCase().endsWith('.ps1') ? [path] : [];
  });
}

interface Source {
  readonly name: string;
  readonly text: string;
}

const files: Source[] = listPs1(scriptsDir)
  .sort()
  .map((path) => ({ name: `scripts/${relative(scriptsDir, path).replace(/\\/g, '/')}`, text: readFileSync(path, 'utf8') }));
const composed: Source[] = PAYLOAD_KINDS.map((kind) => ({ name: `composed ${kind}`, text: composeScript(kind) }));
const sources: Source[] = [...files, ...composed];
const sourceNames = sources.map((source) => source.name);

/** The libraries, as scripts/lib names. */
const ACCESS_READ = 'scripts/lib/Access.Read.ps1';
/** The loopback RDP handshake: a read part of the access layer in a file of its own, carried by both payloads. */
const ACCESS_HANDSHAKE = 'scripts/lib/Access.Handshake.ps1';
const ACCESS_WRITE = 'scripts/lib/Access.Write.ps1';
const FACTS = 'scripts/lib/Facts.ps1';
const ACTIONS = 'scripts/lib/Actions.ps1';
const LIBRARIES = [ACCESS_READ, ACCESS_HANDSHAKE, ACCESS_WRITE, FACTS, ACTIONS] as const;
/** The one function of Access.Handshake.ps1 that other code may call (and a double replaces). */
const HANDSHAKE_FUNCTION = 'Test-RrRdpHandshake';

function fileText(name: string): string {
  const source = files.find((candidate) => candidate.name === name);
  if (!source) throw new Error(`${name} not found under scripts/`);
  return source.text;
}

/** Each library as the composer splices it in by default (comment lines left out). */
const stripped = LIBRARIES.map((name) => ({ name, verbatim: fileText(name), stripped: stripCommentLines(fileText(name).replace(/\r\n/g, '\n').trimEnd()) }));

/** Samples of what the 5.1 checks must find, parsed with everything else (self-tests of the checks). */
const PS7_SAMPLE = [
  '$a = $null ?? 1',
  '$a ??= 2',
  // ${a}: in 7 as in 5.1, `$a?` is a variable named "a?".
  '$b = ${a}?.Length',
  '$c = ${a}?[0]',
  '$d = $true ? 1 : 2',
  'Get-Item x && Get-Item y',
  'Get-Item x || Get-Item y',
  'function F { process { } clean { } }',
  '1..3 | ForEach-Object -Parallel { $_ }',
  'Start-Sleep 1 &',
  '$e = 0b101 + 1u + 2y',
  '$f = "`e[0m `u{2713}"',
  "$g = 'a' -replace 'a', { $_.Value }",
].join('\n');

const PS51_SAMPLE = [
  'function Test-Sample {',
  "    $a = ConvertTo-Json -InputObject @{} -EscapeHandling EscapeNonAscii -AsArray",
  "    $b = ConvertFrom-Json -InputObject '{}' -AsHashtable -Depth 3",
  "    $c = Get-Content -LiteralPath 'x' -AsByteStream",
  "    Out-File -FilePath 'x' -Encoding utf8NoBOM -InputObject 'y'",
  "    Set-Content -LiteralPath 'x' -Value 'y' -Encoding utf8BOM",
  "    Test-Json -Json '{}'",
  '    Start-Sleep -Duration (New-TimeSpan -Seconds 1)',
  "    Get-Item -LiteralPath 'x' -ErrorAction Break -ProgressAction SilentlyContinue",
  '    Get-ChildItem | ? { $_ }',
  "    Get-WindowsFeature -Name 'x'",
  "    Remove-Item -Path 'x' -Recurs",
  "    $d = [System.Text.Json.JsonSerializer]::Serialize(1)",
  "    $e = [System.IO.Path]::Join('a', 'b')",
  '    $f = [uint]5',
  '    $g = [System.HashCode]::Combine(1, 2)',
  '    $h = [System.Convert]::ToHexString([byte[]]@(1))',
  "    $i = 'a,b'.Split('ab')",
  "    $j = 'ab'.Contains('a', [System.StringComparison]::Ordinal)",
  '    $k = $IsWindows',
  '    $l = [System.Math]::Clamp(1, 0, 2)',
  '}',
  'function Test-Attribute {',
  '    param([ValidateNotNullOrWhiteSpace()][string]$Name, [ValidateRange(\'Positive\')][int]$Count)',
  '}',
].join('\n');

const inputs: PsInput[] = [
  // By text, not path: what is parsed is what the other checks read, even while scripts/ changes.
  ...sources.map((source): PsInput => ({ name: source.name, text: source.text })),
  ...PAYLOAD_KINDS.map((kind): PsInput => ({ name: `composed ${kind} (comments kept)`, text: composeScript(kind, { keepComments: true }) })),
  ...stripped.map((library): PsInput => ({ name: `${library.name} (stripped)`, text: library.stripped })),
  { name: 'ps7-sample', text: PS7_SAMPLE },
  { name: 'ps51-sample', text: PS51_SAMPLE },
];

let asts = new Map<string, PsAstFile>();
function ast(name: string): PsAstFile {
  const parsed = asts.get(name);
  if (!parsed) throw new Error(`no AST for ${name}`);
  return parsed;
}

beforeAll(async () => {
  if (pwsh !== null) asts = await parsePowerShellFiles(pwsh, inputs);
}, 180_000);

// ---- The Windows PowerShell 5.1 / .NET Framework 4.6.2 reference ---------------------------

interface CmdletInfo {
  readonly module: string;
  readonly shouldProcess?: boolean;
  readonly guard?: boolean;
  readonly availability?: string;
  readonly parameters: Readonly<Record<string, readonly string[]>>;
  readonly values?: Readonly<Record<string, readonly string[]>>;
  readonly notIn51?: Readonly<Record<string, string>>;
}

interface Ps51Reference {
  readonly commonParameters: Readonly<Record<string, readonly string[]>>;
  readonly shouldProcessParameters: Readonly<Record<string, readonly string[]>>;
  readonly commonParameterValues: Readonly<Record<string, readonly string[]>>;
  readonly notIn51CommonParameters: Readonly<Record<string, string>>;
  readonly cmdlets: Readonly<Record<string, CmdletInfo>>;
  readonly notIn51Commands: Readonly<Record<string, string>>;
  readonly aliases: Readonly<Record<string, string>>;
  readonly applications: readonly string[];
  readonly notIn51Variables: Readonly<Record<string, string>>;
  readonly attributes: readonly string[];
  readonly notIn51Attributes: Readonly<Record<string, string>>;
  readonly typeAccelerators: Readonly<Record<string, string>>;
  readonly notIn51Accelerators: Readonly<Record<string, string>>;
  readonly types: Readonly<Record<string, { readonly static?: readonly string[] }>>;
  readonly notInNetFx462Types: Readonly<Record<string, string>>;
  readonly notInNetFx462StaticMembers: Readonly<Record<string, string>>;
}

const PS51 = JSON.parse(readFileSync(new URL('../support/ps51-commands.json', import.meta.url), 'utf8')) as Ps51Reference;

/** Case-insensitive lookups, as PowerShell resolves names. */
function lowerKeyed<T>(record: Readonly<Record<string, T>>): Map<string, [string, T]> {
  return new Map(Object.entries(record).map(([key, value]) => [key.toLowerCase(), [key, value]]));
}
const CMDLETS = lowerKeyed(PS51.cmdlets);
const ALIASES = lowerKeyed(PS51.aliases);
const NOT_IN_51_COMMANDS = lowerKeyed(PS51.notIn51Commands);
const APPLICATIONS = new Set(PS51.applications.map((name) => name.toLowerCase()));
const ACCELERATORS = lowerKeyed(PS51.typeAccelerators);
const NOT_IN_51_ACCELERATORS = lowerKeyed(PS51.notIn51Accelerators);
const TYPES = lowerKeyed(PS51.types);
const NOT_IN_FX_TYPES = lowerKeyed(PS51.notInNetFx462Types);
const NOT_IN_FX_STATICS = lowerKeyed(PS51.notInNetFx462StaticMembers);
const ATTRIBUTES = new Set(PS51.attributes.map((name) => name.toLowerCase()));
const NOT_IN_51_ATTRIBUTES = lowerKeyed(PS51.notIn51Attributes);

/** A type name as PowerShell 5.1 resolves it: an accelerator, the name, or System.<name>; null when unknown. */
function resolveType(name: string, localTypes: ReadonlySet<string> = new Set()): string | null {
  const lower = name.toLowerCase();
  if (localTypes.has(lower)) return name;
  const accelerated = ACCELERATORS.get(lower);
  if (accelerated) return accelerated[1];
  return TYPES.get(lower)?.[0] ?? TYPES.get(`system.${lower}`)?.[0] ?? null;
}

/** The parameter names (and aliases) a 5.1 cmdlet accepts, lower case, mapped to the parameter. */
function cmdletParameters(cmdlet: CmdletInfo): Map<string, string> {
  const names = new Map<string, string>();
  const add = (record: Readonly<Record<string, readonly string[]>>): void => {
    for (const [name, aliases] of Object.entries(record)) {
      names.set(name.toLowerCase(), name);
      for (const alias of aliases) names.set(alias.toLowerCase(), name);
    }
  };
  add(cmdlet.parameters);
  add(PS51.commonParameters);
  if (cmdlet.shouldProcess === true) add(PS51.shouldProcessParameters);
  return names;
}

/** The argument bound to the parameter at `index`: `-Name:value`, or the next element when it is not a parameter. */
function parameterArgument(elements: readonly PsCommandElement[], index: number): PsArgument | undefined {
  const element = elements[index];
  if (element?.parameter === undefined) return undefined;
  if ('argument' in element && element.argument) return element.argument;
  const next = elements[index + 1];
  return next !== undefined && next.parameter === undefined ? next : undefined;
}

/** The constant an argument is, as text (`3.0` stays `3.0`), or undefined. */
function constantText(argument: PsArgument | undefined): string | undefined {
  if (argument === undefined) return undefined;
  if (argument.ast === 'StringConstantExpressionAst') return String(argument.value);
  if (argument.ast === 'ConstantExpressionAst') return argument.text;
  return undefined;
}

function namedValue(command: PsCommand, parameter: string): PsArgument | undefined {
  const index = command.elements.findIndex((element) => element.parameter?.toLowerCase() === parameter.toLowerCase());
  return index < 0 ? undefined : parameterArgument(command.elements, index);
}

// ---- Helpers over the AST --------------------------------------------------------------------

const lowerNames = (functions: readonly PsFunction[]): Set<string> => new Set(functions.map((fn) => fn.name.toLowerCase()));
const definedIn = (...names: string[]): PsFunction[] => names.flatMap((name) => ast(name).functions);
const accessFunctions = (): PsFunction[] => definedIn(ACCESS_READ, ACCESS_HANDSHAKE, ACCESS_WRITE);
/** Access.Handshake.ps1's helpers: called by Test-RrRdpHandshake only, never by other code (a double does not define them). */
const handshakeInternals = (): Set<string> => new Set([...lowerNames(definedIn(ACCESS_HANDSHAKE))].filter((name) => name !== HANDSHAKE_FUNCTION.toLowerCase()));
const logicFunctions = (): PsFunction[] => definedIn(FACTS, ACTIONS);
const where = (name: string, line: number, text = ''): string => `${name} line ${String(line)}${text === '' ? '' : `: ${text.slice(0, 100)}`}`;
const isSwitchParameter = (parameter: PsParameter): boolean => /^(switch|System\.Management\.Automation\.SwitchParameter)$/i.test(parameter.type ?? '');

/** A call of a payload function that is not by declared parameter names only: unknown names, positional or splatted arguments. */
function namedCallProblems(at: string, command: PsCommand, target: PsFunction): string[] {
  const parameters = new Map(target.parameters.map((parameter) => [parameter.name.toLowerCase(), parameter]));
  const problems: string[] = [];
  for (let i = 0; i < command.elements.length; i++) {
    const element = command.elements[i]!;
    if (element.parameter === undefined) {
      problems.push(`${at}: ${element.splatted === true ? 'splatted' : 'positional'} argument ${element.text} for ${target.name}`);
      continue;
    }
    const parameter = parameters.get(element.parameter.toLowerCase());
    if (!parameter) problems.push(`${at}: ${target.name} has no parameter -${element.parameter}`);
    else if (!('argument' in element && element.argument) && !isSwitchParameter(parameter)) i++;
  }
  return problems;
}

/**
 * Functions that invoke a command they hold in a variable, and how that target is checked:
 * Invoke-RrNativeCommand resolves an application (its callers' -FilePath is checked against the
 * allowed applications), the action dispatch calls what $script:RrActionHandlers names (checked
 * in "dispatches every action id").
 */
const DYNAMIC_DISPATCHERS: ReadonlySet<string> = new Set(['invoke-rrnativecommand', 'invoke-rraction', 'read-rractionstate']);

/** `$X = '<value>'` assignments, from the tokens: the line and the value. */
function stringAssignments(file: PsAstFile, variable: string): { line: number; value: string }[] {
  const tokens = file.tokens.filter(([kind]) => kind !== 'Comment');
  const found: { line: number; value: string }[] = [];
  for (let i = 0; i + 2 < tokens.length; i++) {
    const [kind, text, line] = tokens[i]!;
    if (kind === 'Variable' && text.toLowerCase() === `$${variable.toLowerCase()}` && tokens[i + 1]![0] === 'Equals') {
      found.push({ line, value: tokens[i + 2]![1].replace(/^'(.*)'$/s, '$1') });
    }
  }
  return found;
}

function innermostFunction(file: PsAstFile, line: number): PsFunction | undefined {
  return file.functions.filter((fn) => fn.line <= line && line <= fn.endLine).sort((a, b) => b.line - a.line)[0];
}

/** Samples for the param() checks: what the contract accepts, per parameter. */
const ACCEPTED_SAMPLES: Readonly<Record<string, readonly string[]>> = {
  RunId: ['0badc0de-1234-4abc-8def-0123456789ab', '00000000-0000-0000-0000-000000000000'],
  Actions: [ACTION_IDS.join(','), ...ACTION_IDS],
};
/** Values no parameter may accept: each is a valid value with something after it, or shell syntax. */
const HOSTILE_VALUES = [
  "x'; Remove-Item C:\\ -Recurse; '",
  '0badc0de-1234-4abc-8def-0123456789ab;Stop-Computer',
  '0badc0de-1234-4abc-8def-0123456789ab Stop-Computer',
  'repair-key-acl;Stop-Computer',
  'repair-key-acl Stop-Computer',
  'true;Stop-Computer',
  '0 1',
  '$(Stop-Computer)',
  '`',
  '"',
  ' ',
  '\n',
];

// ---- Tests -----------------------------------------------------------------------------------

describe('payload scripts', () => {
  it('finds the entry scripts and the five libraries, and composes each payload from its own', () => {
    const names = files.map((source) => source.name);
    expect(names).toEqual(expect.arrayContaining(['scripts/probe.ps1', 'scripts/fix.ps1', ...LIBRARIES]));
    expect(names.filter((name) => name.startsWith('scripts/lib/')).sort()).toEqual([...LIBRARIES].sort());
    expect(DEFAULT_LIBRARIES.probe.map((lib) => `scripts/${lib}`)).toEqual([ACCESS_READ, ACCESS_HANDSHAKE, FACTS]);
    expect(DEFAULT_LIBRARIES.fix.map((lib) => `scripts/${lib}`)).toEqual([ACCESS_READ, ACCESS_HANDSHAKE, ACCESS_WRITE, FACTS, ACTIONS]);
  });

  it.each(PAYLOAD_KINDS)('%s.ps1 starts with its marker and has the include line once', (kind) => {
    const lines = fileText(`scripts/${kind}.ps1`).replace(/\r\n/g, '\n').split('\n');
    expect(lines[0]).toBe(`${PAYLOAD_MARKER}${kind}`);
    expect(lines.filter((line) => line.trim() === INCLUDE_LINE)).toHaveLength(1);
    expect(lines.filter((line) => line.includes('#include'))).toHaveLength(1);
  });

  it.each(sourceNames)('%s is ASCII (Run Command and the 5.1 parser read it in any code page)', (name) => {
    const text = sources.find((source) => source.name === name)!.text;
    const at = text.split('').findIndex((character) => character.charCodeAt(0) > 0x7f);
    expect(at, at >= 0 ? `non-ASCII character at line ${String(text.slice(0, at).split('\n').length)}` : '').toBe(-1);
  });

  it('has a consistent 5.1 reference (test/support/ps51-commands.json)', () => {
    const problems: string[] = [];
    for (const [name, cmdlet] of Object.entries(PS51.cmdlets)) {
      if (!/^[A-Z][A-Za-z]+-[A-Z][A-Za-z0-9]+$/.test(name)) problems.push(`${name}: not Verb-Noun`);
      const known = cmdletParameters(cmdlet);
      for (const parameter of Object.keys(cmdlet.notIn51 ?? {})) if (known.has(parameter.toLowerCase())) problems.push(`${name} -${parameter}: both present and absent`);
      for (const parameter of Object.keys(cmdlet.values ?? {})) if (!(parameter in cmdlet.parameters)) problems.push(`${name}: values for unknown -${parameter}`);
      if (NOT_IN_51_COMMANDS.has(name.toLowerCase())) problems.push(`${name}: both present and absent`);
    }
    for (const [alias, target] of Object.entries(PS51.aliases)) if (!CMDLETS.has(target.toLowerCase())) problems.push(`alias ${alias}: ${target} is not listed`);
    for (const [accelerator, target] of Object.entries(PS51.typeAccelerators)) if (!TYPES.has(target.toLowerCase())) problems.push(`[${accelerator}]: ${target} is not listed`);
    for (const type of Object.keys(PS51.notInNetFx462Types)) if (TYPES.has(type.toLowerCase())) problems.push(`${type}: both present and absent`);
    for (const member of Object.keys(PS51.notInNetFx462StaticMembers)) {
      const [type = '', name = ''] = member.split('::');
      if (TYPES.get(type.toLowerCase())?.[1].static?.some((candidate) => candidate.toLowerCase() === name.toLowerCase())) problems.push(`${member}: both present and absent`);
    }
    expect(problems).toEqual([]);
  });
});

describeWithPowerShell('payload scripts parse (PowerShell parser)', () => {
  it('parse with PowerShell 7 or later, whose tokenizer knows the 7-only operators these checks look for', () => {
    expect(Number(parserVersion().split('.')[0])).toBeGreaterThanOrEqual(7);
  });

  it.each(PAYLOAD_KINDS)('composed %s parses with PowerShell, with and without library comments', (kind) => {
    for (const name of [`composed ${kind}`, `composed ${kind} (comments kept)`]) {
      const errors = ast(name).errors.map((error) => `line ${String(error.line)}, column ${String(error.column)}: ${error.message}`);
      expect(errors, name).toEqual([]);
    }
  });

  it.each(sourceNames)('%s has no syntax error', (name) => {
    const errors = ast(name).errors.map((error) => `line ${String(error.line)}, column ${String(error.column)}: ${error.message} (${error.text})`);
    expect(errors).toEqual([]);
  });

  it.each(LIBRARIES)('leaving out the comment lines of %s changes no code and no string', (name) => {
    const library = stripped.find((candidate) => candidate.name === name)!;
    const original = ast(name);
    const without = ast(`${name} (stripped)`);
    expect(without.errors).toEqual([]);
    expect(library.stripped.length).toBeLessThan(library.verbatim.length);
    const code = (file: PsAstFile): string[] => file.tokens.filter(([kind]) => kind !== 'Comment').map(([kind, text]) => `${kind} ${text}`);
    expect(code(without)).toEqual(code(original));
    expect(without.strings.map((s) => s.value)).toEqual(original.strings.map((s) => s.value));
    const counts = (file: PsAstFile): Record<string, number> => Object.fromEntries(Object.entries(file.astTypes).map(([type, info]) => [type, info.count]));
    expect(counts(without)).toEqual(counts(original));
    expect(without.tokens.filter(([kind]) => kind === 'Comment')).toEqual([]);
  });
});

describeWithPowerShell('entry scripts', () => {
  it.each(PAYLOAD_KINDS)('%s.ps1: comments, a [CmdletBinding()] param() block, Set-StrictMode -Version 3.0 and $ErrorActionPreference = Stop, then the include line', (kind) => {
    const file = ast(`scripts/${kind}.ps1`);
    const block = file.paramBlock;
    expect(block, 'a script-level param() block').not.toBeNull();
    expect(block!.attributes.map((attribute) => attribute.name)).toEqual(['CmdletBinding']);
    // Before the param block only comments may stand: the first code is [CmdletBinding()].
    const code = codeTokens(file);
    expect(code.slice(0, 2).map(([, text]) => text)).toEqual(['[', 'CmdletBinding']);
    expect(code[0]![2]).toBe(block!.attributes[0]!.line);

    const includes = file.tokens.filter(([kind, text]) => kind === 'Comment' && text.trim() === INCLUDE_LINE);
    expect(includes).toHaveLength(1);
    const includeLine = includes[0]![2];
    const header = file.statements.filter((statement) => statement.line > block!.endLine && statement.endLine < includeLine);
    expect(header[0]?.command, 'Set-StrictMode comes first').toBe('Set-StrictMode');
    const strict = file.commands.find((command) => command.line === header[0]!.line && command.name === 'Set-StrictMode')!;
    expect(constantText(namedValue(strict, 'Version'))).toBe('3.0');
    expect(strict.elements).toHaveLength(2);
    expect(header.filter((statement) => statement.left === '$ErrorActionPreference').map((statement) => statement.right)).toEqual(["'Stop'"]);
  });

  it.each(PAYLOAD_KINDS)('composed %s keeps strict mode 3.0 and ErrorAction Stop for all of its code', (kind) => {
    const file = ast(`composed ${kind}`);
    // One Set-StrictMode (the header's): no library turns it off or changes the version.
    expect(file.commands.filter((command) => /^Set-StrictMode$/i.test(command.name ?? '')).map((command) => command.text)).toEqual(['Set-StrictMode -Version 3.0']);
    expect(file.variables.filter((variable) => /^(global|script):ErrorActionPreference$/i.test(variable.name)).map((variable) => variable.line)).toEqual([]);
    const assignments = stringAssignments(file, 'ErrorActionPreference');
    expect(assignments.filter((assignment) => innermostFunction(file, assignment.line) === undefined).map((assignment) => assignment.value)).toEqual(['Stop']);
    // A function that relaxes it (locally) sets it back to Stop.
    const byFunction = new Map<string, string[]>();
    for (const assignment of assignments) {
      const fn = innermostFunction(file, assignment.line);
      if (fn) byFunction.set(fn.name, [...(byFunction.get(fn.name) ?? []), assignment.value]);
    }
    for (const [fn, values] of byFunction) expect(values.at(-1), `${fn} ends with ErrorActionPreference = Stop`).toBe('Stop');
  });

  it('declare exactly the contract parameters, each a validated [string] that accepts what the contract sends and nothing hostile', () => {
    const problems: string[] = [];
    for (const kind of PAYLOAD_KINDS) {
      const shape: Readonly<Record<string, z.ZodType>> = kind === 'probe' ? ProbeParametersSchema.shape : FixParametersSchema.shape;
      const parameters = ast(`scripts/${kind}.ps1`).paramBlock?.parameters ?? [];
      expect(parameters.map((parameter) => parameter.name).sort(), kind).toEqual(Object.keys(shape).sort());
      for (const parameter of parameters) {
        const label = `${kind}.ps1 -${parameter.name}`;
        const attribute = (name: string): PsArgument[] | undefined => parameter.attributes.find((candidate) => candidate.name.toLowerCase() === name.toLowerCase())?.args as PsArgument[] | undefined;
        const parameterAttribute = parameter.attributes.find((candidate) => candidate.name === 'Parameter');
        const mandatoryArgument = parameterAttribute?.named.find((named) => named.name.toLowerCase() === 'mandatory');
        const mandatory = mandatoryArgument !== undefined && (mandatoryArgument.omitted || mandatoryArgument.argument?.text.toLowerCase() === '$true');
        const set = attribute('ValidateSet')?.map((argument) => String(argument.value));
        const patternText = attribute('ValidatePattern')?.[0]?.value;
        const pattern = typeof patternText === 'string' ? new RegExp(patternText, 'i') : undefined;
        const allowEmpty = attribute('AllowEmptyString') !== undefined;
        if (parameter.type?.toLowerCase() !== 'string') problems.push(`${label}: typed ${String(parameter.type)}, not [string] (Run Command passes strings)`);
        if (set === undefined && pattern === undefined) problems.push(`${label}: neither ValidateSet nor ValidatePattern`);

        const contract = shape[parameter.name]!;
        const optional = contract instanceof z.ZodOptional;
        const inner = contract instanceof z.ZodOptional ? (contract.unwrap() as z.ZodType) : contract;
        if (mandatory && optional) problems.push(`${label}: Mandatory, but the contract may leave it out`);
        if (!mandatory && !optional && parameter.default === null) problems.push(`${label}: the contract always sends it, yet it is neither Mandatory nor defaulted`);
        if (set !== undefined && inner instanceof z.ZodEnum) {
          const options = (inner.options as readonly string[]).map(String);
          if ([...set].sort().join('|') !== [...options].sort().join('|')) problems.push(`${label}: ValidateSet(${set.join(', ')}) differs from the contract's (${options.join(', ')})`);
        }
        if (allowEmpty !== (set?.includes('') ?? false)) problems.push(`${label}: [AllowEmptyString()] and '' in ValidateSet must go together`);

        const accepts = (value: string): boolean => {
          if (value === '' && mandatory && !allowEmpty) return false;
          if (set !== undefined && !set.some((candidate) => candidate.toLowerCase() === value.toLowerCase())) return false;
          if (pattern !== undefined && !pattern.test(value)) return false;
          return true;
        };
        const samples = inner instanceof z.ZodEnum ? (inner.options as readonly string[]).map(String) : (ACCEPTED_SAMPLES[parameter.name] ?? []);
        if (samples.length === 0) problems.push(`${label}: no samples of what the contract accepts`);
        for (const value of samples) {
          if (!contract.safeParse(value).success) problems.push(`${label}: sample '${value}' is not one the contract accepts`);
          else if (!accepts(value)) problems.push(`${label}: rejects '${value}', which the contract sends`);
        }
        for (const value of [...HOSTILE_VALUES, ...(allowEmpty ? [] : [''])]) {
          if (accepts(value)) problems.push(`${label}: accepts ${JSON.stringify(value)}`);
        }
        if (parameter.default !== null) {
          const value = constantText(parameter.default);
          if (value === undefined || !contract.safeParse(value).success || !accepts(value)) problems.push(`${label}: default ${parameter.default.text} is not a value the contract and the validation accept`);
        }
      }
    }
    expect(problems).toEqual([]);
  });

  it.each(PAYLOAD_KINDS)('%s.ps1 writes to the success stream once, with Write-Output', (kind) => {
    for (const name of [`scripts/${kind}.ps1`, `composed ${kind}`]) {
      const writes = ast(name).commands.filter((command) => /^(Write-Output|echo|write)$/i.test(command.name ?? ''));
      expect(
        writes.map((command) => command.text),
        name,
      ).toEqual(['Write-Output $resultLine']);
    }
  });
});

describeWithPowerShell('static safety checks', () => {
  it.each(sourceNames)('%s never prompts and never writes to the host', (name) => {
    const file = ast(name);
    const interactive = /^(Read-Host|Write-Host|Get-Credential|Out-Host|Out-Default|Pause|Show-Command|Out-GridView)$/i;
    expect(file.commands.filter((command) => interactive.test(command.name ?? '')).map((command) => where(name, command.line, command.text))).toEqual([]);
    expect(codeTokens(file).filter(([, text]) => /\b(Read-Host|Write-Host|Get-Credential|Out-Host|Out-Default|Pause)\b/i.test(text)).map(([, text, line]) => where(name, line, text))).toEqual([]);
    // Nor through the host object or the console.
    expect(file.variables.filter((variable) => /^(global:)?host$/i.test(variable.name)).map((variable) => where(name, variable.line, '$Host'))).toEqual([]);
    expect(file.staticMembers.filter((member) => resolveType(member.parts[0] ?? member.type) === 'System.Console' || /^(System\.)?Console$/i.test(member.type)).map((member) => where(name, member.line, member.member))).toEqual([]);
  });

  it.each(sourceNames)('%s never renames, moves or deletes anything named MachineKeys', (name) => {
    const file = ast(name);
    const destructive = /^(Remove-Item|Rename-Item|Move-Item|ri|rm|rmdir|rd|del|erase|ren|rni|mi|move|mv)$/i;
    expect(file.commands.filter((command) => destructive.test(command.name ?? '') && /machinekeys/i.test(command.text)).map((command) => where(name, command.line, command.text))).toEqual([]);
    // Nor through .NET or a native program.
    const ioDelete = file.staticMembers.filter((member) => /^System\.IO\.(Directory|File)$/.test(resolveType(member.parts[0] ?? member.type) ?? '') && /^(Delete|Move)$/i.test(member.member));
    expect(ioDelete.map((member) => where(name, member.line, `${member.type}::${member.member}`))).toEqual([]);
    expect(codeTokens(file).filter(([, text]) => /^(rmdir|rd|ren|move|takeown)(\.exe)?$/i.test(text)).map(([, text, line]) => where(name, line, text))).toEqual([]);
  });

  it.each(sourceNames)('%s names accounts by SID only', (name) => {
    // Comments may explain in words; code and strings may not.
    const file = ast(name);
    const localized = /\b(NETWORK SERVICE|NetworkService|Administrators|Everyone|SYSTEM|NT AUTHORITY|BUILTIN|LOCAL SERVICE)\s*:\s*\(/i;
    const problems: string[] = [];
    for (const literal of file.strings) {
      if (localized.test(literal.value)) problems.push(where(name, literal.line, literal.value));
      // Anything shaped like an icacls grant names its account as *SID.
      const grant = /^([^:()]+):\([A-Z,]+\)$/i.exec(literal.value);
      if (grant && !/^\*S-1-\d+(-\d+)*$/.test(grant[1]!)) problems.push(where(name, literal.line, literal.value));
    }
    if (localized.test(codeText(file))) problems.push(`${name}: ${localized.exec(codeText(file))![0]} in code`);
    for (const command of file.commands.filter((c) => /^icacls(\.exe)?$/i.test(c.name ?? ''))) {
      if (/(NETWORK SERVICE|Administrators|Everyone|SYSTEM)/i.test(command.text)) problems.push(where(name, command.line, command.text));
    }
    expect(problems).toEqual([]);
  });
});

describeWithPowerShell('Windows PowerShell 5.1 compatibility', () => {
  /** Token kinds only PowerShell 7's tokenizer produces, for syntax 5.1 cannot parse. */
  const TOKENS_7: Readonly<Record<string, string>> = {
    QuestionQuestion: 'null-coalescing ?? (7.0)',
    QuestionQuestionEquals: 'null-coalescing assignment ??= (7.0)',
    QuestionDot: 'null-conditional ?. (7.1)',
    QuestionLBracket: 'null-conditional ?[] (7.1)',
    QuestionMark: 'ternary ? : (7.0)',
    AndAnd: 'pipeline chain && (7.0)',
    OrOr: 'pipeline chain || (7.0)',
    Clean: 'clean block (7.3)',
  };
  const AST_7: Readonly<Record<string, string>> = { TernaryExpressionAst: 'ternary ? : (7.0)', PipelineChainAst: 'pipeline chain && / || (7.0)' };
  /** A number literal 5.1 reads: decimal or hex, optional d or l, optional multiplier. No 0b, u, y, s, n suffixes (7.0). */
  const NUMBER_51 = /^[+-]?(0x[0-9a-f]+l?|(\d+\.?\d*|\.\d+)(e[+-]?\d+)?[dl]?)(kb|mb|gb|tb|pb)?$/i;

  /** What in a file 5.1 cannot parse or run as written, whatever 7 makes of it. */
  function ps7OnlySyntax(name: string, file: PsAstFile): string[] {
    const problems: string[] = [];
    for (const [kind, text, line] of file.tokens) {
      const what = TOKENS_7[kind];
      if (what !== undefined) problems.push(where(name, line, `${what}: ${text}`));
      if (kind === 'Number' && !NUMBER_51.test(text)) problems.push(where(name, line, `number literal ${text} (0b / u / y / s / n are 7.0)`));
      if ((kind === 'StringExpandable' || kind === 'HereStringExpandable') && /`(u\{|e)/.test(text.replace(/``/g, ''))) problems.push(where(name, line, `escape \`u{...} or \`e (6.0) in ${text.slice(0, 60)}`));
    }
    for (const [type, what] of Object.entries(AST_7)) {
      const found = file.astTypes[type];
      if (found !== undefined) problems.push(where(name, found.line, what));
    }
    for (const block of file.namedBlocks) if (block.kind === 'Clean') problems.push(where(name, block.line, 'clean block (7.3)'));
    for (const command of file.commands) {
      if (command.background) problems.push(where(name, command.line, `background operator & (6.0): ${command.text}`));
      for (const element of command.elements) if (element.parameter !== undefined && /^Parallel$/i.test(element.parameter)) problems.push(where(name, command.line, `-Parallel (7.0): ${command.text}`));
    }
    for (const call of file.memberCalls) if (call.nullConditional) problems.push(where(name, call.line, `?. (7.1) on ${call.target}`));
    for (const [operator, , right, rightElements, line] of file.operators) {
      if (/replace$/i.test(operator) && right === 'ArrayLiteralAst' && rightElements[1] === 'ScriptBlockExpressionAst') problems.push(where(name, line, '-replace with a script block substitution (6.1)'));
    }
    if (file.requires !== null) {
      const major = Number((file.requires.psVersion ?? '0').split('.')[0]);
      if (major > 5) problems.push(`${name}: #Requires -Version ${String(file.requires.psVersion)}`);
      if (file.requires.psEditions.some((edition) => edition.toLowerCase() === 'core')) problems.push(`${name}: #Requires -PSEdition Core`);
    }
    return problems;
  }

  it('the 7-only syntax check finds every construct it looks for (a sample)', () => {

    const file = ast('ps7-sample');
    expect(file.errors).toEqual([]);
    const found = ps7OnlySyntax('sample', file).join('\n');
    for (const what of ['??', '??=', '?.', '?[]', 'ternary', '&&', '||', 'clean block', '-Parallel', 'background', '0b101', '1u', '2y', '`e', '-replace']) expect(found).toContain(what);
  });

  it.each(sourceNames)('%s uses no PowerShell 6/7-only syntax', (name) => {
    expect(ps7OnlySyntax(name, ast(name))).toEqual([]);
  });

  /** Commands: payload functions, or 5.1 cmdlets (by full name, with 5.1 parameters and values) and allowed applications. */
  function ps51CommandProblems(name: string, file: PsAstFile, payloadFunctions: ReadonlySet<string>): string[] {
    const defined = new Set([...payloadFunctions, ...lowerNames(file.functions)]);
    const problems: string[] = [];
    for (const command of file.commands) {
      const at = where(name, command.line, command.text);
      if (command.name === null) {
        if (!DYNAMIC_DISPATCHERS.has(command.fn?.toLowerCase() ?? '')) problems.push(`${at}: invokes a command held in a variable outside ${[...DYNAMIC_DISPATCHERS].join(', ')}`);
        continue;
      }
      const lower = command.name.toLowerCase();
      if (defined.has(lower)) continue;
      if (APPLICATIONS.has(lower)) continue;
      const alias = ALIASES.get(lower);
      if (alias) {
        problems.push(`${at}: the alias ${command.name}; call ${alias[1]} by its name`);
        continue;
      }
      const absent = NOT_IN_51_COMMANDS.get(lower);
      if (absent) {
        problems.push(`${at}: ${command.name} is PowerShell ${absent[1]}, not in 5.1`);
        continue;
      }
      const cmdlet = CMDLETS.get(lower);
      if (!cmdlet) {
        problems.push(`${at}: ${command.name} is neither a payload function nor a 5.1 cmdlet or application in test/support/ps51-commands.json`);
        continue;
      }
      const [cmdletName, info] = cmdlet;
      if (cmdletName !== command.name) problems.push(`${at}: spelled ${command.name}, not ${cmdletName}`);
      const known = cmdletParameters(info);
      command.elements.forEach((element, index) => {
        if (element.parameter === undefined) return;
        const parameter = known.get(element.parameter.toLowerCase());
        if (parameter === undefined) {
          const version = Object.entries({ ...(info.notIn51 ?? {}), ...PS51.notIn51CommonParameters }).find(([candidate]) => candidate.toLowerCase() === element.parameter.toLowerCase())?.[1];
          problems.push(`${at}: ${cmdletName} has no -${element.parameter} in 5.1${version ? ` (PowerShell ${version})` : ' (and abbreviations are not accepted here)'}`);
          return;
        }
        const allowed = info.values?.[parameter] ?? PS51.commonParameterValues[parameter];
        const value = constantText(parameterArgument(command.elements, index));
        if (allowed !== undefined && value !== undefined && !allowed.some((candidate) => candidate.toLowerCase() === value.toLowerCase())) {
          problems.push(`${at}: ${cmdletName} -${parameter} ${value} is not a 5.1 value (${allowed.join(', ')})`);
        }
      });
    }
    // What Invoke-RrNativeCommand runs is named by its callers, and must be an allowed application.
    for (const command of file.commands.filter((c) => c.name?.toLowerCase() === 'invoke-rrnativecommand')) {
      const program = constantText(namedValue(command, 'FilePath'));
      if (program === undefined || !APPLICATIONS.has(program.toLowerCase())) problems.push(`${where(name, command.line, command.text)}: runs ${String(program)}, not one of ${PS51.applications.join(', ')}`);
    }
    return problems;
  }

  /** Cmdlets that some 5.1 targets lack, called without a Get-Command -Name '<cmdlet>' check before them in the same function. */
  function unguardedProblems(name: string, file: PsAstFile): string[] {
    const problems: string[] = [];
    for (const command of file.commands) {
      const cmdlet = command.name === null ? undefined : CMDLETS.get(command.name.toLowerCase());
      if (cmdlet?.[1].guard !== true) continue;
      const guarded = file.commands.some(
        (candidate) => candidate.fn === command.fn && candidate.name === 'Get-Command' && constantText(namedValue(candidate, 'Name'))?.toLowerCase() === cmdlet[0].toLowerCase() && candidate.line < command.line,
      );
      if (!guarded) problems.push(`${where(name, command.line, command.text)}: ${cmdlet[0]} (${String(cmdlet[1].availability)}) without Get-Command -Name '${cmdlet[0]}' before it`);
    }
    return problems;
  }

  /** Types, attributes and static members that .NET Framework 4.6.2 / Windows PowerShell 5.1 lack. */
  function netFxProblems(name: string, file: PsAstFile): string[] {
    const local = new Set(file.typeDefinitions.map((type) => type.name.toLowerCase()));
    const problems: string[] = [];
    for (const use of file.types) {
      for (const part of use.parts) {
        if (resolveType(part, local) !== null) continue;
        const why = NOT_IN_51_ACCELERATORS.get(part.toLowerCase())?.[1] ?? NOT_IN_FX_TYPES.get(part.toLowerCase())?.[1] ?? NOT_IN_FX_TYPES.get(`system.${part.toLowerCase()}`)?.[1];
        problems.push(`${where(name, use.line, use.name)}: [${part}] ${why ? `is ${why}` : 'is not in the 4.6.2 reference (test/support/ps51-commands.json)'}`);
      }
    }
    for (const attribute of file.attributes) {
      const lower = attribute.name.toLowerCase();
      if (!ATTRIBUTES.has(lower) && !ATTRIBUTES.has(`${lower}attribute`)) {
        const why = NOT_IN_51_ATTRIBUTES.get(lower)?.[1];
        problems.push(`${where(name, attribute.line)}: [${attribute.name}()] ${why ? `is PowerShell ${why}` : 'is not a 5.1 attribute in the reference'}`);
      }
      if (/^Validate(Range|Set|Count|Length)$/i.test(attribute.name) && attribute.args.some((argument) => argument.ast !== 'ConstantExpressionAst' && argument.ast !== 'StringConstantExpressionAst' && argument.ast !== 'UnaryExpressionAst')) {
        problems.push(`${where(name, attribute.line)}: [${attribute.name}()] with a non-constant argument (a values generator type is 6.0+)`);
      }
      if (/^ValidateRange$/i.test(attribute.name) && attribute.args.some((argument) => argument.ast === 'StringConstantExpressionAst')) {
        problems.push(`${where(name, attribute.line)}: [ValidateRange('<kind>')] is 6.1+`);
      }
    }
    for (const member of file.staticMembers) {
      const type = resolveType(member.parts[0] ?? member.type, local);
      if (type === null || local.has(type.toLowerCase())) continue; // reported above, or the payload's own class
      if (member.member.toLowerCase() === 'new') continue; // ::new(), PowerShell 5.0
      const statics = TYPES.get(type.toLowerCase())?.[1].static;
      const at = where(name, member.line, `[${member.type}]::${member.member}`);
      if (statics === undefined) problems.push(`${at}: list the static members ${type} has in 4.6.2 in the reference before calling one`);
      else if (!statics.some((candidate) => candidate.toLowerCase() === member.member.toLowerCase())) {
        const why = NOT_IN_FX_STATICS.get(`${type}::${member.member}`.toLowerCase())?.[1];
        problems.push(`${at}: ${type} has no static ${member.member} in .NET Framework 4.6.2${why ? ` (${why})` : ''}`);
      }
    }
    return problems;
  }

  /** String method calls whose overload only .NET Core has, or that bind to another overload there. */
  function stringOverloadProblems(name: string, file: PsAstFile): string[] {
    const problems: string[] = [];
    for (const call of file.memberCalls) {
      const at = where(name, call.line, `${call.target}.${call.member}(${call.args.map((argument) => argument.text).join(', ')})`);
      const first = call.args[0];
      // 'ab' binds to Split(char[]) on .NET Framework (split at a or at b) and to Split(string) on .NET Core.
      if (/^Split$/i.test(call.member) && first?.ast === 'StringConstantExpressionAst' && String(first.value).length > 1) problems.push(`${at}: a multi-character string splits at each of its characters on 5.1`);
      if (/^(Contains|Replace|Split)$/i.test(call.member) && call.args.some((argument) => /StringComparison/i.test(argument.text))) problems.push(`${at}: the StringComparison overload is .NET Core 2.0+`);
      else if (/^Contains$/i.test(call.member) && call.args.length === 2) problems.push(`${at}: String.Contains(value, comparison) is .NET Core 2.1+`);
      if (/^Split$/i.test(call.member) && call.args.some((argument) => /TrimEntries/i.test(argument.text))) problems.push(`${at}: StringSplitOptions.TrimEntries is .NET 5`);
    }
    return problems;
  }

  function ps7VariableProblems(name: string, file: PsAstFile): string[] {
    const absent = lowerKeyed(PS51.notIn51Variables);
    return file.variables.filter((variable) => absent.has(variable.name.replace(/^global:/i, '').toLowerCase())).map((variable) => where(name, variable.line, `$${variable.name}`));
  }

  it('the 5.1 command, type and member checks find what they look for (a sample)', () => {

    const file = ast('ps51-sample');
    expect(file.errors).toEqual([]);
    const found = [...ps51CommandProblems('sample', file, new Set()), ...unguardedProblems('sample', file), ...netFxProblems('sample', file), ...stringOverloadProblems('sample', file), ...ps7VariableProblems('sample', file)].join('\n');
    for (const what of [
      '-EscapeHandling',
      '-AsArray',
      '-AsHashtable',
      '-Depth in 5.1',
      '-AsByteStream',
      'utf8NoBOM',
      'utf8BOM',
      'Test-Json is PowerShell',
      '-Duration',
      '-ErrorAction Break',
      '-ProgressAction',
      'the alias ?',
      'Get-WindowsFeature (',
      '-Recurs in 5.1',
      '[System.Text.Json.JsonSerializer]',
      'no static Join',
      '[uint]',
      '[System.HashCode]',
      'no static ToHexString',
      'no static Clamp',
      'splits at each',
      'StringComparison overload',
      '$IsWindows',
      '[ValidateNotNullOrWhiteSpace()]',
      "[ValidateRange('<kind>')]",
    ]) {
      expect(found).toContain(what);
    }
  });

  it.each(sourceNames)('%s calls only payload functions, and 5.1 cmdlets and applications with parameters 5.1 has', (name) => {
    expect(ps51CommandProblems(name, ast(name), lowerNames(definedIn(...LIBRARIES)))).toEqual([]);
  });

  it.each(sourceNames)('%s calls cmdlets missing on some 5.1 targets only behind a Get-Command check', (name) => {
    expect(unguardedProblems(name, ast(name))).toEqual([]);
  });

  it.each(sourceNames)('%s uses only types, attributes and static members that .NET Framework 4.6.2 and Windows PowerShell 5.1 have', (name) => {
    expect(netFxProblems(name, ast(name))).toEqual([]);
  });

  it.each(sourceNames)('%s calls no string method overload that only .NET Core has, or that binds differently there', (name) => {
    expect(stringOverloadProblems(name, ast(name))).toEqual([]);
  });

  it.each(sourceNames)('%s reads no automatic variable that only PowerShell 6/7 has', (name) => {
    expect(ps7VariableProblems(name, ast(name))).toEqual([]);
  });
});

describeWithPowerShell('libraries', () => {
  /** Plumbing of the access layer that a test double need not provide. */
  const ACCESS_INTERNALS = new Set(['get-rrhklmbasekey', 'get-rrregistrysubkeyname', 'invoke-rrnativecommand']);
  /**
   * Cmdlets that only compute: the logic may call them, the double has no need to. Get-Variable
   * reads the payload's own script scope (the generated allow-list), not Windows.
   */
  const PURE_CMDLETS = new Set(['write-verbose', 'convertto-json', 'sort-object', 'out-null', 'new-object', 'select-object', 'where-object', 'foreach-object', 'get-variable']);
  /** The Rr functions a file calls (lower case), whoever defines them. */
  const rrCalls = (name: string): string[] => [...new Set(ast(name).commands.map((command) => (command.name ?? '').toLowerCase()).filter((command) => /-rr[a-z]/.test(command)))];

  it('name every function Verb-RrNoun, each once', () => {
    const names = [...accessFunctions(), ...logicFunctions()].map((fn) => fn.name);
    for (const name of names) expect(name).toMatch(/^[A-Z][A-Za-z]+-Rr[A-Z][A-Za-z0-9]*$/);
    const lower = names.map((name) => name.toLowerCase());
    expect(lower.filter((name, index) => lower.indexOf(name) !== index)).toEqual([]);
  });

  it.each([FACTS, ACTIONS])('keep Windows calls in Access.*.ps1: %s calls only logic and the public access functions', (name) => {
    const file = ast(name);
    const known = lowerNames([...accessFunctions(), ...logicFunctions()]);
    const offenders = file.commands
      .filter((command) => command.name !== null || !DYNAMIC_DISPATCHERS.has(command.fn?.toLowerCase() ?? ''))
      .map((command) => command.name?.toLowerCase() ?? command.text)
      .filter((command) => ACCESS_INTERNALS.has(command) || handshakeInternals().has(command) || !(known.has(command) || PURE_CMDLETS.has(command)));
    expect(offenders).toEqual([]);
    const windowsTypes = /^((System\.)?(IO\.|Environment$|Diagnostics\.|Net\.|Management\.|ServiceProcess\.|Security\.Cryptography)|Microsoft\.Win32)/i;
    expect(file.types.filter((use) => use.parts.some((part) => windowsTypes.test(part))).map((use) => where(name, use.line, use.name))).toEqual([]);
    expect(codeTokens(file).filter(([, text]) => /\bGet-Date\b|\bicacls\b|\breg\.exe\b/i.test(text)).map(([, text, line]) => where(name, line, text))).toEqual([]);
  });

  it('calls from each library reach only functions its payloads carry', () => {
    const problems: string[] = [];
    const check = (name: string, allowedFrom: readonly string[]): void => {
      const allowed = lowerNames(definedIn(...allowedFrom));
      for (const call of rrCalls(name)) if (!allowed.has(call)) problems.push(`${name} calls ${call}, defined in none of ${allowedFrom.join(', ')}`);
    };
    // The probe carries Access.Read.ps1, Access.Handshake.ps1 and Facts.ps1 only.
    check(ACCESS_READ, [ACCESS_READ]);
    check(ACCESS_HANDSHAKE, [ACCESS_HANDSHAKE]);
    check(FACTS, [ACCESS_READ, ACCESS_HANDSHAKE, FACTS]);
    check(ACCESS_WRITE, [ACCESS_READ, ACCESS_WRITE]);
    check(ACTIONS, [ACCESS_READ, ACCESS_HANDSHAKE, ACCESS_WRITE, FACTS, ACTIONS]);
    check('scripts/probe.ps1', DEFAULT_LIBRARIES.probe.map((lib) => `scripts/${lib}`));
    check('scripts/fix.ps1', DEFAULT_LIBRARIES.fix.map((lib) => `scripts/${lib}`));
    expect(problems).toEqual([]);
  });

  it('put only reads in Access.Read.ps1: nothing there changes the VM or writes a file', () => {
    const read = ast(ACCESS_READ);
    // Cmdlets: reads and pure helpers only.
    const cmdlets = read.commands.map((command) => command.name).filter((name): name is string => name !== null && !/-Rr[A-Z]/.test(name));
    const readOnly = /^(Get-[A-Za-z]+|Test-[A-Za-z]+|Select-Object|Where-Object|Sort-Object|New-Object|Write-Verbose|Start-Sleep)$/;
    expect(cmdlets.filter((name) => !readOnly.test(name))).toEqual([]);
    // .NET: no writable registry key, no write or delete of any kind.
    const writes = /^(CreateSubKey|DeleteValue|DeleteSubKey|DeleteSubKeyTree|SetValue|SetAccessControl|SetSecurityDescriptorSddlForm|Stop|Start|Delete|MoveTo|CopyTo)$/i;
    expect(read.memberCalls.filter((call) => writes.test(call.member)).map((call) => where(ACCESS_READ, call.line, `${call.target}.${call.member}`))).toEqual([]);
    expect(read.staticMembers.filter((member) => member.invoked && writes.test(member.member)).map((member) => where(ACCESS_READ, member.line, member.member))).toEqual([]);
    const writable = read.memberCalls.filter((call) => /^OpenSubKey$/i.test(call.member) && call.args.length > 1 && call.args[1]!.text.toLowerCase() !== '$false');
    expect(writable.map((call) => where(ACCESS_READ, call.line, call.args.map((argument) => argument.text).join(', ')))).toEqual([]);
    const fileWrites = read.staticMembers.filter((member) => /^System\.IO\.(File|Directory)$/.test(resolveType(member.parts[0] ?? member.type) ?? '') && /^(Write|Append|Create|Delete|Move|Copy|Set|Replace|Encrypt|Decrypt|Open)/i.test(member.member));
    expect(fileWrites.map((member) => where(ACCESS_READ, member.line, member.member))).toEqual([]);
    // The one native program it runs is netstat; reg.exe and icacls write (reg export writes a file).
    const programs = read.commands.filter((command) => command.name === 'Invoke-RrNativeCommand').map((command) => constantText(namedValue(command, 'FilePath')) ?? command.text);
    expect(programs).toEqual(['netstat.exe']);
    expect(read.strings.filter((literal) => /^(icacls|reg)(\.exe)?$/i.test(literal.value)).map((literal) => literal.value)).toEqual([]);
  });

  it('put only the loopback handshake in Access.Handshake.ps1: one public function, reads only, no program, file or registry', () => {
    const handshake = ast(ACCESS_HANDSHAKE);
    // The one public function, with the parameters the logic and the double use.
    const test = handshake.functions.find((fn) => fn.name === HANDSHAKE_FUNCTION);
    expect(test?.parameters.map((parameter) => `${String(parameter.type)} ${parameter.name}`)).toEqual(['string Address', 'int Port', 'int TimeoutMilliseconds']);
    // Its helpers serve it alone: no other file calls them (a double replaces Test-RrRdpHandshake only).
    const internals = handshakeInternals();
    const callers = sourceNames.filter((name) => name !== ACCESS_HANDSHAKE && !name.startsWith('composed ')).flatMap((name) => rrCalls(name).filter((call) => internals.has(call)).map((call) => `${name} calls ${call}`));
    expect(callers).toEqual([]);
    for (const command of handshake.commands.filter((candidate) => internals.has((candidate.name ?? '').toLowerCase()))) {
      expect(command.fn === null ? null : lowerNames(definedIn(ACCESS_HANDSHAKE)).has(command.fn.toLowerCase()), where(ACCESS_HANDSHAKE, command.line, command.text)).toBe(true);
    }
    // Cmdlets: New-Object and pure helpers only; no native program, no command held in a variable.
    const cmdlets = handshake.commands.map((command) => command.name).filter((name): name is string => name !== null && !/-Rr[A-Z]/.test(name));
    expect(cmdlets.filter((name) => !/^(New-Object|Select-Object|Where-Object|Write-Verbose)$/.test(name))).toEqual([]);
    expect(handshake.commands.filter((command) => command.name === null || command.operator !== 'Unknown').map((command) => command.text)).toEqual([]);
    expect(handshake.commands.filter((command) => command.name === 'Invoke-RrNativeCommand').map((command) => command.text)).toEqual([]);
    // No registry, file system, WMI or service: its only reach is the one TCP connection (and the
    // OS version, to know whether Schannel offers TLS 1.3).
    const elsewhere = /^((System\.)?(IO\.|Management\.(?!Automation\.)|ServiceProcess\.|Security\.AccessControl)|Microsoft\.Win32|Microsoft\.Management)/i;
    expect(handshake.types.filter((use) => use.parts.some((part) => elsewhere.test(part))).map((use) => where(ACCESS_HANDSHAKE, use.line, use.name))).toEqual([]);
    const writes = /^(CreateSubKey|DeleteValue|DeleteSubKey|DeleteSubKeyTree|SetValue|SetAccessControl|SetSecurityDescriptorSddlForm|Stop|Start|Delete|MoveTo|CopyTo|OpenSubKey|Import|Export|Add|Remove)$/i;
    expect(handshake.memberCalls.filter((call) => writes.test(call.member)).map((call) => where(ACCESS_HANDSHAKE, call.line, `${call.target}.${call.member}`))).toEqual([]);
    expect(handshake.staticMembers.filter((member) => member.invoked && writes.test(member.member)).map((member) => where(ACCESS_HANDSHAKE, member.line, member.member))).toEqual([]);
  });

  it('keep in Access.Write.ps1 only what changes state or writes a file', () => {
    const writes = definedIn(ACCESS_WRITE).map((fn) => fn.name);
    expect(writes.sort()).toEqual(
      [
        'Set-RrRegistryValue',
        'Remove-RrRegistryValue',
        'Export-RrRegistryKey',
        'Remove-RrCertificate',
        'Export-RrCertificate',
        'Set-RrSddl',
        'Invoke-RrIcaclsSave',
        'Invoke-RrIcaclsGrant',
        'Invoke-RrIcaclsSetOwner',
        'Restart-RrService',
        'Start-RrService',
        'New-RrDirectory',
        'Write-RrTextFile',
        'Enable-RrFirewallRule',
        'Disable-RrFirewallRule',
        'New-RrFirewallPortRule',
        'Export-RrFirewallPolicy',
      ].sort(),
    );
    // The plumbing both halves need lives in the read half, once.
    for (const internal of ACCESS_INTERNALS) expect(lowerNames(definedIn(ACCESS_READ)).has(internal), internal).toBe(true);
  });

  it('compose a probe that defines and calls nothing from Access.Write.ps1 or Actions.ps1', () => {
    const forbidden = lowerNames(definedIn(ACCESS_WRITE, ACTIONS));
    expect(forbidden.size).toBeGreaterThan(10);
    const probe = ast('composed probe');
    const defined = probe.functions.map((fn) => fn.name);
    expect(defined.filter((name) => forbidden.has(name.toLowerCase()))).toEqual([]);
    const called = probe.commands.map((command) => command.name ?? command.text);
    expect(called.filter((name) => forbidden.has(name.toLowerCase()))).toEqual([]);
    // Nor any cmdlet that changes state, and no function name reached some other way (a string, a variable).
    expect(called.filter((name) => /^(Set|Remove|New-Item|Export|Restart|Start-Service|Stop|Rename|Move|Copy|Clear|Add|Install|Uninstall|Enable|Disable|Register|Unregister|Out-File)\b/i.test(name) && name !== 'Set-StrictMode')).toEqual([]);
    const mentions = probe.tokens.filter(([kind]) => kind !== 'Comment').flatMap(([, text, line]) => [...forbidden].filter((name) => text.toLowerCase().includes(name)).map((name) => `line ${String(line)}: ${name}`));
    expect(mentions).toEqual([]);
    expect(probe.commands.filter((command) => command.name === null).map((command) => command.fn)).toEqual(['Invoke-RrNativeCommand']);
    expect(defined).toEqual(expect.arrayContaining(['Invoke-RrProbe', 'ConvertTo-RrResultLine', 'Get-RrRegistryValue']));
    // The fix payload still carries everything.
    const fixDefined = lowerNames(ast('composed fix').functions);
    for (const name of forbidden) expect(fixDefined.has(name), name).toBe(true);
  });

  it('call every Rr function by its declared parameter names, none positional', () => {
    const functions = new Map([...accessFunctions(), ...logicFunctions()].map((fn) => [fn.name.toLowerCase(), fn]));
    const problems: string[] = [];
    for (const name of sourceNames) {
      for (const command of ast(name).commands) {
        if (command.name === null || !/-Rr/i.test(command.name)) continue;
        const target = functions.get(command.name.toLowerCase());
        const at = where(name, command.line, command.text);
        if (!target) {
          problems.push(`${at}: ${command.name} is not defined`);
          continue;
        }
        problems.push(...namedCallProblems(at, command, target));
      }
    }
    expect(problems).toEqual([]);
  });

  it('read no variable that is never set (Set-StrictMode -Version 3.0 makes that a terminating error)', () => {
    const AUTOMATIC = new Set(['_', 'null', 'true', 'false', 'matches', 'psitem', 'erroractionpreference', 'progresspreference', 'verbosepreference', 'global:lastexitcode']);
    const problems: string[] = [];
    for (const name of ['composed probe', 'composed fix']) {
      const file = ast(name);
      const setIn = (fn: string | null): Set<string> => new Set(file.variables.filter((variable) => variable.fn === fn && variable.assigned !== null).map((variable) => variable.name.toLowerCase()));
      const scriptLevel = setIn(null);
      const scriptVariables = new Set([...scriptLevel].filter((variable) => variable.startsWith('script:')));
      const sets = new Map<string | null, Set<string>>([[null, scriptLevel]]);
      for (const variable of file.variables.filter((v) => v.assigned === null)) {
        let defined = sets.get(variable.fn);
        if (!defined) sets.set(variable.fn, (defined = setIn(variable.fn)));
        const lower = variable.name.toLowerCase();
        const known = AUTOMATIC.has(lower) || defined.has(lower) || scriptVariables.has(lower) || scriptVariables.has(`script:${lower}`);
        if (!known) problems.push(`${name}: ${variable.fn ?? 'script level'} reads $${variable.name} (line ${String(variable.line)}), which nothing sets`);
      }
    }
    expect(problems).toEqual([]);
  });

  it('dispatches every action id of src/contract/actions.ts, to functions the fix payload defines', () => {
    const actions = ast(ACTIONS);
    const fixFunctions = new Map(ast('composed fix').functions.map((fn) => [fn.name.toLowerCase(), fn]));
    const problems: string[] = [];
    // Either a switch in Invoke-RrAction ...
    const switchIds = actions.switches.filter((s) => s.fn === 'Invoke-RrAction').flatMap((s) => s.clauses.map((clause) => String(clause.value)));
    // ... or a handler table, $script:RrActionHandlers = @{ '<id>' = @{ Invoke = '<fn>'; Read = '<fn>' } }.
    const table = actions.hashtables.find((hashtable) => /^\$script:RrActionHandlers$/i.test(hashtable.assignedTo ?? ''));
    const handled = new Set([...switchIds, ...(table?.entries.map((entry) => entry.key) ?? [])]);
    for (const id of ACTION_IDS) if (!handled.has(id)) problems.push(`no dispatch for ${id}`);
    if (table !== undefined) {
      expect(table.fn, 'the handler table is set at script level').toBeNull();
      const tableIds = table.entries.map((entry) => entry.key);
      for (const id of tableIds) if (!(ACTION_IDS as readonly string[]).includes(id)) problems.push(`handler for ${id}, which src/contract/actions.ts does not know`);
      // Every target is a logic function the fix payload defines, and takes the parameters the dispatch passes.
      const logic = lowerNames(logicFunctions());
      const dynamicCalls = actions.commands.filter((command) => command.name === null && DYNAMIC_DISPATCHERS.has(command.fn?.toLowerCase() ?? ''));
      for (const handler of actions.hashtables.filter((hashtable) => hashtable.parent === table.index)) {
        for (const entry of handler.entries) {
          const target = entry.value?.ast === 'StringConstantExpressionAst' ? String(entry.value.value) : undefined;
          if (target === undefined) {
            problems.push(`${String(handler.parentKey)}.${entry.key}: not a function name (${entry.text})`);
            continue;
          }
          const fn = fixFunctions.get(target.toLowerCase());
          if (!fn || !logic.has(target.toLowerCase())) {
            problems.push(`${String(handler.parentKey)}.${entry.key}: ${target} is not a logic function of the fix payload`);
            continue;
          }
          for (const call of dynamicCalls.filter((command) => command.head.text.includes(`'${entry.key}'`) || command.head.text.includes(`"${entry.key}"`))) {
            problems.push(...namedCallProblems(where(ACTIONS, call.line, call.text), call, fn));
          }
        }
      }
      for (const call of dynamicCalls) {
        const keys = [...new Set(actions.hashtables.filter((hashtable) => hashtable.parent === table.index).flatMap((hashtable) => hashtable.entries.map((entry) => entry.key)))];
        if (!keys.some((key) => call.head.text.includes(`'${key}'`) || call.head.text.includes(`"${key}"`))) problems.push(`${where(ACTIONS, call.line, call.text)}: cannot tell which handler it calls`);
      }
    }
    expect(problems).toEqual([]);
  });

  it('run icacls and reg.exe from Access.*.ps1 only, with arguments as separate strings', () => {
    for (const name of [FACTS, ACTIONS, 'scripts/probe.ps1', 'scripts/fix.ps1']) {
      const file = ast(name);
      expect(codeTokens(file).filter(([, text]) => /\b(icacls|reg|cmd|netstat)(\.exe)?\b/i.test(text)).map(([, text, line]) => where(name, line, text))).toEqual([]);
      expect(file.strings.filter((literal) => /^(icacls|reg|cmd|netstat)(\.exe)?$/i.test(literal.value)).map((literal) => where(name, literal.line, literal.value))).toEqual([]);
    }
    for (const name of [ACCESS_READ, ACCESS_HANDSHAKE, ACCESS_WRITE]) {
      // No command line is ever assembled as one string for a shell.
      const file = ast(name);
      expect(codeTokens(file).filter(([, text]) => /\b(Invoke-Expression|iex|Start-Process|cmd(\.exe)?)\b/i.test(text)).map(([, text, line]) => where(name, line, text))).toEqual([]);
      expect(file.strings.filter((literal) => /^(Invoke-Expression|iex|Start-Process|cmd(\.exe)?)$/i.test(literal.value)).map((literal) => where(name, literal.line, literal.value))).toEqual([]);
    }
    // Programs run through the one helper in the read half; the write half calls it.
    const natives = (name: string): string[] => ast(name).commands.filter((command) => command.name === null || command.operator !== 'Unknown').map((command) => command.text);
    expect(natives(ACCESS_READ)).toEqual(['& $command @ArgumentList 2>&1']);
    expect(natives(ACCESS_WRITE)).toEqual([]);
    expect(natives(ACCESS_HANDSHAKE)).toEqual([]);
  });

  it('never delete certificates outside the Remote Desktop store', () => {
    const remove = definedIn(ACCESS_WRITE).find((fn) => fn.name === 'Remove-RrCertificate');
    expect(remove).toBeDefined();
    const storeName = remove!.parameters.find((parameter) => parameter.name === 'StoreName');
    const validateSet = storeName?.attributes.find((attribute) => attribute.name === 'ValidateSet');
    expect(validateSet?.args.map((argument) => argument.value)).toEqual(['Remote Desktop']);
    for (const name of [ACCESS_READ, ACCESS_HANDSHAKE, ACCESS_WRITE]) {
      const file = ast(name);
      expect(file.commands.filter((command) => command.elements.some((element) => element.parameter !== undefined && /^DeleteKey$/i.test(element.parameter))).map((command) => command.text), name).toEqual([]);
      expect(codeTokens(file).filter(([, text]) => /-DeleteKey/i.test(text)).map(([, text, line]) => where(name, line, text)), name).toEqual([]);
    }
  });
});

describe('admin docs', () => {
  it.each([
    ['probe', ProbeResultSchema],
    ['fix', FixResultSchema],
  ] as const)('scripts/docs/%s.md shows a result line that the contract accepts', (kind, schema) => {
    const doc = readFileSync(join(scriptsDir, 'docs', `${kind}.md`), 'utf8');
    const examples = [...doc.matchAll(/```json\n(.*)\n```/g)].map((match) => match[1] ?? '');
    expect(examples.length).toBeGreaterThan(0);
    for (const line of examples) {
      expect(Buffer.byteLength(line, 'utf8')).toBeLessThanOrEqual(RESULT_LINE_MAX_BYTES);
      const parsed = schema.safeParse(JSON.parse(line));
      expect(parsed.success, parsed.success ? '' : JSON.stringify(parsed.error.issues.slice(0, 3))).toBe(true);
    }
  });

  it('documents every action, with the backup file names the logic writes', () => {
    const doc = readFileSync(join(scriptsDir, 'docs', 'fix.md'), 'utf8');
    for (const id of ACTION_IDS) expect(doc).toContain(`### ${id}`);
    const logic = fileText(ACTIONS);
    const backupNames = [...logic.matchAll(/-FileName '([^']+)'/g)].map((match) => match[1] ?? '');
    expect(backupNames.length).toBeGreaterThan(0);
    for (const name of backupNames) expect(doc).toContain(name);
  });
});
