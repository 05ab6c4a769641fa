/**
 * At most one remediation per VM at a time, across function instances: a lease held as a
 * Table entity, taken, renewed and released with ETag conditions so two instances can't both
 * win. The lease is short and renewed while the job runs (`keepLease`, a heartbeat), so a
 * crashed holder frees the VM within one lease, not after the whole REMEDIATION_LOCK_TTL.
 */
import type { TableClient } from '@azure/data-tables';
import { RemediatorError } from '../errors.js';
import { isRestError, tableCreator, tableKey } from './storage.js';

/**
 * The lease a running job holds, and how often it renews it. 90 s, renewed every 30 s: two
 * renewals may fail (a storage blip) before the lease runs out, and a crashed holder frees
 * the VM 90 s after its last renewal at the latest. REMEDIATION_LOCK_TTL_SECONDS (lockTtlMs)
 * caps the lease, so a shorter setting (tests) gives a shorter lease and heartbeat.
 */
export const LEASE_MAX_MS = 90_000;

export interface LeaseTiming {
  readonly durationMs: number;
  readonly renewEveryMs: number;
}

export function leaseTiming(lockTtlMs: number): LeaseTiming {
  const durationMs = Math.max(1_000, Math.min(lockTtlMs, LEASE_MAX_MS));
  return { durationMs, renewEveryMs: Math.max(200, Math.floor(durationMs / 3)) };
}

/** The VM's lease is no longer this job's: it ran out and another holder took it, or it was released. */
export class LeaseLostError extends RemediatorError {}

export interface Lease {
  readonly vmKey: string;
  readonly holder: string;
  readonly expiresAt: number;
  /** Store-specific version token for conditional release. */
  readonly version: string;
}

export type AcquireResult = { readonly acquired: true; readonly lease: Lease } | { readonly acquired: false; readonly holder: string; readonly expiresAt: number };

export interface VmLock {
  /**
   * Takes the VM's lease for `holder` unless a live lease exists, even one held under the same
   * name: a redelivered copy of a running job must not run beside it.
   */
  acquire(vmKey: string, holder: string, ttlMs: number): Promise<AcquireResult>;
  /**
   * Extends a lease that is still this holder's (the same version) to now + `ttlMs`; undefined
   * when it is not any more (taken over after it ran out, or released).
   */
  renew(lease: Lease, ttlMs: number): Promise<Lease | undefined>;
  release(lease: Lease): Promise<void>;
  /** The current live holder, if any. */
  holder(vmKey: string): Promise<string | undefined>;
}

export class InMemoryVmLock implements VmLock {
  private readonly leases = new Map<string, Lease>();
  private counter = 0;

  public constructor(private readonly now: () => number = Date.now) {}

  public acquire(vmKey: string, holder: string, ttlMs: number): Promise<AcquireResult> {
    const current = this.leases.get(vmKey);
    if (current && current.expiresAt > this.now()) {
      return Promise.resolve({ acquired: false, holder: current.holder, expiresAt: current.expiresAt });
    }
    const lease = { vmKey, holder, expiresAt: this.now() + ttlMs, version: String(++this.counter) };
    this.leases.set(vmKey, lease);
    return Promise.resolve({ acquired: true, lease });
  }

  public renew(lease: Lease, ttlMs: number): Promise<Lease | undefined> {
    if (this.leases.get(lease.vmKey)?.version !== lease.version) return Promise.resolve(undefined);
    const renewed = { ...lease, expiresAt: this.now() + ttlMs, version: String(++this.counter) };
    this.leases.set(lease.vmKey, renewed);
    return Promise.resolve(renewed);
  }

  public release(lease: Lease): Promise<void> {
    if (this.leases.get(lease.vmKey)?.version === lease.version) this.leases.delete(lease.vmKey);
    return Promise.resolve();
  }

  public holder(vmKey: string): Promise<string | undefined> {
    const current = this.leases.get(vmKey);
    return Promise.resolve(current && current.expiresAt > this.now() ? current.holder : undefined);
  }
}

const LOCK_PARTITION = 'vm-lease';

interface LeaseEntity {
  partitionKey: string;
  rowKey: string;
  holder: string;
  expiresAt: number;
}

export class TableVmLock implements VmLock {
  private readonly ensureTable: () => Promise<void>;

  public constructor(
    private readonly table: TableClient,
    private readonly now: () => number = Date.now,
  ) {
    this.ensureTable = tableCreator(table);
  }


  public async acquire(vmKey: string, holder: string, ttlMs: number): Promise<AcquireResult> {
    await this.ensureTable();
    const rowKey = tableKey(vmKey);
    const expiresAt = this.now() + ttlMs;
    const entity: LeaseEntity = { partitionKey: LOCK_PARTITION, rowKey, holder, expiresAt };
    try {
      const created = await this.table.createEntity(entity);
      return { acquired: true, lease: { vmKey, holder, expiresAt, version: created.etag ?? '*' } };
    } catch (error) {
      if (!isRestError(error, 409)) throw error;
    }
    const current = await this.table.getEntity<LeaseEntity>(LOCK_PARTITION, rowKey).catch((error: unknown) => {
      if (isRestError(error, 404)) return undefined;
      throw error;
    });
    if (current === undefined) return this.acquire(vmKey, holder, ttlMs); // released in between: try again
    if (current.expiresAt > this.now()) return { acquired: false, holder: current.holder, expiresAt: current.expiresAt };
    try {
      const taken = await this.table.updateEntity(entity, 'Replace', { etag: current.etag });
      return { acquired: true, lease: { vmKey, holder, expiresAt, version: taken.etag ?? '*' } };
    } catch (error) {
      if (!isRestError(error, 412)) throw error;
      const winner = await this.table.getEntity<LeaseEntity>(LOCK_PARTITION, rowKey);
      return { acquired: false, holder: winner.holder, expiresAt: winner.expiresAt };
    }
  }

  public async renew(lease: Lease, ttlMs: number): Promise<Lease | undefined> {
    await this.ensureTable();
    const expiresAt = this.now() + ttlMs;
    const entity: LeaseEntity = { partitionKey: LOCK_PARTITION, rowKey: tableKey(lease.vmKey), holder: lease.holder, expiresAt };
    try {
      const renewed = await this.table.updateEntity(entity, 'Replace', { etag: lease.version });
      return { ...lease, expiresAt, version: renewed.etag ?? '*' };
    } catch (error) {
      // Taken over (412) or released (404): not ours any more.
      if (isRestError(error, 412) || isRestError(error, 404)) return undefined;
      throw error;
    }
  }

  public async release(lease: Lease): Promise<void> {
    await this.ensureTable();
    try {
      await this.table.deleteEntity(LOCK_PARTITION, tableKey(lease.vmKey), { etag: lease.version });
    } catch (error) {
      // Gone or taken over after expiry: either way it is no longer ours to release.
      if (!isRestError(error, 404) && !isRestError(error, 412)) throw error;
    }
  }

  public async holder(vmKey: string): Promise<string | undefined> {
    await this.ensureTable();
    try {
      const current = await this.table.getEntity<LeaseEntity>(LOCK_PARTITION, tableKey(vmKey));
      return current.expiresAt > this.now() ? current.holder : undefined;
    } catch (error) {
      if (isRestError(error, 404)) return undefined;
      throw error;
    }
  }
}

/** A lease kept alive while a job runs. */
export interface LeaseKeeper {
  /** The lease as last renewed. */
  readonly lease: Lease;
  /** Whether a renewal found the lease taken, or the lease ran out before one succeeded. */
  readonly lost: boolean;
  /**
   * Renews now and resolves while the lease is still this job's; LeaseLostError otherwise.
   * A fence before a step that must not happen twice (posting the fix).
   */
  confirm(): Promise<void>;
  /** Stops renewing; resolves with the last lease, to release. */
  stop(): Promise<Lease>;
}

/**
 * Renews `lease` every `timing.renewEveryMs` until stopped. A renewal that fails with an
 * error (storage unreachable) is tried again at the next beat; the lease counts as lost once
 * a renewal finds it taken, or once it has run out without a successful renewal. The timer
 * does not keep the process alive.
 */
export function keepLease(lock: VmLock, lease: Lease, timing: LeaseTiming, now: () => number = Date.now): LeaseKeeper {
  let current = lease;
  let lost = false;
  let stopped = false;
  let renewing: Promise<void> = Promise.resolve();
  const renew = (): Promise<void> => {
    renewing = renewing.then(async () => {
      if (stopped || lost) return;
      try {
        const renewed = await lock.renew(current, timing.durationMs);
        if (renewed === undefined) lost = true;
        else current = renewed;
      } catch {
        if (current.expiresAt <= now()) lost = true;
      }
    });
    return renewing;
  };
  const timer = setInterval(() => void renew(), timing.renewEveryMs);
  timer.unref();
  return {
    get lease() {
      return current;
    },
    get lost() {
      return lost || current.expiresAt <= now();
    },
    async confirm() {
      await renew();
      if (lost || current.expiresAt <= now()) throw new LeaseLostError(`the lease on ${current.vmKey} is no longer held by ${current.holder}`, { vmKey: current.vmKey, holder: current.holder });
    },
    async stop() {
      stopped = true;
      clearInterval(timer);
      await renewing;
      return current;
    },
  };
}
