/**
 * The audit trail: one record per remediation, readable by id (the status endpoint) and
 * by VM (history). In Table storage a record lives in its VM's partition; a small
 * immutable index entity maps the id to that partition, so both reads are point reads.
 *
 * Beside them, the relaxations to revert: one entity per security-lowering remediation in the
 * partition `relax-due`, its RowKey the time the relaxation is due to be reverted (ISO 8601,
 * which sorts as text) then the remediation id, so the relaxation sweep finds everything due
 * with one indexed range query on one partition.
 *
 * Creating a record is idempotent (two entities, so it can half-succeed: the index without
 * the record, or a 201 lost on the way back that the SDK's retry turns into 409): a create
 * that finds its own earlier write completes what is missing and succeeds. Saves can be
 * conditional on the version read, so two deliveries of one job cannot overwrite each
 * other's progress.
 */
import { randomUUID } from 'node:crypto';
import { odata, type TableClient } from '@azure/data-tables';
import type { RemediationRecord } from '../core/outcome.js';
import { RecordNotFoundError, RemediatorError } from '../errors.js';
import { isRestError, tableCreator, tableKey } from './storage.js';

/** A record and the version it was read or written at (the entity's ETag in Table storage). */
export interface StoredRecord {
  readonly record: RemediationRecord;
  readonly version: string;
}

export interface SaveOptions {
  /** Replace only if the stored record is still at this version; RecordVersionConflictError otherwise. */
  readonly ifVersion?: string;
}

export interface RemediationStore {
  /**
   * Adds a record. Idempotent: when the id is stored already for the same request (same VM,
   * source, mode and permissions), as after a retried call, a lost 201 or an earlier create
   * that wrote only the index, it writes what is missing and returns what is stored, which
   * may have moved on (a worker took the job). The same id for another request is a
   * RecordConflictError.
   */
  create(record: RemediationRecord): Promise<StoredRecord>;
  /** Replaces a record (state transitions); returns the new version. */
  save(record: RemediationRecord, options?: SaveOptions): Promise<string>;
  get(id: string): Promise<RemediationRecord | undefined>;
  /** The record with its version, for a conditional save. */
  read(id: string): Promise<StoredRecord | undefined>;
  /** Newest first. */
  listByVm(vmKey: string, options?: { readonly limit?: number }): Promise<RemediationRecord[]>;
  /** Counts an alert delivery that this remediation absorbed. */
  addDuplicate(id: string): Promise<void>;
  /** Keeps a message the host gave up on, with the reason. */
  recordPoison(entry: PoisonEntry): Promise<void>;
  listPoison(): Promise<PoisonRecord[]>;
  /** Notes a relaxation to revert at `dueAt`. Idempotent: the same entry again changes nothing. */
  addRelaxationDue(entry: RelaxationDue): Promise<void>;
  /** Every relaxation due at `now` or earlier, earliest first: one range query on one partition. */
  listRelaxationsDue(now: Date): Promise<RelaxationDue[]>;
  /** Forgets a due relaxation (its restore is on its way). Removing one that is gone is no error. */
  removeRelaxationDue(entry: RelaxationDue): Promise<void>;
  /**
   * How many relaxations are on record, due or not: one query of their partition that reads keys
   * only, stopping at MAX_COUNTED_RELAXATIONS (a count of that many means at least that many).
   */
  countRelaxations(): Promise<number>;
}

/** Where countRelaxations stops: five pages of keys in Table storage, far beyond any fleet's relaxations in force. */
export const MAX_COUNTED_RELAXATIONS = 5_000;

/** A relaxation to revert: remediation `remediationId` lowered security on its VM, due to be put back at `dueAt`. */
export interface RelaxationDue {
  /** ISO 8601 as Date.toISOString() writes it (UTC, milliseconds), so that text order is time order. */
  readonly dueAt: string;
  readonly remediationId: string;
  readonly vmResourceId: string;
}

/** The id is taken by another request (another VM, source, mode or set of permissions). */
export class RecordConflictError extends RemediatorError {}

/** A conditional save found the record at another version than the one it was read at. */
export class RecordVersionConflictError extends RemediatorError {}

/**
 * Whether a stored record and a new one are the same request, so that a create may succeed on
 * it. A restore is the same when it restores the same remediation, whoever asked for it.
 */
export function sameRequest(a: RemediationRecord, b: RemediationRecord): boolean {
  const allow = (r: RemediationRecord) => [...r.allow].sort().join(',');
  if (a.id !== b.id || a.vmKey !== b.vmKey || a.mode !== b.mode) return false;
  return a.mode === 'restore' ? a.restoreOf === b.restoreOf : a.source === b.source && allow(a) === allow(b);
}

function conflict(stored: RemediationRecord, record: RemediationRecord): RecordConflictError {
  return new RecordConflictError(`remediation ${record.id} exists for another request (${stored.vmResourceId}, ${stored.source}, ${stored.mode})`, {
    id: record.id,
    stored: stored.vmResourceId,
    requested: record.vmResourceId,
  });
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

/** The RowKey of a due relaxation: the time first, so a range query up to now finds every due one. */
export function relaxationRowKey(entry: Pick<RelaxationDue, 'dueAt' | 'remediationId'>): string {
  return `${entry.dueAt}|${entry.remediationId}`;
}

/** The upper bound of the due range at `now`: `~` sorts after `|` and every id character. */
function dueUpTo(now: Date): string {
  return `${now.toISOString()}~`;
}

export class InMemoryRemediationStore implements RemediationStore {
  private readonly records = new Map<string, { record: RemediationRecord; version: number }>();
  private readonly duplicates = new Map<string, number>();
  private readonly poison: PoisonRecord[] = [];
  private readonly due = new Map<string, RelaxationDue>();
  private versions = 0;

  public addRelaxationDue(entry: RelaxationDue): Promise<void> {
    this.due.set(relaxationRowKey(entry), { ...entry });
    return Promise.resolve();
  }
  public listRelaxationsDue(now: Date): Promise<RelaxationDue[]> {
    const upTo = dueUpTo(now);
    const keys = [...this.due.keys()].filter((k) => k <= upTo).sort();
    return Promise.resolve(keys.map((k) => ({ ...(this.due.get(k) as RelaxationDue) })));
  }
  public removeRelaxationDue(entry: RelaxationDue): Promise<void> {
    this.due.delete(relaxationRowKey(entry));
    return Promise.resolve();
  }
  public countRelaxations(): Promise<number> {
    return Promise.resolve(Math.min(this.due.size, MAX_COUNTED_RELAXATIONS));
  }

  public recordPoison(entry: PoisonEntry): Promise<void> {
    this.poison.push({ ...entry, recordedAt: new Date().toISOString() });
    return Promise.resolve();
  }
  public listPoison(): Promise<PoisonRecord[]> {
    return Promise.resolve([...this.poison]);
  }

  public addDuplicate(id: string): Promise<void> {
    this.duplicates.set(id, (this.duplicates.get(id) ?? 0) + 1);
    // As in Table storage, where the counter lives in the record's entity: its version moves.
    const stored = this.records.get(id);
    if (stored) stored.version = ++this.versions;
    return Promise.resolve();
  }

  private view(id: string): StoredRecord | undefined {
    const stored = this.records.get(id);
    if (!stored) return undefined;
    const duplicates = this.duplicates.get(id);
    return { record: duplicates ? { ...stored.record, duplicates } : stored.record, version: String(stored.version) };
  }

  public create(record: RemediationRecord): Promise<StoredRecord> {
    const existing = this.view(record.id);
    if (existing) return sameRequest(existing.record, record) ? Promise.resolve(existing) : Promise.reject(conflict(existing.record, record));
    this.records.set(record.id, { record: withoutDuplicates(record), version: ++this.versions });
    return Promise.resolve(this.view(record.id) as StoredRecord);
  }
  public save(record: RemediationRecord, options: SaveOptions = {}): Promise<string> {
    const stored = this.records.get(record.id);
    if (options.ifVersion !== undefined && (stored === undefined || String(stored.version) !== options.ifVersion)) {
      return Promise.reject(new RecordVersionConflictError(`remediation ${record.id} changed since version ${options.ifVersion}`, { id: record.id }));
    }
    const version = ++this.versions;
    this.records.set(record.id, { record: withoutDuplicates(record), version });
    return Promise.resolve(String(version));
  }
  public get(id: string): Promise<RemediationRecord | undefined> {
    return Promise.resolve(this.view(id)?.record);
  }
  public read(id: string): Promise<StoredRecord | undefined> {
    return Promise.resolve(this.view(id));
  }
  public listByVm(vmKey: string, options: { readonly limit?: number } = {}): Promise<RemediationRecord[]> {
    const all = [...this.records.keys()]
      .map((id) => this.view(id)?.record)
      .filter((r): r is RemediationRecord => r !== undefined && r.vmKey === vmKey)
      .sort((a, b) => b.requestedAt.localeCompare(a.requestedAt));
    return Promise.resolve(all.slice(0, options.limit ?? all.length));
  }
}

/** The counter is kept beside the record, never in it. */
function withoutDuplicates(record: RemediationRecord): RemediationRecord {
  if (record.duplicates === undefined) return record;
  const { duplicates: _duplicates, ...rest } = record;
  return rest;
}

const INDEX_PARTITION = 'by-id';
const POISON_PARTITION = 'poison';
export const RELAX_DUE_PARTITION = 'relax-due';

interface RelaxationDueEntity {
  partitionKey: string;
  rowKey: string;
  dueAt: string;
  remediationId: string;
  vmResourceId: string;
}

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
      record: JSON.stringify(withoutDuplicates(record)),
    };
  }

  public async create(record: RemediationRecord): Promise<StoredRecord> {
    await this.ensureTable();
    const vmPartition = tableKey(record.vmKey);
    // The index first: a record is never stored without the entity that finds it.
    try {
      await this.table.createEntity({ partitionKey: INDEX_PARTITION, rowKey: record.id, vmPartition });
    } catch (error) {
      // 409: an earlier create (or this one's own lost 201, retried by the SDK) wrote it.
      if (!isRestError(error, 409)) throw error;
      const index = await this.table.getEntity<{ vmPartition: string }>(INDEX_PARTITION, record.id);
      if (index.vmPartition !== vmPartition) throw conflict({ ...record, vmResourceId: index.vmPartition.replace(/\|/g, '/') }, record);
    }
    const entity = this.toEntity(record);
    try {
      const created = await this.table.createEntity(entity);
      return { record: withoutDuplicates(record), version: created.etag ?? '*' };
    } catch (error) {
      if (!isRestError(error, 409)) throw error;
    }
    // The record is there: this request's own earlier write (or a worker that took the job first).
    const stored = await this.table.getEntity<RecordEntity>(vmPartition, record.id);
    const existing = this.fromEntity(stored);
    if (!sameRequest(existing, record)) throw conflict(existing, record);
    return { record: existing, version: stored.etag };
  }

  public async save(record: RemediationRecord, options: SaveOptions = {}): Promise<string> {
    await this.ensureTable();
    // Merge, so the duplicates counter kept beside the record survives state changes.
    if (options.ifVersion === undefined) return (await this.table.upsertEntity(this.toEntity(record), 'Merge')).etag ?? '*';
    try {
      return (await this.table.updateEntity(this.toEntity(record), 'Merge', { etag: options.ifVersion })).etag ?? '*';
    } catch (error) {
      if (isRestError(error, 412) || isRestError(error, 404)) {
        throw new RecordVersionConflictError(`remediation ${record.id} changed since it was read`, { id: record.id }, { cause: error });
      }
      throw error;
    }
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

  public async addRelaxationDue(entry: RelaxationDue): Promise<void> {
    await this.ensureTable();
    const entity: RelaxationDueEntity = { partitionKey: RELAX_DUE_PARTITION, rowKey: relaxationRowKey(entry), dueAt: entry.dueAt, remediationId: entry.remediationId, vmResourceId: entry.vmResourceId };
    // Replace: a retried write of the same entry (a redelivered job) lands on the same key.
    await this.table.upsertEntity(entity, 'Replace');
  }

  public async listRelaxationsDue(now: Date): Promise<RelaxationDue[]> {
    await this.ensureTable();
    const out: RelaxationDue[] = [];
    const filter = odata`PartitionKey eq ${RELAX_DUE_PARTITION} and RowKey le ${dueUpTo(now)}`;
    for await (const e of this.table.listEntities<RelaxationDueEntity>({ queryOptions: { filter, select: ['dueAt', 'remediationId', 'vmResourceId'] } })) {
      out.push({ dueAt: e.dueAt, remediationId: e.remediationId, vmResourceId: e.vmResourceId });
    }
    return out;
  }

  public async removeRelaxationDue(entry: RelaxationDue): Promise<void> {
    await this.ensureTable();
    try {
      await this.table.deleteEntity(RELAX_DUE_PARTITION, relaxationRowKey(entry));
    } catch (error) {
      if (!isRestError(error, 404)) throw error;
    }
  }

  public async countRelaxations(): Promise<number> {
    await this.ensureTable();
    const filter = odata`PartitionKey eq ${RELAX_DUE_PARTITION}`;
    let count = 0;
    // One query, its pages of up to 1,000 keys each (Table storage's page size) read until the bound.
    for await (const page of this.table.listEntities({ queryOptions: { filter, select: ['RowKey'] } }).byPage({ maxPageSize: 1_000 })) {
      count += page.length;
      if (count >= MAX_COUNTED_RELAXATIONS) return MAX_COUNTED_RELAXATIONS;
    }
    return count;
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
    const record = withoutDuplicates(JSON.parse(entity.record) as RemediationRecord);
    return entity.duplicates ? { ...record, duplicates: entity.duplicates } : record;
  }

  public async get(id: string): Promise<RemediationRecord | undefined> {
    return (await this.read(id))?.record;
  }

  public async read(id: string): Promise<StoredRecord | undefined> {
    await this.ensureTable();
    try {
      const index = await this.table.getEntity<{ vmPartition: string }>(INDEX_PARTITION, id);
      const entity = await this.table.getEntity<RecordEntity>(index.vmPartition, id);
      return { record: this.fromEntity(entity), version: entity.etag };
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
