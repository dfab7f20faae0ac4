import argon2 from 'argon2';
import { createPasswordPool, type PasswordPool } from './password-pool.js';

/**
 * People's passwords: argon2id (SPEC §4, OWASP's minimum m=19 MiB, t=2, p=1).
 *
 * argon2 runs in a child process at a lower OS priority (src/accounts/password-pool.ts), so the
 * event loop never waits and token signing, on this process's libuv pool, is never queued behind
 * a hash nor outrun for the cores. At most `concurrency` hashes run at once (default: 2, one per
 * core of our machines), which bounds the memory argon2 takes (19 MiB a hash).
 *
 * The rest wait in a fair queue (SPEC §4: "Password checks are queued per client IP with a bound,
 * so one address cannot delay everyone else's sign-in"): each client IP may have at most
 * `perIpLimit` checks waiting or running and the whole queue at most `totalLimit`; beyond either,
 * `verify` throws PasswordCheckRefused (the login page answers 429 with Retry-After). Free slots go
 * round-robin across addresses, not first come first served, so a flood from one address waits
 * behind itself while another address's check runs next. Hashing for operators (user creation,
 * password set, rehash after a sign-in) has its own key: never refused, but it occupies the queue.
 */
export const PASSWORD_PARAMS = { type: argon2.argon2id, memoryCost: 19_456, timeCost: 2, parallelism: 1 } as const;

export const PASSWORD_MIN_LENGTH = 12;
export const PASSWORD_MAX_LENGTH = 1024;

/** Who asks for a password check: the key of its fair share of the queue. */
export interface PasswordCheckContext {
  /** The client's address (ctx.ip: the peer, or the X-Forwarded-For client under TRUST_PROXY). */
  readonly clientIp: string;
}

export interface PasswordHasher {
  hash(password: string): Promise<string>;
  /**
   * True when `password` matches `hash`. With no hash (unknown user) it spends the same time and returns false.
   * Throws PasswordCheckRefused, before any work, when the client's share of the queue (or the queue) is full.
   */
  verify(hash: string | undefined, password: string, context: PasswordCheckContext): Promise<boolean>;
  /** True when the hash was made with weaker or different parameters and should be replaced. */
  needsRehash(hash: string): boolean;
}

/** The check was not queued: too many checks are waiting for this client IP, or in all. */
export class PasswordCheckRefused extends Error {
  readonly code = 'password_check_refused' as const;
  constructor(
    readonly scope: 'ip' | 'total',
    /** Whole seconds (RFC 9110 §10.2.3), at least 1: about how long the queue ahead takes to drain. */
    readonly retryAfterSeconds: number,
  ) {
    super(`password check refused: too many checks queued (${scope})`);
    this.name = 'PasswordCheckRefused';
  }
}

export interface PasswordQueueOptions {
  /** Hashes running at once (default 2). */
  readonly concurrency?: number;
  /** Checks waiting or running per client IP (default 4). */
  readonly perIpLimit?: number;
  /** Checks waiting or running in all (default 64). */
  readonly totalLimit?: number;
}

export const DEFAULT_PASSWORD_QUEUE = { concurrency: 2, perIpLimit: 4, totalLimit: 64 } as const;

/** Operators' hashing (admin API, CLI, rehash): one key of its own, exempt from the bounds. */
const OPERATOR_KEY = '\u0000operator';

interface Lane {
  /** Waiting or running for this key. */
  held: number;
  readonly waiting: (() => void)[];
}

/**
 * A fair limiter: `concurrency` tasks run at once; waiting tasks are grouped by key and a freed
 * slot goes to the next key in a ring (round-robin), each key's own tasks in FIFO order.
 */
export function fairLimiter(options: PasswordQueueOptions = {}) {
  const concurrency = options.concurrency ?? DEFAULT_PASSWORD_QUEUE.concurrency;
  const perKeyLimit = options.perIpLimit ?? DEFAULT_PASSWORD_QUEUE.perIpLimit;
  const totalLimit = options.totalLimit ?? DEFAULT_PASSWORD_QUEUE.totalLimit;
  const lanes = new Map<string, Lane>();
  // Keys with waiting tasks, in turn order (a Set keeps insertion order: delete + add = to the back).
  const ring = new Set<string>();
  let running = 0;
  let held = 0;
  // Milliseconds one task takes, smoothed: the basis of Retry-After.
  let averageMs = 50;

  function startNext(): void {
    while (running < concurrency) {
      const key = ring.values().next();
      if (key.done === true) return;
      const lane = lanes.get(key.value)!;
      ring.delete(key.value);
      const resume = lane.waiting.shift()!;
      if (lane.waiting.length > 0) ring.add(key.value);
      running += 1;
      resume();
    }
  }

  function retryAfterSeconds(ahead: number): number {
    return Math.max(1, Math.ceil((ahead * averageMs) / concurrency / 1000));
  }

  return {
    async run<T>(key: string, task: () => Promise<T>, bounded = true): Promise<T> {
      let lane = lanes.get(key);
      if (bounded) {
        if ((lane?.held ?? 0) >= perKeyLimit) throw new PasswordCheckRefused('ip', retryAfterSeconds(lane!.held));
        if (held >= totalLimit) throw new PasswordCheckRefused('total', retryAfterSeconds(held));
      }
      if (lane === undefined) {
        lane = { held: 0, waiting: [] };
        lanes.set(key, lane);
      }
      lane.held += 1;
      held += 1;
      try {
        if (running < concurrency && ring.size === 0) running += 1;
        else {
          await new Promise<void>((resolve) => {
            lane.waiting.push(resolve);
            ring.add(key);
          });
        }
        const started = performance.now();
        try {
          return await task();
        } finally {
          averageMs = 0.8 * averageMs + 0.2 * (performance.now() - started);
          running -= 1;
          startNext();
        }
      } finally {
        lane.held -= 1;
        held -= 1;
        if (lane.held === 0) lanes.delete(key);
      }
    },
    /** Waiting or running now: all, or for one key. */
    held(key?: string): number {
      return key === undefined ? held : (lanes.get(key)?.held ?? 0);
    },
  };
}

export interface PasswordHasherOptions extends PasswordQueueOptions {
  readonly onProcessError?: (error: Error) => void;
}

export function createPasswordHasher(options: PasswordHasherOptions = {}): PasswordHasher & Pick<PasswordPool, 'close' | 'process' | 'counts'> {
  const queue = fairLimiter(options);
  const pool = createPasswordPool({ params: PASSWORD_PARAMS, threads: options.concurrency ?? DEFAULT_PASSWORD_QUEUE.concurrency, ...(options.onProcessError === undefined ? {} : { onProcessError: options.onProcessError }) });
  return {
    hash: (password) => queue.run(OPERATOR_KEY, () => pool.hash(password), false),
    async verify(hash, password, context) {
      // Refusal propagates (before any work); only the verify itself is guarded.
      return queue.run(context.clientIp, async () => {
        try {
          // Unknown account (no hash): a verify against a dummy hash, false.
          return await pool.verify(hash, password);
        } catch {
          // A malformed stored hash never authenticates.
          return false;
        }
      });
    },
    needsRehash: (hash) => !hash.startsWith('$argon2id$') || argon2.needsRehash(hash, PASSWORD_PARAMS),
    close: () => pool.close(),
    process: () => pool.process(),
    counts: () => pool.counts(),
  };
}
