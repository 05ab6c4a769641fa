/** The package's version, as package.json says, read once. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as z from 'zod';
import { packageRoot } from '../util/package-root.js';

const PackageJsonSchema = z.object({ version: z.string().min(1) }).loose();

let cached: string | undefined;

export function packageVersion(): string {
  cached ??= PackageJsonSchema.parse(JSON.parse(readFileSync(join(packageRoot(), 'package.json'), 'utf8'))).version;
  return cached;
}
