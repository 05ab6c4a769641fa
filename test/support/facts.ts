/** Probe facts for unit tests: a healthy VM, and small edits that break it one way at a time. */
import type { ProbeFacts } from '../../src/contract/facts.js';

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
    rdp: { securityLayer: 2, userAuthentication: 1, minEncryptionLevel: 2, portNumber: 3389, listening: true, fDenyTSConnections: 0 },
    policy: { securityLayer: false, userAuthentication: false, minEncryptionLevel: false, certTemplate: false },
    tls12Server: 'os-default',
    services: { TermService: 'Running', SessionEnv: 'Running', UmRdpService: 'Running' },
    domain: { joined: false, secureChannel: 'n/a' },
    rdcb: false,
  };
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
  factsWith({ cert: { binding: { hash: THUMB_B, type: 3, cert: { thumb: THUMB_B, notAfter: FUTURE, hasKey: true, selfSigned: false, template: false } } } });
