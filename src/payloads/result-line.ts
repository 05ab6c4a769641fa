/**
 * Finds and validates a payload's result line in Run Command stdout. Run Command keeps only
 * the last 4,096 bytes, so the line is the last one that parses; anything before it is noise.
 */
import type { z } from 'zod';
import { FixResultSchema, ProbeResultSchema, type FixResult, type ProbeResult } from '../contract/results.js';
import { PayloadOutputError } from '../errors.js';

/**
 * The lines of stdout that parse as JSON, last first, each with its text: the result line is
 * the last one, and whatever came before it is noise.
 */
export function* jsonLinesLastFirst(stdout: string): Generator<{ readonly line: string; readonly json: unknown }> {
  const lines = stdout.split(/\r?\n/).map((l) => l.trim()).filter((l) => l.startsWith('{'));
  for (let i = lines.length - 1; i >= 0; i--) {
    const line = lines[i] ?? '';
    let json: unknown;
    try {
      json = JSON.parse(line);
    } catch {
      continue;
    }
    yield { line, json };
  }
}

function parseLastLine<T>(schema: z.ZodType<T>, kind: string, stdout: string, stderr: string): T {
  for (const { line, json } of jsonLinesLastFirst(stdout)) {
    const parsed = schema.safeParse(json);
    if (parsed.success) return parsed.data;
    throw new PayloadOutputError(`${kind} result line does not match the contract: ${parsed.error.issues.slice(0, 3).map((x) => `${x.path.join('.')}: ${x.message}`).join('; ')}`, {
      kind,
      line,
    });
  }
  throw new PayloadOutputError(`no ${kind} result line in the Run Command output`, { kind, stdoutTail: stdout.slice(-300), stderrTail: stderr.slice(-300) });
}

export const parseProbeOutput = (stdout: string, stderr = ''): ProbeResult => parseLastLine(ProbeResultSchema, 'probe', stdout, stderr);
export const parseFixOutput = (stdout: string, stderr = ''): FixResult => parseLastLine(FixResultSchema, 'fix', stdout, stderr);
