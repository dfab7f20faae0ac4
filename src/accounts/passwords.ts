import argon2 from 'argon2';

/**
 * People's passwords: argon2id (SPEC §4, OWASP's minimum m=19 MiB, t=2, p=1).
 *
 * argon2 hashes on libuv's threadpool, so the event loop never waits. That pool (4 threads by
 * default) is shared with node:crypto's async work, which oidc-provider uses to sign tokens:
 * unbounded, a burst of sign-ins would occupy every thread and queue token signing behind it.
 * So at most `concurrency` hashes run at once (default: 2, one per core of our machines),
 * always leaving threads for token crypto; the rest wait here in FIFO order.
 */
export const PASSWORD_PARAMS = { type: argon2.argon2id, memoryCost: 19_456, timeCost: 2, parallelism: 1 } as const;

export const PASSWORD_MIN_LENGTH = 12;
export const PASSWORD_MAX_LENGTH = 1024;

export interface PasswordHasher {
  hash(password: string): Promise<string>;
  /** True when `password` matches `hash`. With no hash (unknown user) it spends the same time and returns false. */
  verify(hash: string | undefined, password: string): Promise<boolean>;
  /** True when the hash was made with weaker or different parameters and should be replaced. */
  needsRehash(hash: string): boolean;
}

function limiter(concurrency: number) {
  let running = 0;
  const waiting: (() => void)[] = [];
  return async function limited<T>(task: () => Promise<T>): Promise<T> {
    if (running >= concurrency) await new Promise<void>((resolve) => waiting.push(resolve));
    running += 1;
    try {
      return await task();
    } finally {
      running -= 1;
      waiting.shift()?.();
    }
  };
}

export async function createPasswordHasher(options: { concurrency?: number } = {}): Promise<PasswordHasher> {
  const limited = limiter(options.concurrency ?? 2);
  // Verified against when the account does not exist, so both paths cost one argon2 verify.
  const dummyHash = await argon2.hash('gatehouse dummy password for unknown accounts', PASSWORD_PARAMS);
  return {
    hash: (password) => limited(() => argon2.hash(password, PASSWORD_PARAMS)),
    async verify(hash, password) {
      const target = hash ?? dummyHash;
      try {
        const ok = await limited(() => argon2.verify(target, password));
        return ok && hash !== undefined;
      } catch {
        // A malformed stored hash never authenticates.
        return false;
      }
    },
    needsRehash: (hash) => !hash.startsWith('$argon2id$') || argon2.needsRehash(hash, PASSWORD_PARAMS),
  };
}
