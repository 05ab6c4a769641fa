/** The scan's renderings (table, totals, progress line, CSV, JSON) and the progress bar's renderer. */
import { describe, expect, it } from 'vitest';
import { renderProgressBar, visibleLength } from '../../src/cli/progress-bar.js';
import { csvField, CSV_COLUMNS, scanCsv, scanProgressLine, scanSummary, scanTable } from '../../src/cli/scan-format.js';
import { scanTotals, type ScanVm } from '../../src/core/scan.js';

const ID = (name: string) => `/subscriptions/00000000-0000-0000-0000-0000000000a1/resourceGroups/rg-web/providers/Microsoft.Compute/virtualMachines/${name}`;
const base = { resourceGroup: 'rg-web', osType: 'Windows', powerState: 'running', agent: 'Ready', findings: [], handshake: null, plan: [], refused: [], unresolved: [], runCommands: 0, durationMs: null } as const;

const HEALTHY: ScanVm = { ...base, vmResourceId: ID('web01'), name: 'web01', verdict: 'healthy', handshake: 'tls', runCommands: 1, durationMs: 1200, findings: [{ code: 'security-layer-weakened', severity: 'advisory', detail: 'SecurityLayer=1' }] };
const CERT: ScanVm = {
  ...base,
  vmResourceId: ID('web02'),
  name: 'web02',
  verdict: 'would-fail',
  handshake: 'failed',
  runCommands: 1,
  durationMs: 900,
  findings: [{ code: 'cert-expired', severity: 'blocking', detail: 'expired 2026-10-01' }],
  plan: ['regenerate-self-signed-cert', 'restart-rdp-services'],
};
const NLA: ScanVm = {
  ...base,
  vmResourceId: ID('web03'),
  name: 'web03',
  verdict: 'would-fail',
  handshake: 'tls',
  runCommands: 1,
  durationMs: 800,
  findings: [{ code: 'nla-domain-unreachable', severity: 'blocking', detail: 'secure channel broken' }],
  refused: [{ id: 'disable-nla', reason: 'needs-permission', detail: 'lowers security; allow "disable-nla" in the request or the VM\'s tag to permit it' }],
  unresolved: ['nla-domain-unreachable'],
};
const OFF: ScanVm = { ...base, vmResourceId: ID('web04'), name: 'web04', verdict: 'not-probed', powerState: 'deallocated', agent: null, notProbed: { reason: 'not-running', detail: 'VM is deallocated; Run Command needs it running' } };

describe('scan table and summary', () => {
  const vms = [HEALTHY, CERT, NLA, OFF];
  it('shows each VM with its power and agent, verdict, findings, plan and refusals', () => {
    const lines = scanTable(vms).split('\n');
    expect(lines[0]).toMatch(/^VM +resource group +power\/agent +RDP +findings \(advisory\) +a repair would run +refused \(why\)$/);
    expect(lines[2]).toMatch(/^web01 +rg-web +running\/Ready +accepts RDP +none \(security-layer-weakened\) +-/);
    expect(lines[3]).toMatch(/web02 .* WOULD FAIL +cert-expired +regenerate-self-signed-cert → restart-rdp-services/);
    expect(lines[4]).toMatch(/web03 .* WOULD FAIL +nla-domain-unreachable +- +disable-nla \(needs-permission\)$/);
    expect(lines[5]).toMatch(/web04 +rg-web +deallocated\/- +not probed: not-running +VM is deallocated; Run Command needs it running/);
  });
  it('totals by verdict and by cause, and says why refused actions were refused', () => {
    const summary = scanSummary({ vms, totals: scanTotals(vms), elapsedMs: 3456 });
    expect(summary.split('\n')).toEqual([
      '4 VMs: 3 probed (1 accept RDP, 2 would fail), 1 not probed, 0 errors; 3.5 s',
      'would fail RDP, by cause: cert-expired 1, nla-domain-unreachable 1',
      'not probed, by reason: not-running 1',
      'refused disable-nla (needs-permission): lowers security; allow "disable-nla" in the request or the VM\'s tag to permit it',
    ]);
  });
  it('says so when nothing matched', () => {
    expect(scanSummary({ vms: [], totals: scanTotals([]), elapsedMs: 10 })).toContain('no VM matched');
  });
  it('prints one plain line per VM finished', () => {
    expect(scanProgressLine(CERT, 2, 12)).toBe('[ 2/12] rg-web/web02: WOULD FAIL - cert-expired (0.9 s)');
    expect(scanProgressLine(OFF, 10, 12)).toBe('[10/12] rg-web/web04: not probed: not-running - VM is deallocated; Run Command needs it running');
  });
});

describe('scan CSV', () => {
  it('quotes as RFC 4180 says: commas, quotes and line breaks; quotes doubled', () => {
    expect(csvField('plain')).toBe('plain');
    expect(csvField('a,b')).toBe('"a,b"');
    expect(csvField('say "hi"')).toBe('"say ""hi"""');
    expect(csvField('two\nlines')).toBe('"two\nlines"');
    expect(csvField('cr\r')).toBe('"cr\r"');
    expect(csvField('')).toBe('');
  });
  it('writes a header and one row per VM, CRLF-terminated, every row as wide as the header', () => {
    const csv = scanCsv([CERT, NLA, OFF]);
    expect(csv.endsWith('\r\n')).toBe(true);
    const rows = csv.slice(0, -2).split('\r\n');
    expect(rows[0]).toBe(CSV_COLUMNS.join(','));
    expect(rows).toHaveLength(4);
    expect(rows[1]).toBe(`${ID('web02')},web02,rg-web,Windows,running,Ready,would-fail,,,cert-expired,,failed,regenerate-self-signed-cert; restart-rdp-services,,,1,900`);
    // The refusal's detail has a quote and a semicolon-joined list stays one field.
    expect(rows[2]).toContain('"disable-nla (needs-permission): lowers security; allow ""disable-nla"" in the request or the VM\'s tag to permit it"');
    expect(rows[3]).toContain(',not-probed,not-running,VM is deallocated; Run Command needs it running,');
  });
});

describe('progress bar', () => {
  const counts = { done: 6, total: 12, healthy: 1, wouldFail: 4, errors: 0, notProbed: 1, elapsedMs: 3210 };
  it('renders done/total, the counts and the elapsed time, without colour when asked', () => {
    const line = renderProgressBar(counts, { color: false, width: 10 });
    expect(line).toBe('scan [█████░░░░░]   6/12  healthy 1  would fail 4  errors 0  not probed 1  3.2s');
    expect(line).not.toContain('\u001b');
  });
  it('colours the counts that are not zero, and measures the line without its colour codes', () => {
    const line = renderProgressBar(counts, { color: true, width: 10 });
    expect(line).toContain('\u001b[31m4\u001b[0m');
    expect(line).toContain('errors 0');
    expect(visibleLength(line)).toBe(renderProgressBar(counts, { color: false, width: 10 }).length);
  });
  it('is full when done, and when there is nothing to do', () => {
    expect(renderProgressBar({ ...counts, done: 12 }, { color: false, width: 4 })).toMatch(/^scan \[████\] {2}12\/12/);
    expect(renderProgressBar({ ...counts, done: 0, total: 0 }, { color: false, width: 4 })).toMatch(/^scan \[████\] {2}0\/0/);
  });
});
