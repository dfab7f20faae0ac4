import Router from '@koa/router';
import compose from 'koa-compose';
import type { Middleware, ParameterizedContext } from 'koa';
import type { Logger } from 'pino';
import type { ClientCertificateSource } from '../http/client-certificate.js';
import { requireToken, type BearerFailure, type Verifier, type VerifiedToken } from '../verifier/index.js';
import { ROUTER_METHODS } from '../http/errors.js';
import { auditContext } from './caller.js';
import { jsonBody } from './body.js';
import { etagOf } from '../management/etag.js';
import { buildOpenApiDocument } from './openapi.js';
import { parseOrThrow } from '../management/errors.js';
import { problemErrors, ProblemError, writeProblem } from './problem.js';
import type { AdminRoute, AdminServices } from './route.js';
import { ADMIN_ROUTES } from './routes.js';
import type { AdminScope } from '../management/admin-scopes.js';

export const ADMIN_PREFIX = '/admin/v1';

export interface AdminApiDeps extends Omit<AdminServices, 'openApiDocument'> {
  /** The issuer identifier: the OpenAPI document names its server and token endpoint by it. */
  readonly issuer: string;
  readonly verifier: Verifier;
  readonly logger: Logger;
  /**
   * The token's client as the token endpoint sees it (cached, dropped on the database's change
   * notifications): undefined once deleted, with the earliest `iat` it still stands behind.
   */
  readonly tokenClient: (clientId: string) => Promise<{ readonly tokensNotBefore: number } | undefined>;
  /** The request's client certificate, for certificate-bound admin tokens (SPEC §8). */
  readonly clientCertificate: ClientCertificateSource;
}

function respondWithProblem(ctx: ParameterizedContext, failure: BearerFailure): void {
  const status = ctx.status;
  writeProblem(
    ctx,
    failure.status === 403
      ? new ProblemError('forbidden', 'The access token lacks the scope this endpoint requires.')
      : new ProblemError('unauthorized', failure.description ?? 'An access token for the admin API is required.'),
  );
  ctx.status = status;
}

/**
 * SPEC §5: "An admin token stops working within a few seconds of its client being deleted or its
 * secret rotated." The JWT itself stays valid for its 900 s, so its client is looked up: through
 * the client cache, a change is seen here within the cache bound (src/oidc/lookup-cache.ts), and
 * no request costs a query while the cache is warm.
 */
function requireLiveClient(lookup: AdminApiDeps['tokenClient']): Middleware {
  return async function refuseTokensOfGoneClients(ctx, next) {
    const { claims } = ctx.state.token as VerifiedToken;
    const client = typeof claims.client_id === 'string' ? await lookup(claims.client_id) : undefined;
    if (client === undefined || typeof claims.iat !== 'number' || claims.iat < client.tokensNotBefore) {
      // RFC 6750 §3.1 invalid_token: "revoked ... or invalid for other reasons".
      ctx.set('WWW-Authenticate', 'Bearer error="invalid_token", error_description="the token was revoked: its client was deleted or its credentials changed"');
      writeProblem(ctx, new ProblemError('unauthorized', 'The token was revoked: its client was deleted or its credentials changed after it was issued.'));
      return;
    }
    await next();
  };
}

/** The route's input, validated against its schemas: a 400 problem listing every field error otherwise. */
function readInput(route: AdminRoute, ctx: ParameterizedContext) {
  const params = ctx['params'] as Record<string, string | undefined>;
  const body: unknown = ctx.state.body;
  return {
    params: Object.fromEntries(Object.keys(route.params ?? {}).map((name) => [name, params[name] ?? ''])),
    query: route.query === undefined ? undefined : parseOrThrow(route.query, ctx.query, 'query'),
    body: route.body === undefined ? undefined : parseOrThrow(route.body.schema.schema, route.body.raw === true ? body : (body ?? {})),
    ifMatch: route.ifMatch === true ? ctx.get('If-Match') || undefined : undefined,
    caller: auditContext(ctx),
  };
}

function respond(route: AdminRoute, ctx: ParameterizedContext, result: unknown): void {
  const { response } = route;
  ctx.status = response.status;
  if (response.location !== undefined) ctx.set('Location', `${ADMIN_PREFIX}${response.location(result)}`);
  if (response.cacheControl !== undefined) ctx.set('Cache-Control', response.cacheControl);
  if (response.etag === true) {
    // The version is of the resource: a one-time secret shown with it is not part of it.
    const { client_secret: _secret, client_secret_expires_at: _expiresAt, ...representation } = result as Record<string, unknown>;
    ctx.set('ETag', etagOf(representation));
  }
  if (response.status !== 204) ctx.body = result;
}

/** The route's handler as Koa middleware, under its operationId (so a stack trace or a profile names it). */
function endpoint(route: AdminRoute, services: AdminServices): Middleware {
  const middleware: Middleware = async (ctx) => {
    const input = readInput(route, ctx);
    respond(route, ctx, await route.handler(input, services));
  };
  return Object.defineProperty(middleware, 'name', { value: route.operationId });
}

/**
 * The admin API (SPEC §5) under /admin/v1, with its own middleware chain: problem+json errors,
 * a bearer token for `<ISSUER>/admin` checked by Gatehouse's own verifier with the route's scope,
 * and JSON bodies, in that order (no body is read before the caller is authenticated). Every
 * route comes from the route tables (src/admin/routes.ts), which the OpenAPI document is
 * rendered from.
 */
export function createAdminApi(deps: AdminApiDeps): Middleware {
  const router = new Router({ prefix: ADMIN_PREFIX, methods: [...ROUTER_METHODS] });
  const guards = new Map<AdminScope, Middleware>();
  const liveClient = requireLiveClient(deps.tokenClient);
  const guard = (scope: AdminScope) => {
    let middleware = guards.get(scope);
    if (middleware === undefined) {
      // A DPoP proof's htu is the URL the client addressed: ISSUER (with any path a proxy strips) and the route.
      const bound = { origin: deps.issuer.replace(/\/+$/, ''), certificate: (ctx: ParameterizedContext) => deps.clientCertificate(ctx.req)?.certificate };
      middleware = compose([requireToken(deps.verifier, { scopes: [scope], respond: respondWithProblem, ...bound }), liveClient, jsonBody()]);
      guards.set(scope, middleware);
    }
    return middleware;
  };
  const { clients, resourceServers, keys, users, auditEvents, gatewayRoutes, identityProviders } = deps;
  const services: AdminServices = {
    clients,
    resourceServers,
    keys,
    users,
    auditEvents,
    gatewayRoutes,
    identityProviders,
    openApiDocument: () => buildOpenApiDocument(deps.issuer),
  };
  for (const route of ADMIN_ROUTES) {
    const path = route.path.replace(/\{(\w+)\}/g, ':$1');
    router.register(path, [route.method], [...(route.scope === null ? [] : [guard(route.scope)]), endpoint(route, services)]);
  }

  const api = compose([problemErrors(deps.logger), router.routes() as Middleware, router.allowedMethods({ throw: false }) as Middleware]);
  return async function adminApi(ctx, next) {
    if (ctx.path !== ADMIN_PREFIX && !ctx.path.startsWith(`${ADMIN_PREFIX}/`)) {
      await next();
      return;
    }
    // Every admin response is not cacheable (a route may say otherwise): some carry secrets.
    ctx.set('Cache-Control', 'no-store');
    await api(ctx, () => Promise.resolve());
  };
}
