/**
 * The real Test-RrRdpHandshake (scripts/lib/Access.Handshake.ps1) under PowerShell 7, over real
 * loopback sockets, against the stub RDP listener of test/support/rdp-stub.ts in every mode:
 * what the check sends (the exact Connection Request), where it stops and why, the served
 * certificate, the TLS version and cipher as the server saw them, and the result's shape.
 * One pwsh process runs every case, one after the other. Durations are never asserted.
 */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { NEG_FAILURE_NAMES } from '../../src/contract/facts.js';
import { scriptsDirectory } from '../../src/payloads/compose.js';
import { powerShellForTests } from '../support/powershell.js';
import { connectionConfirm, createStubCertificates, refusedPort, startRdpStub, type RdpStub, type RdpStubMode, type StubCertificates } from '../support/rdp-stub.js';

const { pwsh, describeWithPowerShell } = powerShellForTests('rdp-handshake');

/** Short for the cases that wait for a silent server, generous for the rest (TLS on a busy runner). */
const SILENT_TIMEOUT_MS = 1500;
const TIMEOUT_MS = 10_000;

/** MS-RDPBCGR 2.2.1.1: TPKT (19 bytes), X.224 CR (LI 14, 0xE0, refs 0, class 0), RDP_NEG_REQ requesting SSL | HYBRID. */
const EXPECTED_REQUEST = '030000130ee00000000000' + '0100080003000000';


/** Connection Confirms the `reply` mode sends verbatim. */
const noNegotiation = connectionConfirm(null);
const selectsRdp = connectionConfirm({ type: 2, value: 0 });
const selectsRdstls = connectionConfirm({ type: 2, value: 4 });
const unknownType = connectionConfirm({ type: 2, value: 1 });
unknownType[11] = 0x05;
const badNegotiationLength = connectionConfirm({ type: 2, value: 1 });
badNegotiationLength.writeUInt16LE(12, 13);
const dataTpdu = connectionConfirm({ type: 2, value: 1 });
dataTpdu[5] = 0xf0;
const wrongIndicator = connectionConfirm({ type: 2, value: 1 });
wrongIndicator[4] = 0x0a;
/** A header announcing 19 bytes, of which only 11 come before the server closes. */
const truncated = connectionConfirm({ type: 2, value: 1 }).subarray(0, 11);

const MODES: Readonly<Record<string, RdpStubMode>> = {
  'ok-ssl': { kind: 'ok-ssl' },
  'ok-hybrid': { kind: 'ok-hybrid' },
  'expired-certificate': { kind: 'expired-certificate' },
  ...Object.fromEntries([1, 2, 3, 4, 5, 6].map((code) => [`negotiation-failure-${String(code)}`, { kind: 'negotiation-failure', failureCode: code } as const])),
  'reset-after-request': { kind: 'reset-after-request' },
  'tls-alert': { kind: 'tls-alert' },
  'tls-alert-after-certificate': { kind: 'tls-alert-after-certificate' },
  'reset-after-client-hello': { kind: 'reset-after-client-hello' },
  'close-after-client-hello': { kind: 'close-after-client-hello' },
  silent: { kind: 'silent' },
  'silent-tls': { kind: 'silent-tls' },
  'not-x224': { kind: 'not-x224' },
  'reply-no-negotiation': { kind: 'reply', reply: noNegotiation },
  'reply-selects-rdp': { kind: 'reply', reply: selectsRdp },
  'reply-selects-rdstls': { kind: 'reply', reply: selectsRdstls },
  'reply-unknown-type': { kind: 'reply', reply: unknownType },
  'reply-bad-negotiation-length': { kind: 'reply', reply: badNegotiationLength },
  'reply-data-tpdu': { kind: 'reply', reply: dataTpdu },
  'reply-wrong-indicator': { kind: 'reply', reply: wrongIndicator },
  'reply-truncated': { kind: 'reply', reply: truncated },
  'reply-nothing': { kind: 'reply', reply: Buffer.alloc(0) },
};
const SILENT = new Set(['silent', 'silent-tls']);

/** The properties, in order, that Test-RrRdpHandshake returns (the shape the double keeps too). */
const PROPERTIES = [
  'Address',
  'Port',
  'Stage',
  'Error',
  'Message',
  'FailureCode',
  'SelectedProtocol',
  'TlsVersion',
  'Cipher',
  'CertificateThumbprint',
  'CertificateNotAfter',
  'ConnectMs',
  'NegotiateMs',
  'TlsMs',
] as const;

/** The .NET type of each property when it holds a value. */
const TYPES: Readonly<Record<(typeof PROPERTIES)[number], string>> = {
  Address: 'System.String',
  Port: 'System.Int32',
  Stage: 'System.String',
  Error: 'System.String',
  Message: 'System.String',
  FailureCode: 'System.Int32',
  SelectedProtocol: 'System.Int32',
  TlsVersion: 'System.String',
  Cipher: 'System.String',
  CertificateThumbprint: 'System.String',
  CertificateNotAfter: 'System.DateTime',
  ConnectMs: 'System.Int32',
  NegotiateMs: 'System.Int32',
  TlsMs: 'System.Int32',
};

interface HandshakeResult {
  readonly Address: string;
  readonly Port: number;
  readonly Stage: string;
  readonly Error: string | null;
  readonly Message: string | null;
  readonly FailureCode: number | null;
  readonly SelectedProtocol: number | null;
  readonly TlsVersion: string | null;
  readonly Cipher: string | null;
  readonly CertificateThumbprint: string | null;
  readonly CertificateNotAfter: string | null;
  readonly ConnectMs: number | null;
  readonly NegotiateMs: number | null;
  readonly TlsMs: number | null;
}

interface CaseOutput {
  readonly name: string;
  /** How many objects the call wrote to the success stream. */
  readonly count: number;
  readonly typeName: string;
  readonly properties: readonly string[];
  readonly types: Readonly<Record<string, string | null>>;
  /** CertificateNotAfter's Kind and round-trip text, when it has a value. */
  readonly notAfter: { readonly kind: string; readonly text: string } | null;
  readonly result: HandshakeResult;
}

/** Runs every case in one pwsh: dot-sources only Access.Handshake.ps1, as strict as the payloads. */
const RUNNER = String.raw`
Set-StrictMode -Version 3.0
$ErrorActionPreference = 'Stop'
. $env:RR_HANDSHAKE_LIBRARY
foreach ($case in @($env:RR_HANDSHAKE_CASES | ConvertFrom-Json)) {
    $output = @(Test-RrRdpHandshake -Address $case.address -Port $case.port -TimeoutMilliseconds $case.timeout)
    $result = $output[0]
    $types = [ordered]@{}
    foreach ($property in $result.PSObject.Properties) {
        $types[$property.Name] = $null
        if ($null -ne $property.Value) { $types[$property.Name] = $property.Value.GetType().FullName }
    }
    $notAfter = $null
    if ($null -ne $result.CertificateNotAfter) {
        $notAfter = [ordered]@{ kind = [string]$result.CertificateNotAfter.Kind; text = $result.CertificateNotAfter.ToString('o') }
    }
    [ordered]@{
        name       = $case.name
        count      = $output.Count
        typeName   = $result.GetType().FullName
        properties = @($result.PSObject.Properties | ForEach-Object { $_.Name })
        types      = $types
        notAfter   = $notAfter
        result     = $result
    } | ConvertTo-Json -Compress -Depth 4
}
# Bad arguments are the one thing that throws.
$arguments = [ordered]@{}
foreach ($bad in @(
        @{ name = 'address'; address = 'rdp.example'; port = 3389; timeout = 1000 },
        @{ name = 'port'; address = '127.0.0.1'; port = 0; timeout = 1000 },
        @{ name = 'timeout'; address = '127.0.0.1'; port = 3389; timeout = 0 })) {
    $arguments[$bad.name] = 'returned'
    try { $null = Test-RrRdpHandshake -Address $bad.address -Port $bad.port -TimeoutMilliseconds $bad.timeout } catch { $arguments[$bad.name] = 'threw' }
}
[ordered]@{ name = '(arguments)'; arguments = $arguments } | ConvertTo-Json -Compress
`;

const stubs = new Map<string, RdpStub>();
const outputs = new Map<string, CaseOutput>();
let certificates: StubCertificates;
let closedPort = 0;
let stderr = '';
let argumentChecks: Readonly<Record<string, string>> = {};

function output(name: string): CaseOutput {
  const found = outputs.get(name);
  if (!found) throw new Error(`no result for case ${name}; pwsh stderr: ${stderr}`);
  return found;
}
const result = (name: string): HandshakeResult => output(name).result;
const stub = (name: string): RdpStub => stubs.get(name)!;

beforeAll(async () => {
  if (pwsh === null) return;
  certificates = await createStubCertificates();
  for (const [name, mode] of Object.entries(MODES)) stubs.set(name, await startRdpStub(mode, { certificates }));
  closedPort = await refusedPort();
  const cases = [
    ...[...stubs].map(([name, listener]) => ({ name, address: listener.address, port: listener.port, timeout: SILENT.has(name) ? SILENT_TIMEOUT_MS : TIMEOUT_MS })),
    { name: 'refused', address: '127.0.0.1', port: closedPort, timeout: TIMEOUT_MS },
  ];
  const run = await promisify(execFile)(pwsh, ['-NoProfile', '-NonInteractive', '-Command', RUNNER], {
    env: { ...process.env, RR_HANDSHAKE_LIBRARY: join(scriptsDirectory(), 'lib', 'Access.Handshake.ps1'), RR_HANDSHAKE_CASES: JSON.stringify(cases) },
    maxBuffer: 16 * 1024 * 1024,
  });
  stderr = run.stderr;
  for (const line of run.stdout.split('\n').filter((candidate) => candidate.trim() !== '')) {
    const parsed = JSON.parse(line) as CaseOutput | { readonly name: '(arguments)'; readonly arguments: Record<string, string> };
    if ('arguments' in parsed) argumentChecks = parsed.arguments;
    else outputs.set(parsed.name, parsed);
  }
}, 120_000);

afterAll(async () => {
  await Promise.all([...stubs.values()].map((listener) => listener.close()));
});

/** 'TLSv1.3' (node) as SslStream names it ('Tls13'). */
const dotNetProtocol = (protocol: string | null): string | null => (protocol === null ? null : protocol.replace(/^TLSv1\.(\d)$/, 'Tls1$1'));

describeWithPowerShell('Test-RrRdpHandshake against a stub RDP listener', () => {
  it('writes exactly one PSCustomObject per call, with every property in the documented order and type', () => {
    expect(stderr).toBe('');
    expect([...outputs.keys()].sort()).toEqual([...stubs.keys(), 'refused'].sort());
    for (const [name, each] of outputs) {
      expect(each.count, name).toBe(1);
      expect(each.typeName, name).toBe('System.Management.Automation.PSCustomObject');
      expect(each.properties, name).toEqual(PROPERTIES);
      for (const property of PROPERTIES) {
        const type = each.types[property];
        if (type !== null) expect(type, `${name}.${property}`).toBe(TYPES[property]);
      }
      expect(each.result.Address, name).toBe('127.0.0.1');
      expect(each.result.Port, name).toBe(name === 'refused' ? closedPort : stub(name).port);
      expect(['connect', 'negotiate', 'tls', 'done'], name).toContain(each.result.Stage);
      // Null exactly when the stage did not run; never an assertion on how long it took.
      const reached = { connect: 0, negotiate: 1, tls: 2, done: 2 }[each.result.Stage as 'connect' | 'negotiate' | 'tls' | 'done'];
      for (const [index, ms] of [each.result.ConnectMs, each.result.NegotiateMs, each.result.TlsMs].entries()) {
        if (index <= reached) {
          expect(Number.isInteger(ms), `${name}: stage ${String(index)} ms`).toBe(true);
          expect(ms!, name).toBeGreaterThanOrEqual(0);
        } else expect(ms, `${name}: stage ${String(index)} ms`).toBeNull();
      }
      if (each.result.Message !== null) {
        expect(each.result.Message.length, name).toBeLessThanOrEqual(200);
        expect(each.result.Message, name).not.toContain('\n');
      }
      expect(each.result.Error === null, `${name}: Error null exactly when done, or when no TLS was selected`).toBe(each.result.Stage === 'done' || (each.result.Stage === 'negotiate' && each.result.SelectedProtocol === 0));
    }
  });

  it('sends the MS-RDPBCGR Connection Request, requesting PROTOCOL_SSL | PROTOCOL_HYBRID, and no cookie', () => {
    for (const [name, listener] of stubs) {
      expect(listener.connections, name).toHaveLength(1);
      const connection = listener.connections[0]!;
      expect(connection.request?.toString('hex'), name).toBe(EXPECTED_REQUEST);
      expect(connection.requestedProtocols, name).toBe(3);
    }
  });

  it.each(['ok-ssl', 'ok-hybrid'])('%s: completes TLS on the same socket and reports the served certificate, version and cipher', (name) => {
    const r = result(name);
    expect(r).toMatchObject({ Stage: 'done', Error: null, Message: null, FailureCode: null, SelectedProtocol: name === 'ok-ssl' ? 1 : 2 });
    const server = stub(name).connections[0]!.tls;
    expect(server, 'the stub completed TLS').not.toBeNull();
    expect(['Tls12', 'Tls13']).toContain(r.TlsVersion);
    expect(r.TlsVersion).toBe(dotNetProtocol(server!.protocol));
    // PowerShell 7 names the suite (NegotiatedCipherSuite), with the IANA name the server uses.
    expect(r.Cipher).toBe(server!.cipher);
    expect(r.CertificateThumbprint).toBe(certificates.valid.thumbprint);
    expect(r.CertificateThumbprint).toMatch(/^[0-9A-F]{40}$/);
    expect(output(name).notAfter?.kind).toBe('Utc');
    expect(new Date(r.CertificateNotAfter!).toISOString()).toBe(certificates.valid.notAfter.toISOString());
    expect(new Date(output(name).notAfter!.text).toISOString()).toBe(certificates.valid.notAfter.toISOString());
  });

  it('expired-certificate: TLS still completes (the check accepts any certificate) and reports the past NotAfter', () => {
    const r = result('expired-certificate');
    expect(r).toMatchObject({ Stage: 'done', Error: null, SelectedProtocol: 1 });
    expect(r.CertificateThumbprint).toBe(certificates.expired.thumbprint);
    expect(r.CertificateThumbprint).not.toBe(certificates.valid.thumbprint);
    expect(new Date(r.CertificateNotAfter!).toISOString()).toBe(certificates.expired.notAfter.toISOString());
    expect(new Date(r.CertificateNotAfter!).getTime()).toBeLessThan(Date.now());
  });

  it.each([1, 2, 3, 4, 5, 6])('negotiation-failure %i: stops at negotiate with the failure code and its name', (code) => {
    const r = result(`negotiation-failure-${String(code)}`);
    expect(r).toMatchObject({ Stage: 'negotiate', Error: 'negotiation-failure', FailureCode: code, SelectedProtocol: null, TlsVersion: null, Cipher: null, CertificateThumbprint: null, CertificateNotAfter: null, TlsMs: null });
    expect(r.Message).toContain(NEG_FAILURE_NAMES[code]);
  });

  it('reset-after-request: a TCP reset while waiting for the Connection Confirm is a reset', () => {
    expect(result('reset-after-request')).toMatchObject({ Stage: 'negotiate', Error: 'reset', SelectedProtocol: null, TlsMs: null });
  });

  it('reply-nothing, reply-truncated: a server that closes before the Connection Confirm is whole is a reset', () => {
    expect(result('reply-nothing')).toMatchObject({ Stage: 'negotiate', Error: 'reset', SelectedProtocol: null });
    expect(result('reply-truncated')).toMatchObject({ Stage: 'negotiate', Error: 'reset', SelectedProtocol: null });
    expect(result('reply-truncated').Message).toContain('11 of 19');
  });

  it('tls-alert: a TLS alert answering the ClientHello stops at tls, with no certificate', () => {
    const r = result('tls-alert');
    expect(r).toMatchObject({ Stage: 'tls', Error: 'tls', SelectedProtocol: 1, TlsVersion: null, Cipher: null, CertificateThumbprint: null, CertificateNotAfter: null });
    expect(r.Message).not.toBeNull();
    // The check did start TLS: the stub read a handshake record (0x16) from it.
    expect(stub('tls-alert').connections[0]!.tlsRecordHeader?.[0]).toBe(0x16);
  });

  it('tls-alert-after-certificate: a handshake the server fails after sending its certificate is a tls error, without that certificate', () => {
    const r = result('tls-alert-after-certificate');
    expect(r).toMatchObject({ Stage: 'tls', Error: 'tls', SelectedProtocol: 1, TlsVersion: null, Cipher: null });
    // The server got as far as asking for a client certificate, so it had sent its own.
    expect(stub('tls-alert-after-certificate').connections[0]!.error).toMatch(/certificate/i);
    // SslStream calls the validation callback only once its side of the handshake is through,
    // so a handshake that fails before that leaves no certificate to report.
    expect(r.CertificateThumbprint).toBeNull();
    expect(r.CertificateNotAfter).toBeNull();
  });

  it.each(['reset-after-client-hello', 'close-after-client-hello'])('%s: a server that hangs up on the ClientHello without an alert is a reset at tls', (name) => {
    expect(result(name)).toMatchObject({ Stage: 'tls', Error: 'reset', SelectedProtocol: 1, TlsVersion: null, CertificateThumbprint: null });
    expect(stub(name).connections[0]!.tlsRecordHeader?.[0]).toBe(0x16);
  });

  it('silent: no answer to the Connection Request within the timeout is a timeout at negotiate', () => {
    expect(result('silent')).toMatchObject({ Stage: 'negotiate', Error: 'timeout', SelectedProtocol: null, TlsMs: null });
  });

  it('silent-tls: no answer to the ClientHello within the timeout is a timeout at tls', () => {
    expect(result('silent-tls')).toMatchObject({ Stage: 'tls', Error: 'timeout', SelectedProtocol: 1, TlsVersion: null, CertificateThumbprint: null });
    expect(stub('silent-tls').connections[0]!.tlsRecordHeader?.[0]).toBe(0x16);
  });

  it('not-x224: an answer that is not TPKT is a protocol error, and the check does not go on to TLS', () => {
    const r = result('not-x224');
    expect(r).toMatchObject({ Stage: 'negotiate', Error: 'protocol', SelectedProtocol: null, FailureCode: null, TlsMs: null });
    expect(r.Message).toContain('TPKT');
  });

  it.each(['reply-selects-rdstls', 'reply-unknown-type', 'reply-bad-negotiation-length', 'reply-data-tpdu', 'reply-wrong-indicator'])(
    '%s: a malformed or unoffered Connection Confirm is a protocol error at negotiate',
    (name) => {
      const r = result(name);
      expect(r).toMatchObject({ Stage: 'negotiate', Error: 'protocol', FailureCode: null, TlsVersion: null, TlsMs: null });
      expect(stub(name).connections[0]!.tlsRecordHeader).toBeNull();
    },
  );

  it('reply-selects-rdstls: reports the protocol the server selected, though the request did not offer it', () => {
    expect(result('reply-selects-rdstls').SelectedProtocol).toBe(4);
  });

  it.each(['reply-no-negotiation', 'reply-selects-rdp'])('%s: standard RDP security is no error, with SelectedProtocol 0 and no TLS', (name) => {
    const r = result(name);
    expect(r).toMatchObject({ Stage: 'negotiate', Error: null, FailureCode: null, SelectedProtocol: 0, TlsVersion: null, CertificateThumbprint: null, TlsMs: null });
  });

  it('throws for a bad argument only: an address that is no IP address, port 0, a timeout of 0', () => {
    expect(argumentChecks).toEqual({ address: 'threw', port: 'threw', timeout: 'threw' });
  });

  it('refused: a closed port stops at connect', () => {
    const r = result('refused');
    expect(r).toMatchObject({ Stage: 'connect', Error: 'refused', SelectedProtocol: null, FailureCode: null, NegotiateMs: null, TlsMs: null });
    expect(r.Message).not.toBeNull();
  });
});
