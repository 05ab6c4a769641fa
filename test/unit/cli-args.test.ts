import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { COMMAND_NAMES, helpFor, parseArgs } from '../../src/cli/args.js';
import { main } from '../../src/cli/main.js';

const SUB = '00000000-0000-0000-0000-0000000000a1';

/** The CLI in-process, with its stdout and stderr captured. */
async function cli(argv: string[]) {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(argv, { out: (s) => out.push(s), err: (s) => err.push(s) });
  return { code, out: out.join('\n'), err: err.join('\n') };
}

describe('parseArgs', () => {
  it('parses remediate with options in any order and either flag form', () => {
    expect(parseArgs(['remediate', '--mode=repair', '/sub/vm', '--allow', 'disable-nla,relax-security-layer', '--json'])).toEqual({
      success: true,
      data: { command: 'remediate', vmResourceId: '/sub/vm', mode: 'repair', allow: ['disable-nla', 'relax-security-layer'], json: true },
    });
  });
  it('takes --allow repeated as well as comma-separated', () => {
    expect(parseArgs(['remediate', '/x', '--allow', 'disable-nla', '--allow=relax-security-layer,disable-nla'])).toMatchObject({ success: true, data: { allow: ['disable-nla', 'relax-security-layer'] } });
  });
  it('defaults to diagnose', () => {
    expect(parseArgs(['remediate', '/x'])).toMatchObject({ success: true, data: { mode: 'diagnose', allow: [], json: false } });
  });
  it.each([
    [['frobnicate'], 'unknown command'],
    [['remediate'], 'needs a VM resource ID'],
    [['remediate', '/x', '--mode', 'yolo'], '--mode'],
    [['remediate', '/x', '--mode'], '--mode needs a value'],
    [['remediate', '/x', '--allow', 'everything'], 'unknown permission'],
    [['remediate', '/x', '--force'], 'unknown option "--force"'],
    [['remediate', '/x', '-f'], 'unknown option "-f"'],
    [['remediate', '/x', '--json=yes'], '--json takes no value'],
    [['remediate', '/x', '/y'], 'unexpected argument "/y"'],
  ])('rejects %j', (argv, message) => {
    const r = parseArgs(argv);
    expect(r.success).toBe(false);
    expect(!r.success && r.error.message).toContain(message);
  });
  it('says which command a usage error is for, and whether --json was asked for', () => {
    expect(parseArgs(['remediate', '/x', '--force', '--json'])).toEqual({ success: false, error: { message: 'unknown option "--force"', command: 'remediate', json: true } });
    expect(parseArgs(['restore'])).toMatchObject({ success: false, error: { command: 'restore', json: false } });
    // After "--" nothing is an option, --json included.
    expect(parseArgs(['remediate', '--', '--json'])).toMatchObject({ success: true, data: { vmResourceId: '--json', json: false } });
  });
  it('parses restore with its remediation id, a reason and --json', () => {
    const id = '5b0c7d2e-1f3a-4b6c-8d9e-0a1b2c3d4e5f';
    expect(parseArgs(['restore', id, '--reason', 'INC-9', '--json'])).toEqual({ success: true, data: { command: 'restore', remediationId: id, reason: 'INC-9', json: true } });
    expect(parseArgs(['restore', '--reason=INC-9', id])).toEqual({ success: true, data: { command: 'restore', remediationId: id, reason: 'INC-9', json: false } });
  });
  it.each([
    [['restore'], 'needs the id'],
    [['restore', 'not-a-guid'], 'not a remediation id'],
    [['restore', '5B0C7D2E-1F3A-4B6C-8D9E-0A1B2C3D4E5F'], 'not a remediation id'],
    [['restore', '5b0c7d2e-1f3a-4b6c-8d9e-0a1b2c3d4e5f', '--allow', 'disable-nla'], 'unknown option'],
    [['restore', '5b0c7d2e-1f3a-4b6c-8d9e-0a1b2c3d4e5f', 'extra'], 'unexpected argument'],
    [['restore', '5b0c7d2e-1f3a-4b6c-8d9e-0a1b2c3d4e5f', '--reason'], '--reason needs a value'],
    [['restore', '5b0c7d2e-1f3a-4b6c-8d9e-0a1b2c3d4e5f', '--reason', '--json'], '--reason needs a value'],
  ])('rejects %j', (argv, message) => {
    const r = parseArgs(argv);
    expect(!r.success && r.error.message).toContain(message);
  });
  it('parses alert with --dry-run and --json', () => {
    expect(parseArgs(['alert', 'a.json', '--dry-run'])).toEqual({ success: true, data: { command: 'alert', payloadFile: 'a.json', dryRun: true, json: false } });
    expect(parseArgs(['alert', '--json', 'a.json'])).toEqual({ success: true, data: { command: 'alert', payloadFile: 'a.json', dryRun: false, json: true } });
    expect(parseArgs(['alert'])).toMatchObject({ success: false, error: { message: expect.stringContaining('needs a payload file') as unknown } });
  });
  it('takes --relax-hours for a repair only, in whole hours from 1 to 168', () => {
    expect(parseArgs(['remediate', '/x', '--mode', 'repair', '--relax-hours', '2'])).toMatchObject({ success: true, data: { relaxForHours: 2 } });
    expect(parseArgs(['remediate', '/x', '--mode=repair', '--relax-hours=168'])).toMatchObject({ success: true, data: { relaxForHours: 168 } });
    for (const argv of [['remediate', '/x', '--relax-hours', '2'], ['remediate', '/x', '--mode', 'repair', '--relax-hours', '0'], ['remediate', '/x', '--mode', 'repair', '--relax-hours', '1.5'], ['remediate', '/x', '--mode', 'repair', '--relax-hours', '169']]) {
      expect(parseArgs(argv).success, argv.join(' ')).toBe(false);
    }
  });
  it('parses scan with repeated resource groups and tags, a concurrency and an output', () => {
    expect(parseArgs(['scan', '--subscription', SUB, '-g', 'rg-a', '--resource-group=RG-A', '--resource-group', 'rg-b', '--tag', 'env=prod', '--tag', 'Owner=team=ops', '--concurrency', '16', '--csv'])).toEqual({
      success: true,
      data: {
        command: 'scan',
        subscriptionId: SUB,
        resourceGroups: ['rg-a', 'rg-b'],
        tags: [
          { key: 'env', value: 'prod' },
          { key: 'Owner', value: 'team=ops' },
        ],
        concurrency: 16,
        output: 'csv',
        json: false,
      },
    });
    expect(parseArgs(['scan', '--subscription', SUB])).toMatchObject({ success: true, data: { resourceGroups: [], tags: [], concurrency: 8, output: 'table', json: false } });
    expect(parseArgs(['scan', '--subscription', SUB, '--json'])).toMatchObject({ success: true, data: { output: 'json', json: true } });
  });
  it.each([
    [['scan'], 'needs --subscription'],
    [['scan', '--subscription', 'prod'], 'not a subscription id'],
    [['scan', '--subscription', SUB, '--resource-group', 'a/b'], 'a name, not a path'],
    [['scan', '--subscription', SUB, '--resource-group', 'ends.'], 'resource group name'],
    [['scan', '--subscription', SUB, '--tag', 'env'], '<key>=<value>'],
    [['scan', '--subscription', SUB, '--tag', '=prod'], '<key>=<value>'],
    [['scan', '--subscription', SUB, '--concurrency', '0'], '--concurrency'],
    [['scan', '--subscription', SUB, '--concurrency', '65'], '--concurrency'],
    [['scan', '--subscription', SUB, '--concurrency', 'many'], '--concurrency'],
    [['scan', '--subscription', SUB, '--json', '--csv'], 'exclude each other'],
    [['scan', '--subscription', SUB, 'extra'], 'unexpected argument'],
  ])('rejects %j', (argv, message) => {
    const r = parseArgs(argv);
    expect(!r.success && r.error.message).toContain(message);
  });
  it('shows help: with no arguments, --help, -h, help [command], and <command> --help whatever else is on the line', () => {
    expect(parseArgs([])).toEqual({ success: true, data: { command: 'help' } });
    expect(parseArgs(['--help'])).toEqual({ success: true, data: { command: 'help' } });
    expect(parseArgs(['-h'])).toEqual({ success: true, data: { command: 'help' } });
    expect(parseArgs(['help', 'scan'])).toEqual({ success: true, data: { command: 'help', topic: 'scan' } });
    expect(parseArgs(['remediate', '--help'])).toEqual({ success: true, data: { command: 'help', topic: 'remediate' } });
    expect(parseArgs(['restore', 'not-a-guid', '--bogus', '-h'])).toEqual({ success: true, data: { command: 'help', topic: 'restore' } });
    expect(parseArgs(['help', 'frobnicate']).success).toBe(false);
  });
  it('reads --version and -V', () => {
    expect(parseArgs(['--version'])).toEqual({ success: true, data: { command: 'version' } });
    expect(parseArgs(['-V'])).toEqual({ success: true, data: { command: 'version' } });
  });
});

describe('help and version', () => {
  it.each(COMMAND_NAMES)('prints the usage of %s for "<command> --help" and "help <command>", with its exit codes; exit 0', async (command) => {
    const viaFlag = await cli([command, '--help']);
    expect(viaFlag.code).toBe(0);
    expect(viaFlag.out).toMatch(new RegExp(`^Usage: rdp-remediator ${command} `));
    expect(viaFlag.out).toContain('Exit codes:');
    expect(viaFlag.out).toContain('64 usage error');
    expect(viaFlag.out).toBe(helpFor(command));
    expect((await cli(['help', command])).out).toBe(viaFlag.out);
  });
  it('prints the general usage, listing every command', async () => {
    const { code, out } = await cli(['--help']);
    expect(code).toBe(0);
    for (const command of COMMAND_NAMES) expect(out).toContain(`  ${command} `);
    expect(out).toContain('-V, --version');
  });
  it("prints package.json's version", async () => {
    const { version } = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
    expect(await cli(['--version'])).toEqual({ code: 0, out: version, err: '' });
    expect((await cli(['-V'])).out).toBe(version);
  });
});

describe('errors', () => {
  it('prints a usage error as text with the command\'s usage on stderr; exit 64', async () => {
    const { code, out, err } = await cli(['scan', '--subscription', SUB, '--concurrency', '0']);
    expect(code).toBe(64);
    expect(out).toBe('');
    expect(err).toMatch(/^error: --concurrency must be a whole number from 1 to 64\n\nUsage: rdp-remediator scan /);
  });
  it('under --json prints a usage error as one JSON object on stdout, and nothing on stderr; exit 64', async () => {
    for (const argv of [['remediate', '/x', '--force', '--json'], ['scan', '--json', '--subscription', 'prod'], ['restore', 'INC-1', '--json'], ['frobnicate', '--json']]) {
      const { code, out, err } = await cli(argv);
      expect(code, argv.join(' ')).toBe(64);
      expect(err).toBe('');
      const document = JSON.parse(out) as { error: { code: string; message: string; command?: string } };
      expect(Object.keys(document)).toEqual(['error']);
      expect(document.error).toMatchObject({ code: 'UsageError', message: expect.any(String) as unknown });
      if (argv[0] !== 'frobnicate') expect(document.error.command).toBe(argv[0]);
    }
  });
  it('under --json prints an invalid request as a JSON error naming the field; exit 64', async () => {
    const { code, out } = await cli(['remediate', '/not/a/vm', '--json']);
    expect(code).toBe(64);
    expect(JSON.parse(out)).toEqual({ error: { code: 'InvalidRequest', field: 'vmResourceId', message: expect.stringContaining('vmResourceId') as unknown } });
    const notVm = await cli(['remediate', `/subscriptions/${SUB}/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/sa`, '--json']);
    expect(JSON.parse(notVm.out)).toMatchObject({ error: { code: 'NotAVirtualMachine', resourceType: 'Microsoft.Storage/storageAccounts' } });
  });
  it('under --json prints a refused restore as a JSON error with its reason; exit 65', async () => {
    const { code, out } = await cli(['restore', '5b0c7d2e-1f3a-4b6c-8d9e-0a1b2c3d4e5f', '--json']);
    expect(code).toBe(65);
    expect(JSON.parse(out)).toMatchObject({ error: { code: 'RestoreRefused', reason: 'unknown-remediation', restoreOf: '5b0c7d2e-1f3a-4b6c-8d9e-0a1b2c3d4e5f' } });
  });
  it('under --json prints an unreadable alert payload as a JSON error; exit 65', async () => {
    const { code, out, err } = await cli(['alert', '/nonexistent/alert.json', '--json']);
    expect(code).toBe(65);
    expect(err).toBe('');
    expect(JSON.parse(out)).toMatchObject({ error: { code: 'UnreadablePayload', file: '/nonexistent/alert.json' } });
  });
});
