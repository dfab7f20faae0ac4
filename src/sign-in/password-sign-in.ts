import { randomBytes } from 'node:crypto';
import { secondFactorRequired } from '../accounts/mfa-policy.js';
import { PasswordCheckRefused, type PasswordHasher } from '../accounts/passwords.js';
import { normalizeUsername } from '../accounts/usernames.js';
import { recordAudit } from '../audit/audit.js';
import type { Queryable } from '../db/database.js';
import { createCodeAttemptStore } from '../db/code-attempts.js';
import { createUserStore, type UserRow } from '../db/users.js';
import { auditContextOf, rememberDevice, verifiedOrReleased, type SecondFactorAttempt, type SignInParts, type SignInRequest } from './attempt.js';
import { subjectFor, type AttemptReservation } from './throttle.js';

/**
 * The password step of a sign-in (SPEC §4): the attempt is counted before the password is
 * checked, one argon2 verify runs in the fair password queue (against a dummy hash for an unknown
 * user), a correct password is rehashed when its parameters are outdated, and the second-factor
 * rule decides whether the sign-in completes now. Every outcome is audited.
 */
export interface PasswordSignInInput {
  /** As typed (the page refused empty or oversized input). */
  readonly username: string;
  readonly password: string;
  /** The authorization request's client_id, for the audit event. */
  readonly clientId: unknown;
  /** The client's require_mfa. */
  readonly clientRequiresMfa: boolean;
  /** The authorization request's acr_values. */
  readonly acrValues: unknown;
  /** When the interaction expires (seconds since the epoch): a second-factor attempt lives as long. */
  readonly interactionExpiresAt: number;
}

export type PasswordSignInOutcome =
  /** Refused before the check: the account, device or address is locked, or the password queue is full for it. */
  | { readonly kind: 'throttled'; /** Whole seconds. */ readonly retryAfter: number }
  /** Unknown user, wrong password or disabled account: one answer for all three. */
  | { readonly kind: 'refused' }
  /** The password was right; a second factor (or its enrollment) completes the sign-in. */
  | { readonly kind: 'second_factor_required'; readonly attempt: SecondFactorAttempt }
  | { readonly kind: 'signed_in'; readonly accountId: string; /** A Set-Cookie header: the device cookie. */ readonly deviceCookie: string };

export type PasswordSignIn = (input: PasswordSignInInput, request: SignInRequest) => Promise<PasswordSignInOutcome>;

export function createPasswordSignIn(parts: SignInParts & { readonly passwords: PasswordHasher }): PasswordSignIn {
  const { db, throttle, counters } = parts;
  const users = createUserStore(db);

  function throttled(retryAfter: number): PasswordSignInOutcome {
    counters.loginOutcomes.inc({ outcome: 'throttled' });
    return { kind: 'throttled', retryAfter };
  }

  /** Always one argon2 verify, against a dummy hash when the user is unknown: same time either way. */
  async function checkPassword(user: UserRow | undefined, password: string, reservation: AttemptReservation, request: SignInRequest): Promise<boolean | PasswordCheckRefused> {
    try {
      return await verifiedOrReleased(throttle, reservation, () => parts.passwords.verify(user?.password_hash, password, { clientIp: request.clientIp }));
    } catch (error) {
      // SPEC §4: this address has its share of the password queue already (or the queue is full).
      if (error instanceof PasswordCheckRefused) return error;
      throw error;
    }
  }

  /** The attempt was counted by its reservation already; whether that locked the account is known from it. */
  async function refuse(user: UserRow | undefined, accountLocked: boolean, input: PasswordSignInInput, request: SignInRequest): Promise<PasswordSignInOutcome> {
    const context = auditContextOf(request, user?.id ?? null);
    const failure = (tx: Queryable) =>
      recordAudit(tx, context, { type: 'login.failure', target: user?.id ?? 'unknown', outcome: 'failure', details: { client_id: input.clientId } });
    if (accountLocked) {
      await db.transaction(async (tx) => {
        await failure(tx);
        await recordAudit(tx, context, { type: 'login.locked', target: user?.id ?? 'unknown', outcome: 'failure' });
      });
    } else {
      await failure(db);
    }
    counters.loginOutcomes.inc({ outcome: accountLocked ? 'locked' : 'failure' });
    if (accountLocked) counters.lockouts.inc();
    return { kind: 'refused' };
  }

  async function rehashWhenOutdated(user: UserRow, password: string): Promise<void> {
    if (parts.passwords.needsRehash(user.password_hash)) {
      await users.setPasswordHash(user.id, await parts.passwords.hash(password), { changed: false });
    }
  }

  /**
   * No second factor asked: the subject's failures are forgotten with the success, in its audit
   * transaction, which is also the one that stores the finished interaction when the page runs in
   * the request's writes (src/db/request-writes.ts).
   */
  async function complete(user: UserRow, normalized: string, reservation: AttemptReservation, input: PasswordSignInInput, request: SignInRequest): Promise<PasswordSignInOutcome> {
    await parts.writes.transaction(async (tx) => {
      await recordAudit(tx, auditContextOf(request, user.id), { type: 'login.success', target: user.id, details: { client_id: input.clientId } });
      await throttle.succeeded(reservation, tx);
    });
    const deviceCookie = rememberDevice(parts.deviceCookies, request, normalized);
    counters.loginOutcomes.inc({ outcome: 'success' });
    return { kind: 'signed_in', accountId: user.id, deviceCookie };
  }

  /**
   * The right password is no failure, but earlier failures are forgotten only once the second
   * factor is right: wrong codes count toward the lockout, and a new attempt with the known
   * password must not wipe them.
   */
  async function openSecondFactorAttempt(
    user: UserRow,
    normalized: string,
    subject: string,
    reservation: AttemptReservation,
    input: PasswordSignInInput,
    request: SignInRequest,
  ): Promise<PasswordSignInOutcome> {
    const attemptId = randomBytes(16).toString('base64url');
    // With the interaction that remembers the attempt, as in complete().
    await parts.writes.transaction(async (tx) => {
      await recordAudit(tx, auditContextOf(request, user.id), { type: 'login.success', target: user.id, details: { client_id: input.clientId } });
      await throttle.release(reservation, tx);
      // As long as the interaction lives (its expiry does not move when it is saved again).
      await createCodeAttemptStore(tx).open(attemptId, user.id, Math.max(60, input.interactionExpiresAt - Math.floor(Date.now() / 1000)) + 60);
    });
    return { kind: 'second_factor_required', attempt: { accountId: user.id, username: user.username, normalized, subject, attemptId } };
  }

  return async function signInWithPassword(input, request) {
    const normalized = normalizeUsername(input.username);
    // A browser that signed in to this account before is charged to its own counter (OWASP device
    // cookies); anyone else to the account's (SPEC §4).
    const subject = subjectFor(normalized, parts.deviceCookies.nonceFor(request.deviceCookie, normalized));
    // The attempt is counted before the password is checked, and the account read, in one statement.
    const attempt = await throttle.reservePassword(normalized, subject, request.clientIp);
    if (!attempt.allowed) return throttled(attempt.retryAfter);
    const { user, reservation } = attempt;

    const verdict = await checkPassword(user, input.password, reservation, request);
    if (verdict instanceof PasswordCheckRefused) return throttled(verdict.retryAfterSeconds);
    if (user === undefined || !verdict || user.disabled) return refuse(user, attempt.subjectLocked, input, request);

    await rehashWhenOutdated(user, input.password);
    const needsSecondFactor = secondFactorRequired({
      userRequiresMfa: user.mfa_required,
      clientRequiresMfa: input.clientRequiresMfa,
      acrValues: input.acrValues,
      enrolled: user.mfa_enrolled,
    });
    if (!needsSecondFactor) return complete(user, normalized, reservation, input, request);
    return openSecondFactorAttempt(user, normalized, subject, reservation, input, request);
  };
}
