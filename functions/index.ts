/**
 * The function app's entry (package.json `main`): telemetry first, then every function's
 * registration with the Functions host, in one place. The handler modules beside it only export
 * handlers, so tests, the demo and the benchmark import them without registering anything
 * (outside the host, `@azure/functions` warns once per registration that it is in test mode).
 *
 * Which function is which:
 * - alerts (POST /api/alerts): Azure Monitor's action group → the alert queue (functions/alerts.ts)
 * - alert-worker, alert-poison: the alert queue → one remediation job per VM
 * - remediations-post, remediations-post-allow, remediations-get: manual invocation (functions/remediations.ts)
 * - remediation-worker, remediation-poison: the remediation queue → a remediation (functions/remediation-worker.ts)
 * - relaxation-sweep: every 15 minutes, the restores of relaxations whose time is up (functions/relaxation-sweep.ts)
 */
import { app } from '@azure/functions';
import { getServices } from '../src/app/services.js';
import { httpAuth } from '../src/auth/http.js';
import { ALERT_POISON_QUEUE_NAME, ALERT_QUEUE_NAME, POISON_QUEUE_NAME, QUEUE_NAME } from '../src/config.js';
import { errorMessage } from '../src/errors.js';
import { configuredConnectionString, startTelemetry, type TelemetryHandle } from '../src/telemetry/setup.js';
import { alertPoison, alertWorker, postAlert } from './alerts.js';
import { RELAXATION_SWEEP_SCHEDULE, relaxationSweep } from './relaxation-sweep.js';
import { remediationPoison, remediationWorker } from './remediation-worker.js';
import { getRemediation, postRemediation } from './remediations.js';

const STORAGE = 'AzureWebJobsStorage';

// Telemetry before the first invocation, so it is traced (host.json telemetryMode OpenTelemetry:
// the worker exports its own spans, metrics and logs). Only where Application Insights is
// configured, signed in with the app's managed identity, the services' own credential. A
// telemetry failure must not keep the app from starting: it is logged and the app runs without.
let telemetry: TelemetryHandle | undefined;
if (configuredConnectionString() !== '') {
  try {
    telemetry = await startTelemetry({ credential: getServices().credential });
  } catch (error) {
    console.error(JSON.stringify({ event: 'telemetry.start-failed', error: errorMessage(error) }));
  }
}
app.hook.appTerminate(async () => {
  await telemetry?.shutdown();
});

// The alerts function's own key (or the Entra secure webhook, AUTH_ALERTS=entra): see src/auth/http.ts.
const alertsAuth = httpAuth('alerts');
app.http('alerts', { methods: ['POST'], authLevel: alertsAuth.authLevel, route: 'alerts', handler: alertsAuth.guard('alerts', postAlert) });
app.storageQueue('alert-worker', { queueName: ALERT_QUEUE_NAME, connection: STORAGE, handler: alertWorker });
app.storageQueue('alert-poison', { queueName: ALERT_POISON_QUEUE_NAME, connection: STORAGE, handler: alertPoison });

// Function keys per function (or Entra app roles, AUTH_REMEDIATIONS=entra): see src/auth/http.ts.
// "allow" is refused on remediations-post; remediations-post-allow, with a key of its own, takes it.
const remediationsAuth = httpAuth('remediations');
app.http('remediations-post', { methods: ['POST'], authLevel: remediationsAuth.authLevel, route: 'remediations', handler: remediationsAuth.guard('request', postRemediation) });
app.http('remediations-post-allow', { methods: ['POST'], authLevel: remediationsAuth.authLevel, route: 'remediations/allow', handler: remediationsAuth.guard('request-with-allow', postRemediation) });
app.http('remediations-get', { methods: ['GET'], authLevel: remediationsAuth.authLevel, route: 'remediations/{id}', handler: remediationsAuth.guard('read-records', getRemediation) });

app.storageQueue('remediation-worker', { queueName: QUEUE_NAME, connection: STORAGE, handler: remediationWorker });
app.storageQueue('remediation-poison', { queueName: POISON_QUEUE_NAME, connection: STORAGE, handler: remediationPoison });

app.timer('relaxation-sweep', { schedule: RELAXATION_SWEEP_SCHEDULE, handler: relaxationSweep });
