/**
 * The event query the project ships: one file, infra/queries/rdp-events.kql, loaded here for
 * resolving workspace-targeted alerts and by the Bicep template for the scheduled query rule.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../util/package-root.js';

export const EVENT_QUERY_FILE = join('infra', 'queries', 'rdp-events.kql');
export const EVENT_QUERY_MARKER = '// rdp-remediator:event-query v1';

/** Events per Source that the query counts; the DCR's XPath collects exactly these. */
export const EVENT_SOURCES = {
  'Microsoft-Windows-TerminalServices-RemoteConnectionManager': [1050, 1055, 1057, 1058, 1059],
  Schannel: [36870, 36871, 36874, 36888],
  TermDD: [56],
  'Service Control Manager': [7022],
} as const;

let cached: string | undefined;

export function eventQuery(): string {
  cached ??= readFileSync(join(packageRoot(), EVENT_QUERY_FILE), 'utf8').replace(/\r\n/g, '\n');
  return cached;
}
