/**
 * Fuzz of the three HTTP functions with hostile bodies (issue 9), in process through their
 * exported handlers with @azure/functions' own HttpRequest and InvocationContext, over Azurite.
 *
 * Properties, for at least 5,000 generated requests per function:
 * - never a 5xx, and nothing logged with context.error;
 * - every reply has a JSON body; every 4xx a typed error code from the known set;
 * - a request naming a resource ID that breaks Azure's naming rules is answered 400 naming the
 *   field, and afterwards no queue message and no table entity names anything but the valid
 *   IDs the generators produced (checked by reading back both queues and both tables).
 *
 * Seeded and bounded: FUZZ_SEED and FUZZ_RUNS override the defaults; the seed is in the test
 * names. Most bodies fail validation before any I/O; about one in ten is valid and goes through
 * Azurite, which keeps the file well under a minute on two cores.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { logAlertV2 } from '../../demo/alert-payloads.js';
import { startFunctions, wellFormed, type FunctionsUnderTest, type Reply } from './support.js';

const SEED = Number(process.env.FUZZ_SEED ?? 20_261_121);
const RUNS = Number(process.env.FUZZ_RUNS ?? 5_000);

let fx: FunctionsUnderTest;
const startedAt = Date.now();
const stats = new Map<string, { cases: number; statuses: Map<number, number>; ms: number }>();
/** Lower-case IDs of every valid VM the generators produced: the only VMs storage may name. */
const validVms = new Set<string>();
/** Ids of the remediations POST accepted, for GET to find. */
const acceptedIds: string[] = [];
let acceptedJobs = 0;
let acceptedAlertMessages = 0;

beforeAll(async () => {
  fx = await startFunctions();
});
afterAll(async () => {
  await fx?.stop();
  const lines = [...stats].map(([fn, s]) => `${fn}: ${s.cases} cases in ${s.ms} ms, statuses ${JSON.stringify(Object.fromEntries([...s.statuses].sort(([a], [b]) => a - b)))}`);
  console.log(`http fuzz, seed ${SEED}, ${RUNS} runs per function, ${Date.now() - startedAt} ms in all\n  ${lines.join('\n  ')}`);
});

function record(fn: string, reply: Reply): void {
  const s = stats.get(fn) ?? { cases: 0, statuses: new Map<number, number>(), ms: 0 };
  s.cases++;
  s.statuses.set(reply.status, (s.statuses.get(reply.status) ?? 0) + 1);
  stats.set(fn, s);
}

function checkReply(reply: Reply, what: string): void {
  if (reply.status >= 500 || !wellFormed(reply)) throw new Error(`${what}: ${reply.status} ${JSON.stringify(reply.body)?.slice(0, 500)}`);
}

// ---------------------------------------------------------------------------------------
// Resource IDs: valid ones (by Azure's rules), and hostile ones that each break a rule.

const hex = (n: number) => fc.stringMatching(new RegExp(`^[0-9a-f]{${n}}$`));
const guid = fc.tuple(hex(8), hex(4), hex(4), hex(4), hex(12)).map((p) => p.join('-'));
const computeName = fc.stringMatching(/^[A-Za-z0-9](?:[A-Za-z0-9_.-]{0,62}[A-Za-z0-9_])?$/);
/** Resource group names: ASCII ones, and a few with Unicode letters and digits, which Azure allows. */
const groupName = fc.oneof(
  { arbitrary: fc.stringMatching(/^[A-Za-z0-9_().-]{0,89}[A-Za-z0-9_()-]$/), weight: 5 },
  { arbitrary: fc.tuple(fc.stringMatching(/^[a-z0-9-]{0,20}$/), fc.constantFrom('müller', '東京', 'Ωmega', '٣٤', 'ǅa', 'İstanbul')).map(([a, b]) => `${a}${b}`), weight: 1 },
);
const instanceId = fc.oneof(fc.constant('0'), fc.integer({ min: 1, max: 2_147_483_647 }).map(String));

interface VmParts {
  readonly sub: string;
  readonly rg: string;
  readonly kind: 'vm' | 'vmss-vm';
  readonly name: string;
  readonly instance: string;
}

const vmParts: fc.Arbitrary<VmParts> = fc.record({ sub: guid, rg: groupName, kind: fc.constantFrom('vm' as const, 'vmss-vm' as const), name: computeName, instance: instanceId });

/** The fixed segments in any casing, as the portal (mixed) and alerts (lower) send them. */
const fixed = fc.record({
  subscriptions: fc.constantFrom('subscriptions', 'SUBSCRIPTIONS', 'Subscriptions'),
  resourceGroups: fc.constantFrom('resourceGroups', 'resourcegroups', 'RESOURCEGROUPS'),
  providers: fc.constantFrom('providers', 'Providers'),
  compute: fc.constantFrom('Microsoft.Compute', 'microsoft.compute'),
  vms: fc.constantFrom('virtualMachines', 'virtualmachines'),
  sets: fc.constantFrom('virtualMachineScaleSets', 'virtualmachinescalesets'),
});

function idOf(p: VmParts, f: { subscriptions: string; resourceGroups: string; providers: string; compute: string; vms: string; sets: string }): string {
  const base = `/${f.subscriptions}/${p.sub}/${f.resourceGroups}/${p.rg}/${f.providers}/${f.compute}`;
  return p.kind === 'vm' ? `${base}/${f.vms}/${p.name}` : `${base}/${f.sets}/${p.name}/${f.vms}/${p.instance}`;
}

function canonicalKey(p: VmParts): string {
  const base = `/subscriptions/${p.sub}/resourceGroups/${p.rg}/providers/Microsoft.Compute`;
  return (p.kind === 'vm' ? `${base}/virtualMachines/${p.name}` : `${base}/virtualMachineScaleSets/${p.name}/virtualMachines/${p.instance}`).toLowerCase();
}

/** A valid VM ID; generating one registers it as allowed in storage. */
const validVmId = fc.tuple(vmParts, fixed).map(([p, f]) => {
  validVms.add(canonicalKey(p));
  return idOf(p, f);
});

const CONTROL = ['\u0000', '\u0001', '\u0007', '\b', '\t', '\n', '\r', '\u001b', '\u007f', '\u0085', '\u009f', '\u200b', '\u200e', '\u202e', '\u2028', '\ufeff', '\ud800', '\udfff', ' ', '\u00a0', '\u3000'];
const FORBIDDEN_IN_NAMES = [';', '$', '$(', ')', '(', '`', "'", '"', '&', '|', '<', '>', '*', '+', '=', '@', ',', ':', '!', '~', '^', '[', ']', '{', '}', '\\', '#', '?', '%', 'é', 'ｗ', '😀'];
const FORBIDDEN_IN_GROUPS = [';', '$', '`', "'", '"', '&', '|', '<', '>', '*', '+', '=', '@', ',', ':', '!', '~', '^', '[', ']', '{', '}', '\\', '#', '?', '%', '\u0301', '😀'];
const PATH_TRICKS = ['/..', '/.', '/../x', '/./x', '//', '/%2e%2e', '/%2E%2E', '%2f..', '/%2e', '/..%2f', '%00', '\\..'];

const insertAt = (s: string, at: number, what: string) => `${s.slice(0, at)}${what}${s.slice(at)}`;

/**
 * An ID that breaks at least one rule: each branch starts from a valid VM's parts and breaks
 * one thing, so none of these can be a VM Azure could have.
 */
const hostileVmId: fc.Arbitrary<string> = fc.oneof(
  // A control, format or whitespace character anywhere.
  fc.tuple(vmParts, fixed, fc.constantFrom(...CONTROL), fc.nat()).map(([p, f, c, n]) => {
    const id = idOf(p, f);
    return insertAt(id, n % (id.length + 1), c);
  }),
  // A dot segment, an encoded one, an empty segment, a trailing slash, a backslash trick, after any segment.
  fc.tuple(vmParts, fixed, fc.constantFrom(...PATH_TRICKS), fc.nat()).map(([p, f, trick, n]) => {
    const id = idOf(p, f);
    const cuts = [...id.matchAll(/\//g)].map((m) => m.index).filter((i) => i > 0);
    return insertAt(id, cuts.length ? (cuts[n % cuts.length] ?? id.length) : id.length, trick);
  }),
  fc.tuple(vmParts, fixed, fc.constantFrom('/', '//', '/.', '/..')).map(([p, f, tail]) => `${idOf(p, f)}${tail}`),
  // A name replaced by a dot segment: the classic scale-set bypass and its relatives.
  fc.tuple(vmParts, fixed, fc.constantFrom('.', '..', '...', '%2e%2e', '.%2e')).map(([p, f, dots]) => idOf({ ...p, kind: 'vmss-vm', name: dots }, f)),
  fc.tuple(vmParts, fixed, fc.constantFrom('.', '..')).map(([p, f, dots]) => idOf({ ...p, rg: dots }, f)),
  fc.tuple(vmParts, fixed).map(([p, f]) => idOf({ ...p, kind: 'vmss-vm', name: '..', instance: p.name }, f).replace(/\/virtualMachines\/[^/]*$/i, `/virtualMachines/${p.name}`)),
  // A character Azure forbids, in the VM (or scale set) name or the resource group.
  fc.tuple(vmParts, fixed, fc.constantFrom(...FORBIDDEN_IN_NAMES), fc.nat()).map(([p, f, c, n]) => idOf({ ...p, name: insertAt(p.name, n % (p.name.length + 1), c) }, f)),
  fc.tuple(vmParts, fixed, fc.constantFrom(...FORBIDDEN_IN_GROUPS), fc.nat()).map(([p, f, c, n]) => idOf({ ...p, rg: insertAt(p.rg, n % (p.rg.length + 1), c) }, f)),
  // Names Azure refuses for their shape: too long, a bad first or last character.
  fc.tuple(vmParts, fixed, fc.integer({ min: 65, max: 400 })).map(([p, f, n]) => idOf({ ...p, name: `a${'b'.repeat(n - 1)}` }, f)),
  fc.tuple(vmParts, fixed, fc.integer({ min: 91, max: 400 })).map(([p, f, n]) => idOf({ ...p, rg: 'r'.repeat(n) }, f)),
  fc.tuple(vmParts, fixed, fc.constantFrom('.', '-')).map(([p, f, end]) => idOf({ ...p, name: `${p.name}${end}` }, f)),
  fc.tuple(vmParts, fixed, fc.constantFrom('_', '-', '.')).map(([p, f, start]) => idOf({ ...p, name: `${start}${p.name}` }, f)),
  fc.tuple(vmParts, fixed).map(([p, f]) => idOf({ ...p, rg: `${p.rg}.` }, f)),
  // Instance IDs that are not a canonical decimal (007 is instance 7 to ARM, another key here).
  fc.tuple(vmParts, fixed, fc.constantFrom('007', '00', '-1', '+1', '1e3', '0x1f', '12345678901', 'victim', '1.0', '٣')).map(([p, f, i]) => idOf({ ...p, kind: 'vmss-vm', instance: i }, f)),
  // A subscription that is not a GUID.
  fc.tuple(vmParts, fixed, fc.constantFrom('x', '', '{00000000-0000-0000-0000-000000000000}', '00000000000000000000000000000000', '00000000-0000-0000-0000-00000000000g')).map(([p, f, sub]) => idOf({ ...p, sub }, f)),
  // Huge.
  fc.tuple(vmParts, fixed, fc.integer({ min: 1_025, max: 200_000 })).map(([p, f, n]) => `${idOf(p, f)}${'/x'.repeat(Math.ceil(n / 2))}`),
);

// ---------------------------------------------------------------------------------------
// Generic hostility.

const unicodeString = (max: number) => fc.string({ unit: fc.oneof(fc.constantFrom(...CONTROL), fc.string({ unit: 'binary', minLength: 1, maxLength: 1 })), maxLength: max });
const hugeString = fc.integer({ min: 20_000, max: 300_000 }).chain((n) => fc.constantFrom('x', '\u0000', 'é', '😀', '/..').map((c) => c.repeat(Math.ceil(n / c.length))));
const wrongType = fc.oneof(fc.integer(), fc.double(), fc.boolean(), fc.constant(null), fc.array(fc.string(), { maxLength: 3 }), fc.dictionary(fc.string(), fc.string(), { maxKeys: 3 }));
const json = fc.jsonValue({ maxDepth: 6 });
/** Texts that are not JSON, truncated JSON, and JSON nested far deeper than anything stringify could build. */
const rawText = fc.oneof(
  fc.string({ maxLength: 200 }),
  fc.constantFrom('', ' ', '{', '{"vmResourceId":', '[', 'null', 'true', '"x"', '1e999', '{"a":1,}', '\u0000', '\ufeff{}', '{"__proto__":{"polluted":true}}', '{"constructor":{"prototype":{"x":1}}}'),
  fc.integer({ min: 1_000, max: 200_000 }).map((n) => `${'['.repeat(n)}${']'.repeat(n)}`),
  fc.integer({ min: 1_000, max: 100_000 }).map((n) => `${'{"a":'.repeat(n)}1${'}'.repeat(n)}`),
);

type Body = { readonly kind: 'valid' | 'hostile-id' | 'other'; readonly body: unknown };

/** Counterexamples print as a short preview, not the megabytes some bodies are. */
function short<T extends { kind: string; body?: unknown; id?: string }>(value: T): T {
  return Object.assign(value, {
    [fc.toStringMethod]: () => {
      const text = typeof value.body === 'string' ? value.body : value.id ?? JSON.stringify(value.body) ?? String(value.body);
      return `${value.kind}: ${JSON.stringify(text.length > 600 ? `${text.slice(0, 600)}… (${text.length} characters)` : text)}`;
    },
  });
}

// ---------------------------------------------------------------------------------------

describe(`HTTP fuzz (seed ${SEED})`, () => {
  it(`POST /api/remediations: ${RUNS} hostile bodies, no 5xx, hostile IDs answered 400 (seed ${SEED})`, async () => {
    const mode = fc.constantFrom('diagnose', 'repair', undefined);
    const allow = fc.constantFrom([], ['disable-nla'], ['relax-security-layer', 'disable-nla'], undefined);
    const reason = fc.oneof(fc.constant(undefined), fc.stringMatching(/^[A-Za-z0-9 #:.-]{0,60}$/));
    const withOptional = (vmResourceId: string, m: string | undefined, a: readonly string[] | undefined, r: string | undefined) => ({
      vmResourceId,
      ...(m === undefined ? {} : { mode: m }),
      ...(a === undefined ? {} : { allow: a }),
      ...(r === undefined ? {} : { reason: r }),
    });
    const bodies: fc.Arbitrary<Body> = fc.oneof(
      { weight: 1, arbitrary: fc.tuple(validVmId, mode, allow, reason).map(([id, m, a, r]) => ({ kind: 'valid' as const, body: withOptional(id, m, a, r) })) },
      { weight: 5, arbitrary: fc.tuple(hostileVmId, mode, allow, reason).map(([id, m, a, r]) => ({ kind: 'hostile-id' as const, body: withOptional(id, m, a, r) })) },
      {
        weight: 4,
        arbitrary: fc.oneof(
          json,
          rawText,
          hugeString,
          fc.record({ vmResourceId: wrongType }, { requiredKeys: [] }),
          fc.tuple(validVmId, fc.oneof(wrongType, unicodeString(20), hugeString)).map(([id, m]) => ({ vmResourceId: id, mode: m })),
          fc.tuple(validVmId, fc.oneof(fc.integer(), fc.boolean(), fc.constant(null), fc.string(), fc.array(unicodeString(20), { minLength: 1, maxLength: 5 }), fc.array(fc.constant('disable-nla'), { minLength: 3, maxLength: 10_000 }))).map(([id, a]) => ({ vmResourceId: id, allow: a })),
          fc.tuple(validVmId, fc.oneof(wrongType, hugeString, fc.constantFrom('INC-1\nforged', 'x\u0000', '\u202etxt.exe', 'a\ud800', 'r'.repeat(257)))).map(([id, r]) => ({ vmResourceId: id, reason: r })),
          fc.tuple(validVmId, fc.dictionary(unicodeString(30), json, { minKeys: 1, maxKeys: 3 })).map(([id, extra]) => ({ ...extra, vmResourceId: id, ...(Object.keys(extra).every((k) => ['mode', 'allow', 'reason', 'vmResourceId'].includes(k)) ? { junk: 1 } : {}) })),
          fc.tuple(unicodeString(300)).map(([id]) => ({ vmResourceId: id })),
        ).map((body) => ({ kind: 'other' as const, body })),
      },
    );
    const t0 = Date.now();
    await fc.assert(
      fc.asyncProperty(bodies.map(short), async ({ kind, body }) => {
        const reply = await fx.postRemediation(body);
        record('POST /api/remediations', reply);
        checkReply(reply, `POST ${kind}`);
        if (kind === 'hostile-id') {
          // 400 naming the field; an ID of megabytes makes the body too large to read first (413).
          const expected = JSON.stringify(body).length > 16 * 1024 ? { code: 'PayloadTooLarge', field: 'body' } : { code: 'InvalidRequest', field: 'vmResourceId' };
          expect(reply.body, JSON.stringify(reply.body)).toMatchObject({ error: expected });
        }
        if (kind === 'valid') {
          expect(reply.status, JSON.stringify(reply.body)).toBe(202);
          acceptedIds.push((reply.body as { id: string }).id);
          acceptedJobs++;
        }
        if (kind === 'other') expect(reply.status).toBeGreaterThanOrEqual(400);
      }),
      { seed: SEED, numRuns: RUNS, endOnFailure: true },
    );
    stats.get('POST /api/remediations')!.ms = Date.now() - t0;
    expect(acceptedJobs).toBeGreaterThan(0);
  });

  it(`GET /api/remediations/{id}: ${RUNS} hostile ids, no 5xx (seed ${SEED + 1})`, async () => {
    const known = fc.integer({ min: 0, max: Math.max(0, acceptedIds.length - 1) }).map((i) => acceptedIds[i] ?? '00000000-0000-4000-8000-000000000000');
    const ids: fc.Arbitrary<{ kind: 'known' | 'unknown' | 'hostile'; id: string }> = fc.oneof(
      { weight: 1, arbitrary: known.map((id) => ({ kind: 'known' as const, id })) },
      { weight: 1, arbitrary: fc.uuid().map((id) => ({ kind: 'unknown' as const, id: id.toLowerCase() })) },
      {
        weight: 10,
        arbitrary: fc
          .oneof(
            unicodeString(80),
            hugeString,
            fc.constantFrom('', '.', '..', '../..', '%2e%2e', '%2e%2e%2f', '//', '/', '\\', 'by-id', 'poison', '*', "' or 1 eq 1", 'PartitionKey eq \'x\''),
            // Upper-cased (fast-check likes all-digit GUIDs, which upper-casing leaves valid: those are skipped).
            fc.uuid().filter((u) => /[a-f]/.test(u)).map((u) => u.toUpperCase()),
            fc.tuple(fc.uuid(), fc.constantFrom(...PATH_TRICKS, ...CONTROL, '/', ' ', '%00', '?x=1', '#')).map(([u, t]) => `${u}${t}`),
            fc.tuple(fc.constantFrom(...PATH_TRICKS, ...CONTROL), fc.uuid()).map(([t, u]) => `${t}${u}`),
            fc.tuple(acceptedIds.length ? fc.constantFrom(...acceptedIds) : fc.uuid(), fc.constantFrom('/..', '/../x', '%2f..', '\u0000')).map(([u, t]) => `${u}${t}`),
          )
          .map((id) => ({ kind: 'hostile' as const, id })),
      },
    );
    const t0 = Date.now();
    await fc.assert(
      fc.asyncProperty(ids.map(short), async ({ kind, id }) => {
        const reply = await fx.getRemediation(id);
        record('GET /api/remediations/{id}', reply);
        checkReply(reply, `GET ${kind}`);
        if (kind === 'hostile') expect(reply).toMatchObject({ status: 400, body: { error: { code: 'InvalidRequest', field: 'id' } } });
        if (kind === 'unknown') expect(reply.status).toBe(404);
        if (kind === 'known' && acceptedIds.includes(id)) expect(reply).toMatchObject({ status: 200, body: { id, state: 'queued' } });
      }),
      { seed: SEED + 1, numRuns: RUNS, endOnFailure: true },
    );
    stats.get('GET /api/remediations/{id}')!.ms = Date.now() - t0;
  });

  it(`POST /api/alerts: ${RUNS} hostile bodies, no 5xx, no hostile target queued (seed ${SEED + 2})`, async () => {
    const SUB = '00000000-0000-0000-0000-00000000f022';
    const alertId = fc.uuid().map((u) => `/subscriptions/${SUB}/providers/Microsoft.AlertsManagement/alerts/${u}`);
    const workspace = `/subscriptions/${SUB}/resourceGroups/rg-mon/providers/Microsoft.OperationalInsights/workspaces/law-fuzz`;
    const other = `/subscriptions/${SUB}/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/fuzz`;
    /** Hostile values for essentials fields. */
    const hostileField = fc.oneof(wrongType, unicodeString(40), hugeString, fc.constantFrom('', 'Fired\u0000', 'Fired\n', 'Log Alerts V2\u202e'));
    const hostileAlertId = fc.oneof(
      hugeString,
      fc.integer({ min: 201, max: 150_000 }).map((n) => `/subscriptions/${SUB}/providers/Microsoft.AlertsManagement/alerts/${'a'.repeat(n)}`),
      fc.tuple(alertId, fc.constantFrom('\u0000', '\n', '#', '?', '\\', 'ü', '\ud800', '\u202e')).map(([a, c]) => `${a}${c}`),
    );
    const targets = fc.array(fc.oneof({ weight: 2, arbitrary: validVmId }, { weight: 3, arbitrary: hostileVmId }, { weight: 1, arbitrary: fc.constantFrom(other, workspace, `${workspace}/../x`, `/subscriptions/${SUB}`) }), { maxLength: 6 });
    /** Enormous target lists: 300 to 2,600 VMs of one resource group (over 2,000 is answered 413), some hostile ones among them. */
    const many = fc.tuple(fc.integer({ min: 300, max: 2_600 }), vmParts, fixed, fc.array(hostileVmId, { maxLength: 3 })).map(([n, p, f, bad]) => {
      const ids = Array.from({ length: n }, (_, i) => {
        const parts = { ...p, name: `${p.name.slice(0, 50)}-m${i}` };
        validVms.add(canonicalKey(parts));
        return idOf(parts, f);
      });
      return [...ids, ...bad];
    });
    const shaped = (t: { targets: string[]; resourceIds: string[]; id: string; condition: 'Fired' | 'Resolved'; computers: string[]; window: { start: string; end: string } | undefined }) =>
      logAlertV2({ alertId: t.id, targets: t.targets, resourceIds: t.resourceIds, condition: t.condition, computers: t.computers, ...(t.window ? { window: t.window } : {}), workspaceGuid: 'c0c0c0c0-0000-4000-8000-00000000f022' });
    const alertShaped = fc.record({
      targets,
      resourceIds: fc.array(fc.oneof(validVmId, hostileVmId), { maxLength: 3 }),
      id: alertId,
      condition: fc.constantFrom('Fired' as const, 'Fired' as const, 'Resolved' as const),
      computers: fc.array(fc.oneof(fc.stringMatching(/^[a-z0-9-]{1,15}$/), unicodeString(20)), { maxLength: 3 }),
      window: fc.option(fc.record({ start: fc.oneof(fc.date({ noInvalidDate: true }).map((d) => d.toISOString()), unicodeString(30), fc.constantFrom('+275760-09-13T00:00:00Z', '-271821-04-20T00:00:00Z')), end: fc.oneof(fc.date({ noInvalidDate: true }).map((d) => d.toISOString()), unicodeString(30), fc.constantFrom('+275760-09-13T00:00:00Z', '-271821-04-20T00:00:00Z')) }), { nil: undefined }),
    });
    /** The same shape with nothing hostile but its targets: for bodies that break one field only. */
    const cleanShaped = fc.record({ targets, id: alertId }).map((t) => logAlertV2({ alertId: t.id, targets: t.targets }));
    type Essentials = Record<string, unknown>;
    const withEssentials = (body: unknown, patch: (e: Essentials) => void) => {
      const copy = structuredClone(body) as { data: { essentials: Essentials } };
      patch(copy.data.essentials);
      return copy;
    };
    const FIELDS = ['alertId', 'alertRule', 'monitorCondition', 'monitoringService', 'firedDateTime', 'alertTargetIDs', 'configurationItems', 'severity'];
    const bodies: fc.Arbitrary<{ kind: 'shaped' | 'hostile-alert-id' | 'other'; body: unknown }> = fc.oneof(
      { weight: 16, arbitrary: alertShaped.map((t) => ({ kind: 'shaped' as const, body: shaped(t) })) },
      // Enormous target lists are the slow case (a few hundred KiB each, split into several messages): one body in 40.
      { weight: 1, arbitrary: fc.tuple(many, alertId).map(([t, id]) => ({ kind: 'shaped' as const, body: logAlertV2({ alertId: id, targets: t }) })) },
      { weight: 8, arbitrary: fc.tuple(cleanShaped, hostileAlertId).map(([body, id]) => ({ kind: 'hostile-alert-id' as const, body: withEssentials(body, (e) => (e.alertId = id)) })) },
      {
        weight: 16,
        arbitrary: fc
          .oneof(
            json,
            rawText,
            hugeString,
            fc.tuple(alertShaped, fc.constantFrom(...FIELDS), hostileField).map(([t, field, value]) => withEssentials(shaped(t), (e) => (e[field] = value))),
            fc.tuple(alertShaped, fc.constantFrom(...FIELDS)).map(([t, field]) => withEssentials(shaped(t), (e) => Reflect.deleteProperty(e, field))),
            fc.tuple(alertShaped, json).map(([t, junk]) => ({ ...(shaped(t) as object), data: { ...(shaped(t) as { data: object }).data, alertContext: junk } })),
            fc.tuple(alertShaped, fc.oneof(unicodeString(30), wrongType, fc.constantFrom('P99999999999D', `PT${'9'.repeat(400)}M`, 'PT-5M', 'P', ''))).map(([t, size]) => {
              const body = shaped(t) as { data: { alertContext: { condition: Record<string, unknown> } } };
              body.data.alertContext.condition.windowSize = size;
              return body;
            }),
            fc.tuple(alertShaped, fc.array(fc.record({ name: fc.constantFrom('_ResourceId', 'ResourceId', 'Computer', '_resourceid', 'x'), value: fc.oneof(hostileVmId, wrongType, unicodeString(30)) }), { maxLength: 5 })).map(([t, dims]) => {
              const body = shaped(t) as { data: { alertContext: { condition: { allOf: { dimensions: unknown }[] } } } };
              const first = body.data.alertContext.condition.allOf[0];
              if (first) first.dimensions = dims;
              return body;
            }),
            fc.tuple(alertShaped, fc.constantFrom('azureMonitorCommonAlertSchema ', 'AzureMonitorCommonAlertSchema', '', null, 1)).map(([t, schemaId]) => ({ ...(shaped(t) as object), schemaId })),
          )
          .map((body) => ({ kind: 'other' as const, body })),
      },
    );
    const t0 = Date.now();
    await fc.assert(
      fc.asyncProperty(bodies.map(short), async ({ kind, body }) => {
        const reply = await fx.postAlert(body);
        record('POST /api/alerts', reply);
        checkReply(reply, `POST /api/alerts ${kind}`);
        if (kind === 'hostile-alert-id') {
          expect([400, 413], JSON.stringify(reply.body).slice(0, 300)).toContain(reply.status);
          expect((reply.body as { error: { field: string } }).error.field).toBe('data.essentials.alertId');
        }
        if (reply.status === 202) {
          const b = reply.body as { messages: number; targets: { vms: string[] } };
          acceptedAlertMessages += b.messages;
          for (const id of b.targets.vms) expect(validVms.has(id.toLowerCase()), id).toBe(true);
        }
      }),
      { seed: SEED + 2, numRuns: RUNS, endOnFailure: true },
    );
    stats.get('POST /api/alerts')!.ms = Date.now() - t0;
    expect(acceptedAlertMessages).toBeGreaterThan(0);
  });

  it('left no queue message and no table entity naming anything but a valid VM', async () => {
    const { jobs, alerts, rawSizes } = await fx.drainQueues();
    expect(jobs).toHaveLength(acceptedJobs);
    expect(alerts).toHaveLength(acceptedAlertMessages);
    expect(Math.max(0, ...rawSizes)).toBeLessThanOrEqual(64 * 1024);
    const named = [
      ...jobs.map((j) => (j as { vmResourceId: string }).vmResourceId),
      ...alerts.flatMap((a) => (a as { alert: { vms: string[] } }).alert.vms),
    ];
    expect(named.filter((id) => !validVms.has(id.toLowerCase()))).toEqual([]);
    const entities = await fx.entities();
    expect(entities.length).toBeGreaterThanOrEqual(acceptedJobs * 2);
    // Keys are the VM's key with "/" as "|"; compared lower-cased, as the generators recorded them.
    const vmOf = (key: unknown) => String(key).replace(/\|/g, '/').toLowerCase();
    const strays = entities.filter((e) => {
      const partition = String(e.partitionKey);
      if (partition === 'by-id') return !validVms.has(vmOf(e.vmPartition));
      if (partition === 'vm-lease' || partition === 'alert-admission') return !validVms.has(vmOf(e.rowKey));
      return !validVms.has(vmOf(partition)) || !validVms.has(String(e.vmResourceId).toLowerCase());
    });
    expect(strays).toEqual([]);
    expect(fx.logs.filter((l) => l.level === 'error')).toEqual([]);
  });
});
