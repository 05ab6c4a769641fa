/**
 * `rdp-remediator`: the same pipeline as the worker, run in-process from an admin's
 * terminal. Records go to Table storage when AzureWebJobsStorage is set, else memory.
 */
import { randomUUID } from 'node:crypto';
import { admitRequest } from '../app/intake.js';
import { createServices, remediationDeps, type Services } from '../app/services.js';
import { parseRemediationRequest, type Job } from '../core/job.js';
import { exitCodeFor, securityChangesIn } from '../core/outcome.js';
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
  if (cli.command === 'restore') return restoreCommand(cli, io);
  const body = { vmResourceId: cli.vmResourceId, mode: cli.mode, allow: cli.allow, ...(cli.relaxForHours === undefined ? {} : { relaxForHours: cli.relaxForHours }) };
  const job = parseRemediationRequest(body, { id: randomUUID(), source: 'cli', now: new Date() });
  if (!job.success) {
    io.err(`error: ${job.error.message}`);
    return 64;
  }
  if (job.data.mode === 'restore') throw new Error('a remediate command parsed as a restore');
  return runJob(job.data, createServices({ allowInMemory: true }), cli.json, io);
}

/** Runs a job in-process and prints its outcome; the exit code says how it ended. */
async function runJob(job: Job, services: Services, json: boolean, io: Io): Promise<number> {
  const started = Date.now();
  const record = await runRemediation(
    job,
    remediationDeps(services, {
      onProgress: (event) => io.err(`[${((Date.now() - started) / 1000).toFixed(1).padStart(5)}s] ${describeProgress(event)}`),
    }),
  );
  if (record.state !== 'completed') throw new Error('the pipeline returned an unfinished record');
  if (!services.config.storage && securityChangesIn(record.outcome).length > 0) {
    io.err(`warning: no storage configured (AzureWebJobsStorage): nothing will revert this relaxation when it expires; restore it yourself`);
  }
  io.out(json ? JSON.stringify(record) : describeOutcome(record));
  return exitCodeFor(record.outcome.status);
}

/** `restore <id>`: reads the remediation's record from the app's storage and puts its security back in-process. */
async function restoreCommand(cli: Extract<CliCommand, { command: 'restore' }>, io: Io): Promise<number> {
  const services = createServices({ allowInMemory: true });
  const admitted = await admitRequest({ mode: 'restore', restoreOf: cli.remediationId, ...(cli.reason === undefined ? {} : { reason: cli.reason }) }, services, 'cli');
  switch (admitted.kind) {
    case 'invalid':
    case 'not-a-vm':
      io.err(`error: ${admitted.error.message}`);
      return 64;
    case 'restore-refused': {
      const hint = admitted.error.reason === 'unknown-remediation' && !services.config.storage ? ' (no storage configured: set AzureWebJobsStorage to the app\'s storage, where the records are)' : '';
      io.err(`error: ${admitted.error.message}${hint}`);
      return 65;
    }
    case 'job':
      return runJob(admitted.job, services, cli.json, io);
  }
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
