import { FEW_RECOVERY_CODES, type SecondFactor } from '../accounts/second-factor.js';
import { recordAudit, type AuditContext } from '../audit/audit.js';
import { createCodeAttemptStore } from '../db/code-attempts.js';
import { auditContextOf, rememberDevice, verifiedOrReleased, type SecondFactorAttempt, type SignInParts, type SignInRequest } from './attempt.js';
import type { AttemptReservation } from './throttle.js';

/**
 * The second step of a sign-in that needs a second factor (SPEC §4): a TOTP code or a recovery
 * code for an enrolled person, or the first code of a new authenticator for one who must enroll.
 * Each post takes one of the attempt's five tries and is counted toward the lockout before the
 * code is checked; a TOTP time step is accepted once (replay refusal, accounts/second-factor.ts).
 */
export const MAX_CODE_FAILURES = 5;

/** What the second-factor page asks for. */
export type SecondFactorPrompt =
  /** A code from the enrolled authenticator or a recovery code; the count of recovery codes left when few are. */
  | { readonly kind: 'code'; readonly fewRecoveryCodes: number | undefined }
  /** Enrollment: the pending secret and its otpauth URI. */
  | { readonly kind: 'enroll'; readonly secret: string; readonly uri: string }
  /** Enrollment cannot start (a factor was confirmed meanwhile, or another enrollment won). */
  | { readonly kind: 'unavailable' };

export type SecondFactorOutcome =
  /** The right code (or the recovery codes were seen after enrollment). A Set-Cookie header when the device is remembered now. */
  | { readonly kind: 'signed_in'; readonly accountId: string; readonly deviceCookie: string | undefined }
  /** Enrollment confirmed: the recovery codes, shown once; the sign-in completes when the page continues. */
  | { readonly kind: 'enrolled'; readonly recoveryCodes: readonly string[]; readonly deviceCookie: string; readonly attempt: SecondFactorAttempt }
  /** Locked: no code was checked. `lastTry`: this used the attempt's fifth try, so it is over. */
  | { readonly kind: 'throttled'; readonly retryAfter: number; readonly lastTry: boolean }
  /** A wrong code (still counted toward the lockout). `lastTry`: as for throttled. */
  | { readonly kind: 'refused'; readonly lastTry: boolean }
  /** The attempt had no try left (or expired): nothing was checked. */
  | { readonly kind: 'no_tries_left' };

export interface SecondFactorSignIn {
  prompt(attempt: SecondFactorAttempt): Promise<SecondFactorPrompt>;
  submit(attempt: SecondFactorAttempt, code: string, request: SignInRequest): Promise<SecondFactorOutcome>;
}

export function createSecondFactorSignIn(parts: SignInParts & { readonly secondFactor: SecondFactor }): SecondFactorSignIn {
  const { db, throttle, counters, secondFactor } = parts;
  const codeAttempts = createCodeAttemptStore(db);

  /** The right code: the subject's failures are forgotten and the attempt closed, with the audit event when there is one. */
  async function closeAttempt(attempt: SecondFactorAttempt, reservation: AttemptReservation, event?: { method: string; audit: AuditContext }) {
    await db.transaction(async (tx) => {
      await throttle.succeeded(reservation, tx);
      await codeAttempts.close(attempt.attemptId, tx);
      if (event !== undefined) await recordAudit(tx, event.audit, { type: 'login.success', target: attempt.accountId, details: { second_factor: event.method } });
    });
  }

  /** The wrong code stays counted toward the lockout; five end this sign-in attempt. */
  async function refuseCode(attempt: SecondFactorAttempt, tries: number, accountLocked: boolean, audit: AuditContext): Promise<SecondFactorOutcome> {
    await db.transaction(async (tx) => {
      await recordAudit(tx, audit, { type: 'mfa.failure', target: attempt.accountId, outcome: 'failure', details: { failures: tries } });
      if (accountLocked) await recordAudit(tx, audit, { type: 'login.locked', target: attempt.accountId, outcome: 'failure' });
    });
    if (accountLocked) counters.lockouts.inc();
    counters.loginOutcomes.inc({ outcome: 'second_factor_failure' });
    return { kind: 'refused', lastTry: tries >= MAX_CODE_FAILURES };
  }

  async function checkCode(attempt: SecondFactorAttempt, code: string, reservation: AttemptReservation, request: SignInRequest, audit: AuditContext): Promise<SecondFactorOutcome | undefined> {
    const result = await verifiedOrReleased(throttle, reservation, () => secondFactor.verify(attempt.accountId, code, audit));
    if (!result.ok) return undefined;
    await closeAttempt(attempt, reservation, { method: result.method, audit });
    const deviceCookie = rememberDevice(parts.deviceCookies, request, attempt.normalized);
    counters.loginOutcomes.inc({ outcome: 'success' });
    return { kind: 'signed_in', accountId: attempt.accountId, deviceCookie };
  }

  async function confirmEnrollment(attempt: SecondFactorAttempt, code: string, reservation: AttemptReservation, request: SignInRequest, audit: AuditContext): Promise<SecondFactorOutcome | undefined> {
    const recoveryCodes = await verifiedOrReleased(throttle, reservation, () => secondFactor.confirmEnrollment(attempt.accountId, code, audit));
    if (recoveryCodes === undefined) return undefined;
    await closeAttempt(attempt, reservation);
    const deviceCookie = rememberDevice(parts.deviceCookies, request, attempt.normalized);
    return { kind: 'enrolled', recoveryCodes, deviceCookie, attempt: { ...attempt, enrolled: true } };
  }

  return {
    async prompt(attempt) {
      if (await secondFactor.isEnrolled(attempt.accountId)) {
        const remaining = await secondFactor.remainingRecoveryCodes(attempt.accountId);
        return { kind: 'code', fewRecoveryCodes: remaining <= FEW_RECOVERY_CODES ? remaining : undefined };
      }
      const enrollment = await secondFactor.enrollment(attempt.accountId, attempt.username);
      return enrollment === undefined ? { kind: 'unavailable' } : { kind: 'enroll', ...enrollment };
    },

    async submit(attempt, code, request) {
      // After enrollment the recovery-codes page continues here; its codes were checked already.
      if (attempt.enrolled === true) {
        counters.loginOutcomes.inc({ outcome: 'success' });
        return { kind: 'signed_in', accountId: attempt.accountId, deviceCookie: undefined };
      }
      // Each post takes one of the attempt's five tries before anything is checked (SPEC §4), in one
      // atomic update: concurrent posts, on any instance, get five tries between them.
      const tries = await codeAttempts.take(attempt.attemptId, attempt.accountId, MAX_CODE_FAILURES);
      if (tries === undefined) {
        counters.loginOutcomes.inc({ outcome: 'second_factor_failure' });
        return { kind: 'no_tries_left' };
      }
      // The code is counted toward the lockout before it is checked. While the account (or device,
      // or address) is locked no code is checked, so attempts opened before the lock cannot go on
      // guessing (SPEC §4); the refusal still used one of this attempt's five tries.
      const reserved = await throttle.reserveCode(attempt.subject, request.clientIp);
      if (!reserved.allowed) {
        counters.loginOutcomes.inc({ outcome: 'throttled' });
        return { kind: 'throttled', retryAfter: reserved.retryAfter, lastTry: tries >= MAX_CODE_FAILURES };
      }
      const audit = auditContextOf(request, attempt.accountId);
      const accepted = (await secondFactor.isEnrolled(attempt.accountId))
        ? await checkCode(attempt, code, reserved.reservation, request, audit)
        : await confirmEnrollment(attempt, code, reserved.reservation, request, audit);
      return accepted ?? refuseCode(attempt, tries, reserved.subjectLocked, audit);
    },
  };
}
