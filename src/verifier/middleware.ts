import type { Middleware, ParameterizedContext } from 'koa';
import { VerifierError } from './errors.js';
import type { Verifier, VerifiedToken } from './verifier.js';

/** What the middleware refused, for a caller that formats its own error bodies. */
export interface BearerFailure {
  readonly status: 401 | 403;
  /** RFC 6750 §3.1 error code; undefined when no token was sent at all. */
  readonly error: 'invalid_token' | 'insufficient_scope' | 'invalid_request' | undefined;
  readonly description: string | undefined;
  /** Why the verifier refused the token. */
  readonly code: VerifierError['code'] | undefined;
}

export interface RequireTokenOptions {
  /** Every one of these scopes must be granted. */
  readonly scopes?: readonly string[];
  /** Writes the body of a refusal; by default `{ error, error_description }` JSON. */
  readonly respond?: (ctx: ParameterizedContext, failure: BearerFailure) => void;
}

function quote(value: string): string {
  return `"${value.replace(/["\\]/g, '')}"`;
}

function challenge(failure: BearerFailure, scopes: readonly string[]): string {
  // RFC 6750 §3: a request without credentials gets a bare challenge, no error code.
  if (failure.error === undefined) return 'Bearer';
  const parts = [`error=${quote(failure.error)}`];
  if (failure.description !== undefined) parts.push(`error_description=${quote(failure.description)}`);
  if (failure.error === 'insufficient_scope' && scopes.length > 0) parts.push(`scope=${quote(scopes.join(' '))}`);
  return `Bearer ${parts.join(', ')}`;
}

function defaultRespond(ctx: ParameterizedContext, failure: BearerFailure): void {
  ctx.body = failure.error === undefined ? { error: 'unauthorized' } : { error: failure.error, error_description: failure.description };
}

/**
 * Koa middleware that requires a valid Gatehouse access token (RFC 6750) and sets
 * `ctx.state.token = { claims, inner }`.
 *
 * @example
 * app.use(requireToken(verifier, { scopes: ['orders:read'] }));
 */
export function requireToken(verifier: Verifier, options: RequireTokenOptions = {}): Middleware {
  const scopes = options.scopes ?? [];
  const respond = options.respond ?? defaultRespond;

  const refuse = (ctx: ParameterizedContext, failure: BearerFailure) => {
    ctx.status = failure.status;
    ctx.set('WWW-Authenticate', challenge(failure, scopes));
    ctx.set('Cache-Control', 'no-store');
    respond(ctx, failure);
  };

  return async function requireBearerToken(ctx, next) {
    const header = ctx.get('Authorization');
    // RFC 6750 §3.1: no credentials, or another scheme (e.g. Basic), get a bare challenge.
    if (header === '' || !/^Bearer(\s|$)/i.test(header)) {
      refuse(ctx, { status: 401, error: undefined, description: undefined, code: undefined });
      return;
    }
    const match = /^Bearer +([A-Za-z0-9\-._~+/]+=*)$/i.exec(header);
    if (match === null) {
      refuse(ctx, { status: 401, error: 'invalid_token', description: 'the Authorization header is not a Bearer token', code: 'token_malformed' });
      return;
    }
    let token: VerifiedToken;
    try {
      token = await verifier.verify(match[1]!);
    } catch (error) {
      if (!(error instanceof VerifierError)) throw error;
      if (error.code === 'jwks_unavailable') throw error;
      refuse(ctx, { status: 401, error: 'invalid_token', description: error.message, code: error.code });
      return;
    }
    const granted = new Set((token.claims.scope ?? '').split(' ').filter(Boolean));
    if (!scopes.every((scope) => granted.has(scope))) {
      refuse(ctx, { status: 403, error: 'insufficient_scope', description: 'the token lacks a required scope', code: undefined });
      return;
    }
    ctx.state['token'] = token;
    await next();
  };
}
