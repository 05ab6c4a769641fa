/**
 * The composition root: builds the adapters from configuration, once per process, so
 * function handlers stay thin and share clients (connection reuse, token cache).
 */
import { DefaultAzureCredential, ManagedIdentityCredential, type TokenCredential } from '@azure/identity';
import type { ArmComputeGatewayOptions, ComputeGateway } from '../adapters/compute.js';
import { lazyComputeGateway } from '../adapters/lazy-compute.js';
import { lazyGateway } from '../adapters/lazy-gateway.js';
import { StorageAlertQueue, StorageJobQueue, type AlertQueue, type JobQueue } from '../adapters/job-queue.js';
import { InMemoryRemediationStore, TableRemediationStore, type RemediationStore } from '../adapters/remediation-store.js';
import { queueClient, tableClient, type StorageConnection } from '../adapters/storage.js';
import { InMemoryVmLock, TableVmLock, type VmLock } from '../adapters/vm-lock.js';
import { ALERT_QUEUE_NAME, QUEUE_NAME, loadConfig, type Config } from '../config.js';
import { InMemoryAdmissionStore, TableAdmissionStore, type AdmissionStore } from '../alerts/admission.js';
import type { LogsGateway } from '../adapters/logs.js';
import { DEFAULT_BOUNDS, armPacingPolicy } from '../adapters/pacing.js';
import { ConfigurationError } from '../errors.js';
import type { RemediationDeps } from '../pipeline/remediate.js';

export interface Services {
  readonly config: Config;
  readonly credential: TokenCredential;
  readonly compute: ComputeGateway;
  readonly store: RemediationStore;
  readonly lock: VmLock;
  /** Absent without storage: only the in-process CLI runs then. */
  readonly queue: JobQueue | undefined;
  readonly logs: LogsGateway;
  readonly admissions: AdmissionStore;
  /** Where the webhook puts accepted alerts for the alert worker. */
  readonly alertQueue: AlertQueue | undefined;
}

/**
 * How the app signs in to Azure:
 * - `managed-identity`, in the function app: ManagedIdentityCredential with the user-assigned
 *   identity's client id (AZURE_CLIENT_ID), or the system-assigned one without it. Nothing else is
 *   tried, so a misconfigured identity fails at once with its own error instead of after a chain
 *   of developer credentials that cannot exist on a Functions host.
 * - `developer`, from an admin's terminal (the CLI): DefaultAzureCredential, which finds the
 *   Azure CLI's, azd's or the environment's sign-in (AZURE_TOKEN_CREDENTIALS narrows the chain).
 */
export type CredentialKind = 'managed-identity' | 'developer';

export interface CreateServicesOptions {
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** Default `developer`; the function handlers' process-wide services use `managed-identity`. */
  readonly credential?: CredentialKind;
  /** Used when no storage is configured; the HTTP and queue functions require storage. */
  readonly allowInMemory?: boolean;
}

export function createServices(options: CreateServicesOptions = {}): Services {
  const config = loadConfig(options.env);
  const signIn = (clientId: string | undefined): TokenCredential =>
    options.credential === 'managed-identity'
      ? new ManagedIdentityCredential(clientId ? { clientId } : {})
      : new DefaultAzureCredential(clientId ? { managedIdentityClientId: clientId } : {});
  const credential = signIn(config.managedIdentityClientId);
  const pacing = armPacingPolicy(config.armPacing.mode, { reads: config.armPacing.reads, writes: config.armPacing.writes });
  // Every client is bounded (per-try timeout, retry budget, deadline): see DEFAULT_BOUNDS in src/adapters/pacing.ts.
  const computeOptions: ArmComputeGatewayOptions = {
    endpoint: config.arm.endpoint,
    audience: config.arm.audience,
    pollIntervalMs: config.arm.pollIntervalMs,
    minRunMs: config.arm.minRunMs,
    vmViews: config.arm.vmViews,
    ...(config.arm.reconcile ? { reconcile: config.arm.reconcile } : {}),
    additionalPolicies: [pacing],
    bounds: DEFAULT_BOUNDS.arm,
  };
  // The compute and Logs SDKs load at their first call, not at a cold start (every entry module
  // is imported then, the webhook's included): see src/adapters/lazy-gateway.ts.
  const compute = lazyComputeGateway(credential, computeOptions);
  const logs = lazyGateway<LogsGateway>('logs', async () => {
    const { MonitorLogsGateway } = await import('../adapters/logs.js');
    return new MonitorLogsGateway(credential, { endpoint: config.logs.endpoint, audience: config.logs.audience, bounds: DEFAULT_BOUNDS.logs });
  });
  if (!config.storage) {
    if (!options.allowInMemory) throw new ConfigurationError('no storage configured: set AzureWebJobsStorage (or its identity-based __queueServiceUri and __tableServiceUri)');
    return {
      config,
      credential,
      compute,
      logs,
      store: new InMemoryRemediationStore(),
      lock: new InMemoryVmLock(),
      admissions: new InMemoryAdmissionStore(),
      queue: undefined,
      alertQueue: undefined,
    };
  }
  const connection: StorageConnection =
    config.storage.kind === 'connection-string'
      ? config.storage
      : {
          kind: 'identity',
          queueServiceUri: config.storage.queueServiceUri,
          tableServiceUri: config.storage.tableServiceUri,
          credential: config.storage.clientId ? signIn(config.storage.clientId) : credential,
        };
  return {
    config,
    credential,
    compute,
    logs,
    store: new TableRemediationStore(tableClient(connection, config.tables.records, DEFAULT_BOUNDS.table)),
    lock: new TableVmLock(tableClient(connection, config.tables.locks, DEFAULT_BOUNDS.table)),
    admissions: new TableAdmissionStore(tableClient(connection, config.tables.records, DEFAULT_BOUNDS.table)),
    queue: new StorageJobQueue(queueClient(connection, QUEUE_NAME, DEFAULT_BOUNDS.queue), { operationTimeoutMs: DEFAULT_BOUNDS.queue.operationTimeoutMs }),
    alertQueue: new StorageAlertQueue(queueClient(connection, ALERT_QUEUE_NAME, DEFAULT_BOUNDS.queue), { operationTimeoutMs: DEFAULT_BOUNDS.queue.operationTimeoutMs }),
  };
}

let shared: Services | undefined;

/** The process-wide services for the function handlers, signed in with the app's managed identity. */
export function getServices(): Services {
  shared ??= createServices({ credential: 'managed-identity' });
  return shared;
}

/** Forgets the shared services, so the next call reads the environment again (tests, demo). */
export function resetServices(): void {
  shared = undefined;
}

export function remediationDeps(services: Services, extra: Partial<RemediationDeps> = {}): RemediationDeps {
  const { config } = services;
  return {
    compute: services.compute,
    store: services.store,
    lock: services.lock,
    policy: { defaultMode: config.defaultMode },
    lockTtlMs: config.lockTtlMs,
    relaxTtlHours: config.securityRelaxTtlHours,
    busyRetry: { attempts: config.busyRetry.attempts, delayMs: (attempt) => config.busyRetry.delayMs * attempt },
    ...extra,
  };
}
