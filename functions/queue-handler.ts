/**
 * The steps every queue-triggered handler repeats, in one place: parse the message at the
 * boundary, take the process-wide services, run, and write the structured log line the run
 * returns. A message that does not parse is logged as an error and dropped: the host would
 * deliver it again up to maxDequeueCount times, and no retry can make it parse.
 */
import type { InvocationContext } from '@azure/functions';
import { getServices, type Services } from '../src/app/services.js';

/** What a message parsed to: the typed value, or why not. */
export type ParsedMessage<T> = { readonly success: true; readonly data: T } | { readonly success: false; readonly error: string };

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

/** A structured log line: the event name first, then its fields (what the JSON log lines have always been). */
export interface LogEntry {
  readonly level: LogLevel;
  readonly event: string;
  readonly fields?: Readonly<Record<string, unknown>>;
}

export interface QueueHandlerSpec<T> {
  /** The event logged for a message that does not parse. */
  readonly invalidEvent: string;
  readonly parse: (message: unknown) => ParsedMessage<T>;
  /** The work; the entries it returns are logged in order. Throwing fails the invocation (the host retries). */
  readonly handle: (value: T, services: Services, context: InvocationContext, message: unknown) => Promise<readonly LogEntry[] | LogEntry | void>;
  /** Instead of dropping an unparseable message (the poison handlers still record it). */
  readonly onInvalid?: (error: string, services: Services, context: InvocationContext, message: unknown) => Promise<readonly LogEntry[] | LogEntry | void>;
  /** The services to run with; the process-wide ones unless given (tests bring their own). */
  readonly services?: () => Services;
}

export function queueHandler<T>(spec: QueueHandlerSpec<T>): (message: unknown, context: InvocationContext) => Promise<void> {
  const services = spec.services ?? getServices;
  return async (message, context) => {
    const parsed = spec.parse(message);
    if (!parsed.success) {
      if (!spec.onInvalid) {
        log(context, { level: 'error', event: spec.invalidEvent, fields: { error: parsed.error } });
        return;
      }
      logAll(context, await spec.onInvalid(parsed.error, services(), context, message));
      return;
    }
    logAll(context, await spec.handle(parsed.data, services(), context, message));
  };
}

/** Writes one structured log line at its level, as `{"event": …, …fields}`. */
export function log(context: InvocationContext, entry: LogEntry): void {
  const line = JSON.stringify({ event: entry.event, ...entry.fields });
  switch (entry.level) {
    case 'debug':
      return context.debug(line);
    case 'info':
      return context.info(line);
    case 'warn':
      return context.warn(line);
    case 'error':
      return context.error(line);
  }
}

function logAll(context: InvocationContext, entries: readonly LogEntry[] | LogEntry | void): void {
  if (entries === undefined) return;
  const list: readonly LogEntry[] = isEntryList(entries) ? entries : [entries];
  for (const entry of list) log(context, entry);
}

function isEntryList(entries: readonly LogEntry[] | LogEntry): entries is readonly LogEntry[] {
  return Array.isArray(entries);
}

/** A parse result with a typed error, as the core's parsers return it, with the error as text. */
export function withMessage<T>(result: { readonly success: true; readonly data: T } | { readonly success: false; readonly error: { readonly message: string } }): ParsedMessage<T> {
  return result.success ? result : { success: false, error: result.error.message };
}
