import { describe, expect, it } from 'vitest';
import { loadAuthSettings, loadConfig, SETTING_NAMES } from '../../src/config.js';
import { ConfigurationError } from '../../src/errors.js';

describe('loadConfig', () => {
  it('has safe defaults: public ARM, diagnose only, no storage', () => {
    const c = loadConfig({});
    expect(c.arm).toEqual({
      endpoint: 'https://management.azure.com',
      audience: 'https://management.azure.com',
      pollIntervalMs: 10_000,
      minRunMs: 20_000,
      vmViews: { listThreshold: 10, ttlMs: 30_000 },
      reconcile: { settleMs: 60_000, timeoutMs: 600_000 },
    });
    // Paced by ARM's own answers, under ARM's documented buckets.
    expect(c.armPacing).toEqual({ mode: 'headers', writes: { perSecond: 10, burst: 200 }, reads: { perSecond: 25, burst: 250 } });
    expect(c.defaultMode).toBe('diagnose');
    expect(c.storage).toBeUndefined();
  });

  it('takes a sovereign cloud endpoint and derives the audience from it unless given', () => {
    expect(loadConfig({ AZURE_RESOURCE_MANAGER_ENDPOINT: 'https://management.chinacloudapi.cn/' }).arm.audience).toBe('https://management.chinacloudapi.cn');
    expect(
      loadConfig({ AZURE_RESOURCE_MANAGER_ENDPOINT: 'https://management.usgovcloudapi.net', AZURE_RESOURCE_MANAGER_AUDIENCE: 'https://management.core.usgovcloudapi.net/' }).arm
        .audience,
    ).toBe('https://management.core.usgovcloudapi.net');
  });

  it('refuses a plain-http ARM endpoint and an unknown mode, naming the setting', () => {
    expect(() => loadConfig({ AZURE_RESOURCE_MANAGER_ENDPOINT: 'http://localhost:1234' })).toThrow(/AZURE_RESOURCE_MANAGER_ENDPOINT/);
    expect(() => loadConfig({ REMEDIATION_DEFAULT_MODE: 'fix' })).toThrow(ConfigurationError);
  });

  it('reads both storage forms and rejects half of the identity form', () => {
    expect(loadConfig({ AzureWebJobsStorage: 'UseDevelopmentStorage=true' }).storage).toMatchObject({ kind: 'connection-string' });
    expect(
      loadConfig({ AzureWebJobsStorage__queueServiceUri: 'https://a.queue.core.windows.net', AzureWebJobsStorage__tableServiceUri: 'https://a.table.core.windows.net', AZURE_CLIENT_ID: 'c1' })
        .storage,
    ).toEqual({ kind: 'identity', queueServiceUri: 'https://a.queue.core.windows.net', tableServiceUri: 'https://a.table.core.windows.net', clientId: 'c1' });
    expect(() => loadConfig({ AzureWebJobsStorage__queueServiceUri: 'https://a.queue.core.windows.net' })).toThrow(/both/);
  });

  it('lets a relaxation stand 8 hours by default, 1 to 168 when set, and names the setting otherwise', () => {
    expect(loadConfig({}).securityRelaxTtlHours).toBe(8);
    expect(loadConfig({ SECURITY_RELAX_TTL_HOURS: '1' }).securityRelaxTtlHours).toBe(1);
    expect(loadConfig({ SECURITY_RELAX_TTL_HOURS: '168' }).securityRelaxTtlHours).toBe(168);
    for (const bad of ['0', '169', '1.5', 'forever']) expect(() => loadConfig({ SECURITY_RELAX_TTL_HOURS: bad }), bad).toThrow(/SECURITY_RELAX_TTL_HOURS/);
    expect(SETTING_NAMES).toContain('SECURITY_RELAX_TTL_HOURS');
  });

  it('treats empty settings as unset', () => {
    expect(loadConfig({ REMEDIATION_DEFAULT_MODE: '', AzureWebJobsStorage: '' })).toMatchObject({ defaultMode: 'diagnose', storage: undefined });
  });
});

describe('loadAuthSettings', () => {
  const TENANT = '72F988BF-86F1-41AF-91AB-2D7CD011DB47';

  it('uses function keys everywhere by default, with no Entra settings needed', () => {
    expect(loadAuthSettings({})).toEqual({ alerts: 'function-key', remediations: 'function-key', entra: undefined });
    expect(loadAuthSettings({ AUTH_ALERTS: '', AUTH_ENTRA_TENANT_ID: '', AUTH_ENTRA_AUDIENCES: '' })).toMatchObject({ alerts: 'function-key', entra: undefined });
  });

  it('reads the Entra settings when a group of routes uses entra', () => {
    expect(
      loadAuthSettings({ AUTH_ALERTS: 'entra', AUTH_ENTRA_TENANT_ID: TENANT, AUTH_ENTRA_AUDIENCES: 'api://rdp, 3fa85f64-5717-4562-b3fc-2c963f66afa6', AUTH_ENTRA_AUTHORITY_HOST: 'https://login.microsoftonline.com/' }),
    ).toEqual({
      alerts: 'entra',
      remediations: 'function-key',
      entra: { tenantId: TENANT.toLowerCase(), audiences: ['api://rdp', '3fa85f64-5717-4562-b3fc-2c963f66afa6'], authorityHost: 'https://login.microsoftonline.com' },
    });
  });

  it('refuses entra without a tenant or an audience, an unknown mode and a plain-http authority, naming the setting', () => {
    expect(() => loadAuthSettings({ AUTH_REMEDIATIONS: 'entra', AUTH_ENTRA_AUDIENCES: 'api://rdp' })).toThrow(/AUTH_ENTRA_TENANT_ID/);
    expect(() => loadAuthSettings({ AUTH_ALERTS: 'entra', AUTH_ENTRA_TENANT_ID: TENANT })).toThrow(/AUTH_ENTRA_AUDIENCES/);
    expect(() => loadAuthSettings({ AUTH_ALERTS: 'anonymous' })).toThrow(/AUTH_ALERTS/);
    expect(() => loadAuthSettings({ AUTH_ALERTS: 'entra', AUTH_ENTRA_TENANT_ID: TENANT, AUTH_ENTRA_AUDIENCES: 'api://rdp', AUTH_ENTRA_AUTHORITY_HOST: 'http://login.example' })).toThrow(
      ConfigurationError,
    );
  });

  it('lists its settings among those the deployment must set', () => {
    for (const name of ['AUTH_ALERTS', 'AUTH_REMEDIATIONS', 'AUTH_ENTRA_TENANT_ID', 'AUTH_ENTRA_AUDIENCES', 'AUTH_ENTRA_AUTHORITY_HOST']) expect(SETTING_NAMES).toContain(name);
  });
});
