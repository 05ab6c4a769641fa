/**
 * TLS material for the ARM endpoint. The Azure SDK refuses to send a bearer token over plain
 * HTTP, so the emulator serves HTTPS with a throw-away CA and a server certificate for
 * 127.0.0.1 / localhost signed by it. EC keys keep generation in the tens of milliseconds.
 */
import * as tls from 'node:tls';
import { generate } from 'selfsigned';

export interface ServerTlsMaterial {
  /** The CA certificate to trust (PEM). */
  readonly caPem: string;
  /** The server's certificate chain (leaf then CA) and key (PEM). */
  readonly certPem: string;
  readonly keyPem: string;
}

export async function createTlsMaterial(): Promise<ServerTlsMaterial> {
  const notBeforeDate = new Date(Date.now() - 60_000);
  const notAfterDate = new Date(Date.now() + 7 * 24 * 3600 * 1000);
  const ca = await generate([{ name: 'commonName', value: 'rdp-remediator emulator CA' }], {
    keyType: 'ec',
    curve: 'P-256',
    algorithm: 'sha256',
    notBeforeDate,
    notAfterDate,
    extensions: [
      { name: 'basicConstraints', cA: true, critical: true },
      { name: 'keyUsage', keyCertSign: true, cRLSign: true, digitalSignature: true, critical: true },
    ],
  });
  const server = await generate([{ name: 'commonName', value: 'localhost' }], {
    keyType: 'ec',
    curve: 'P-256',
    algorithm: 'sha256',
    notBeforeDate,
    notAfterDate,
    ca: { key: ca.private, cert: ca.cert },
    extensions: [
      { name: 'basicConstraints', cA: false },
      { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
      { name: 'extKeyUsage', serverAuth: true },
      {
        name: 'subjectAltName',
        altNames: [
          { type: 2, value: 'localhost' },
          { type: 7, ip: '127.0.0.1' },
          { type: 7, ip: '::1' },
        ],
      },
    ],
  });
  return { caPem: ca.cert, certPem: `${server.cert.trim()}\n${ca.cert.trim()}\n`, keyPem: server.private };
}

/**
 * Adds the emulator's CA to this process's default trust store, so that every TLS client that
 * doesn't pass its own `ca` (the Azure SDK's https agents included) accepts the emulator.
 * Needs Node 22.19+ (`tls.setDefaultCACertificates`). Child processes use NODE_EXTRA_CA_CERTS
 * (see `Emulator.env()`) instead, since that variable is only read at process start.
 */
export function trustEmulatorCa(caPem: string): void {
  if (typeof tls.setDefaultCACertificates !== 'function') {
    throw new Error(`tls.setDefaultCACertificates needs Node 22.19 or later (running ${process.version}); pass tlsOptions: { ca } to the SDK client instead`);
  }
  const current = tls.getCACertificates('default');
  const wanted = caPem.trim();
  if (current.some((pem) => pem.trim() === wanted)) return;
  tls.setDefaultCACertificates([...current, caPem]);
}
