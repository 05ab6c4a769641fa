/**
 * The audit trail: one record per remediation, readable by id (the status endpoint) and
 * by VM (history). In Table storage a record lives in its VM's partition; a small
 * immutable index entity maps the id to that partition, so both reads are point reads.
 */
import { odata, type TableClient } from '@azure/data-tables';
import type { RemediationRecord } from '../core/outcome.js';
import { RecordNotFoundError } from '../errors.js';
import { isRestError, tableKey } from './storage.js';

export interface RemediationStore {
  /** Adds a new record; fails if the id exists. */
  create(record: RemediationRecord): Promise<void>;
  /** Replaces a record (state transitions). */
  save(record: RemediationRecord): Promise<void>;
  get(id: string): Promise<RemediationRecord | undefined>;
  /** Newest first. */
  listByVm(vmKey: string, options?: { readonly limit?: number }): Promise<RemediationRecord[]>;
}

export class InMemoryRemediationStore implements RemediationStore {
  private readonly records = new Map<string, RemediationRecord>();

  public create(record: RemediationRecord): Promise<void> {
    if (this.records.has(record.id)) return Promise.reject(new Error(`record ${record.id} exists`));
    this.records.set(record.id, record);
    return Promise.resolve();
  }
  public save(record: RemediationRecord): Promise<void> {
    this.records.set(record.id, record);
    return Promise.resolve();
  }
  public get(id: string): Promise<RemediationRecord | undefined> {
    return Promise.resolve(this.records.get(id));
  }
  public listByVm(vmKey: string, options: { readonly limit?: number } = {}): Promise<RemediationRecord[]> {
    const all = [...this.records.values()].filter((r) => r.vmKey === vmKey).sort((a, b) => b.requestedAt.localeCompare(a.requestedAt));
    return Promise.resolve(all.slice(0, options.limit ?? all.length));
  }
}

const INDEX_PARTITION = 'by-id';

interface RecordEntity {
  partitionKey: string;
  rowKey: string;
  vmResourceId: string;
  state: string;
  status: string;
  source: string;
  requestedAt: string;
  updatedAt: string;
  record: string;
}

export class TableRemediationStore implements RemediationStore {
  private ready: Promise<void> | undefined;

  public constructor(private readonly table: TableClient) {}

  private ensureTable(): Promise<void> {
    this.ready ??= this.table.createTable().catch((error: unknown) => {
      this.ready = undefined;
      throw error;
    });
    return this.ready;
  }

  private toEntity(record: RemediationRecord): RecordEntity {
    return {
      partitionKey: tableKey(record.vmKey),
      rowKey: record.id,
      vmResourceId: record.vmResourceId,
      state: record.state,
      status: record.state === 'completed' ? record.outcome.status : '',
      source: record.source,
      requestedAt: record.requestedAt,
      updatedAt: record.updatedAt,
      record: JSON.stringify(record),
    };
  }

  public async create(record: RemediationRecord): Promise<void> {
    await this.ensureTable();
    await this.table.createEntity({ partitionKey: INDEX_PARTITION, rowKey: record.id, vmPartition: tableKey(record.vmKey) });
    await this.table.createEntity(this.toEntity(record));
  }

  public async save(record: RemediationRecord): Promise<void> {
    await this.ensureTable();
    await this.table.upsertEntity(this.toEntity(record), 'Replace');
  }

  public async get(id: string): Promise<RemediationRecord | undefined> {
    await this.ensureTable();
    try {
      const index = await this.table.getEntity<{ vmPartition: string }>(INDEX_PARTITION, id);
      const entity = await this.table.getEntity<RecordEntity>(index.vmPartition, id);
      return JSON.parse(entity.record) as RemediationRecord;
    } catch (error) {
      if (isRestError(error, 404)) return undefined;
      throw error;
    }
  }

  public async listByVm(vmKey: string, options: { readonly limit?: number } = {}): Promise<RemediationRecord[]> {
    await this.ensureTable();
    const records: RemediationRecord[] = [];
    const pages = this.table.listEntities<RecordEntity>({ queryOptions: { filter: odata`PartitionKey eq ${tableKey(vmKey)}` } });
    for await (const entity of pages) records.push(JSON.parse(entity.record) as RemediationRecord);
    records.sort((a, b) => b.requestedAt.localeCompare(a.requestedAt));
    return records.slice(0, options.limit ?? records.length);
  }
}

export async function requireRecord(store: RemediationStore, id: string): Promise<RemediationRecord> {
  const record = await store.get(id);
  if (!record) throw new RecordNotFoundError(`remediation ${id} not found`, { id });
  return record;
}
