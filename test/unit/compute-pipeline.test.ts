/**
 * The bounds and the ARM retry policy (src/adapters/pacing.ts) in a pipeline with a fake HTTP
 * client, and how the compute gateway's client is assembled from them.
 */
import { createEmptyPipeline, createHttpHeaders, createPipelineRequest, RestError, type HttpClient, type PipelineRequest, type PipelineResponse } from '@azure/core-rest-pipeline';
import { describe, expect, it } from 'vitest';
import { ArmComputeGateway } from '../../src/adapters/compute.js';
import { armRetryPolicy, deadlinePolicy, isRunCommandPost, retryAfterMs, tryTimeoutOf, tryTimeoutPolicy, wasNeverSent, withDeadline } from '../../src/adapters/pacing.js';
import { DependencyTimeoutError } from '../../src/errors.js';

const ARM = 'https://management.azure.com/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm1';
const BOUNDS = { tryTimeoutMs: 200, maxRetries: 3, retryDelayMs: 5, maxRetryDelayMs: 20, operationTimeoutMs: 1_000, maxRetryAfterMs: 1_000 };

type Step = { status: number; headers?: Record<string, string> } | { error: string } | 'hang';

/** An HTTP client that answers each attempt with the next step (the last one repeats) and counts attempts. */
function fakeClient(steps: readonly Step[]): HttpClient & { attempts: number } {
  const client = {
    attempts: 0,
    sendRequest(request: PipelineRequest): Promise<PipelineResponse> {
      const step = steps[Math.min(client.attempts, steps.length - 1)] ?? 'hang';
      client.attempts++;
      if (step === 'hang') {
        return new Promise((_resolve, reject) => {
          const abort = () => reject(Object.assign(new Error('The operation was aborted.'), { name: 'AbortError' }));
          if (request.abortSignal?.aborted) abort();
          request.abortSignal?.addEventListener('abort', abort);
        });
      }
      if ('error' in step) return Promise.reject(new RestError(`socket: ${step.error}`, { code: step.error, request }));
      return Promise.resolve({ request, status: step.status, headers: createHttpHeaders(step.headers ?? {}), bodyAsText: '' });
    },
  };
  return client;
}

function pipeline() {
  const p = createEmptyPipeline();
  p.addPolicy(deadlinePolicy('arm', BOUNDS.operationTimeoutMs));
  p.addPolicy(armRetryPolicy(BOUNDS), { phase: 'Retry' });
  p.addPolicy(tryTimeoutPolicy(BOUNDS.tryTimeoutMs), { afterPhase: 'Sign' });
  return p;
}

async function send(method: 'GET' | 'POST', url: string, steps: readonly Step[], abortSignal?: AbortSignal) {
  const client = fakeClient(steps);
  const started = Date.now();
  try {
    const response = await pipeline().sendRequest(client, createPipelineRequest({ url, method, ...(abortSignal ? { abortSignal } : {}) }));
    return { attempts: client.attempts, status: response.status, ms: Date.now() - started };
  } catch (error) {
    return { attempts: client.attempts, error, ms: Date.now() - started };
  }
}

describe('ARM retry policy', () => {
  it('never re-sends a Run Command POST after a lost answer, a reset, a timeout or a 5xx', async () => {
    expect(await send('POST', `${ARM}/runCommand?api-version=x`, [{ error: 'ECONNRESET' }, { status: 202 }])).toMatchObject({ attempts: 1, error: { code: 'ECONNRESET' } });
    expect(await send('POST', `${ARM}/runCommand?api-version=x`, [{ status: 503, headers: { 'retry-after': '0' } }, { status: 202 }])).toMatchObject({ attempts: 1, status: 503 });
    expect(await send('POST', `${ARM}/runCommand?api-version=x`, [{ status: 500 }, { status: 202 }])).toMatchObject({ attempts: 1, status: 500 });
    const hung = await send('POST', `${ARM}/runCommand?api-version=x`, ['hang', { status: 202 }]);
    expect(hung).toMatchObject({ attempts: 1 });
    expect(hung.error).toBeInstanceOf(DependencyTimeoutError);
    expect(hung.error).toMatchObject({ dependency: 'arm', timeoutMs: BOUNDS.tryTimeoutMs });
  });

  it('re-sends a Run Command POST that ARM definitely refused: a 429 with Retry-After, or no connection', async () => {
    expect(await send('POST', `${ARM}/runCommand?api-version=x`, [{ status: 429, headers: { 'retry-after': '0' } }, { status: 202 }])).toMatchObject({ attempts: 2, status: 202 });
    expect(await send('POST', `${ARM}/runCommand?api-version=x`, [{ error: 'ECONNREFUSED' }, { status: 202 }])).toMatchObject({ attempts: 2, status: 202 });
    // A 409 is an answer: returned as is (the adapter decides).
    expect(await send('POST', `${ARM}/runCommand?api-version=x`, [{ status: 409 }, { status: 202 }])).toMatchObject({ attempts: 1, status: 409 });
  });

  it('retries reads (polls included) on resets, timeouts, 5xx and Retry-After', async () => {
    expect(await send('GET', `${ARM}?api-version=x`, [{ error: 'ECONNRESET' }, { status: 200 }])).toMatchObject({ attempts: 2, status: 200 });
    expect(await send('GET', `${ARM}?api-version=x`, [{ status: 500 }, { status: 502 }, { status: 200 }])).toMatchObject({ attempts: 3, status: 200 });
    expect(await send('GET', `${ARM}/../../../operations/op1?api-version=x`, ['hang', { status: 200 }])).toMatchObject({ attempts: 2, status: 200 });
    expect(await send('GET', `${ARM}?api-version=x`, [{ status: 503, headers: { 'retry-after-ms': '10' } }, { status: 200 }])).toMatchObject({ attempts: 2, status: 200 });
    expect(await send('GET', `${ARM}?api-version=x`, [{ status: 404 }, { status: 200 }])).toMatchObject({ attempts: 1, status: 404 });
  });

  it('does not wait out a Retry-After longer than its cap: the 429 surfaces (throttled)', async () => {
    const result = await send('GET', `${ARM}?api-version=x`, [{ status: 429, headers: { 'retry-after': '1200' } }, { status: 200 }]);
    expect(result).toMatchObject({ attempts: 1, status: 429 });
    expect(result.ms).toBeLessThan(200);
  });

  it('stops after maxRetries, and a hung read ends at the deadline as DependencyTimeoutError', async () => {
    expect(await send('GET', `${ARM}?api-version=x`, [{ status: 500 }])).toMatchObject({ attempts: BOUNDS.maxRetries + 1, status: 500 });
    const hung = await send('GET', `${ARM}?api-version=x`, ['hang']);
    expect(hung.error).toBeInstanceOf(DependencyTimeoutError);
    expect(hung.error).toMatchObject({ dependency: 'arm' });
    // Each attempt timed out and was retried, until the retries ran out or the deadline did.
    expect(hung.attempts).toBeGreaterThanOrEqual(2);
    expect(hung.ms).toBeLessThan(BOUNDS.operationTimeoutMs + 200);
  });

  it('a caller that aborts gets its abort, not a timeout', async () => {
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 50);
    const result = await send('GET', `${ARM}?api-version=x`, ['hang'], controller.signal);
    expect(result.error).not.toBeInstanceOf(DependencyTimeoutError);
    expect(result.error).toMatchObject({ name: 'AbortError' });
    expect(result.attempts).toBe(1);
  });
});

describe('helpers', () => {
  it('isRunCommandPost matches POST …/runCommand of VMs and scale set VMs only', () => {
    expect(isRunCommandPost({ method: 'POST', url: `${ARM}/runCommand?api-version=x` })).toBe(true);
    expect(isRunCommandPost({ method: 'post' as string as 'POST', url: 'https://h/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachineScaleSets/ss/virtualMachines/1/runcommand' })).toBe(true);
    expect(isRunCommandPost({ method: 'GET', url: `${ARM}/runCommand` })).toBe(false);
    expect(isRunCommandPost({ method: 'PUT', url: `${ARM}/runCommands/rc1` })).toBe(false);
    expect(isRunCommandPost({ method: 'POST', url: 'https://api.loganalytics.io/v1/workspaces/w/query' })).toBe(false);
  });

  it('retryAfterMs reads the ms headers, seconds and HTTP dates, on 429/503 only', () => {
    const response = (status: number, headers: Record<string, string>) => ({ status, headers: createHttpHeaders(headers), request: createPipelineRequest({ url: ARM }) });
    expect(retryAfterMs(response(429, { 'retry-after': '3' }))).toBe(3000);
    expect(retryAfterMs(response(503, { 'retry-after-ms': '250', 'retry-after': '3' }))).toBe(250);
    expect(retryAfterMs(response(429, { 'retry-after': new Date(10_000).toUTCString() }), 4_000)).toBe(6_000);
    expect(retryAfterMs(response(429, {}))).toBeUndefined();
    expect(retryAfterMs(response(500, { 'retry-after': '3' }))).toBeUndefined();
  });

  it('wasNeverSent only for connections that were never made', () => {
    expect(wasNeverSent({ code: 'ECONNREFUSED' })).toBe(true);
    expect(wasNeverSent({ code: 'ENOTFOUND' })).toBe(true);
    expect(wasNeverSent({ code: 'ECONNRESET' })).toBe(false);
    expect(wasNeverSent(new Error('x'))).toBe(false);
  });

  it('a try timeout is a retryable RestError (ETIMEDOUT) marked with its bound', async () => {
    const p = createEmptyPipeline();
    p.addPolicy(tryTimeoutPolicy(30));
    const error = await p.sendRequest(fakeClient(['hang']), createPipelineRequest({ url: ARM })).catch((e: unknown) => e);
    expect(error).toMatchObject({ name: 'RestError', code: 'ETIMEDOUT' });
    expect(tryTimeoutOf(error)).toBe(30);
  });

  it('withDeadline turns a call cut off by its deadline into DependencyTimeoutError, and leaves other errors alone', async () => {
    const hang = (signal: AbortSignal) => new Promise<never>((_r, reject) => signal.addEventListener('abort', () => reject(new Error('aborted'))));
    await expect(withDeadline('queue', 30, 'send', hang)).rejects.toMatchObject({ name: 'DependencyTimeoutError', dependency: 'queue', timeoutMs: 30 });
    await expect(withDeadline('queue', 1_000, 'send', () => Promise.reject(new Error('403')))).rejects.toThrow('403');
    await expect(withDeadline('queue', 1_000, 'send', () => Promise.resolve(7))).resolves.toBe(7);
  });
});

describe('the compute gateway\'s ARM client', () => {
  it('has the deadline outside the token and our retry policy (the SDK default is gone), and the POST observer and try timeout last', () => {
    const gateway = new ArmComputeGateway({ getToken: () => Promise.resolve({ token: 't', expiresOnTimestamp: Date.now() + 60_000 }) }, { endpoint: 'https://management.azure.com', audience: 'https://management.azure.com' });
    const names = gateway['client']('00000000-0000-0000-0000-000000000001').pipeline.getOrderedPolicies().map((p) => p.name);
    expect(names).not.toContain('defaultRetryPolicy');
    const at = (name: string) => names.indexOf(name);
    // deadline → token → retry → … → POST observer → try timeout → the wire
    expect(at('rdpRemediatorDeadline')).toBeGreaterThanOrEqual(0);
    expect(at('rdpRemediatorDeadline')).toBeLessThan(at('bearerTokenAuthenticationPolicy'));
    expect(at('bearerTokenAuthenticationPolicy')).toBeLessThan(at('rdpRemediatorArmRetry'));
    expect(at('rdpRemediatorRunCommandPosts')).toBe(names.length - 2);
    expect(at('rdpRemediatorTryTimeout')).toBe(names.length - 1);
  });
});
