/**
 * Manual invocation over HTTP (portal "Test/Run", curl with a function key):
 *   POST /api/remediations       { vmResourceId, mode, allow } → 202 + status URL
 *   GET  /api/remediations/{id}  → the recorded state and outcome
 */
import { app, type HttpRequest, type HttpResponseInit, type InvocationContext } from '@azure/functions';
import { dependency, submitRemediation } from '../src/app/intake.js';
import { getServices } from '../src/app/services.js';
import { httpAuth } from '../src/auth/http.js';
import { RunIdSchema } from '../src/contract/parameters.js';
import { failure, json, problem, readJson } from './http.js';

/**
 * A request body is a few hundred characters (an ID of at most 1,024, a reason of at most 256):
 * anything beyond this is answered 413 before it is parsed.
 */
const MAX_REQUEST_CHARS = 16 * 1024;

export async function postRemediation(request: HttpRequest, context: InvocationContext): Promise<HttpResponseInit> {
  try {
    const read = await readJson(request, MAX_REQUEST_CHARS);
    if (!read.ok) {
      return read.reason === 'too-large'
        ? problem(413, 'PayloadTooLarge', `body: ${read.length} characters; a request is at most ${MAX_REQUEST_CHARS}`, { field: 'body', limit: MAX_REQUEST_CHARS })
        : problem(400, 'InvalidJson', 'body: must be a JSON object like {"vmResourceId": "...", "mode": "diagnose"}', { field: 'body' });
    }
    const result = await submitRemediation(read.body, getServices());
    switch (result.kind) {
      case 'invalid':
        return problem(400, 'InvalidRequest', result.error.message, { field: result.error.field });
      case 'not-a-vm':
        return problem(422, 'NotAVirtualMachine', result.error.message, { field: result.error.field, resourceType: result.error.resourceType });
      case 'busy':
        return problem(409, 'VmBusy', `a remediation of this VM is in progress: ${result.activeRemediationId}`, {
          vmResourceId: result.vmResourceId,
          activeRemediationId: result.activeRemediationId,
        });
      case 'accepted': {
        const statusUrl = new URL(`/api/remediations/${result.job.id}`, request.url).toString();
        context.info(JSON.stringify({ event: 'remediation.queued', id: result.job.id, vm: result.job.vm.id, mode: result.job.mode, allow: result.job.allow }));
        return json(202, { id: result.job.id, state: result.record.state, statusUrl }, { location: statusUrl });
      }
    }
  } catch (error) {
    return failure(error, context, 'remediation.post-failed');
  }
}

export async function getRemediation(request: HttpRequest, context: InvocationContext): Promise<HttpResponseInit> {
  try {
    const id = RunIdSchema.safeParse(request.params.id ?? '');
    if (!id.success) return problem(400, 'InvalidRequest', 'id: must be a remediation id (a lower-case GUID)', { field: 'id' });
    const { store } = getServices();
    const record = await dependency('remediation-store', 'could not read the remediation', () => store.get(id.data));
    if (!record) return problem(404, 'NotFound', `remediation ${id.data} not found`);
    return json(200, record);
  } catch (error) {
    return failure(error, context, 'remediation.get-failed');
  }
}

// Function keys per function (or Entra app roles, AUTH_REMEDIATIONS=entra): see src/auth/http.ts.
// "allow" is refused on remediations-post; remediations-post-allow, with a key of its own, takes it.
const remediationsAuth = httpAuth('remediations');
app.http('remediations-post', { methods: ['POST'], authLevel: remediationsAuth.authLevel, route: 'remediations', handler: remediationsAuth.guard('request', postRemediation) });
app.http('remediations-post-allow', { methods: ['POST'], authLevel: remediationsAuth.authLevel, route: 'remediations/allow', handler: remediationsAuth.guard('request-with-allow', postRemediation) });
app.http('remediations-get', { methods: ['GET'], authLevel: remediationsAuth.authLevel, route: 'remediations/{id}', handler: remediationsAuth.guard('read-records', getRemediation) });
