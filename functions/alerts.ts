/**
 * Automatic trigger. POST /api/alerts receives Azure Monitor alerts from an action group
 * (Azure Function receiver or webhook, common alert schema) and answers at once: 202 with
 * the alert queued, 200 when the alert is deliberately ignored (with the reason), 400 when
 * it is malformed (action groups do not retry 4xx, so it never loops). The alert worker then
 * resolves the targets and admits one remediation job per VM.
 */
import { app, type HttpRequest, type HttpResponseInit, type InvocationContext } from '@azure/functions';
import { classifyAlert } from '../src/alerts/classify.js';
import { fromAlertMessage } from '../src/alerts/message.js';
import { processAlert } from '../src/alerts/process.js';
import { getServices } from '../src/app/services.js';
import { ALERT_POISON_QUEUE_NAME, ALERT_QUEUE_NAME } from '../src/config.js';
import { ConfigurationError } from '../src/errors.js';
import { json, problem } from './http.js';

export async function postAlert(request: HttpRequest, context: InvocationContext): Promise<HttpResponseInit> {
  let body: unknown;
  try {
    body = await request.json();
  } catch {
    return problem(400, 'MalformedAlert', 'body: not JSON');
  }
  const services = getServices();
  const decision = classifyAlert(body, services.config.alerts.intake);
  switch (decision.kind) {
    case 'malformed':
      context.warn(JSON.stringify({ event: 'alert.malformed', reason: decision.reason }));
      return problem(400, 'MalformedAlert', decision.reason);
    case 'ignored':
      context.info(JSON.stringify({ event: 'alert.ignored', alertId: decision.alertId, reason: decision.reason, detail: decision.detail }));
      return json(200, { status: 'ignored', alertId: decision.alertId, reason: decision.reason, detail: decision.detail });
    case 'accepted': {
      const queue = services.alertQueue;
      if (!queue) throw new ConfigurationError('no alert queue configured');
      await queue.enqueue(decision.alert, new Date());
      const { alert } = decision;
      context.info(JSON.stringify({ event: 'alert.accepted', alertId: alert.alertId, vms: alert.vms.length, workspace: alert.workspace?.resourceId ?? null }));
      return json(202, {
        status: 'accepted',
        alertId: alert.alertId,
        targets: { vms: alert.vms.map((v) => v.id), workspace: alert.workspace?.resourceId ?? null, ignored: alert.otherTargets },
      });
    }
  }
}

export async function alertWorker(message: unknown, context: InvocationContext): Promise<void> {
  const parsed = fromAlertMessage(message);
  if (!parsed.success) {
    context.error(JSON.stringify({ event: 'alert.invalid-message', error: parsed.error }));
    return;
  }
  const services = getServices();
  const { queue } = services;
  if (!queue) throw new ConfigurationError('no remediation queue configured');
  const result = await processAlert(parsed.alert, {
    logs: services.logs,
    admissions: services.admissions,
    store: services.store,
    dispatch: (job) => queue.enqueue(job),
    mode: services.config.alerts.mode,
    dedupe: services.config.alerts.dedupe,
  });
  context.info(JSON.stringify({ event: 'alert.processed', ...result }));
}

/** Alerts the worker failed on every attempt: recorded in the audit trail with the reason. */
export async function alertPoison(message: unknown, context: InvocationContext): Promise<void> {
  const parsed = fromAlertMessage(message);
  const alertId = parsed.success ? parsed.alert.alertId : 'unparseable';
  const { store } = getServices();
  await store.recordPoison({
    kind: 'alert',
    key: alertId,
    reason: `the alert worker failed on every attempt; moved to ${ALERT_POISON_QUEUE_NAME}`,
    message: JSON.stringify(message).slice(0, 8_000),
  });
  context.error(JSON.stringify({ event: 'alert.poison', alertId }));
}

app.http('alerts', { methods: ['POST'], authLevel: 'function', route: 'alerts', handler: postAlert });
app.storageQueue('alert-worker', { queueName: ALERT_QUEUE_NAME, connection: 'AzureWebJobsStorage', handler: alertWorker });
app.storageQueue('alert-poison', { queueName: ALERT_POISON_QUEUE_NAME, connection: 'AzureWebJobsStorage', handler: alertPoison });
