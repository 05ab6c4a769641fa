import { describe, expect, it } from 'vitest';
import type { FixResult } from '../../src/contract/results.js';
import { blockingFindings, diagnose } from '../../src/core/diagnose.js';
import { judgeFix } from '../../src/core/outcome.js';
import { planRemediation } from '../../src/core/planner.js';
import { PayloadOutputError } from '../../src/errors.js';
import { parseFixOutput, parseProbeOutput } from '../../src/payloads/result-line.js';
import { healthyFacts, NOW, ROOT_CAUSES } from '../support/facts.js';

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

/**
 * Lines as scripts/lib/Facts.ps1's size guard leaves them (docs/payload-contract.md, "The
 * result line's size guard"): display text shortened, every decision input kept, or an
 * explicit result-too-large failure.
 */
describe('lines shortened by the size guard', () => {
  const evidence = () => {
    const facts = ROOT_CAUSES['machinekeys-folder-acl']();
    const findings = diagnose(facts, NOW);
    return { mode: 'repair' as const, findings, plan: planRemediation(findings, facts, []), before: facts, runCommands: 2, timings: { totalMs: 10 } };
  };

  it('a probe with shortened SDDL text parses, and diagnoses as the full facts do', () => {
    const full = ROOT_CAUSES['machinekeys-folder-acl']();
    const shortened = { ...full, keys: { ...full.keys, folderSddl: `${full.keys.folderSddl.slice(0, 13)}...`, fileSddl: '...' } };
    const parsed = parseProbeOutput(line({ kind: 'probe', v: 1, ok: true, runId: 'r', facts: shortened }));
    if (!parsed.ok) throw new Error('expected an ok probe');
    expect(diagnose(parsed.facts, NOW).map((f) => f.code)).toEqual(diagnose(full, NOW).map((f) => f.code));
  });

  it('a fix with shortened before/after, SDDL and error text still judges fixed when it is', () => {
    const verify = { ...healthyFacts(), keys: { ...healthyFacts().keys, folderSddl: 'O:SYG:SYD:PAI(A...', fileSddl: '...' } };
    const result: FixResult = {
      kind: 'fix',
      v: 1,
      ok: true,
      runId: 'r',
      dryRun: false,
      backupDir: 'C:\\ProgramData\\RdpRemediation\\r',
      actions: [
        { id: 'repair-key-acl', changed: true, before: { fileSddl: '...', folderSddl: 'O:SYG:SYD:AI(A;...' }, after: { fileSddl: '...', folderSddl: '...' }, backup: 'C:\\ProgramData\\RdpRemediation\\r\\machinekeys.acl', verified: true, error: null },
        { id: 'restart-rdp-services', changed: true, before: { TermService: 'Running', UmRdpService: 'Running' }, after: { TermService: 'Running', UmRdpService: 'Running' }, backup: null, verified: true, error: null },
      ],
      verify,
      error: null,
    };
    const parsed = parseFixOutput(line(result));
    expect(blockingFindings(diagnose(verify, NOW))).toEqual([]);
    expect(judgeFix(evidence(), parsed, NOW).status).toBe('fixed');
  });

  it('a result-too-large fix parses, judges not fixed saying why, and keeps the security-lowering change', () => {
    const restore = { action: 'restore-rdp-security' as const, parameters: { RestoreUserAuthentication: '1' } };
    const parsed = parseFixOutput(
      line({
        kind: 'fix',
        v: 1,
        ok: false,
        runId: 'r',
        dryRun: false,
        backupDir: 'C:\\ProgramData\\RdpRemediation\\r',
        actions: [{ id: 'disable-nla', changed: true, before: { userAuthentication: 1 }, after: { userAuthentication: 0 }, backup: 'C:\\ProgramData\\RdpRemediation\\r\\rdp-tcp.reg', verified: true, error: null, restore }],
        verify: null,
        error: { code: 'result-too-large', message: 'The result did not fit in 4094 bytes; actions lists only the security-lowering changes; see the manifest in the backup directory.' },
      }),
    );
    const outcome = judgeFix(evidence(), parsed, NOW);
    expect(outcome.status).toBe('not-fixed');
    expect(outcome.status === 'not-fixed' && outcome.reason).toContain('fix payload failed: The result did not fit');
    expect(outcome.status === 'not-fixed' && outcome.securityChanges).toEqual([{ action: 'disable-nla', before: { userAuthentication: 1 }, after: { userAuthentication: 0 }, restore }]);
  });

  it('a result-too-large probe parses as a failed probe', () => {
    expect(parseProbeOutput(line({ kind: 'probe', v: 1, ok: false, runId: 'r', error: { code: 'result-too-large', message: 'The result did not fit in 4094 bytes.' } }))).toMatchObject({
      ok: false,
      error: { code: 'result-too-large' },
    });
  });
});
