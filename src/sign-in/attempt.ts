import type { Logger } from 'pino';
import type { AuditContext } from '../audit/audit.js';
import type { Database } from '../db/database.js';
import type { RequestWrites } from '../db/request-writes.js';
import type { DeviceCookies } from './device-cookies.js';
import type { AttemptReservation, LoginThrottle, ThrottleSubject } from './throttle.js';

/** What the sign-in steps know of the request: who asks, from where, with which device cookie. */
export interface SignInRequest {
  /** The client's address (ctx.ip): the throttle's and the password queue's key. */
  readonly clientIp: string;
  readonly requestId: string | null;
  /** Where audit events are also written as JSON lines, once committed. */
  readonly logger?: Logger | undefined;
  /** The browser's device cookie (device-cookies.ts) as sent, unverified. */
  readonly deviceCookie: string | undefined;
}

/**
 * Between a correct password and a correct second factor, who is signing in. The page keeps it
 * in the interaction (its `result`, which the provider replaces when the interaction finishes).
 */
export interface SecondFactorAttempt {
  readonly accountId: string;
  readonly username: string;
  /** The normalised username typed at the password step (its device cookie entry is for it). */
  readonly normalized: string;
  /** The counter the password step was charged to; codes are charged to it too. */
  readonly subject: ThrottleSubject;
  /** This attempt's row in sign_in_code_attempts: its five tries are counted there (SPEC §4). */
  readonly attemptId: string;
  /** Set once enrollment is confirmed and the recovery codes were shown. */
  readonly enrolled?: boolean;
  /** The enrolled factor's methods (RFC 8176), for the sign-in the recovery-codes page continues: `otp` unless a passkey. */
  readonly enrolledAmr?: readonly string[];
  /** The first factor was an upstream identity provider (SPEC §10), not a password. */
  readonly federated?: boolean;
}

/** The sign-in counters of src/http/metrics.ts, as far as sign-in uses them. */
export interface SignInCounters {
  readonly loginOutcomes: { inc(labels: { outcome: string }): void };
  readonly lockouts: { inc(): void };
}

/** What both sign-in steps are built from. */
export interface SignInParts {
  readonly db: Database;
  /** A completed step's audit transaction commits with the request's other writes (src/db/request-writes.ts). */
  readonly writes: RequestWrites;
  readonly throttle: LoginThrottle;
  readonly deviceCookies: DeviceCookies;
  readonly counters: SignInCounters;
}

export function auditContextOf(request: SignInRequest, actor: string | null): AuditContext {
  return { actor, clientIp: request.clientIp || null, requestId: request.requestId, logger: request.logger };
}

/** Runs a check the attempt was reserved for; when it throws (it never ran to a verdict), the try is taken back. */
export async function verifiedOrReleased<T>(throttle: LoginThrottle, reservation: AttemptReservation, check: () => Promise<T>): Promise<T> {
  try {
    return await check();
  } catch (error) {
    await throttle.release(reservation).catch(() => undefined);
    throw error;
  }
}

/**
 * A completed sign-in (password, and second factor when asked): the Set-Cookie header of a fresh
 * device cookie entry for the account. The counter of the entry it replaces was forgotten with the success.
 */
export function rememberDevice(deviceCookies: DeviceCookies, request: SignInRequest, normalized: string): string {
  return deviceCookies.header(deviceCookies.issue(request.deviceCookie, normalized).value);
}

