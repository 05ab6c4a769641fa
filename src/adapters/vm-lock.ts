/**
 * At most one remediation per VM at a time, across function instances: a lease held as a
 * Table entity, taken and released with ETag conditions so two instances can't both win.
 * A lease expires, so a crashed holder frees the VM after `ttlMs`.
 */
import type { TableClient } from '@azure/data-tables';
import { isRestError, tableCreator, tableKey } from './storage.js';

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
