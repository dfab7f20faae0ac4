import type { Middleware, ParameterizedContext } from 'koa';
import { errors } from 'oidc-provider';
import { createRateLimiter, type RateLimiter, type RateLimiterOptions, type RateLimitPolicy } from '../http/rate-limit.js';

/**
 * The provider's rate-limit glue: the per-client limit wrapped around each grant handler and the
 * per-IP limit in front of the provider's client-authenticating endpoints (the limiter itself is
 * src/http/rate-limit.ts, which says why it is in memory).
 */

export type RateLimitScope = 'client' | 'ip';

export interface TokenRateLimits {
  /** Token requests per authenticated client_id; undefined when disabled. */
  readonly perClient: RateLimiter | undefined;
  /** POSTs to the token, introspection, revocation and PAR endpoints per client IP; undefined when disabled. */
  readonly perIp: RateLimiter | undefined;
  /** Called once per refused request (the gatehouse_rate_limited_total counter). */
  readonly onLimited: (scope: RateLimitScope) => void;
}

/** A rate of 0 disables a limit. One set of limiters per process, shared by every provider it builds. */
export function createTokenRateLimits(
  policies: { readonly perClient: RateLimitPolicy; readonly perIp: RateLimitPolicy },
  onLimited: (scope: RateLimitScope) => void,
  options: RateLimiterOptions = {},
): TokenRateLimits {
  const build = (policy: RateLimitPolicy) => (policy.ratePerSecond > 0 ? createRateLimiter(policy, options) : undefined);
  return { perClient: build(policies.perClient), perIp: build(policies.perIp), onLimited };
}

/*
 * The refusal: 429 (RFC 6585 §4) with Retry-After, and an RFC 6749-style body. The error code is
 * `temporarily_unavailable` (RFC 6749 §4.1.2.1), the one OAuth code that tells a client to retry
 * later, which the token endpoint already uses for database outages; `slow_down` belongs to
 * device-code polling (RFC 8628 §3.5), and `invalid_request` would blame a well-formed request.
 */
function retryMessage(retryAfterSeconds: number): string {
  return `too many requests; retry after ${retryAfterSeconds} s`;
}

class TooManyRequests extends errors.OIDCProviderError {
  constructor(retryAfterSeconds: number) {
    super(429, 'temporarily_unavailable');
    this.error_description = retryMessage(retryAfterSeconds);
  }
}

/**
 * The per-client limit, around a grant type handler: it runs after oidc-provider has
 * authenticated the client and validated the request, before any grant work, so only
 * authenticated client ids count (nobody can spend another client's budget by sending its
 * client_id with a wrong secret; the per-IP limit covers those requests).
 */
export function limitGrantPerClient<Ctx extends { oidc: { client: { clientId: string } } } & Pick<ParameterizedContext, 'set'>>(
  limits: TokenRateLimits,
  handler: (ctx: Ctx) => unknown,
): (ctx: Ctx) => Promise<void> {
  const { perClient } = limits;
  return async function rateLimitedGrant(ctx) {
    const decision = perClient?.take(ctx.oidc.client.clientId);
    if (decision !== undefined && !decision.allowed) {
      limits.onLimited('client');
      ctx.set('Retry-After', String(decision.retryAfterSeconds));
      // Thrown into the provider's own error handler: its JSON body, CORS and no-store headers.
      throw new TooManyRequests(decision.retryAfterSeconds);
    }
    await handler(ctx);
  };
}

/**
 * The per-IP limit, in front of the provider: every POST to one of `paths` counts, before the
 * body is read or the client looked up. `ctx.ip` is the peer address, or the X-Forwarded-For
 * client when TRUST_PROXY is set.
 */
export function limitPerIp(limits: TokenRateLimits, paths: ReadonlySet<string>): Middleware {
  const { perIp } = limits;
  return async function rateLimitPerIp(ctx, next) {
    const decision = ctx.method === 'POST' && paths.has(ctx.path) ? perIp?.take(ctx.ip) : undefined;
    if (decision === undefined || decision.allowed) {
      await next();
      return;
    }
    limits.onLimited('ip');
    // The provider's router never sees this request; label it as that router would (its path,
    // one of a fixed few), so request metrics and logs show the 429s on the right route.
    ctx.state.routeLabel = ctx.path;
    ctx.status = 429;
    ctx.set({ 'Retry-After': String(decision.retryAfterSeconds), 'Cache-Control': 'no-store' });
    ctx.body = { error: 'temporarily_unavailable', error_description: retryMessage(decision.retryAfterSeconds) };
  };
}
