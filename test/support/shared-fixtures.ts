/**
 * The official payloads in ../shared/fixtures (research material beside the project, never
 * copied into it). Absent in someone else's clone: the tests that read them skip, loudly.
 * In CI (CI=true) their absence is an error.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../../src/util/package-root.js';

export const SHARED_FIXTURES = join(packageRoot(), '..', 'shared', 'fixtures');

export function sharedFixturesAvailable(): boolean {
  const present = existsSync(join(SHARED_FIXTURES, 'azure-monitor-alerts'));
  if (!present) {
    const message = `../shared/fixtures not found at ${SHARED_FIXTURES}: the conformance tests over the official payloads are SKIPPED`;
    if (process.env.CI === 'true') throw new Error(`${message}, and CI=true makes that an error`);
    console.warn(`\n*** ${message} ***\n`);
  }
  return present;
}

export function alertFixtures(): { name: string; body: unknown }[] {
  const dir = join(SHARED_FIXTURES, 'azure-monitor-alerts');
  return readdirSync(dir)
    .filter((f) => f.endsWith('.json'))
    .sort()
    .map((name) => ({ name, body: JSON.parse(readFileSync(join(dir, name), 'utf8')) as unknown }));
}
