/**
 * Exactly one remediation per VM for an alert, however often it is delivered: the first
 * Fired delivery for a key (the VM, or the alert and the VM) admits a job; later ones,
 * while that job is queued, running or cooling down, are counted as duplicates.
 * The admission row is taken with ETag conditions, so concurrent deliveries cannot both win.
 *
 * Covering is bounded: a job that is lost (its record never written, or left queued because
 * its message never went out) must not turn every later alert for the VM into a duplicate.
 * A missing record covers only while it may still be being written, a queued one only while
 * it has been touched recently; a running one covers (its lease and redelivery end it).
 */
import type { TableClient } from '@azure/data-tables';
import type { RemediationRecord } from '../core/outcome.js';
import { isRestError, tableCreator, tableKey } from '../adapters/storage.js';

export interface DedupeSettings {
  /** `vm`: one job per VM per cooldown whatever the alert; `alert-and-vm`: one per alert and VM. */
  readonly scope: 'vm' | 'alert-and-vm';
  /** After a remediation completes, further alerts for the key are duplicates for this long. */
  readonly cooldownMs: number;
  /** A queued record not updated for this long no longer covers (default QUEUED_COVERS_MS). */
  readonly queuedCoversMs?: number;
}

/**
 * How long a queued record covers after its last update. A job waits in the queue while the
 * workers are busy, and a throttled one is put back (its record touched again); 30 minutes is
 * well past both. After it, a new alert for the VM is admitted as a new remediation.
 */
export const QUEUED_COVERS_MS = 30 * 60_000;

/**
 * How long an admission whose record does not exist covers: the window between taking the
 * admission row and writing the record, which is milliseconds unless that delivery failed.
 */
export const MISSING_COVERS_MS = 2 * 60_000;

export interface CoverBounds {
  /** When the admission row naming the record was written (ms); without it a missing record does not cover. */
  readonly admittedAt?: number;
  readonly queuedCoversMs?: number;
}

export function admissionKey(settings: DedupeSettings, alertId: string, vmKey: string): string {
  return settings.scope === 'vm' ? vmKey : `${alertId.toLowerCase()}|${vmKey}`;
}

/**
 * Whether an earlier admission still covers a new alert: its remediation is being created
 * (missing, admitted less than MISSING_COVERS_MS ago), queued and updated within the bound,
 * running, or completed within the cooldown.
 */
export function stillCovers(record: RemediationRecord | undefined, now: number, cooldownMs: number, bounds: CoverBounds = {}): boolean {
  if (record === undefined) return bounds.admittedAt !== undefined && now - bounds.admittedAt < MISSING_COVERS_MS;
  switch (record.state) {
    case 'queued': {
      const updated = Date.parse(record.updatedAt);
      return Number.isFinite(updated) && now - updated < (bounds.queuedCoversMs ?? QUEUED_COVERS_MS);
    }
    case 'running':
      return true;
    case 'completed':
      return Date.parse(record.completedAt) + cooldownMs > now;
  }
}

export type Admission =
  /** `redelivery`: the row already named this remediation (the same alert, delivered again). */
  | { readonly admitted: true; readonly redelivery: boolean }
  | { readonly admitted: false; readonly existingRemediationId: string };

/** Whether the admission of `existingRemediationId`, written at `admittedAt` (ISO), still covers. */
export type CoversCheck = (existingRemediationId: string, admittedAt: string | undefined) => Promise<boolean>;

export interface AdmissionStore {
  /**
   * Admits `remediationId` for `key` unless `covers(existing)` says an earlier admission
   * still holds; then reports that one. `now` stamps the row (default: the clock).
   */
  admit(key: string, remediationId: string, alertId: string, covers: CoversCheck, now?: Date): Promise<Admission>;
  /** What would happen, without writing. */
  peek(key: string): Promise<string | undefined>;
}

export class InMemoryAdmissionStore implements AdmissionStore {
  private readonly rows = new Map<string, { remediationId: string; admittedAt: string }>();
  public async admit(key: string, remediationId: string, _alertId: string, covers: CoversCheck, now: Date = new Date()): Promise<Admission> {
    const existing = this.rows.get(key);
    if (existing?.remediationId === remediationId) return { admitted: true, redelivery: true };
    if (existing !== undefined && (await covers(existing.remediationId, existing.admittedAt))) return { admitted: false, existingRemediationId: existing.remediationId };
    this.rows.set(key, { remediationId, admittedAt: now.toISOString() });
    return { admitted: true, redelivery: false };
  }
  public peek(key: string): Promise<string | undefined> {
    return Promise.resolve(this.rows.get(key)?.remediationId);
  }
}

const PARTITION = 'alert-admission';

interface AdmissionEntity {
  partitionKey: string;
  rowKey: string;
  remediationId: string;
  alertId: string;
  admittedAt: string;
}

export class TableAdmissionStore implements AdmissionStore {
  private readonly ensureTable: () => Promise<void>;

  public constructor(private readonly table: TableClient) {
    this.ensureTable = tableCreator(table);
  }


  public async admit(key: string, remediationId: string, alertId: string, covers: CoversCheck, now: Date = new Date()): Promise<Admission> {
    await this.ensureTable();
    const entity: AdmissionEntity = { partitionKey: PARTITION, rowKey: tableKey(key), remediationId, alertId, admittedAt: now.toISOString() };
    for (let attempt = 0; attempt < 5; attempt++) {
      try {
        await this.table.createEntity(entity);
        return { admitted: true, redelivery: false };
      } catch (error) {
        if (!isRestError(error, 409)) throw error;
      }
      let current: AdmissionEntity & { etag: string };
      try {
        current = await this.table.getEntity<AdmissionEntity>(PARTITION, entity.rowKey);
      } catch (error) {
        if (isRestError(error, 404)) continue; // removed in between: try to create again
        throw error;
      }
      if (current.remediationId === remediationId) return { admitted: true, redelivery: true }; // our own earlier write
      if (await covers(current.remediationId, current.admittedAt)) return { admitted: false, existingRemediationId: current.remediationId };
      try {
        await this.table.updateEntity(entity, 'Replace', { etag: current.etag });
        return { admitted: true, redelivery: false };
      } catch (error) {
        if (!isRestError(error, 412)) throw error;
        // Someone else replaced it first: look again.
      }
    }
    const winner = await this.table.getEntity<AdmissionEntity>(PARTITION, entity.rowKey);
    return { admitted: false, existingRemediationId: winner.remediationId };
  }

  public async peek(key: string): Promise<string | undefined> {
    await this.ensureTable();
    try {
      return (await this.table.getEntity<AdmissionEntity>(PARTITION, tableKey(key))).remediationId;
    } catch (error) {
      if (isRestError(error, 404)) return undefined;
      throw error;
    }
  }
}
