/** The TCP fault proxy: each fault, over plain HTTP and over TLS, and repeatable draws from a seed. */
import * as http from 'node:http';
import * as https from 'node:https';
import type { AddressInfo } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createTlsMaterial } from '../../emulator/tls.js';
import { faultChooser, startFaultProxy, type Fault, type FaultProxy } from '../support/fault-proxy.js';

interface Target {
  readonly port: number;
  /** Requests the target handled (it answered each). */
  readonly handled: string[];
  close(): Promise<void>;
}

async function listen(server: http.Server | https.Server, handled: string[]): Promise<Target> {
  server.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => {
    handled.push(`${req.method} ${req.url}`);
    req.resume();
    req.on('end', () => res.end(JSON.stringify({ ok: true, url: req.url })));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    handled,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

let plain: Target;
let secure: Target;
let caPem: string;
let proxy: FaultProxy | undefined;

beforeAll(async () => {
  plain = await listen(http.createServer(), []);
  const tls = await createTlsMaterial();
  caPem = tls.caPem;
  secure = await listen(https.createServer({ cert: tls.certPem, key: tls.keyPem }), []);
});
afterAll(async () => {
  await Promise.all([plain?.close(), secure?.close()]);
});
afterEach(async () => {
  await proxy?.close();
  proxy = undefined;
  plain.handled.length = 0;
  secure.handled.length = 0;
});

type Result = { ok: true; status: number; body: string; ms: number } | { ok: false; code: string; ms: number };

/** One request on a fresh connection (no keep-alive), through the proxy. */
function request(port: number, options: { tls?: boolean; path?: string; method?: string; timeoutMs?: number } = {}): Promise<Result> {
  const started = Date.now();
  return new Promise((resolve) => {
    const common = { host: '127.0.0.1', port, path: options.path ?? '/x', method: options.method ?? 'GET', agent: false as const };
    const req = options.tls ? https.request({ ...common, ca: caPem, servername: 'localhost' }) : http.request(common);
    const timer = setTimeout(() => req.destroy(Object.assign(new Error('client timeout'), { code: 'CLIENT_TIMEOUT' })), options.timeoutMs ?? 3000);
    req.on('response', (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => {
        clearTimeout(timer);
        resolve({ ok: true, status: res.statusCode ?? 0, body, ms: Date.now() - started });
      });
      res.on('error', (e: NodeJS.ErrnoException) => {
        clearTimeout(timer);
        resolve({ ok: false, code: e.code ?? e.message, ms: Date.now() - started });
      });
    });
    req.on('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      resolve({ ok: false, code: e.code ?? e.message, ms: Date.now() - started });
    });
    req.end(options.method === 'POST' ? '{"a":1}' : undefined);
  });
}

const settle = () => new Promise((r) => setTimeout(r, 50));

describe.each([
  ['plain HTTP', false],
  ['TLS', true],
] as const)('over %s', (_label, tls) => {
  const target = () => (tls ? secure : plain);

  it('pass relays request and answer', async () => {
    proxy = await startFaultProxy({ target: { port: target().port } });
    const result = await request(proxy.port, { tls });
    expect(result).toMatchObject({ ok: true, status: 200 });
    expect(target().handled).toEqual(['GET /x']);
    expect(proxy.connections[0]).toMatchObject({ index: 0, fault: { kind: 'pass' } });
  });

  it('reset fails the connection at once, and the target sees nothing', async () => {
    proxy = await startFaultProxy({ target: { port: target().port }, sequence: [{ kind: 'reset' }] });
    const result = await request(proxy.port, { tls });
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.code).toBe('ECONNRESET');
    await settle();
    expect(target().handled).toEqual([]);
  });

  it('drop-request closes before anything is forwarded', async () => {
    proxy = await startFaultProxy({ target: { port: target().port }, sequence: [{ kind: 'drop-request' }] });
    const result = await request(proxy.port, { tls, method: 'POST' });
    expect(result.ok).toBe(false);
    await settle();
    expect(target().handled).toEqual([]);
    expect(proxy.connections[0]?.bytesToTarget).toBe(0);
  });

  it('drop-response forwards the request, so the target handles it, and the client never gets the answer', async () => {
    proxy = await startFaultProxy({ target: { port: target().port }, sequence: [{ kind: 'drop-response' }], dropSettleMs: 100 });
    const result = await request(proxy.port, { tls, method: 'POST', path: '/runCommand' });
    expect(result.ok).toBe(false);
    if (!result.ok) expect(['ECONNRESET', 'socket hang up']).toContain(result.code);
    expect(target().handled).toEqual(['POST /runCommand']);
    expect(proxy.connections[0]?.bytesSwallowed).toBeGreaterThan(0);
    // The next connection passes (the sequence is used up).
    expect(await request(proxy.port, { tls })).toMatchObject({ ok: true, status: 200 });
  });

  it('stall accepts and never answers', async () => {
    proxy = await startFaultProxy({ target: { port: target().port }, sequence: [{ kind: 'stall' }] });
    const result = await request(proxy.port, { tls, timeoutMs: 300 });
    expect(result).toMatchObject({ ok: false, code: 'CLIENT_TIMEOUT' });
    expect(result.ms).toBeGreaterThanOrEqual(290);
    expect(target().handled).toEqual([]);
    expect(proxy.connections[0]?.bytesFromClient).toBeGreaterThan(0);
  });

  it('delay holds every chunk back', async () => {
    proxy = await startFaultProxy({ target: { port: target().port }, sequence: [{ kind: 'delay', ms: 120 }] });
    const result = await request(proxy.port, { tls });
    expect(result).toMatchObject({ ok: true, status: 200 });
    // At least one round trip through the proxy: request and answer each held back.
    expect(result.ms).toBeGreaterThanOrEqual(2 * 120 - 10);
  });
});

describe('fault draws', () => {
  const draw = (seed: number, n: number): Fault[] => {
    const chooser = faultChooser(seed);
    chooser.plan({ weights: { pass: 2, reset: 1, 'drop-request': 1, 'drop-response': 1, stall: 1, delay: 1 }, delayMs: [10, 90] });
    return Array.from({ length: n }, () => chooser.next());
  };

  it('are the same for the same seed, and differ for another', () => {
    expect(draw(42, 50)).toEqual(draw(42, 50));
    expect(draw(42, 50)).not.toEqual(draw(43, 50));
  });

  it('follow the weights, use every kind, and keep delays in range', () => {
    const faults = draw(7, 2000);
    const count = (kind: string) => faults.filter((f) => f.kind === kind).length;
    expect(count('pass') / 2000).toBeGreaterThan(0.2);
    expect(count('pass') / 2000).toBeLessThan(0.37);
    for (const kind of ['reset', 'drop-request', 'drop-response', 'stall', 'delay']) expect(count(kind)).toBeGreaterThan(150);
    const delays = faults.flatMap((f) => (f.kind === 'delay' ? [f.ms] : []));
    expect(Math.min(...delays)).toBeGreaterThanOrEqual(10);
    expect(Math.max(...delays)).toBeLessThanOrEqual(90);
  });

  it('take the sequence first, then the weights', () => {
    const chooser = faultChooser(1);
    chooser.plan({ sequence: [{ kind: 'stall' }, { kind: 'reset' }], weights: { 'drop-response': 1 } });
    expect([chooser.next(), chooser.next(), chooser.next()]).toEqual([{ kind: 'stall' }, { kind: 'reset' }, { kind: 'drop-response' }]);
  });

  it('a proxy started twice with the same seed gives its connections the same faults', async () => {
    const kinds: string[][] = [];
    for (let round = 0; round < 2; round++) {
      proxy = await startFaultProxy({ target: { port: plain.port }, seed: 99, weights: { pass: 1, reset: 1, 'drop-request': 1 } });
      for (let i = 0; i < 8; i++) await request(proxy.port, { timeoutMs: 1000 });
      kinds.push(proxy.connections.map((c) => c.fault.kind));
      await proxy.close();
      proxy = undefined;
    }
    expect(kinds[0]).toHaveLength(8);
    expect(kinds[0]).toEqual(kinds[1]);
    expect(new Set(kinds[0]).size).toBeGreaterThan(1);
  });
});
