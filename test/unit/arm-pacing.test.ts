import { createHttpHeaders, createPipelineRequest, type PipelineResponse } from '@azure/core-rest-pipeline';
import { describe, expect, it } from 'vitest';
import { armPacingPolicy, ObservedBucket, REMAINING_HEADER } from '../../src/adapters/pacing.js';
import { readOperationStatus } from '../../src/adapters/compute.js';

function answer(status: number, headers: Record<string, string> = {}, body?: unknown): PipelineResponse {
  const request = createPipelineRequest({ url: 'https://management.azure.com/x' });
  return { request, status, headers: createHttpHeaders(headers), ...(body === undefined ? {} : { bodyAsText: JSON.stringify(body) }) };
}

describe('ObservedBucket', () => {
  it('sends one request at a time until an answer says how much is left', async () => {
    const bucket = new ObservedBucket({ perSecond: 10, burst: 200 }, 5, () => 0);
    expect(bucket.estimate()).toBe(Number.POSITIVE_INFINITY);
    await bucket.take();
    let second = false;
    const next = bucket.take().then(() => (second = true));
    await new Promise((r) => setTimeout(r, 20));
    expect(second).toBe(false);
    bucket.settle(answer(200, { [REMAINING_HEADER.reads]: '100' }), 'reads');
    await next;
    expect(bucket.estimate()).toBe(99);
  });

  it('of the room an answer leaves above the reserve, sends half before hearing again, then waits for the refill', async () => {
    let t = 0;
    const bucket = new ObservedBucket({ perSecond: 10, burst: 200 }, 5, () => t);
    await bucket.take();
    bucket.settle(answer(202, { [REMAINING_HEADER.writes]: '25' }), 'writes');
    for (let i = 0; i < 10; i++) await bucket.take(); // room 20: half of it
    expect(bucket.estimate()).toBe(15);
    let passed = false;
    const waiting = bucket.take().then(() => (passed = true));
    await new Promise((r) => setTimeout(r, 20));
    expect(passed).toBe(false);
    t += 200; // two tokens refilled at 10/s: room 22, half is 11
    await waiting;
    expect(passed).toBe(true);
  });

  it('reads a 429 as an empty bucket, counts requests still in flight against the next answer, and ignores an unreadable header', async () => {
    let t = 0;
    const bucket = new ObservedBucket({ perSecond: 10, burst: 200 }, 0, () => t);
    await bucket.take();
    bucket.settle(answer(200, { [REMAINING_HEADER.reads]: '50' }), 'reads');
    await bucket.take();
    await bucket.take();
    bucket.settle(answer(429, { 'retry-after': '1' }), 'reads');
    // one request is still in flight, so the projection is 0 - 1 + refill
    expect(bucket.estimate()).toBe(-1);
    t += 200;
    expect(bucket.estimate()).toBeCloseTo(1, 6);
    bucket.settle(answer(200, { [REMAINING_HEADER.reads]: 'not-a-number' }), 'reads');
    expect(bucket.estimate()).toBeCloseTo(1, 6);
  });

  it('never projects more than the burst', () => {
    let t = 0;
    const bucket = new ObservedBucket({ perSecond: 25, burst: 250 }, 5, () => t);
    bucket.settle(answer(200, { [REMAINING_HEADER.reads]: '240' }), 'reads');
    t += 60_000;
    expect(bucket.estimate()).toBe(250);
  });
});

describe('armPacingPolicy', () => {
  it('keeps one projection per subscription and kind', async () => {
    const policy = armPacingPolicy('headers', { reads: { perSecond: 1000, burst: 1000 }, writes: { perSecond: 1000, burst: 1000 } }, { reserve: 0 });
    const sent: string[] = [];
    const send = (url: string, method: 'GET' | 'POST', remaining: string) =>
      policy.sendRequest(createPipelineRequest({ url, method }), (request) => {
        sent.push(`${request.method} ${request.url}`);
        return Promise.resolve(answer(200, { [REMAINING_HEADER[method === 'GET' ? 'reads' : 'writes']]: remaining }));
      });
    // Subscription a's reads are exhausted; its writes and subscription b are not held up.
    await send('https://management.azure.com/subscriptions/a/x', 'GET', '0');
    await send('https://management.azure.com/subscriptions/a/x', 'POST', '100');
    await send('https://management.azure.com/subscriptions/b/x', 'GET', '100');
    const held = send('https://management.azure.com/subscriptions/a/y', 'GET', '100');
    await new Promise((r) => setTimeout(r, 0));
    expect(sent).toHaveLength(3);
    await held; // the refill at 1000/s lets it go within a few ms
    expect(sent).toHaveLength(4);
  });
});

describe('readOperationStatus', () => {
  it("takes the output from the final Azure-AsyncOperation status, with ARM's duration", () => {
    const output = { value: [{ code: 'ComponentStatus/StdOut/succeeded', message: '{"kind":"probe"}' }, { code: 'ComponentStatus/StdErr/succeeded', message: '' }] };
    const done = readOperationStatus(answer(200, {}, { status: 'Succeeded', startTime: '2026-12-02T03:00:00.0000000+00:00', endTime: '2026-12-02T03:00:31.0000000+00:00', properties: { output } }), true);
    expect(done).toMatchObject({ state: 'succeeded', durationMs: 31_000 });
    expect(done.state === 'succeeded' ? done.output?.[0]?.message : null).toBe('{"kind":"probe"}');
  });

  it('reads running with its Retry-After, failed with the error ARM gave, and Location answers', () => {
    expect(readOperationStatus(answer(200, { 'retry-after': '15' }, { status: 'InProgress' }), true)).toEqual({ state: 'running', retryAfterMs: 15_000 });
    expect(readOperationStatus(answer(200, {}, { status: 'Failed', error: { code: 'VMAgentStatusCommunicationError', message: 'no agent' } }), true)).toMatchObject({ state: 'failed', code: 'VMAgentStatusCommunicationError', message: 'no agent' });
    expect(readOperationStatus(answer(200, {}, { status: 'Canceled' }), true)).toMatchObject({ state: 'failed' });
    expect(readOperationStatus(answer(202, { 'retry-after': '5' }), false)).toEqual({ state: 'running', retryAfterMs: 5_000 });
    expect(readOperationStatus(answer(200, {}, { value: [] }), false)).toMatchObject({ state: 'succeeded', output: [] });
  });

  it('throws a RestError for an answer that is not a status', () => {
    expect(() => readOperationStatus(answer(404, {}, { error: { code: 'NotFound', message: 'gone' } }), true)).toThrow(expect.objectContaining({ statusCode: 404, code: 'NotFound' }));
    expect(() => readOperationStatus(answer(500), true)).toThrow(expect.objectContaining({ statusCode: 500 }));
    expect(() => readOperationStatus(answer(200, {}, { nostatus: true }), true)).toThrow(/could not be read/);
  });
});
