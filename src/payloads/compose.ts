/**
 * Builds the Run Command input for a payload. A payload is an entry script
 * (scripts/<kind>.ps1: marker, param() block, an include line, then its main) with the
 * libraries spliced in at the include line: the Windows access layer and the logic.
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

/** Libraries in the order they are spliced in. Tests may replace the access layer. */
export const DEFAULT_LIBRARIES = ['lib/Access.ps1', 'lib/Logic.ps1'] as const;

export interface RunCommandPayload {
  readonly commandId: 'RunPowerShellScript';
  readonly script: readonly string[];
  readonly parameters: readonly { readonly name: string; readonly value: string }[];
}

export type PayloadRequest =
  | { readonly kind: 'probe'; readonly parameters: ProbeParameters }
  | { readonly kind: 'fix'; readonly parameters: FixParameters };

export interface ComposeOptions {
  /** Library files relative to scripts/, in splice order. */
  readonly libraries?: readonly string[];
  readonly scriptsDir?: string;
}

const scriptCache = new Map<string, string>();

function readScript(scriptsDir: string, relative: string): string {
  const path = join(scriptsDir, relative);
  let text = scriptCache.get(path);
  if (text === undefined) {
    text = readFileSync(path, 'utf8').replace(/^\uFEFF/, '').replace(/\r\n/g, '\n');
    scriptCache.set(path, text);
  }
  return text;
}

export function scriptsDirectory(): string {
  return join(packageRoot(), 'scripts');
}

/** The full script text of a payload, libraries spliced in. */
export function composeScript(kind: PayloadKind, options: ComposeOptions = {}): string {
  const scriptsDir = options.scriptsDir ?? scriptsDirectory();
  const entry = readScript(scriptsDir, `${kind}.ps1`);
  if (!entry.startsWith(`${PAYLOAD_MARKER}${kind}`)) {
    throw new PayloadCompositionError(`scripts/${kind}.ps1 must start with "${PAYLOAD_MARKER}${kind}"`, { kind });
  }
  const lines = entry.split('\n');
  const at = lines.findIndex((line) => line.trim() === INCLUDE_LINE);
  if (at < 0) throw new PayloadCompositionError(`scripts/${kind}.ps1 has no "${INCLUDE_LINE}" line`, { kind });
  const libraries = (options.libraries ?? DEFAULT_LIBRARIES).map((lib) => readScript(scriptsDir, lib).trimEnd());
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
