/**
 * The emulator's Logs query API against the real @azure/monitor-query-logs LogsQueryClient and
 * DefaultAzureCredential over sockets: the shipped event query evaluated over a workspace's
 * Event rows within the request's timespan, workspace and resource addressing, partial
 * results, retried 429/503s, and the errors the SDK turns into RestError.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DefaultAzureCredential } from '@azure/identity';
import { LogsQueryClient, LogsQueryResultStatus, type LogsTable } from '@azure/monitor-query-logs';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { startEmulator, trustEmulatorCa, type Emulator, type LogEvent } from '../../emulator/index.js';
import { EVENT_QUERY_FILE, EVENT_SOURCES, eventQuery } from '../../src/alerts/event-query.js';
import { packageRoot } from '../../src/util/package-root.js';

const SUB = '00000000-0000-0000-0000-0000000000bb';
const RG = 'rg-logs-e2e';
const WORKSPACE_ID = '5a7e1f0c-3b2d-4c8e-9f10-2a3b4c5d6e7f';
const WORKSPACE_RESOURCE = `/subscriptions/${SUB}/resourceGroups/rg-monitor/providers/Microsoft.OperationalInsights/workspaces/law-rdp`;
const RECENT_WORKSPACE_ID = '0b1c2d3e-4f50-4617-8829-3a4b5c6d7e8f';
const START = new Date('2025-03-01T10:00:00.000Z');
const END = new Date('2025-03-01T11:00:00.000Z');
const RCM = 'Microsoft-Windows-TerminalServices-RemoteConnectionManager';

let emu: Emulator;
let client: LogsQueryClient;
let vmA: string;
let vmB: string;
const savedEnv = { IDENTITY_ENDPOINT: process.env['IDENTITY_ENDPOINT'], IDENTITY_HEADER: process.env['IDENTITY_HEADER'] };

function at(iso: string): Date {
  return new Date(`2025-03-01T${iso}Z`);
}

function event(resourceId: string, computer: string, time: Date | string, source: string, id: number, extra: Partial<LogEvent> = {}): LogEvent {
  return { TimeGenerated: time, _ResourceId: resourceId, Computer: computer, EventLog: 'System', Source: source, EventID: id, ...extra };
}

interface Row {
  readonly resourceId: unknown;
  readonly computer: unknown;
  readonly count: unknown;
  readonly eventIds: unknown;
  readonly lastSeen: unknown;
}

function rowsOf(tables: readonly LogsTable[]): Row[] {
  expect(tables).toHaveLength(1);
  const table = tables[0];
  if (!table) throw new Error('no table');
  expect(table.columnDescriptors).toEqual([
    { name: '_ResourceId', type: 'string' },
    { name: 'Computer', type: 'string' },
    { name: 'Count', type: 'long' },
    { name: 'EventIDs', type: 'dynamic' },
    { name: 'LastSeen', type: 'datetime' },
  ]);
  return table.rows.map((r) => ({ resourceId: r[0], computer: r[1], count: r[2], eventIds: r[3], lastSeen: r[4] }));
}

beforeAll(async () => {
  emu = await startEmulator();
  trustEmulatorCa(emu.caPem);
  process.env['IDENTITY_ENDPOINT'] = emu.identityEndpoint;
  process.env['IDENTITY_HEADER'] = emu.identityHeader;
  const credential = new DefaultAzureCredential();
  // The package's default scope (https://api.loganalytics.io/.default) and retry policy.
  client = new LogsQueryClient(credential, { endpoint: emu.logsEndpoint });

  vmA = emu.addVm({ subscriptionId: SUB, resourceGroup: RG, name: 'vm-rdp-a' });
  vmB = emu.addVm({ subscriptionId: SUB, resourceGroup: RG, scaleSet: { name: 'vmss-rdp', instanceId: '1' } });
  // Workspaces usually hold _ResourceId in lower case: B is stored that way, A as ARM spells it.
  const bStored = vmB.toLowerCase();
  const cStored = `/subscriptions/${SUB}/resourcegroups/${RG}/providers/microsoft.compute/virtualmachines/vm-quiet`;

  emu.addWorkspace({ workspaceId: WORKSPACE_ID, resourceId: WORKSPACE_RESOURCE });
  emu.addEvents(WORKSPACE_ID, [
    // A: four matching events in the window (the start is inclusive).
    event(vmA, 'vm-rdp-a', START, 'TermDD', 56),
    event(vmA, 'vm-rdp-a', at('10:05:00'), RCM, 1058),
    event(vmA, 'vm-rdp-a', at('10:20:00').toISOString(), 'Schannel', 36870),
    event(vmA, 'vm-rdp-a', at('10:59:59.999'), RCM, 1058),
    // A: outside the window (the end is exclusive) or not an RDP event.
    event(vmA, 'vm-rdp-a', END, RCM, 1057),
    event(vmA, 'vm-rdp-a', at('09:59:59.999'), 'Schannel', 36874),
    event(vmA, 'vm-rdp-a', at('10:10:00'), 'Schannel', 36870, { EventLog: 'Application' }),
    event(vmA, 'vm-rdp-a', at('10:10:00'), 'Schannel', 36887),
    event(vmA, 'vm-rdp-a', at('10:10:00'), 'schannel', 36870),
    event(vmA, 'vm-rdp-a', at('10:10:00'), 'Microsoft-Windows-Kernel-General', 12),
    // B: a 7022 counts only for Remote Desktop Services.
    event(bStored, 'vmss-rdp000001', at('10:30:00'), 'Service Control Manager', 7022, { RenderedDescription: 'The Remote Desktop Services service hung on starting.' }),
    event(bStored, 'vmss-rdp000001', at('10:31:00'), 'Service Control Manager', 7022, { RenderedDescription: 'The Windows Update service hung on starting.' }),
    event(bStored, 'vmss-rdp000001', at('10:32:00'), 'Schannel', 36888),
    // C: RDP events, but only before the window.
    event(cStored, 'vm-quiet', at('09:00:00'), RCM, 1058),
    event(cStored, 'vm-quiet', at('09:30:00'), 'Schannel', 36871),
    // A machine outside Azure: no _ResourceId.
    event('', 'onprem-01', at('10:15:00'), RCM, 1058),
  ]);

  emu.addWorkspace({ workspaceId: RECENT_WORKSPACE_ID, resourceId: `/subscriptions/${SUB}/resourceGroups/rg-monitor/providers/Microsoft.OperationalInsights/workspaces/law-recent` });
  emu.addEvents(RECENT_WORKSPACE_ID, [
    event(vmA, 'vm-rdp-a', new Date(Date.now() - 10 * 60_000), RCM, 1059),
    event(vmA, 'vm-rdp-a', new Date(Date.now() - 2 * 3600_000), RCM, 1059),
  ]);
});

afterAll(async () => {
  for (const [name, value] of Object.entries(savedEnv)) {
    if (value === undefined) delete process.env[name];
    else process.env[name] = value;
  }
  await emu.stop();
});

beforeEach(() => {
  emu.clearLogsFaults();
  emu.setPartialError(WORKSPACE_ID, null);
});

describe('the shipped event query', () => {
  it('returns one row per VM in the window, without out-of-window and non-RDP events', async () => {
    const result = await client.queryWorkspace(WORKSPACE_ID, eventQuery(), { startTime: START, endTime: END });
    if (result.status !== LogsQueryResultStatus.Success) throw new Error(`expected Success, got ${result.status}`);
    const rows = rowsOf(result.tables);
    expect(rows).toHaveLength(2);
    expect(rows.find((r) => r.resourceId === vmA)).toEqual({ resourceId: vmA, computer: 'vm-rdp-a', count: 4, eventIds: [56, 1058, 36870], lastSeen: at('10:59:59.999') });
    expect(rows.find((r) => r.resourceId === vmB.toLowerCase())).toEqual({
      resourceId: vmB.toLowerCase(),
      computer: 'vmss-rdp000001',
      count: 2,
      eventIds: [7022, 36888],
      lastSeen: at('10:32:00'),
    });

    // The real identity flow: the package's scope became the Logs audience.
    expect(emu.identityRequests.some((r) => r.status === 200 && r.resource === 'https://api.loganalytics.io')).toBe(true);
    const record = emu.logsRequests.at(-1);
    expect(record).toMatchObject({ method: 'POST', path: `/v1/workspaces/${WORKSPACE_ID}/query`, status: 200, recognised: true, target: 'workspace', rows: 2, partial: false });
    expect(record?.timespan).toBe(`${START.toISOString()}/${END.toISOString()}`);
    expect(record?.window).toEqual({ start: START.toISOString(), end: END.toISOString() });
  });

  it('reads the same window from start/duration and duration/end timespans, and Prefer: wait', async () => {
    for (const timespan of [{ startTime: START, duration: 'PT1H' }, { duration: 'PT60M', endTime: END }]) {
      const result = await client.queryWorkspace(WORKSPACE_ID, eventQuery(), timespan, { serverTimeoutInSeconds: 30 });
      if (result.status !== LogsQueryResultStatus.Success) throw new Error(`expected Success, got ${result.status}`);
      expect(rowsOf(result.tables).map((r) => r.count).sort()).toEqual([2, 4]);
      expect(emu.logsRequests.at(-1)).toMatchObject({ window: { start: START.toISOString(), end: END.toISOString() }, wait: 30 });
    }
  });

  it('takes a bare duration as ending now', async () => {
    const result = await client.queryWorkspace(RECENT_WORKSPACE_ID, eventQuery(), { duration: 'PT1H' });
    if (result.status !== LogsQueryResultStatus.Success) throw new Error(`expected Success, got ${result.status}`);
    expect(rowsOf(result.tables).map((r) => [r.resourceId, r.count])).toEqual([[vmA, 1]]);
    expect(emu.logsRequests.at(-1)?.timespan).toBe('PT1H');
  });

  it('queryResource addresses the workspace by its ARM id (the SDK sends /v1//subscriptions/...)', async () => {
    const result = await client.queryResource(WORKSPACE_RESOURCE.toLowerCase(), eventQuery(), { startTime: START, endTime: END });
    if (result.status !== LogsQueryResultStatus.Success) throw new Error(`expected Success, got ${result.status}`);
    expect(rowsOf(result.tables).map((r) => r.resourceId).sort()).toEqual([vmA, vmB.toLowerCase()].sort());
    const record = emu.logsRequests.at(-1);
    expect(record?.path.startsWith('/v1//subscriptions/')).toBe(true);
    expect(record).toMatchObject({ status: 200, target: 'resource', workspaceIds: [WORKSPACE_ID] });
  });

  it('queryResource on a VM reads only that VM, matching _ResourceId case-insensitively', async () => {
    const result = await client.queryResource(vmB, eventQuery(), { startTime: START, endTime: END });
    if (result.status !== LogsQueryResultStatus.Success) throw new Error(`expected Success, got ${result.status}`);
    expect(rowsOf(result.tables).map((r) => [r.resourceId, r.count])).toEqual([[vmB.toLowerCase(), 2]]);
  });

  it('puts dynamic cells on the wire as JSON text and longs as numbers (the SDK parses them)', async () => {
    const token = emu.issueToken({ resource: 'https://api.loganalytics.io' });
    const response = await fetch(`${emu.logsEndpoint}/workspaces/${WORKSPACE_ID}/query`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ query: eventQuery(), timespan: `${START.toISOString()}/${END.toISOString()}` }),
    });
    expect(response.status).toBe(200);
    const body = (await response.json()) as { tables: { rows: unknown[][] }[] };
    const row = body.tables[0]?.rows.find((r) => r[0] === vmA);
    expect(row).toEqual([vmA, 'vm-rdp-a', 4, '[56,1058,36870]', '2025-03-01T10:59:59.999Z']);
  });
});

describe('partial results and retried faults', () => {
  it('answers 200 with a top-level PartialError, which the SDK reports as PartialFailure', async () => {
    emu.setPartialError(WORKSPACE_ID, { message: 'Query partially failed: a storage shard was unavailable.', dropResourceIds: [vmB] });
    const result = await client.queryWorkspace(WORKSPACE_ID, eventQuery(), { startTime: START, endTime: END });
    if (result.status !== LogsQueryResultStatus.PartialFailure) throw new Error(`expected PartialFailure, got ${result.status}`);
    expect(rowsOf(result.partialTables).map((r) => r.resourceId)).toEqual([vmA]);
    expect(result.partialError).toMatchObject({ code: 'PartialError', message: 'Query partially failed: a storage shard was unavailable.' });
    expect(result.partialError.details?.[0]?.resources).toEqual([vmB]);
    expect(emu.logsRequests.at(-1)).toMatchObject({ status: 200, partial: true, rows: 1 });
  });

  it('429 with Retry-After and 503 are absorbed by the SDK retry policy', async () => {
    const before = emu.logsRequests.length;
    emu.injectLogsFaults({ status: 429, count: 1, retryAfterSeconds: 1 });
    emu.injectLogsFaults({ status: 503, count: 1 });
    const started = Date.now();
    const result = await client.queryWorkspace(WORKSPACE_ID, eventQuery(), { startTime: START, endTime: END });
    expect(result.status).toBe(LogsQueryResultStatus.Success);
    // One second for the 429's Retry-After, then the exponential back-off for the 503.
    expect(Date.now() - started).toBeGreaterThanOrEqual(1000);
    const seen = emu.logsRequests.slice(before).map((r) => [r.status, r.errorCode, r.injected]);
    expect(seen).toEqual([
      [429, 'ThrottledError', true],
      [503, 'ServiceUnavailableError', true],
      [200, null, false],
    ]);
  });

  it('a 429 without Retry-After is not retried and surfaces as RestError', async () => {
    emu.injectLogsFaults({ status: 429, count: 1 });
    await expect(client.queryWorkspace(WORKSPACE_ID, eventQuery(), { duration: 'PT1H' })).rejects.toMatchObject({ name: 'RestError', statusCode: 429, code: 'ThrottledError' });
  });
});

describe('errors', () => {
  it('refuses any other query with 400 BadArgumentError', async () => {
    await expect(client.queryWorkspace(WORKSPACE_ID, 'Event | take 10', { duration: 'PT1H' })).rejects.toMatchObject({
      name: 'RestError',
      statusCode: 400,
      code: 'BadArgumentError',
      message: 'The emulator evaluates only the rdp-remediator event query',
    });
    expect(emu.logsRequests.at(-1)).toMatchObject({ status: 400, recognised: false, errorCode: 'BadArgumentError' });
  });

  it('answers 404 WorkspaceNotFoundError for an unknown workspace, by id or by ARM id', async () => {
    await expect(client.queryWorkspace('11111111-2222-3333-4444-555555555555', eventQuery(), { duration: 'PT1H' })).rejects.toMatchObject({
      name: 'RestError',
      statusCode: 404,
      code: 'WorkspaceNotFoundError',
    });
    await expect(client.queryResource(WORKSPACE_RESOURCE.replace('law-rdp', 'law-missing'), eventQuery(), { duration: 'PT1H' })).rejects.toMatchObject({
      statusCode: 404,
      code: 'WorkspaceNotFoundError',
    });
  });

  it('rejects a bad timespan with 400', async () => {
    const token = emu.issueToken({ resource: 'https://api.loganalytics.io' });
    const response = await fetch(`${emu.logsEndpoint}/workspaces/${WORKSPACE_ID}/query`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ query: eventQuery(), timespan: 'yesterday' }),
    });
    expect(response.status).toBe(400);
    expect(await response.json()).toMatchObject({ error: { code: 'BadArgumentError', innererror: { code: 'InvalidTimespan' } } });
  });

  it('answers 401 in the Logs envelope without a token, or with a token for another audience', async () => {
    const url = `${emu.logsEndpoint}/workspaces/${WORKSPACE_ID}/query`;
    const body = JSON.stringify({ query: eventQuery(), timespan: 'PT1H' });
    const bare = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
    expect(bare.status).toBe(401);
    expect(await bare.json()).toMatchObject({ error: { code: 'AuthorizationRequiredError' } });
    const armToken = emu.issueToken({ resource: 'https://management.azure.com' });
    const wrong = await fetch(url, { method: 'POST', headers: { authorization: `Bearer ${armToken}`, 'content-type': 'application/json' }, body });
    expect(wrong.status).toBe(401);
    expect(await wrong.json()).toMatchObject({ error: { code: 'InvalidAuthenticationTokenAudience' } });
  });
});

describe('emulator surface', () => {
  it('env() points apps at the Logs endpoint', () => {
    expect(emu.env().AZURE_LOGS_ENDPOINT).toBe(emu.logsEndpoint);
    expect(emu.logsEndpoint).toBe(`${emu.armEndpoint}/v1`);
  });

  it('evaluates the same sources and event ids as the shipped KQL (drift guard)', () => {
    const kql = readFileSync(join(packageRoot(), EVENT_QUERY_FILE), 'utf8');
    const fromKql: Record<string, number[]> = {};
    for (const match of kql.matchAll(/Source == "([^"]+)" and EventID (?:in \(([^)]*)\)|== (\d+))/g)) {
      const ids = (match[2] ?? match[3] ?? '').split(',').map((s) => Number(s.trim()));
      fromKql[match[1] ?? ''] = ids;
    }
    expect(fromKql).toEqual(Object.fromEntries(Object.entries(EVENT_SOURCES).map(([source, ids]) => [source, [...ids]])));
    expect(kql).toContain('RenderedDescription has "Remote Desktop Services"');
    expect(kql).toContain('| summarize Count = count(), EventIDs = make_set(EventID), LastSeen = max(TimeGenerated) by _ResourceId, Computer');
  });
});
