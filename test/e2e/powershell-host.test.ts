/**
 * The long-lived PowerShell host (emulator/powershell.ts + emulator/powershell/host.ps1) with a
 * tiny stand-in double written here, not the project's Windows double: parameters reach the
 * payload as the Run Command agent passes them, the double's functions replace the payload's,
 * each run gets a fresh runspace, errors come back as stderr, replay substitutes the RunId, and
 * the double's asks reach this side's handler and come back in the middle of a run.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PowerShellHost, PowerShellHostError, PowerShellTimeoutError, type PowerShellAsk, type PowerShellRunRequest } from '../../emulator/powershell.js';
import { defaultFirewall, healthyWindows } from '../../emulator/windows.js';
import type { WindowsState } from '../../emulator/windows-state.js';
import { packageRoot } from '../../src/util/package-root.js';
import { locatePwsh } from '../../tools/pwsh.mjs';

const lookup = locatePwsh({ install: false });
const pwsh = lookup.path;
if (pwsh === null) {
  if (process.env['CI'] === 'true') {
    describe('PowerShell host', () => {
      it('has PowerShell 7 (CI=true requires it)', () => {
        throw new Error(lookup.message);
      });
    });
  } else {
    console.warn(`\n!!! PowerShell host tests SKIPPED: no PowerShell 7 found.\n${lookup.message}\n`);
  }
}

const DOUBLE = String.raw`
function Get-RrNow {
    [datetime]::Parse($global:RrDouble.State.now, [cultureinfo]::InvariantCulture, [System.Globalization.DateTimeStyles]::AdjustToUniversal)
}
function Set-RrRegistryValue {
    param([string]$Path, [string]$Name, [string]$Kind, $Value)
    $global:RrDouble.WriteCount++
    $registry = $global:RrDouble.State.registry
    if ($null -eq $registry[$Path]) { $registry[$Path] = [ordered]@{} }
    $stored = if ($Kind -eq 'DWord') { [int64]$Value } else { [string]$Value }
    $registry[$Path][$Name] = [ordered]@{ kind = $Kind; value = $stored }
    $global:RrDouble.Writes.Add([ordered]@{ op = 'Set-RrRegistryValue'; target = "$Path\$Name"; detail = "$Kind=$Value" })
}
function Stop-RrListener {
    # Assigned from a pipeline without @(): one port left is a scalar, none is $null.
    $global:RrDouble.State.tcpListeners = $global:RrDouble.State.tcpListeners | Where-Object { $_ -ne 3389 }
}
# A helper of the double's own, not an access-layer function: payloads keep theirs.
function Get-RrDoubleWriteCount { $global:RrDouble.WriteCount }
# Asks this side, as the project's double does, with the state as it is at that moment.
function Test-RrRdpHandshake {
    param([string]$Address, [int]$Port, [int]$TimeoutMilliseconds)
    $body = ConvertTo-Json -InputObject ([ordered]@{ state = $global:RrDouble.State; address = $Address; port = $Port; timeoutMs = $TimeoutMilliseconds }) -Depth 30 -Compress
    try { ConvertFrom-Json -InputObject ($global:RrDouble.Ask.Ask('rdp-handshake', $body)) -AsHashtable }
    catch {
        $e = $_.Exception
        while ($e -is [System.Management.Automation.MethodInvocationException] -and $null -ne $e.InnerException) { $e = $e.InnerException }
        throw ('handshake: ' + $e.Message)
    }
}
`;

function baseState(overrides: Partial<WindowsState> = {}): WindowsState {
  return {
    v: 1,
    now: '2025-03-01T10:00:00.000Z',
    computerName: 'VM-TEST',
    os: { caption: 'Microsoft Windows Server 2022 Datacenter', buildNumber: '20348' },
    serverSku: true,
    features: {},
    domain: { partOfDomain: false, secureChannel: false },
    programData: 'C:\\ProgramData',
    registry: { 'HKLM\\SOFTWARE\\Microsoft\\Cryptography': { MachineGuid: { kind: 'String', value: '0b6c2f4e-3a2b-4c1d-9e8f-123456789abc' } } },
    certificates: { My: [], 'Remote Desktop': [] },
    files: {},
    services: { TermService: { status: 'Running', dependsOn: ['RPCSS'], startPendingReads: 0, pendingReadsLeft: 0, startFailure: null } },
    wmi: { readable: true, policySourceSecurityLayer: 0, policySourceUserAuthenticationRequired: 0, policySourceMinEncryptionLevel: 0 },
    tcpListeners: [3389, 5985],
    primaryIPv4: '10.0.0.4',
    firewall: defaultFirewall(),
    events: [],
    termServiceLoaded: null,
    nativeResults: {},
    faults: { throwAtWrite: null, unreadableAcls: [] },
    ...overrides,
  };
}

const RUN_ID = '3f2b8c1e-6a4d-4e2f-9b7a-0c1d2e3f4a5b';
const OTHER_RUN_ID = '9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d';

const BINDING_SCRIPT = `[CmdletBinding()]
param(
    [Parameter(Mandatory = $true)][string]$RunId,
    [string]$Actions,
    [string]$Mode = 'none'
)
"RunId=$RunId"
"Actions=$Actions"
"Mode=$Mode"`;

describe.skipIf(pwsh === null)('PowerShell host (host.ps1 in one long-lived pwsh)', () => {
  let dir: string;
  let doublePath: string;
  let host: PowerShellHost;
  let replayHost: PowerShellHost;
  let askHost: PowerShellHost;
  /** What askHost's handler was asked, in order. */
  const asked: PowerShellAsk[] = [];
  /** Ports on which askHost's handler never answers (the run must be stopped while it waits). */
  const HANG_PORT = 9;
  const FAIL_PORT = 1;

  function askHandler(ask: PowerShellAsk): unknown {
    asked.push(ask);
    if (ask.port === FAIL_PORT) throw new Error(`no model for port ${ask.port}`);
    if (ask.port === HANG_PORT) return new Promise(() => undefined);
    return { stage: 'done', address: ask.address, port: ask.port, seenComputerName: ask.state.computerName, seenKeys: Object.keys(ask.state.registry).length };
  }

  const run = (script: string, parameters: PowerShellRunRequest['parameters'] = [], state: WindowsState = baseState()) =>
    host.run({ script, parameters, state });

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'rr-pwsh-host-test-'));
    doublePath = join(dir, 'StandInDouble.ps1');
    writeFileSync(doublePath, DOUBLE);
    [host, replayHost, askHost] = await Promise.all([
      PowerShellHost.start({ pwshPath: pwsh ?? undefined, doublePath, timeoutMs: 20_000 }),
      PowerShellHost.start({ pwshPath: pwsh ?? undefined, doublePath, replay: true }),
      PowerShellHost.start({ pwshPath: pwsh ?? undefined, doublePath, askHandler, timeoutMs: 20_000 }),
    ]);
  });

  afterAll(async () => {
    await Promise.all([host?.close(), replayHost?.close(), askHost?.close()]);
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('binds each parameter as `-Name value` tokens', async () => {
    const out = await run(BINDING_SCRIPT, [
      { name: 'RunId', value: RUN_ID },
      { name: 'Actions', value: 'enable-tls12-server,repair-key-acl' },
      { name: 'Mode', value: 'fast' },
    ]);
    expect(out.stderr).toBe('');
    expect(out.stdout).toBe(`RunId=${RUN_ID}\nActions=enable-tls12-server,repair-key-acl\nMode=fast`);
    expect(out.replayed).toBe(false);
  });

  it('an empty value leaves the parameter without an argument: binding fails, nothing runs', async () => {
    const out = await run(BINDING_SCRIPT, [
      { name: 'RunId', value: RUN_ID },
      { name: 'Actions', value: '' },
      { name: 'Mode', value: 'fast' },
    ]);
    expect(out.stdout).toBe('');
    expect(out.stderr).toContain("Missing an argument for parameter 'Actions'");
    expect(out.stderr).toContain('FullyQualifiedErrorId : MissingArgument,script0.ps1');
  });

  it('a value with a space is split: the second piece binds to the next positional parameter', async () => {
    const out = await run(BINDING_SCRIPT, [
      { name: 'RunId', value: RUN_ID },
      { name: 'Actions', value: 'first second' },
    ]);
    expect(out.stderr).toBe('');
    expect(out.stdout).toBe(`RunId=${RUN_ID}\nActions=first\nMode=second`);
  });

  it('strips ^ from values', async () => {
    const out = await run(BINDING_SCRIPT, [
      { name: 'RunId', value: RUN_ID },
      { name: 'Actions', value: 'a^b^^c' },
    ]);
    expect(out.stdout).toContain('Actions=abc');
  });

  it("hands back the double's state changes and writes", async () => {
    const script = `param([string]$RunId)
Set-RrRegistryValue -Path 'HKLM\\SOFTWARE\\Policies\\Test' -Name 'Enabled' -Kind DWord -Value 1
Set-RrRegistryValue -Path 'HKLM\\SOFTWARE\\Policies\\Test' -Name 'Owner' -Kind String -Value $RunId
"writes=$(Get-RrDoubleWriteCount)"`;
    const before = baseState();
    const out = await run(script, [{ name: 'RunId', value: RUN_ID }], before);
    expect(out.stderr).toBe('');
    expect(out.stdout).toBe('writes=2');
    expect(out.state.registry['HKLM\\SOFTWARE\\Policies\\Test']).toEqual({
      Enabled: { kind: 'DWord', value: 1 },
      Owner: { kind: 'String', value: RUN_ID },
    });
    expect(out.state.registry['HKLM\\SOFTWARE\\Microsoft\\Cryptography']).toEqual(before.registry['HKLM\\SOFTWARE\\Microsoft\\Cryptography']);
    expect(out.writes).toEqual([
      { op: 'Set-RrRegistryValue', target: 'HKLM\\SOFTWARE\\Policies\\Test\\Enabled', detail: 'DWord=1' },
      { op: 'Set-RrRegistryValue', target: 'HKLM\\SOFTWARE\\Policies\\Test\\Owner', detail: `String=${RUN_ID}` },
    ]);
    // One-element and empty arrays stay arrays on the way back.
    expect(out.state.services['TermService']?.dependsOn).toEqual(['RPCSS']);
    expect(out.state.certificates['My']).toEqual([]);
    expect(out.stateRepairs).toEqual([]);
  });

  it('puts right an array the double assigned from a pipeline (a scalar, or $null)', async () => {
    const one = await run('Stop-RrListener', [], baseState({ tcpListeners: [3389, 5985] }));
    expect(one.state.tcpListeners).toEqual([5985]);
    expect(one.stateRepairs).toEqual(['tcpListeners: single value wrapped in an array']);
    const none = await run('Stop-RrListener', [], baseState({ tcpListeners: [3389] }));
    expect(none.state.tcpListeners).toEqual([]);
    expect(none.stateRepairs).toEqual(['tcpListeners: null made []']);
  });

  it("replaces the payload's own definitions of the double's functions and keeps the rest", async () => {
    const script = `param()
function Get-RrNow { 'the payload clock' }
function Format-RrStamp([datetime]$At) { 'stamp ' + $At.ToString('yyyy-MM-ddTHH:mm:ssZ') }
function Set-RrRegistryValue { throw 'the payload access layer must not run' }
function Get-RrDoubleWriteCount { 'the payload helper' }
function Invoke-RrOuter {
    function Get-RrNow { 'nested, left alone' }
    Get-RrNow
}
Format-RrStamp (Get-RrNow)
Set-RrRegistryValue -Path 'HKLM\\SOFTWARE\\X' -Name 'N' -Kind DWord -Value 7
Get-RrDoubleWriteCount
Invoke-RrOuter
throw 'line 14'`;
    const out = await run(script);
    expect(out.replaced).toEqual(['Get-RrNow', 'Set-RrRegistryValue']);
    expect(out.stdout).toBe('stamp 2025-03-01T10:00:00Z\nthe payload helper\nnested, left alone');
    expect(out.state.registry['HKLM\\SOFTWARE\\X']).toEqual({ N: { kind: 'DWord', value: 7 } });
    // The cut keeps line breaks: positions are the composed payload's lines.
    expect(out.stderr).toMatch(/script0\.ps1:14 char:1/);
  });

  it('runs each payload in a fresh runspace', async () => {
    const first = await run(`$global:Leak = 'from run 1'
function global:Get-Leaked { 'leaked' }
'first'`);
    expect(first.stdout).toBe('first');
    const second = await run(`"leak=[$global:Leak]"
"command=[$([bool](Get-Command Get-Leaked -ErrorAction SilentlyContinue))]"`);
    expect(second.stderr).toBe('');
    expect(second.stdout).toBe('leak=[]\ncommand=[False]');
  });

  it('a script that throws: its output so far on stdout, the error on stderr', async () => {
    const out = await run(`'before'
Write-Error 'not fatal'
throw 'boom'
'after'`);
    expect(out.stdout).toBe('before');
    expect(out.stderr).toContain('not fatal');
    expect(out.stderr).toContain('FullyQualifiedErrorId : Microsoft.PowerShell.Commands.WriteErrorException,script0.ps1');
    expect(out.stderr).toMatch(/boom\nAt .*script0\.ps1:3 char:1/);
    expect(out.stderr).toContain('FullyQualifiedErrorId : boom');
  });

  it('formats the success stream as the console would, with Write-Host and warnings, without verbose output', async () => {
    const out = await run(`Write-Verbose 'hidden' -Verbose:$false
Write-Information 'not shown'
Write-Host 'host line'
Write-Warning 'careful'
[pscustomobject]@{ Name = 'x'; Count = 2 }
42`);
    // Out-String -Stream's layout for the table and what follows it in the same pipeline.
    expect(out.stdout.split('\n')).toEqual(['host line', 'WARNING: careful', '', 'Name Count', '---- -----', 'x        2', '42', '']);
  });

  it('a parse error: stderr as PowerShell prints it, nothing runs', async () => {
    const out = await run("'never printed'\nif (\n");
    expect(out.stdout).toBe('');
    expect(out.stderr).toContain("Missing condition in if statement after 'if ('.");
    expect(out.stderr).toContain('+ CategoryInfo          : ParserError: (:) [], ParseException');
    expect(out.writes).toEqual([]);
  });

  it('answers a host failure with a typed error and keeps serving', async () => {
    await expect(host.run({ script: "'x'", parameters: [], state: baseState(), doublePath: join(dir, 'missing.ps1') })).rejects.toThrow(PowerShellHostError);
    expect((await run("'still serving'")).stdout).toBe('still serving');
  });

  it('a run that outlives its timeout is stopped with a typed error; the process keeps serving', async () => {
    const { restarts, timeouts } = host.stats;
    const started = Date.now();
    await expect(host.run({ script: "'started'; while ($true) { Start-Sleep -Milliseconds 50 }", parameters: [], state: baseState(), timeoutMs: 1_000 })).rejects.toThrow(
      PowerShellTimeoutError,
    );
    expect(Date.now() - started).toBeLessThan(10_000);
    expect((await run("'after the timeout'")).stdout).toBe('after the timeout');
    expect(host.stats).toMatchObject({ restarts, timeouts: timeouts + 1 });
  });

  it('a run PowerShell cannot stop is killed after the grace period; the next run gets a new process', async () => {
    const stuck = await PowerShellHost.start({ pwshPath: pwsh ?? undefined, doublePath, timeoutMs: 500, killGraceMs: 1_000 });
    try {
      await expect(stuck.run({ script: '[System.Threading.Thread]::Sleep(60000)', parameters: [], state: baseState() })).rejects.toThrow(PowerShellTimeoutError);
      expect((await stuck.run({ script: "'after the restart'", parameters: [], state: baseState() })).stdout).toBe('after the restart');
      expect(stuck.stats).toMatchObject({ restarts: 1, timeouts: 1 });
    } finally {
      await stuck.close();
    }
  });

  it('exits when its input ends between runs (end of input is not a blank line)', async () => {
    const child = spawn(pwsh ?? 'pwsh', ['-NoProfile', '-NonInteractive', '-File', join(packageRoot(), 'emulator', 'powershell', 'host.ps1')], { stdio: ['pipe', 'pipe', 'pipe'] });
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    try {
      const first = new Promise<string>((resolve) => createInterface({ input: child.stdout }).once('line', resolve));
      child.stdin.write(`${JSON.stringify({ id: 1, ping: true })}\n`);
      expect(JSON.parse(await first)).toMatchObject({ id: 1, pong: true });
      child.stdin.end();
      expect(await exited).toBe(0);
    } finally {
      child.kill('SIGKILL');
    }
  });

  it('serialises concurrent runs through the queue', async () => {
    const outs = await Promise.all(Array.from({ length: 5 }, (_, i) => run(`param([string]$N)\n"n=$N"`, [{ name: 'N', value: String(i) }])));
    expect(outs.map((o) => o.stdout)).toEqual(['n=0', 'n=1', 'n=2', 'n=3', 'n=4']);
  });

  it('replay: the same content with another RunId returns the recorded run with the RunId substituted, without PowerShell', async () => {
    const script = `param([Parameter(Mandatory = $true)][string]$RunId)
Set-RrRegistryValue -Path "HKLM\\SOFTWARE\\RdpRemediation\\$RunId" -Name 'Result' -Kind String -Value "ok $RunId"
'{"runId":"' + $RunId + '","ok":true}'`;
    const runsBefore = replayHost.stats.runs;
    const first = await replayHost.run({ script, parameters: [{ name: 'RunId', value: RUN_ID }], state: baseState() });
    expect(first.replayed).toBe(false);
    expect(replayHost.stats.runs).toBe(runsBefore + 1);

    // Another run id, and the VM's clock has moved on: not part of the content.
    const later = baseState({ now: '2025-03-01T11:30:00.000Z' });
    const again = await replayHost.run({ script, parameters: [{ name: 'RunId', value: OTHER_RUN_ID }], state: later });
    expect(again.replayed).toBe(true);
    expect(replayHost.stats.runs).toBe(runsBefore + 1);
    expect(replayHost.stats.replays).toBe(1);

    // What PowerShell itself prints and changes for that run.
    const real = await host.run({ script, parameters: [{ name: 'RunId', value: OTHER_RUN_ID }], state: later });
    expect(again.stdout).toBe(real.stdout);
    expect(again.stdout).toBe(`{"runId":"${OTHER_RUN_ID}","ok":true}`);
    expect(again.state).toEqual(real.state);
    expect(again.writes).toEqual(real.writes);
    expect(JSON.stringify(again)).not.toContain(RUN_ID);

    // Different content runs PowerShell.
    const changed = await replayHost.run({ script, parameters: [{ name: 'RunId', value: OTHER_RUN_ID }], state: baseState({ computerName: 'VM-OTHER' }) });
    expect(changed.replayed).toBe(false);
    expect(replayHost.stats.runs).toBe(runsBefore + 2);
  });

  it('replay: identical runs sent at once run PowerShell once, the rest wait and replay', async () => {
    const script = `param([Parameter(Mandatory = $true)][string]$RunId)
'{"runId":"' + $RunId + '","storm":true}'`;
    const runsBefore = replayHost.stats.runs;
    const ids = Array.from({ length: 6 }, (_, i) => `${RUN_ID.slice(0, -1)}${i}`);
    const outs = await Promise.all(ids.map((id) => replayHost.run({ script, parameters: [{ name: 'RunId', value: id }], state: baseState() })));
    expect(outs.map((o) => o.stdout)).toEqual(ids.map((id) => `{"runId":"${id}","storm":true}`));
    expect(outs.filter((o) => !o.replayed)).toHaveLength(1);
    expect(replayHost.stats.runs).toBe(runsBefore + 1);
  });

  it('an ask goes to the handler with the state as the double holds it then, and its answer comes back into the run', async () => {
    asked.length = 0;
    const script = `Set-RrRegistryValue -Path 'HKLM\\SOFTWARE\\Asked' -Name 'Before' -Kind DWord -Value 1
$answer = Test-RrRdpHandshake -Address '127.0.0.1' -Port 3389 -TimeoutMilliseconds 2500
"$($answer.stage) $($answer.address):$($answer.port) $($answer.seenComputerName) $($answer.seenKeys)"
'the run goes on'`;
    const before = askHost.stats.asks;
    const out = await askHost.run({ script, parameters: [], state: baseState() });
    expect(out.stderr).toBe('');
    expect(out.stdout).toBe('done 127.0.0.1:3389 VM-TEST 2\nthe run goes on');
    expect(asked).toHaveLength(1);
    expect(asked[0]).toMatchObject({ kind: 'rdp-handshake', address: '127.0.0.1', port: 3389, timeoutMs: 2500 });
    // The registry value written just before the ask is in the state the handler saw.
    expect(asked[0]?.state.registry['HKLM\\SOFTWARE\\Asked']).toEqual({ Before: { kind: 'DWord', value: 1 } });
    expect(askHost.stats.asks).toBe(before + 1);
  });

  it('a run that asks twice gets each answer in turn', async () => {
    asked.length = 0;
    const out = await askHost.run({
      script: `"$((Test-RrRdpHandshake -Address '127.0.0.1' -Port 3389 -TimeoutMilliseconds 100).port)"
"$((Test-RrRdpHandshake -Address '10.0.0.4' -Port 3390 -TimeoutMilliseconds 100).address)"`,
      parameters: [],
      state: baseState(),
    });
    expect(out.stderr).toBe('');
    expect(out.stdout).toBe('3389\n10.0.0.4');
    expect(asked.map((a) => [a.address, a.port])).toEqual([
      ['127.0.0.1', 3389],
      ['10.0.0.4', 3390],
    ]);
  });

  it('a handler that throws makes the double\'s call throw its message; the run and the host go on', async () => {
    const out = await askHost.run({
      script: `try { Test-RrRdpHandshake -Address '127.0.0.1' -Port ${FAIL_PORT} -TimeoutMilliseconds 100 } catch { 'caught: ' + $_.Exception.Message }
"then $((Test-RrRdpHandshake -Address '127.0.0.1' -Port 3389 -TimeoutMilliseconds 100).stage)"`,
      parameters: [],
      state: baseState(),
    });
    expect(out.stderr).toBe('');
    expect(out.stdout).toBe(`caught: handshake: no model for port ${FAIL_PORT}\nthen done`);
  });

  it('a run stopped while its ask waits for an answer times out like any run; the process keeps serving', async () => {
    const { restarts, timeouts } = askHost.stats;
    await expect(
      askHost.run({ script: `Test-RrRdpHandshake -Address '127.0.0.1' -Port ${HANG_PORT} -TimeoutMilliseconds 100`, parameters: [], state: baseState(), timeoutMs: 1_000 }),
    ).rejects.toThrow(PowerShellTimeoutError);
    const next = await askHost.run({ script: `"after $((Test-RrRdpHandshake -Address '127.0.0.1' -Port 3389 -TimeoutMilliseconds 100).stage)"`, parameters: [], state: baseState() });
    expect(next.stdout).toBe('after done');
    expect(askHost.stats).toMatchObject({ restarts, timeouts: timeouts + 1 });
  });

  it('the default handler is the Windows model: what a client would observe against the state', async () => {
    const state = healthyWindows({ computerName: 'VM-MODEL', now: new Date('2025-03-01T10:00:00Z'), seed: 'host-test' });
    const out = await host.run({
      script: `$a = Test-RrRdpHandshake -Address '127.0.0.1' -Port 3389 -TimeoutMilliseconds 100
"$($a.stage) $($a.selectedProtocol) $($a.tlsVersion) $($a.certificateThumbprint)"
$b = Test-RrRdpHandshake -Address '127.0.0.1' -Port 3390 -TimeoutMilliseconds 100
"$($b.stage) $($b.error)"`,
      parameters: [],
      state,
    });
    expect(out.stderr).toBe('');
    expect(out.stdout).toBe(`done 2 Tls12 ${state.certificates['Remote Desktop']?.[0]?.thumbprint ?? '?'}\nconnect refused`);
  });

  it('replay: a run that asked is replayed from its record without asking again', async () => {
    const script = `param([Parameter(Mandatory = $true)][string]$RunId)
$a = Test-RrRdpHandshake -Address '127.0.0.1' -Port 3389 -TimeoutMilliseconds 100
"$RunId $($a.stage)"`;
    const state = healthyWindows({ computerName: 'VM-REPLAY', now: new Date('2025-03-01T10:00:00Z'), seed: 'host-replay' });
    const first = await replayHost.run({ script, parameters: [{ name: 'RunId', value: RUN_ID }], state });
    const asks = replayHost.stats.asks;
    const again = await replayHost.run({ script, parameters: [{ name: 'RunId', value: OTHER_RUN_ID }], state });
    expect([first.replayed, again.replayed]).toEqual([false, true]);
    expect(again.stdout).toBe(`${OTHER_RUN_ID} done`);
    expect(replayHost.stats.asks).toBe(asks);
  });

  it('timing: median of 20 runs of a small payload', async () => {
    const state = baseState();
    await run(BINDING_SCRIPT, [{ name: 'RunId', value: RUN_ID }], state);
    const client: number[] = [];
    const inHost: number[] = [];
    for (let i = 0; i < 20; i++) {
      const started = performance.now();
      const out = await run(BINDING_SCRIPT, [{ name: 'RunId', value: RUN_ID }, { name: 'Actions', value: 'a' }], state);
      client.push(performance.now() - started);
      inHost.push(out.durationMs);
    }
    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;
    console.log(`PowerShell host: median of 20 runs ${median(client).toFixed(1)} ms as the client sees it, ${median(inHost).toFixed(1)} ms in host.ps1 (${pwsh})`);
  });
});
