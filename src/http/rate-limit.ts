import type { Middleware, ParameterizedContext } from 'koa';
import { errors } from 'oidc-provider';

/**
 * Rate limits for the token endpoint (per authenticated client) and for the token,
 * introspection and revocation endpoints (per client IP): a token bucket per key, in memory.
 *
 * Why in memory, per process, and not in PostgreSQL (SPEC §1 would keep counters there): the
 * token endpoint must issue well over a thousand tokens a second per process, and a counter
 * write per request would add a round trip and row contention on exactly the hot path the limit
 * protects. A bucket here costs a few Map operations (well under a microsecond). The price is that limits are per process
 * (each WORKERS worker is one): with N processes in all, the deployment-wide limit is N × the configured one.
 * Sign-in throttling stays in the database (src/sign-in/throttle.ts): it must hold across
 * instances, and its traffic is small.
 */

/** `ratePerSecond` tokens refill per second, up to `burst` (the most requests allowed at once). */
export interface RateLimitPolicy {
  readonly ratePerSecond: number;
  readonly burst: number;
}

export type RateLimitDecision = { readonly allowed: true } | { readonly allowed: false; readonly retryAfterSeconds: number };

export interface RateLimiter {
  /** Takes one request's worth from `key`'s bucket, or says how long until one is available. */
  take(key: string): RateLimitDecision;
  /** Keys tracked now (idle keys are dropped, so this stays near the number of active keys). */
  readonly size: number;
}

export interface RateLimiterOptions {
  /** Milliseconds from any fixed origin; monotonic by default so wall-clock steps change nothing. */
  readonly now?: () => number;
  /** Hard cap on tracked keys; beyond it the least recently used key is forgotten. */
  readonly maxKeys?: number;
}

/**
 * About 250 bytes a key (measured with IPv6 addresses), so at most ~25 MB per limiter. Only
 * reached when more distinct keys than this are active within one refill period
 * (`burst / ratePerSecond` seconds), i.e. a flood from very many addresses; then the least
 * recently seen key starts again with a full bucket.
 */
export const DEFAULT_MAX_KEYS = 100_000;
const SWEEP_INTERVAL_MS = 1_000;

interface Bucket {
  tokens: number;
  updatedAt: number;
}

/**
 * @example
 * const limiter = createRateLimiter({ ratePerSecond: 10, burst: 20 });
 * const decision = limiter.take(clientId);
 * if (!decision.allowed) ctx.set('Retry-After', String(decision.retryAfterSeconds));
 */
export function createRateLimiter(policy: RateLimitPolicy, options: RateLimiterOptions = {}): RateLimiter {
  if (!(policy.ratePerSecond > 0) || !Number.isFinite(policy.ratePerSecond)) throw new RangeError('ratePerSecond must be a positive number');
  if (!Number.isInteger(policy.burst) || policy.burst < 1) throw new RangeError('burst must be an integer of at least 1');
  const now = options.now ?? (() => performance.now());
  const maxKeys = options.maxKeys ?? DEFAULT_MAX_KEYS;
  const perMs = policy.ratePerSecond / 1000;
  // After this long without a request any bucket is full again, the same as an unknown key.
  const idleMs = policy.burst / perMs;
  // Insertion order is kept as last-use order (each take re-inserts), so the oldest are first.
  const buckets = new Map<string, Bucket>();
  let lastSweep = now();

  function sweep(at: number): void {
    lastSweep = at;
    for (const [key, bucket] of buckets) {
      if (at - bucket.updatedAt < idleMs) break;
      buckets.delete(key);
    }
  }

  return {
    take(key) {
      const at = now();
      if (at - lastSweep >= SWEEP_INTERVAL_MS) sweep(at);
      const bucket = buckets.get(key);
      let tokens = policy.burst;
      if (bucket !== undefined) {
        buckets.delete(key);
        // A clock that goes backwards refills nothing.
        tokens = Math.min(policy.burst, bucket.tokens + Math.max(0, at - bucket.updatedAt) * perMs);
      } else if (buckets.size >= maxKeys) {
        const oldest = buckets.keys().next();
        if (oldest.done !== true) buckets.delete(oldest.value);
      }
      const allowed = tokens >= 1;
      buckets.set(key, { tokens: allowed ? tokens - 1 : tokens, updatedAt: at });
      if (allowed) return { allowed: true };
      // RFC 9110 §10.2.3: delay-seconds, a whole number; never 0, which invites an immediate retry.
      return { allowed: false, retryAfterSeconds: Math.max(1, Math.ceil((1 - tokens) / policy.ratePerSecond)) };
    },
    get size() {
      return buckets.size;
    },
  };
}

export type RateLimitScope = 'client' | 'ip';

export interface TokenRateLimits {
  /** Token requests per authenticated client_id; undefined when disabled. */
  readonly perClient: RateLimiter | undefined;
  /** POSTs to the token, introspection and revocation endpoints per client IP; undefined when disabled. */
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
    ctx.state['routeLabel'] = ctx.path;
    ctx.status = 429;
    ctx.set({ 'Retry-After': String(decision.retryAfterSeconds), 'Cache-Control': 'no-store' });
    ctx.body = { error: 'temporarily_unavailable', error_description: retryMessage(decision.retryAfterSeconds) };
  };
}
