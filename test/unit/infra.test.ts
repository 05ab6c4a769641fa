/**
 * Checks over the deployment template. The files are parsed with tree-sitter-bicep and the
 * properties that matter for safety are checked against what the code reads and ships; where
 * the Bicep CLI is there (BICEP_PATH: CI and `npm test` restore 0.49.2 from NuGet) the
 * templates are also compiled and linted with it.
 */
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { readdirSync, readFileSync, existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { EVENT_QUERY_FILE, EVENT_SOURCES } from '../../src/alerts/event-query.js';
import { HttpAuthModeSchema, loadConfig, SETTING_NAMES } from '../../src/config.js';
import { packageRoot } from '../../src/util/package-root.js';
import { bicepParser, bicepStringArray, syntaxProblems } from '../support/bicep-parser.js';

const root = packageRoot();
const infra = join(root, 'infra');
const bicepFiles = [join(infra, 'main.bicep'), ...readdirSync(join(infra, 'modules')).filter((f) => f.endsWith('.bicep')).map((f) => join(infra, 'modules', f))];

/** The Bicep CLI, when CI restored it (BICEP_PATH). */
const bicep = process.env.BICEP_PATH;

/** `bicep build` of main.bicep (modules included), run once for every test that reads it. */
let mainBuild: SpawnSyncReturns<string> | undefined;
function buildMain(): SpawnSyncReturns<string> {
  mainBuild ??= spawnSync(bicep ?? 'bicep', ['build', join(infra, 'main.bicep'), '--stdout'], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  return mainBuild;
}
const text = (file: string) => readFileSync(file, 'utf8');
const main = text(join(infra, 'main.bicep'));
const app = text(join(infra, 'modules', 'app.bicep'));

describe('Bicep templates', () => {
  it.each(bicepFiles.map((f) => [f.slice(root.length + 1), f]))('%s parses without syntax errors', async (_name, file) => {
    const tree = (await bicepParser()).parse(text(file));
    if (!tree) throw new Error('no tree');
    expect(syntaxProblems(tree)).toEqual([]);
    tree.delete();
  });

  it('reports a broken template (the parser is not vacuous)', async () => {
    const tree = (await bicepParser()).parse("resource sa 'Microsoft.Storage/storageAccounts@2023-05-01' = {\n  name: 'x'\n  properties: {\n");
    if (!tree) throw new Error('no tree');
    expect(syntaxProblems(tree).length).toBeGreaterThan(0);
    tree.delete();
  });

  if (!bicep) console.warn('\n*** BICEP_PATH not set: the templates were parsed with tree-sitter-bicep, not compiled or linted by the Bicep CLI ***\n');
  it.runIf(bicep)('compiles without warnings and lints with no diagnostics at all (Bicep CLI)', () => {
    const file = join(infra, 'main.bicep');
    const build = buildMain();
    expect(build.status, build.stderr).toBe(0);
    // No warning of any kind, in main.bicep or a module: among them BCP081 (a resource type
    // without published types) and every linter rule set to warning (use-recent-api-versions).
    expect(build.stderr.split('\n').filter((l) => /: (Warning|Error) /.test(l))).toEqual([]);
    // `bicep lint` exits 0 on warnings, so the diagnostics themselves are read: none, for the
    // template and every module it uses.
    const lint = spawnSync(bicep ?? 'bicep', ['lint', '--diagnostics-format', 'sarif', file], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
    expect(lint.status, lint.stderr).toBe(0);
    const sarif = JSON.parse(lint.stdout) as { runs: { results: { ruleId?: string; message: { text: string } }[] }[] };
    expect(sarif.runs.length).toBeGreaterThan(0);
    expect(sarif.runs.flatMap((r) => r.results.map((d) => `${d.ruleId ?? ''}: ${d.message.text}`))).toEqual([]);
  });

  it('deploys at subscription scope', () => {
    expect(main).toMatch(/^targetScope = 'subscription'$/m);
  });

  it('assigns no built-in Owner, Contributor or Virtual Machine Contributor role', () => {
    const forbidden = {
      Owner: '8e3af657-a8ff-443c-a75c-2fe8c4bcb635',
      Contributor: 'b24988ac-6180-42a0-ab88-20f7382dd24c',
      'Virtual Machine Contributor': '9980e02c-c2be-4d73-94e8-173b1dc7cf3c',
    };
    for (const file of bicepFiles) {
      for (const [role, id] of Object.entries(forbidden)) expect(text(file).toLowerCase(), `${role} in ${file}`).not.toContain(id);
    }
  });

  it('gives the custom role actions only, no wildcards, no data actions', () => {
    const actions = bicepStringArray(main, 'remediatorActions');
    expect(actions.length).toBeGreaterThan(0);
    for (const a of actions) expect(a).not.toContain('*');
    expect(main).toMatch(/dataActions: \[\]/);
    expect(main).toMatch(/assignableScopes: \[\s*subscription\(\)\.id\s*\]/);
  });

  it('gives the agent installer a narrow custom role instead of the Virtual Machine Contributor its policy lists', () => {
    const policies = text(join(infra, 'modules', 'monitoring-policies.bicep'));
    const actions = bicepStringArray(policies, 'agentInstallerActions');
    expect(actions.every((a) => /^Microsoft\.(Compute\/virtualMachines(\/extensions)?|Resources\/deployments(\/[a-zA-Z]+)?)\/(read|write|validate\/action|operationStatuses\/read)$/.test(a))).toBe(true);
    expect(actions.some((a) => a.includes('runCommand'))).toBe(false);
  });

  it('turns storage shared keys off, and local auth off for Log Analytics and Application Insights', () => {
    expect(app).toMatch(/resource storage 'Microsoft\.Storage\/storageAccounts@[^']+' = \{[\s\S]*?allowSharedKeyAccess: false/);
    expect(app).toMatch(/features: \{\s*disableLocalAuth: true/);
    expect(app).toMatch(/DisableLocalAuth: true/);
  });

  it('sets every app setting the code reads (storage by identity, not by connection string)', () => {
    const set = new Set([...app.matchAll(/\{ name: '([^']+)', value: /g)].map((m) => m[1]));
    const expected = SETTING_NAMES.filter((n) => n !== 'AzureWebJobsStorage');
    expect(expected.filter((n) => !set.has(n))).toEqual([]);
    expect(set.has('AzureWebJobsStorage')).toBe(false);
    expect(app).toMatch(/name: 'node'\s*\n\s*version: '22'/);
  });

  it("uses the query the code ships for the alert rule, split by _ResourceId", () => {
    const match = /query: loadTextContent\('([^']+)'\)/.exec(app);
    expect(match).not.toBeNull();
    expect(resolve(dirname(join(infra, 'modules', 'app.bicep')), match?.[1] ?? '')).toBe(join(root, EVENT_QUERY_FILE));
    expect(app).toMatch(/resourceIdColumn: '_ResourceId'/);
    expect(app).toMatch(/useCommonAlertSchema: true/);
    expect(app).toMatch(/functionName: 'alerts'/);
  });

  it('collects exactly the events the shipped query reads, in at most 20 XPath expressions', () => {
    const xpaths = [...app.matchAll(/^\s*'(System!\*\[.*\]\])'$/gm)].map((m) => (m[1] ?? '').replace(/\\'/g, "'"));
    expect(xpaths.length).toBeGreaterThan(0);
    expect(xpaths.length).toBeLessThanOrEqual(20);
    const collected: Record<string, number[]> = {};
    for (const x of xpaths) {
      const provider = /Provider\[@Name='([^']+)'\]/.exec(x)?.[1] ?? '';
      collected[provider] = [...x.matchAll(/EventID=(\d+)/g)].map((m) => Number(m[1])).sort((a, b) => a - b);
    }
    expect(collected).toEqual(Object.fromEntries(Object.entries(EVENT_SOURCES).map(([k, v]) => [k, [...v].sort((a, b) => a - b)])));
  });

  it('reverts relaxations after 8 hours by default, at most a week, and passes that to the app', () => {
    expect(main).toMatch(/@minValue\(1\)\s*@maxValue\(168\)\s*@description\('[^\n]*'\)\s*param securityRelaxTtlHours int = 8$/m);
    expect(main).toMatch(/^\s*securityRelaxTtlHours: securityRelaxTtlHours$/m);
    expect(app).toMatch(/^param securityRelaxTtlHours int$/m);
    expect(app).toMatch(/\{ name: 'SECURITY_RELAX_TTL_HOURS', value: string\(securityRelaxTtlHours\) \}/);
    // The same bounds as the app's own validation, so a deployment cannot set what the app refuses.
    expect(() => loadConfig({ SECURITY_RELAX_TTL_HOURS: '168' })).not.toThrow();
    expect(() => loadConfig({ SECURITY_RELAX_TTL_HOURS: '169' })).toThrow();
    expect(() => loadConfig({ SECURITY_RELAX_TTL_HOURS: '0' })).toThrow();
  });

  it('has safe defaults: diagnose only, nothing security-lowering granted deployment-wide', () => {
    expect(main).toMatch(/param defaultMode string = 'diagnose'/);
    expect(main).toMatch(/param assignMonitoringPolicies bool = false/);
    for (const file of bicepFiles) expect(text(file)).not.toMatch(/relax-security-layer|disable-nla/);
  });

  it('is wired for azd', () => {
    const azd = text(join(root, 'azure.yaml'));
    expect(azd).toMatch(/provider: bicep[\s\S]*path: infra[\s\S]*module: main/);
    expect(azd).toMatch(/host: function/);
    expect(app).toMatch(/'azd-service-name': 'api'/);
    expect(existsSync(join(infra, 'main.parameters.json'))).toBe(true);
  });
  // --- who may call the app, and what its identity may do (issue 9) ---------------------------

  it('turns basic publishing credentials off for FTP and the scm site', () => {
    for (const policy of ['ftp', 'scm']) {
      expect(app, policy).toMatch(
        new RegExp(`resource \\w+ 'Microsoft\\.Web/sites/basicPublishingCredentialsPolicies@[^']+' = \\{\\s*parent: functionApp\\s*name: '${policy}'\\s*properties: \\{\\s*allow: false\\s*\\}`),
      );
    }
  });

  it('gives the identity Storage Blob Data Contributor on its storage account, not Blob Data Owner', () => {
    const blobDataOwner = 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b';
    for (const file of bicepFiles) expect(text(file).toLowerCase(), file).not.toContain(blobDataOwner);
    expect(app).toMatch(/var storageBlobDataContributor = 'ba92f5b4-2d11-453d-a403-e96b0029c9fe'/);
    expect(app).toMatch(/var storageQueueDataContributor = '974c5e8b-45b9-4653-ba55-5f855dd0fb88'/);
    expect(app).toMatch(/var storageTableDataContributor = '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'/);
    expect(app).toMatch(/for role in \[storageBlobDataContributor, storageQueueDataContributor, storageTableDataContributor\]: \{[\s\S]*?scope: storage\b/);
  });

  it('gives the action group a key of the alerts function alone, never a host key', () => {
    // A host key (host/functionKeys, host/default, the master key) opens every function.
    expect(app).not.toMatch(/host\/functionKeys|\/host\/default|masterKey|listKeys\(/);
    expect(app).toMatch(/resource alertsFunction 'Microsoft\.Web\/sites\/functions@[^']+' existing = \{\s*parent: functionApp\s*name: 'alerts'\s*\}/);
    expect(app).toMatch(/resource alertKey 'Microsoft\.Web\/sites\/functions\/keys@[^']+' = if \(alertsUseFunctionKey\) \{\s*parent: alertsFunction[\s\S]*?value: alertFunctionKey\s*\}/);
    expect(app).toMatch(/var alertsUrl = 'https:\/\/\$\{functionApp\.properties\.defaultHostName\}\/api\/alerts'/);
    expect(app).toMatch(/httpTriggerUrl: '\$\{alertsUrl\}\?code=\$\{alertFunctionKey\}'/);
    // The key can only exist once the function does: the receiver is wired only then.
    expect(app).toMatch(/var alertsUseFunctionKey = !alertsUseEntra && alertsFunctionDeployed/);
    expect(app).toMatch(/azureFunctionReceivers: alertsUseFunctionKey\s*\?/);
    expect(main).toMatch(/param alertsFunctionDeployed bool = false/);
  });

  it('offers the Entra secure webhook: a token for the app registration, no secret in the URL', () => {
    expect(app).toMatch(
      /webhookReceivers: alertsUseEntra\s*\?\s*\[\s*\{\s*name: 'rdp-remediator'\s*serviceUri: alertsUrl\s*useCommonAlertSchema: true\s*useAadAuth: true\s*objectId: entraAppObjectId\s*identifierUri: entraAppIdentifierUri\s*tenantId: entraTenantId\s*\}/,
    );
    // The Bicep modes are the app's modes, and the app settings carry them through.
    for (const param of ['alertAuth', 'remediationAuth']) {
      const allowed = new RegExp(`@allowed\\(\\[([^\\]]*)\\]\\)\\s*@description\\('[^\\n]*'\\)\\s*param ${param} string = 'function-key'`).exec(main);
      expect(allowed, param).not.toBeNull();
      expect([...(allowed?.[1] ?? '').matchAll(/'([^']+)'/g)].map((m) => m[1])).toEqual(HttpAuthModeSchema.options);
    }
    expect(app).toMatch(/\{ name: 'AUTH_ALERTS', value: alertAuth \}/);
    expect(app).toMatch(/\{ name: 'AUTH_REMEDIATIONS', value: remediationAuth \}/);
    expect(app).toMatch(/\{ name: 'AUTH_ENTRA_AUTHORITY_HOST', value: environment\(\)\.authentication\.loginEndpoint \}/);
  });

  it('assigns the custom role on the resource groups listed, and on the subscription only when none are', () => {
    expect(main).toMatch(/param remediationResourceGroups array = \[\]/);
    expect(main).toMatch(/resource subscriptionAssignment 'Microsoft\.Authorization\/roleAssignments@[^']+' = if \(empty\(remediationResourceGroups\)\) \{[\s\S]*?roleDefinitionId: remediatorRole\.id/);
    expect(main).toMatch(/module resourceGroupAssignments 'modules\/role-assignment\.bicep' = \[\s*for name in remediationResourceGroups: \{[\s\S]*?scope: resourceGroup\(name\)[\s\S]*?roleDefinitionId: remediatorRole\.id/);
    const perGroup = text(join(infra, 'modules', 'role-assignment.bicep'));
    expect(perGroup).toMatch(/^targetScope = 'resourceGroup'$/m);
    expect(perGroup).not.toMatch(/scope:/); // assigned on the module's resource group, nowhere else
    // No other assignment of the custom role (the workspace, for Logs queries, aside).
    expect([...main.matchAll(/roleDefinitionId: remediatorRole\.id/g)]).toHaveLength(2);
  });

  it('restricts inbound access only when asked: the ActionGroup service tag and the admins\' ranges', () => {
    expect(main).toMatch(/param restrictInboundAccess bool = false/);
    expect(main).toMatch(/param adminIpRanges array = \[\]/);
    expect(app).toMatch(/tag: 'ServiceTag'\s*ipAddress: 'ActionGroup'/);
    expect(app).toMatch(/ipSecurityRestrictions: restrictInboundAccess \? appAccessRules : \[\]/);
    expect(app).toMatch(/ipSecurityRestrictionsDefaultAction: restrictInboundAccess \? 'Deny' : 'Allow'/);
    expect(app).toMatch(/scmIpSecurityRestrictions: restrictInboundAccess \? adminAccessRules : \[\]/);
    expect(app).toMatch(/scmIpSecurityRestrictionsDefaultAction: restrictInboundAccess \? 'Deny' : 'Allow'/);
  });

  it.runIf(bicep)('compiles to those properties (Bicep CLI)', () => {
    const build = buildMain();
    expect(build.status, build.stderr).toBe(0);
    interface ArmResource {
      readonly type: string;
      readonly name: string;
      readonly condition?: string | boolean;
      readonly properties?: Record<string, unknown> & { template?: { resources: ArmResource[] | Record<string, ArmResource> }; allow?: unknown };
    }
    const all: ArmResource[] = [];
    const collect = (resources: ArmResource[] | Record<string, ArmResource>) => {
      for (const r of Array.isArray(resources) ? resources : Object.values(resources)) {
        all.push(r);
        if (r.type === 'Microsoft.Resources/deployments' && r.properties?.template) collect(r.properties.template.resources);
      }
    };
    collect((JSON.parse(build.stdout) as { resources: ArmResource[] | Record<string, ArmResource> }).resources);
    const types = all.map((r) => r.type);
    expect(types).not.toContain('Microsoft.Web/sites/host/functionKeys');
    expect(all.filter((r) => r.type === 'Microsoft.Web/sites/functions/keys').map((r) => r.condition)).toEqual(["[variables('alertsUseFunctionKey')]"]);
    const policies = all.filter((r) => r.type === 'Microsoft.Web/sites/basicPublishingCredentialsPolicies');
    expect(policies.map((r) => r.properties?.allow)).toEqual([false, false]);
    expect(build.stdout.toLowerCase()).not.toContain('b7e6dc6d-f1e8-4753-8033-0f276bb0955b');
    expect(build.stdout).toContain('ba92f5b4-2d11-453d-a403-e96b0029c9fe');
    const subscriptionAssignment = all.find((r) => r.type === 'Microsoft.Authorization/roleAssignments' && r.condition === "[empty(parameters('remediationResourceGroups'))]");
    expect(subscriptionAssignment).toBeDefined();
  });
});

describe('The workbook and the failure-rate alert (modules/workbook.bicep)', () => {
  const workbookFile = join(infra, 'modules', 'workbook.bicep');
  const workbook = text(workbookFile);
  const telemetryQueries = join(infra, 'queries', 'telemetry');
  const failureRateFile = join(telemetryQueries, 'failure-rate.kql');
  const kql = (file: string) => readFileSync(file, 'utf8').replace(/\r\n/g, '\n');

  it('is deployed with the app, on its Application Insights component', () => {
    expect(main).toMatch(/module telemetryViews 'modules\/workbook\.bicep' = \{\s*name: '[^']+'\s*scope: rg\b[\s\S]*?appInsightsId: app\.outputs\.appInsightsId\n/);
    expect(app).toMatch(/^output appInsightsId string = appInsights\.id$/m);
    expect(app).toMatch(/^resource appInsights 'Microsoft\.Insights\/components@[^']+' = \{/m);
  });

  it('is a shared workbook with a fixed name, sourced from the component, its queries loaded from the files', () => {
    expect(workbook).toMatch(
      /resource \w+ 'Microsoft\.Insights\/workbooks@[^']+' = \{\s*name: workbookName\s*location: location\s*tags: tags\s*kind: 'shared'\s*properties: \{\s*displayName: '[^']+'\s*category: 'workbook'\s*sourceId: appInsightsId\s*serializedData: string\(workbook\)\s*\}/,
    );
    expect(workbook).toMatch(/^var workbookName = guid\(resourceGroup\(\)\.id, '[^']+', environmentName\)$/m);
    expect(workbook).not.toMatch(/newGuid\(|utcNow\(/);
    // Each tile's query is a file; no query is written inline.
    const loaded = [...workbook.matchAll(/loadTextContent\('([^']+)'\)/g)].map((m) => resolve(dirname(workbookFile), m[1] ?? ''));
    const files = readdirSync(telemetryQueries).filter((f) => f.endsWith('.kql')).map((f) => join(telemetryQueries, f));
    expect(new Set(loaded)).toEqual(new Set(files));
    expect(workbook).not.toMatch(/\b(dependencies|customMetrics)\s*\n?\s*\|/);
  });

  it("runs the failure-rate file on the component, with the minimum count appended, and compares the file's rate column", () => {
    const query = /^var failureRateQuery = '\$\{loadTextContent\('([^']+)'\)\}\| where Completed >= \$\{failureAlertMinimumRemediations\}\\n'$/m.exec(workbook);
    expect(query).not.toBeNull();
    expect(resolve(dirname(workbookFile), query?.[1] ?? '')).toBe(failureRateFile);
    // The file ends its last line, so the appended clause is a line of its own.
    expect(kql(failureRateFile).endsWith('\n')).toBe(true);
    expect(kql(failureRateFile)).toMatch(/\| project FailureRatePercent, [^\n]*\bCompleted = /);
    expect(workbook).toMatch(
      /resource failureRateAlert 'Microsoft\.Insights\/scheduledQueryRules@[^']+' = \{[\s\S]*?scopes: \[\s*appInsightsId\s*\][\s\S]*?query: failureRateQuery\s*timeAggregation: 'Maximum'\s*metricMeasureColumn: 'FailureRatePercent'\s*operator: 'GreaterThan'\s*threshold: failureAlertThresholdPercent\b/,
    );
  });

  it("notifies only the action groups it is given (none by default), never the app's own", () => {
    expect(workbook).toMatch(/actions: \{\s*actionGroups: failureAlertActionGroupIds\s*\}/);
    expect(workbook).not.toMatch(/actionGroup\.id|Microsoft\.Insights\/actionGroups/i);
    expect(main).toMatch(/^\s*failureAlertActionGroupIds: failureAlertActionGroupIds$/m);
    // The app's action group (it posts to POST /api/alerts) is not handed out of app.bicep.
    expect(app).not.toMatch(/^output \w+ \w+ = actionGroup\b/m);
  });

  it('has the documented defaults, surfaced in main.bicep', () => {
    const defaults = {
      failureAlertThresholdPercent: 'int = 20',
      failureAlertMinimumRemediations: 'int = 5',
      failureAlertWindowSize: "string = 'PT1H'",
      failureAlertEvaluationFrequency: "string = 'PT15M'",
      failureAlertSeverity: 'int = 2',
      failureAlertActionGroupIds: 'array = []',
    };
    for (const [param, declared] of Object.entries(defaults)) {
      expect(main, param).toMatch(new RegExp(`@description\\('[^\\n]+'\\)\\s*param ${param} ${declared.replace(/[[\]]/g, '\\$&')}$`, 'm'));
      expect(main, param).toMatch(new RegExp(`^\\s*${param}: ${param}$`, 'm'));
      expect(workbook, param).toMatch(new RegExp(`^param ${param} \\w+$`, 'm'));
    }
    // azd's parameters file names only parameters main.bicep has.
    const azdParameters = Object.keys((JSON.parse(text(join(infra, 'main.parameters.json'))) as { parameters: Record<string, unknown> }).parameters);
    expect(azdParameters.filter((name) => !new RegExp(`^param ${name} `, 'm').test(main))).toEqual([]);
  });

  it.runIf(bicep)('compiles the workbook and the alert as declared (Bicep CLI)', () => {
    const build = buildMain();
    expect(build.status, build.stderr).toBe(0);
    interface ArmResource {
      readonly type: string;
      readonly name: string;
      readonly properties?: Record<string, unknown>;
    }
    interface ArmTemplate {
      readonly parameters?: Record<string, { defaultValue?: unknown }>;
      readonly variables?: Record<string, unknown>;
      readonly resources: ArmResource[] | Record<string, ArmResource>;
    }
    const resources = (t: ArmTemplate) => (Array.isArray(t.resources) ? t.resources : Object.values(t.resources));
    const template = JSON.parse(build.stdout) as ArmTemplate;
    expect(template.parameters?.failureAlertActionGroupIds?.defaultValue).toEqual([]);
    const deployment = resources(template).find((r) => r.type === 'Microsoft.Resources/deployments' && r.name === 'rdp-remediator-workbook');
    const params = deployment?.properties?.parameters as Record<string, { value: unknown }>;
    expect(params.failureAlertActionGroupIds?.value).toBe("[parameters('failureAlertActionGroupIds')]");
    expect(params.appInsightsId?.value).toMatch(/\.outputs\.appInsightsId\.value\]$/);
    const nested = deployment?.properties?.template as ArmTemplate;
    const loaded = Object.entries(nested.variables ?? {}).filter(([k]) => k.startsWith('$fxv#'));
    const fileOf = new Map(loaded.map(([k, v]) => [k, v]));

    const rule = resources(nested).find((r) => r.type === 'Microsoft.Insights/scheduledQueryRules');
    const ruleProps = rule?.properties as { scopes: unknown; actions: { actionGroups: unknown }; criteria: { allOf: { query: string }[] } };
    expect(ruleProps.scopes).toEqual(["[parameters('appInsightsId')]"]);
    expect(ruleProps.actions.actionGroups).toBe("[parameters('failureAlertActionGroupIds')]");
    expect(JSON.stringify(rule)).not.toMatch(/Microsoft\.Insights\/actionGroups/i);
    expect(ruleProps.criteria.allOf.map((c) => c.query)).toEqual(["[variables('failureRateQuery')]"]);
    const query = /^\[format\('\{0\}\| where Completed >= \{1\}\n', variables\('(\$fxv#\d+)'\), parameters\('failureAlertMinimumRemediations'\)\)\]$/.exec(String(nested.variables?.failureRateQuery));
    expect(query).not.toBeNull();
    expect(fileOf.get(query?.[1] ?? '')).toBe(kql(failureRateFile));

    const book = resources(nested).find((r) => r.type === 'Microsoft.Insights/workbooks');
    expect(book?.properties?.sourceId).toBe("[parameters('appInsightsId')]");
    expect(book?.properties?.category).toBe('workbook');
    // Every query the compiled template embeds is one of the files, word for word.
    const files = new Set(readdirSync(telemetryQueries).filter((f) => f.endsWith('.kql')).map((f) => kql(join(telemetryQueries, f))));
    expect(loaded.filter(([, v]) => !files.has(String(v))).map(([k]) => k)).toEqual([]);
    expect(new Set(loaded.map(([, v]) => v))).toEqual(files);
  });
});
