/** The alert queue message: an accepted alert, with its VM targets as plain IDs. */
import { z } from 'zod';
import { parseVmResourceId, type VmRef } from '../core/resource-id.js';
import type { AcceptedAlert } from './classify.js';

export const AlertMessageSchema = z
  .object({
    v: z.literal(1),
    receivedAt: z.string(),
    alert: z.object({
      alertId: z.string().min(1),
      alertRule: z.string().nullable(),
      monitoringService: z.string(),
      firedAt: z.string(),
      vms: z.array(z.string()),
      workspace: z.object({ resourceId: z.string(), workspaceId: z.string().nullable() }).nullable(),
      otherTargets: z.array(z.string()),
      window: z.object({ start: z.string(), end: z.string() }),
      computers: z.array(z.string()),
    }),
  })
  .strict();
export type AlertMessage = z.infer<typeof AlertMessageSchema>;

export function toAlertMessage(alert: AcceptedAlert, receivedAt: Date): AlertMessage {
  return { v: 1, receivedAt: receivedAt.toISOString(), alert: { ...alert, vms: alert.vms.map((v) => v.id), computers: [...alert.computers], otherTargets: [...alert.otherTargets] } };
}

export function fromAlertMessage(input: unknown): { success: true; alert: AcceptedAlert; receivedAt: string } | { success: false; error: string } {
  const parsed = AlertMessageSchema.safeParse(input);
  if (!parsed.success) return { success: false, error: parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ') };
  const vms: VmRef[] = [];
  for (const id of parsed.data.alert.vms) {
    const ref = parseVmResourceId(id);
    if (!ref.success) return { success: false, error: `alert.vms: ${ref.error.message}` };
    vms.push(ref.data);
  }
  return { success: true, alert: { ...parsed.data.alert, vms }, receivedAt: parsed.data.receivedAt };
}
