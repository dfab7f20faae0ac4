import { createHash } from 'node:crypto';
import { cookieValues, sameString } from '../../http/cookies.js';
import Router from '@koa/router';
import type { ParameterizedContext } from 'koa';
import type { Logger } from 'pino';
import { randomIdentifier } from '../../crypto/random-id.js';
import { ACR_MFA } from '../../oidc/accounts.js';
import { GATEWAY_CALLBACK_PATH, GATEWAY_CLIENT_ID } from '../../oidc/gateway-client.js';
import type { GatewayCodes } from '../../oidc/gateway-code.js';
import type { Views } from '../../views.js';
import type { GatewayToken } from '../decide.js';
import { isHostHeader } from '../host.js';
import type { RouteTable } from '../route-table.js';
import type { SealedCookies } from '../../http/sealed-cookies.js';
import { BoundedCache } from '../../lib/bounded-cache.js';

/**
 * Browser sign-in on protected hosts (SPEC §7). The gateway routes `/.gatehouse/` on each
 * protected host to Gatehouse, with the browser's Host and X-Forwarded-Proto. There:
 * - `sign-in?rd=<path>` starts a code flow with PKCE for Gatehouse's own gateway client
 *   (src/oidc/gateway-client.ts), remembering state, verifier and `rd` in a sealed cookie;
 * - `callback` redeems the code in-process (src/oidc/gateway-code.ts) and sets the session
 *   cookie: sealed, host-only (no Domain), `Secure`, `HttpOnly`, `SameSite=Lax`, named
 *   `__Host-gatehouse` on https, expiring with the Gatehouse session;
 * - `sign-out` clears it and ends the Gatehouse session at the issuer.
 * The doors then honour the cookie while the Gatehouse session lives (browserSessions below).
 */

export const SIGN_IN_PATH = '/.gatehouse/sign-in';
export const SIGN_OUT_PATH = '/.gatehouse/sign-out';
const PENDING_SECONDS = 600;
/** How long a session found alive is believed without asking again: sign-out elsewhere takes effect within this. */
export const SESSION_RECHECK_MS = 5_000;
const MAX_RD_LENGTH = 2_048;

interface ProtectedOrigin {
  readonly scheme: 'http' | 'https';
  /** As the browser sent it (lower case), port included. */
  readonly host: string;
}

/**
 * The protected host as the browser addressed it. The gateway passes Host through and says the
 * scheme in X-Forwarded-Proto; without one, https (the only scheme `__Host-` cookies exist on).
 */
function protectedOrigin(ctx: ParameterizedContext): ProtectedOrigin | undefined {
  const host = ctx.req.headers.host?.toLowerCase();
  if (host === undefined || !isHostHeader(host)) return undefined;
  const forwarded = ctx.req.headers['x-forwarded-proto'];
  const proto = typeof forwarded === 'string' ? forwarded.split(',')[0]?.trim().toLowerCase() : undefined;
  if (proto !== undefined && proto !== 'http' && proto !== 'https') return undefined;
  return { scheme: proto ?? 'https', host };
}

/** The session cookie's name: the `__Host-` prefix (RFC 6265bis §4.1.3.2) needs a secure origin. */
export function sessionCookieName(scheme: 'http' | 'https'): string {
  return scheme === 'https' ? '__Host-gatehouse' : 'gatehouse';
}

const SESSION_COOKIE_NAMES = [sessionCookieName('https'), sessionCookieName('http')];

/** One pending-sign-in cookie per state, so two tabs signing in at once do not undo each other. */
function pendingCookieName(scheme: 'http' | 'https', state: string): string {
  return `${scheme === 'https' ? '__Host-' : ''}gatehouse-signin-${state.slice(0, 12)}`;
}

/**
 * Koa's cookie jar decides `Secure` from ISSUER's scheme (src/http/issuer-origin.ts), not the
 * protected host's; these cookies are always `Secure`, so the header is written here.
 */
function setCookie(ctx: ParameterizedContext, name: string, value: string, maxAgeSeconds: number): void {
  ctx.append('Set-Cookie', `${name}=${value}; Path=/; Max-Age=${Math.max(0, Math.floor(maxAgeSeconds))}; Secure; HttpOnly; SameSite=Lax`);
}

/** A path on the same host: not `//host` or `/\host` (which browsers read as another origin). */
export function safeReturnPath(rd: unknown): string | undefined {
  if (typeof rd !== 'string' || rd.length === 0 || rd.length > MAX_RD_LENGTH) return undefined;
  // eslint-disable-next-line no-control-regex -- a return path carries no control characters
  if (!rd.startsWith('/') || rd.startsWith('//') || rd.startsWith('/\\') || /[\u0000-\u001f\u007f\\]/.test(rd)) return undefined;
  const parsed = new URL(rd, 'https://gateway.invalid');
  return parsed.origin === 'https://gateway.invalid' ? `${parsed.pathname}${parsed.search}` : undefined;
}

export interface BrowserSignInDeps {
  readonly issuer: string;
  readonly routes: RouteTable;
  readonly codes: GatewayCodes;
  readonly cookies: SealedCookies;
  readonly views: Views;
  readonly logger: Logger;
}

export function browserSignInRoutes(deps: BrowserSignInDeps): Router {
  const router = new Router();
  const authorizationEndpoint = `${deps.issuer.replace(/\/+$/, '')}/auth`;
  const endSessionEndpoint = `${deps.issuer.replace(/\/+$/, '')}/session/end`;

  function page(ctx: ParameterizedContext, status: number, title: string, message: string): void {
    ctx.status = status;
    ctx.type = 'html';
    ctx.set('Cache-Control', 'no-store');
    ctx.body = deps.views.render('error', { title, message, requestId: ctx.state.requestId });
  }

  router.get(SIGN_IN_PATH, async function startSignIn(ctx) {
    const origin = protectedOrigin(ctx);
    if (origin === undefined) return page(ctx, 400, 'Bad request', 'The request did not say which site it is for.');
    const rd = safeReturnPath(ctx.query['rd'] ?? '/');
    if (rd === undefined) return page(ctx, 400, 'Bad request', 'The address to return to must be a path on this site.');
    const route = await deps.routes.match({ method: 'GET', host: origin.host, path: new URL(rd, 'https://gateway.invalid').pathname });
    if (route?.browser_sign_in !== true) return page(ctx, 404, 'Not found', 'This site does not sign people in here.');

    const state = randomIdentifier(32);
    const verifier = randomIdentifier(32);
    const exp = Math.floor(Date.now() / 1000) + PENDING_SECONDS;
    setCookie(ctx, pendingCookieName(origin.scheme, state), await deps.cookies.sealPending({ state, verifier, rd, exp }, origin.host), PENDING_SECONDS);

    const params = new URLSearchParams({
      client_id: GATEWAY_CLIENT_ID,
      response_type: 'code',
      scope: 'openid',
      redirect_uri: `${origin.scheme}://${origin.host}${GATEWAY_CALLBACK_PATH}`,
      state,
      code_challenge: createHash('sha256').update(verifier).digest('base64url'),
      code_challenge_method: 'S256',
    });
    // A route that needs a second factor asks for it up front (SPEC §4 step-up), as does a door
    // that found the session's sign-in too weak for the route.
    if (route.require_mfa || ctx.query['mfa'] === '1') params.set('acr_values', ACR_MFA);
    ctx.set('Cache-Control', 'no-store');
    ctx.status = 302;
    ctx.set('Location', `${authorizationEndpoint}?${params.toString()}`);
  });

  router.get(GATEWAY_CALLBACK_PATH, async function finishSignIn(ctx) {
    const origin = protectedOrigin(ctx);
    if (origin === undefined) return page(ctx, 400, 'Bad request', 'The request did not say which site it is for.');
    const { state, code, error } = ctx.query;
    if (typeof state !== 'string' || state.length < 12 || state.length > 100) return page(ctx, 400, 'Sign-in failed', 'The sign-in answer is incomplete. Please try again.');
    const pendingName = pendingCookieName(origin.scheme, state);
    const sealed = cookieValues(ctx.req.headers.cookie, [pendingName])[0];
    const pending = sealed === undefined ? undefined : await deps.cookies.openPending(sealed, origin.host);
    // RFC 6749 §10.12: only the browser that started this sign-in finishes it.
    if (pending === undefined || !sameString(pending.state, state)) {
      return page(ctx, 400, 'Sign-in expired', 'This sign-in was started elsewhere, expired or was already used. Please go back and try again.');
    }
    setCookie(ctx, pendingName, '', 0);
    if (typeof error === 'string') return page(ctx, 403, 'Not signed in', 'Sign-in was cancelled or refused.');
    if (typeof code !== 'string' || code.length === 0 || code.length > 200) return page(ctx, 400, 'Sign-in failed', 'The sign-in answer is incomplete. Please try again.');

    const signedIn = await deps.codes.redeem(code, `${origin.scheme}://${origin.host}${GATEWAY_CALLBACK_PATH}`, pending.verifier);
    if (signedIn === undefined) return page(ctx, 400, 'Sign-in failed', 'This sign-in could not be completed. Please try again.');
    const now = Math.floor(Date.now() / 1000);
    const exp = signedIn.sessionExp;
    const session = { sub: signedIn.sub, sid: signedIn.sessionUid, acr: signedIn.acr, amr: signedIn.amr, authTime: signedIn.authTime, exp };
    setCookie(ctx, sessionCookieName(origin.scheme), await deps.cookies.sealSession(session, origin.host), exp - now);
    deps.logger.info({ gateway: { host: origin.host, sub: signedIn.sub } }, 'gateway browser signed in');
    ctx.set('Cache-Control', 'no-store');
    ctx.status = 303;
    ctx.set('Location', pending.rd);
  });

  const signOut = function signOut(ctx: ParameterizedContext): void {
    const origin = protectedOrigin(ctx);
    if (origin === undefined) return page(ctx, 400, 'Bad request', 'The request did not say which site it is for.');
    setCookie(ctx, sessionCookieName(origin.scheme), '', 0);
    ctx.set('Cache-Control', 'no-store');
    ctx.status = 303;
    // The Gatehouse session ends too (its own confirmation page), or the next visit signs in silently.
    ctx.set('Location', `${endSessionEndpoint}?${new URLSearchParams({ client_id: GATEWAY_CLIENT_ID }).toString()}`);
  };
  router.get(SIGN_OUT_PATH, signOut);
  router.post(SIGN_OUT_PATH, signOut);
  return router;
}

/** Resolves a request's gateway cookie into the credential the policy checks. */
export interface BrowserSessions {
  /** The session a request's cookie proves on `host`, or undefined (none, forged, expired, another host's, or signed out). */
  fromCookies(cookieHeader: string | undefined, host: string): Promise<GatewayToken | undefined>;
}


export function createBrowserSessions(deps: { readonly cookies: SealedCookies; readonly codes: GatewayCodes; readonly now?: () => number }): BrowserSessions {
  const now = deps.now ?? Date.now;
  const alive = new BoundedCache<string, { accountId: string | undefined; until: number }>(10_000);

  async function sessionOwner(sid: string): Promise<string | undefined> {
    const cached = alive.get(sid);
    if (cached !== undefined && cached.until > now()) return cached.accountId;
    const session = await deps.codes.session(sid);
    alive.set(sid, { accountId: session?.accountId, until: now() + SESSION_RECHECK_MS });
    return session?.accountId;
  }

  return {
    async fromCookies(cookieHeader, host) {
      for (const value of cookieValues(cookieHeader, SESSION_COOKIE_NAMES).slice(0, 2)) {
        const session = await deps.cookies.openSession(value, host);
        if (session === undefined) continue;
        // The cookie lasts no longer than the Gatehouse session: signed out, ended by an admin or expired there, it stops here.
        if ((await sessionOwner(session.sid)) !== session.sub) return undefined;
        return { sub: session.sub, client_id: GATEWAY_CLIENT_ID, acr: session.acr, exp: session.exp };
      }
      return undefined;
    },
  };
}
