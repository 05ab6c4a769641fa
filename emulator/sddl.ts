/**
 * Just enough SDDL for the RDP acceptance oracle: parse `O:..G:..D:<flags>(ace)...` and run
 * Windows' access check for a service account's token over a file's DACL. Rights are compared
 * as access masks so that `FA` and `0x1f01ff` (which Windows prints interchangeably) mean the
 * same thing. The payload's own ACL rules live in scripts/lib/Facts.ps1 only.
 */

export interface Ace {
  /** `A` allow, `D` deny (others are kept verbatim but never grant anything here). */
  readonly type: string;
  /** Inheritance flags as written (`OICIID`, ``...). */
  readonly flags: string;
  readonly mask: number;
  /** SID alias (`SY`, `NS`, `BA`, `WD`) or a full `S-1-...` string. */
  readonly sid: string;
}

export interface SecurityDescriptor {
  readonly owner: string | null;
  readonly group: string | null;
  /** DACL control flags as written after `D:` (`P`, `PAI`, `AI`, ``). */
  readonly daclFlags: string;
  readonly aces: readonly Ace[];
}

const FILE_ALL_ACCESS = 0x1f01ff;
const FILE_GENERIC_READ = 0x120089;
const GENERIC_ALL = 0x10000000;
const GENERIC_READ = 0x80000000;

/** Two-letter rights of SDDL, as access masks (file-object meaning). */
const RIGHTS: Readonly<Record<string, number>> = {
  GA: GENERIC_ALL,
  GR: GENERIC_READ,
  GW: 0x40000000,
  GX: 0x20000000,
  FA: FILE_ALL_ACCESS,
  FR: FILE_GENERIC_READ,
  FW: 0x120116,
  FX: 0x1200a0,
  RC: 0x20000,
  SD: 0x10000,
  WD: 0x40000,
  WO: 0x80000,
  CC: 0x1,
  DC: 0x2,
  LC: 0x4,
  SW: 0x8,
  RP: 0x10,
  WP: 0x20,
  DT: 0x40,
  LO: 0x80,
  CR: 0x100,
};

/** Well-known SIDs the payload names by number; SDDL prints them as aliases. */
const SID_ALIASES: Readonly<Record<string, string>> = {
  'S-1-5-18': 'SY',
  'S-1-5-20': 'NS',
  'S-1-5-32-544': 'BA',
  'S-1-1-0': 'WD',
  'S-1-5-32-545': 'BU',
  'S-1-5-11': 'AU',
};

function normaliseSid(sid: string): string {
  const upper = sid.toUpperCase();
  return SID_ALIASES[upper] ?? upper;
}

function parseMask(rights: string): number {
  if (/^0x[0-9a-f]+$/i.test(rights)) return Number.parseInt(rights.slice(2), 16) >>> 0;
  if (/^[0-9]+$/.test(rights)) return Number(rights) >>> 0;
  let mask = 0;
  // Unknown two-letter codes grant nothing, as in the payload's evaluation.
  for (let i = 0; i + 1 < rights.length; i += 2) mask = (mask | (RIGHTS[rights.slice(i, i + 2).toUpperCase()] ?? 0)) >>> 0;
  return mask;
}

function formatMask(mask: number): string {
  if (mask === FILE_ALL_ACCESS) return 'FA';
  if (mask === FILE_GENERIC_READ) return 'FR';
  return `0x${mask.toString(16)}`;
}

export function parseSddl(sddl: string): SecurityDescriptor {
  const owner = /O:([A-Z]{2}|S-[0-9-]+)/i.exec(sddl)?.[1] ?? null;
  const group = /G:([A-Z]{2}|S-[0-9-]+)/i.exec(sddl)?.[1] ?? null;
  const daclStart = sddl.indexOf('D:');
  if (daclStart < 0) return { owner, group, daclFlags: '', aces: [] };
  const saclStart = sddl.indexOf('S:', daclStart);
  const dacl = sddl.slice(daclStart + 2, saclStart < 0 ? undefined : saclStart);
  const firstAce = dacl.indexOf('(');
  const daclFlags = firstAce < 0 ? dacl : dacl.slice(0, firstAce);
  const aces: Ace[] = [];
  for (const match of dacl.matchAll(/\(([^)]*)\)/g)) {
    const parts = (match[1] ?? '').split(';');
    if (parts.length < 6) throw new Error(`malformed ACE "${match[0]}"`);
    aces.push({
      type: (parts[0] ?? '').toUpperCase(),
      flags: (parts[1] ?? '').toUpperCase(),
      mask: parseMask(parts[2] ?? ''),
      sid: normaliseSid(parts[5] ?? ''),
    });
  }
  return { owner: owner === null ? null : normaliseSid(owner), group: group === null ? null : normaliseSid(group), daclFlags: daclFlags.toUpperCase(), aces };
}

export function formatSddl(sd: SecurityDescriptor): string {
  const owner = sd.owner === null ? '' : `O:${sd.owner}`;
  const group = sd.group === null ? '' : `G:${sd.group}`;
  const aces = sd.aces.map((a) => `(${a.type};${a.flags};${formatMask(a.mask)};;;${a.sid})`).join('');
  return `${owner}${group}D:${sd.daclFlags}${aces}`;
}

/** Generic bits mean the file rights they map to (as Windows applies them to a file). */
function fileRights(mask: number): number {
  let m = mask >>> 0;
  const map: readonly (readonly [number, number])[] = [
    [GENERIC_ALL, FILE_ALL_ACCESS],
    [0x20000000, 0x1200a0],
    [0x40000000, 0x120116],
    [GENERIC_READ, FILE_GENERIC_READ],
  ];
  for (const [generic, specific] of map) if ((m & generic) !== 0) m = ((m & ~generic) | specific) >>> 0;
  return m;
}

/** The groups in a service account's token besides itself: Everyone, Authenticated Users, Users. */
const SERVICE_TOKEN_GROUPS = ['WD', 'AU', 'BU'];

/**
 * Windows' access check, simplified to what matters here: ACEs in order (explicit before
 * inherited, as Windows keeps them), deny ACEs for any SID of the token take their bits away
 * unless already granted, inherit-only ACEs do not apply, and a missing DACL section denies.
 */
function accessGranted(sddl: string, account: string, required: number): boolean {
  const daclAt = sddl.indexOf('D:');
  if (daclAt < 0) return false;
  if (/^D:[A-Z]*NO_ACCESS_CONTROL/.test(sddl.slice(daclAt))) return true;
  const sids = new Set([account, ...SERVICE_TOKEN_GROUPS]);
  let granted = 0;
  let denied = 0;
  for (const ace of parseSddl(sddl).aces) {
    if (ace.flags.includes('IO') || !sids.has(ace.sid)) continue;
    const mask = fileRights(ace.mask);
    if (ace.type === 'A') granted = (granted | (mask & ~denied)) >>> 0;
    else if (ace.type === 'D') denied = (denied | (mask & ~granted)) >>> 0;
  }
  return ((granted & required) >>> 0) === required;
}

/** Whether the account (e.g. NS, TermService's NETWORK SERVICE) can open the file for reading. */
export function keyFileReadableBy(sddl: string, account: string): boolean {
  return accessGranted(sddl, account, FILE_GENERIC_READ);
}

/** Whether the account can list the folder, which the key store does to find a container. */
export function folderListableBy(sddl: string, account: string): boolean {
  return accessGranted(sddl, account, 0x1);
}
