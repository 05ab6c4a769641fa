/**
 * Who may call which HTTP route, applied at registration (functions/*.ts):
 *
 *   httpAuth('alerts' | 'remediations') → { authLevel, guard(access, handler) }
 *
 * - `function-key` (the default): the Functions host checks the key (`authLevel: 'function'`),
 *   and every function has keys of its own, so the alerts key opens POST /api/alerts only, and
 *   a key for reading records opens nothing else. `allow` (security-lowering permissions) is
 *   accepted only on POST /api/remediations/allow, whose function has its own key: a key holder
 *   for POST /api/remediations cannot grant it.
 * - `entra`: the route is anonymous to the host and the guard verifies an Entra bearer token
 *   (src/auth/entra.ts) and its app roles: ActionGroupsSecureWebhook for alerts; Remediation.Read,
 *   Remediation.Request and Remediation.Allow for the remediation routes, each including the ones
 *   before it. `allow` in a request body needs Remediation.Allow.
 *
 * Settings that cannot be read leave the route at `authLevel: 'function'` and answer 503 to every
 * call (fail closed). A rejection is a 401, 403 or 503 with a JSON body; never a 500.
 */
import type { HttpHandler, HttpRequest, HttpResponseInit, InvocationContext } from '@azure/functions';
import { loadAuthSettings, type EntraSettings } from '../config.js';
import { errorMessage } from '../errors.js';
import { createEntraVerifier, hasAnyRole, requireAnyRole, type EntraCaller, type EntraVerifier, type EntraVerifierOptions } from './entra.js';
import { AuthenticationError, AuthError, AuthorizationError, AuthUnavailableError } from './errors.js';

/** The Entra app roles the app checks. Define them on the app registration (docs/deploy.md). */
export const APP_ROLES = {
  /** Granted to the Azure Monitor action groups' service principal ("AzNS AAD Webhook"). */
  alerts: 'ActionGroupsSecureWebhook',
  read: 'Remediation.Read',
  request: 'Remediation.Request',
  allow: 'Remediation.Allow',
} as const;

export type AuthArea = 'alerts' | 'remediations';

/** What a route lets its caller do. */
export type RouteAccess = 'alerts' | 'read-records' | 'request' | 'request-with-allow';

/** The roles that grant each access: every remediation role includes the ones before it. */
export const ACCEPTED_ROLES: Readonly<Record<RouteAccess, readonly string[]>> = {
  alerts: [APP_ROLES.alerts],
  'read-records': [APP_ROLES.read, APP_ROLES.request, APP_ROLES.allow],
  request: [APP_ROLES.request, APP_ROLES.allow],
  'request-with-allow': [APP_ROLES.allow],
};

export interface HttpAuth {
  readonly mode: 'function-key' | 'entra' | 'misconfigured';
  /** What to register the route with: `anonymous` only when the guard verifies Entra tokens. */
  readonly authLevel: 'function' | 'anonymous';
  guard(access: RouteAccess, handler: HttpHandler): HttpHandler;
}

export interface HttpAuthOptions {
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** Tests: a verifier of their own, or options (a loopback JWKS) for the one built from settings. */
  readonly verifier?: EntraVerifier;
  readonly verifierOptions?: EntraVerifierOptions;
}

type Resolved = { readonly kind: 'function-key' } | { readonly kind: 'entra'; readonly verifier: EntraVerifier } | { readonly kind: 'misconfigured'; readonly reason: string };

export function httpAuth(area: AuthArea, options: HttpAuthOptions = {}): HttpAuth {
  const resolved = resolve(area, options);
  return {
    mode: resolved.kind,
    authLevel: resolved.kind === 'entra' ? 'anonymous' : 'function',
    guard: (access, handler) => guarded(resolved, access, handler),
  };
}

function resolve(area: AuthArea, options: HttpAuthOptions): Resolved {
  try {
    const settings = loadAuthSettings(options.env ?? process.env);
    if (settings[area] !== 'entra') return { kind: 'function-key' };
    if (!settings.entra) throw new Error('entra settings missing');
    return { kind: 'entra', verifier: options.verifier ?? sharedVerifier(settings.entra, options.verifierOptions) };
  } catch (error) {
    return { kind: 'misconfigured', reason: errorMessage(error) };
  }
}

/** One verifier (and so one key cache) per distinct settings, shared by the routes of an instance. */
const verifiers = new Map<string, EntraVerifier>();
function sharedVerifier(settings: EntraSettings, options: EntraVerifierOptions | undefined): EntraVerifier {
  if (options) return createEntraVerifier(settings, options);
  const key = JSON.stringify(settings);
  let verifier = verifiers.get(key);
  if (!verifier) {
    verifier = createEntraVerifier(settings);
    verifiers.set(key, verifier);
  }
  return verifier;
}

function guarded(resolved: Resolved, access: RouteAccess, handler: HttpHandler): HttpHandler {
  return async (request: HttpRequest, context: InvocationContext): Promise<HttpResponseInit> => {
    let caller: EntraCaller | undefined;
    try {
      caller = await authenticate(resolved, access, request);
      if (access === 'request' && !(caller && hasAnyRole(caller, ACCEPTED_ROLES['request-with-allow'])) && (await asksForAllow(request))) {
        throw new AuthorizationError(
          'AllowNotPermitted',
          caller
            ? `"allow" (security-lowering permissions) needs the app role ${APP_ROLES.allow}`
            : '"allow" (security-lowering permissions) is accepted only on POST /api/remediations/allow, with that function\'s own key',
        );
      }
    } catch (error) {
      const failure = error instanceof AuthError ? error : new AuthUnavailableError('KeysUnavailable', `credentials could not be checked: ${errorMessage(error)}`, {}, { cause: error });
      context.warn(
        JSON.stringify({
          event: 'auth.rejected',
          function: context.functionName,
          access,
          status: failure.status,
          code: failure.code,
          reason: resolved.kind === 'misconfigured' ? resolved.reason : failure.message,
          ...(caller ? { caller: describe(caller) } : {}),
        }),
      );
      return problem(failure);
    }
    if (caller) context.info(JSON.stringify({ event: 'auth.accepted', function: context.functionName, access, caller: describe(caller) }));
    return handler(request, context);
  };
}

async function authenticate(resolved: Resolved, access: RouteAccess, request: HttpRequest): Promise<EntraCaller | undefined> {
  switch (resolved.kind) {
    case 'function-key':
      return undefined; // the host has checked this function's key (or a host key) already
    case 'misconfigured':
      throw new AuthUnavailableError('AuthMisconfigured', 'the app\'s authentication settings are not valid; see the app\'s log');
    case 'entra': {
      const caller = await resolved.verifier.verify(bearerToken(request.headers.get('authorization')));
      requireAnyRole(caller, ACCEPTED_ROLES[access]);
      return caller;
    }
  }
}

/** The token of an `Authorization: Bearer <token>` header. */
export function bearerToken(header: string | null): string {
  if (!header) throw new AuthenticationError('MissingToken', 'an Authorization: Bearer token is required');
  const match = /^Bearer[ ]+(\S+)\s*$/i.exec(header);
  if (!match?.[1]) throw new AuthenticationError('MissingToken', 'the Authorization header is not a Bearer token');
  return match[1];
}

/**
 * Whether a remediation request asks for any security-lowering permission. Fails closed: a body
 * that is not JSON counts as asking when it mentions "allow" anywhere, so a more lenient parser
 * behind this guard can never see a grant the guard did not.
 */
export async function asksForAllow(request: HttpRequest): Promise<boolean> {
  for (const [name, value] of request.query.entries()) if (name.toLowerCase() === 'allow' && value !== '') return true;
  let text: string;
  try {
    text = await request.clone().text();
  } catch {
    return true;
  }
  if (text.length > MAX_INSPECTED_CHARS) return /allow/i.test(text); // far beyond any request; not parsed
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    return /allow/i.test(text);
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return false;
  return Object.entries(body).some(([name, value]) => name.toLowerCase() === 'allow' && !isEmptyAllow(value));
}

const MAX_INSPECTED_CHARS = 64 * 1024;

function isEmptyAllow(value: unknown): boolean {
  return value === undefined || value === null || value === '' || (Array.isArray(value) && value.length === 0);
}

function describe(caller: EntraCaller): Record<string, unknown> {
  return { objectId: caller.objectId, appId: caller.appId, roles: caller.roles };
}

function problem(failure: AuthError): HttpResponseInit {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (failure.status === 401) headers['www-authenticate'] = failure.code === 'MissingToken' ? 'Bearer' : 'Bearer error="invalid_token"';
  if (failure.status === 403 && failure.code === 'MissingRole') headers['www-authenticate'] = 'Bearer error="insufficient_scope"';
  if (failure.status === 503) headers['retry-after'] = '10';
  return { status: failure.status, jsonBody: { error: { code: failure.code, message: failure.message } }, headers };
}
