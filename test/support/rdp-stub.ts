/**
 * A stub RDP listener for the loopback handshake tests: it speaks just enough of the RDP
 * connection sequence (MS-RDPBCGR 2.2.1.1 / 2.2.1.2) to stand in for TermService's listener
 * up to TLS. It reads the client's TPKT + X.224 Connection Request with RDP_NEG_REQ, records
 * it, answers as its mode says and, when it selected TLS or CredSSP, upgrades the same socket
 * to TLS (`new tls.TLSSocket(socket, { isServer: true })`), as the real listener does. It never
 * goes past the TLS handshake, since the check under test stops there.
 *
 * Modes:
 * - `ok-ssl` / `ok-hybrid`: RDP_NEG_RSP selecting PROTOCOL_SSL (1) / PROTOCOL_HYBRID (2), then
 *   TLS with a valid certificate (for HYBRID, CredSSP would follow TLS; the check stops first).
 * - `expired-certificate`: like `ok-ssl`, with a certificate whose NotAfter is in the past.
 * - `negotiation-failure`: RDP_NEG_FAILURE with `failureCode` (1..6), then the socket is closed.
 * - `reset-after-request`: a TCP RST once the Connection Request is read.
 * - `tls-alert`: selects PROTOCOL_SSL, reads the ClientHello record and answers it with a fatal
 *   handshake_failure alert (no certificate is sent).
 * - `tls-alert-after-certificate`: selects PROTOCOL_SSL, then a TLS 1.2 server that asks for a
 *   client certificate and requires one: it sends its own certificate, then fails the handshake
 *   with an alert when the client has none, before the client's side of the handshake is done.
 * - `reset-after-client-hello` / `close-after-client-hello`: selects PROTOCOL_SSL, reads the
 *   ClientHello record, then sends a TCP RST / closes the connection (FIN) without a word: what
 *   a listener does when it cannot build its TLS credential.
 * - `silent`: accepts TCP, reads, never answers.
 * - `silent-tls`: selects PROTOCOL_SSL, then never answers the ClientHello.
 * - `not-x224`: answers the request with an HTTP error line (not TPKT), then closes.
 * - `reply`: answers the request with `reply`, exactly (malformed or unusual Connection
 *   Confirms), then closes.
 *
 * `refusedPort()` gives a port that was listening and is closed. Everything binds to 127.0.0.1
 * on ephemeral ports; `close()` destroys the open connections and closes the listener.
 */
import { X509Certificate } from 'node:crypto';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import * as tls from 'node:tls';
import { generate } from 'selfsigned';

/** RDP_NEG_REQ requestedProtocols / RDP_NEG_RSP selectedProtocol flags (MS-RDPBCGR 2.2.1.1.1). */
export const PROTOCOL_RDP = 0;
export const PROTOCOL_SSL = 1;
export const PROTOCOL_HYBRID = 2;

export type RdpStubMode =
  | { readonly kind: 'ok-ssl' }
  | { readonly kind: 'ok-hybrid' }
  | { readonly kind: 'expired-certificate' }
  | { readonly kind: 'negotiation-failure'; readonly failureCode: number }
  | { readonly kind: 'reset-after-request' }
  | { readonly kind: 'tls-alert' }
  | { readonly kind: 'tls-alert-after-certificate' }
  | { readonly kind: 'reset-after-client-hello' }
  | { readonly kind: 'close-after-client-hello' }
  | { readonly kind: 'silent' }
  | { readonly kind: 'silent-tls' }
  | { readonly kind: 'not-x224' }
  | { readonly kind: 'reply'; readonly reply: Buffer };

export interface StubCertificate {
  readonly certPem: string;
  readonly keyPem: string;
  /** SHA-1 of the DER certificate, upper-case hex: what Windows calls the thumbprint. */
  readonly thumbprint: string;
  readonly notAfter: Date;
}

/** The certificates the stubs serve: one valid now, one that expired a day ago. */
export interface StubCertificates {
  readonly valid: StubCertificate;
  readonly expired: StubCertificate;
}

/** What one client connection sent, and how far the stub got with it. */
export interface StubConnection {
  /** The client's first TPKT packet, whole (header included); null when none came complete. */
  request: Buffer | null;
  /** RDP_NEG_REQ requestedProtocols, when the request carried one. */
  requestedProtocols: number | null;
  /** The first bytes of the TLS record the client sent after the answer (the ClientHello's header). */
  tlsRecordHeader: Buffer | null;
  /** The TLS session as the stub's side saw it, when the handshake completed. */
  tls: { readonly protocol: string | null; readonly cipher: string } | null;
  /** A socket or TLS error the stub saw on this connection (the client closing early, an alert). */
  error: string | null;
}

export interface RdpStub {
  readonly mode: RdpStubMode;
  readonly address: '127.0.0.1';
  readonly port: number;
  /** The certificate served, for the modes that reach TLS with one; else null. */
  readonly certificate: StubCertificate | null;
  /** Every connection so far, in accept order. */
  readonly connections: readonly StubConnection[];
  close(): Promise<void>;
}

async function makeCertificate(commonName: string, notBeforeDate: Date, notAfterDate: Date): Promise<StubCertificate> {
  const pems = await generate([{ name: 'commonName', value: commonName }], {
    keyType: 'ec',
    curve: 'P-256',
    algorithm: 'sha256',
    notBeforeDate,
    notAfterDate,
    extensions: [
      { name: 'basicConstraints', cA: false },
      { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
      { name: 'extKeyUsage', serverAuth: true },
    ],
  });
  const x509 = new X509Certificate(pems.cert);
  return {
    certPem: pems.cert,
    keyPem: pems.private,
    thumbprint: x509.fingerprint.replace(/:/g, '').toUpperCase(),
    notAfter: new Date(x509.validTo),
  };
}

/** Two throw-away certificates (EC P-256, so generation stays fast), CN = the machine's name as RDP's self-signed one has it. */
export async function createStubCertificates(now: Date = new Date()): Promise<StubCertificates> {
  const day = 24 * 3600 * 1000;
  const [valid, expired] = await Promise.all([
    makeCertificate('RDSTUB-VALID', new Date(now.getTime() - day), new Date(now.getTime() + 30 * day)),
    makeCertificate('RDSTUB-EXPIRED', new Date(now.getTime() - 30 * day), new Date(now.getTime() - day)),
  ]);
  return { valid, expired };
}

/** TPKT header (T.123: version 3, reserved 0, length big-endian) around an X.224 TPDU. */
function tpkt(tpdu: Buffer): Buffer {
  const header = Buffer.from([0x03, 0x00, 0x00, 0x00]);
  header.writeUInt16BE(tpdu.length + 4, 2);
  return Buffer.concat([header, tpdu]);
}

/**
 * A Connection Confirm (MS-RDPBCGR 2.2.1.2): X.224 CC (length indicator, 0xD0, DST-REF 0,
 * SRC-REF, class 0) with an RDP_NEG_RSP (type 2) or RDP_NEG_FAILURE (type 3), or none.
 */
export function connectionConfirm(negotiation: { readonly type: 2 | 3; readonly flags?: number; readonly value: number } | null): Buffer {
  const fixed = Buffer.from([0x00, 0xd0, 0x00, 0x00, 0x12, 0x34, 0x00]);
  let variable = Buffer.alloc(0);
  if (negotiation !== null) {
    variable = Buffer.alloc(8);
    variable.writeUInt8(negotiation.type, 0);
    variable.writeUInt8(negotiation.flags ?? 0, 1);
    variable.writeUInt16LE(8, 2);
    variable.writeUInt32LE(negotiation.value, 4);
  }
  const tpdu = Buffer.concat([fixed, variable]);
  tpdu.writeUInt8(tpdu.length - 1, 0);
  return tpkt(tpdu);
}

/** A fatal TLS alert record (RFC 8446 6 / RFC 5246 7.2): handshake_failure (40) by default. */
export function tlsAlert(description = 40): Buffer {
  return Buffer.from([0x15, 0x03, 0x03, 0x00, 0x02, 0x02, description]);
}

/** requestedProtocols of an RDP_NEG_REQ at the end of a Connection Request TPKT packet, or null. */
function requestedProtocolsOf(packet: Buffer): number | null {
  // TPKT (4) + LI, CR code, DST-REF (2), SRC-REF (2), class (7) come first; RDP_NEG_REQ is the last 8 bytes.
  if (packet.length < 4 + 7 + 8 || packet[5] !== 0xe0) return null;
  const negotiation = packet.subarray(packet.length - 8);
  if (negotiation[0] !== 0x01 || negotiation.readUInt16LE(2) !== 8) return null;
  return negotiation.readUInt32LE(4);
}

/**
 * Collects bytes until `complete` says how many make a whole unit (or null: not yet), then
 * calls `done` with the unit and whatever came after it. Stops listening once done.
 */
function readUnit(socket: Socket, complete: (buffered: Buffer) => number | null, done: (unit: Buffer, rest: Buffer) => void): void {
  let buffered = Buffer.alloc(0);
  const onData = (chunk: Buffer): void => {
    buffered = Buffer.concat([buffered, chunk]);
    const length = complete(buffered);
    if (length === null || buffered.length < length) return;
    socket.off('data', onData);
    socket.pause();
    done(buffered.subarray(0, length), buffered.subarray(length));
  };
  socket.on('data', onData);
}

/** A TPKT packet is complete at its header's length; a header that is not TPKT ends it at once. */
const tpktLength = (buffered: Buffer): number | null => {
  if (buffered.length < 4) return null;
  return buffered[0] === 0x03 ? Math.max(4, buffered.readUInt16BE(2)) : buffered.length;
};

/** A TLS record is complete at 5 + its header's length. */
const tlsRecordLength = (buffered: Buffer): number | null => (buffered.length < 5 ? null : 5 + buffered.readUInt16BE(3));

export interface StartRdpStubOptions {
  /** From createStubCertificates; generated on the spot when absent (and the mode needs one). */
  readonly certificates?: StubCertificates;
}

export async function startRdpStub(mode: RdpStubMode, options: StartRdpStubOptions = {}): Promise<RdpStub> {
  const needsCertificate = ['ok-ssl', 'ok-hybrid', 'expired-certificate', 'tls-alert-after-certificate'].includes(mode.kind);
  const certificates = needsCertificate ? (options.certificates ?? (await createStubCertificates())) : null;
  const certificate = certificates === null ? null : mode.kind === 'expired-certificate' ? certificates.expired : certificates.valid;
  const connections: StubConnection[] = [];
  const sockets = new Set<Socket>();

  const upgrade = (socket: Socket, record: StubConnection, rest: Buffer): void => {
    if (certificate === null) throw new Error(`mode ${mode.kind} has no certificate`);
    // tls-alert-after-certificate: TLS 1.2, where the client checks the server's certificate
    // before it answers the CertificateRequest; in TLS 1.3 the client finishes its side first
    // and would only hear the alert after its handshake had completed.
    const demandClientCertificate = mode.kind === 'tls-alert-after-certificate';
    const secure = new tls.TLSSocket(socket, {
      isServer: true,
      secureContext: tls.createSecureContext({ key: certificate.keyPem, cert: certificate.certPem, ...(demandClientCertificate ? { maxVersion: 'TLSv1.2' } : {}) }),
      requestCert: demandClientCertificate,
      rejectUnauthorized: demandClientCertificate,
    });
    sockets.add(secure);
    secure.on('secure', () => {
      const cipher = secure.getCipher();
      record.tls = { protocol: secure.getProtocol(), cipher: cipher.standardName };
    });
    secure.on('error', (error: Error) => {
      record.error = error.message;
      secure.destroy();
    });
    // The client closes after TLS; so does the stub.
    secure.on('end', () => secure.end());
    secure.on('close', () => sockets.delete(secure));
    if (rest.length > 0) socket.unshift(rest);
    socket.resume();
  };

  const answer = (socket: Socket, record: StubConnection, rest: Buffer): void => {
    switch (mode.kind) {
      case 'ok-ssl':
      case 'expired-certificate':
      case 'tls-alert-after-certificate':
        socket.write(connectionConfirm({ type: 2, value: PROTOCOL_SSL }));
        upgrade(socket, record, rest);
        return;
      case 'ok-hybrid':
        socket.write(connectionConfirm({ type: 2, value: PROTOCOL_HYBRID }));
        upgrade(socket, record, rest);
        return;
      case 'negotiation-failure':
        socket.end(connectionConfirm({ type: 3, value: mode.failureCode }));
        return;
      case 'reset-after-request':
        socket.resetAndDestroy();
        return;
      case 'tls-alert':
      case 'reset-after-client-hello':
      case 'close-after-client-hello':
      case 'silent-tls': {
        socket.write(connectionConfirm({ type: 2, value: PROTOCOL_SSL }));
        if (rest.length > 0) socket.unshift(rest);
        readUnit(socket, tlsRecordLength, (clientHello) => {
          record.tlsRecordHeader = clientHello.subarray(0, 5);
          if (mode.kind === 'tls-alert') socket.end(tlsAlert());
          else if (mode.kind === 'reset-after-client-hello') socket.resetAndDestroy();
          else if (mode.kind === 'close-after-client-hello') socket.end();
          // silent-tls: read on (so the client's writes never block) and say nothing.
          else socket.resume();
        });
        socket.resume();
        return;
      }
      case 'not-x224':
        socket.end('HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n');
        return;
      case 'reply':
        socket.end(mode.reply);
        return;
      case 'silent':
        socket.resume();
        return;
    }
  };

  const server: Server = createServer((socket) => {
    sockets.add(socket);
    const record: StubConnection = { request: null, requestedProtocols: null, tlsRecordHeader: null, tls: null, error: null };
    connections.push(record);
    socket.on('error', (error: Error) => {
      record.error ??= error.message;
    });
    socket.on('close', () => sockets.delete(socket));
    readUnit(socket, tpktLength, (request, rest) => {
      record.request = Buffer.from(request);
      record.requestedProtocols = requestedProtocolsOf(request);
      if (mode.kind === 'silent') {
        // Keep reading, answer nothing.
        socket.resume();
        return;
      }
      answer(socket, record, rest);
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: '127.0.0.1', port: 0 }, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;

  return {
    mode,
    address: '127.0.0.1',
    port,
    certificate,
    connections,
    async close(): Promise<void> {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** A loopback port that was listening a moment ago and is closed now: a connect there is refused. */
export async function refusedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: '127.0.0.1', port: 0 }, () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
