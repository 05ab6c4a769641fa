#!/usr/bin/env node
// Runs a Node entry point under Node >= 22, the runtime Azure Functions uses and the Azure
// SDKs require. When the current node is older, it installs the `node@22` package from the
// npm registry into .tools/node22 once and re-runs the entry point with that binary.
// Usage: node tools/node22.mjs <entry.js> [args...]
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const [entry, ...args] = process.argv.slice(2);
if (!entry) {
  console.error('usage: node tools/node22.mjs <entry.js> [args...]');
  process.exit(64);
}

function nodeBinary() {
  if (Number(process.versions.node.split('.')[0]) >= 22) return process.execPath;
  const prefix = join(root, '.tools', 'node22');
  const binary = join(prefix, 'node_modules', 'node', 'bin', 'node');
  if (!existsSync(binary)) {
    console.error(`node ${process.versions.node} is older than 22; installing node@22 into .tools/node22 ...`);
    const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
    const r = spawnSync(npm, ['install', '--no-save', '--no-package-lock', '--prefix', prefix, 'node@22'], { stdio: 'inherit' });
    if (r.status !== 0 || !existsSync(binary)) {
      console.error('could not install node@22; install Node 22 and try again');
      process.exit(1);
    }
  }
  return binary;
}

const result = spawnSync(nodeBinary(), [join(root, entry), ...args], { stdio: 'inherit', cwd: process.cwd() });
process.exit(result.status ?? 1);
