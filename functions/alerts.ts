/**
 * Automatic trigger. POST /api/alerts receives Azure Monitor alerts from an action group
 * (Azure Function receiver or webhook, common alert schema) and answers at once: 202 with
 * the alert queued, 200 when the alert is deliberately ignored (with the reason), 400 when
 * it is malformed and 413 when it is larger than an alert may be (action groups do not retry
 * 4xx, so it never loops), 5xx only when storage fails (logged; the retry is then welcome).
 * Targets that break Azure's naming rules are skipped and listed in the answer. The alert
 * worker then resolves the targets and admits one remediation job per VM.
 */
import type { HttpRequest, HttpResponseInit, InvocationContext } from '@azure/functions';
import { classifyAlert } from '../src/alerts/classify.js';
import { fromAlertMessage, splitAlert } from '../src/alerts/message.js';
import type { AcceptedAlert } from '../src/alerts/classify.js';
import { processAlert } from '../src/alerts/process.js';
import { dependency } from '../src/app/intake.js';
import { getServices, type Services } from '../src/app/services.js';
import { ALERT_POISON_QUEUE_NAME } from '../src/config.js';
import { ConfigurationError } from '../src/errors.js';
import { failure, json, problem, readJson } from './http.js';
import { queueHandler, type LogEntry, type ParsedMessage } from './queue-handler.js';

/**
 * A common-alert-schema body is a few KiB; one naming the most targets intake accepts
 * (ALERT_LIMITS: 2,000 VMs) is under 1 MiB. Larger bodies are refused before parsing.
 */
const MAX_ALERT_CHARS = 4 * 1024 * 1024;

/**
 * Over-large alerts: split where that keeps the meaning, 413 where it cannot. An alert naming
 * more VMs than one queue message holds (about 300) is queued as several messages of disjoint
 * VM sets (splitAlert, src/alerts/message.ts): the work is the same, and the alert worker
 * already treats each as an ordinary alert. A field no split can shrink (an alert id beyond its
 * bound) or more targets than an Azure Monitor alert carries is answered 413 AlertTooLarge:
 * a 4xx, so the action group does not retry it, and never a 500 it would.
 */
export async function postAlert(request: HttpRequest, context: InvocationContext): Promise<HttpResponseInit> {
  try {
    const read = await readJson(request, MAX_ALERT_CHARS);
    if (!read.ok) {
      return read.reason === 'too-large'
        ? problem(413, 'AlertTooLarge', `body: ${read.length} characters; an alert is at most ${MAX_ALERT_CHARS}`, { field: 'body', limit: MAX_ALERT_CHARS })
        : problem(400, 'MalformedAlert', 'body: not JSON', { field: 'body' });
    }
    const services = getServices();
    const decision = classifyAlert(read.body, services.config.alerts.intake);
    switch (decision.kind) {
      case 'malformed':
        context.warn(JSON.stringify({ event: 'alert.malformed', code: decision.code, field: decision.field, reason: decision.reason }));
        return problem(decision.code === 'AlertTooLarge' ? 413 : 400, decision.code, decision.reason, {
          field: decision.field,
          ...(decision.limit === undefined ? {} : { limit: decision.limit }),
        });
      case 'ignored':
        context.info(JSON.stringify({ event: 'alert.ignored', alertId: decision.alertId, reason: decision.reason, detail: decision.detail }));
        return json(200, { status: 'ignored', alertId: decision.alertId, reason: decision.reason, detail: decision.detail, rejected: decision.rejectedTargets });
      case 'accepted': {
        const queue = services.alertQueue;
        if (!queue) throw new ConfigurationError('no alert queue configured');
        const { alert, rejectedTargets } = decision;
        const parts = splitAlert(alert);
        const receivedAt = new Date();
        await dependency('alert-queue', 'could not queue the alert', () => Promise.all(parts.map((part) => queue.enqueue(part, receivedAt))));
        if (rejectedTargets.length > 0) context.warn(JSON.stringify({ event: 'alert.targets-rejected', alertId: alert.alertId, rejected: rejectedTargets }));
        context.info(JSON.stringify({ event: 'alert.accepted', alertId: alert.alertId, vms: alert.vms.length, messages: parts.length, workspace: alert.workspace?.resourceId ?? null }));
        return json(202, {
          status: 'accepted',
          alertId: alert.alertId,
          messages: parts.length,
          targets: { vms: alert.vms.map((v) => v.id), workspace: alert.workspace?.resourceId ?? null, ignored: alert.otherTargets, rejected: rejectedTargets },
        });
      }
    }
  } catch (error) {
    return failure(error, context, 'alert.post-failed');
  }
}

/** An alert as the webhook queued it. */
interface QueuedAlert {
  readonly alert: AcceptedAlert;
  readonly receivedAt: string;
}

/** An alert message as the webhook queued it, or why it cannot be read. */
function parseAlertMessage(message: unknown): ParsedMessage<QueuedAlert> {
  const parsed = fromAlertMessage(message);
  return parsed.success ? { success: true, data: { alert: parsed.alert, receivedAt: parsed.receivedAt } } : parsed;
}

export const alertWorker = queueHandler<QueuedAlert>({
  invalidEvent: 'alert.invalid-message',
  parse: parseAlertMessage,
  handle: async ({ alert }, services) => {
    const { queue } = services;
    if (!queue) throw new ConfigurationError('no remediation queue configured');
    const result = await processAlert(alert, {
      logs: services.logs,
      admissions: services.admissions,
      store: services.store,
      dispatch: (job) => queue.enqueue(job),
      mode: services.config.alerts.mode,
      dedupe: services.config.alerts.dedupe,
    });
    return { level: 'info', event: 'alert.processed', fields: { ...result } };
  },
});

/** Alerts the worker failed on every attempt: recorded in the audit trail with the reason, parseable or not. */
async function recordAlertPoison(alertId: string, { store }: Services, message: unknown): Promise<LogEntry> {
  await store.recordPoison({
    kind: 'alert',
    key: alertId,
    reason: `the alert worker failed on every attempt; moved to ${ALERT_POISON_QUEUE_NAME}`,
    message: JSON.stringify(message).slice(0, 8_000),
  });
  return { level: 'error', event: 'alert.poison', fields: { alertId } };
}

export const alertPoison = queueHandler<QueuedAlert>({
  invalidEvent: 'alert.poison',
  parse: parseAlertMessage,
  handle: ({ alert }, services, _context, message) => recordAlertPoison(alert.alertId, services, message),
  onInvalid: (_error, services, _context, message) => recordAlertPoison('unparseable', services, message),
});
