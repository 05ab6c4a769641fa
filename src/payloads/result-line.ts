/**
 * Finds and validates a payload's result line in Run Command stdout. Run Command keeps only
 * the last 4,096 bytes, so the line is the last one that parses; anything before it is noise.
 */
import type { z } from 'zod';
import { FixResultSchema, ProbeResultSchema, type FixResult, type ProbeResult } from '../contract/results.js';
import { PayloadOutputError } from '../errors.js';

function parseLastLine<T>(schema: z.ZodType<T>, kind: string, stdout: string, stderr: string): T {
  const lines = stdout.split(/\r?\n/).map((l) => l.trim()).filter((l) => l.startsWith('{'));
  for (let i = lines.length - 1; i >= 0; i--) {
    let json: unknown;
    try {
      json = JSON.parse(lines[i] ?? '');
    } catch {
      continue;
    }
    const parsed = schema.safeParse(json);
    if (parsed.success) return parsed.data;
    throw new PayloadOutputError(`${kind} result line does not match the contract: ${parsed.error.issues.slice(0, 3).map((x) => `${x.path.join('.')}: ${x.message}`).join('; ')}`, {
      kind,
      line: lines[i],
    });
  }
  throw new PayloadOutputError(`no ${kind} result line in the Run Command output`, { kind, stdoutTail: stdout.slice(-300), stderrTail: stderr.slice(-300) });
}

export const parseProbeOutput = (stdout: string, stderr = ''): ProbeResult => parseLastLine(ProbeResultSchema, 'probe', stdout, stderr);
export const parseFixOutput = (stdout: string, stderr = ''): FixResult => parseLastLine(FixResultSchema, 'fix', stdout, stderr);
