/**
 * Static checks of the PowerShell payloads (scripts/*.ps1 and the composed probe/fix).
 * No PowerShell runs here: tree-sitter-powershell parses every script, and the checks read
 * its tree. When `pwsh` is on PATH the real PowerShell parser checks the same files too.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import type { Tree } from 'web-tree-sitter';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ACTION_IDS } from '../../src/contract/actions.js';
import { FixResultSchema, ProbeResultSchema, RESULT_LINE_MAX_BYTES } from '../../src/contract/results.js';
import { PAYLOAD_MARKER, type PayloadKind } from '../../src/contract/parameters.js';
import { composeScript, DEFAULT_LIBRARIES, INCLUDE_LINE, scriptsDirectory, stripCommentLines } from '../../src/payloads/compose.js';
import {
  codeOnly,
  commandInvocations,
  firstSyntaxProblem,
  functionDefinitions,
  isPwshAvailable,
  nodesOfType,
  parsePowerShell,
  realPowerShellParseErrors,
  stringLiterals,
  stringValue,
  type FunctionInfo,
} from '../support/powershell-parser.js';

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
  /** Where the real parser can read it. */
  path: string;
}

const files: Source[] = listPs1(scriptsDir)
  .sort()
  .map((path) => ({ name: `scripts/${relative(scriptsDir, path).replace(/\\/g, '/')}`, text: readFileSync(path, 'utf8'), path }));
const composed: Source[] = PAYLOAD_KINDS.map((kind) => ({ name: `composed ${kind}`, text: composeScript(kind), path: '' }));
const sources: Source[] = [...files, ...composed];

/** The libraries, as scripts/lib names. */
const ACCESS_READ = 'scripts/lib/Access.Read.ps1';
const ACCESS_WRITE = 'scripts/lib/Access.Write.ps1';
const FACTS = 'scripts/lib/Facts.ps1';
const ACTIONS = 'scripts/lib/Actions.ps1';
const LIBRARIES = [ACCESS_READ, ACCESS_WRITE, FACTS, ACTIONS] as const;
/** Each library as the composer splices it in by default, and verbatim; parsed for the stripping check. */
const spliced = LIBRARIES.map((name) => ({ name, verbatim: fileText(name), stripped: stripCommentLines(fileText(name).replace(/\r\n/g, '\n').trimEnd()) }));

function fileText(name: string): string {
  const source = files.find((candidate) => candidate.name === name);
  if (!source) throw new Error(`${name} not found under scripts/`);
  return source.text;
}

/** `line N` of an offset, for messages. */
function lineOf(text: string, offset: number): number {
  return text.slice(0, offset).split('\n').length;
}

const pwsh = isPwshAvailable();
if (!pwsh) {
  console.warn('[payload-scripts] no pwsh (PATH or PWSH_COMMAND): the real PowerShell parser was SKIPPED; only tree-sitter-powershell parsed the scripts.');
}

const trees = new Map<string, Tree>();
function tree(name: string): Tree {
  const parsed = trees.get(name);
  if (!parsed) throw new Error(`no tree for ${name}`);
  return parsed;
}

let tempDir = '';

beforeAll(async () => {
  for (const source of sources) trees.set(source.name, await parsePowerShell(source.text));
  for (const library of spliced) trees.set(`${library.name} (stripped)`, await parsePowerShell(library.stripped));
});

afterAll(() => {
  if (tempDir !== '') rmSync(tempDir, { recursive: true, force: true });
});

describe('payload scripts parse', () => {
  it('finds the entry scripts and the four libraries, and composes each payload from its own', () => {
    const names = files.map((source) => source.name);
    expect(names).toEqual(expect.arrayContaining(['scripts/probe.ps1', 'scripts/fix.ps1', ...LIBRARIES]));
    expect(names.filter((name) => name.startsWith('scripts/lib/')).sort()).toEqual([...LIBRARIES].sort());
    expect(DEFAULT_LIBRARIES.probe.map((lib) => `scripts/${lib}`)).toEqual([ACCESS_READ, FACTS]);
    expect(DEFAULT_LIBRARIES.fix.map((lib) => `scripts/${lib}`)).toEqual([ACCESS_READ, ACCESS_WRITE, FACTS, ACTIONS]);
  });

  it.each(PAYLOAD_KINDS)('composed %s parses with tree-sitter-powershell, with and without library comments', async (kind) => {
    expect(firstSyntaxProblem(tree(`composed ${kind}`))).toBeNull();
    expect(firstSyntaxProblem(await parsePowerShell(composeScript(kind, { keepComments: true })))).toBeNull();
  });

  it.each(LIBRARIES)('leaving out the comment lines of %s changes no code and no string', (name) => {
    const library = spliced.find((candidate) => candidate.name === name)!;
    const stripped = tree(`${name} (stripped)`);
    const original = tree(name);
    expect(firstSyntaxProblem(stripped)).toBeNull();
    expect(library.stripped.length).toBeLessThan(library.verbatim.length);
    const tokens = (source: Tree): string[] => codeOnly(source).split(/\s+/).filter((token) => token !== '');
    expect(tokens(stripped)).toEqual(tokens(original));
    expect(stringLiterals(stripped).map((node) => node.text)).toEqual(stringLiterals(original).map((node) => node.text));
    expect(nodesOfType(stripped.rootNode, 'comment')).toEqual([]);
  });

  it.each(sources.map((source) => source.name))('%s has no syntax error (tree-sitter-powershell)', (name) => {
    const problem = firstSyntaxProblem(tree(name));
    expect(problem, problem ? `${problem.kind} at line ${problem.line}, column ${problem.column}: ${problem.text}` : '').toBeNull();
  });

  it.skipIf(!pwsh)('has no syntax error for the real PowerShell parser (pwsh)', () => {
    tempDir = mkdtempSync(join(tmpdir(), 'rr-payload-'));
    for (const source of composed) {
      source.path = join(tempDir, `${source.name.replace(/\W+/g, '-')}.ps1`);
      writeFileSync(source.path, source.text, 'utf8');
    }
    for (const source of sources) {
      const result = realPowerShellParseErrors(source.path);
      expect(result.errors, `${source.name}: ${result.errors.join('; ')}`).toEqual([]);
    }
  });
});

describe('entry scripts', () => {
  it.each(PAYLOAD_KINDS)('%s.ps1 starts with its marker, then a param() block, then the include line once', (kind) => {
    const text = fileText(`scripts/${kind}.ps1`);
    const lines = text.replace(/\r\n/g, '\n').split('\n');
    expect(lines[0]).toBe(`${PAYLOAD_MARKER}${kind}`);
    const includeLines = lines.filter((line) => line.trim() === INCLUDE_LINE);
    expect(includeLines).toHaveLength(1);
    expect(lines.filter((line) => line.includes('#include'))).toHaveLength(1);

    const root = tree(`scripts/${kind}.ps1`).rootNode;
    const paramBlocks = root.namedChildren.filter((child) => child?.type === 'param_block');
    expect(paramBlocks, 'a script-level param() block').toHaveLength(1);
    const paramBlock = paramBlocks[0]!;
    expect(paramBlock.text).toMatch(/^\[CmdletBinding\(\)\]\s*param\s*\(/);

    const includeAt = text.indexOf(INCLUDE_LINE);
    expect(paramBlock.endIndex).toBeLessThan(includeAt);
    const header = text.slice(paramBlock.endIndex, includeAt);
    expect(header).toMatch(/^\s*Set-StrictMode -Version 3\.0\s*$/m);
    expect(header).toMatch(/^\s*\$ErrorActionPreference = 'Stop'\s*$/m);
    // Before the param block only comments may stand.
    expect(codeOnly(tree(`scripts/${kind}.ps1`)).slice(0, paramBlock.startIndex).trim()).toBe('');
  });

  it('validates every parameter in param()', () => {
    const probe = fileText('scripts/probe.ps1');
    const fix = fileText('scripts/fix.ps1');
    const runIdPattern = "[ValidatePattern('^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$')]";
    const mandatory = '[Parameter(Mandatory = $true)]\n    ';
    expect(probe).toContain(`${mandatory}${runIdPattern}\n    [string]$RunId`);
    expect(fix).toContain(`${mandatory}${runIdPattern}\n    [string]$RunId`);
    expect(fix).toContain(`${mandatory}[ValidatePattern('^[a-z0-9-]+(,[a-z0-9-]+)*$')]\n    [string]$Actions`);
    expect(fix).toContain("[ValidateSet('true', 'false')]\n    [string]$DryRun = 'false'");
    expect(fix).toContain("[AllowEmptyString()]\n    [ValidateSet('', '0', '1', '2')]\n    [string]$RestoreSecurityLayer");
    expect(fix).toContain("[AllowEmptyString()]\n    [ValidateSet('', '0', '1')]\n    [string]$RestoreUserAuthentication");
    const declared = (kind: PayloadKind): string[] => {
      const block = tree(`scripts/${kind}.ps1`).rootNode.namedChildren.find((child) => child?.type === 'param_block');
      return block ? nodesOfType(block, 'script_parameter').map((parameter) => parameter.namedChildren.find((c) => c?.type === 'variable')?.text ?? '') : [];
    };
    expect(declared('probe')).toEqual(['$RunId']);
    expect(declared('fix')).toEqual(['$RunId', '$Actions', '$DryRun', '$RestoreSecurityLayer', '$RestoreUserAuthentication']);
  });

  it.each(PAYLOAD_KINDS)('%s.ps1 writes to the success stream once, with Write-Output', (kind) => {
    for (const name of [`scripts/${kind}.ps1`, `composed ${kind}`]) {
      const writes = commandInvocations(tree(name)).filter((command) => /^(Write-Output|echo|write)$/i.test(command.name));
      expect(writes.map((command) => command.node.text), name).toEqual(['Write-Output $resultLine']);
    }
  });
});

describe('static safety checks', () => {
  it.each(sources.map((source) => source.name))('%s is ASCII (Run Command and the 5.1 parser read it in any code page)', (name) => {
    const text = sources.find((source) => source.name === name)!.text;
    const at = text.split('').findIndex((character) => character.charCodeAt(0) > 0x7f);
    expect(at, at >= 0 ? `non-ASCII character at line ${lineOf(text, at)}` : '').toBe(-1);
  });

  it.each(sources.map((source) => source.name))('%s never prompts and never writes to the host', (name) => {
    const code = codeOnly(tree(name));
    expect(code).not.toMatch(/\bRead-Host\b/i);
    expect(code).not.toMatch(/\bWrite-Host\b/i);
    expect(code).not.toMatch(/\b(Get-Credential|Out-Host|Out-Default|Pause)\b/i);
  });

  it.each(sources.map((source) => source.name))('%s never renames, moves or deletes anything named MachineKeys', (name) => {
    const destructive = /^(Remove-Item|Rename-Item|Move-Item|ri|rm|rmdir|rd|del|erase|ren|rni|mi|move|mv)$/i;
    const offenders = commandInvocations(tree(name)).filter((command) => destructive.test(command.name) && /machinekeys/i.test(command.node.text));
    expect(offenders.map((command) => command.node.text)).toEqual([]);
    // Nor through .NET or a native program.
    const code = codeOnly(tree(name));
    expect(code).not.toMatch(/\[(System\.)?IO\.(Directory|File)\]::(Delete|Move)/i);
    expect(code).not.toMatch(/\b(rmdir|rd|ren|move|takeown)(\.exe)?\b\s/i);
  });

  it.each(sources.map((source) => source.name))('%s names accounts by SID only', (name) => {
    // Comments may explain in words; code and strings may not.
    const source = tree(name);
    const localized = /\b(NETWORK SERVICE|NetworkService|Administrators|Everyone|SYSTEM|NT AUTHORITY|BUILTIN|LOCAL SERVICE)\s*:\s*\(/i;
    for (const literal of stringLiterals(source)) {
      expect(stringValue(literal), `line ${literal.startPosition.row + 1}`).not.toMatch(localized);
      // Anything shaped like an icacls grant names its account as *SID.
      const grant = /^([^:()]+):\([A-Z,]+\)$/i.exec(stringValue(literal));
      if (grant) expect(grant[1], `line ${literal.startPosition.row + 1}`).toMatch(/^\*S-1-\d+(-\d+)*$/);
    }
    expect(codeOnly(source)).not.toMatch(localized);
    for (const command of commandInvocations(source).filter((c) => /^icacls(\.exe)?$/i.test(c.name))) {
      expect(command.node.text).not.toMatch(/(NETWORK SERVICE|Administrators|Everyone|SYSTEM)/i);
    }
  });

  it.each(sources.map((source) => source.name))('%s uses Windows PowerShell 5.1 syntax only', (name) => {
    const code = codeOnly(tree(name));
    const ps7Only: readonly [RegExp, string][] = [
      [/\?\?/, 'null-coalescing ?? or ??='],
      [/\?\./, 'null-conditional ?.'],
      [/\?\[/, 'null-conditional ?['],
      // After comments and strings are gone, a ? can only be a ternary, a null-conditional or
      // the Where-Object alias; $? is the one legitimate use.
      [/(?<!\$)\?/, 'ternary ? : (or the ? alias)'],
      [/&&/, 'pipeline chain &&'],
      [/\|\|/, 'pipeline chain ||'],
      [/(^|[\s(])-Parallel\b/i, '-Parallel'],
      [/\bJoin-String\b/i, 'Join-String'],
      [/\bGet-Error\b/i, 'Get-Error'],
      [/\bTest-Json\b/i, 'Test-Json'],
      [/-AsHashtable\b/i, 'ConvertFrom-Json -AsHashtable'],
      [/\bclean\s*\{/i, 'clean block'],
    ];
    for (const [pattern, what] of ps7Only) {
      const match = pattern.exec(code);
      expect(match, match ? `${what} at line ${lineOf(code, match.index)}` : '').toBeNull();
    }
    for (const command of commandInvocations(tree(name)).filter((c) => /^ConvertFrom-Json$/i.test(c.name))) {
      expect(command.node.text, 'ConvertFrom-Json -Depth is PowerShell 6.2+').not.toMatch(/-Depth\b/i);
    }
  });
});

describe('libraries', () => {
  const definedIn = (...names: string[]): FunctionInfo[] => names.flatMap((name) => functionDefinitions(tree(name)));
  const accessFunctions = (): FunctionInfo[] => definedIn(ACCESS_READ, ACCESS_WRITE);
  const logicFunctions = (): FunctionInfo[] => definedIn(FACTS, ACTIONS);
  const lowerNames = (functions: readonly FunctionInfo[]): Set<string> => new Set(functions.map((fn) => fn.name.toLowerCase()));
  /** The Rr functions a file calls (lower case), whoever defines them. */
  const rrCalls = (name: string): string[] => [...new Set(commandInvocations(tree(name)).map((command) => command.name.toLowerCase()).filter((command) => /-rr[a-z]/.test(command)))];
  /** Plumbing of the access layer that a test double need not provide. */
  const ACCESS_INTERNALS = new Set(['get-rrhklmbasekey', 'get-rrregistrysubkeyname', 'invoke-rrnativecommand']);
  /** Cmdlets that only compute: the logic may call them, the double has no need to. */
  const PURE_CMDLETS = new Set(['write-verbose', 'convertto-json', 'sort-object', 'out-null', 'new-object', 'select-object', 'where-object', 'foreach-object']);

  it('name every function Verb-RrNoun, each once', () => {
    const names = [...accessFunctions(), ...logicFunctions()].map((fn) => fn.name);
    for (const name of names) expect(name).toMatch(/^[A-Z][A-Za-z]+-Rr[A-Z][A-Za-z0-9]*$/);
    const lower = names.map((name) => name.toLowerCase());
    expect(lower.filter((name, index) => lower.indexOf(name) !== index)).toEqual([]);
  });

  it.each([FACTS, ACTIONS])('keep Windows calls in Access.*.ps1: %s calls only logic and the public access functions', (name) => {
    const known = lowerNames([...accessFunctions(), ...logicFunctions()]);
    const offenders = commandInvocations(tree(name))
      .map((command) => command.name.toLowerCase())
      .filter((command) => ACCESS_INTERNALS.has(command) || !(known.has(command) || PURE_CMDLETS.has(command)));
    expect(offenders).toEqual([]);
    const code = codeOnly(tree(name));
    expect(code).not.toMatch(/\[(System\.)?(IO\.|Environment\]|Diagnostics\.|Net\.|Management\.|ServiceProcess\.|Security\.Cryptography)|Microsoft\.Win32|\bGet-Date\b|\bicacls\b|\breg\.exe\b/i);
  });

  it('calls from each library reach only functions its payloads carry', () => {
    const problems: string[] = [];
    const check = (name: string, allowedFrom: readonly string[]): void => {
      const allowed = lowerNames(definedIn(...allowedFrom));
      for (const call of rrCalls(name)) if (!allowed.has(call)) problems.push(`${name} calls ${call}, defined in none of ${allowedFrom.join(', ')}`);
    };
    // The probe carries Access.Read.ps1 and Facts.ps1 only.
    check(ACCESS_READ, [ACCESS_READ]);
    check(FACTS, [ACCESS_READ, FACTS]);
    check(ACCESS_WRITE, [ACCESS_READ, ACCESS_WRITE]);
    check(ACTIONS, [ACCESS_READ, ACCESS_WRITE, FACTS, ACTIONS]);
    check('scripts/probe.ps1', DEFAULT_LIBRARIES.probe.map((lib) => `scripts/${lib}`));
    check('scripts/fix.ps1', DEFAULT_LIBRARIES.fix.map((lib) => `scripts/${lib}`));
    expect(problems).toEqual([]);
  });

  it('put only reads in Access.Read.ps1: nothing there changes the VM or writes a file', () => {
    const read = tree(ACCESS_READ);
    // Cmdlets: reads and pure helpers only.
    const cmdlets = commandInvocations(read)
      .map((command) => command.name)
      .filter((name) => !/-Rr[A-Z]/.test(name) && !name.startsWith('$'));
    const readOnly = /^(Get-[A-Za-z]+|Test-[A-Za-z]+|Select-Object|Where-Object|Sort-Object|New-Object|Write-Verbose|Start-Sleep)$/;
    expect(cmdlets.filter((name) => !readOnly.test(name))).toEqual([]);
    // .NET: no writable registry key, no write or delete of any kind.
    const code = codeOnly(read);
    expect(code).not.toMatch(/\.(CreateSubKey|DeleteValue|DeleteSubKey|DeleteSubKeyTree|SetValue|SetAccessControl|SetSecurityDescriptorSddlForm|Stop|Start|Delete|MoveTo|CopyTo)\s*\(/i);
    expect(code).not.toMatch(/OpenSubKey\([^)]*\$true/i);
    expect(code).not.toMatch(/\[(System\.)?IO\.(File|Directory)\]::(Write|Append|Create|Delete|Move|Copy|Set)/i);
    // The one native program it runs is netstat; reg.exe and icacls write (reg export writes a file).
    const programs = commandInvocations(read)
      .filter((command) => command.name === 'Invoke-RrNativeCommand')
      .map((command) => command.node.text.match(/-FilePath\s+'([^']+)'/i)?.[1] ?? command.node.text);
    expect(programs).toEqual(['netstat.exe']);
    for (const literal of stringLiterals(read)) expect(stringValue(literal)).not.toMatch(/^(icacls|reg)(\.exe)?$/i);
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
      ].sort(),
    );
    // The plumbing both halves need lives in the read half, once.
    for (const internal of ACCESS_INTERNALS) expect(lowerNames(definedIn(ACCESS_READ)).has(internal), internal).toBe(true);
  });

  it('compose a probe that defines and calls nothing from Access.Write.ps1 or Actions.ps1 (tree-sitter command scan)', () => {
    const forbidden = lowerNames(definedIn(ACCESS_WRITE, ACTIONS));
    expect(forbidden.size).toBeGreaterThan(10);
    const probe = tree('composed probe');
    const defined = functionDefinitions(probe).map((fn) => fn.name);
    expect(defined.filter((name) => forbidden.has(name.toLowerCase()))).toEqual([]);
    const called = commandInvocations(probe).map((command) => command.name);
    expect(called.filter((name) => forbidden.has(name.toLowerCase()))).toEqual([]);
    // Nor any cmdlet that changes state, and no function name reached some other way.
    expect(called.filter((name) => /^(Set|Remove|New-Item|Export|Restart|Start-Service|Stop|Rename|Move|Copy|Clear|Add|Install|Uninstall|Enable|Disable|Register|Unregister|Out-File)\b/i.test(name) && name !== 'Set-StrictMode')).toEqual([]);
    const code = codeOnly(probe);
    for (const name of forbidden) expect(code.toLowerCase()).not.toContain(name);
    expect(defined).toEqual(expect.arrayContaining(['Invoke-RrProbe', 'ConvertTo-RrResultLine', 'Get-RrRegistryValue']));
    // The fix payload still carries everything.
    const fixDefined = lowerNames(functionDefinitions(tree('composed fix')));
    for (const name of forbidden) expect(fixDefined.has(name), name).toBe(true);
  });

  it('call every Rr function by its declared parameter names, none positional', () => {
    const functions = new Map([...accessFunctions(), ...logicFunctions()].map((fn) => [fn.name.toLowerCase(), fn]));
    const problems: string[] = [];
    for (const name of sources.map((source) => source.name)) {
      for (const command of commandInvocations(tree(name))) {
        if (!/-Rr/i.test(command.name)) continue;
        const target = functions.get(command.name.toLowerCase());
        const where = `${name} line ${command.node.startPosition.row + 1}: ${command.node.text.slice(0, 80)}`;
        if (!target) {
          problems.push(`${where}: ${command.name} is not defined`);
          continue;
        }
        for (let i = 0; i < command.elements.length; i++) {
          const element = command.elements[i]!;
          if (element.type !== 'command_parameter') {
            if (element.type !== 'redirection' && element.type !== 'redirections') problems.push(`${where}: positional argument ${element.text}`);
            continue;
          }
          const parameterName = element.text.replace(/^-/, '').replace(/:$/, '');
          const parameter = target.parameters.get(parameterName.toLowerCase());
          if (!parameter) problems.push(`${where}: ${command.name} has no parameter -${parameterName}`);
          else if (element.text.endsWith(':') || !parameter.isSwitch) i++;
        }
      }
    }
    expect(problems).toEqual([]);
  });

  it('read no variable that is never set (Set-StrictMode -Version 3.0 makes that a terminating error)', () => {
    const AUTOMATIC = new Set(['$_', '$null', '$true', '$false', '$matches', '$psitem', '$erroractionpreference', '$progresspreference', '$verbosepreference', '$global:lastexitcode']);
    // `@name` splats the variable `$name`; `${name}` is `$name` too.
    const variableName = (text: string): string =>
      text
        .toLowerCase()
        .replace(/^@/, '$')
        .replace(/^\$\{(.*)\}$/, '$$$1');
    /** Variables a scope sets: parameters, assignment targets, loop variables. */
    const setIn = (scope: Parameters<typeof nodesOfType>[0], skipFunctions: boolean): Set<string> => {
      const names = new Set<string>();
      const walk = (node: typeof scope): void => {
        if (skipFunctions && node.type === 'function_statement') return;
        if (node.type === 'script_parameter' || node.type === 'left_assignment_expression' || node.type === 'foreach_statement' || node.type === 'for_initializer') {
          const variable =
            node.type === 'foreach_statement' || node.type === 'script_parameter'
              ? node.namedChildren.find((c) => c?.type === 'variable')
              : nodesOfType(node, 'variable')[0];
          if (variable) names.add(variableName(variable.text));
        }
        for (const child of node.namedChildren) if (child) walk(child);
      };
      walk(scope);
      return names;
    };
    const problems: string[] = [];
    for (const name of ['composed probe', 'composed fix']) {
      const root = tree(name).rootNode;
      const scriptLevel = setIn(root, true);
      const scriptVariables = new Set([...scriptLevel].filter((v) => v.startsWith('$script:')));
      const check = (scope: typeof root, defined: Set<string>, label: string, skipFunctions: boolean): void => {
        const walk = (node: typeof root): void => {
          if (skipFunctions && node.type === 'function_statement') return;
          if (node.type === 'variable') {
            const variable = variableName(node.text);
            const known = AUTOMATIC.has(variable) || defined.has(variable) || scriptVariables.has(variable) || scriptVariables.has(variable.replace(/^\$/, '$$script:'));
            if (!known) problems.push(`${name}: ${label} reads ${node.text} (line ${node.startPosition.row + 1}), which nothing sets`);
          }
          for (const child of node.namedChildren) if (child) walk(child);
        };
        walk(scope);
      };
      check(root, scriptLevel, 'script level', true);
      for (const fn of functionDefinitions(tree(name))) check(fn.node, setIn(fn.node, false), fn.name, false);
    }
    expect(problems).toEqual([]);
  });

  it('hold the same action allow-list as src/contract/actions.ts, and dispatch every id', () => {
    const logic = fileText(ACTIONS);
    const listed = /\$script:RrActionIds = @\(([^)]*)\)/.exec(logic);
    expect(listed).not.toBeNull();
    const ids = [...listed![1]!.matchAll(/'([a-z0-9-]+)'/g)].map((match) => match[1]);
    expect(ids).toEqual([...ACTION_IDS]);
    const dispatch = functionDefinitions(tree(ACTIONS)).find((fn) => fn.name === 'Invoke-RrAction');
    expect(dispatch).toBeDefined();
    for (const id of ACTION_IDS) expect(dispatch!.node.text).toContain(`'${id}' {`);
  });

  it('run icacls and reg.exe from Access.*.ps1 only, with arguments as separate strings', () => {
    for (const name of [FACTS, ACTIONS, 'scripts/probe.ps1', 'scripts/fix.ps1']) {
      expect(codeOnly(tree(name))).not.toMatch(/\b(icacls|reg|cmd|netstat)(\.exe)?\b/i);
      for (const literal of stringLiterals(tree(name))) expect(stringValue(literal), name).not.toMatch(/^(icacls|reg|cmd|netstat)(\.exe)?$/i);
    }
    for (const name of [ACCESS_READ, ACCESS_WRITE]) {
      // No command line is ever assembled as one string for a shell.
      expect(codeOnly(tree(name)), name).not.toMatch(/\b(Invoke-Expression|iex|Start-Process|cmd(\.exe)?)\b/i);
    }
    // Programs run through the one helper in the read half; the write half calls it.
    const natives = (name: string): string[] => commandInvocations(tree(name)).filter((command) => command.name.startsWith('$')).map((command) => command.node.text);
    expect(natives(ACCESS_READ)).toEqual(['& $command @ArgumentList 2>&1']);
    expect(natives(ACCESS_WRITE)).toEqual([]);
  });

  it('never delete certificates outside the Remote Desktop store', () => {
    const remove = functionDefinitions(tree(ACCESS_WRITE)).find((fn) => fn.name === 'Remove-RrCertificate');
    expect(remove).toBeDefined();
    expect(remove!.node.text).toContain("[ValidateSet('Remote Desktop')]");
    for (const name of [ACCESS_READ, ACCESS_WRITE]) expect(codeOnly(tree(name)), name).not.toMatch(/-DeleteKey/i);
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
