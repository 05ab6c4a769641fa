import { describe, expect, it } from 'vitest';
import { PayloadOutputError } from '../../src/errors.js';
import { parseProbeOutput } from '../../src/payloads/result-line.js';
import { healthyFacts } from '../support/facts.js';

const line = (o: unknown) => JSON.stringify(o);

describe('parseProbeOutput', () => {
  it('takes the last JSON line and ignores noise before it', () => {
    const stdout = ['WARNING: something', line({ not: 'it' }), line({ kind: 'probe', v: 1, ok: true, runId: 'r', facts: healthyFacts() }), ''].join('\r\n');
    expect(parseProbeOutput(stdout)).toMatchObject({ ok: true, runId: 'r' });
  });
  it('reports a failed probe as data', () => {
    expect(parseProbeOutput(line({ kind: 'probe', v: 1, ok: false, runId: 'r', error: { code: 'exception', message: 'boom' } }))).toMatchObject({ ok: false });
  });
  it('throws a typed error when the line breaks the contract or is missing', () => {
    expect(() => parseProbeOutput(line({ kind: 'probe', v: 1, ok: true, runId: 'r', facts: { os: {} } }))).toThrow(PayloadOutputError);
    expect(() => parseProbeOutput('cut off {"kind":"pro')).toThrow(/no probe result line/);
  });
});
