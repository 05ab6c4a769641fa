/**
 * Just enough SDDL to model the MachineKeys ACLs the probe reads and `repair-key-acl` writes:
 * parse `O:..G:..D:<flags>(ace)...`, judge the two rules of the payload contract, and apply
 * what `icacls` does. Rights are compared as access masks so that `FA` and `0x1f01ff` (which
 * Windows prints interchangeably) mean the same thing.
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

interface Dacl {
  readonly present: boolean;
  readonly nullDacl: boolean;
  readonly protected: boolean;
  readonly aces: readonly Ace[];
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

function dacl(sddl: string): Dacl {
  const match = /D:((?:P|AI|AR|NO_ACCESS_CONTROL)*)((?:\([^)]*\))*)/.exec(sddl);
  if (!match) return { present: false, nullDacl: false, protected: false, aces: [] };
  const flags = match[1] ?? '';
  return {
    present: true,
    nullDacl: flags.includes('NO_ACCESS_CONTROL'),
    protected: flags.replace('NO_ACCESS_CONTROL', '').includes('P'),
    aces: parseSddl(`D:${match[2] ?? ''}`).aces.map((a) => ({ ...a, mask: fileRights(a.mask) })),
  };
}

/** Allowed by the SID's own ACEs (inherit-only ones aside), and denied neither to it nor to Everyone. */
function grants(d: Dacl, sid: string, required: number): boolean {
  let allowed = 0;
  let denied = 0;
  for (const ace of d.aces) {
    if (ace.flags.includes('IO')) continue;
    if (ace.type === 'A' && ace.sid === sid) allowed = (allowed | ace.mask) >>> 0;
    else if (ace.type === 'D' && (ace.sid === sid || ace.sid === 'WD')) denied = (denied | ace.mask) >>> 0;
  }
  return ((allowed & required) >>> 0) === required && (denied & required) === 0;
}

/** The key-file rule: SYSTEM full control and NETWORK SERVICE at least read (a null DACL grants all). */
export function keyFileAclOk(sddl: string): boolean {
  const d = dacl(sddl);
  if (!d.present) return false;
  if (d.nullDacl) return true;
  return grants(d, 'SY', FILE_ALL_ACCESS) && grants(d, 'NS', FILE_GENERIC_READ);
}

/** The folder rule: protected DACL holding exactly the two default this-folder-only ACEs (any order, owner ignored). */
export function machineKeysFolderAclOk(sddl: string): boolean {
  const d = dacl(sddl);
  if (!d.present || d.nullDacl || !d.protected || d.aces.length !== 2) return false;
  if (d.aces.some((a) => a.type !== 'A' || a.flags !== '')) return false;
  return d.aces.some((a) => a.sid === 'WD' && a.mask === 0x12019f) && d.aces.some((a) => a.sid === 'BA' && a.mask === FILE_ALL_ACCESS);
}

/** The DACL `repair-key-acl` writes on the folder; the owner is left as it was. */
export function withDefaultFolderDacl(sddl: string): string {
  const sd = parseSddl(sddl);
  return formatSddl({ ...sd, daclFlags: 'PAI', aces: [{ type: 'A', flags: '', mask: 0x12019f, sid: 'WD' }, { type: 'A', flags: '', mask: FILE_ALL_ACCESS, sid: 'BA' }] });
}

/**
 * `icacls <file> /setowner *S-1-5-32-544` then `/grant *S-1-5-18:(F) *S-1-5-20:(R)`:
 * `/grant` merges the rights into an existing explicit allow ACE of the same SID, or adds one.
 */
export function withKeyFileGrants(sddl: string): string {
  const sd = parseSddl(sddl);
  let aces = [...sd.aces];
  const grant = (sid: string, mask: number): void => {
    const at = aces.findIndex((a) => a.type === 'A' && a.sid === sid && !a.flags.includes('ID'));
    const existing = at >= 0 ? aces[at] : undefined;
    if (existing) aces = aces.map((a, i) => (i === at ? { ...existing, mask: (existing.mask | mask) >>> 0 } : a));
    else aces = [...aces, { type: 'A', flags: '', mask, sid }];
  };
  grant('SY', FILE_ALL_ACCESS);
  grant('NS', FILE_GENERIC_READ);
  return formatSddl({ ...sd, owner: 'BA', aces });
}

/** What Windows puts on the RDP key file when it creates the key container. */
export const DEFAULT_KEY_FILE_SDDL = 'O:SYG:SYD:(A;;FA;;;SY)(A;;FA;;;BA)(A;;FR;;;NS)';
/** The shipped MachineKeys folder ACL. */
export const DEFAULT_MACHINEKEYS_FOLDER_SDDL = 'O:SYG:SYD:PAI(A;;0x12019f;;;WD)(A;;FA;;;BA)';
