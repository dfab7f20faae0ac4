import Router from '@koa/router';
import type { ParameterizedContext } from 'koa';
import type { Logger } from 'pino';
import { ROUTER_METHODS } from '../http/errors.js';
import type { ClientCertificateSource } from '../http/client-certificate.js';
import type { Metrics } from '../http/metrics.js';
import { decide, type Decision, type GatewayPolicyDeps, type OriginalPresentation } from './decide.js';
import { isHostHeader } from './host.js';
import type { RouteTable } from './route-table.js';
import { SIGN_IN_PATH, type BrowserSessions } from './browser/sign-in.js';

/**
 * The gateway's doors (SPEC §7), one policy (./decide.ts) behind each:
 * - `/gateway/forward-auth` for Caddy `forward_auth`, Traefik `forwardAuth` and HAProxy: the
 *   original request is described by X-Forwarded-Method, -Proto, -Host and -Uri;
 * - `/gateway/auth-request` for nginx `auth_request`: X-Original-Method and X-Original-URL (the
 *   subrequest itself is a GET without body);
 * - `/gateway/ext-authz/<original path>` for Envoy's HTTP `ext_authz`: the request line and Host
 *   are the original request's (extAuthzRequest).
 * The original request's own Authorization (with its DPoP proof, SPEC §8, and, for browser routes,
 * its gateway cookie) comes along, and its client certificate in CLIENT_CERT_HEADER. These headers are trusted from whoever
 * can reach the endpoint: deployments keep /gateway/* reachable from the gateway only.
 */

const MAX_FORWARDED_LENGTH = 8_192;
const METHOD = /^[A-Z]{1,16}$/;
export interface OriginalRequest {
  readonly method: string;
  readonly host: string;
  /** Normalised (dot segments resolved, as the upstream's URL parser will), without the query. */
  readonly path: string;
  /** Path and query as the browser asked for them: where sign-in returns to. */
  readonly target: string;
  /** The scheme the browser used (the gateway says; https when it does not). */
  readonly scheme: 'http' | 'https';
}

/** X-Forwarded-Proto as a gateway sets it: the first hop's scheme; absent means https, anything else is malformed. */
function forwardedProto(ctx: ParameterizedContext): 'http' | 'https' | undefined {
  const raw = ctx.req.headers['x-forwarded-proto'];
  if (raw === undefined) return 'https';
  const first = typeof raw === 'string' ? raw.split(',')[0]?.trim().toLowerCase() : undefined;
  return first === 'http' || first === 'https' ? first : undefined;
}

/** One header's single value, or undefined when absent, repeated or too long. */
function single(ctx: ParameterizedContext, name: string): string | undefined {
  const value = ctx.req.headers[name];
  if (typeof value !== 'string' || value.length === 0 || value.length > MAX_FORWARDED_LENGTH) return undefined;
  return value;
}

/**
 * A request-target (starting with '/') as the upstream will read it. The WHATWG parser resolves
 * `..` and `.` segments (also percent-encoded ones) as upstreams do; appended rather than resolved
 * against a base, so `//host/x` stays a path, as the upstream sees it.
 */
function parsePath(uri: string): { path: string; target: string } | undefined {
  if (!URL.canParse(`http://gateway.invalid${uri}`)) return undefined;
  const url = new URL(`http://gateway.invalid${uri}`);
  return { path: url.pathname, target: `${url.pathname}${url.search}` };
}

/** The original request from the forwarded headers, or undefined when they are missing or malformed. */
export function forwardedRequest(ctx: ParameterizedContext): OriginalRequest | undefined {
  const method = single(ctx, 'x-forwarded-method')?.toUpperCase();
  const host = single(ctx, 'x-forwarded-host')?.toLowerCase();
  const uri = single(ctx, 'x-forwarded-uri');
  const scheme = forwardedProto(ctx);
  if (method === undefined || !METHOD.test(method) || host === undefined || !isHostHeader(host) || uri === undefined || !uri.startsWith('/') || scheme === undefined) return undefined;
  const parsed = parsePath(uri);
  return parsed === undefined ? undefined : { method, host, ...parsed, scheme };
}

/** nginx: the original request from X-Original-Method and the absolute X-Original-URL. */
export function originalUrlRequest(ctx: ParameterizedContext): OriginalRequest | undefined {
  const method = single(ctx, 'x-original-method')?.toUpperCase();
  const raw = single(ctx, 'x-original-url');
  if (method === undefined || !METHOD.test(method) || raw === undefined || !URL.canParse(raw)) return undefined;
  const url = new URL(raw);
  if ((url.protocol !== 'http:' && url.protocol !== 'https:') || url.username !== '' || url.password !== '') return undefined;
  return { method, host: url.host.toLowerCase(), path: url.pathname, target: `${url.pathname}${url.search}`, scheme: url.protocol === 'http:' ? 'http' : 'https' };
}

export const EXT_AUTHZ_PREFIX = '/gateway/ext-authz';

/**
 * Envoy's HTTP ext_authz: the check request keeps the original method, its path is the
 * configured `path_prefix` followed by the original path and query, and its Host (`:authority`)
 * is the original one. Read from the raw request: Koa's own host is pinned to ISSUER.
 */
export function extAuthzRequest(ctx: ParameterizedContext): OriginalRequest | undefined {
  const method = ctx.req.method?.toUpperCase();
  const host = single(ctx, 'host')?.toLowerCase();
  const raw = ctx.req.url ?? '';
  const scheme = forwardedProto(ctx);
  if (method === undefined || !METHOD.test(method) || host === undefined || !isHostHeader(host) || raw.length > MAX_FORWARDED_LENGTH || scheme === undefined) return undefined;
  if (!raw.startsWith(EXT_AUTHZ_PREFIX)) return undefined;
  const rest = raw.slice(EXT_AUTHZ_PREFIX.length);
  const uri = rest === '' || rest.startsWith('?') ? `/${rest}` : rest;
  if (!uri.startsWith('/')) return undefined;
  const parsed = parsePath(uri);
  return parsed === undefined ? undefined : { method, host, ...parsed, scheme };
}

/** The original request's Authorization header values (Node joins none; repeated ones arrive as one list). */
function authorizationOf(ctx: ParameterizedContext): string[] | undefined {
  const raw = ctx.req.headersDistinct['authorization'];
  return raw === undefined ? undefined : raw;
}

/**
 * SPEC §7: a browser (it accepts HTML and is no script's XHR) goes to sign in; anything else is
 * answered 401 and left to handle it.
 */
function isBrowserNavigation(ctx: ParameterizedContext): boolean {
  const accept = ctx.req.headers.accept;
  if (typeof accept !== 'string' || !/(^|,)\s*text\/html\s*(;|,|$)/i.test(accept)) return false;
  return ctx.req.headers['x-requested-with']?.toString().toLowerCase() !== 'xmlhttprequest';
}

/**
 * How a door sends a browser to sign in: forward-auth and ext-authz gateways pass the auth
 * service's redirect on (302 for GET and HEAD, 303 otherwise, so the browser follows with a GET);
 * nginx's auth_request turns any such answer into a 500, so that door answers 401 with the
 * Location, which the shipped nginx block turns into a redirect.
 */
type SignInAnswer = 'redirect' | 'unauthorized_with_location';

function signInLocation(original: OriginalRequest, mfa: boolean): string {
  // Absolute, on the protected host: Traefik resolves a relative Location against the address
  // it reached Gatehouse at (Go's Response.Location), which is no place for a browser.
  const query = new URLSearchParams({ rd: original.target });
  if (mfa) query.set('mfa', '1');
  return `${original.scheme}://${original.host}${SIGN_IN_PATH}?${query.toString()}`;
}

function answerSignIn(ctx: ParameterizedContext, original: OriginalRequest, style: SignInAnswer, decision: Decision & { outcome: 'unauthenticated' | 'forbidden' }): void {
  ctx.set('Cache-Control', 'no-store');
  ctx.set('Location', signInLocation(original, decision.signIn === 'mfa'));
  ctx.body = '';
  if (style === 'unauthorized_with_location') {
    ctx.status = 401;
    ctx.set('WWW-Authenticate', decision.outcome === 'unauthenticated' ? decision.challenge : 'Bearer');
    return;
  }
  ctx.status = original.method === 'GET' || original.method === 'HEAD' ? 302 : 303;
}

function answer(ctx: ParameterizedContext, decision: Decision, authorization: readonly string[] | undefined): void {
  ctx.set('Cache-Control', 'no-store');
  switch (decision.outcome) {
    case 'allow':
      ctx.status = 200;
      ctx.set(decision.headers);
      // Always answered, like the identity headers: the exchanged token, or the caller's own
      // (an allow has at most one), so a gateway that copies Authorization (Caddy's copy_headers,
      // nginx's auth_request_set) never blanks the caller's or forwards a placeholder.
      ctx.set('Authorization', decision.upstreamAuthorization ?? authorization?.[0] ?? '');
      ctx.body = '';
      return;
    case 'unauthenticated':
      ctx.status = 401;
      ctx.set('WWW-Authenticate', decision.challenge);
      ctx.body = '';
      return;
    case 'forbidden':
      ctx.status = 403;
      if (decision.challenge !== undefined) ctx.set('WWW-Authenticate', decision.challenge);
      ctx.body = '';
  }
}

export interface GatewayDoorDeps {
  /** The original request's client certificate, as the gateway passes it on (CLIENT_CERT_HEADER). */
  readonly clientCertificate: ClientCertificateSource;
  readonly routes: RouteTable;
  readonly policy: GatewayPolicyDeps;
  readonly sessions: BrowserSessions;
  readonly metrics: Metrics;
  readonly logger: Logger;
}

export function gatewayDoors(deps: GatewayDoorDeps): Router {
  const router = new Router({ methods: [...ROUTER_METHODS] });
  const door = (read: (ctx: ParameterizedContext) => OriginalRequest | undefined, headers: string, signInAnswer: SignInAnswer) =>
    async function gatewayDecision(ctx: ParameterizedContext): Promise<void> {
      const original = read(ctx);
      if (original === undefined) {
        deps.metrics.gatewayDecisions.inc({ route: 'none', outcome: 'bad_request' });
        ctx.status = 400;
        ctx.set('Cache-Control', 'no-store');
        ctx.body = { error: 'invalid_request', error_description: `${headers} must each be present once and well-formed` };
        return;
      }
      const route = await deps.routes.match(original);
      const authorization = authorizationOf(ctx);
      // The cookie is opened only where it can count: a browser route and no token.
      const session = route?.browser_sign_in === true && authorization === undefined ? await deps.sessions.fromCookies(ctx.req.headers.cookie, original.host) : undefined;
      const presented: OriginalPresentation = {
        dpop: ctx.req.headersDistinct['dpop'],
        method: original.method,
        url: `${original.scheme}://${original.host}${original.path}`,
        certificate: deps.clientCertificate(ctx.req)?.certificate,
      };
      const decision = await decide(deps.policy, route, authorization, session, presented);
      const toSignIn = decision.outcome !== 'allow' && decision.signIn !== undefined && isBrowserNavigation(ctx);
      deps.metrics.gatewayDecisions.inc({ route: route?.id ?? 'none', outcome: toSignIn ? 'sign_in' : decision.outcome });
      // Denials are logged with what was asked and why, never the token.
      if (decision.outcome !== 'allow') {
        (ctx.state.log ?? deps.logger).info(
          { gateway: { route: route?.id ?? null, method: original.method, host: original.host, path: original.path, outcome: decision.outcome, reason: 'reason' in decision ? decision.reason : undefined } },
          'gateway denied',
        );
      }
      if (toSignIn) answerSignIn(ctx, original, signInAnswer, decision);
      else answer(ctx, decision, authorization);
    };
  router.all('/gateway/forward-auth', door(forwardedRequest, 'X-Forwarded-Method, X-Forwarded-Host and X-Forwarded-Uri', 'redirect'));
  router.all('/gateway/auth-request', door(originalUrlRequest, 'X-Original-Method and X-Original-URL', 'unauthorized_with_location'));
  router.all(`${EXT_AUTHZ_PREFIX}{/*path}`, door(extAuthzRequest, 'Host and the path after /gateway/ext-authz', 'redirect'));
  return router;
}
