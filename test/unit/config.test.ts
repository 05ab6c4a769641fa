import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { ConfigurationError } from '../../src/errors.js';

describe('loadConfig', () => {
  it('has safe defaults: public ARM, diagnose only, no storage', () => {
    const c = loadConfig({});
    expect(c.arm).toEqual({ endpoint: 'https://management.azure.com', audience: 'https://management.azure.com', pollIntervalMs: 5000 });
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

  it('treats empty settings as unset', () => {
    expect(loadConfig({ REMEDIATION_DEFAULT_MODE: '', AzureWebJobsStorage: '' })).toMatchObject({ defaultMode: 'diagnose', storage: undefined });
  });
});
