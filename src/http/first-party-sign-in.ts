import { createHash } from 'node:crypto';
import type { ParameterizedContext } from 'koa';
import { randomIdentifier } from '../crypto/random-id.js';
import { ACR_MFA } from '../oidc/accounts.js';
import type { GatewayCodes } from '../oidc/gateway-code.js';
import { cookieValues, sameString } from './cookies.js';
import { issuerPath } from './issuer-origin.js';
import type { SealedCookies } from './sealed-cookies.js';

/**
 * Gatehouse signing a person in to one of its own pages (src/console, src/account): a code
 * flow with PKCE and `acr_values=urn:gatehouse:acr:mfa` for a built-in client, redeemed in-process
 * (src/oidc/gateway-code.ts), then a sealed session cookie scoped to the pages' path, `HttpOnly`,
 * `SameSite=Lax`, lasting `maxSessionSeconds` at most and never past the Gatehouse session, which
 * is checked on every request (signing out, an admin ending the sessions or disabling the person
 * ends it at once).
 */

const PENDING_SECONDS = 600;

export interface FirstPartySignInOptions {
  readonly issuer: string;
  readonly clientId: string;
  /** The pages' path below ISSUER (`/account`); the callback is `<path>/callback`. */
  readonly path: string;
  /** Where a finished sign-in lands, below ISSUER. */
  readonly landing: string;
  /** The session cookie's name; the pending sign-in's is `<name>-signin`. Also the sealed cookies' audience. */
  readonly cookieName: string;
  readonly cookies: SealedCookies;
  readonly codes: GatewayCodes;
  readonly maxSessionSeconds: number;
}

/** Who is signed in: their id and the Gatehouse session's uid (CSRF tokens are bound to it). */
export interface FirstPartySession {
  readonly sub: string;
  readonly sid: string;
}

export type SignInFinished = { readonly ok: true } | { readonly ok: false; readonly status: 400 | 403; readonly title: string; readonly message: string };

export function firstPartySignIn(options: FirstPartySignInOptions) {
  const base = options.issuer.replace(/\/+$/, '');
  const callbackUrl = `${base}${options.path}/callback`;
  // As the browser sees it: ISSUER's path first (a proxy in front strips it).
  const cookiePath = `${issuerPath(options.issuer)}${options.path}`;
  const secure = options.issuer.startsWith('https://');
  const sessionCookie = options.cookieName;
  const pendingCookie = `${options.cookieName}-signin`;
  const audience = options.cookieName;

  function setCookie(ctx: ParameterizedContext, name: string, value: string, maxAgeSeconds: number): void {
    ctx.append('Set-Cookie', `${name}=${value}; Path=${cookiePath}; Max-Age=${Math.max(0, Math.floor(maxAgeSeconds))}; HttpOnly; SameSite=Lax${secure ? '; Secure' : ''}`);
  }

  return {
    callbackPath: `${options.path}/callback`,

    /** Sends the browser to the authorization endpoint; the callback finishes the sign-in. */
    async start(ctx: ParameterizedContext): Promise<void> {
      const state = randomIdentifier(32);
      const verifier = randomIdentifier(32);
      const exp = Math.floor(Date.now() / 1000) + PENDING_SECONDS;
      setCookie(ctx, pendingCookie, await options.cookies.sealPending({ state, verifier, rd: options.landing, exp }, audience), PENDING_SECONDS);
      const params = new URLSearchParams({
        client_id: options.clientId,
        response_type: 'code',
        scope: 'openid',
        redirect_uri: callbackUrl,
        state,
        code_challenge: createHash('sha256').update(verifier).digest('base64url'),
        code_challenge_method: 'S256',
        acr_values: ACR_MFA,
      });
      ctx.set('Cache-Control', 'no-store');
      ctx.status = 302;
      ctx.set('Location', `${base}/auth?${params.toString()}`);
    },

    /** The callback: redeems the code and sets the session cookie, or says why not. */
    async finish(ctx: ParameterizedContext): Promise<SignInFinished> {
      const { state, code, error } = ctx.query;
      const sealed = cookieValues(ctx.req.headers.cookie, [pendingCookie])[0];
      const pending = sealed === undefined ? undefined : await options.cookies.openPending(sealed, audience);
      // RFC 6749 §10.12: only the browser that started this sign-in finishes it.
      if (pending === undefined || typeof state !== 'string' || !sameString(pending.state, state)) {
        return { ok: false, status: 400, title: 'Sign-in expired', message: 'This sign-in was started elsewhere, expired or was already used. Open the page again.' };
      }
      setCookie(ctx, pendingCookie, '', 0);
      if (typeof error === 'string') return { ok: false, status: 403, title: 'Not signed in', message: 'Sign-in was cancelled or refused.' };
      if (typeof code !== 'string' || code.length === 0 || code.length > 200) return { ok: false, status: 400, title: 'Sign-in failed', message: 'The sign-in answer is incomplete. Open the page again.' };
      const result = await options.codes.redeem(code, callbackUrl, pending.verifier);
      if (result === undefined || result.acr !== ACR_MFA) {
        return { ok: false, status: 400, title: 'Sign-in failed', message: 'This sign-in could not be completed with a second factor. Open the page again.' };
      }
      const now = Math.floor(Date.now() / 1000);
      const exp = Math.min(now + options.maxSessionSeconds, result.sessionExp);
      const session = { sub: result.sub, sid: result.sessionUid, acr: result.acr, amr: result.amr, authTime: result.authTime, exp };
      setCookie(ctx, sessionCookie, await options.cookies.sealSession(session, audience), exp - now);
      return { ok: true };
    },

    /** The signed-in person, or undefined (no cookie, forged, expired, or the Gatehouse session is gone). */
    async session(ctx: ParameterizedContext): Promise<FirstPartySession | undefined> {
      const value = cookieValues(ctx.req.headers.cookie, [sessionCookie])[0];
      const session = value === undefined ? undefined : await options.cookies.openSession(value, audience);
      if (session === undefined || session.acr !== ACR_MFA) return undefined;
      const live = await options.codes.session(session.sid);
      if (live?.accountId !== session.sub) return undefined;
      return { sub: session.sub, sid: session.sid };
    },

    /** Ends this page's session; the caller sends the browser on to the Gatehouse session's end. */
    signOut(ctx: ParameterizedContext): string {
      setCookie(ctx, sessionCookie, '', 0);
      return `${base}/session/end?${new URLSearchParams({ client_id: options.clientId, post_logout_redirect_uri: `${base}${options.landing}` }).toString()}`;
    },
  };
}

export type FirstPartySignIn = ReturnType<typeof firstPartySignIn>;
