/**
 * `npm run package`: the deployable zip holds what the Functions host runs and nothing else,
 * and its entries read back intact. The zip is read by a reader written here, not by the
 * writer's own code, so a bug would have to be made twice to pass.
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { crc32, inflateRawSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

interface ZipEntryInput {
  name: string;
  data?: Buffer | Uint8Array | string;
  file?: string;
  mode?: number;
}
interface ZipModule {
  zipToBuffer: (entries: Iterable<ZipEntryInput>) => Buffer;
  writeZip: (path: string, entries: Iterable<ZipEntryInput>) => { entries: number; bytes: number };
}

async function zipModule(): Promise<ZipModule> {
  // tools/ is untyped JavaScript; the interface above is what the test relies on.
  return (await import(pathToFileURL(join(root, 'tools', 'zip.mjs')).href)) as ZipModule;
}

interface ReadEntry {
  name: string;
  data: Buffer;
  method: number;
  flags: number;
  madeBy: number;
  mode: number;
  dosDate: number;
  dosTime: number;
}

/** Reads a (non-ZIP64, single-disk) zip: end record → central directory → local headers → data, checking sizes and CRCs. */
function readZip(zip: Buffer): ReadEntry[] {
  let end = -1;
  for (let i = zip.length - 22; i >= Math.max(0, zip.length - 22 - 0xffff); i--) {
    if (zip.readUInt32LE(i) === 0x06054b50) {
      end = i;
      break;
    }
  }
  if (end < 0) throw new Error('no end of central directory record');
  const count = zip.readUInt16LE(end + 10);
  expect(zip.readUInt16LE(end + 8)).toBe(count);
  const directorySize = zip.readUInt32LE(end + 12);
  const directoryStart = zip.readUInt32LE(end + 16);
  expect(directoryStart + directorySize).toBe(end);

  const entries: ReadEntry[] = [];
  let at = directoryStart;
  for (let n = 0; n < count; n++) {
    if (zip.readUInt32LE(at) !== 0x02014b50) throw new Error(`central directory header ${n} has a bad signature`);
    const madeBy = zip.readUInt16LE(at + 4);
    const flags = zip.readUInt16LE(at + 8);
    const method = zip.readUInt16LE(at + 10);
    const dosTime = zip.readUInt16LE(at + 12);
    const dosDate = zip.readUInt16LE(at + 14);
    const crc = zip.readUInt32LE(at + 16);
    const compressedSize = zip.readUInt32LE(at + 20);
    const size = zip.readUInt32LE(at + 24);
    const nameLength = zip.readUInt16LE(at + 28);
    const extraLength = zip.readUInt16LE(at + 30);
    const commentLength = zip.readUInt16LE(at + 32);
    const external = zip.readUInt32LE(at + 38);
    const localOffset = zip.readUInt32LE(at + 42);
    const name = zip.toString('utf8', at + 46, at + 46 + nameLength);
    at += 46 + nameLength + extraLength + commentLength;

    if (zip.readUInt32LE(localOffset) !== 0x04034b50) throw new Error(`${name}: local header has a bad signature`);
    const localNameLength = zip.readUInt16LE(localOffset + 26);
    const localExtraLength = zip.readUInt16LE(localOffset + 28);
    expect(zip.toString('utf8', localOffset + 30, localOffset + 30 + localNameLength)).toBe(name);
    expect(zip.readUInt16LE(localOffset + 8)).toBe(method);
    expect(zip.readUInt32LE(localOffset + 14)).toBe(crc);
    expect(zip.readUInt32LE(localOffset + 18)).toBe(compressedSize);
    expect(zip.readUInt32LE(localOffset + 22)).toBe(size);
    const start = localOffset + 30 + localNameLength + localExtraLength;
    const body = zip.subarray(start, start + compressedSize);
    let data: Buffer;
    if (method === 8) data = inflateRawSync(body);
    else if (method === 0) data = Buffer.from(body);
    else throw new Error(`${name}: compression method ${method}`);
    if (data.length !== size) throw new Error(`${name}: ${data.length} bytes, the directory says ${size}`);
    if (crc32(data) !== crc) throw new Error(`${name}: CRC mismatch`);
    entries.push({ name, data, method, flags, madeBy, mode: external >>> 16, dosDate, dosTime });
  }
  expect(at).toBe(end);
  return entries;
}

describe('tools/zip.mjs', () => {
  it('writes entries that read back byte for byte, with UTF-8 names, unix modes and a fixed date', async () => {
    const { zipToBuffer } = await zipModule();
    const incompressible = randomBytes(512);
    const input: ZipEntryInput[] = [
      { name: 'empty.txt', data: '' },
      { name: 'bin/run.sh', data: '#!/bin/sh\necho ok\n', mode: 0o100775 },
      { name: 'dir/ünïcödé ✓.txt', data: 'x'.repeat(10_000) },
      { name: 'noise.bin', data: incompressible },
    ];
    const zip = zipToBuffer(input);
    const entries = readZip(zip);
    expect(entries.map((e) => e.name)).toEqual(input.map((e) => e.name));
    for (const [i, entry] of entries.entries()) {
      const expected = input[i]!.data!;
      expect(entry.data.equals(typeof expected === 'string' ? Buffer.from(expected) : Buffer.from(expected))).toBe(true);
      expect(entry.flags & 0x0800).toBe(0x0800);
      expect(entry.madeBy >> 8).toBe(3);
      expect(entry.dosDate).toBe(0x21); // 1980-01-01
      expect(entry.dosTime).toBe(0);
    }
    const modes = Object.fromEntries(entries.map((e) => [e.name, e.mode]));
    expect(modes['bin/run.sh']).toBe(0o100755);
    expect(modes['empty.txt']).toBe(0o100644);
    expect(entries.find((e) => e.name === 'dir/ünïcödé ✓.txt')!.method).toBe(8);
    expect(entries.find((e) => e.name === 'noise.bin')!.method).toBe(0); // deflate would not shrink it
    expect(zipToBuffer(input).equals(zip)).toBe(true);
  });

  it('writes to a file from file contents', async () => {
    const { writeZip } = await zipModule();
    const dir = mkdtempSync(join(tmpdir(), 'zip-test-'));
    try {
      writeFileSync(join(dir, 'a.txt'), 'alpha');
      const result = writeZip(join(dir, 'out.zip'), [{ name: 'nested/a.txt', file: join(dir, 'a.txt') }]);
      const zip = readFileSync(join(dir, 'out.zip'));
      expect(result).toEqual({ entries: 1, bytes: zip.length });
      expect(readZip(zip).map((e) => [e.name, e.data.toString()])).toEqual([['nested/a.txt', 'alpha']]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses unsafe or duplicate names', async () => {
    const { zipToBuffer } = await zipModule();
    for (const name of ['', '/etc/passwd', 'C:/x', '../up', 'a/../b', 'a//b', 'dir/', 'a\\b']) {
      expect(() => zipToBuffer([{ name, data: 'x' }]), name).toThrow(/zip:/);
    }
    expect(() => zipToBuffer([{ name: 'a', data: '1' }, { name: 'a', data: '2' }])).toThrow(/duplicate/);
  });
});

describe('npm run package', () => {
  let work: string;
  let entries: ReadEntry[];
  let names: string[];

  beforeAll(() => {
    work = mkdtempSync(join(tmpdir(), 'rdp-package-'));
    // A stage and zip of its own, so the test neither races nor overwrites `npm run package`.
    const result = spawnSync(process.execPath, [join(root, 'tools', 'package.mjs'), '--out', join(work, 'app.zip'), '--stage', join(work, 'stage')], {
      cwd: root,
      encoding: 'utf8',
      timeout: 110_000,
    });
    if (result.status !== 0) throw new Error(`tools/package.mjs exited with ${result.status ?? result.signal}:\n${result.stdout}\n${result.stderr}`);
    entries = readZip(readFileSync(join(work, 'app.zip')));
    names = entries.map((e) => e.name);
  }, 120_000);

  afterAll(() => {
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('holds the host files, the compiled functions, the payloads, the event query and the production dependencies', () => {
    for (const name of [
      'host.json',
      'package.json',
      'package-lock.json',
      'dist/functions/remediations.js',
      'dist/functions/alerts.js',
      'dist/functions/remediation-worker.js',
      'dist/functions/relaxation-sweep.js',
      'dist/src/util/package-root.js',
      'scripts/probe.ps1',
      'scripts/fix.ps1',
      'scripts/lib/Facts.ps1',
      'scripts/lib/Access.Handshake.ps1',
      'infra/queries/rdp-events.kql',
      'node_modules/@azure/functions/package.json',
      'node_modules/@azure/arm-compute/package.json',
    ]) {
      expect(names, name).toContain(name);
    }
    const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { name: string; dependencies: Record<string, string> };
    for (const dependency of Object.keys(pkg.dependencies)) expect(names).toContain(`node_modules/${dependency}/package.json`);
    const packaged = JSON.parse(entries.find((e) => e.name === 'package.json')!.data.toString('utf8')) as { name: string; main: string };
    expect(packaged).toMatchObject({ name: 'rdp-remediator', main: 'dist/functions/*.js' });
  });

  it('holds nothing that does not run: no tests, sources, maps, docs, other entry points or dev dependencies', () => {
    const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { devDependencies: Record<string, string> };
    const lock = JSON.parse(readFileSync(join(root, 'package-lock.json'), 'utf8')) as { packages: Record<string, { dev?: boolean }> };
    const devOnly = Object.entries(lock.packages).filter(([path, info]) => path !== '' && info.dev === true).map(([path]) => `${path}/`);
    const devDependencies = ['vitest', 'azurite', 'typescript', 'eslint', 'web-tree-sitter', 'selfsigned', ...Object.keys(pkg.devDependencies)];
    const forbidden = [
      'dist/emulator/',
      'dist/demo/',
      'dist/bench/',
      'dist/test/',
      'test/',
      'src/',
      'functions/',
      'emulator/',
      'scripts/docs/',
      'infra/modules/',
      'node_modules/.bin/',
      ...devDependencies.map((d) => `node_modules/${d}/`),
      ...devOnly,
    ];
    for (const name of names) {
      expect(forbidden.find((prefix) => name.startsWith(prefix)), name).toBeUndefined();
      expect(name).not.toMatch(/\.(?:map|ts|mts|cts)$/);
    }
    const topLevel = new Set(names.map((n) => n.split('/')[0]));
    expect([...topLevel].sort()).toEqual(['dist', 'host.json', 'infra', 'node_modules', 'package-lock.json', 'package.json', 'scripts']);
    expect(names.filter((n) => n.startsWith('dist/')).every((n) => /^dist\/(?:functions|src)\/.+\.js$/.test(n))).toBe(true);
    expect(names.filter((n) => n.startsWith('infra/'))).toEqual(['infra/queries/rdp-events.kql']);
    expect(names.filter((n) => n.startsWith('scripts/')).every((n) => /^scripts\/(?:lib\/)?[^/]+\.ps1$/.test(n))).toBe(true);
  });

  it('is sorted, dated 1980-01-01, and its entries verify (CRCs checked on read)', () => {
    expect(names).toEqual([...names].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)));
    expect(new Set(names).size).toBe(names.length);
    expect(entries.every((e) => e.dosDate === 0x21 && e.dosTime === 0)).toBe(true);
  });

  it('runs from where it is unpacked: the functions load, the payloads compose, the event query reads', () => {
    const app = join(work, 'unpacked');
    for (const entry of entries) {
      const target = join(app, entry.name);
      mkdirSync(dirname(target), { recursive: true });
      writeFileSync(target, entry.data);
    }
    const script = `
      for (const f of ['remediations', 'alerts', 'remediation-worker', 'relaxation-sweep']) await import('./dist/functions/' + f + '.js');
      const { composeScript } = await import('./dist/src/payloads/compose.js');
      const { eventQuery } = await import('./dist/src/alerts/event-query.js');
      const { packageRoot } = await import('./dist/src/util/package-root.js');
      console.log(JSON.stringify({ root: packageRoot(), probe: composeScript('probe').length, fix: composeScript('fix').length, query: eventQuery().length }));
    `;
    const result = spawnSync(process.execPath, ['--input-type=module', '-e', script], { cwd: app, encoding: 'utf8', timeout: 60_000 });
    expect(result.status, result.stderr).toBe(0);
    const lines = result.stdout.trim().split('\n');
    const loaded = JSON.parse(lines[lines.length - 1]!) as { root: string; probe: number; fix: number; query: number };
    expect(loaded.root).toBe(app);
    expect(loaded.probe).toBeGreaterThan(0);
    expect(loaded.fix).toBeGreaterThan(loaded.probe);
    expect(loaded.query).toBeGreaterThan(0);
  });
});
