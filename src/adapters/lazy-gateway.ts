/**
 * A gateway whose module is loaded at its first call, not when the app starts.
 *
 * The Functions host imports every entry module at a cold start, so an SDK that any module
 * imports statically is loaded for every trigger. The heavy ones (the compute SDK above all)
 * are only needed once a call is made: behind a lazy gateway the SDK module is imported on the
 * first method call, and the bundler splits it into a chunk of its own (tools/bundle.mjs).
 *
 * Generic on purpose: the proxy forwards whatever method is called to the real gateway, so a
 * method added to a gateway interface later works through it without a change here. Every
 * method must return a promise (the type says so): the first call has to wait for the import.
 */
import { ConfigurationError } from '../errors.js';

/** A gateway type whose every member is an async method (optional ones included). */
export type AsyncGateway<T> = { readonly [K in keyof T]?: (...args: never[]) => Promise<unknown> };

/**
 * A stand-in for the gateway `load` builds. `load` runs once, at the first method call; calls
 * made while it runs wait for the same load. A failed load is not cached, so the next call
 * tries again (a transient EMFILE should not break the instance for good).
 *
 * Caveats, both inherent in not loading the module: before the first call the proxy cannot
 * know which methods the real gateway has, so every property reads as a method (an optional
 * method the real gateway lacks rejects when called, rather than reading as absent); and
 * `then` reads as absent, so the proxy is never mistaken for a promise and awaited.
 */
export function lazyGateway<T extends AsyncGateway<T>>(name: string, load: () => Promise<T>): T {
  let loading: Promise<T> | undefined;
  const loaded = (): Promise<T> => {
    loading ??= load().catch((error: unknown) => {
      loading = undefined;
      throw new ConfigurationError(`could not load the ${name} gateway`, { gateway: name }, { cause: error });
    });
    return loading;
  };
  /** One forwarder per method name, so `gateway.m === gateway.m` as on a real object. */
  const forwarders = new Map<string, (...args: unknown[]) => Promise<unknown>>();
  const forwarder = (method: string) => {
    let forward = forwarders.get(method);
    if (!forward) {
      forward = async (...args: unknown[]) => {
        const gateway = await loaded();
        const member: unknown = Reflect.get(gateway, method);
        if (typeof member !== 'function') throw new TypeError(`the ${name} gateway has no method ${method}`);
        return (member as (...a: unknown[]) => Promise<unknown>).apply(gateway, args);
      };
      forwarders.set(method, forward);
    }
    return forward;
  };
  const isMethodName = (property: string | symbol): property is string => typeof property === 'string' && property !== 'then';
  return new Proxy(Object.create(null) as T, {
    get: (_target, property) => (isMethodName(property) ? forwarder(property) : undefined),
    has: (_target, property) => isMethodName(property),
  });
}
