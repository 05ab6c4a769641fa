import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ACTION_IDS } from '../../src/contract/actions.js';
import { PAYLOAD_MARKER } from '../../src/contract/parameters.js';
import { PayloadCompositionError } from '../../src/errors.js';
import { actionIdsLine, composePayload, composeScript, DEFAULT_LIBRARIES, INCLUDE_LINE, scriptsDirectory, stripCommentLines, toRunCommandParameters } from '../../src/payloads/compose.js';

const RUN_ID = '0badc0de-1234-4abc-8def-0123456789ab';
const fixParameters = { RunId: RUN_ID, Actions: 'repair-key-acl,restart-rdp-services', DryRun: 'false' } as const;

/** The action ids of every `$script:RrActionIds = @(...)` assignment in a script. */
function allowListsIn(script: string): string[][] {
  return [...script.matchAll(/^\s*\$script:RrActionIds\s*=\s*@\(([^)]*)\)/gim)].map((m) => [...(m[1] ?? '').matchAll(/'([^']*)'/g)].map((q) => q[1] ?? ''));
}

describe('composePayload', () => {
  it('sends values only as parameters, never in the script text', () => {
    const payload = composePayload({ kind: 'fix', parameters: fixParameters });
    expect(payload.commandId).toBe('RunPowerShellScript');
    expect(payload.parameters).toEqual(Object.entries(fixParameters).map(([name, value]) => ({ name, value })));
    const text = payload.script.join('\n');
    expect(text).not.toContain(RUN_ID);
    expect(text).not.toContain('repair-key-acl,restart-rdp-services');
  });

  it('sends no empty parameter: absent restore values are left out, given ones are sent', () => {
    const absent = composePayload({ kind: 'fix', parameters: fixParameters });
    expect(absent.parameters.map((p) => p.name)).toEqual(['RunId', 'Actions', 'DryRun']);
    const restore = composePayload({
      kind: 'fix',
      parameters: { ...fixParameters, Actions: 'restore-rdp-security', RestoreSecurityLayer: '2', RestoreUserAuthentication: '1' },
    });
    expect(restore.parameters).toEqual([
      { name: 'RunId', value: RUN_ID },
      { name: 'Actions', value: 'restore-rdp-security' },
      { name: 'DryRun', value: 'false' },
      { name: 'RestoreSecurityLayer', value: '2' },
      { name: 'RestoreUserAuthentication', value: '1' },
    ]);
    const onlyNla = composePayload({ kind: 'fix', parameters: { ...fixParameters, Actions: 'restore-rdp-security', RestoreUserAuthentication: '1' } });
    expect(onlyNla.parameters.map((p) => p.name)).toEqual(['RunId', 'Actions', 'DryRun', 'RestoreUserAuthentication']);
    // An explicitly undefined value is absent too.
    const undef = composePayload({ kind: 'fix', parameters: { ...fixParameters, RestoreSecurityLayer: undefined } });
    expect(undef.parameters.map((p) => p.name)).toEqual(['RunId', 'Actions', 'DryRun']);
    for (const payload of [absent, restore, onlyNla, undef]) {
      for (const p of payload.parameters) expect(p.value).toMatch(/^[A-Za-z0-9,._-]+$/);
    }
  });

  it('carries in the fix payload exactly ACTION_IDS as the PowerShell allow-list, generated once before the fix logic', () => {
    for (const keepComments of [false, true]) {
      const fix = composeScript('fix', { keepComments });
      expect(allowListsIn(fix)).toEqual([[...ACTION_IDS]]);
      const lines = fix.split('\n');
      const at = lines.indexOf(actionIdsLine());
      expect(at).toBeGreaterThan(lines.findIndex((l) => l.startsWith('function Invoke-RrProbe')));
      expect(at).toBeLessThan(lines.findIndex((l) => l.startsWith('function Invoke-RrFix')));
    }
    expect(actionIdsLine()).toBe(`$script:RrActionIds = @(${ACTION_IDS.map((id) => `'${id}'`).join(', ')})`);
    // The probe needs no allow-list, and the library keeps no copy of its own.
    expect(allowListsIn(composeScript('probe'))).toEqual([]);
    expect(allowListsIn(composeScript('fix', { libraries: ['lib/Actions.ps1'] }))).toEqual([[...ACTION_IDS]]);
    expect(allowListsIn(composeScript('fix', { libraries: ['lib/Facts.ps1'] }))).toEqual([[...ACTION_IDS]]);
  });

  it('refuses to generate an allow-list from an id that is not a plain lower-case word list', () => {
    expect(() => actionIdsLine(['ok-id', "x'); Stop-Computer; ('"])).toThrow(PayloadCompositionError);
    expect(() => actionIdsLine(['Upper'])).toThrow(PayloadCompositionError);
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
      probe: ['lib/Access.Read.ps1', 'lib/Access.Handshake.ps1', 'lib/Facts.ps1'],
      fix: ['lib/Access.Read.ps1', 'lib/Access.Handshake.ps1', 'lib/Access.Write.ps1', 'lib/Facts.ps1', 'lib/Actions.ps1'],
    });
    for (const kind of ['probe', 'fix'] as const) {
      expect(composeScript(kind, { libraries: DEFAULT_LIBRARIES[kind] })).toBe(composeScript(kind));
    }
    // The generated allow-list goes right in front of lib/Actions.ps1 (the fix logic).
    const actionsLib = stripCommentLines(readFileSync(join(scriptsDirectory(), 'lib/Actions.ps1'), 'utf8').replace(/\r\n/g, '\n').trimEnd());
    const factsLib = stripCommentLines(readFileSync(join(scriptsDirectory(), 'lib/Facts.ps1'), 'utf8').replace(/\r\n/g, '\n').trimEnd());
    expect(composeScript('fix')).toContain(`${factsLib}\n${actionIdsLine()}\n${actionsLib}`);
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
    [{ ...fixParameters, RestoreSecurityLayer: '' }, 'RestoreSecurityLayer'],
    [{ ...fixParameters, RestoreUserAuthentication: '' }, 'RestoreUserAuthentication'],
    [{ ...fixParameters, RestoreUserAuthentication: '1 -DryRun true' }, 'RestoreUserAuthentication'],
    [{ ...fixParameters, DryRun: '' }, 'DryRun'],
    [{ ...fixParameters, Actions: '' }, 'Actions'],
    [{ ...fixParameters, Actions: 'repair-key-acl, restart-rdp-services' }, 'Actions'],
    [{ ...fixParameters, RunId: `${RUN_ID}^` }, 'RunId'],
    [{ ...fixParameters, Extra: 'x' }, 'Extra'],
  ])('rejects parameters outside the allow-lists (%#: %s)', (parameters, field) => {
    expect(() => composePayload({ kind: 'fix', parameters: parameters as never })).toThrow(PayloadCompositionError);
    expect(() => composePayload({ kind: 'fix', parameters: parameters as never })).toThrow(field === 'Extra' ? /Unrecognized key/ : new RegExp(field));
  });

  it.each([['a b'], [''], ['1^'], ["'x'"], ['"x"'], ['`x'], ['$x'], ['x;y'], ['x|y'], ['x&y'], ['(x)'], ['x\ty'], ['x\ny']])(
    'sends no parameter value that is not a plain token (%j), whatever a schema allowed',
    (value) => {
      expect(() => toRunCommandParameters('fix', { RunId: RUN_ID, Extra: value })).toThrow(PayloadCompositionError);
      expect(() => toRunCommandParameters('fix', { RunId: RUN_ID, Extra: value })).toThrow(/Extra: must be a plain token/);
    },
  );

  it('leaves absent values out of the parameter list, in order', () => {
    expect(toRunCommandParameters('fix', { RunId: RUN_ID, A: undefined, B: 'x,y.z_1-2' })).toEqual([
      { name: 'RunId', value: RUN_ID },
      { name: 'B', value: 'x,y.z_1-2' },
    ]);
  });

  it('accepts every known action id', () => {
    expect(() => composePayload({ kind: 'fix', parameters: { ...fixParameters, Actions: ACTION_IDS.join(',') } })).not.toThrow();
  });

  it('keeps each payload well under what a Run Command request carries', () => {
    // No documented limit on the action API's script size was found; 128 KiB is a conservative budget.
    for (const kind of ['probe', 'fix'] as const) expect(Buffer.byteLength(composeScript(kind))).toBeLessThan(128 * 1024);
  });

  it('keeps the read-only probe at most 70% of the fix payload', () => {
    // Both go out on every remediation; the probe carries neither the write access layer nor the
    // actions. (The loopback handshake, which both carry, moved the ratio from 0.60 to about 0.64.)
    const probe = Buffer.byteLength(composeScript('probe'));
    const fix = Buffer.byteLength(composeScript('fix'));
    expect(probe).toBeLessThanOrEqual(0.7 * fix);
  });
});
