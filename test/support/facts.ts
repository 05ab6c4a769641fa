/** Probe facts for unit tests: a healthy VM, and small edits that break it one way at a time. */
import type { HandshakeAttempt, ProbeFacts } from '../../src/contract/facts.js';

export const NOW = new Date('2026-11-21T12:00:00Z');
export const FUTURE = '2027-05-01T00:00:00Z';
export const PAST = '2026-10-01T00:00:00Z';
const THUMB_A = 'A'.repeat(40);
const THUMB_B = 'B'.repeat(40);

type DeepPartial<T> = { [K in keyof T]?: T[K] extends object ? (T[K] extends unknown[] ? T[K] : DeepPartial<T[K]>) : T[K] };

export function healthyFacts(): ProbeFacts {
  return {
    os: { caption: 'Microsoft Windows Server 2022 Datacenter', build: '20348' },
    cert: {
      storeName: 'Remote Desktop',
      store: [{ thumb: THUMB_A, notAfter: FUTURE, hasKey: true, selfSigned: true, template: false }],
      binding: { hash: null, type: 1, cert: null },
    },
    keys: {
      file: 'present',
      fileSddl: 'O:BAG:SYD:(A;;FA;;;SY)(A;;FR;;;NS)',
      fileOk: true,
      folderSddl: 'O:SYG:SYD:PAI(A;;0x12019f;;;WD)(A;;FA;;;BA)',
      folderOk: true,
    },
    rdp: { securityLayer: 2, userAuthentication: 1, minEncryptionLevel: 2, portNumber: 3389, listening: true, lanAdapter: 0, fDenyTSConnections: 0 },
    policy: { securityLayer: false, userAuthentication: false, minEncryptionLevel: false, certTemplate: false },
    tls12Server: 'os-default',
    services: { TermService: 'Running', SessionEnv: 'Running', UmRdpService: 'Running' },
    domain: { joined: false, secureChannel: 'n/a' },
    rdcb: false,
    handshake: { attempts: [okHandshake()] },
    events: { hours: 72, items: [] },
    firewall: {
      readable: true,
      activeProfiles: ['Public'],
      enabledProfiles: ['Public'],
      rdpRules: [
        { name: 'RemoteDesktop-UserMode-In-TCP', enabled: true, profiles: ['Domain', 'Private', 'Public'], protocol: 'TCP', localPorts: ['3389'], store: 'local' },
        { name: 'RemoteDesktop-UserMode-In-UDP', enabled: true, profiles: ['Domain', 'Private', 'Public'], protocol: 'UDP', localPorts: ['3389'], store: 'local' },
      ],
      portAdmitted: true,
      gpo: false,
    },
  };
}

/** A loopback handshake that completed TLS with the Remote Desktop store's certificate (THUMB_A). */
export function okHandshake(): HandshakeAttempt {
  return {
    address: '127.0.0.1',
    port: 3389,
    stage: 'done',
    error: null,
    failureCode: null,
    selectedProtocol: 2,
    tlsVersion: 'Tls12',
    cipher: 'TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384',
    cert: { thumb: THUMB_A, notAfter: FUTURE },
    servedCert: 'remote-desktop',
    ms: { connect: 1, negotiate: 2, tls: 6 },
    detail: null,
  };
}

/** A loopback handshake that was reset during TLS (the 0x904 shape: the key cannot be opened). */
export function resetHandshake(): HandshakeAttempt {
  return { ...okHandshake(), stage: 'tls', error: 'reset', tlsVersion: null, cipher: null, cert: null, servedCert: null, ms: { connect: 1, negotiate: 2, tls: 3 }, detail: 'Unable to read data from the transport connection' };
}

function merge<T>(base: T, patch: DeepPartial<T>): T {
  const out = { ...base } as Record<string, unknown>;
  for (const [k, v] of Object.entries(patch as Record<string, unknown>)) {
    const current = out[k];
    out[k] = v !== null && typeof v === 'object' && !Array.isArray(v) && current !== null && typeof current === 'object' ? merge(current, v as never) : v;
  }
  return out as T;
}

export function factsWith(patch: DeepPartial<ProbeFacts>): ProbeFacts {
  return merge(healthyFacts(), patch);
}

/** One builder per root cause; names match the emulator's scenarios. */
export const ROOT_CAUSES = {
  'expired-self-signed-cert': () => factsWith({ cert: { store: [{ thumb: THUMB_A, notAfter: PAST, hasKey: true, selfSigned: true, template: false }] } }),
  'missing-cert': () => factsWith({ cert: { store: [] } }),
  'stale-binding': () => factsWith({ cert: { binding: { hash: THUMB_B, type: 3, cert: null } } }),
  'key-file-acl': () => factsWith({ keys: { fileSddl: 'O:BAG:SYD:(A;;FA;;;SY)', fileOk: false } }),
  'machinekeys-folder-acl': () => factsWith({ keys: { folderSddl: 'O:SYG:SYD:PAI(A;;FA;;;BA)', folderOk: false } }),
  'key-file-missing': () =>
    factsWith({ keys: { file: 'missing', fileSddl: null, fileOk: false }, cert: { store: [{ thumb: THUMB_A, notAfter: FUTURE, hasKey: false, selfSigned: true, template: false }] } }),
  'tls12-disabled': () => factsWith({ tls12Server: 'disabled' }),
  'termservice-stopped': () => factsWith({ services: { TermService: 'Stopped', UmRdpService: 'Stopped' }, rdp: { listening: false } }),
  'nla-dc-unreachable': () => factsWith({ domain: { joined: true, secureChannel: 'broken' } }),
} as const;

export const CA_BOUND = () =>
  factsWith({
    cert: { binding: { hash: THUMB_B, type: 3, cert: { thumb: THUMB_B, notAfter: FUTURE, hasKey: true, selfSigned: false, template: false } } },
    // The listener serves the bound certificate.
    handshake: { attempts: [{ ...okHandshake(), cert: { thumb: THUMB_B, notAfter: FUTURE }, servedCert: 'binding' }] },
  });

/** The listener on standard RDP security only (SecurityLayer 0): it refuses TLS with SSL_NOT_ALLOWED_BY_SERVER. */
export function rdpSecurityHandshake(): HandshakeAttempt {
  return { ...okHandshake(), stage: 'negotiate', error: 'negotiation-failure', failureCode: 2, selectedProtocol: null, tlsVersion: null, cipher: null, cert: null, servedCert: null, ms: { connect: 1, negotiate: 2, tls: null }, detail: null };
}

/** No usable certificate: the listener answers SSL_CERT_NOT_ON_SERVER. */
export function certNotOnServerHandshake(): HandshakeAttempt {
  return { ...rdpSecurityHandshake(), failureCode: 3 };
}

/** A VM relaxed with relax-security-layer: SecurityLayer 0, NLA off, reachable over standard RDP security. */
export const RELAXED = (patch: DeepPartial<ProbeFacts> = {}) =>
  merge(factsWith({ rdp: { securityLayer: 0, userAuthentication: 0 }, handshake: { attempts: [rdpSecurityHandshake()] } }), patch);

/** A VM whose expired template certificate Group Policy renews (never the tool): TLS cannot work. */
export const TEMPLATE_CERT_EXPIRED = (patch: DeepPartial<ProbeFacts> = {}) =>
  merge(
    factsWith({
      cert: { store: [{ thumb: THUMB_A, notAfter: PAST, hasKey: true, selfSigned: true, template: true }] },
      policy: { certTemplate: true },
      handshake: { attempts: [certNotOnServerHandshake()] },
    }),
    patch,
  );
