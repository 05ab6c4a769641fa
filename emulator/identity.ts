/**
 * The App Service / Functions managed-identity endpoint (IDENTITY_ENDPOINT + IDENTITY_HEADER):
 * plain HTTP on loopback, `GET ?api-version=2019-08-01&resource=<aud>[&client_id=..]` with the
 * `X-IDENTITY-HEADER` secret. Tokens are JWT-shaped (unsigned; nothing verifies signatures here)
 * and remembered, so the ARM side accepts exactly the tokens this endpoint issued.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import * as http from 'node:http';

export interface IssuedToken {
  readonly token: string;
  /** Who the token is for: the client id of a user-assigned identity, or the system identity's object id. */
  readonly principal: string;
  readonly clientId: string;
  /** The audience, without a trailing slash. */
  readonly resource: string;
  readonly expiresOn: number; // unix seconds
}

export interface IdentityRequestRecord {
  readonly time: number;
  readonly status: number;
  readonly resource: string | null;
  readonly clientId: string | null;
}

export class TokenRegistry {
  private readonly tokens = new Map<string, IssuedToken>();
  /** The system-assigned identity of the emulated function app. */
  public readonly systemIdentity = { clientId: randomUUID(), objectId: randomUUID() };
  public readonly tenantId: string;

  public constructor(
    private readonly lifetimeSeconds: number,
    tenantId?: string,
  ) {
    this.tenantId = tenantId ?? randomUUID();
  }

  public issue(resource: string, clientId?: string): IssuedToken {
    const now = Math.floor(Date.now() / 1000);
    const expiresOn = now + this.lifetimeSeconds;
    const userAssigned = clientId !== undefined && clientId !== '';
    const principal = userAssigned ? clientId : this.systemIdentity.objectId;
    const appId = userAssigned ? clientId : this.systemIdentity.clientId;
    const aud = resource.replace(/\/+$/, '');
    const b64 = (value: object): string => Buffer.from(JSON.stringify(value)).toString('base64url');
    const token = [
      b64({ typ: 'JWT', alg: 'RS256', kid: 'emulator' }),
      b64({ aud, iss: `https://sts.windows.net/${this.tenantId}/`, iat: now, nbf: now, exp: expiresOn, appid: appId, oid: principal, sub: principal, tid: this.tenantId, idtyp: 'app', jti: randomUUID() }),
      randomBytes(32).toString('base64url'),
    ].join('.');
    const issued: IssuedToken = { token, principal, clientId: appId, resource: aud, expiresOn };
    this.tokens.set(token, issued);
    return issued;
  }

  public lookup(token: string): IssuedToken | undefined {
    return this.tokens.get(token);
  }
}

const APP_SERVICE_API_VERSION = '2019-08-01';

export interface IdentityServer {
  readonly server: http.Server;
  readonly endpoint: string;
  readonly requests: IdentityRequestRecord[];
}

/** Starts the managed-identity endpoint on 127.0.0.1 (path /msi/token). */
export async function startIdentityServer(registry: TokenRegistry, secret: string, port: number): Promise<IdentityServer> {
  const requests: IdentityRequestRecord[] = [];
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const query = new Map([...url.searchParams].map(([k, v]) => [k.toLowerCase(), v]));
    const resource = query.get('resource') ?? null;
    const clientId = query.get('client_id') ?? query.get('clientid') ?? null;
    const reply = (status: number, body: object): void => {
      const text = JSON.stringify(body);
      res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text) });
      res.end(text);
      requests.push({ time: Date.now(), status, resource, clientId });
    };
    // The shape of the App Service endpoint's errors: statusCode, message, correlationId.
    const fail = (status: number, message: string): void => reply(status, { statusCode: status, message, correlationId: randomUUID() });

    if (url.pathname !== '/msi/token') return fail(404, `No resource at ${url.pathname}`);
    if (req.method !== 'GET') return fail(405, `Method ${req.method ?? ''} is not allowed`);
    const header = req.headers['x-identity-header'];
    if (header === undefined) return fail(400, 'The X-IDENTITY-HEADER header is required.');
    if (header !== secret) return fail(401, 'The X-IDENTITY-HEADER header does not match.');
    if (query.get('api-version') !== APP_SERVICE_API_VERSION) return fail(400, `api-version '${query.get('api-version') ?? ''}' is not supported; use ${APP_SERVICE_API_VERSION}.`);
    if (resource === null || resource === '') return fail(400, 'The resource parameter is required.');
    if (query.has('principal_id') || query.has('mi_res_id') || query.has('object_id')) {
      return fail(400, 'Unable to load the proper Managed Identity: only system-assigned and client_id identities are emulated.');
    }
    const issued = registry.issue(resource, clientId ?? undefined);
    reply(200, {
      access_token: issued.token,
      expires_on: String(issued.expiresOn),
      resource,
      token_type: 'Bearer',
      client_id: issued.clientId,
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('identity server has no TCP address');
  return { server, endpoint: `http://127.0.0.1:${address.port}/msi/token`, requests };
}

/** Why a request's bearer token was refused; each service words the error its own way. */
export type BearerFailure =
  | { readonly reason: 'missing' | 'malformed' | 'invalid' | 'expired' }
  | { readonly reason: 'audience'; readonly resource: string; readonly allowed: readonly string[] };

/**
 * Checks an Authorization header the way Entra-protected Azure endpoints do: a Bearer token
 * this emulator issued, not expired, for one of the audiences the service accepts.
 */
export function verifyBearer(
  header: string | undefined,
  tokens: TokenRegistry,
  audiences: readonly string[],
): { readonly ok: true; readonly issued: IssuedToken } | { readonly ok: false; readonly failure: BearerFailure } {
  if (header === undefined) return { ok: false, failure: { reason: 'missing' } };
  const token = /^Bearer\s+(\S+)$/i.exec(header)?.[1];
  if (token === undefined) return { ok: false, failure: { reason: 'malformed' } };
  const issued = tokens.lookup(token);
  if (issued === undefined) return { ok: false, failure: { reason: 'invalid' } };
  if (issued.expiresOn * 1000 <= Date.now()) return { ok: false, failure: { reason: 'expired' } };
  const allowed = audiences.map((a) => a.replace(/\/+$/, '').toLowerCase());
  if (!allowed.includes(issued.resource.toLowerCase())) return { ok: false, failure: { reason: 'audience', resource: issued.resource, allowed } };
  return { ok: true, issued };
}

/** The WWW-Authenticate challenge Azure sends with a 401. */
export function bearerChallenge(tenantId: string, description: string): Record<string, string> {
  return { 'www-authenticate': `Bearer authorization_uri="https://login.microsoftonline.com/${tenantId}", error="invalid_token", error_description="${description}"` };
}

/** The audience error text ARM and the Logs API share. */
export function wrongAudienceMessage(resource: string, allowed: readonly string[]): string {
  return `The access token has been obtained for wrong audience or resource '${resource}'. It should exactly match with one of the allowed audiences ${allowed.map((a) => `'${a}'`).join(',')}.`;
}
