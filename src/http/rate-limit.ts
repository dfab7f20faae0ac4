/**
 * A token bucket per key, in memory: the limiter behind the token endpoint's limits (per
 * authenticated client, and per client IP on the token, introspection, revocation and PAR endpoints;
 * their glue to oidc-provider is src/oidc/token-rate-limits.ts).
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
