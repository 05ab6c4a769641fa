/** Bicep syntax trees with tree-sitter-bicep's wasm grammar (no Bicep compiler can be installed here). */
import { createRequire } from 'node:module';
import { Language, Parser, type Node, type Tree } from 'web-tree-sitter';

let parser: Parser | undefined;

export async function bicepParser(): Promise<Parser> {
  if (parser) return parser;
  await Parser.init();
  const require = createRequire(import.meta.url);
  const language = await Language.load(require.resolve('tree-sitter-bicep/tree-sitter-bicep.wasm'));
  parser = new Parser();
  parser.setLanguage(language);
  return parser;
}

/** ERROR and MISSING nodes, as "type@row:column" (1-based). */
export function syntaxProblems(tree: Tree): string[] {
  const problems: string[] = [];
  const visit = (node: Node) => {
    if (node.type === 'ERROR' || node.isMissing) problems.push(`${node.isMissing ? `MISSING ${node.type}` : 'ERROR'}@${node.startPosition.row + 1}:${node.startPosition.column + 1}`);
    for (const child of node.children) if (child) visit(child);
  };
  visit(tree.rootNode);
  return problems;
}

/** The string items of `var <name> = [ ... ]`. */
export function bicepStringArray(source: string, name: string): string[] {
  const match = new RegExp(`var ${name} = \\[([\\s\\S]*?)\\n\\]`).exec(source);
  if (!match) throw new Error(`var ${name} not found`);
  return [...(match[1] ?? '').matchAll(/^\s*'([^']*)'\s*$/gm)].map((m) => m[1] ?? '');
}

