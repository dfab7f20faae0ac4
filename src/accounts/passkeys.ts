import { isIP } from 'node:net';
import type * as WebAuthnLibrary from '@simplewebauthn/server';
import type {
  AuthenticationResponseJSON,
  PublicKeyCredentialCreationOptionsJSON,
  PublicKeyCredentialRequestOptionsJSON,
  RegistrationResponseJSON,
} from '@simplewebauthn/server';
import { z } from 'zod';
import { recordAudit, type AuditContext } from '../audit/audit.js';
import type { Database, Queryable } from '../db/database.js';
import { createPasskeyStore, type PasskeyCeremony } from '../db/passkeys.js';

/**
 * The WebAuthn library is loaded by the first ceremony, not at start: with its ASN.1 and X.509
 * stack it takes about 150 ms to load, a sixth of start-up (bench/README.md), which the first
 * passkey request of a process pays instead.
 */
let webAuthn: Promise<typeof WebAuthnLibrary> | undefined;
const loadWebAuthn = () => (webAuthn ??= import('@simplewebauthn/server'));

/**
 * Passkeys (WebAuthn Level 3, SPEC §4) through @simplewebauthn/server: the relying party is the
 * issuer (id = its host, origin = its origin), challenges are single-use, bound to the
 * interaction and short-lived (migrations/0016), and an assertion whose signature counter does
 * not move forward is refused and audited (a cloned authenticator, WebAuthn §6.1.1).
 */

/** EdDSA (Chromium's virtual authenticator chooses it), ES256 and RS256: what the library verifies and authenticators use. */
export const SUPPORTED_ALGORITHMS = [-8, -7, -257] as const;
/** How long a ceremony may take, in the browser and for its challenge here. */
export const CEREMONY_TIMEOUT_SECONDS = 300;

export interface RelyingParty {
  readonly id: string;
  readonly origin: string;
  readonly name: string;
}

/**
 * The relying party for `issuer`, or undefined when browsers refuse WebAuthn there: an IP address
 * cannot be an RP ID (WebAuthn §5.1.4, "a valid domain string"), and outside https only
 * `localhost` is a secure context.
 */
export function relyingPartyOf(issuer: string): RelyingParty | undefined {
  const url = new URL(issuer);
  const host = url.hostname;
  if (isIP(host.replace(/^\[|\]$/g, '')) !== 0) return undefined;
  const local = host === 'localhost' || host.endsWith('.localhost');
  if (url.protocol !== 'https:' && !local) return undefined;
  return { id: host, origin: url.origin, name: host };
}

/** The browser's answer as posted by views/static/passkeys.js: the shape is checked, the content by the library. */
const credentialResponse = z.object({
  id: z.string().min(1).max(1024),
  rawId: z.string().min(1).max(1024),
  type: z.literal('public-key'),
  response: z.record(z.string(), z.unknown()),
  clientExtensionResults: z.record(z.string(), z.unknown()).default({}),
  authenticatorAttachment: z.string().optional(),
});

function parseResponse(json: string): z.infer<typeof credentialResponse> | undefined {
  if (json.length > 64 * 1024) return undefined;
  try {
    const parsed = credentialResponse.safeParse(JSON.parse(json));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}

/** A passkey's name as stored: trimmed, at most 64 characters (empty when none was given). */
export function passkeyName(name: string): string {
  return [...name.trim()].slice(0, PASSKEY_NAME_MAX_LENGTH).join('').trim();
}

export const PASSKEY_NAME_MAX_LENGTH = 64;

/** RFC 8176: `swk` for a backed-up (synced) passkey, `hwk` for one bound to its device; `user`: presence was tested. */
export function passkeyAmr(backedUp: boolean): readonly ['hwk' | 'swk', 'user'] {
  return [backedUp ? 'swk' : 'hwk', 'user'];
}

export type PasskeyRefusal =
  /** No challenge for this interaction and ceremony (none asked, already used, or expired). */
  | 'no_challenge'
  /** The browser's answer is malformed, for another origin or RP ID, badly signed, or without user verification where required. */
  | 'invalid'
  /** The credential is not registered (or, at the second factor, is another person's). */
  | 'unknown_credential'
  /** The signature counter did not move forward: a cloned authenticator. */
  | 'counter'
  /** Registration: the credential id is registered already. */
  | 'duplicate';

export type VerifiedRegistration =
  | {
      readonly ok: true;
      /** Stores the passkey in the caller's transaction (with the enrollment's recovery codes and audit event). */
      readonly save: (tx: Queryable) => Promise<boolean>;
      readonly credentialId: string;
      readonly backedUp: boolean;
      readonly response: RegistrationResponseJSON;
    }
  | { readonly ok: false; readonly reason: PasskeyRefusal };

export type VerifiedAuthentication =
  | { readonly ok: true; readonly userId: string; readonly credentialId: string; readonly backedUp: boolean; readonly userVerified: boolean }
  | { readonly ok: false; readonly reason: PasskeyRefusal };

const userHandle = (userId: string) => new TextEncoder().encode(userId);

export function createPasskeys(deps: { readonly db: Database; readonly issuer: string }) {
  const rp = relyingPartyOf(deps.issuer);
  const store = createPasskeyStore(deps.db);

  function requireRp(): RelyingParty {
    if (rp === undefined) throw new Error('passkeys are unavailable for this issuer');
    return rp;
  }

  return {
    /** False for an issuer on an IP address (or plain http off localhost): the pages say passkeys are unavailable. */
    available: rp !== undefined,
    relyingParty: rp,
    hasPasskey: (userId: string) => store.hasAny(userId),
    list: (userId: string) => store.listForUser(userId),

    /**
     * Options for registering a passkey that also signs in without a password: a discoverable
     * credential (residentKey required) with user verification required.
     */
    async registrationOptions(interactionUid: string, user: { readonly id: string; readonly username: string }): Promise<PublicKeyCredentialCreationOptionsJSON> {
      const party = requireRp();
      const existing = await store.listForUser(user.id);
      const { generateRegistrationOptions } = await loadWebAuthn();
      const options = await generateRegistrationOptions({
        rpName: party.name,
        rpID: party.id,
        userName: user.username,
        userID: userHandle(user.id),
        timeout: CEREMONY_TIMEOUT_SECONDS * 1000,
        attestationType: 'none',
        excludeCredentials: existing.map((row) => ({ id: row.credential_id, transports: row.transports })),
        authenticatorSelection: { residentKey: 'required', userVerification: 'required' },
        supportedAlgorithmIDs: [...SUPPORTED_ALGORITHMS],
      });
      await store.saveChallenge(interactionUid, 'register', options.challenge, user.id, CEREMONY_TIMEOUT_SECONDS);
      return options;
    },

    /** Checks a registration against this interaction's challenge; the caller stores it with `save`. */
    async verifyRegistration(interactionUid: string, userId: string, json: string, name: string): Promise<VerifiedRegistration> {
      const party = requireRp();
      const response = parseResponse(json) as RegistrationResponseJSON | undefined;
      // The challenge is taken first, even for a malformed answer: one answer per challenge.
      const challenge = await store.takeChallenge(interactionUid, 'register');
      if (challenge === undefined || challenge.userId !== userId) return { ok: false, reason: 'no_challenge' };
      if (response === undefined) return { ok: false, reason: 'invalid' };
      const { verifyRegistrationResponse } = await loadWebAuthn();
      let verified;
      try {
        verified = await verifyRegistrationResponse({
          response,
          expectedChallenge: challenge.challenge,
          expectedOrigin: party.origin,
          expectedRPID: party.id,
          requireUserVerification: true,
          supportedAlgorithmIDs: [...SUPPORTED_ALGORITHMS],
        });
      } catch {
        // The library throws for every malformed or mismatching part (origin, RP ID, challenge, signature).
        return { ok: false, reason: 'invalid' };
      }
      if (!verified.verified) return { ok: false, reason: 'invalid' };
      const info = verified.registrationInfo;
      const credential = info.credential;
      return {
        ok: true,
        credentialId: credential.id,
        backedUp: info.credentialBackedUp,
        response,
        save: (tx) =>
          createPasskeyStore(tx).insert({
            credentialId: credential.id,
            userId,
            publicKey: credential.publicKey,
            signCount: credential.counter,
            transports: credential.transports ?? [],
            backupEligible: info.credentialDeviceType === 'multiDevice',
            backedUp: info.credentialBackedUp,
            name: passkeyName(name) || 'Passkey',
          }),
      };
    },

    /**
     * Options for an assertion: at the second factor, the person's own passkeys (user
     * verification preferred: the password was the first factor); for a sign-in without a
     * username, any discoverable passkey, with user verification required.
     */
    async authenticationOptions(interactionUid: string, ceremony: Exclude<PasskeyCeremony, 'register'>, userId?: string): Promise<PublicKeyCredentialRequestOptionsJSON> {
      const party = requireRp();
      const allow = ceremony === 'second_factor' && userId !== undefined ? await store.listForUser(userId) : [];
      const { generateAuthenticationOptions } = await loadWebAuthn();
      const options = await generateAuthenticationOptions({
        rpID: party.id,
        timeout: CEREMONY_TIMEOUT_SECONDS * 1000,
        userVerification: ceremony === 'sign_in' ? 'required' : 'preferred',
        allowCredentials: allow.map((row) => ({ id: row.credential_id, transports: row.transports })),
      });
      await store.saveChallenge(interactionUid, ceremony, options.challenge, userId ?? null, CEREMONY_TIMEOUT_SECONDS);
      return options;
    },

    /**
     * Checks an assertion against this interaction's challenge and the stored credential, and
     * moves its counter forward. `userId`: at the second factor, whose passkey it must be.
     */
    async verifyAuthentication(
      interactionUid: string,
      ceremony: Exclude<PasskeyCeremony, 'register'>,
      json: string,
      audit: AuditContext,
      userId?: string,
    ): Promise<VerifiedAuthentication> {
      const party = requireRp();
      const response = parseResponse(json) as AuthenticationResponseJSON | undefined;
      const challenge = await store.takeChallenge(interactionUid, ceremony);
      if (challenge === undefined || (userId !== undefined && challenge.userId !== userId)) return { ok: false, reason: 'no_challenge' };
      if (response === undefined) return { ok: false, reason: 'invalid' };
      const stored = await store.find(response.id);
      if (stored === undefined || (userId !== undefined && stored.user_id !== userId)) return { ok: false, reason: 'unknown_credential' };
      // A discoverable credential names its person (WebAuthn §7.2 step 6): it must be the owner.
      if (response.response.userHandle !== undefined && response.response.userHandle !== Buffer.from(userHandle(stored.user_id)).toString('base64url')) {
        return { ok: false, reason: 'unknown_credential' };
      }
      const { verifyAuthenticationResponse } = await loadWebAuthn();
      let verified;
      try {
        verified = await verifyAuthenticationResponse({
          response,
          expectedChallenge: challenge.challenge,
          expectedOrigin: party.origin,
          expectedRPID: party.id,
          requireUserVerification: ceremony === 'sign_in',
          // Counter 0 here: the library then checks only the signature, and the counter rule is
          // ours below, so that a counter going backwards is told apart (and audited).
          credential: { id: stored.credential_id, publicKey: new Uint8Array(stored.public_key), counter: 0, transports: stored.transports },
        });
      } catch {
        return { ok: false, reason: 'invalid' };
      }
      if (!verified.verified) return { ok: false, reason: 'invalid' };
      const info = verified.authenticationInfo;
      // WebAuthn §6.1.1: a counter that does not grow (when either is non-zero) signals a clone.
      if (!(await store.recordUse(stored.credential_id, info.newCounter, info.credentialBackedUp))) {
        await recordAudit(deps.db, audit, {
          type: 'passkey.counter_regressed',
          target: stored.user_id,
          outcome: 'failure',
          details: { credential_id: stored.credential_id, stored_counter: stored.sign_count, received_counter: info.newCounter },
        });
        return { ok: false, reason: 'counter' };
      }
      return { ok: true, userId: stored.user_id, credentialId: stored.credential_id, backedUp: info.credentialBackedUp, userVerified: info.userVerified };
    },
  };
}

export type Passkeys = ReturnType<typeof createPasskeys>;
