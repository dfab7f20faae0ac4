import type { Queryable } from '../db/database.js';
import { createLoginThrottleStore, type ThrottlePolicy } from '../db/login-throttle.js';
import { createUserStore, type UserRow } from '../db/users.js';

/**
 * Brute-force slow-down (SPEC §4): after 5 failed passwords for one account within 15 minutes,
 * further attempts for it are refused for a growing delay (30 s, doubling, at most 15 min),
 * whatever the password. Failures per client IP are limited too, more loosely, since many
 * people can share an address. The account key uses the normalised username as typed, so an
 * unknown username is throttled exactly like a real one and reveals nothing.
 */
export const ACCOUNT_POLICY: ThrottlePolicy = { threshold: 5, windowSeconds: 15 * 60, baseDelaySeconds: 30, maxDelaySeconds: 15 * 60 };
export const IP_POLICY: ThrottlePolicy = { threshold: 30, windowSeconds: 15 * 60, baseDelaySeconds: 60, maxDelaySeconds: 60 * 60 };

const accountKey = (normalizedUsername: string) => `account:${normalizedUsername}`;
const ipKey = (ip: string) => `ip:${ip}`;

/** The throttle check and the account's row, read together at the start of a password sign-in. */
export interface SignInCheck {
  /** Seconds the attempt must wait, or 0 when it may proceed. */
  readonly retryAfter: number;
  /** The person signing in; undefined when the username is unknown. */
  readonly user: UserRow | undefined;
  /** Failures are counted for the account: a successful sign-in must clear them. */
  readonly accountCounted: boolean;
}

export interface LoginThrottle {
  /** Seconds the attempt must wait, or 0 when it may proceed. */
  retryAfter(normalizedUsername: string, ip: string): Promise<number>;
  /** `retryAfter` and the account's row in one round trip (the password step's first read). */
  check(normalizedUsername: string, ip: string): Promise<SignInCheck>;
  /** Records a failure; `lockedNow` is true when this failure locked the account. */
  failed(normalizedUsername: string, ip: string): Promise<{ accountLocked: boolean; ipLocked: boolean }>;
  /** Forgets the account's failures; `tx`: the transaction of the sign-in's audit event. */
  succeeded(normalizedUsername: string, tx?: Queryable): Promise<void>;
}

export function createLoginThrottle(db: Queryable): LoginThrottle {
  const store = createLoginThrottleStore(db);
  const users = createUserStore(db);
  return {
    retryAfter: (username, ip) => store.lockedFor([accountKey(username), ipKey(ip)]),
    async check(username, ip) {
      const { user, lockedSeconds, counted } = await users.findForSignIn(username, { keys: [accountKey(username), ipKey(ip)], countedKey: accountKey(username) });
      return { retryAfter: lockedSeconds, user, accountCounted: counted };
    },
    async failed(username, ip) {
      const [account, address] = await store.recordFailures([
        { key: accountKey(username), policy: ACCOUNT_POLICY },
        { key: ipKey(ip), policy: IP_POLICY },
      ]);
      return { accountLocked: account!.locked, ipLocked: address!.locked };
    },
    succeeded: (username, tx) => store.reset(accountKey(username), tx),
  };
}
