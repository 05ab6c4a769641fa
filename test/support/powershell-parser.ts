/**
 * PowerShell parsing for tests, without PowerShell: tree-sitter-powershell through
 * web-tree-sitter (wasm). It catches syntax errors and gives a token tree for static
 * checks. It is not the real PowerShell parser: `realPowerShellParseErrors` uses `pwsh`
 * when one is on PATH.
 */
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { Language, Parser, type Node, type Tree } from 'web-tree-sitter';

const require = createRequire(import.meta.url);

let parserPromise: Promise<Parser> | undefined;

async function createParser(): Promise<Parser> {
  await Parser.init();
  const language = await Language.load(require.resolve('tree-sitter-powershell/tree-sitter-powershell.wasm'));
  const parser = new Parser();
  parser.setLanguage(language);
  return parser;
}

/** One parser per test file: loading the grammar costs more than parsing. */
export function powerShellParser(): Promise<Parser> {
  parserPromise ??= createParser();
  return parserPromise;
}

export async function parsePowerShell(text: string): Promise<Tree> {
  const parser = await powerShellParser();
  const tree = parser.parse(text);
  if (tree === null) throw new Error('tree-sitter returned no tree');
  return tree;
}

export interface SyntaxProblem {
  readonly kind: 'ERROR' | 'MISSING';
  /** 1-based, as editors show them. */
  readonly line: number;
  readonly column: number;
  readonly text: string;
}

/** The first ERROR or MISSING node in document order, or null for a clean tree. */
export function firstSyntaxProblem(tree: Tree): SyntaxProblem | null {
  if (!tree.rootNode.hasError) return null;
  let found: SyntaxProblem | null = null;
  visit(tree.rootNode, (node) => {
    if (found !== null) return false;
    if (node.isError || node.isMissing) {
      found = {
        kind: node.isMissing ? 'MISSING' : 'ERROR',
        line: node.startPosition.row + 1,
        column: node.startPosition.column + 1,
        text: node.text.slice(0, 120),
      };
      return false;
    }
    return node.hasError;
  });
  return found;
}

/** Depth-first, document order. The callback returns false to skip a node's children. */
export function visit(node: Node, callback: (node: Node) => boolean | void): void {
  if (callback(node) === false) return;
  for (const child of node.children) {
    if (child !== null) visit(child, callback);
  }
}

export function nodesOfType(root: Node, ...types: string[]): Node[] {
  const wanted = new Set(types);
  const found: Node[] = [];
  visit(root, (node) => {
    if (wanted.has(node.type)) found.push(node);
  });
  return found;
}

const STRING_TYPES: ReadonlySet<string> = new Set(['string_literal', 'expandable_string_literal', 'expandable_here_string_literal']);

/** Node types whose text is data, not code: comments and every kind of string literal. */
export const NON_CODE_TYPES: ReadonlySet<string> = new Set([
  'comment',
  ...STRING_TYPES,
  'verbatim_string_characters',
  'verbatim_here_string_characters',
]);

/**
 * The source with comments and the literal text of strings blanked out (newlines kept, so
 * offsets and line numbers still match), for regex checks that must see code only. Code in
 * a string's `$( )` sub-expression stays visible: it runs like any other code.
 */
export function codeOnly(tree: Tree): string {
  const source = tree.rootNode.text;
  // web-tree-sitter indexes a JS string by UTF-16 code unit, as split('') does.
  const chars = source.split('');
  const blank = (node: Node): void => {
    for (let i = node.startIndex; i < node.endIndex && i < chars.length; i++) {
      if (chars[i] !== '\n' && chars[i] !== '\r') chars[i] = ' ';
    }
  };
  const restore = (node: Node): void => {
    for (let i = node.startIndex; i < node.endIndex && i < chars.length; i++) chars[i] = source[i] ?? ' ';
  };
  const walk = (node: Node): void => {
    if (node.type === 'comment') {
      blank(node);
      return;
    }
    if (STRING_TYPES.has(node.type)) {
      blank(node);
      visit(node, (inner) => {
        if (inner.type !== 'sub_expression') return true;
        restore(inner);
        walk(inner);
        return false;
      });
      return;
    }
    for (const child of node.children) if (child !== null) walk(child);
  };
  walk(tree.rootNode);
  return chars.join('');
}

export interface ParameterInfo {
  /** As declared, without the `$`. */
  readonly name: string;
  readonly isSwitch: boolean;
}

export interface FunctionInfo {
  readonly name: string;
  /** Keyed by lower-case name: PowerShell binds parameter names case-insensitively. */
  readonly parameters: ReadonlyMap<string, ParameterInfo>;
  readonly node: Node;
}

/** Every `function` statement, with the parameters of its own param() block. */
export function functionDefinitions(tree: Tree): FunctionInfo[] {
  return nodesOfType(tree.rootNode, 'function_statement').map((node) => {
    const name = node.namedChildren.find((child) => child?.type === 'function_name')?.text ?? '';
    const parameters = new Map<string, ParameterInfo>();
    const body = node.namedChildren.find((child) => child?.type === 'script_block');
    const paramBlock = body?.namedChildren.find((child) => child?.type === 'param_block');
    for (const parameter of paramBlock ? nodesOfType(paramBlock, 'script_parameter') : []) {
      const variable = parameter.namedChildren.find((child) => child?.type === 'variable');
      if (!variable) continue;
      const declared = variable.text.replace(/^\$/, '');
      const attributes = parameter.namedChildren.find((child) => child?.type === 'attribute_list')?.text ?? '';
      parameters.set(declared.toLowerCase(), { name: declared, isSwitch: /\[switch\]/i.test(attributes) });
    }
    return { name, parameters, node };
  });
}

export interface CommandInvocation {
  /** The command name as written; for `& $x` the expression text. */
  readonly name: string;
  /** Arguments and parameters in order, separators left out. */
  readonly elements: readonly Node[];
  readonly node: Node;
}

export function commandInvocations(tree: Tree): CommandInvocation[] {
  return nodesOfType(tree.rootNode, 'command').map((node) => {
    const name = node.childForFieldName('command_name')?.text ?? '';
    const elements = node.childForFieldName('command_elements')?.namedChildren.filter((child): child is Node => child !== null && child.type !== 'command_argument_sep') ?? [];
    return { name, elements, node };
  });
}

/** String literal nodes, outermost only. */
export function stringLiterals(tree: Tree): Node[] {
  const found: Node[] = [];
  visit(tree.rootNode, (node) => {
    if (node.type === 'string_literal' || node.type === 'expandable_string_literal' || node.type === 'expandable_here_string_literal') {
      found.push(node);
      return false;
    }
    return true;
  });
  return found;
}

/** The unquoted value of a string literal node (quotes stripped, no escape processing beyond doubled quotes). */
export function stringValue(node: Node): string {
  const text = node.text;
  if (text.startsWith("'") && text.endsWith("'") && text.length >= 2) return text.slice(1, -1).replace(/''/g, "'");
  if (text.startsWith('"') && text.endsWith('"') && text.length >= 2) return text.slice(1, -1).replace(/""/g, '"');
  return text;
}

export interface PwshResult {
  readonly available: boolean;
  /** `line:column: message` for each parse error; empty when clean or unavailable. */
  readonly errors: readonly string[];
}

let pwshAvailable: boolean | undefined;

/**
 * How to start PowerShell 7: `PWSH_COMMAND` when set (CI sets it to `dotnet pwsh` after
 * restoring the local tool), else `pwsh` from PATH.
 */
export function pwshCommand(): { readonly file: string; readonly args: readonly string[] } {
  const configured = process.env['PWSH_COMMAND']?.trim();
  if (configured) {
    const [file = 'pwsh', ...args] = configured.split(/\s+/);
    return { file, args };
  }
  return { file: 'pwsh', args: [] };
}

export function isPwshAvailable(): boolean {
  if (pwshAvailable === undefined) {
    const { file, args } = pwshCommand();
    const probe = spawnSync(file, [...args, '-NoLogo', '-NoProfile', '-NonInteractive', '-Command', '$PSVersionTable.PSVersion.ToString()'], {
      encoding: 'utf8',
      timeout: 60_000,
    });
    pwshAvailable = probe.status === 0;
  }
  return pwshAvailable;
}

/** Parses a file with the real PowerShell parser (pwsh). */
export function realPowerShellParseErrors(path: string): PwshResult {
  if (!isPwshAvailable()) return { available: false, errors: [] };
  const command = [
    '$tokens = $null; $errors = $null',
    '[void][System.Management.Automation.Language.Parser]::ParseFile($env:RR_PARSE_FILE, [ref]$tokens, [ref]$errors)',
    'foreach ($e in $errors) { "{0}:{1}: {2}" -f $e.Extent.StartLineNumber, $e.Extent.StartColumnNumber, $e.Message }',
  ].join('; ');
  const { file, args } = pwshCommand();
  const run = spawnSync(file, [...args, '-NoLogo', '-NoProfile', '-NonInteractive', '-Command', command], {
    encoding: 'utf8',
    timeout: 120_000,
    env: { ...process.env, RR_PARSE_FILE: path },
  });
  if (run.status !== 0) throw new Error(`pwsh failed (${String(run.status)}): ${run.stderr}`);
  return { available: true, errors: run.stdout.split(/\r?\n/).filter((line) => line.trim() !== '') };
}
