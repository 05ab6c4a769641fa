/**
 * Manual invocation over HTTP (portal "Test/Run", curl with a function key):
 *   POST /api/remediations       { vmResourceId, mode, allow, relaxForHours } → 202 + status URL
 *   POST /api/remediations       { mode: "restore", restoreOf } → 202 + status URL (404, 409, 422 when there is nothing to restore)
 *   GET  /api/remediations/{id}  → the recorded state and outcome
 */
import type { HttpRequest, HttpResponseInit, InvocationContext } from '@azure/functions';
import { dependency, submitRemediation, type RestoreRefusedError } from '../src/app/intake.js';
import { getServices } from '../src/app/services.js';
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
      case 'restore-refused':
        return restoreRefused(result.error);
      case 'accepted': {
        const { job } = result;
        const statusUrl = new URL(`/api/remediations/${job.id}`, request.url).toString();
        const what = job.mode === 'restore' ? { restoreOf: job.restoreOf } : { allow: job.allow, ...(job.relaxForHours === undefined ? {} : { relaxForHours: job.relaxForHours }) };
        context.info(JSON.stringify({ event: 'remediation.queued', id: job.id, vm: job.vm.id, mode: job.mode, ...what }));
        return json(202, { id: job.id, state: result.record.state, statusUrl, ...(job.mode === 'restore' ? { restoreOf: job.restoreOf } : {}) }, { location: statusUrl });
      }
    }
  } catch (error) {
    return failure(error, context, 'remediation.post-failed');
  }
}

/** Nothing to restore: 404 for an unknown remediation, 422 for one without security changes, 409 while or after another restore (or the remediation itself) runs. */
function restoreRefused(error: RestoreRefusedError): HttpResponseInit {
  const extra = { field: 'restoreOf', restoreOf: error.restoreOf, ...(error.by === undefined ? {} : { restoredBy: error.by }) };
  switch (error.reason) {
    case 'unknown-remediation':
      return problem(404, 'RemediationNotFound', error.message, extra);
    case 'no-security-change':
      return problem(422, 'NothingToRestore', error.message, extra);
    case 'not-completed':
      return problem(409, 'RemediationNotCompleted', error.message, extra);
    case 'already-restored':
      return problem(409, 'AlreadyRestored', error.message, extra);
    case 'restore-pending':
      return problem(409, 'RestorePending', error.message, extra);
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
