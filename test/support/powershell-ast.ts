/**
 * PowerShell's own parser for static checks of PowerShell files: test/support/ps-ast.ps1
 * parses every file with [System.Management.Automation.Language.Parser] and prints one JSON
 * document; this module runs it (one pwsh process for all the files a test file asks about,
 * results cached by content) and types what it prints. It judges nothing.
 *
 * The pwsh to run comes from test/support/powershell.ts.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
export const PS_AST_SCRIPT = join(here, 'ps-ast.ps1');

// ---- What ps-ast.ps1 prints -------------------------------------------------------------

/** An expression used as an argument (of a command, attribute, method or hashtable entry). */
export interface PsArgument {
  /** The AST node type, e.g. StringConstantExpressionAst, VariableExpressionAst. */
  readonly ast: string;
  readonly text: string;
  /** The value of a constant (string or number). */
  readonly value?: string | number | boolean;
  /** For a string constant: BareWord, SingleQuoted, DoubleQuoted, SingleQuotedHereString, ... */
  readonly stringKind?: string;
  /** For a variable: its name as written, without `$` (`script:Foo`). */
  readonly variable?: string;
  readonly splatted?: boolean;
}

export interface PsParseError {
  readonly id: string;
  readonly message: string;
  readonly line: number;
  readonly column: number;
  readonly text: string;
  readonly incomplete: boolean;
}

export interface PsAttribute {
  /** As written: `ValidateSet`, `Parameter`, `CmdletBinding`. */
  readonly name: string;
  readonly args: readonly PsArgument[];
  readonly named: readonly { readonly name: string; readonly omitted: boolean; readonly argument?: PsArgument }[];
  readonly line: number;
  /** The innermost function holding it (only in the file-wide `attributes` list). */
  readonly fn?: string | null;
}

export interface PsParameter {
  /** Without the `$`. */
  readonly name: string;
  /** The type constraint as written (`string`, `switch`), or null. */
  readonly type: string | null;
  /** Attributes other than the type constraint. */
  readonly attributes: readonly PsAttribute[];
  readonly default: PsArgument | null;
  readonly line: number;
}

export interface PsParamBlock {
  /** The line of the `param` keyword; attributes may stand on lines before it. */
  readonly line: number;
  readonly endLine: number;
  readonly attributes: readonly PsAttribute[];
  readonly parameters: readonly PsParameter[];
}

export interface PsFunction {
  readonly name: string;
  readonly line: number;
  readonly endLine: number;
  readonly isFilter: boolean;
  readonly isWorkflow: boolean;
  /** The enclosing function of a nested one. */
  readonly parent: string | null;
  readonly attributes: readonly PsAttribute[];
  readonly parameters: readonly PsParameter[];
}

export type PsCommandElement = { readonly parameter: string; readonly text: string; readonly argument?: PsArgument } | (PsArgument & { readonly parameter?: undefined });

export interface PsCommand {
  /** The command name when it is a constant, else null (`& $command`). */
  readonly name: string | null;
  /** Unknown (a plain call), Ampersand (`&`) or Dot (`.`). */
  readonly operator: string;
  /** The first command element: the name, or what `&` invokes. */
  readonly head: PsArgument;
  /** The elements after the name, in order: parameters (`-Name`, `-Name:value`) and arguments. */
  readonly elements: readonly PsCommandElement[];
  readonly redirections: readonly string[];
  /** Ends with `&` (a background job, PowerShell 6+). */
  readonly background: boolean;
  readonly text: string;
  readonly line: number;
  readonly fn: string | null;
}

export interface PsTypeUse {
  /** As written (`System.Collections.Generic.List[string]`, `int`, `ordered`). */
  readonly name: string;
  /** Each simple type name inside it; generic ones with their arity: `System.Collections.Generic.List`1`, `string`. */
  readonly parts: readonly string[];
  /** literal (`[X]` as an expression, also `[X]::Y`), cast (`[X]$y`), parameter (a type constraint), new-object. */
  readonly how: 'literal' | 'cast' | 'parameter' | 'new-object';
  readonly line: number;
  readonly fn: string | null;
}

export interface PsStaticMember {
  /** The type as written (`regex`, `System.IO.File`), or the expression text when it is not a type literal. */
  readonly type: string;
  readonly parts: readonly string[];
  readonly member: string;
  readonly invoked: boolean;
  readonly args: readonly PsArgument[];
  readonly line: number;
  readonly fn: string | null;
}

export interface PsMemberCall {
  readonly target: string;
  readonly member: string;
  readonly args: readonly PsArgument[];
  /** `?.` (PowerShell 7.1+). */
  readonly nullConditional: boolean;
  readonly line: number;
  readonly fn: string | null;
}

export interface PsVariable {
  /** As written, without `$` or `@` (`script:Foo`, `_`). */
  readonly name: string;
  /** How this occurrence sets it: an assignment operator (Equals, PlusEquals, ...), foreach, parameter; null when read. */
  readonly assigned: string | null;
  readonly splatted: boolean;
  readonly line: number;
  readonly fn: string | null;
}

export interface PsString {
  readonly value: string;
  readonly kind: string;
  readonly expandable: boolean;
  /** command (a command name), argument (of a command), member (a member name), key (a hashtable key), value. */
  readonly role: 'command' | 'argument' | 'member' | 'key' | 'value';
  readonly line: number;
}

export interface PsSwitch {
  readonly flags: string;
  readonly condition: string;
  readonly clauses: readonly PsArgument[];
  readonly hasDefault: boolean;
  readonly line: number;
  readonly fn: string | null;
}

export interface PsHashtable {
  readonly index: number;
  /** The hashtable this one is the value of, by index. */
  readonly parent: number | null;
  readonly parentKey: string | null;
  /** The assignment target text (`$script:Foo`) when assigned directly. */
  readonly assignedTo: string | null;
  readonly entries: readonly { readonly key: string; readonly text: string; readonly value?: PsArgument }[];
  readonly line: number;
  readonly fn: string | null;
}

export interface PsStatement {
  readonly ast: string;
  readonly text: string;
  readonly line: number;
  readonly endLine: number;
  /** For an assignment. */
  readonly left?: string;
  readonly operator?: string;
  readonly right?: string;
  /** For a pipeline of one command. */
  readonly command?: string | null;
}

/** [kind, text, line, nested]: nested is 1 for the code tokens inside an expandable string. */
export type PsToken = readonly [kind: string, text: string, line: number, nested: 0 | 1];

/** [operator, left AST type, right AST type, right element AST types when the right is `a, b`, line]. */
export type PsOperator = readonly [operator: string, left: string, right: string, rightElements: readonly string[], line: number];

export interface PsAstFile {
  readonly path: string;
  readonly errors: readonly PsParseError[];
  readonly requires: { readonly psVersion: string | null; readonly psEditions: readonly string[]; readonly modules: readonly string[] } | null;
  readonly usings: readonly string[];
  readonly paramBlock: PsParamBlock | null;
  /** The script's top-level statements (its end block). */
  readonly statements: readonly PsStatement[];
  readonly functions: readonly PsFunction[];
  readonly commands: readonly PsCommand[];
  readonly types: readonly PsTypeUse[];
  readonly staticMembers: readonly PsStaticMember[];
  readonly memberCalls: readonly PsMemberCall[];
  readonly variables: readonly PsVariable[];
  readonly strings: readonly PsString[];
  readonly switches: readonly PsSwitch[];
  readonly attributes: readonly PsAttribute[];
  /** Explicit begin/process/end/clean blocks. */
  readonly namedBlocks: readonly { readonly kind: string; readonly line: number; readonly fn: string | null }[];
  readonly typeDefinitions: readonly { readonly name: string; readonly isEnum: boolean; readonly line: number }[];
  readonly hashtables: readonly PsHashtable[];
  readonly operators: readonly PsOperator[];
  /** Every AST node type in the file: how often, and its first line. */
  readonly astTypes: Readonly<Record<string, { readonly count: number; readonly line: number }>>;
  /** Every token but newlines and the end of input, nested string tokens after their string. */
  readonly tokens: readonly PsToken[];
}

interface PsAstDocument {
  readonly psVersion: string;
  readonly psEdition: string;
  readonly files: readonly PsAstFile[];
}

// ---- Token helpers ------------------------------------------------------------------------

const STRING_TOKEN_KINDS: ReadonlySet<string> = new Set(['StringLiteral', 'StringExpandable', 'HereStringLiteral', 'HereStringExpandable']);

/** The tokens that are code: no comments, no string text (code inside "$(...)" stays). */
export function codeTokens(file: PsAstFile): PsToken[] {
  return file.tokens.filter(([kind]) => kind !== 'Comment' && !STRING_TOKEN_KINDS.has(kind));
}

/** The code tokens' text, space-separated, for patterns that span tokens. */
export function codeText(file: PsAstFile): string {
  return codeTokens(file)
    .map(([, text]) => text)
    .join(' ');
}

// ---- Finding PowerShell -------------------------------------------------------------------

// ---- Parsing ------------------------------------------------------------------------------

/** A file to parse, by path or by text (written to a temporary file for the parser). */
export type PsInput = { readonly name: string; readonly path: string; readonly text?: undefined } | { readonly name: string; readonly text: string; readonly path?: undefined };

const cache = new Map<string, PsAstFile>();
let lastVersion = '';

/** The PowerShell version that produced the last parse. */
export function parserVersion(): string {
  return lastVersion;
}

function runPwsh(pwsh: string, args: readonly string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(pwsh, [...args], { encoding: 'utf8', maxBuffer: 512 * 1024 * 1024, timeout: 300_000 }, (error, stdout, stderr) => {
      if (error) reject(new Error(`ps-ast.ps1 failed (${error.message}): ${stderr}`));
      else resolve(stdout);
    });
  });
}

/**
 * Parses the inputs with PowerShell's own parser, in one pwsh process for all those not parsed
 * before (by content). The result is keyed by input name.
 */
export async function parsePowerShellFiles(pwsh: string, inputs: readonly PsInput[]): Promise<Map<string, PsAstFile>> {
  const keyed = inputs.map((input) => {
    const text = input.text ?? readFileSync(input.path, 'utf8');
    return { input, text, key: `${pwsh}\0${createHash('sha256').update(text).digest('hex')}` };
  });
  const missing = keyed.filter((entry, index) => !cache.has(entry.key) && keyed.findIndex((other) => other.key === entry.key) === index);
  if (missing.length > 0) {
    const dir = mkdtempSync(join(tmpdir(), 'rr-ps-ast-'));
    try {
      const paths = missing.map((entry, index) => {
        if (entry.input.path !== undefined) return entry.input.path;
        const path = join(dir, `${String(index)}-${entry.input.name.replace(/[^A-Za-z0-9.-]+/g, '-')}.ps1`);
        writeFileSync(path, entry.text, 'utf8');
        return path;
      });
      const listFile = join(dir, 'files.txt');
      writeFileSync(listFile, paths.join('\n'), 'utf8');
      const stdout = await runPwsh(pwsh, ['-NoLogo', '-NoProfile', '-NonInteractive', '-File', PS_AST_SCRIPT, '-ListFile', listFile]);
      const document = JSON.parse(stdout) as PsAstDocument;
      lastVersion = document.psVersion;
      if (document.files.length !== missing.length) throw new Error(`ps-ast.ps1 described ${String(document.files.length)} files, not ${String(missing.length)}`);
      missing.forEach((entry, index) => cache.set(entry.key, document.files[index]!));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
  return new Map(keyed.map((entry) => [entry.input.name, cache.get(entry.key)!]));
}
