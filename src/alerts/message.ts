/**
 * The alert queue message: an accepted alert, with its VM targets as plain IDs.
 *
 * A storage queue message is at most 64 KiB, and the Functions trigger reads it base64-encoded,
 * so the JSON may be at most 48 KiB. An alert naming a few hundred VMs is more than that. Such
 * an alert is split, not refused: `splitAlert` cuts it into alerts of disjoint VM sets (or,
 * for a workspace alert, disjoint sets of the Computer values that narrow its Logs query), each
 * of which fits one message, and the webhook queues them all. This needs nothing new from the
 * alert worker: every part is an ordinary accepted alert with the same alert id, and a job's
 * remediation id derives from the alert id and the VM alone, so the parts admit each VM once
 * between them, and a part queued twice (the action group retrying after a partial failure)
 * finds its own admissions. What cannot be split is bounded at intake (ALERT_LIMITS in
 * classify.ts) and answered 413.
 */
import * as z from 'zod';
import { MAX_RESOURCE_ID_LENGTH, parseVmResourceId, parseWorkspaceResourceId, type VmRef } from '../core/resource-id.js';
import { PayloadTooLargeError } from '../errors.js';
import type { AcceptedAlert } from './classify.js';

/** 64 KiB of base64 holds 48 KiB of JSON; 3 KiB of that are left free for the queue's own encoding and future fields. */
export const ALERT_MESSAGE_MAX_BYTES = 45 * 1024;

const bounded = (max: number) => z.string().max(max);

export const AlertMessageSchema = z
  .object({
    v: z.literal(1),
    receivedAt: bounded(64),
    alert: z.object({
      alertId: z.string().min(1).max(1024),
      alertRule: bounded(1024).nullable(),
      monitoringService: bounded(1024),
      firedAt: bounded(64),
      vms: z.array(bounded(MAX_RESOURCE_ID_LENGTH)),
      workspace: z.object({ resourceId: bounded(MAX_RESOURCE_ID_LENGTH), workspaceId: z.guid().nullable() }).nullable(),
      otherTargets: z.array(bounded(MAX_RESOURCE_ID_LENGTH)),
      window: z.object({ start: bounded(64), end: bounded(64) }),
      computers: z.array(bounded(255)),
    }),
  })
  .strict();
export type AlertMessage = z.infer<typeof AlertMessageSchema>;

export function toAlertMessage(alert: AcceptedAlert, receivedAt: Date): AlertMessage {
  return {
    v: 1,
    receivedAt: receivedAt.toISOString(),
    alert: {
      alertId: alert.alertId,
      alertRule: alert.alertRule,
      monitoringService: alert.monitoringService,
      firedAt: alert.firedAt,
      vms: alert.vms.map((v) => v.id),
      workspace: alert.workspace === null ? null : { resourceId: alert.workspace.resourceId, workspaceId: alert.workspace.workspaceId },
      otherTargets: [...alert.otherTargets],
      window: { start: alert.window.start, end: alert.window.end },
      computers: [...alert.computers],
    },
  };
}

/** The size of the alert's queue message: UTF-8 bytes of its JSON, before base64. */
export function alertMessageBytes(alert: AcceptedAlert): number {
  return Buffer.byteLength(JSON.stringify(toAlertMessage(alert, SIZING_DATE)), 'utf8');
}

/** Any date: every ISO timestamp has the same length. */
const SIZING_DATE = new Date(0);

/**
 * The alert as parts that each fit one queue message (see the module comment): one part when
 * it fits already. VMs are split when the alert names VMs, the Computer values when it
 * targets a workspace. Parts after the first carry no non-VM targets (the first reports them),
 * and VM parts carry no Computer values (they narrow only a workspace query, and an alert
 * naming VMs has no workspace target).
 * @throws PayloadTooLargeError when a part of a single VM or Computer value does not fit.
 */
export function splitAlert(alert: AcceptedAlert, maxBytes = ALERT_MESSAGE_MAX_BYTES): AcceptedAlert[] {
  if (alertMessageBytes(alert) <= maxBytes) return [alert];
  if (alert.vms.length > 0) {
    return pack(alert.vms, (vms, first) => ({ ...alert, vms, computers: [], otherTargets: first ? alert.otherTargets : [] }), (vm) => vm.id, maxBytes, 'vms');
  }
  if (alert.computers.length > 0) {
    return pack(alert.computers, (computers, first) => ({ ...alert, computers, otherTargets: first ? alert.otherTargets : [] }), (c) => c, maxBytes, 'computers');
  }
  throw new PayloadTooLargeError('alert', `the alert's queue message is ${alertMessageBytes(alert)} bytes and cannot be split`, maxBytes);
}

/**
 * Greedy packing: as many items per part as fit. Sizes are added up item by item (an item
 * costs its JSON and a comma), then each part is measured whole once to be sure.
 */
function pack<T>(items: readonly T[], part: (items: T[], first: boolean) => AcceptedAlert, serialised: (item: T) => string, maxBytes: number, what: string): AcceptedAlert[] {
  const parts: AcceptedAlert[] = [];
  let current: T[] = [];
  let size = 0;
  const close = () => {
    const done = part(current, parts.length === 0);
    if (alertMessageBytes(done) > maxBytes) throw new PayloadTooLargeError(`alert.${what}`, `a part of the alert does not fit one queue message (${maxBytes} bytes)`, maxBytes);
    parts.push(done);
    current = [];
  };
  for (const item of items) {
    const cost = Buffer.byteLength(JSON.stringify(serialised(item)), 'utf8') + 1;
    if (current.length === 0) size = alertMessageBytes(part([], parts.length === 0));
    if (current.length > 0 && size + cost > maxBytes) {
      close();
      size = alertMessageBytes(part([], false));
    }
    current.push(item);
    size += cost;
  }
  if (current.length > 0) close();
  return parts;
}

export function fromAlertMessage(input: unknown): { success: true; alert: AcceptedAlert; receivedAt: string } | { success: false; error: string } {
  const parsed = AlertMessageSchema.safeParse(input);
  if (!parsed.success) return { success: false, error: parsed.error.issues.slice(0, 5).map((i) => `${i.path.join('.')}: ${i.message}`).join('; ') };
  const vms: VmRef[] = [];
  for (const id of parsed.data.alert.vms) {
    const ref = parseVmResourceId(id, 'alert.vms');
    if (!ref.success) return { success: false, error: ref.error.message };
    vms.push(ref.data);
  }
  const { workspace } = parsed.data.alert;
  if (workspace !== null) {
    const ws = parseWorkspaceResourceId(workspace.resourceId, 'alert.workspace.resourceId');
    if (!ws.success) return { success: false, error: ws.error.message };
  }
  return { success: true, alert: { ...parsed.data.alert, vms }, receivedAt: parsed.data.receivedAt };
}
