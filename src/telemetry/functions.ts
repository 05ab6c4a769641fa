/**
 * The Azure Functions instrumentation (@azure/functions-opentelemetry-instrumentation), applied
 * to the @azure/functions module the app registers its functions with.
 *
 * What its patch does: tells the Functions host that the worker sends its own logs
 * (capability WorkerOpenTelemetryEnabled, so the host does not send them twice), hooks the
 * context's log calls to emit OpenTelemetry log records, and, before each invocation, makes the
 * host's trace context (traceparent) the active context of the handler, so the app's spans are
 * children of the host's invocation span.
 *
 * Why it is applied by hand: an OpenTelemetry instrumentation patches a module when a module
 * hook sees it loaded, and no hook sees @azure/functions here. The app is ESM: importing a
 * CommonJS package from ESM does not go through require(), where require-in-the-middle looks,
 * and import-in-the-middle needs a loader registered before the app starts, which the Functions
 * host does not do. In the esbuild bundle (tools/bundle.mjs) @azure/functions is not loaded as a
 * module of its own at all. So the instrumentation is made disabled (no hook is installed) and
 * its module definition's patch is applied to the imported module, which is the very object the
 * registrations in functions/index.ts use.
 */
import { createRequire } from 'node:module';
import functionsInstrumentation from '@azure/functions-opentelemetry-instrumentation';
import type * as AzureFunctions from '@azure/functions';

/** What the patch touches of @azure/functions: `app.setup` and `app.hook`. */
export type FunctionsModule = Pick<typeof AzureFunctions, 'app'>;

const FUNCTIONS_MODULE = '@azure/functions';

/**
 * Applies the instrumentation's patch to `azureFunctions`. Call it after the OpenTelemetry
 * providers are registered (the instrumentation takes its logger when it is made) and before the
 * host asks for the worker's capabilities, i.e. while the entry module loads.
 */
export function instrumentFunctions(azureFunctions: FunctionsModule): void {
  const instrumentation = new functionsInstrumentation.AzureFunctionsInstrumentationESM({ enabled: false });
  const definitions = instrumentation.getModuleDefinitions().filter((d) => d.name === FUNCTIONS_MODULE && d.patch !== undefined);
  if (definitions.length === 0) throw new Error(`${FUNCTIONS_MODULE} instrumentation: no module definition to apply`);
  for (const definition of definitions) definition.patch?.(azureFunctions);
}

/**
 * Whether the app runs in the Functions host's Node.js worker, which provides
 * `@azure/functions-core` (never on disk). Elsewhere @azure/functions is in test mode: its hooks
 * register nothing and each one warns, so the patch is left out.
 */
export function inFunctionsHost(): boolean {
  try {
    createRequire(import.meta.url)('@azure/functions-core');
    return true;
  } catch {
    return false;
  }
}
