import { passkeyAmr, type Passkeys } from '../accounts/passkeys.js';
import { FEW_RECOVERY_CODES, RECOVERY_CODE_COUNT, type SecondFactor } from '../accounts/second-factor.js';
import { recordAudit, type AuditContext } from '../audit/audit.js';
import { createCodeAttemptStore } from '../db/code-attempts.js';
import { createSecondFactorStore } from '../db/second-factor.js';
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
  /**
   * A code from the enrolled authenticator or a recovery code; the count of recovery codes left
   * when few are; `passkey`: the person has one, so the page offers it.
   */
  | { readonly kind: 'code'; readonly fewRecoveryCodes: number | undefined; readonly passkey: boolean }
  /** Enrollment: the pending secret and its otpauth URI; `passkey`: a passkey may be registered instead. */
  | { readonly kind: 'enroll'; readonly secret: string; readonly uri: string; readonly passkey: boolean }
  /** Enrollment cannot start (a factor was confirmed meanwhile, or another enrollment won). */
  | { readonly kind: 'unavailable' };

export type SecondFactorOutcome =
  /**
   * The right code or passkey (or the recovery codes were seen after enrollment). A Set-Cookie
   * header when the device is remembered now; `amr`: the second factor's methods (RFC 8176).
   */
  | { readonly kind: 'signed_in'; readonly accountId: string; readonly deviceCookie: string | undefined; readonly amr: readonly string[] }
  /** Enrollment confirmed: the recovery codes, shown once; the sign-in completes when the page continues. */
  | { readonly kind: 'enrolled'; readonly recoveryCodes: readonly string[]; readonly deviceCookie: string; readonly attempt: SecondFactorAttempt }
  /** Locked: no code was checked. `lastTry`: this used the attempt's fifth try, so it is over. */
  | { readonly kind: 'throttled'; readonly retryAfter: number; readonly lastTry: boolean }
  /** A wrong code (still counted toward the lockout). `lastTry`: as for throttled. */
  | { readonly kind: 'refused'; readonly lastTry: boolean }
  /** The attempt had no try left (or expired): nothing was checked. */
  | { readonly kind: 'no_tries_left' };

/** A passkey answer at this step: the browser's JSON, for the interaction whose challenge it signed. */
export interface PasskeyAnswer {
  readonly interactionUid: string;
  readonly response: string;
  /** Registration: the name the person gave it. */
  readonly name?: string;
}

export interface SecondFactorSignIn {
  prompt(attempt: SecondFactorAttempt): Promise<SecondFactorPrompt>;
  submit(attempt: SecondFactorAttempt, code: string, request: SignInRequest): Promise<SecondFactorOutcome>;
  /** A passkey as the second factor (SPEC §4), counted like a code. */
  submitPasskey(attempt: SecondFactorAttempt, answer: PasskeyAnswer, request: SignInRequest): Promise<SecondFactorOutcome>;
  /** Enrollment with a passkey instead of an authenticator app: recovery codes are issued as for TOTP. */
  enrollPasskey(attempt: SecondFactorAttempt, answer: PasskeyAnswer, request: SignInRequest): Promise<SecondFactorOutcome>;
}

/** What one try at this step checks, once its try is taken and the throttle allows it; undefined: refused. */
type Check = (reservation: AttemptReservation, audit: AuditContext) => Promise<SecondFactorOutcome | undefined>;

export function createSecondFactorSignIn(parts: SignInParts & { readonly secondFactor: SecondFactor; readonly passkeys: Passkeys }): SecondFactorSignIn {
  const { db, throttle, counters, secondFactor, passkeys } = parts;
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
    return { kind: 'signed_in', accountId: attempt.accountId, deviceCookie, amr: ['otp'] };
  }

  async function checkPasskey(attempt: SecondFactorAttempt, answer: PasskeyAnswer, reservation: AttemptReservation, request: SignInRequest, audit: AuditContext): Promise<SecondFactorOutcome | undefined> {
    const result = await verifiedOrReleased(throttle, reservation, () => passkeys.verifyAuthentication(answer.interactionUid, 'second_factor', answer.response, audit, attempt.accountId));
    if (!result.ok) return undefined;
    await closeAttempt(attempt, reservation, { method: 'passkey', audit });
    const deviceCookie = rememberDevice(parts.deviceCookies, request, attempt.normalized);
    counters.loginOutcomes.inc({ outcome: 'success' });
    return { kind: 'signed_in', accountId: attempt.accountId, deviceCookie, amr: passkeyAmr(result.backedUp) };
  }

  async function registerPasskey(attempt: SecondFactorAttempt, answer: PasskeyAnswer, reservation: AttemptReservation, request: SignInRequest, audit: AuditContext): Promise<SecondFactorOutcome | undefined> {
    const result = await verifiedOrReleased(throttle, reservation, () => passkeys.verifyRegistration(answer.interactionUid, attempt.accountId, answer.response, answer.name ?? ''));
    if (!result.ok) return undefined;
    const recoveryCodes = await db.transaction(async (tx) => {
      // Enrolled meanwhile (another tab confirmed a factor), or the credential is registered already: refused.
      if (await createSecondFactorStore(tx).isEnrolled(attempt.accountId)) return undefined;
      if (!(await result.save(tx))) return undefined;
      const codes = await secondFactor.issueRecoveryCodes(tx, attempt.accountId);
      await recordAudit(tx, audit, { type: 'mfa.enrolled', target: attempt.accountId, details: { factor: 'passkey', credential_id: result.credentialId, recovery_codes: RECOVERY_CODE_COUNT } });
      await throttle.succeeded(reservation, tx);
      await codeAttempts.close(attempt.attemptId, tx);
      return codes;
    });
    if (recoveryCodes === undefined) return undefined;
    const deviceCookie = rememberDevice(parts.deviceCookies, request, attempt.normalized);
    return { kind: 'enrolled', recoveryCodes, deviceCookie, attempt: { ...attempt, enrolled: true, enrolledAmr: passkeyAmr(result.backedUp) } };
  }

  /**
   * One try at this step (SPEC §4): it takes one of the attempt's five tries before anything is
   * checked, in one atomic update (concurrent posts, on any instance, get five tries between
   * them), and is counted toward the lockout before it is checked. While the account (or device,
   * or address) is locked nothing is checked, so attempts opened before the lock cannot go on
   * guessing; the refusal still used one of this attempt's five tries.
   */
  async function oneTry(attempt: SecondFactorAttempt, request: SignInRequest, check: Check): Promise<SecondFactorOutcome> {
    const tries = await codeAttempts.take(attempt.attemptId, attempt.accountId, MAX_CODE_FAILURES);
    if (tries === undefined) {
      counters.loginOutcomes.inc({ outcome: 'second_factor_failure' });
      return { kind: 'no_tries_left' };
    }
    const reserved = await throttle.reserveCode(attempt.subject, request.clientIp);
    if (!reserved.allowed) {
      counters.loginOutcomes.inc({ outcome: 'throttled' });
      return { kind: 'throttled', retryAfter: reserved.retryAfter, lastTry: tries >= MAX_CODE_FAILURES };
    }
    const audit = auditContextOf(request, attempt.accountId);
    const accepted = await check(reserved.reservation, audit);
    return accepted ?? refuseCode(attempt, tries, reserved.subjectLocked, audit);
  }

  /** After enrollment the recovery-codes page continues here; its factor was checked already. */
  function continueAfterEnrollment(attempt: SecondFactorAttempt): SecondFactorOutcome {
    counters.loginOutcomes.inc({ outcome: 'success' });
    return { kind: 'signed_in', accountId: attempt.accountId, deviceCookie: undefined, amr: attempt.enrolledAmr ?? ['otp'] };
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
        const passkey = passkeys.available && (await passkeys.hasPasskey(attempt.accountId));
        return { kind: 'code', fewRecoveryCodes: remaining <= FEW_RECOVERY_CODES ? remaining : undefined, passkey };
      }
      const enrollment = await secondFactor.enrollment(attempt.accountId, attempt.username);
      return enrollment === undefined ? { kind: 'unavailable' } : { kind: 'enroll', ...enrollment, passkey: passkeys.available };
    },

    async submitPasskey(attempt, answer, request) {
      if (attempt.enrolled === true) return continueAfterEnrollment(attempt);
      return oneTry(attempt, request, (reservation, audit) => checkPasskey(attempt, answer, reservation, request, audit));
    },

    async enrollPasskey(attempt, answer, request) {
      if (attempt.enrolled === true) return continueAfterEnrollment(attempt);
      return oneTry(attempt, request, async (reservation, audit) =>
        (await secondFactor.isEnrolled(attempt.accountId)) ? undefined : registerPasskey(attempt, answer, reservation, request, audit),
      );
    },

    async submit(attempt, code, request) {
      if (attempt.enrolled === true) return continueAfterEnrollment(attempt);
      return oneTry(attempt, request, async (reservation, audit) =>
        (await secondFactor.isEnrolled(attempt.accountId))
          ? checkCode(attempt, code, reservation, request, audit)
          : confirmEnrollment(attempt, code, reservation, request, audit),
      );
    },
  };
}
