/**
 * Settings, read once from the environment (Function App settings, or the shell for the
 * CLI) and validated at the boundary. README's configuration table documents each one.
 */
import * as z from 'zod';
import { DEFAULT_ACCEPTED_SERVICES, type AlertIntakeSettings } from './alerts/classify.js';
import type { DedupeSettings } from './alerts/admission.js';
import { DEFAULT_RELAX_TTL_HOURS, MAX_RELAX_TTL_HOURS, MIN_RELAX_TTL_HOURS } from './core/job.js';
import { ModeSchema, RequestModeSchema, type Mode, type RequestMode } from './core/modes.js';
import { ARM_LIMITS, type PacingMode } from './adapters/pacing.js';
import { ConfigurationError } from './errors.js';
import { developmentStorageConnectionString } from './util/development-storage.js';

export const QUEUE_NAME = 'remediations';
export const POISON_QUEUE_NAME = `${QUEUE_NAME}-poison`;
export const ALERT_QUEUE_NAME = 'alerts';
export const ALERT_POISON_QUEUE_NAME = `${ALERT_QUEUE_NAME}-poison`;

const list = (fallback: readonly string[]) =>
  z
    .string()
    .transform((s) => s.split(',').map((x) => x.trim()).filter(Boolean))
    .optional()
    .transform((v) => v ?? [...fallback]);

const seconds = (fallback: number) => z.coerce.number().int().min(0).max(86_400).default(fallback);

const EnvSchema = z.object({
  AZURE_RESOURCE_MANAGER_ENDPOINT: z.url({ protocol: /^https$/ }).default('https://management.azure.com'),
  AZURE_RESOURCE_MANAGER_AUDIENCE: z.url().optional(),
  AZURE_CLIENT_ID: z.string().optional(),
  AzureWebJobsStorage: z.string().optional(),
  AzureWebJobsStorage__queueServiceUri: z.url().optional(),
  AzureWebJobsStorage__tableServiceUri: z.url().optional(),
  AzureWebJobsStorage__clientId: z.string().optional(),
  REMEDIATION_DEFAULT_MODE: ModeSchema.default('diagnose'),
  REMEDIATION_TABLE: z.string().regex(/^[A-Za-z][A-Za-z0-9]{2,62}$/).default('remediations'),
  REMEDIATION_LOCK_TABLE: z.string().regex(/^[A-Za-z][A-Za-z0-9]{2,62}$/).default('remediationlocks'),
  REMEDIATION_LOCK_TTL_SECONDS: seconds(1800),
  /** Between two polls of a run once its planned polls are past (and before any are learned). */
  RUN_COMMAND_POLL_SECONDS: z.coerce.number().min(0).max(60).default(10),
  /** No poll of a run before this: Run Command takes about 20 s even for an empty script. */
  RUN_COMMAND_MIN_SECONDS: z.coerce.number().min(0).max(600).default(20),
  RUN_COMMAND_BUSY_RETRIES: z.coerce.number().int().min(1).max(20).default(5),
  RUN_COMMAND_BUSY_DELAY_SECONDS: z.coerce.number().min(0).max(600).default(30),
  AZURE_LOGS_ENDPOINT: z.url({ protocol: /^https$/ }).default('https://api.loganalytics.io/v1'),
  AZURE_LOGS_AUDIENCE: z.url().default('https://api.loganalytics.io'),
  ALERT_ACCEPTED_SERVICES: list(DEFAULT_ACCEPTED_SERVICES),
  ALERT_RULES: list([]),
  ALERT_MODE: RequestModeSchema.default('repair'),
  ALERT_DEDUPE_SCOPE: z.enum(['vm', 'alert-and-vm']).default('vm'),
  ALERT_COOLDOWN_MINUTES: z.coerce.number().min(0).max(10_080).default(30),
  /**
   * `headers`: pace by ARM's own x-ms-ratelimit-remaining-* answers (instances share the
   * subscription's bucket), under a local ceiling at the limits below; `static`: this instance
   * alone keeps to the limits below (a fixed slice).
   */
  ARM_PACING: z.enum(['headers', 'static']).default('headers'),
  /** ARM's buckets per subscription and principal (documented: writes 200 + 10/s, reads 250 + 25/s). */
  ARM_WRITES_PER_SECOND: z.coerce.number().positive().max(1000).default(ARM_LIMITS.writes.perSecond),
  ARM_WRITE_BURST: z.coerce.number().int().min(1).max(1000).default(ARM_LIMITS.writes.burst),
  ARM_READS_PER_SECOND: z.coerce.number().positive().max(1000).default(ARM_LIMITS.reads.perSecond),
  ARM_READ_BURST: z.coerce.number().int().min(1).max(1000).default(ARM_LIMITS.reads.burst),
  /** Reads of one subscription's VMs within ARM_VM_VIEW_TTL_SECONDS from which one listing replaces single GETs; 0: never list. */
  ARM_VM_LIST_THRESHOLD: z.coerce.number().int().min(0).max(10_000).default(10),
  ARM_VM_VIEW_TTL_SECONDS: z.coerce.number().min(0).max(600).default(30),
  /**
   * How long a security-lowering change may stand before the relaxation sweep puts the security
   * back (a request's relaxForHours can only shorten it). A week at most: a relaxation is a
   * workaround to reach the VM, not a configuration.
   */
  SECURITY_RELAX_TTL_HOURS: z.coerce.number().int().min(MIN_RELAX_TTL_HOURS).max(MAX_RELAX_TTL_HOURS).default(DEFAULT_RELAX_TTL_HOURS),
});

// ---------------------------------------------------------------------------------------------
// HTTP authentication (src/auth/). Read on their own by the functions' registration, so that a
// bad auth setting fails closed on the HTTP routes (503) without touching the queue workers.
// docs/deploy.md, "Who may call what", explains each.
// ---------------------------------------------------------------------------------------------

/** How a group of HTTP routes authenticates its callers. */
export const HttpAuthModeSchema = z.enum(['function-key', 'entra']);
export type HttpAuthMode = z.infer<typeof HttpAuthModeSchema>;

const AuthEnvSchema = z.object({
  /** POST /api/alerts: the action group's own function key, or its Entra secure-webhook token. */
  AUTH_ALERTS: HttpAuthModeSchema.default('function-key'),
  /** POST /api/remediations, POST /api/remediations/allow and GET /api/remediations/{id}. */
  AUTH_REMEDIATIONS: HttpAuthModeSchema.default('function-key'),
  /** The tenant whose tokens are accepted (a GUID); needed when either mode is entra. */
  AUTH_ENTRA_TENANT_ID: z.guid().optional(),
  /** The app registration's identifier URI (v1 tokens) and application (client) id (v2 tokens). */
  AUTH_ENTRA_AUDIENCES: list([]),
  /** Where the tenant's signing keys and v2 issuer live; sovereign clouds differ. */
  AUTH_ENTRA_AUTHORITY_HOST: z.url({ protocol: /^https$/ }).default('https://login.microsoftonline.com'),
});

export interface EntraSettings {
  readonly tenantId: string;
  readonly audiences: readonly string[];
  /** No trailing slash. */
  readonly authorityHost: string;
}

export interface AuthSettings {
  readonly alerts: HttpAuthMode;
  readonly remediations: HttpAuthMode;
  /** Present when either group of routes uses entra. */
  readonly entra: EntraSettings | undefined;
}

export function loadAuthSettings(env: Readonly<Record<string, string | undefined>> = process.env): AuthSettings {
  const present = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== ''));
  const parsed = AuthEnvSchema.safeParse(present);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new ConfigurationError(`setting ${issue?.path.join('.') ?? '?'}: ${issue?.message ?? 'invalid'}`, { issues: parsed.error.issues });
  }
  const e = parsed.data;
  if (e.AUTH_ALERTS !== 'entra' && e.AUTH_REMEDIATIONS !== 'entra') return { alerts: e.AUTH_ALERTS, remediations: e.AUTH_REMEDIATIONS, entra: undefined };
  if (!e.AUTH_ENTRA_TENANT_ID) throw new ConfigurationError('setting AUTH_ENTRA_TENANT_ID: required when AUTH_ALERTS or AUTH_REMEDIATIONS is entra');
  if (e.AUTH_ENTRA_AUDIENCES.length === 0) throw new ConfigurationError('setting AUTH_ENTRA_AUDIENCES: required when AUTH_ALERTS or AUTH_REMEDIATIONS is entra');
  return {
    alerts: e.AUTH_ALERTS,
    remediations: e.AUTH_REMEDIATIONS,
    entra: { tenantId: e.AUTH_ENTRA_TENANT_ID.toLowerCase(), audiences: e.AUTH_ENTRA_AUDIENCES, authorityHost: e.AUTH_ENTRA_AUTHORITY_HOST.replace(/\/+$/, '') },
  };
}
// ---------------------------------------------------------------------------------------------

/** Every app setting the code reads; the deployment template must set each (see test/unit/infra.test.ts). */
export const SETTING_NAMES: readonly string[] = [...Object.keys(EnvSchema.shape), ...Object.keys(AuthEnvSchema.shape)];

export type StorageSettings =
  | { readonly kind: 'connection-string'; readonly connectionString: string }
  | { readonly kind: 'identity'; readonly queueServiceUri: string; readonly tableServiceUri: string; readonly clientId: string | undefined };

export interface Config {
  readonly arm: {
    readonly endpoint: string;
    readonly audience: string;
    readonly pollIntervalMs: number;
    readonly minRunMs: number;
    readonly vmViews: { readonly listThreshold: number; readonly ttlMs: number };
    /**
     * After a Run Command POST with no usable answer: how long its run may take to show in the
     * instance view, and how long to look for it. Both follow Run Command's known minimum
     * (3 × and 30 × RUN_COMMAND_MIN_SECONDS: 60 s and 10 min at the default 20 s).
     */
    readonly reconcile: { readonly settleMs: number; readonly timeoutMs: number } | undefined;
  };
  readonly managedIdentityClientId: string | undefined;
  /** Absent when no storage is configured (the CLI then keeps records in memory). */
  readonly storage: StorageSettings | undefined;
  readonly defaultMode: Mode;
  readonly tables: { readonly records: string; readonly locks: string };
  readonly lockTtlMs: number;
  readonly busyRetry: { readonly attempts: number; readonly delayMs: number };
  readonly logs: { readonly endpoint: string; readonly audience: string };
  readonly alerts: {
    readonly intake: AlertIntakeSettings;
    /** The mode alert-triggered jobs ask for; the VM's policy still caps it. */
    readonly mode: RequestMode;
    readonly dedupe: DedupeSettings;
  };
  /** Client-side pacing of ARM calls under ARM's token buckets (ARM_PACING and the ARM_* limits). */
  readonly armPacing: { readonly mode: PacingMode; readonly writes: RateLimit; readonly reads: RateLimit };
  /** SECURITY_RELAX_TTL_HOURS: the longest a security-lowering change stands before it is reverted. */
  readonly securityRelaxTtlHours: number;
}

export interface RateLimit {
  readonly perSecond: number;
  readonly burst: number;
}

export function loadConfig(env: Readonly<Record<string, string | undefined>> = process.env): Config {
  // Empty strings are how unset app settings often arrive; treat them as absent.
  const present = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== ''));
  const parsed = EnvSchema.safeParse(present);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new ConfigurationError(`setting ${issue?.path.join('.') ?? '?'}: ${issue?.message ?? 'invalid'}`, { issues: parsed.error.issues });
  }
  const e = parsed.data;
  const endpoint = e.AZURE_RESOURCE_MANAGER_ENDPOINT.replace(/\/+$/, '');
  return {
    arm: { endpoint, audience: (e.AZURE_RESOURCE_MANAGER_AUDIENCE ?? endpoint).replace(/\/+$/, ''), pollIntervalMs: e.RUN_COMMAND_POLL_SECONDS * 1000, minRunMs: e.RUN_COMMAND_MIN_SECONDS * 1000, vmViews: { listThreshold: e.ARM_VM_LIST_THRESHOLD, ttlMs: e.ARM_VM_VIEW_TTL_SECONDS * 1000 },
      reconcile: e.RUN_COMMAND_MIN_SECONDS > 0 ? { settleMs: 3 * e.RUN_COMMAND_MIN_SECONDS * 1000, timeoutMs: 30 * e.RUN_COMMAND_MIN_SECONDS * 1000 } : undefined,
    },
    managedIdentityClientId: e.AZURE_CLIENT_ID,
    storage: storageSettings(e),
    defaultMode: e.REMEDIATION_DEFAULT_MODE,
    tables: { records: e.REMEDIATION_TABLE, locks: e.REMEDIATION_LOCK_TABLE },
    lockTtlMs: e.REMEDIATION_LOCK_TTL_SECONDS * 1000,
    busyRetry: { attempts: e.RUN_COMMAND_BUSY_RETRIES, delayMs: e.RUN_COMMAND_BUSY_DELAY_SECONDS * 1000 },
    logs: { endpoint: e.AZURE_LOGS_ENDPOINT.replace(/\/+$/, ''), audience: e.AZURE_LOGS_AUDIENCE.replace(/\/+$/, '') },
    alerts: {
      intake: { acceptedServices: e.ALERT_ACCEPTED_SERVICES, alertRules: e.ALERT_RULES },
      mode: e.ALERT_MODE,
      dedupe: { scope: e.ALERT_DEDUPE_SCOPE, cooldownMs: e.ALERT_COOLDOWN_MINUTES * 60_000 },
    },
    armPacing: {
      mode: e.ARM_PACING,
      writes: { perSecond: e.ARM_WRITES_PER_SECOND, burst: e.ARM_WRITE_BURST },
      reads: { perSecond: e.ARM_READS_PER_SECOND, burst: e.ARM_READ_BURST },
    },
    securityRelaxTtlHours: e.SECURITY_RELAX_TTL_HOURS,
  };
}

function storageSettings(e: z.infer<typeof EnvSchema>): StorageSettings | undefined {
  if (e.AzureWebJobsStorage) {
    const connectionString = e.AzureWebJobsStorage === 'UseDevelopmentStorage=true' ? DEVELOPMENT_STORAGE : e.AzureWebJobsStorage;
    return { kind: 'connection-string', connectionString };
  }
  if (e.AzureWebJobsStorage__queueServiceUri && e.AzureWebJobsStorage__tableServiceUri) {
    return {
      kind: 'identity',
      queueServiceUri: e.AzureWebJobsStorage__queueServiceUri,
      tableServiceUri: e.AzureWebJobsStorage__tableServiceUri,
      clientId: e.AzureWebJobsStorage__clientId ?? e.AZURE_CLIENT_ID,
    };
  }
  if (e.AzureWebJobsStorage__queueServiceUri || e.AzureWebJobsStorage__tableServiceUri) {
    throw new ConfigurationError('identity-based storage needs both AzureWebJobsStorage__queueServiceUri and AzureWebJobsStorage__tableServiceUri');
  }
  return undefined;
}

/** `UseDevelopmentStorage=true` means the storage emulator on its default ports. */
const DEVELOPMENT_STORAGE = developmentStorageConnectionString({ queue: 10001, table: 10002 });
