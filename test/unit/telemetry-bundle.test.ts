/**
 * Telemetry in the esbuild bundle (tools/bundle.mjs's options, code splitting as there): the
 * module hooks OpenTelemetry instrumentations rely on see nothing in a bundle, so this checks
 * what setup.ts does instead. A probe bundled the way the function modules are, run in a fresh
 * node process, starts telemetry through useAzureMonitor (its exporter pointed at a local HTTPS
 * endpoint in the probe), sends one request through an Azure SDK pipeline inside a span, and
 * applies the Functions instrumentation's patch to a stand-in for @azure/functions. The Azure
 * SDK's CLIENT span must be the child of the active span, and the patch must have run.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { BuildOptions } from 'esbuild';
import { afterAll, expect, it } from 'vitest';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const workDir = mkdtempSync(join(tmpdir(), 'telemetry-bundle-'));
afterAll(() => rmSync(workDir, { recursive: true, force: true }));

const PROBE = `
import { createServer } from 'node:https';
import { getCACertificates, setDefaultCACertificates } from 'node:tls';
import { generate } from 'selfsigned';
import { SpanKind, trace } from '@opentelemetry/api';
import { InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { createDefaultHttpClient, createPipelineFromOptions, createPipelineRequest } from '@azure/core-rest-pipeline';
import { startTelemetry } from ${JSON.stringify(join(root, 'src', 'telemetry', 'setup.ts'))};
import { instrumentFunctions } from ${JSON.stringify(join(root, 'src', 'telemetry', 'functions.ts'))};

const pems = await generate([{ name: 'commonName', value: 'telemetry bundle probe' }], { keyType: 'ec', curve: 'P-256', algorithm: 'sha256', extensions: [{ name: 'subjectAltName', altNames: [{ type: 7, ip: '127.0.0.1' }] }] });
setDefaultCACertificates([...getCACertificates('default'), pems.cert]);
const server = createServer({ cert: pems.cert, key: pems.private }, (req, res) => {
  req.resume();
  req.on('end', () => { res.writeHead(200, { 'content-type': 'application/json' }); res.end('{"itemsReceived":0,"itemsAccepted":0,"errors":[]}'); });
});
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
const port = server.address().port;
process.env.APPLICATIONINSIGHTS_STATSBEAT_DISABLED = 'true';
const spans = new InMemorySpanExporter();
const telemetry = await startTelemetry({
  credential: { getToken: async () => ({ token: 'probe', expiresOnTimestamp: Date.now() + 3_600_000 }) },
  connectionString: 'InstrumentationKey=00000000-0000-0000-0000-0000000000b1;IngestionEndpoint=https://127.0.0.1:' + port + '/',
  spanProcessors: [new SimpleSpanProcessor(spans)],
});
await trace.getTracer('probe').startActiveSpan('parent', async (parent) => {
  await createPipelineFromOptions({}).sendRequest(createDefaultHttpClient(), createPipelineRequest({ url: 'https://127.0.0.1:' + port + '/probe' }));
  parent.end();
});
const setups = [];
const hooks = [];
instrumentFunctions({ app: { setup: (o) => setups.push(o), hook: { log: (h) => (hooks.push('log'), { dispose() {} }), preInvocation: (h) => (hooks.push('preInvocation'), { dispose() {} }) } } });
await telemetry.forceFlush();
const finished = spans.getFinishedSpans().map((s) => ({ name: s.name, client: s.kind === SpanKind.CLIENT, id: s.spanContext().spanId, parent: s.parentSpanContext?.spanId ?? null }));
await telemetry.shutdown();
server.close();
console.log(JSON.stringify({ finished, setups, hooks }));
`;

interface ProbeResult {
  readonly finished: { name: string; client: boolean; id: string; parent: string | null }[];
  readonly setups: unknown[];
  readonly hooks: string[];
}

it('in the bundle, the Azure SDK makes CLIENT spans under the active span, and the Functions patch applies', async () => {
  const { bundleOptions } = (await import(pathToFileURL(join(root, 'tools', 'bundle.mjs')).href)) as { bundleOptions: () => BuildOptions };
  const esbuild = await import('esbuild');
  const entry = join(workDir, 'probe.ts');
  writeFileSync(entry, PROBE);
  const outdir = join(workDir, 'out');
  await esbuild.build({
    ...bundleOptions(),
    metafile: false,
    logLevel: 'silent',
    entryPoints: { probe: entry },
    outdir,
    splitting: true,
    outExtension: { '.js': '.mjs' },
    // The probe lives outside the package: its packages come from the package's node_modules.
    nodePaths: [join(root, 'node_modules')],
  });
  // From outside the package, so nothing can come from node_modules at run time.
  const r = spawnSync(process.execPath, [join(outdir, 'probe.mjs')], { cwd: workDir, encoding: 'utf8', timeout: 60_000 });
  expect(r.status, r.stderr).toBe(0);
  const out = JSON.parse(r.stdout.trim().split('\n').at(-1) ?? '{}') as ProbeResult;
  const parent = out.finished.find((s) => s.name === 'parent');
  expect(parent).toBeDefined();
  expect(out.finished.filter((s) => s.client && s.parent === parent?.id).map((s) => s.name)).toEqual(['HTTP GET']);
  expect(out.setups).toEqual([{ capabilities: { WorkerOpenTelemetryEnabled: true } }]);
  expect(out.hooks).toEqual(['log', 'preInvocation']);
});
