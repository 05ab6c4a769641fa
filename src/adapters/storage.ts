/**
 * Storage clients built from the same settings the Functions host uses for its own
 * bindings (`AzureWebJobsStorage`): a connection string, or the identity-based form
 * `AzureWebJobsStorage__queueServiceUri` / `__tableServiceUri` with a managed identity.
 */
import { TableClient } from '@azure/data-tables';
import type { TokenCredential } from '@azure/identity';
import { QueueClient } from '@azure/storage-queue';

export type StorageConnection =
  | { readonly kind: 'connection-string'; readonly connectionString: string }
  | { readonly kind: 'identity'; readonly queueServiceUri: string; readonly tableServiceUri: string; readonly credential: TokenCredential };

function isPlainHttp(connection: StorageConnection): boolean {
  return connection.kind === 'connection-string'
    ? /(^|;)\s*(DefaultEndpointsProtocol=http|TableEndpoint=http:|UseDevelopmentStorage=true)/i.test(connection.connectionString)
    : connection.tableServiceUri.startsWith('http:');
}

export function tableClient(connection: StorageConnection, tableName: string): TableClient {
  // Plain HTTP only ever means the local storage emulator; the SDK refuses it unless told.
  const options = isPlainHttp(connection) ? { allowInsecureConnection: true } : {};
  return connection.kind === 'connection-string'
    ? TableClient.fromConnectionString(connection.connectionString, tableName, options)
    : new TableClient(connection.tableServiceUri, tableName, connection.credential, options);
}

export function queueClient(connection: StorageConnection, queueName: string): QueueClient {
  return connection.kind === 'connection-string'
    ? new QueueClient(connection.connectionString, queueName)
    : new QueueClient(`${connection.queueServiceUri.replace(/\/+$/, '')}/${queueName}`, connection.credential);
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
