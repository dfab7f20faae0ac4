import { passkeyAmr, type Passkeys } from '../accounts/passkeys.js';
import { recordAudit } from '../audit/audit.js';
import { createUserStore } from '../db/users.js';
import { auditContextOf, rememberDevice, type SignInParts, type SignInRequest } from './attempt.js';
import type { PasskeyAnswer } from './second-factor-sign-in.js';

/**
 * "Sign in with a passkey" (SPEC §4): no username, no password. A discoverable credential with
 * user verification is both factors at once (something held, and the PIN or biometric that
 * unlocked it), so it satisfies the second-factor rule: acr `urn:gatehouse:acr:mfa`. Nothing here
 * can be guessed (a signature over this interaction's single-use challenge), so it is not charged
 * to the password lockout; the hosted pages' per-address rate limit still applies.
 */
export type PasskeySignInOutcome =
  | { readonly kind: 'signed_in'; readonly accountId: string; readonly deviceCookie: string; readonly amr: readonly string[] }
  /** Unknown or another origin's credential, no user verification, a counter gone backwards, a disabled person: one answer. */
  | { readonly kind: 'refused' };

export type PasskeySignIn = (answer: PasskeyAnswer & { readonly clientId: unknown }, request: SignInRequest) => Promise<PasskeySignInOutcome>;

export function createPasskeySignIn(parts: SignInParts & { readonly passkeys: Passkeys }): PasskeySignIn {
  const { db, counters, passkeys } = parts;
  const users = createUserStore(db);

  return async function signInWithPasskey(answer, request) {
    const audit = auditContextOf(request, null);
    const result = await passkeys.verifyAuthentication(answer.interactionUid, 'sign_in', answer.response, audit);
    const user = result.ok ? await users.findById(result.userId) : undefined;
    if (!result.ok || user === undefined || user.disabled) {
      const target = result.ok ? result.userId : 'unknown';
      const reason = result.ok ? 'disabled' : result.reason;
      await recordAudit(db, audit, { type: 'login.failure', target, outcome: 'failure', details: { client_id: answer.clientId, method: 'passkey', reason } });
      counters.loginOutcomes.inc({ outcome: 'failure' });
      return { kind: 'refused' };
    }
    await recordAudit(db, auditContextOf(request, user.id), {
      type: 'login.success',
      target: user.id,
      details: { client_id: answer.clientId, method: 'passkey', credential_id: result.credentialId },
    });
    counters.loginOutcomes.inc({ outcome: 'success' });
    const deviceCookie = rememberDevice(parts.deviceCookies, request, user.username_normalized);
    return { kind: 'signed_in', accountId: user.id, deviceCookie, amr: passkeyAmr(result.backedUp) };
  };
}
