/**
 * A TCP fault proxy for tests: listens on loopback and forwards each connection to a target
 * (Azurite's ports, the emulator's HTTPS port). It works on bytes, so TLS passes through
 * untouched, and it injects one fault per connection:
 *
 * - `pass`: relay both ways.
 * - `reset`: answer the connection with a TCP RST.
 * - `drop-request`: close the connection when the client first sends, before forwarding
 *   anything (for TLS: during the handshake), so the request never reaches the target.
 * - `drop-response`: forward the request, swallow the answer, then close: the "lost answer".
 *   With TLS the handshake is relayed; everything the target sends after the client's first
 *   application-data record (TLS 1.3: its Finished, then the request) is swallowed, and the
 *   connection is closed once the target has been quiet for `dropSettleMs` after that.
 * - `stall`: accept and never answer (nothing is forwarded).
 * - `delay`: relay both ways, every chunk held back `ms`.
 *
 * Which fault a connection gets: the next entry of `sequence` (consumed in accept order), and
 * beyond it a draw by `weights` from a generator seeded with `seed`, so a run is repeatable.
 * The proxy cannot see HTTP requests inside TLS; tests that target one request rely on the
 * SDK opening a fresh connection for it (a connection that failed is never reused).
 */
import { connect, createServer, type Server, type Socket } from 'node:net';

export type FaultKind = 'pass' | 'reset' | 'drop-request' | 'drop-response' | 'stall' | 'delay';

export type Fault = { readonly kind: Exclude<FaultKind, 'delay'> } | { readonly kind: 'delay'; readonly ms: number };

export interface FaultPlan {
  /** Faults for the next connections, one each, in accept order. */
  readonly sequence?: readonly Fault[];
  /** For connections beyond the sequence: relative weights of each fault. Default `{ pass: 1 }`. */
  readonly weights?: Partial<Record<FaultKind, number>>;
  /** The range random `delay` faults draw from, in ms. Default [50, 250]. */
  readonly delayMs?: readonly [number, number];
}

export interface FaultProxyOptions extends FaultPlan {
  readonly target: { readonly host?: string; readonly port: number };
  /** 0 (default): a free port. */
  readonly port?: number;
  /** Seed of the fault draws. Default 1. */
  readonly seed?: number;
  /** drop-response: quiet time after the swallowed answer before the connection is closed. Default 150 ms. */
  readonly dropSettleMs?: number;
}

export interface ConnectionRecord {
  /** 0 for the first connection. */
  readonly index: number;
  readonly fault: Fault;
  readonly openedAt: number;
  closedAt: number | null;
  /** Bytes the client sent / that were forwarded to the target. */
  bytesFromClient: number;
  bytesToTarget: number;
  /** Bytes the target sent / that were relayed to the client / that were swallowed. */
  bytesFromTarget: number;
  bytesToClient: number;
  bytesSwallowed: number;
}

export interface FaultProxy {
  readonly host: string;
  readonly port: number;
  /** Every connection accepted, in order. */
  readonly connections: readonly ConnectionRecord[];
  /** Replaces the plan for the connections still to come (the seeded draws continue). */
  setPlan(plan: FaultPlan): void;
  /** Closes the listener and every open connection. */
  close(): Promise<void>;
}

/** xorshift32: small, fast and deterministic; a 0 seed is mapped to 1. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0 || 1;
  return () => {
    state ^= state << 13;
    state >>>= 0;
    state ^= state >>> 17;
    state ^= state << 5;
    state >>>= 0;
    return state / 0x1_0000_0000;
  };
}

const KINDS: readonly FaultKind[] = ['pass', 'reset', 'drop-request', 'drop-response', 'stall', 'delay'];

/** The fault for the next connection: the sequence's next entry, else a weighted draw. */
export function faultChooser(seed: number): { plan: (plan: FaultPlan) => void; next: () => Fault } {
  const random = seededRandom(seed);
  let sequence: Fault[] = [];
  let weights: Partial<Record<FaultKind, number>> = { pass: 1 };
  let delayRange: readonly [number, number] = [50, 250];
  return {
    plan(plan) {
      sequence = [...(plan.sequence ?? [])];
      weights = plan.weights ?? { pass: 1 };
      delayRange = plan.delayMs ?? [50, 250];
    },
    next() {
      const scheduled = sequence.shift();
      if (scheduled) return scheduled;
      const total = KINDS.reduce((sum, k) => sum + Math.max(0, weights[k] ?? 0), 0);
      if (total <= 0) return { kind: 'pass' };
      let pick = random() * total;
      let kind: FaultKind = 'pass';
      for (const k of KINDS) {
        const w = Math.max(0, weights[k] ?? 0);
        if (pick < w) {
          kind = k;
          break;
        }
        pick -= w;
      }
      if (kind === 'delay') {
        const [min, max] = delayRange;
        return { kind, ms: Math.round(min + random() * (max - min)) };
      }
      return { kind };
    },
  };
}

/** Follows TLS record headers in one direction; `sawApplicationData` once a record of type 23 started. */
class TlsRecordWatcher {
  private pending = Buffer.alloc(0);
  private skip = 0;
  public sawApplicationData = false;
  public readonly isTls: boolean;

  public constructor(firstByte: number) {
    this.isTls = firstByte === 0x16; // handshake record: a ClientHello
  }

  public push(chunk: Buffer): void {
    if (!this.isTls || this.sawApplicationData) return;
    let data = this.pending.length ? Buffer.concat([this.pending, chunk]) : chunk;
    for (;;) {
      if (this.skip > 0) {
        const n = Math.min(this.skip, data.length);
        this.skip -= n;
        data = data.subarray(n);
      }
      if (this.skip > 0 || data.length < 5) break;
      const type = data[0] ?? 0;
      if (type === 0x17) {
        this.sawApplicationData = true;
        break;
      }
      this.skip = data.readUInt16BE(3);
      data = data.subarray(5);
    }
    this.pending = Buffer.from(data);
  }
}

export async function startFaultProxy(options: FaultProxyOptions): Promise<FaultProxy> {
  const targetHost = options.target.host ?? '127.0.0.1';
  const chooser = faultChooser(options.seed ?? 1);
  chooser.plan(options);
  const settleMs = options.dropSettleMs ?? 150;
  const connections: ConnectionRecord[] = [];
  const open = new Set<Socket>();

  const track = (socket: Socket) => {
    open.add(socket);
    socket.once('close', () => open.delete(socket));
    socket.on('error', () => undefined);
  };

  const server: Server = createServer({ pauseOnConnect: false }, (client) => {
    track(client);
    const fault = chooser.next();
    const record: ConnectionRecord = { index: connections.length, fault, openedAt: Date.now(), closedAt: null, bytesFromClient: 0, bytesToTarget: 0, bytesFromTarget: 0, bytesToClient: 0, bytesSwallowed: 0 };
    connections.push(record);
    client.once('close', () => (record.closedAt = Date.now()));
    client.on('data', (chunk: Buffer) => (record.bytesFromClient += chunk.length));

    switch (fault.kind) {
      case 'reset':
        client.resetAndDestroy();
        return;
      case 'stall':
        client.resume(); // read and discard, answer nothing
        return;
      case 'drop-request':
        client.once('data', () => client.destroy());
        return;
      default:
        break;
    }

    const upstream = connect(options.target.port, targetHost);
    track(upstream);
    const closeBoth = () => {
      client.destroy();
      upstream.destroy();
    };
    upstream.once('error', closeBoth);
    client.once('error', closeBoth);

    const delay = fault.kind === 'delay' ? fault.ms : 0;
    // Chunks keep their order: each direction has one chain of writes, and a side that ends
    // is ended on the other side only once everything before its end has been written.
    const relay = (to: Socket, count: (n: number) => void) => {
      let chain = Promise.resolve();
      return {
        write(chunk: Buffer) {
          chain = chain.then(async () => {
            if (delay > 0) await new Promise((r) => setTimeout(r, delay));
            if (!to.destroyed) {
              count(chunk.length);
              to.write(chunk);
            }
          });
        },
        end() {
          chain = chain.then(() => {
            if (!to.destroyed) to.end();
          });
        },
      };
    };
    const toTargetRelay = relay(upstream, (n) => (record.bytesToTarget += n));
    const toClientRelay = relay(client, (n) => (record.bytesToClient += n));
    const toTarget = (chunk: Buffer) => toTargetRelay.write(chunk);
    const toClient = (chunk: Buffer) => toClientRelay.write(chunk);
    upstream.once('end', () => toClientRelay.end());
    client.once('end', () => toTargetRelay.end());
    upstream.once('close', () => toClientRelay.end());
    client.once('close', () => upstream.destroy());

    let watcher: TlsRecordWatcher | null = null;
    let requestSent = false;
    client.on('data', (chunk: Buffer) => {
      if (fault.kind === 'drop-response') {
        watcher ??= new TlsRecordWatcher(chunk[0] ?? 0);
        watcher.push(chunk);
        requestSent = watcher.isTls ? watcher.sawApplicationData : true;
      }
      toTarget(chunk);
    });

    let settle: NodeJS.Timeout | undefined;
    upstream.on('data', (chunk: Buffer) => {
      record.bytesFromTarget += chunk.length;
      if (fault.kind === 'drop-response' && requestSent) {
        record.bytesSwallowed += chunk.length;
        if (settle) clearTimeout(settle);
        settle = setTimeout(closeBoth, settleMs);
        return;
      }
      toClient(chunk);
    });
    upstream.once('close', () => settle && clearTimeout(settle));
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('fault proxy has no TCP address');

  return {
    host: '127.0.0.1',
    port: address.port,
    connections,
    setPlan: (plan) => chooser.plan(plan),
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of open) socket.destroy();
        server.close(() => resolve());
      }),
  };
}
