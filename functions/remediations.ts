/**
 * Manual invocation over HTTP (portal "Test/Run", curl with a function key):
 *   POST /api/remediations       { vmResourceId, mode, allow } → 202 + status URL
 *   GET  /api/remediations/{id}  → the recorded state and outcome
 */
import { app, type HttpRequest, type HttpResponseInit, type InvocationContext } from '@azure/functions';
import { submitRemediation } from '../src/app/intake.js';
import { getServices } from '../src/app/services.js';
import { RunIdSchema } from '../src/contract/parameters.js';
import { json, problem } from './http.js';

export async function postRemediation(request: HttpRequest, context: InvocationContext): Promise<HttpResponseInit> {
  let body: unknown;
  try {
    body = await request.json();
  } catch {
    return problem(400, 'InvalidJson', 'body: must be a JSON object like {"vmResourceId": "...", "mode": "diagnose"}', { field: 'body' });
  }
  const result = await submitRemediation(body, getServices());
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
}

export async function getRemediation(request: HttpRequest, _context: InvocationContext): Promise<HttpResponseInit> {
  const id = RunIdSchema.safeParse(request.params.id ?? '');
  if (!id.success) return problem(400, 'InvalidRequest', 'id: must be a remediation id (a lower-case GUID)', { field: 'id' });
  const record = await getServices().store.get(id.data);
  if (!record) return problem(404, 'NotFound', `remediation ${id.data} not found`);
  return json(200, record);
}

app.http('remediations-post', { methods: ['POST'], authLevel: 'function', route: 'remediations', handler: postRemediation });
app.http('remediations-get', { methods: ['GET'], authLevel: 'function', route: 'remediations/{id}', handler: getRemediation });
