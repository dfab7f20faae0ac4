import type { Passkeys } from '../accounts/passkeys.js';
import type { PasswordHasher } from '../accounts/passwords.js';
import type { Envelope } from '../crypto/envelope.js';
import type { Upstreams } from '../federation/upstream.js';
import { createFederatedSignIn, type FederatedSignIn } from './federated-sign-in.js';
import { createEnabledProviders, type EnabledProviders } from '../federation/enabled-providers.js';
import type { SecondFactor } from '../accounts/second-factor.js';
import type { Database } from '../db/database.js';
import { createRequestWrites, type RequestWrites } from '../db/request-writes.js';
import type { SignInCounters } from './attempt.js';
import type { DeviceCookies } from './device-cookies.js';
import { createPasskeySignIn, type PasskeySignIn } from './passkey-sign-in.js';
import { createPasswordSignIn, type PasswordSignIn } from './password-sign-in.js';
import { createSecondFactorSignIn, type SecondFactorSignIn } from './second-factor-sign-in.js';
import { createLoginThrottle } from './throttle.js';

export type { SecondFactorAttempt, SignInRequest } from './attempt.js';
export type { PendingFederation } from '../federation/upstream.js';
export type { FederatedOutcome, FederatedSignIn, FederationChoice } from './federated-sign-in.js';
export type { PasswordSignInOutcome } from './password-sign-in.js';
export type { PasskeyAnswer, SecondFactorOutcome, SecondFactorPrompt } from './second-factor-sign-in.js';
export type { PasskeySignIn, PasskeySignInOutcome } from './passkey-sign-in.js';
export type { SecondFactorSignIn } from './second-factor-sign-in.js';

/**
 * Sign-in as a domain flow (SPEC §4): each step takes what the person typed and returns an
 * outcome; it reserves the attempt, checks, audits and commits on its own. The hosted pages
 * (src/interactions/pages/) only render outcomes.
 */
export interface SignIn {
  readonly password: PasswordSignIn;
  readonly secondFactor: SecondFactorSignIn;
  /** "Sign in with a passkey", without a username or password. */
  readonly passkey: PasskeySignIn;
  /** The relying party's passkeys, for the pages' options requests. */
  readonly passkeys: Passkeys;
  /** Through an upstream identity provider (SPEC §10). */
  readonly federation: FederatedSignIn;
}

export function createSignIn(deps: {
  readonly db: Database;
  /** The process's one (app.ts commits sign-in requests through it); without it, every write is made at once. */
  readonly requestWrites?: RequestWrites;
  /** The process's one hasher, so its queue bounds cover every caller. */
  readonly passwords: PasswordHasher;
  readonly secondFactor: SecondFactor;
  readonly passkeys: Passkeys;
  readonly deviceCookies: DeviceCookies;
  readonly counters: SignInCounters;
  /** Opens identity providers' client secrets. */
  readonly envelope: Envelope;
  readonly upstreams: Upstreams;
  /** The process's cached list, invalidated by the change feed; without it, read on every use. */
  readonly enabledProviders?: EnabledProviders;
}): SignIn {
  const parts = { db: deps.db, writes: deps.requestWrites ?? createRequestWrites(deps.db), throttle: createLoginThrottle(deps.db), deviceCookies: deps.deviceCookies, counters: deps.counters };
  return {
    password: createPasswordSignIn({ ...parts, passwords: deps.passwords }),
    secondFactor: createSecondFactorSignIn({ ...parts, secondFactor: deps.secondFactor, passkeys: deps.passkeys }),
    passkey: createPasskeySignIn({ ...parts, passkeys: deps.passkeys }),
    passkeys: deps.passkeys,
    federation: createFederatedSignIn({
      db: deps.db,
      envelope: deps.envelope,
      passwords: deps.passwords,
      upstreams: deps.upstreams,
      enabledProviders: deps.enabledProviders ?? createEnabledProviders(deps.db, { isLive: () => false }),
    }),
  };
}
