import type { Queryable } from '../db/database.js';
import { createLoginThrottleStore, type Reservation, type ThrottleKey, type ThrottlePolicy } from '../db/login-throttle.js';
import { createUserStore, type UserRow } from '../db/users.js';

/**
 * Brute-force slow-down (SPEC §4): after 5 failed passwords for one account within 15 minutes,
 * further attempts for it are refused for a growing delay (30 s, doubling, at most 15 min),
 * whatever the password. Failures per client IP are limited too, more loosely, since many
 * people can share an address. The account key uses the normalised username as typed, so an
 * unknown username is throttled exactly like a real one and reveals nothing.
 *
 * Every attempt is counted as a failure *before* its password or code is checked (one atomic
 * statement, see reservationSql), so concurrent guesses get no more tries than sequential ones,
 * on any number of instances; an attempt that turns out not to be a failure is taken back.
 *
 * A browser with a device cookie for the account (OWASP "device cookies", device-cookies.ts) is
 * counted under its own device key with the account's policy instead of the account key, so
 * failures from elsewhere do not lock it out, and its own failures lock only it.
 */
export const ACCOUNT_POLICY: ThrottlePolicy = { threshold: 5, windowSeconds: 15 * 60, baseDelaySeconds: 30, maxDelaySeconds: 15 * 60 };
export const DEVICE_POLICY: ThrottlePolicy = ACCOUNT_POLICY;
export const IP_POLICY: ThrottlePolicy = { threshold: 30, windowSeconds: 15 * 60, baseDelaySeconds: 60, maxDelaySeconds: 60 * 60 };

export const accountKey = (normalizedUsername: string) => `account:${normalizedUsername}`;
export const deviceKey = (nonce: string) => `device:${nonce}`;
const ipKey = (ip: string) => `ip:${ip}`;

/**
 * Whose counter an attempt is charged to: the account's (`account:<normalised username>`), or a
 * trusted browser's (`device:<nonce>`). Remembered between the password and the code steps.
 */
export type ThrottleSubject = string;

export function subjectFor(normalizedUsername: string, deviceNonce: string | undefined): ThrottleSubject {
  return deviceNonce === undefined ? accountKey(normalizedUsername) : deviceKey(deviceNonce);
}

/** An allowed attempt, already counted as a failure for its subject and its address. */
export interface AttemptReservation {
  readonly subject: Reservation;
  readonly address: Reservation;
}

export type ReservedAttempt =
  | { readonly allowed: true; readonly reservation: AttemptReservation; /** This attempt's count locked the subject. */ readonly subjectLocked: boolean }
  | { readonly allowed: false; /** Seconds until the lock ends. */ readonly retryAfter: number };

export interface LoginThrottle {
  /**
   * The password step's first statement: reserves the attempt for `subject` and the address and
   * reads the person's row (undefined when the username is unknown) in one round trip.
   */
  reservePassword(normalizedUsername: string, subject: ThrottleSubject, ip: string): Promise<ReservedAttempt & { readonly user: UserRow | undefined }>;
  /** The code step's reservation, for the subject the password step used. */
  reserveCode(subject: ThrottleSubject, ip: string): Promise<ReservedAttempt>;
  /** The attempt was no failure (a correct password before its second factor, or a check that never ran): taken back. */
  release(reservation: AttemptReservation, tx?: Queryable): Promise<void>;
  /** The sign-in completed: the subject's failures are forgotten, the attempt is taken back from the address. */
  succeeded(reservation: AttemptReservation, tx?: Queryable): Promise<void>;
}

function policyOf(subject: ThrottleSubject): ThrottlePolicy {
  return subject.startsWith('device:') ? DEVICE_POLICY : ACCOUNT_POLICY;
}

function keysFor(subject: ThrottleSubject, ip: string): ThrottleKey[] {
  return [
    { key: subject, policy: policyOf(subject) },
    { key: ipKey(ip), policy: IP_POLICY },
  ];
}

function outcome(lockedSeconds: number, reservations: readonly Reservation[]): ReservedAttempt {
  const [subject, address] = reservations;
  if (subject === undefined || address === undefined) return { allowed: false, retryAfter: Math.max(1, lockedSeconds) };
  return { allowed: true, reservation: { subject, address }, subjectLocked: subject.locked };
}

export function createLoginThrottle(db: Queryable): LoginThrottle {
  const store = createLoginThrottleStore(db);
  const users = createUserStore(db);
  return {
    async reservePassword(normalizedUsername, subject, ip) {
      const { user, lockedSeconds, reservations } = await users.findForSignIn(normalizedUsername, keysFor(subject, ip));
      return { ...outcome(lockedSeconds, reservations), user };
    },
    async reserveCode(subject, ip) {
      const { lockedSeconds, reservations } = await store.reserve(keysFor(subject, ip));
      return outcome(lockedSeconds, reservations);
    },
    release: (reservation, tx) => store.release([reservation.subject, reservation.address], tx),
    async succeeded(reservation, tx) {
      await store.forget(reservation.subject, tx);
      await store.release([reservation.address], tx);
    },
  };
}
