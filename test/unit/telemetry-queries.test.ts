/**
 * The workbook's and the failure-rate alert's queries (infra/queries/telemetry/*.kql) against
 * the names the app emits (src/telemetry/names.ts): a span, attribute or metric renamed in the
 * code, or misspelt in a query, would leave a tile empty or the alert silent without any error,
 * so every name a query reads is checked here, and so is every outcome it compares against.
 * Each file is also checked to be loaded by a Bicep file (the one source of the query).
 */
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { describe, expect, expectTypeOf, it } from 'vitest';
import type { OutcomeStatus } from '../../src/core/outcome.js';
import { ATTR, METRIC, OUTCOME_STATUSES, SPAN } from '../../src/telemetry/names.js';
import { packageRoot } from '../../src/util/package-root.js';

const root = packageRoot();
const infra = join(root, 'infra');
const queryDir = join(infra, 'queries', 'telemetry');
const queryFiles = readdirSync(queryDir)
  .filter((f) => f.endsWith('.kql'))
  .sort();
const text = (file: string) => readFileSync(file, 'utf8').replace(/\r\n/g, '\n');

const SPAN_NAMES: ReadonlySet<string> = new Set(Object.values(SPAN));
const METRIC_NAMES: ReadonlySet<string> = new Set(Object.values(METRIC));
const ATTR_KEYS: ReadonlySet<string> = new Set(Object.values(ATTR));
const ALL_NAMES: ReadonlySet<string> = new Set([...SPAN_NAMES, ...METRIC_NAMES, ...ATTR_KEYS]);
const STATUSES: ReadonlySet<string> = new Set(OUTCOME_STATUSES);

// --- reading a query ------------------------------------------------------------------------

/** A KQL string literal's value: "…" and '…' with backslash escapes, @"…" and @'…' verbatim (a doubled quote is one). */
function literalValue(literal: string): string {
  if (literal.startsWith('@')) {
    const quote = literal[1] ?? '"';
    return literal.slice(2, -1).replaceAll(quote + quote, quote);
  }
  return literal.slice(1, -1).replace(/\\(.)/g, '$1');
}

const LITERAL = String.raw`@"(?:[^"]|"")*"|@'(?:[^']|'')*'|"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*'`;
const literalsIn = (list: string) => [...list.matchAll(new RegExp(LITERAL, 'g'))].map((m) => literalValue(m[0]));

/** The query without its comments (`//` to the end of the line, outside string literals). */
function withoutComments(kql: string): string {
  return kql.replace(new RegExp(`(${LITERAL})|//[^\\n]*`, 'g'), (_all, literal: string | undefined) => literal ?? '');
}

/** The leading comment block: what the file says it shows and reads. */
function header(kql: string): string {
  const lines = kql.split('\n');
  const end = lines.findIndex((l) => !l.startsWith('//'));
  return lines.slice(0, end === -1 ? lines.length : end).join('\n');
}

interface QueryNames {
  /** Application Insights tables read (classic names). */
  readonly tables: readonly string[];
  /** Values the column `name` is compared with: span names in `dependencies`, metric names in `customMetrics`. */
  readonly names: readonly string[];
  /** Keys read from `customDimensions`. */
  readonly dimensions: readonly string[];
  /** Values an outcome (customDimensions["rdp.outcome"], or a column holding it) is compared with. */
  readonly outcomes: readonly string[];
  /** Every string literal of the query that looks like one of the app's names (`rdp.` …). */
  readonly rdpLiterals: readonly string[];
  /** Uses the check cannot read, so cannot vouch for: each one is a problem. */
  readonly unreadable: readonly string[];
}

const COMPARISON = String.raw`(?:==|!=|=~|!~|!?has(?:_cs)?\b|!?contains(?:_cs)?\b|!?startswith(?:_cs)?\b|!?endswith(?:_cs)?\b|matches\s+regex\b|!?in~?\s*\(|!?has_any\s*\()`;

/**
 * What `subject` (a regex source) is compared with, by ==, !=, =~, !~ or (!)in(~); any other
 * comparison of it (has, startswith, …) is unreadable, since a prefix names no one value.
 */
function comparedValues(code: string, subject: string, what: string, unreadable: string[]): string[] {
  const values: string[] = [];
  for (const m of code.matchAll(new RegExp(`${subject}\\s*(${COMPARISON})`, 'g'))) {
    const operator = (m[1] ?? '').replace(/\s+/g, '');
    const rest = code.slice((m.index ?? 0) + m[0].length);
    if (['==', '!=', '=~', '!~'].includes(operator)) {
      const literal = new RegExp(`^\\s*(${LITERAL})`).exec(rest);
      if (literal?.[1] === undefined) unreadable.push(`${what} ${operator} something other than a string literal`);
      else values.push(literalValue(literal[1]));
    } else if (/^!?in~?\($/.test(operator)) {
      const list = /^([^)]*)\)/.exec(rest)?.[1] ?? '';
      const items = literalsIn(list);
      if (items.length === 0 || list.replace(new RegExp(LITERAL, 'g'), '').replace(/[\s,]/g, '') !== '') unreadable.push(`${what} ${operator}…) with something other than string literals`);
      values.push(...items);
    } else {
      unreadable.push(`${what} ${operator.replace(/\($/, '')}: compare with ==, =~ or in (…) so the value can be checked`);
    }
  }
  return values;
}

/** The names and values a query uses, read from its text (comments left out). */
function queryNames(kql: string): QueryNames {
  const code = withoutComments(kql);
  const unreadable: string[] = [];
  const tables = ['dependencies', 'customMetrics'].filter((t) => new RegExp(`\\b${t}\\b`).test(code));
  for (const m of code.matchAll(/\b(requests|traces|exceptions|customEvents|pageViews|availabilityResults|performanceCounters|App[A-Z]\w+)\b/g)) {
    unreadable.push(`table ${m[1]}: the app's spans are in dependencies, its metrics in customMetrics`);
  }

  // customDimensions["x"], ['x'], .x — and nothing else: any other use would read keys unchecked.
  const dimensions: string[] = [];
  const accessor = new RegExp(String.raw`\bcustomDimensions\b\s*(?:\[\s*(${LITERAL})\s*\]|\.\s*([A-Za-z_]\w*))`, 'g');
  for (const m of code.matchAll(accessor)) dimensions.push(m[1] === undefined ? (m[2] ?? '') : literalValue(m[1]));
  const uses = [...code.matchAll(/\bcustomDimensions\b/g)].length;
  if (uses !== dimensions.length) unreadable.push(`customDimensions used ${uses - dimensions.length} time(s) other than as customDimensions["key"], ['key'] or .key`);

  const names = comparedValues(code, String.raw`(?<![\w.])name\b`, 'name', unreadable);

  // An outcome is compared either directly or through a column it was put in.
  const outcomeKey = String.raw`customDimensions\s*(?:\[\s*(?:"rdp\.outcome"|'rdp\.outcome')\s*\])`;
  const direct = String.raw`tostring\(\s*${outcomeKey}\s*\)`;
  const aliases = [...code.matchAll(new RegExp(String.raw`\b(\w+)\s*=\s*${direct}`, 'g'))].map((m) => m[1] ?? '');
  const outcomes = [
    ...comparedValues(code, String.raw`(?:${direct}|${outcomeKey})`, 'the outcome', unreadable),
    ...aliases.flatMap((alias) => comparedValues(code, String.raw`(?<![\w.])${alias}\b`, alias, unreadable)),
  ];

  const rdpLiterals = literalsIn(code).filter((l) => l.startsWith('rdp.'));
  return { tables, names, dimensions, outcomes, rdpLiterals, unreadable };
}

/** Everything wrong with one query's names; empty when every one is declared. */
function nameProblems(kql: string): string[] {
  const q = queryNames(kql);
  const problems = [...q.unreadable];
  if (q.tables.length === 0) problems.push('reads neither dependencies nor customMetrics');
  const allowed = new Set([...(q.tables.includes('dependencies') ? SPAN_NAMES : []), ...(q.tables.includes('customMetrics') ? METRIC_NAMES : [])]);
  for (const n of q.names) if (!allowed.has(n)) problems.push(`name "${n}" is not a ${q.tables.join('/')} name in names.ts (${[...allowed].join(', ')})`);
  for (const d of q.dimensions) if (!ATTR_KEYS.has(d)) problems.push(`customDimensions key "${d}" is not an ATTR value in names.ts`);
  for (const o of q.outcomes) if (!STATUSES.has(o)) problems.push(`outcome "${o}" is not an OutcomeStatus`);
  for (const l of q.rdpLiterals) if (!ALL_NAMES.has(l)) problems.push(`"${l}" is none of names.ts's SPAN, ATTR or METRIC values`);
  return problems;
}

/** The files every Bicep template under infra/ loads with loadTextContent, as absolute paths. */
function filesLoadedByBicep(): Set<string> {
  const bicepFiles = [join(infra, 'main.bicep'), ...readdirSync(join(infra, 'modules')).filter((f) => f.endsWith('.bicep')).map((f) => join(infra, 'modules', f))];
  const loaded = new Set<string>();
  for (const file of bicepFiles) {
    for (const m of text(file).matchAll(/loadTextContent\(\s*'([^']+)'/g)) loaded.add(resolve(dirname(file), m[1] ?? ''));
  }
  return loaded;
}

// --- the checks -----------------------------------------------------------------------------

describe('telemetry queries', () => {
  it('exist, one file per workbook tile and one for the alert', () => {
    expect(queryFiles).toContain('failure-rate.kql');
    expect(queryFiles.length).toBeGreaterThanOrEqual(7);
  });

  it('are each loaded by a Bicep file (the query lives in one place)', () => {
    const loaded = filesLoadedByBicep();
    expect(queryFiles.filter((f) => !loaded.has(join(queryDir, f)))).toEqual([]);
  });

  it.each(queryFiles)('%s uses only the span, attribute and metric names of names.ts', (file) => {
    const kql = text(join(queryDir, file));
    expect(nameProblems(kql)).toEqual([]);
    const q = queryNames(kql);
    // Not vacuous: every query picks its rows by name.
    expect(q.names.length, 'compares name with a span or metric name').toBeGreaterThan(0);
  });

  it.each(queryFiles)('%s starts with a comment saying what it shows and naming what it reads', (file) => {
    const kql = text(join(queryDir, file));
    const head = header(kql);
    expect(head.split('\n').length, 'a leading // comment').toBeGreaterThanOrEqual(2);
    const q = queryNames(kql);
    const named = [...new Set([...q.names, ...q.dimensions])].filter((n) => !head.includes(`"${n}"`));
    expect(named, 'names read but not named in the header (as "name")').toEqual([]);
  });

  it('compare outcomes only with real OutcomeStatus values, and the alert counts failed and restore-failed', () => {
    const used = new Set(queryFiles.flatMap((f) => queryNames(text(join(queryDir, f))).outcomes));
    expect([...used].filter((o) => !STATUSES.has(o))).toEqual([]);
    expect(used.size).toBeGreaterThanOrEqual(3);
    const alert = queryNames(text(join(queryDir, 'failure-rate.kql')));
    expect(new Set(alert.outcomes)).toEqual(new Set(['failed', 'restore-failed']));
    expect(alert.names).toEqual([METRIC.remediations]);
  });

  it('the alert query yields the rate and the count the rule needs, over the caller\'s time range', () => {
    const code = withoutComments(text(join(queryDir, 'failure-rate.kql')));
    const lastProject = [...code.matchAll(/\|\s*project\s+([^\n|]*)/g)].at(-1)?.[1] ?? '';
    const columns = lastProject.split(',').map((c) => c.split('=')[0]?.trim());
    expect(columns).toEqual(expect.arrayContaining(['FailureRatePercent', 'Completed']));
    expect(code).not.toMatch(/\bago\(|\btimestamp\s*[<>]/);
    expect(code).not.toMatch(/\bby\b/); // one row: summarize without a by clause
  });

  it('OUTCOME_STATUSES is exactly OutcomeStatus', () => {
    expectTypeOf<(typeof OUTCOME_STATUSES)[number]>().toEqualTypeOf<OutcomeStatus>();
    expect(new Set(OUTCOME_STATUSES).size).toBe(OUTCOME_STATUSES.length);
  });
});

describe('the check itself', () => {
  it('finds misspelt names, keys and outcomes, in every accessor form', () => {
    const kql = [
      '// a comment naming "rdp.nothing" is not read',
      'dependencies',
      '| where name == "rdp.remediaton" or name in ("rdp.run-command", \'rdp.alert\', "rdp.sweep")',
      '| extend O = tostring(customDimensions["rdp.outcom"]), V = customDimensions[\'rdp.vm.id\'], M = customDimensions.rdp.mode, P = customDimensions . payload',
      '| extend S = tostring(customDimensions["rdp.outcome"])',
      '| where S == "fail" or S in ("failed", "restore_failed") or tostring(customDimensions["rdp.outcome"]) != "fixd"',
      '| where X == "rdp.relaxed_untill"',
    ].join('\n');
    const q = queryNames(kql);
    expect(q.tables).toEqual(['dependencies']);
    expect(q.names).toEqual(['rdp.remediaton', 'rdp.run-command', 'rdp.alert', 'rdp.sweep']);
    expect(q.dimensions).toEqual(['rdp.outcom', 'rdp.vm.id', 'rdp', 'payload', 'rdp.outcome', 'rdp.outcome']);
    expect(new Set(q.outcomes)).toEqual(new Set(['fail', 'failed', 'restore_failed', 'fixd']));
    const problems = nameProblems(kql);
    for (const wrong of ['"rdp.remediaton"', '"rdp.sweep"', '"rdp.outcom"', '"rdp"', '"payload"', '"fail"', '"restore_failed"', '"fixd"', '"rdp.relaxed_untill"']) {
      expect(problems.some((p) => p.includes(wrong)), wrong).toBe(true);
    }
    expect(problems.some((p) => p.includes('rdp.nothing'))).toBe(false);
    expect(problems.some((p) => p.includes('"rdp.alert"') || p.includes('"rdp.vm.id"') || p.includes('"failed"'))).toBe(false);
  });

  it('refuses what it cannot read: prefixes, other tables, customDimensions passed whole, a metric name on spans', () => {
    expect(nameProblems('dependencies | where name startswith "rdp."')).toEqual(expect.arrayContaining([expect.stringContaining('name startswith')]));
    expect(nameProblems('dependencies | where name == "rdp.remediations"')).toEqual([expect.stringContaining('"rdp.remediations" is not a dependencies name')]);
    expect(nameProblems('customMetrics | where name == "rdp.remediations" | evaluate bag_unpack(customDimensions)')).toEqual([expect.stringContaining('customDimensions used 1 time(s)')]);
    expect(nameProblems('AppDependencies | where name == "rdp.remediation"').some((p) => p.includes('table AppDependencies'))).toBe(true);
    expect(nameProblems('dependencies | where name == "rdp.remediation" | where tostring(customDimensions["rdp.outcome"]) has "fail"')).toEqual([expect.stringContaining('the outcome has')]);
    expect(nameProblems('dependencies | where name == strcat("rdp.", "remediation")')).toEqual([
      expect.stringContaining('something other than a string literal'),
      expect.stringContaining('"rdp." is none of'),
    ]);
  });
});
