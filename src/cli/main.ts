/**
 * `rdp-remediator`: the same pipeline as the worker, run in-process from an admin's
 * terminal. Records go to Table storage when AzureWebJobsStorage is set, else memory (a scan
 * writes none). Results go to stdout, progress and human-readable errors to stderr; under
 * `--json` every error is one JSON object on stdout (see error-output.ts).
 */
import { randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { classifyAlert } from '../alerts/classify.js';
import { processAlert } from '../alerts/process.js';
import { admitRequest } from '../app/intake.js';
import { createServices, remediationDeps, type Services } from '../app/services.js';
import { parseRemediationRequest, type Job } from '../core/job.js';
import { exitCodeFor, securityChangesIn, type RemediationRecord } from '../core/outcome.js';
import { NotAVirtualMachineError, type InputValidationError } from '../errors.js';
import { runRemediation } from '../pipeline/remediate.js';
import { EXIT_USAGE, helpFor, parseArgs, type CliCommand } from './args.js';
import { errorDocument, thrownError, type CliError } from './error-output.js';
import { describeOutcome, describeProgress } from './format.js';
import { ProgressBar } from './progress-bar.js';
import { runScan } from './scan.js';
import { scanCsv, scanJson, scanProgressLine, scanSummary, scanTable } from './scan-format.js';
import { packageVersion } from './version.js';

export interface Io {
  /** A line to stdout. */
  out(s: string): void;
  /** A line to stderr. */
  err(s: string): void;
  /** stdout as is, no newline added: CSV, whose lines end in CRLF. Without it, `out` (its last line ends in LF). */
  readonly outRaw?: (s: string) => void;
  /** stderr as is, no newline added: the progress bar's redraws. Without it no bar is drawn. */
  readonly errRaw?: (s: string) => void;
  /** stderr is a terminal: the scan draws its progress bar instead of a line per VM. */
  readonly errIsTTY?: boolean;
  /** For NO_COLOR. Default: no variables. */
  readonly env?: Readonly<Record<string, string | undefined>>;
}

export const defaultIo: Io = {
  out: (s) => process.stdout.write(`${s}\n`),
  err: (s) => process.stderr.write(`${s}\n`),
  outRaw: (s) => process.stdout.write(s),
  errRaw: (s) => process.stderr.write(s),
  errIsTTY: process.stderr.isTTY === true,
  env: process.env,
};

/** Exit code for errors a command throws (a dependency down, the listing failed). */
const EXIT_FAILED = 1;
/** Nothing to act on: nothing to restore, a malformed alert. */
const EXIT_NOTHING_TO_DO = 65;

export async function main(argv: readonly string[], io: Io = defaultIo): Promise<number> {
  const parsed = parseArgs(argv);
  if (!parsed.success) {
    const { message, command, json } = parsed.error;
    if (json) io.out(errorDocument({ code: 'UsageError', message, ...(command === undefined ? {} : { command }) }));
    else io.err(`error: ${message}\n\n${helpFor(command)}`);
    return EXIT_USAGE;
  }
  const cli = parsed.data;
  if (cli.command === 'help') {
    io.out(helpFor(cli.topic));
    return 0;
  }
  if (cli.command === 'version') {
    io.out(packageVersion());
    return 0;
  }
  const report = reporter(io, cli.json);
  try {
    switch (cli.command) {
      case 'alert':
        return await alertCommand(cli, io, report);
      case 'restore':
        return await restoreCommand(cli, io, report);
      case 'scan':
        return await scanCommand(cli, io);
      case 'remediate':
        return await remediateCommand(cli, io, report);
    }
  } catch (error) {
    report(thrownError(error));
    return EXIT_FAILED;
  }
}

type Report = (error: CliError, hint?: string) => void;

/** Prints an error as JSON on stdout or as text on stderr (with the hint, for people only). */
function reporter(io: Io, json: boolean): Report {
  return (error, hint) => (json ? io.out(errorDocument(error)) : io.err(`error: ${error.message}${hint ?? ''}`));
}

function invalidRequest(error: InputValidationError): CliError {
  return error instanceof NotAVirtualMachineError
    ? { code: 'NotAVirtualMachine', message: error.message, field: error.field, resourceType: error.resourceType }
    : { code: 'InvalidRequest', message: error.message, field: error.field };
}

async function remediateCommand(cli: Extract<CliCommand, { command: 'remediate' }>, io: Io, report: Report): Promise<number> {
  const body = { vmResourceId: cli.vmResourceId, mode: cli.mode, allow: cli.allow, ...(cli.relaxForHours === undefined ? {} : { relaxForHours: cli.relaxForHours }) };
  const job = parseRemediationRequest(body, { id: randomUUID(), source: 'cli', now: new Date() });
  if (!job.success) {
    report(invalidRequest(job.error));
    return EXIT_USAGE;
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
async function restoreCommand(cli: Extract<CliCommand, { command: 'restore' }>, io: Io, report: Report): Promise<number> {
  const services = createServices({ allowInMemory: true });
  const admitted = await admitRequest({ mode: 'restore', restoreOf: cli.remediationId, ...(cli.reason === undefined ? {} : { reason: cli.reason }) }, services, 'cli');
  switch (admitted.kind) {
    case 'invalid':
    case 'not-a-vm':
      report(invalidRequest(admitted.error));
      return EXIT_USAGE;
    case 'restore-refused': {
      const { error } = admitted;
      const hint = error.reason === 'unknown-remediation' && !services.config.storage ? " (no storage configured: set AzureWebJobsStorage to the app's storage, where the records are)" : '';
      report({ code: 'RestoreRefused', message: error.message, reason: error.reason, restoreOf: error.restoreOf, ...(error.by === undefined ? {} : { by: error.by }), storageConfigured: services.config.storage !== undefined }, hint);
      return EXIT_NOTHING_TO_DO;
    }
    case 'job':
      return runJob(admitted.job, services, cli.json, io);
  }
}

/** Processes an alert payload as the webhook and alert worker would, printing a decision per target. */
async function alertCommand(cli: Extract<CliCommand, { command: 'alert' }>, io: Io, report: Report): Promise<number> {
  let body: unknown;
  try {
    body = JSON.parse(await readFile(cli.payloadFile, 'utf8')) as unknown;
  } catch (error) {
    report({ code: 'UnreadablePayload', message: `${cli.payloadFile}: ${(error as Error).message}`, file: cli.payloadFile });
    return EXIT_NOTHING_TO_DO;
  }
  const services = createServices({ allowInMemory: true });
  const classification = classifyAlert(body, services.config.alerts.intake);
  if (classification.kind === 'malformed') {
    if (cli.json) report({ code: 'MalformedAlert', message: classification.reason, classification });
    else io.out(`malformed: ${classification.reason}`);
    return EXIT_NOTHING_TO_DO;
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

/** NO_COLOR (no-color.org): set to anything but the empty string turns colour off. */
const noColor = (env: Readonly<Record<string, string | undefined>>) => (env['NO_COLOR'] ?? '') !== '';

/** `scan`: a read-only sweep of the subscription's VMs (src/cli/scan.ts); prints the table, CSV or JSON. */
async function scanCommand(cli: Extract<CliCommand, { command: 'scan' }>, io: Io): Promise<number> {
  const services = createServices({ allowInMemory: true });
  // The scan brings its own in-memory store and lock; the app's storage is never touched.
  const { compute, store: _store, lock: _lock, onProgress: _onProgress, ...pipeline } = remediationDeps(services);
  const bar = io.errIsTTY === true && io.errRaw ? new ProgressBar(io.errRaw, { color: !noColor(io.env ?? {}) }) : undefined;
  const counts = { done: 0, total: 0, healthy: 0, wouldFail: 0, errors: 0, notProbed: 0 };
  const scope = `subscription ${cli.subscriptionId}${cli.resourceGroups.length ? `, resource group${cli.resourceGroups.length > 1 ? 's' : ''} ${cli.resourceGroups.join(', ')}` : ''}${cli.tags.length ? `, tags ${cli.tags.map((t) => `${t.key}=${t.value}`).join(', ')}` : ''}`;
  let report;
  try {
    report = await runScan(cli, {
      compute,
      remediation: pipeline,
      onListed: (total) => {
        counts.total = total;
        if (bar) bar.update(counts);
        else io.err(`scan: ${total} VM${total === 1 ? '' : 's'} in ${scope}; probing the running Windows ones, ${cli.concurrency} at once (read-only)`);
      },
      onVm: (vm, done, total) => {
        counts.done = done;
        if (vm.verdict === 'healthy') counts.healthy++;
        else if (vm.verdict === 'would-fail') counts.wouldFail++;
        else if (vm.verdict === 'error') counts.errors++;
        else counts.notProbed++;
        if (bar) bar.update(counts);
        else io.err(scanProgressLine(vm, done, total));
      },
    });
  } finally {
    bar?.finish();
  }
  if (cli.output === 'json') io.out(scanJson(report));
  else if (cli.output === 'csv') {
    const csv = scanCsv(report.vms);
    if (io.outRaw) io.outRaw(csv);
    else io.out(csv.replace(/\r\n$/, ''));
  }
  else io.out(`${report.vms.length ? `${scanTable(report.vms)}\n\n` : ''}${scanSummary(report)}`);
  return report.exitCode;
}
