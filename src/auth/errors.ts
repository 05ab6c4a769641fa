/**
 * Typed authentication and authorization failures. Each carries the HTTP status it maps to and
 * a stable code for the JSON error body, so a rejected caller always gets a 401, 403 or 503 and
 * never a 500.
 */
import { RemediatorError, type ErrorContext } from '../errors.js';

export type AuthFailureCode =
  // 401: no usable credential
  | 'MissingToken'
  | 'InvalidToken'
  | 'TokenExpired'
  | 'WrongIssuer'
  | 'WrongAudience'
  | 'WrongTenant'
  | 'BadSignature'
  | 'UnknownSigningKey'
  // 403: a valid caller without the right
  | 'MissingRole'
  | 'AllowNotPermitted'
  // 503: the app cannot decide now
  | 'KeysUnavailable'
  | 'AuthMisconfigured';

export abstract class AuthError extends RemediatorError {
  public abstract readonly status: 401 | 403 | 503;
  public readonly code: AuthFailureCode;
  public constructor(code: AuthFailureCode, message: string, context: ErrorContext = {}, options?: ErrorOptions) {
    super(message, { ...context, code }, options);
    this.code = code;
  }
}

/** The request carries no credential the app accepts (401). */
export class AuthenticationError extends AuthError {
  public readonly status = 401;
}

/** The caller is known but may not do this (403). */
export class AuthorizationError extends AuthError {
  public readonly status = 403;
}

/** The app cannot verify credentials right now: signing keys unreachable, or its own settings are wrong (503). */
export class AuthUnavailableError extends AuthError {
  public readonly status = 503;
}
