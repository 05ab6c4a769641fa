/**
 * `npm run package`: the deployable zip holds what the Functions host runs and nothing else
 * (the esbuild bundle, host.json, a package.json without dependencies, the payloads and the
 * event query; no node_modules), its entries read back intact, and equal inputs give an equal
 * zip. The zip is written by yazl (tools/package.mjs) and read by a reader written here, not by
 * the writer's own code, so a bug would have to be made twice to pass.
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
interface PackageModule {
  DEPLOYED_MAIN: string;
  DEFAULT_STAGE: string;
  zipToBuffer: (entries: Iterable<ZipEntryInput>) => Promise<Buffer>;
  writeZip: (path: string, entries: Iterable<ZipEntryInput>) => Promise<{ entries: number; bytes: number }>;
}

async function packageModule(): Promise<PackageModule> {
  // tools/ is untyped JavaScript; the interface above is what the test relies on.
  return (await import(pathToFileURL(join(root, 'tools', 'package.mjs')).href)) as PackageModule;
}

/** The goal for the deployed zip (issue 11). */
const MAX_ZIP_BYTES = 2 * 1024 * 1024;

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

describe('the zip writer (yazl, in tools/package.mjs)', () => {
  it('writes entries that read back byte for byte, with UTF-8 names, unix modes and a fixed date', async () => {
    const { zipToBuffer } = await packageModule();
    const incompressible = randomBytes(512);
    const input: ZipEntryInput[] = [
      { name: 'empty.txt', data: '' },
      { name: 'bin/run.sh', data: '#!/bin/sh\necho ok\n', mode: 0o100775 },
      { name: 'dir/ünïcödé ✓.txt', data: 'x'.repeat(10_000) },
      { name: 'noise.bin', data: incompressible },
    ];
    const zip = await zipToBuffer(input);
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
    expect((await zipToBuffer(input)).equals(zip)).toBe(true);
  });

  it('writes to a file from file contents', async () => {
    const { writeZip } = await packageModule();
    const dir = mkdtempSync(join(tmpdir(), 'zip-test-'));
    try {
      writeFileSync(join(dir, 'a.txt'), 'alpha');
      const result = await writeZip(join(dir, 'out.zip'), [{ name: 'nested/a.txt', file: join(dir, 'a.txt') }]);
      const zip = readFileSync(join(dir, 'out.zip'));
      expect(result).toEqual({ entries: 1, bytes: zip.length });
      expect(readZip(zip).map((e) => [e.name, e.data.toString()])).toEqual([['nested/a.txt', 'alpha']]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses unsafe or duplicate names', async () => {
    const { zipToBuffer } = await packageModule();
    for (const name of ['', '/etc/passwd', 'C:/x', '../up', 'a/../b', 'a//b', 'a/./b', 'dir/', 'a\\b']) {
      await expect(zipToBuffer([{ name, data: 'x' }]), name).rejects.toThrow(/zip:/);
    }
    await expect(zipToBuffer([{ name: 'a', data: '1' }, { name: 'a', data: '2' }])).rejects.toThrow(/duplicate/);
  });
});

describe('npm run package', () => {
  let work: string;
  let zip: Buffer;
  let entries: ReadEntry[];
  let names: string[];

  /** Runs tools/package.mjs as `npm run package` does, with a stage and zip of its own. */
  const runPackage = (name: string): Buffer => {
    const out = join(work, `${name}.zip`);
    const result = spawnSync(process.execPath, [join(root, 'tools', 'package.mjs'), '--out', out, '--stage', join(work, `${name}-stage`)], {
      cwd: root,
      encoding: 'utf8',
      timeout: 110_000,
    });
    if (result.status !== 0) throw new Error(`tools/package.mjs exited with ${result.status ?? result.signal}:\n${result.stdout}\n${result.stderr}`);
    return readFileSync(out);
  };

  beforeAll(() => {
    work = mkdtempSync(join(tmpdir(), 'rdp-package-'));
    // A stage and zip of its own, so the test neither races nor overwrites `npm run package`.
    zip = runPackage('app');
    entries = readZip(zip);
    names = entries.map((e) => e.name);
  }, 120_000);

  afterAll(() => {
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('holds the host files, the bundled functions and their chunks, the payloads and the event query', () => {
    for (const name of [
      'host.json',
      'package.json',
      'dist-bundle/functions/remediations.mjs',
      'dist-bundle/functions/alerts.mjs',
      'dist-bundle/functions/remediation-worker.mjs',
      'dist-bundle/functions/relaxation-sweep.mjs',
      'scripts/probe.ps1',
      'scripts/fix.ps1',
      'scripts/lib/Facts.ps1',
      'scripts/lib/Access.Handshake.ps1',
      'infra/queries/rdp-events.kql',
    ]) {
      expect(names, name).toContain(name);
    }
    expect(names.filter((n) => n.startsWith('dist-bundle/functions/chunks/')).length).toBeGreaterThan(0);
    expect(entries.find((e) => e.name === 'host.json')!.data.equals(readFileSync(join(root, 'host.json')))).toBe(true);
  });

  it('has a package.json whose main is the bundled registration entry (not a handler module, not a chunk) and that installs nothing', async () => {
    const { DEPLOYED_MAIN } = await packageModule();
    const source = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string; engines: unknown };
    const packaged = JSON.parse(entries.find((e) => e.name === 'package.json')!.data.toString('utf8')) as Record<string, unknown>;
    expect(packaged).toMatchObject({ name: 'rdp-remediator', version: source.version, type: 'module', main: 'dist-bundle/functions/index.mjs', engines: source.engines });
    expect(DEPLOYED_MAIN).toBe(packaged.main);
    for (const field of ['dependencies', 'devDependencies', 'optionalDependencies', 'peerDependencies', 'scripts', 'bin']) expect(packaged, field).not.toHaveProperty(field);
    // main names one file, which the package holds; the handler modules it imports sit beside it.
    expect(names).toContain(packaged.main);
    const entryFiles = names.filter((n) => /^dist-bundle\/functions\/[^/]+\.mjs$/.test(n)).sort();
    expect(entryFiles).toEqual(['alerts', 'index', 'relaxation-sweep', 'remediation-worker', 'remediations'].map((m) => `dist-bundle/functions/${m}.mjs`));
  });

  it('holds nothing that does not run: no node_modules, tests, sources, maps, metafiles, docs or other entry points', () => {
    const forbidden = ['node_modules/', 'dist/', 'dist-bundle/meta/', 'dist-bundle/probe/', 'test/', 'src/', 'functions/', 'emulator/', 'demo/', 'bench/', 'scripts/docs/', 'infra/modules/', 'package-lock.json'];
    for (const name of names) {
      expect(forbidden.find((prefix) => name.startsWith(prefix)), name).toBeUndefined();
      expect(name).not.toMatch(/\.(?:map|ts|mts|cts|md)$/);
    }
    const topLevel = new Set(names.map((n) => n.split('/')[0]));
    expect([...topLevel].sort()).toEqual(['dist-bundle', 'host.json', 'infra', 'package.json', 'scripts']);
    expect(names.filter((n) => n.startsWith('dist-bundle/')).every((n) => /^dist-bundle\/functions\/(?:chunks\/)?[^/]+\.mjs$/.test(n))).toBe(true);
    expect(names.filter((n) => n.startsWith('infra/'))).toEqual(['infra/queries/rdp-events.kql']);
    expect(names.filter((n) => n.startsWith('scripts/')).every((n) => /^scripts\/(?:lib\/)?[^/]+\.ps1$/.test(n))).toBe(true);
  });

  it('is what azd deploys: azure.yaml runs npm run package before packaging and deploys the folder it stages', async () => {
    const { DEFAULT_STAGE } = await packageModule();
    const azd = readFileSync(join(root, 'azure.yaml'), 'utf8');
    expect(azd).toMatch(/prepackage:[\s\S]*run: npm run package/);
    const dist = /^\s+dist: (\S+)$/m.exec(azd)?.[1];
    expect(dist && join(root, dist)).toBe(DEFAULT_STAGE);
  });

  it(`is at most ${MAX_ZIP_BYTES / 1024 / 1024} MiB`, () => {
    expect(zip.length).toBeLessThanOrEqual(MAX_ZIP_BYTES);
  });

  it('is sorted, dated 1980-01-01, with regular-file modes, and its entries verify (CRCs checked on read)', () => {
    expect(names).toEqual([...names].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)));
    expect(new Set(names).size).toBe(names.length);
    expect(entries.every((e) => e.dosDate === 0x21 && e.dosTime === 0)).toBe(true);
    expect(entries.every((e) => e.mode === 0o100644)).toBe(true);
    expect(entries.every((e) => e.madeBy >> 8 === 3 && (e.flags & 0x0800) === 0x0800)).toBe(true);
  });

  it('is reproducible: a second run, in another time zone, writes the same bytes', () => {
    const previous = process.env.TZ;
    process.env.TZ = 'Pacific/Auckland';
    try {
      expect(runPackage('again').equals(zip)).toBe(true);
    } finally {
      if (previous === undefined) delete process.env.TZ;
      else process.env.TZ = previous;
    }
  }, 120_000);

  it('runs from where it is unpacked: the functions load and register, the payloads compose, the event query reads', async () => {
    const app = join(work, 'unpacked');
    for (const entry of entries) {
      const target = join(app, entry.name);
      mkdirSync(dirname(target), { recursive: true });
      writeFileSync(target, entry.data);
    }
    const entryUrls = ['index', 'remediation-worker'].map((f) => pathToFileURL(join(app, 'dist-bundle', 'functions', `${f}.mjs`)).href);
    // The registration entry, as the host imports it, then a handler that needs no Azure: the worker lets a malformed message go.
    const functions = spawnSync(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        `const ms = []; for (const u of ${JSON.stringify(entryUrls)}) ms.push(await import(u));
         await ms[1].remediationWorker({ not: 'a job' }, { error: () => {}, warn: () => {}, info: () => {}, debug: () => {} });
         console.log('ok');`,
      ],
      { cwd: tmpdir(), encoding: 'utf8', timeout: 60_000 },
    );
    expect(functions.status, functions.stderr).toBe(0);
    expect(functions.stdout).toContain('ok');
    for (const name of ['remediations-post', 'remediations-post-allow', 'remediations-get', 'alerts', 'alert-worker', 'alert-poison', 'remediation-worker', 'remediation-poison', 'relaxation-sweep']) {
      expect(functions.stderr).toContain(`register function "${name}"`);
    }

    // Code bundled the same way at the entries' depth finds the payloads and the query in the unpacked app.
    const { buildRootProbe } = (await import(pathToFileURL(join(root, 'tools', 'package.mjs')).href)) as { buildRootProbe: (outfile: string) => Promise<void> };
    const probe = join(app, 'dist-bundle', 'probe', 'check.mjs');
    await buildRootProbe(probe);
    const result = spawnSync(process.execPath, [probe], { cwd: tmpdir(), encoding: 'utf8', timeout: 60_000 });
    expect(result.status, result.stderr).toBe(0);
    const loaded = JSON.parse(result.stdout.trim().split('\n').at(-1)!) as { root: string; probe: number; fix: number; query: number };
    expect(loaded.root).toBe(app);
    expect(loaded.probe).toBeGreaterThan(0);
    expect(loaded.fix).toBeGreaterThan(loaded.probe);
    expect(loaded.query).toBeGreaterThan(0);
  });
});
