import Router from '@koa/router';
import type { ParameterizedContext } from 'koa';
import type { Logger } from 'pino';
import { ROUTER_METHODS } from '../http/errors.js';
import type { Metrics } from '../http/metrics.js';
import { decide, type Decision, type GatewayPolicyDeps } from './decide.js';
import type { RouteTable } from './route-table.js';

/**
 * The gateway's doors (SPEC §7), one policy (./decide.ts) behind each:
 * - `/gateway/forward-auth` for Caddy `forward_auth`, Traefik `forwardAuth` and HAProxy: the
 *   original request is described by X-Forwarded-Method, -Proto, -Host and -Uri;
 * - `/gateway/auth-request` for nginx `auth_request`: X-Original-Method and X-Original-URL (the
 *   subrequest itself is a GET without body).
 * The original request's own Authorization comes along. These headers are trusted from whoever
 * can reach the endpoint: deployments keep /gateway/* reachable from the gateway only.
 */

const MAX_FORWARDED_LENGTH = 8_192;
const METHOD = /^[A-Z]{1,16}$/;
/** RFC 9110 §7.2 Host: a name or an IP literal with an optional port, and nothing else (no userinfo, path or space). */
function isHost(value: string): boolean {
  if (!/^[a-z0-9.:[\]-]+$/.test(value)) return false;
  try {
    return new URL(`http://${value}`).host === value.replace(/:80$/, '');
  } catch {
    return false;
  }
}

export interface OriginalRequest {
  readonly method: string;
  readonly host: string;
  /** Normalised (dot segments resolved, as the upstream's URL parser will), without the query. */
  readonly path: string;
}

/** One header's single value, or undefined when absent, repeated or too long. */
function single(ctx: ParameterizedContext, name: string): string | undefined {
  const value = ctx.req.headers[name];
  if (typeof value !== 'string' || value.length === 0 || value.length > MAX_FORWARDED_LENGTH) return undefined;
  return value;
}

/** The original request from the forwarded headers, or undefined when they are missing or malformed. */
export function forwardedRequest(ctx: ParameterizedContext): OriginalRequest | undefined {
  const method = single(ctx, 'x-forwarded-method')?.toUpperCase();
  const host = single(ctx, 'x-forwarded-host')?.toLowerCase();
  const uri = single(ctx, 'x-forwarded-uri');
  if (method === undefined || !METHOD.test(method) || host === undefined || !isHost(host) || uri === undefined || !uri.startsWith('/')) return undefined;
  let path: string;
  try {
    // The WHATWG parser resolves `..` and `.` segments (also percent-encoded ones) as upstreams do.
    path = new URL(uri, 'http://gateway.invalid').pathname;
  } catch {
    return undefined;
  }
  return { method, host, path };
}

/** nginx: the original request from X-Original-Method and the absolute X-Original-URL. */
export function originalUrlRequest(ctx: ParameterizedContext): OriginalRequest | undefined {
  const method = single(ctx, 'x-original-method')?.toUpperCase();
  const raw = single(ctx, 'x-original-url');
  if (method === undefined || !METHOD.test(method) || raw === undefined || !URL.canParse(raw)) return undefined;
  const url = new URL(raw);
  if ((url.protocol !== 'http:' && url.protocol !== 'https:') || url.username !== '' || url.password !== '') return undefined;
  return { method, host: url.host.toLowerCase(), path: url.pathname };
}

/** The original request's Authorization header values (Node joins none; repeated ones arrive as one list). */
function authorizationOf(ctx: ParameterizedContext): string[] | undefined {
  const raw = ctx.req.headersDistinct['authorization'];
  return raw === undefined ? undefined : raw;
}

function answer(ctx: ParameterizedContext, decision: Decision): void {
  ctx.set('Cache-Control', 'no-store');
  switch (decision.outcome) {
    case 'allow':
      ctx.status = 200;
      ctx.set(decision.headers);
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

export function gatewayDoors(deps: { readonly routes: RouteTable; readonly policy: GatewayPolicyDeps; readonly metrics: Metrics; readonly logger: Logger }): Router {
  const router = new Router({ methods: [...ROUTER_METHODS] });
  const door = (read: (ctx: ParameterizedContext) => OriginalRequest | undefined, headers: string) =>
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
      const decision = await decide(deps.policy, route, authorizationOf(ctx));
      deps.metrics.gatewayDecisions.inc({ route: route?.id ?? 'none', outcome: decision.outcome });
      // Denials are logged with what was asked and why, never the token.
      if (decision.outcome !== 'allow') {
        (ctx.state.log ?? deps.logger).info(
          { gateway: { route: route?.id ?? null, method: original.method, host: original.host, path: original.path, outcome: decision.outcome, reason: 'reason' in decision ? decision.reason : undefined } },
          'gateway denied',
        );
      }
      answer(ctx, decision);
    };
  router.all('/gateway/forward-auth', door(forwardedRequest, 'X-Forwarded-Method, X-Forwarded-Host and X-Forwarded-Uri'));
  router.all('/gateway/auth-request', door(originalUrlRequest, 'X-Original-Method and X-Original-URL'));
  return router;
}
