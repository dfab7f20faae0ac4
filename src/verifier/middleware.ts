import type { X509Certificate } from 'node:crypto';
import { TLSSocket } from 'node:tls';
import type { Middleware, ParameterizedContext } from 'koa';
import { VerifierError } from './errors.js';
import { DPOP_ALGS, type PresentedBinding } from './sender-binding.js';
import type { Verifier, VerifiedToken } from './verifier.js';

/** What the middleware refused, for a caller that formats its own error bodies. */
export interface BearerFailure {
  readonly status: 401 | 403;
  /** RFC 6750 §3.1 (or RFC 9449 §7.1) error code; undefined when no token was sent at all. */
  readonly error: 'invalid_token' | 'insufficient_scope' | 'invalid_request' | 'invalid_dpop_proof' | undefined;
  /** The challenge's scheme: DPoP when the request used it or the token is DPoP-bound. */
  readonly scheme: 'Bearer' | 'DPoP';
  readonly description: string | undefined;
  /** Why the verifier refused the token. */
  readonly code: VerifierError['code'] | undefined;
}

export interface RequireTokenOptions {
  /** Every one of these scopes must be granted. */
  readonly scopes?: readonly string[];
  /** Writes the body of a refusal; by default `{ error, error_description }` JSON. */
  readonly respond?: (ctx: ParameterizedContext, failure: BearerFailure) => void;
  /**
   * The origin clients address this service at (`https://orders.example.com`), for a DPoP proof's
   * `htu`. Default: the request's protocol and Host (Koa follows X-Forwarded-Proto/Host only with
   * `app.proxy`).
   */
  readonly origin?: string;
  /**
   * The client certificate, for certificate-bound tokens (RFC 8705 §3). Default: the TLS
   * connection's. Behind a TLS-terminating proxy, read the header it sets (and only trust it from
   * that proxy).
   */
  readonly certificate?: (ctx: ParameterizedContext) => X509Certificate | undefined;
}

function quote(value: string): string {
  return `"${value.replace(/["\\]/g, '')}"`;
}

const DPOP_ALGS_PARAM = `algs=${quote(DPOP_ALGS.join(' '))}`;

function challenge(failure: BearerFailure, scopes: readonly string[]): string {
  // RFC 6750 §3: a request without credentials gets a bare challenge, no error code.
  if (failure.error === undefined) return 'Bearer';
  const parts = [`error=${quote(failure.error)}`];
  if (failure.description !== undefined) parts.push(`error_description=${quote(failure.description)}`);
  if (failure.error === 'insufficient_scope' && scopes.length > 0) parts.push(`scope=${quote(scopes.join(' '))}`);
  // RFC 9449 §7.1: a DPoP challenge names the proof algorithms accepted.
  if (failure.scheme === 'DPoP') parts.push(DPOP_ALGS_PARAM);
  return `${failure.scheme} ${parts.join(', ')}`;
}

/** The Authorization header's scheme, when it is one a token comes with (case-insensitive, RFC 9110 §11.1). */
function schemeOf(header: string): 'Bearer' | 'DPoP' | undefined {
  const name = /^(Bearer|DPoP)(?:\s|$)/i.exec(header)?.[1];
  if (name === undefined) return undefined;
  return name.toLowerCase() === 'dpop' ? 'DPoP' : 'Bearer';
}

function connectionCertificate(ctx: ParameterizedContext): X509Certificate | undefined {
  return ctx.req.socket instanceof TLSSocket ? ctx.req.socket.getPeerX509Certificate() : undefined;
}

/** A refused token's error: RFC 9449 §7.1 for proofs, RFC 6750 §3.1 for the rest. */
function tokenFailure(error: VerifierError, scheme: 'Bearer' | 'DPoP'): BearerFailure {
  if (error.code === 'dpop_invalid') return { status: 401, error: 'invalid_dpop_proof', scheme: 'DPoP', description: error.message, code: error.code };
  return { status: 401, error: 'invalid_token', scheme: error.binding === 'dpop' ? 'DPoP' : scheme, description: error.message, code: error.code };
}

function defaultRespond(ctx: ParameterizedContext, failure: BearerFailure): void {
  ctx.body = failure.error === undefined ? { error: 'unauthorized' } : { error: failure.error, error_description: failure.description };
}

/**
 * Koa middleware that requires a valid Gatehouse access token, as `Authorization: Bearer` (RFC
 * 6750) or, DPoP-bound, as `Authorization: DPoP` with its `DPoP` proof header (RFC 9449 §7), and
 * sets `ctx.state.token = { claims, inner }`. A certificate-bound token must come over a
 * connection with that client certificate (RFC 8705 §3).
 *
 * @example
 * app.use(requireToken(verifier, { scopes: ['orders:read'] }));
 */
export function requireToken(verifier: Verifier, options: RequireTokenOptions = {}): Middleware {
  const scopes = options.scopes ?? [];
  const respond = options.respond ?? defaultRespond;
  const certificateOf = options.certificate ?? connectionCertificate;

  const refuse = (ctx: ParameterizedContext, failure: BearerFailure) => {
    ctx.status = failure.status;
    ctx.set('WWW-Authenticate', challenge(failure, scopes));
    ctx.set('Cache-Control', 'no-store');
    respond(ctx, failure);
  };

  return async function requireBearerToken(ctx, next) {
    const header = ctx.get('Authorization');
    // RFC 6750 §3.1: no credentials, or another scheme (e.g. Basic), get a bare challenge.
    const scheme = schemeOf(header);
    if (scheme === undefined) {
      refuse(ctx, { status: 401, error: undefined, scheme: 'Bearer', description: undefined, code: undefined });
      return;
    }
    const match = /^(?:Bearer|DPoP) +([A-Za-z0-9\-._~+/]+=*)$/i.exec(header);
    if (match === null) {
      refuse(ctx, { status: 401, error: 'invalid_token', scheme, description: `the Authorization header is not a ${scheme} token`, code: 'token_malformed' });
      return;
    }
    const accessToken = match[1]!;
    const certificate = certificateOf(ctx);
    const presented: PresentedBinding = {
      ...(certificate === undefined ? {} : { certificate }),
      // RFC 9449 §7.2: with the Bearer scheme a DPoP header is not looked at.
      ...(scheme === 'DPoP' ? { dpop: { proof: ctx.get('DPoP'), method: ctx.method, url: `${options.origin ?? `${ctx.protocol}://${ctx.host}`}${ctx.originalUrl}` } } : {}),
    };
    let token: VerifiedToken;
    try {
      token = await verifier.verify(accessToken, presented);
    } catch (error) {
      if (!(error instanceof VerifierError)) throw error;
      if (error.code === 'jwks_unavailable') throw error;
      refuse(ctx, tokenFailure(error, scheme));
      return;
    }
    const granted = new Set((token.claims.scope ?? '').split(' ').filter(Boolean));
    if (!scopes.every((scope) => granted.has(scope))) {
      refuse(ctx, { status: 403, error: 'insufficient_scope', scheme, description: 'the token lacks a required scope', code: undefined });
      return;
    }
    ctx.state['token'] = token;
    await next();
  };
}
