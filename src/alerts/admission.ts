/**
 * Exactly one remediation per VM for an alert, however often it is delivered: the first
 * Fired delivery for a key (the VM, or the alert and the VM) admits a job; later ones,
 * while that job is queued, running or cooling down, are counted as duplicates.
 * The admission row is taken with ETag conditions, so concurrent deliveries cannot both win.
 */
import type { TableClient } from '@azure/data-tables';
import type { RemediationRecord } from '../core/outcome.js';
import { isRestError, tableCreator, tableKey } from '../adapters/storage.js';

export interface DedupeSettings {
  /** `vm`: one job per VM per cooldown whatever the alert; `alert-and-vm`: one per alert and VM. */
  readonly scope: 'vm' | 'alert-and-vm';
  /** After a remediation completes, further alerts for the key are duplicates for this long. */
  readonly cooldownMs: number;
}

export function admissionKey(settings: DedupeSettings, alertId: string, vmKey: string): string {
  return settings.scope === 'vm' ? vmKey : `${alertId.toLowerCase()}|${vmKey}`;
}

/**
 * Whether an earlier admission still covers a new alert: its remediation is unknown (being
 * created), queued or running, or completed within the cooldown.
 */
export function stillCovers(record: RemediationRecord | undefined, now: number, cooldownMs: number): boolean {
  if (record === undefined || record.state !== 'completed') return true;
  return Date.parse(record.completedAt) + cooldownMs > now;
}

export type Admission =
  /** `redelivery`: the row already named this remediation (the same alert, delivered again). */
  | { readonly admitted: true; readonly redelivery: boolean }
  | { readonly admitted: false; readonly existingRemediationId: string };

export interface AdmissionStore {
  /**
   * Admits `remediationId` for `key` unless `covers(existing)` says an earlier admission
   * still holds; then reports that one.
   */
  admit(key: string, remediationId: string, alertId: string, covers: (existingRemediationId: string) => Promise<boolean>): Promise<Admission>;
  /** What would happen, without writing. */
  peek(key: string): Promise<string | undefined>;
}

export class InMemoryAdmissionStore implements AdmissionStore {
  private readonly rows = new Map<string, string>();
  public async admit(key: string, remediationId: string, _alertId: string, covers: (id: string) => Promise<boolean>): Promise<Admission> {
    const existing = this.rows.get(key);
    if (existing === remediationId) return { admitted: true, redelivery: true };
    if (existing !== undefined && (await covers(existing))) return { admitted: false, existingRemediationId: existing };
    this.rows.set(key, remediationId);
    return { admitted: true, redelivery: false };
  }
  public peek(key: string): Promise<string | undefined> {
    return Promise.resolve(this.rows.get(key));
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


  public async admit(key: string, remediationId: string, alertId: string, covers: (id: string) => Promise<boolean>): Promise<Admission> {
    await this.ensureTable();
    const entity: AdmissionEntity = { partitionKey: PARTITION, rowKey: tableKey(key), remediationId, alertId, admittedAt: new Date().toISOString() };
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
      if (await covers(current.remediationId)) return { admitted: false, existingRemediationId: current.remediationId };
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
