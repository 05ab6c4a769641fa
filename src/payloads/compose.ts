/**
 * Builds the Run Command input for a payload. A payload is an entry script
 * (scripts/<kind>.ps1: marker, param() block, an include line, then its main) with the
 * libraries spliced in at the include line: the Windows access layer and the logic, each
 * split into a read part that both payloads carry and a write part that only the fix
 * payload carries. The probe therefore holds no code that could change a VM, and is smaller.
 * Tests splice a Windows double in place of the access layer.
 *
 * Values never enter the script text: they travel as Run Command parameters, validated
 * here against the contract's allow-lists and again by the script's param() block.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { FixParametersSchema, PAYLOAD_MARKER, ProbeParametersSchema, type FixParameters, type PayloadKind, type ProbeParameters } from '../contract/parameters.js';
import { PayloadCompositionError } from '../errors.js';
import { packageRoot } from '../util/package-root.js';

/** The line in an entry script that the libraries replace. */
export const INCLUDE_LINE = '#include-libraries';

/**
 * Libraries per payload kind, relative to scripts/, in the order they are spliced in: the
 * read access layer, then the write access layer (fix only), then the facts, then the
 * actions (fix only). Tests may replace the access layer through `ComposeOptions.libraries`.
 */
export const DEFAULT_LIBRARIES: Readonly<Record<PayloadKind, readonly string[]>> = Object.freeze({
  probe: Object.freeze(['lib/Access.Read.ps1', 'lib/Facts.ps1']),
  fix: Object.freeze(['lib/Access.Read.ps1', 'lib/Access.Write.ps1', 'lib/Facts.ps1', 'lib/Actions.ps1']),
});

export interface RunCommandPayload {
  readonly commandId: 'RunPowerShellScript';
  readonly script: readonly string[];
  readonly parameters: readonly { readonly name: string; readonly value: string }[];
}

export type PayloadRequest =
  | { readonly kind: 'probe'; readonly parameters: ProbeParameters }
  | { readonly kind: 'fix'; readonly parameters: FixParameters };

export interface ComposeOptions {
  /** Library files relative to scripts/, in splice order, instead of `DEFAULT_LIBRARIES[kind]`. */
  readonly libraries?: readonly string[];
  readonly scriptsDir?: string;
  /** Splice the libraries in verbatim, comments and blank lines included (to read a composed payload). */
  readonly keepComments?: boolean;
}

const scriptCache = new Map<string, string>();
const strippedCache = new Map<string, string>();

function readScript(scriptsDir: string, relative: string): string {
  const path = join(scriptsDir, relative);
  let text = scriptCache.get(path);
  if (text === undefined) {
    text = readFileSync(path, 'utf8').replace(/^\uFEFF/, '').replace(/\r\n/g, '\n');
    scriptCache.set(path, text);
  }
  return text;
}

/** A library as it is spliced in; stripped once per file, not per payload. */
function readLibrary(scriptsDir: string, relative: string, keepComments: boolean): string {
  const text = readScript(scriptsDir, relative).trimEnd();
  if (keepComments) return text;
  const path = join(scriptsDir, relative);
  let stripped = strippedCache.get(path);
  if (stripped === undefined) {
    stripped = stripCommentLines(text);
    strippedCache.set(path, stripped);
  }
  return stripped;
}

/**
 * A library without its whole-line comments and blank lines. They stay in scripts/lib for
 * readers; the VM has no use for them, and they are about a fifth of every Run Command
 * request. A library with a block comment or a here-string, where such a line could be
 * data, is left as it is. (A test checks that stripping changes no code and no string.)
 */
export function stripCommentLines(text: string): string {
  if (/<#|@['"][ \t]*$/m.test(text)) return text;
  return text
    .split('\n')
    .filter((line) => {
      const trimmed = line.trim();
      return trimmed !== '' && !trimmed.startsWith('#');
    })
    .join('\n');
}

export function scriptsDirectory(): string {
  return join(packageRoot(), 'scripts');
}

/**
 * The full script text of a payload, libraries spliced in (without their comment lines unless
 * `keepComments`). The entry script is kept verbatim: its first line is the payload marker.
 */
export function composeScript(kind: PayloadKind, options: ComposeOptions = {}): string {
  const scriptsDir = options.scriptsDir ?? scriptsDirectory();
  const entry = readScript(scriptsDir, `${kind}.ps1`);
  if (!entry.startsWith(`${PAYLOAD_MARKER}${kind}`)) {
    throw new PayloadCompositionError(`scripts/${kind}.ps1 must start with "${PAYLOAD_MARKER}${kind}"`, { kind });
  }
  const lines = entry.split('\n');
  const at = lines.findIndex((line) => line.trim() === INCLUDE_LINE);
  if (at < 0) throw new PayloadCompositionError(`scripts/${kind}.ps1 has no "${INCLUDE_LINE}" line`, { kind });
  const libraries = (options.libraries ?? DEFAULT_LIBRARIES[kind]).map((lib) => readLibrary(scriptsDir, lib, options.keepComments === true));
  return [...lines.slice(0, at), ...libraries, ...lines.slice(at + 1)].join('\n');
}

/** Validates the parameters and returns the body of a RunPowerShellScript call. */
export function composePayload(request: PayloadRequest, options: ComposeOptions = {}): RunCommandPayload {
  const parsed =
    request.kind === 'probe' ? ProbeParametersSchema.safeParse(request.parameters) : FixParametersSchema.safeParse(request.parameters);
  if (!parsed.success) {
    throw new PayloadCompositionError(`invalid ${request.kind} parameters: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`, {
      kind: request.kind,
    });
  }
  const script = composeScript(request.kind, options);
  return {
    commandId: 'RunPowerShellScript',
    script: script.split('\n'),
    parameters: Object.entries(parsed.data).map(([name, value]) => ({ name, value: String(value) })),
  };
}
