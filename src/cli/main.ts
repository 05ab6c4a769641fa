/**
 * `rdp-remediator`: the same pipeline as the worker, run in-process from an admin's
 * terminal. Records go to Table storage when AzureWebJobsStorage is set, else memory.
 */
import { randomUUID } from 'node:crypto';
import { createServices, remediationDeps } from '../app/services.js';
import { parseRemediationRequest } from '../core/job.js';
import { exitCodeFor } from '../core/outcome.js';
import { runRemediation } from '../pipeline/remediate.js';
import { parseArgs, USAGE } from './args.js';
import { describeOutcome, describeProgress } from './format.js';

export async function main(argv: readonly string[], io: { out: (s: string) => void; err: (s: string) => void } = defaultIo): Promise<number> {
  const parsed = parseArgs(argv);
  if (!parsed.success) {
    io.err(`error: ${parsed.error}\n\n${USAGE}`);
    return 64;
  }
  const cli = parsed.data;
  if (cli.command === 'help') {
    io.out(USAGE);
    return 0;
  }
  const job = parseRemediationRequest({ vmResourceId: cli.vmResourceId, mode: cli.mode, allow: cli.allow }, { id: randomUUID(), source: 'cli', now: new Date() });
  if (!job.success) {
    io.err(`error: ${job.error.message}`);
    return 64;
  }
  const services = createServices({ allowInMemory: true });
  const started = Date.now();
  const record = await runRemediation(
    job.data,
    remediationDeps(services, {
      onProgress: (event) => io.err(`[${((Date.now() - started) / 1000).toFixed(1).padStart(5)}s] ${describeProgress(event)}`),
    }),
  );
  if (record.state !== 'completed') throw new Error('the pipeline returned an unfinished record');
  io.out(cli.json ? JSON.stringify(record) : describeOutcome(record));
  return exitCodeFor(record.outcome.status);
}

export const defaultIo = { out: (s: string) => process.stdout.write(`${s}\n`), err: (s: string) => process.stderr.write(`${s}\n`) };
