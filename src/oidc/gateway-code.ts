import { createHash, timingSafeEqual } from 'node:crypto';
import type Provider from 'oidc-provider';
import type { Queryable } from '../db/database.js';
import { createOidcModelStore } from '../db/oidc-models.js';
import { GATEWAY_CLIENT_ID } from './gateway-client.js';

/**
 * The gateway's own code redemption (SPEC §7 browser sign-in). Its client (./gateway-client.ts)
 * has a secret no one holds, so the provider's /token never redeems its codes: Gatehouse does it
 * here, in-process, with the checks of RFC 6749 §4.1.3 and RFC 7636 §4.6, and claims the code
 * in one statement so that of concurrent redemptions (on any instance) exactly one succeeds.
 * The provider's own code grant is find-then-consume; this path does not share that window.
 */

/** Who signed in, and the Gatehouse session the browser's gateway cookie may not outlive. */
export interface GatewaySignIn {
  readonly sub: string;
  readonly sessionUid: string;
  readonly acr: string | undefined;
  readonly amr: readonly string[] | undefined;
  readonly authTime: number | undefined;
  /** The session's expiry, epoch seconds. */
  readonly sessionExp: number;
}

/** A live Gatehouse session as the gateway checks it on each browser request. */
export interface GatewaySessionState {
  readonly accountId: string;
  readonly exp: number;
}

/** RFC 7636 §4.6: BASE64URL(SHA256(code_verifier)) == code_challenge, compared in constant time. */
function pkceMatches(verifier: string, challenge: unknown, method: unknown): boolean {
  if (method !== 'S256' || typeof challenge !== 'string') return false;
  const expected = Buffer.from(createHash('sha256').update(verifier, 'ascii').digest('base64url'));
  const actual = Buffer.from(challenge);
  return expected.length === actual.length && timingSafeEqual(expected, actual);
}

export interface GatewayCodes {
  /** The sign-in a valid, unused code for `redirectUri` and `verifier` stands for; undefined otherwise (and the code is spent). */
  redeem(code: string, redirectUri: string, verifier: string): Promise<GatewaySignIn | undefined>;
  /** The Gatehouse session with this uid, if it still exists. */
  session(uid: string): Promise<GatewaySessionState | undefined>;
}

/** `clientId`: whose codes these are (the gateway's, or the console's: ./console-client.ts). */
export function createGatewayCodes(current: () => Provider, db: Queryable, clientId: string = GATEWAY_CLIENT_ID): GatewayCodes {
  const models = createOidcModelStore(db);

  async function session(uid: string): Promise<GatewaySessionState | undefined> {
    const found = await current().Session.findByUid(uid);
    if (found === undefined || found.accountId === undefined || typeof found.exp !== 'number') return undefined;
    return { accountId: found.accountId, exp: found.exp };
  }

  return {
    session,
    async redeem(value, redirectUri, verifier) {
      const code = await current().AuthorizationCode.find(value).catch(() => undefined);
      if (code === undefined || code.clientId !== clientId || !code.isValid) return undefined;
      // RFC 6749 §10.5: a code is used once. Claim it before looking further, so a failed check
      // spends it too, as the provider does.
      if (!(await models.consumeOnce('AuthorizationCode', code.jti))) return undefined;
      if (code.redirectUri !== redirectUri || !pkceMatches(verifier, code.codeChallenge, code.codeChallengeMethod)) return undefined;
      if (code.accountId === undefined || code.sessionUid === undefined) return undefined;
      const live = await session(code.sessionUid);
      if (live === undefined || live.accountId !== code.accountId) return undefined;
      return {
        sub: code.accountId,
        sessionUid: code.sessionUid,
        acr: code.acr,
        amr: code.amr,
        authTime: code.authTime,
        sessionExp: live.exp,
      };
    },
  };
}
