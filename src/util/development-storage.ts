/** The storage emulator's well-known account: a public, documented development key. */
const ACCOUNT = 'devstoreaccount1';
const KEY = 'Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==';

/** A connection string for a local storage emulator's queue and table endpoints. */
export function developmentStorageConnectionString(ports: { readonly queue: number; readonly table: number }): string {
  return (
    `DefaultEndpointsProtocol=http;AccountName=${ACCOUNT};AccountKey=${KEY};` +
    `QueueEndpoint=http://127.0.0.1:${ports.queue}/${ACCOUNT};TableEndpoint=http://127.0.0.1:${ports.table}/${ACCOUNT};`
  );
}
