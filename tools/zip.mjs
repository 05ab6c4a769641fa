// A small, reproducible ZIP writer on Node's own zlib (crc32 and raw deflate, Node >= 22).
// What Azure Functions zip deploy needs and no more: regular files only (directories are
// implied by the names), deflate or stored, UTF-8 names with forward slashes, unix mode bits,
// one fixed timestamp. No ZIP64: the limits it would lift are asserted instead.
import { closeSync, openSync, readFileSync, writeSync } from 'node:fs';
import { crc32, deflateRawSync } from 'node:zlib';

const LOCAL_FILE_HEADER = 0x04034b50;
const CENTRAL_DIRECTORY_HEADER = 0x02014b50;
const END_OF_CENTRAL_DIRECTORY = 0x06054b50;
const VERSION_NEEDED = 20; // 2.0: deflate
const VERSION_MADE_BY = (3 << 8) | 20; // host 3 = unix, so external attributes carry st_mode
const FLAG_UTF8 = 0x0800;
const STORED = 0;
const DEFLATED = 8;
const S_IFREG = 0o100000;
const MAX_ENTRIES = 0xffff;
const MAX_32 = 0xffffffff;

/** 1980-01-01 00:00:00, the earliest DOS date: every entry gets it, so equal input gives an equal zip. */
export const FIXED_DOS_DATE = (0 << 9) | (1 << 5) | 1;
export const FIXED_DOS_TIME = 0;

/**
 * @typedef {object} ZipEntry
 * @property {string} name  path inside the archive: relative, forward slashes, no `.` or `..` segments
 * @property {Buffer | Uint8Array | string} [data]  the content (strings are written as UTF-8)
 * @property {string} [file]  or a file to read the content from
 * @property {number} [mode]  unix permission bits; 0o644 unless given (anything executable becomes 0o755)
 */

/** Throws unless `name` is a safe relative archive path. */
export function checkEntryName(name) {
  if (typeof name !== 'string' || name === '') throw new Error('zip: entry name must be a non-empty string');
  if (name.includes('\\')) throw new Error(`zip: entry name uses a backslash: ${name}`);
  if (name.startsWith('/') || /^[A-Za-z]:/.test(name)) throw new Error(`zip: entry name is absolute: ${name}`);
  if (name.includes('\0')) throw new Error(`zip: entry name contains NUL: ${JSON.stringify(name)}`);
  for (const segment of name.split('/')) {
    if (segment === '' || segment === '.' || segment === '..') throw new Error(`zip: entry name has an empty, . or .. segment: ${name}`);
  }
  if (Buffer.byteLength(name, 'utf8') > 0xffff) throw new Error(`zip: entry name too long: ${name.slice(0, 80)}...`);
}

function normalMode(mode) {
  return (mode ?? 0o644) & 0o111 ? 0o755 : 0o644;
}

function contentOf(entry) {
  if (entry.data !== undefined) return typeof entry.data === 'string' ? Buffer.from(entry.data, 'utf8') : Buffer.from(entry.data);
  if (entry.file !== undefined) return readFileSync(entry.file);
  throw new Error(`zip: entry ${entry.name} has neither data nor file`);
}

/**
 * Yields the archive as a sequence of buffers: per entry a local file header and the data,
 * then the central directory and the end record. Entries are written in the order given;
 * names must be unique.
 * @param {Iterable<ZipEntry>} entries
 * @returns {Generator<Buffer>}
 */
export function* zipChunks(entries) {
  const central = [];
  const seen = new Set();
  let offset = 0;
  for (const entry of entries) {
    checkEntryName(entry.name);
    if (seen.has(entry.name)) throw new Error(`zip: duplicate entry ${entry.name}`);
    seen.add(entry.name);
    if (seen.size > MAX_ENTRIES) throw new Error(`zip: more than ${MAX_ENTRIES} entries needs ZIP64, which this writer does not do`);

    const raw = contentOf(entry);
    const deflated = deflateRawSync(raw, { level: 9 });
    const method = deflated.length < raw.length ? DEFLATED : STORED;
    const body = method === DEFLATED ? deflated : raw;
    const crc = crc32(raw);
    const name = Buffer.from(entry.name, 'utf8');
    if (raw.length > MAX_32 || body.length > MAX_32) throw new Error(`zip: ${entry.name} is 4 GiB or more, which needs ZIP64`);
    if (offset > MAX_32) throw new Error('zip: archive passes 4 GiB, which needs ZIP64');

    const local = Buffer.alloc(30);
    local.writeUInt32LE(LOCAL_FILE_HEADER, 0);
    local.writeUInt16LE(VERSION_NEEDED, 4);
    local.writeUInt16LE(FLAG_UTF8, 6);
    local.writeUInt16LE(method, 8);
    local.writeUInt16LE(FIXED_DOS_TIME, 10);
    local.writeUInt16LE(FIXED_DOS_DATE, 12);
    local.writeUInt32LE(crc, 14);
    local.writeUInt32LE(body.length, 18);
    local.writeUInt32LE(raw.length, 22);
    local.writeUInt16LE(name.length, 26);
    local.writeUInt16LE(0, 28); // extra field length

    const header = Buffer.alloc(46);
    header.writeUInt32LE(CENTRAL_DIRECTORY_HEADER, 0);
    header.writeUInt16LE(VERSION_MADE_BY, 4);
    header.writeUInt16LE(VERSION_NEEDED, 6);
    header.writeUInt16LE(FLAG_UTF8, 8);
    header.writeUInt16LE(method, 10);
    header.writeUInt16LE(FIXED_DOS_TIME, 12);
    header.writeUInt16LE(FIXED_DOS_DATE, 14);
    header.writeUInt32LE(crc, 16);
    header.writeUInt32LE(body.length, 20);
    header.writeUInt32LE(raw.length, 24);
    header.writeUInt16LE(name.length, 28);
    header.writeUInt16LE(0, 30); // extra field length
    header.writeUInt16LE(0, 32); // comment length
    header.writeUInt16LE(0, 34); // disk number start
    header.writeUInt16LE(0, 36); // internal attributes
    header.writeUInt32LE(((S_IFREG | normalMode(entry.mode)) << 16) >>> 0, 38);
    header.writeUInt32LE(offset, 42);
    central.push(header, name);

    yield local;
    yield name;
    yield body;
    offset += local.length + name.length + body.length;
  }

  const directoryStart = offset;
  let directorySize = 0;
  for (const chunk of central) {
    directorySize += chunk.length;
    yield chunk;
  }
  if (directoryStart > MAX_32 || directoryStart + directorySize > MAX_32) throw new Error('zip: archive passes 4 GiB, which needs ZIP64');

  const end = Buffer.alloc(22);
  end.writeUInt32LE(END_OF_CENTRAL_DIRECTORY, 0);
  end.writeUInt16LE(0, 4); // this disk
  end.writeUInt16LE(0, 6); // disk with the central directory
  end.writeUInt16LE(seen.size, 8);
  end.writeUInt16LE(seen.size, 10);
  end.writeUInt32LE(directorySize, 12);
  end.writeUInt32LE(directoryStart, 16);
  end.writeUInt16LE(0, 20); // comment length
  yield end;
}

/**
 * The whole archive in memory.
 * @param {Iterable<ZipEntry>} entries
 * @returns {Buffer}
 */
export function zipToBuffer(entries) {
  return Buffer.concat([...zipChunks(entries)]);
}

/**
 * Writes the archive to `path`, one entry at a time.
 * @param {string} path
 * @param {Iterable<ZipEntry>} entries
 * @returns {{ entries: number, bytes: number }}
 */
export function writeZip(path, entries) {
  const list = [...entries];
  const fd = openSync(path, 'w');
  let bytes = 0;
  try {
    for (const chunk of zipChunks(list)) {
      let written = 0;
      while (written < chunk.length) written += writeSync(fd, chunk, written, chunk.length - written);
      bytes += chunk.length;
    }
  } finally {
    closeSync(fd);
  }
  return { entries: list.length, bytes };
}
