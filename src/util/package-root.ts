import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

let cached: string | undefined;

/**
 * The folder holding this package's package.json. Sources run from `src/` under vitest and
 * from `dist/src/` once built, so a fixed relative path would be wrong in one of the two.
 */
export function packageRoot(): string {
  if (cached !== undefined) return cached;
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const candidate = join(dir, 'package.json');
    if (existsSync(candidate)) {
      const pkg = JSON.parse(readFileSync(candidate, 'utf8')) as { name?: unknown };
      if (pkg.name === 'rdp-remediator') return (cached = dir);
    }
    const parent = dirname(dir);
    if (parent === dir) throw new Error('rdp-remediator package.json not found above ' + fileURLToPath(import.meta.url));
    dir = parent;
  }
}
