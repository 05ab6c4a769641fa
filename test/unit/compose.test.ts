import { describe, expect, it } from 'vitest';
import { ACTION_IDS } from '../../src/contract/actions.js';
import { PAYLOAD_MARKER } from '../../src/contract/parameters.js';
import { PayloadCompositionError } from '../../src/errors.js';
import { composePayload, composeScript, DEFAULT_LIBRARIES, INCLUDE_LINE } from '../../src/payloads/compose.js';

const RUN_ID = '0badc0de-1234-4abc-8def-0123456789ab';
const fixParameters = { RunId: RUN_ID, Actions: 'repair-key-acl,restart-rdp-services', DryRun: 'false', RestoreSecurityLayer: '', RestoreUserAuthentication: '' } as const;

describe('composePayload', () => {
  it('sends values only as parameters, never in the script text', () => {
    const payload = composePayload({ kind: 'fix', parameters: fixParameters });
    expect(payload.commandId).toBe('RunPowerShellScript');
    expect(payload.parameters).toEqual(Object.entries(fixParameters).map(([name, value]) => ({ name, value })));
    const text = payload.script.join('\n');
    expect(text).not.toContain(RUN_ID);
    expect(text).not.toContain('repair-key-acl,restart-rdp-services');
  });

  it('splices the libraries in at the include line, keeping param() first', () => {
    for (const kind of ['probe', 'fix'] as const) {
      const lines = composeScript(kind).split('\n');
      expect(lines[0]).toBe(`${PAYLOAD_MARKER}${kind}`);
      expect(lines).not.toContain(INCLUDE_LINE);
      const code = lines.filter((l) => l.trim() !== '' && !l.trim().startsWith('#'));
      expect(code.slice(0, 2)).toEqual(['[CmdletBinding()]', 'param(']);
      expect(lines.some((l) => l.startsWith('function Get-RrRegistryValue'))).toBe(true);
      expect(lines.some((l) => l.startsWith('function Invoke-RrProbe'))).toBe(true);
      // The write access layer and the actions go to the fix payload only.
      expect(lines.some((l) => l.startsWith('function Set-RrRegistryValue'))).toBe(kind === 'fix');
      expect(lines.some((l) => l.startsWith('function Invoke-RrFix'))).toBe(kind === 'fix');
    }
  });

  it('splices the per-kind default libraries, or the ones given (a test double of the access layer)', () => {
    expect(DEFAULT_LIBRARIES).toEqual({
      probe: ['lib/Access.Read.ps1', 'lib/Facts.ps1'],
      fix: ['lib/Access.Read.ps1', 'lib/Access.Write.ps1', 'lib/Facts.ps1', 'lib/Actions.ps1'],
    });
    for (const kind of ['probe', 'fix'] as const) {
      expect(composeScript(kind, { libraries: DEFAULT_LIBRARIES[kind] })).toBe(composeScript(kind));
    }
    const swapped = composeScript('probe', { libraries: ['lib/Facts.ps1'] });
    expect(swapped).not.toContain('function Get-RrRegistryValue');
    expect(swapped).toContain('function Invoke-RrProbe');
  });

  it('leaves the comment lines of the libraries out unless asked to keep them, never those of the entry script', () => {
    for (const kind of ['probe', 'fix'] as const) {
      const stripped = composeScript(kind);
      const kept = composeScript(kind, { keepComments: true });
      expect(kept).toContain('# lib/Facts.ps1:');
      expect(stripped).not.toContain('# lib/Facts.ps1:');
      // The entry script (marker, header comment, param block) is spliced around the libraries unchanged.
      const entryHead = kept.slice(0, kept.indexOf('# ---'));
      expect(stripped.startsWith(entryHead)).toBe(true);
      expect(Buffer.byteLength(stripped)).toBeLessThan(Buffer.byteLength(kept));
    }
  });

  it.each([
    [{ ...fixParameters, RunId: "x'; Remove-Item C:\\ -Recurse; '" }, 'RunId'],
    [{ ...fixParameters, Actions: 'repair-key-acl;Stop-Computer' }, 'Actions'],
    [{ ...fixParameters, Actions: 'rename-machinekeys' }, 'Actions'],
    [{ ...fixParameters, DryRun: 'yes' }, 'DryRun'],
    [{ ...fixParameters, RestoreSecurityLayer: '3' }, 'RestoreSecurityLayer'],
    [{ ...fixParameters, Extra: 'x' }, 'Extra'],
  ])('rejects parameters outside the allow-lists (%#: %s)', (parameters, field) => {
    expect(() => composePayload({ kind: 'fix', parameters: parameters as never })).toThrow(PayloadCompositionError);
    expect(() => composePayload({ kind: 'fix', parameters: parameters as never })).toThrow(field === 'Extra' ? /Unrecognized key/ : new RegExp(field));
  });

  it('accepts every known action id', () => {
    expect(() => composePayload({ kind: 'fix', parameters: { ...fixParameters, Actions: ACTION_IDS.join(',') } })).not.toThrow();
  });

  it('keeps each payload well under what a Run Command request carries', () => {
    // No documented limit on the action API's script size was found; 128 KiB is a conservative budget.
    for (const kind of ['probe', 'fix'] as const) expect(Buffer.byteLength(composeScript(kind))).toBeLessThan(128 * 1024);
  });

  it('keeps the read-only probe at most 60% of the fix payload', () => {
    // Both go out on every remediation; the probe carries neither the write access layer nor the actions.
    const probe = Buffer.byteLength(composeScript('probe'));
    const fix = Buffer.byteLength(composeScript('fix'));
    expect(probe).toBeLessThanOrEqual(0.6 * fix);
  });
});
