/**
 * The audit trail: one record per remediation, readable by id (the status endpoint) and
 * by VM (history). In Table storage a record lives in its VM's partition; a small
 * immutable index entity maps the id to that partition, so both reads are point reads.
 */
import { randomUUID } from 'node:crypto';
import { odata, type TableClient } from '@azure/data-tables';
import type { RemediationRecord } from '../core/outcome.js';
import { RecordNotFoundError } from '../errors.js';
import { isRestError, tableCreator, tableKey } from './storage.js';

export interface RemediationStore {
  /** Adds a new record; fails if the id exists. */
  create(record: RemediationRecord): Promise<void>;
  /** Replaces a record (state transitions). */
  save(record: RemediationRecord): Promise<void>;
  get(id: string): Promise<RemediationRecord | undefined>;
  /** Newest first. */
  listByVm(vmKey: string, options?: { readonly limit?: number }): Promise<RemediationRecord[]>;
  /** Counts an alert delivery that this remediation absorbed. */
  addDuplicate(id: string): Promise<void>;
  /** Keeps a message the host gave up on, with the reason. */
  recordPoison(entry: PoisonEntry): Promise<void>;
  listPoison(): Promise<PoisonRecord[]>;
}

export interface PoisonEntry {
  readonly kind: 'alert' | 'remediation';
  /** The alert id or remediation id. */
  readonly key: string;
  readonly reason: string;
  /** The message as received, truncated. */
  readonly message: string;
}

export interface PoisonRecord extends PoisonEntry {
  readonly recordedAt: string;
}

export class InMemoryRemediationStore implements RemediationStore {
  private readonly records = new Map<string, RemediationRecord>();
  private readonly duplicates = new Map<string, number>();
  private readonly poison: PoisonRecord[] = [];

  public recordPoison(entry: PoisonEntry): Promise<void> {
    this.poison.push({ ...entry, recordedAt: new Date().toISOString() });
    return Promise.resolve();
  }
  public listPoison(): Promise<PoisonRecord[]> {
    return Promise.resolve([...this.poison]);
  }

  public addDuplicate(id: string): Promise<void> {
    this.duplicates.set(id, (this.duplicates.get(id) ?? 0) + 1);
    return Promise.resolve();
  }

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
    const record = this.records.get(id);
    const duplicates = this.duplicates.get(id);
    return Promise.resolve(record && duplicates ? { ...record, duplicates } : record);
  }
  public listByVm(vmKey: string, options: { readonly limit?: number } = {}): Promise<RemediationRecord[]> {
    const all = [...this.records.values()].filter((r) => r.vmKey === vmKey).sort((a, b) => b.requestedAt.localeCompare(a.requestedAt));
    return Promise.resolve(all.slice(0, options.limit ?? all.length));
  }
}

const INDEX_PARTITION = 'by-id';
const POISON_PARTITION = 'poison';

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
  duplicates?: number;
}

export class TableRemediationStore implements RemediationStore {
  private readonly ensureTable: () => Promise<void>;

  public constructor(private readonly table: TableClient) {
    this.ensureTable = tableCreator(table);
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
    // Merge, so the duplicates counter kept beside the record survives state changes.
    await this.table.upsertEntity(this.toEntity(record), 'Merge');
  }

  public async addDuplicate(id: string): Promise<void> {
    await this.ensureTable();
    const index = await this.table.getEntity<{ vmPartition: string }>(INDEX_PARTITION, id);
    for (let attempt = 0; attempt < 10; attempt++) {
      const entity = await this.table.getEntity<RecordEntity>(index.vmPartition, id);
      try {
        await this.table.updateEntity({ partitionKey: index.vmPartition, rowKey: id, duplicates: (entity.duplicates ?? 0) + 1 }, 'Merge', { etag: entity.etag });
        return;
      } catch (error) {
        if (!isRestError(error, 412)) throw error;
      }
    }
  }

  public async recordPoison(entry: PoisonEntry): Promise<void> {
    await this.ensureTable();
    const recordedAt = new Date().toISOString();
    await this.table.createEntity({ partitionKey: POISON_PARTITION, rowKey: `${recordedAt}|${randomUUID()}`, ...entry, key: entry.key, recordedAt });
  }

  public async listPoison(): Promise<PoisonRecord[]> {
    await this.ensureTable();
    const out: PoisonRecord[] = [];
    for await (const e of this.table.listEntities<PoisonRecord>({ queryOptions: { filter: odata`PartitionKey eq ${POISON_PARTITION}` } })) {
      out.push({ kind: e.kind, key: e.key, reason: e.reason, message: e.message, recordedAt: e.recordedAt });
    }
    return out;
  }

  private fromEntity(entity: RecordEntity): RemediationRecord {
    const record = JSON.parse(entity.record) as RemediationRecord;
    return entity.duplicates ? { ...record, duplicates: entity.duplicates } : record;
  }

  public async get(id: string): Promise<RemediationRecord | undefined> {
    await this.ensureTable();
    try {
      const index = await this.table.getEntity<{ vmPartition: string }>(INDEX_PARTITION, id);
      const entity = await this.table.getEntity<RecordEntity>(index.vmPartition, id);
      return this.fromEntity(entity);
    } catch (error) {
      if (isRestError(error, 404)) return undefined;
      throw error;
    }
  }

  public async listByVm(vmKey: string, options: { readonly limit?: number } = {}): Promise<RemediationRecord[]> {
    await this.ensureTable();
    const records: RemediationRecord[] = [];
    const pages = this.table.listEntities<RecordEntity>({ queryOptions: { filter: odata`PartitionKey eq ${tableKey(vmKey)}` } });
    for await (const entity of pages) records.push(this.fromEntity(entity));
    records.sort((a, b) => b.requestedAt.localeCompare(a.requestedAt));
    return records.slice(0, options.limit ?? records.length);
  }
}

export async function requireRecord(store: RemediationStore, id: string): Promise<RemediationRecord> {
  const record = await store.get(id);
  if (!record) throw new RecordNotFoundError(`remediation ${id} not found`, { id });
  return record;
}
