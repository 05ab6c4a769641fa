/**
 * Storage clients built from the same settings the Functions host uses for its own
 * bindings (`AzureWebJobsStorage`): a connection string, or the identity-based form
 * `AzureWebJobsStorage__queueServiceUri` / `__tableServiceUri` with a managed identity.
 */
import { TableClient, type TableServiceClientOptions } from '@azure/data-tables';
import type { TokenCredential } from '@azure/identity';
import { QueueClient, type StoragePipelineOptions } from '@azure/storage-queue';
import { deadlinePolicy, DEFAULT_BOUNDS, tryTimeoutPolicy, type CallBounds } from './pacing.js';

export type StorageConnection =
  | { readonly kind: 'connection-string'; readonly connectionString: string }
  | { readonly kind: 'identity'; readonly queueServiceUri: string; readonly tableServiceUri: string; readonly credential: TokenCredential };

function isPlainHttp(connection: StorageConnection): boolean {
  return connection.kind === 'connection-string'
    ? /(^|;)\s*(DefaultEndpointsProtocol=http|TableEndpoint=http:|UseDevelopmentStorage=true)/i.test(connection.connectionString)
    : connection.tableServiceUri.startsWith('http:');
}

/**
 * A Table client whose every call is bounded (DEFAULT_BOUNDS.table unless given): each attempt
 * times out after tryTimeoutMs and is retried (the SDK's retry, maxRetries, exponential
 * back-off), and the whole call ends in DependencyTimeoutError('table') after operationTimeoutMs.
 */
export function tableClient(connection: StorageConnection, tableName: string, bounds: Partial<CallBounds> = {}): TableClient {
  const b: CallBounds = { ...DEFAULT_BOUNDS.table, ...bounds };
  const options: TableServiceClientOptions = {
    retryOptions: { maxRetries: b.maxRetries, retryDelayInMs: b.retryDelayMs, maxRetryDelayInMs: b.maxRetryDelayMs },
    additionalPolicies: [
      { policy: deadlinePolicy('table', b.operationTimeoutMs), position: 'perCall' },
      { policy: tryTimeoutPolicy(b.tryTimeoutMs), position: 'perRetry' },
    ],
    // Plain HTTP only ever means the local storage emulator; the SDK refuses it unless told.
    ...(isPlainHttp(connection) ? { allowInsecureConnection: true } : {}),
  };
  return connection.kind === 'connection-string'
    ? TableClient.fromConnectionString(connection.connectionString, tableName, options)
    : new TableClient(connection.tableServiceUri, tableName, connection.credential, options);
}

/**
 * A Queue client with a bounded retry budget (DEFAULT_BOUNDS.queue unless given). Its
 * `tryTimeoutInMs` is only the server-side `timeout` parameter, so a hung service is bounded by
 * the per-call deadline the queue adapter (job-queue.ts) passes as `abortSignal`.
 */
export function queueClient(connection: StorageConnection, queueName: string, bounds: Partial<CallBounds> = {}): QueueClient {
  const b: CallBounds = { ...DEFAULT_BOUNDS.queue, ...bounds };
  const options: StoragePipelineOptions = {
    retryOptions: { maxTries: b.maxRetries + 1, tryTimeoutInMs: b.tryTimeoutMs, retryDelayInMs: b.retryDelayMs, maxRetryDelayInMs: b.maxRetryDelayMs },
  };
  return connection.kind === 'connection-string'
    ? new QueueClient(connection.connectionString, queueName, options)
    : new QueueClient(`${connection.queueServiceUri.replace(/\/+$/, '')}/${queueName}`, connection.credential, options);
}

/** Creates the table on first use, once per client; a failed attempt is tried again on the next call. */
export function tableCreator(table: TableClient): () => Promise<void> {
  let ready: Promise<void> | undefined;
  return () => {
    ready ??= table.createTable().catch((error: unknown) => {
      ready = undefined;
      throw error;
    });
    return ready;
  };
}

/** Table keys may not contain / \ # ?; resource IDs are full of slashes. */
export function tableKey(value: string): string {
  return value.replace(/\//g, '|');
}

export function isRestError(error: unknown, statusCode: number): boolean {
  return typeof error === 'object' && error !== null && (error as { statusCode?: unknown }).statusCode === statusCode;
}
