/**
 * Entra ID bearer tokens: the Azure Monitor secure webhook's token, and callers' tokens for the
 * remediation routes. A token is accepted when it is an RS256 JWT signed by one of the tenant's
 * published keys (JWKS), issued by the tenant's v2 endpoint (or, in the public cloud, the v1
 * `https://sts.windows.net/<tenant>/`), for one of the configured audiences (the app
 * registration's identifier URI for v1 tokens, its client id for v2 tokens), within its lifetime,
 * and with `tid` equal to the tenant. App roles are checked by the caller of `verify`
 * (`requireAnyRole`).
 *
 * The JWKS URL is injectable so tests serve their own keys over loopback; the fetch has a timeout,
 * and an unreachable or broken key set is a 503 (`AuthUnavailableError`), never a 401 or a 500.
 */
import { createRemoteJWKSet, decodeProtectedHeader, errors, jwtVerify, type JWTPayload, type JWTVerifyGetKey } from 'jose';
import type { EntraSettings } from '../config.js';
import { errorMessage } from '../errors.js';
import { AuthenticationError, AuthError, AuthorizationError, AuthUnavailableError } from './errors.js';

export interface EntraVerifierOptions {
  /** Default: `<authorityHost>/<tenant>/discovery/v2.0/keys` (the same keys sign v1 and v2 tokens). */
  readonly jwksUri?: URL;
  /** How long one JWKS fetch may take. Default 3 s, well inside the action group's ~10 s wait. */
  readonly jwksTimeoutMs?: number;
  /** How long fetched keys are used before they are fetched again. Default 1 h. */
  readonly jwksCacheMaxAgeMs?: number;
  /** Allowed clock difference for exp and nbf. Default 60 s. */
  readonly clockToleranceSeconds?: number;
  /** Default: `entraIssuers(authorityHost, tenantId)`. */
  readonly issuers?: readonly string[];
}

/** Who called, as the verified token says. */
export interface EntraCaller {
  readonly tenantId: string;
  readonly subject: string;
  /** The caller's object id (a user or a service principal). */
  readonly objectId: string | undefined;
  /** The client application that obtained the token: `azp` (v2) or `appid` (v1). */
  readonly appId: string | undefined;
  readonly roles: readonly string[];
  readonly tokenVersion: string | undefined;
}

export interface EntraVerifier {
  readonly issuers: readonly string[];
  readonly audiences: readonly string[];
  readonly jwksUri: URL;
  /** Resolves with the caller, or rejects with an `AuthError` (401 or 503); nothing else. */
  verify(token: string): Promise<EntraCaller>;
}

const PUBLIC_AUTHORITY = 'https://login.microsoftonline.com';
/** Compact JWS: three base64url segments. Anything else is refused before any key is fetched. */
const COMPACT_JWT = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;
const MAX_TOKEN_LENGTH = 16_384;

/** The issuers of the tenant's access tokens: v2 always; v1 (`sts.windows.net`) in the public cloud. */
export function entraIssuers(authorityHost: string, tenantId: string): string[] {
  const authority = authorityHost.replace(/\/+$/, '');
  const v2 = `${authority}/${tenantId}/v2.0`;
  return authority.toLowerCase() === PUBLIC_AUTHORITY ? [v2, `https://sts.windows.net/${tenantId}/`] : [v2];
}

export function createEntraVerifier(settings: EntraSettings, options: EntraVerifierOptions = {}): EntraVerifier {
  const authority = settings.authorityHost.replace(/\/+$/, '');
  const tenantId = settings.tenantId.toLowerCase();
  const jwksUri = options.jwksUri ?? new URL(`${authority}/${tenantId}/discovery/v2.0/keys`);
  const issuers = [...(options.issuers ?? entraIssuers(authority, tenantId))];
  const audiences = [...settings.audiences];
  const remote = createRemoteJWKSet(jwksUri, {
    timeoutDuration: options.jwksTimeoutMs ?? 3_000,
    cacheMaxAge: options.jwksCacheMaxAgeMs ?? 3_600_000,
    cooldownDuration: 30_000,
  });
  // Key lookup failures are told apart here, where it is known that they came from the key set:
  // a token naming no published key is the caller's problem (401); a key set that cannot be
  // fetched or read is the app's (503).
  const getKey: JWTVerifyGetKey = async (header, token) => {
    try {
      return await remote(header, token);
    } catch (error) {
      if (error instanceof errors.JWKSNoMatchingKey) throw new AuthenticationError('UnknownSigningKey', 'the token is not signed by any of the tenant\'s published keys', {}, { cause: error });
      if (error instanceof errors.JWKSMultipleMatchingKeys) throw new AuthenticationError('InvalidToken', 'the token\'s header matches more than one signing key', {}, { cause: error });
      throw new AuthUnavailableError('KeysUnavailable', `the tenant's signing keys could not be fetched from ${jwksUri.origin}: ${errorMessage(error)}`, { jwksUri: jwksUri.href }, { cause: error });
    }
  };

  return {
    issuers,
    audiences,
    jwksUri,
    async verify(token: string): Promise<EntraCaller> {
      if (token.length > MAX_TOKEN_LENGTH || !COMPACT_JWT.test(token)) throw new AuthenticationError('InvalidToken', 'the bearer token is not a JWT');
      try {
        decodeProtectedHeader(token);
      } catch (error) {
        throw new AuthenticationError('InvalidToken', 'the bearer token\'s header is not valid', {}, { cause: error });
      }
      let payload: JWTPayload;
      try {
        ({ payload } = await jwtVerify(token, getKey, {
          algorithms: ['RS256'],
          issuer: issuers,
          audience: audiences,
          clockTolerance: options.clockToleranceSeconds ?? 60,
          requiredClaims: ['exp', 'tid'],
        }));
      } catch (error) {
        throw classify(error);
      }
      const tid = typeof payload.tid === 'string' ? payload.tid.toLowerCase() : '';
      if (tid !== tenantId) throw new AuthenticationError('WrongTenant', 'the token was issued for another tenant', { tid });
      return {
        tenantId: tid,
        subject: payload.sub ?? '',
        objectId: stringClaim(payload, 'oid'),
        appId: stringClaim(payload, 'azp') ?? stringClaim(payload, 'appid'),
        roles: Array.isArray(payload.roles) ? payload.roles.filter((r): r is string => typeof r === 'string') : [],
        tokenVersion: stringClaim(payload, 'ver'),
      };
    },
  };
}

/** Passes when the caller holds at least one of `roles`; otherwise a 403 naming them. */
export function requireAnyRole(caller: EntraCaller, roles: readonly string[]): void {
  if (hasAnyRole(caller, roles)) return;
  throw new AuthorizationError('MissingRole', `the caller needs the app role ${roles.join(' or ')}`, { required: roles, held: caller.roles });
}

export function hasAnyRole(caller: EntraCaller, roles: readonly string[]): boolean {
  return roles.some((r) => caller.roles.includes(r));
}

function stringClaim(payload: JWTPayload, name: string): string | undefined {
  const value = payload[name];
  return typeof value === 'string' ? value : undefined;
}

/** jose's verification errors as typed auth errors. Whatever is not recognised is a 401: fail closed. */
function classify(error: unknown): AuthError {
  if (error instanceof AuthError) return error;
  if (error instanceof errors.JWTExpired) return new AuthenticationError('TokenExpired', 'the token has expired', {}, { cause: error });
  if (error instanceof errors.JWTClaimValidationFailed) {
    if (error.claim === 'iss') return new AuthenticationError('WrongIssuer', 'the token was not issued by the configured tenant', {}, { cause: error });
    if (error.claim === 'aud') return new AuthenticationError('WrongAudience', 'the token is not for this app', {}, { cause: error });
    return new AuthenticationError('InvalidToken', `the token's "${error.claim}" claim is not acceptable (${error.reason})`, { claim: error.claim }, { cause: error });
  }
  if (error instanceof errors.JWSSignatureVerificationFailed) return new AuthenticationError('BadSignature', 'the token\'s signature does not verify', {}, { cause: error });
  if (error instanceof errors.JOSEAlgNotAllowed) return new AuthenticationError('InvalidToken', 'the token is not signed with RS256', {}, { cause: error });
  return new AuthenticationError('InvalidToken', `the token is not valid: ${errorMessage(error)}`, {}, { cause: error });
}
