/**
 * The queue handlers' wrapper (functions/queue-handler.ts): parse at the boundary, run with the
 * services, log what the run returns; an unparseable message is logged and dropped, or handed
 * to onInvalid. Driven with @azure/functions' own InvocationContext.
 */
import { InvocationContext } from '@azure/functions';
import { describe, expect, it } from 'vitest';
import { ManagedIdentityCredential, DefaultAzureCredential } from '@azure/identity';
import { log, queueHandler, withMessage, type ParsedMessage } from '../../functions/queue-handler.js';
import { createServices, type Services } from '../../src/app/services.js';

function capture(): { context: InvocationContext; lines: { level: string; entry: Record<string, unknown> }[] } {
  const lines: { level: string; entry: Record<string, unknown> }[] = [];
  const push = (level: string) => (...args: unknown[]) => lines.push({ level, entry: JSON.parse(String(args[0])) as Record<string, unknown> });
  const context = new InvocationContext({ functionName: 'test', logHandler: (level, ...args) => push(level)(...args) });
  return { context, lines };
}

const services = (): Services => createServices({ env: {}, allowInMemory: true });
const parseNumber = (m: unknown): ParsedMessage<number> => (typeof m === 'number' ? { success: true, data: m } : { success: false, error: 'not a number' });

describe('queueHandler', () => {
  it('parses, runs with the services and logs each returned entry at its level', async () => {
    const seen: number[] = [];
    const handler = queueHandler<number>({
      invalidEvent: 'test.invalid',
      parse: parseNumber,
      services,
      handle: (n, s) => {
        expect(s.config).toBeDefined();
        seen.push(n);
        return Promise.resolve([
          { level: 'info', event: 'test.done', fields: { n } },
          { level: 'warn', event: 'test.note' },
        ] as const);
      },
    });
    const { context, lines } = capture();
    await handler(7, context);
    expect(seen).toEqual([7]);
    expect(lines).toEqual([
      { level: 'information', entry: { event: 'test.done', n: 7 } },
      { level: 'warning', entry: { event: 'test.note' } },
    ]);
  });

  it('logs an unparseable message as an error and drops it, without running', async () => {
    let ran = false;
    const handler = queueHandler<number>({ invalidEvent: 'test.invalid', parse: parseNumber, services, handle: () => Promise.resolve(void (ran = true)) });
    const { context, lines } = capture();
    await handler('x', context);
    expect(ran).toBe(false);
    expect(lines).toEqual([{ level: 'error', entry: { event: 'test.invalid', error: 'not a number' } }]);
  });

  it('hands an unparseable message to onInvalid when there is one', async () => {
    const handler = queueHandler<number>({
      invalidEvent: 'test.invalid',
      parse: parseNumber,
      services,
      handle: () => Promise.resolve(undefined),
      onInvalid: (error, _s, _c, message) => Promise.resolve({ level: 'error', event: 'test.recorded', fields: { error, message } } as const),
    });
    const { context, lines } = capture();
    await handler({ a: 1 }, context);
    expect(lines).toEqual([{ level: 'error', entry: { event: 'test.recorded', error: 'not a number', message: { a: 1 } } }]);
  });

  it('lets a failure of the run fail the invocation (the host retries it)', async () => {
    const handler = queueHandler<number>({ invalidEvent: 'test.invalid', parse: parseNumber, services, handle: async () => Promise.reject(new Error('boom')) });
    await expect(handler(1, capture().context)).rejects.toThrow('boom');
  });

  it('writes one JSON line per entry, the event first', () => {
    const { context, lines } = capture();
    log(context, { level: 'debug', event: 'test.debug', fields: { a: 1 } });
    expect(lines).toEqual([{ level: 'debug', entry: { event: 'test.debug', a: 1 } }]);
  });

  it('withMessage keeps the value and turns a typed error into its message', () => {
    expect(withMessage({ success: true, data: 1 })).toEqual({ success: true, data: 1 });
    expect(withMessage({ success: false, error: new Error('bad') })).toEqual({ success: false, error: 'bad' });
  });
});

describe('the credential', () => {
  it('is ManagedIdentityCredential in the function app and DefaultAzureCredential from a terminal', () => {
    expect(createServices({ env: {}, allowInMemory: true, credential: 'managed-identity' }).credential).toBeInstanceOf(ManagedIdentityCredential);
    expect(createServices({ env: {}, allowInMemory: true }).credential).toBeInstanceOf(DefaultAzureCredential);
  });
});
