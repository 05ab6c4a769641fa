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
import { readFile } from 'node:fs/promises';
import { classifyAlert } from '../alerts/classify.js';
import { processAlert } from '../alerts/process.js';
import type { CliCommand } from './args.js';
import type { RemediationRecord } from '../core/outcome.js';

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
  if (cli.command === 'alert') return alertCommand(cli, io);
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

type Io = { out: (s: string) => void; err: (s: string) => void };

/** Processes an alert payload as the webhook and alert worker would, printing a decision per target. */
async function alertCommand(cli: Extract<CliCommand, { command: 'alert' }>, io: Io): Promise<number> {
  let body: unknown;
  try {
    body = JSON.parse(await readFile(cli.payloadFile, 'utf8')) as unknown;
  } catch (error) {
    io.err(`error: ${cli.payloadFile}: ${(error as Error).message}`);
    return 65;
  }
  const services = createServices({ allowInMemory: true });
  const classification = classifyAlert(body, services.config.alerts.intake);
  if (classification.kind === 'malformed') {
    io.out(cli.json ? JSON.stringify({ classification }) : `malformed: ${classification.reason}`);
    return 65;
  }
  if (classification.kind === 'ignored') {
    io.out(cli.json ? JSON.stringify({ classification }) : `ignored: ${classification.reason}: ${classification.detail}`);
    return 0;
  }
  const outcomes: RemediationRecord[] = [];
  const { queue } = services;
  const result = await processAlert(classification.alert, {
    logs: services.logs,
    admissions: services.admissions,
    store: services.store,
    mode: services.config.alerts.mode,
    dedupe: services.config.alerts.dedupe,
    dryRun: cli.dryRun,
    // With storage configured the job goes to the worker's queue, as from the webhook; without, it runs here.
    dispatch: queue
      ? (job) => queue.enqueue(job)
      : async (job) => {
          const record = await runRemediation(job, remediationDeps(services, { onProgress: (e) => io.err(`[${job.vm.id}] ${describeProgress(e)}`) }));
          outcomes.push(record);
        },
  });
  if (cli.json) {
    io.out(JSON.stringify({ classification: { kind: 'accepted' }, result, ...(outcomes.length ? { remediations: outcomes } : {}) }));
    return 0;
  }
  io.out(`alert ${result.alertId}${cli.dryRun ? ' (dry run: nothing written)' : ''}, targets via ${result.resolvedThrough}`);
  for (const d of result.decisions) {
    io.out(`  ${d.decision.padEnd(12)} ${d.target}${d.decision === 'ignored' ? `  (${d.reason})` : `  → ${d.remediationId}`}`);
  }
  for (const w of result.warnings) io.out(`  warning: ${w}`);
  for (const o of outcomes) io.out(describeOutcome(o));
  return 0;
}
