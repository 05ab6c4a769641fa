/**
 * src/adapters/lazy-gateway.ts: the stand-in that imports a gateway's module at its first call.
 * It loads once, forwards every method (also ones it was never told about) with `this` and the
 * arguments intact, is never taken for a promise, and a failed load is a typed error that the
 * next call retries.
 */
import { describe, expect, it } from 'vitest';
import { lazyGateway } from '../../src/adapters/lazy-gateway.js';
import { ConfigurationError } from '../../src/errors.js';

interface Greeter {
  greet(name: string): Promise<string>;
  /** Optional, like a batch method a gateway may add later. */
  greetAll?(names: readonly string[]): Promise<string[]>;
}

class RealGreeter implements Greeter {
  public constructor(private readonly prefix: string) {}
  public async greet(name: string): Promise<string> {
    return Promise.resolve(`${this.prefix} ${name}`);
  }
  public async greetAll(names: readonly string[]): Promise<string[]> {
    return Promise.all(names.map((n) => this.greet(n)));
  }
}

describe('lazyGateway', () => {
  it('loads nothing until the first call, then once for all calls, concurrent ones included', async () => {
    let loads = 0;
    const greeter = lazyGateway<Greeter>('greeter', async () => {
      loads += 1;
      await new Promise((r) => setTimeout(r, 5));
      return new RealGreeter('hello');
    });
    expect(loads).toBe(0);
    expect(await Promise.all([greeter.greet('a'), greeter.greet('b')])).toEqual(['hello a', 'hello b']);
    expect(await greeter.greet('c')).toBe('hello c');
    expect(loads).toBe(1);
  });

  it('forwards methods the stand-in was never told about, with the real gateway as `this`', async () => {
    const greeter = lazyGateway<Greeter>('greeter', () => Promise.resolve(new RealGreeter('hi')));
    expect(await greeter.greetAll?.(['x', 'y'])).toEqual(['hi x', 'hi y']);
    // One forwarder per name, as a real object has one method per name.
    expect(Reflect.get(greeter, 'greet')).toBe(Reflect.get(greeter, 'greet'));
  });

  it('is not a thenable, so resolving a promise with it does not call it', async () => {
    let loads = 0;
    const greeter = lazyGateway<Greeter>('greeter', () => {
      loads += 1;
      return Promise.resolve(new RealGreeter('hi'));
    });
    const returned = await Promise.resolve(greeter);
    expect(returned).toBe(greeter);
    expect((greeter as unknown as { then?: unknown }).then).toBeUndefined();
    expect(loads).toBe(0);
  });

  it('rejects a method the real gateway does not have', async () => {
    const greeter = lazyGateway<Greeter>('greeter', () => Promise.resolve({ greet: (n: string) => Promise.resolve(n) }));
    await expect(greeter.greetAll?.(['x'])).rejects.toThrow(/the greeter gateway has no method greetAll/);
  });

  it('turns a failed load into a ConfigurationError with the cause, and tries again on the next call', async () => {
    let attempt = 0;
    const cause = new Error('EMFILE: too many open files');
    const greeter = lazyGateway<Greeter>('greeter', () => {
      attempt += 1;
      return attempt === 1 ? Promise.reject(cause) : Promise.resolve(new RealGreeter('back'));
    });
    const error = await greeter.greet('a').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConfigurationError);
    expect((error as ConfigurationError).message).toBe('could not load the greeter gateway');
    expect((error as ConfigurationError).cause).toBe(cause);
    expect(await greeter.greet('a')).toBe('back a');
  });
});
