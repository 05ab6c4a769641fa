/**
 * Checks over the deployment template. The files are parsed with tree-sitter-bicep and the
 * properties that matter for safety are checked against what the code reads and ships; where
 * the Bicep CLI is there (BICEP_PATH: CI and `npm test` restore 0.49.2 from NuGet) the
 * templates are also compiled and linted with it.
 */
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { EVENT_QUERY_FILE, EVENT_SOURCES } from '../../src/alerts/event-query.js';
import { SETTING_NAMES } from '../../src/config.js';
import { packageRoot } from '../../src/util/package-root.js';
import { bicepParser, bicepStringArray, syntaxProblems } from '../support/bicep-parser.js';

const root = packageRoot();
const infra = join(root, 'infra');
const bicepFiles = [join(infra, 'main.bicep'), ...readdirSync(join(infra, 'modules')).filter((f) => f.endsWith('.bicep')).map((f) => join(infra, 'modules', f))];
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

  const bicep = process.env.BICEP_PATH;
  if (!bicep) console.warn('\n*** BICEP_PATH not set: the templates were parsed with tree-sitter-bicep, not compiled or linted by the Bicep CLI ***\n');
  it.runIf(bicep)('compiles and lints with the Bicep CLI', () => {
    for (const file of [join(infra, 'main.bicep')]) {
      const build = spawnSync(bicep ?? 'bicep', ['build', file, '--stdout'], { encoding: 'utf8' });
      expect(build.status, build.stderr).toBe(0);
      const lint = spawnSync(bicep ?? 'bicep', ['lint', file], { encoding: 'utf8' });
      expect(lint.status, lint.stdout + lint.stderr).toBe(0);
    }
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
});
