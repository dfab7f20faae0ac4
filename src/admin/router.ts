import Router from '@koa/router';
import compose from 'koa-compose';
import type { Middleware, ParameterizedContext } from 'koa';
import type { Logger } from 'pino';
import { requireToken, type BearerFailure, type Verifier, type VerifiedToken } from '../verifier/index.js';
import { auditContext } from './audit.js';
import { auditEventQuery } from './audit-events/schema.js';
import type { AuditEventService } from './audit-events/service.js';
import { etagOf } from './etag.js';
import { jsonBody } from './body.js';
import { clientListQuery, createClientBody, patchClientBody } from './clients/schema.js';
import type { ClientService } from './clients/service.js';
import type { createKeyService } from './keys/service.js';
import { rotateKeysBody } from './keys/schema.js';
import { listQuery } from './pagination.js';
import { buildOpenApiDocument } from './openapi.js';
import { parseOrThrow, problemErrors, ProblemError, writeProblem } from './problem.js';
import { createResourceServerBody, patchResourceServerBody } from './resource-servers/schema.js';
import type { ResourceServerService } from './resource-servers/service.js';
import type { AdminScope } from './scopes.js';
import { createUserBody, patchUserBody, userListQuery } from './users/schema.js';
import type { UserService } from './users/service.js';
import { ROUTER_METHODS } from '../http/errors.js';

export const ADMIN_PREFIX = '/admin/v1';

export interface AdminApiDeps {
  /** The issuer identifier: the OpenAPI document names its server and token endpoint by it. */
  readonly issuer: string;
  readonly verifier: Verifier;
  readonly logger: Logger;
  readonly clients: ClientService;
  readonly resourceServers: ResourceServerService;
  readonly keys: ReturnType<typeof createKeyService>;
  readonly users: UserService;
  readonly auditEvents: AuditEventService;
  /**
   * The token's client as the token endpoint sees it (cached, dropped on the database's change
   * notifications): undefined once deleted, with the earliest `iat` it still stands behind.
   */
  readonly tokenClient: (clientId: string) => Promise<{ readonly tokensNotBefore: number } | undefined>;
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
    const { claims } = ctx.state['token'] as VerifiedToken;
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

/**
 * The admin API (SPEC §5) under /admin/v1, with its own middleware chain: problem+json errors,
 * a bearer token for `<ISSUER>/admin` checked by Gatehouse's own verifier with the area's scope,
 * and JSON bodies, in that order (no body is read before the caller is authenticated).
 */
export function createAdminApi(deps: AdminApiDeps): Middleware {
  const router = new Router({ prefix: ADMIN_PREFIX, methods: [...ROUTER_METHODS] });
  const guards = new Map<AdminScope, Middleware>();
  const liveClient = requireLiveClient(deps.tokenClient);
  const guard = (scope: AdminScope) => {
    let middleware = guards.get(scope);
    if (middleware === undefined) {
      middleware = compose([requireToken(deps.verifier, { scopes: [scope], respond: respondWithProblem }), liveClient, jsonBody()]);
      guards.set(scope, middleware);
    }
    return middleware;
  };
  const param = (ctx: ParameterizedContext, name: string): string => (ctx['params'] as Record<string, string>)[name] ?? '';
  const ifMatch = (ctx: ParameterizedContext): string | undefined => ctx.get('If-Match') || undefined;
  /** Responds with a resource and its ETag (the one-time secret, when present, is not part of the version). */
  const respondWithVersion = (ctx: ParameterizedContext, resource: object) => {
    const { client_secret: _secret, client_secret_expires_at: _expiresAt, ...representation } = resource as Record<string, unknown>;
    ctx.set('ETag', etagOf(representation));
    ctx.body = resource;
  };

  // The OpenAPI document (SPEC §5): public, so tools can read it without a token.
  router.get('/openapi.json', function readOpenApiDocument(ctx) {
    ctx.set('Cache-Control', 'public, max-age=300');
    ctx.body = buildOpenApiDocument(deps.issuer);
  });

  // Clients
  router.get('/clients', guard('admin:clients'), async function listClients(ctx) {
    ctx.body = await deps.clients.list(parseOrThrow(clientListQuery, ctx.query, 'query'));
  });
  router.post('/clients', guard('admin:clients'), async function createClient(ctx) {
    const client = await deps.clients.create(parseOrThrow(createClientBody, ctx.state['body'] ?? {}), auditContext(ctx));
    ctx.status = 201;
    ctx.set('Location', `${ADMIN_PREFIX}/clients/${encodeURIComponent(client.client_id)}`);
    ctx.set('Cache-Control', 'no-store');
    ctx.body = client;
  });
  router.get('/clients/:client_id', guard('admin:clients'), async function readClient(ctx) {
    respondWithVersion(ctx, await deps.clients.get(param(ctx, 'client_id')));
  });
  router.patch('/clients/:client_id', guard('admin:clients'), async function updateClient(ctx) {
    const body = parseOrThrow(patchClientBody, ctx.state['body'] ?? {});
    respondWithVersion(ctx, await deps.clients.update(param(ctx, 'client_id'), body, auditContext(ctx), ifMatch(ctx)));
  });
  router.delete('/clients/:client_id', guard('admin:clients'), async function deleteClient(ctx) {
    await deps.clients.delete(param(ctx, 'client_id'), auditContext(ctx));
    ctx.status = 204;
  });
  router.post('/clients/:client_id/secret', guard('admin:clients'), async function rotateClientSecret(ctx) {
    ctx.set('Cache-Control', 'no-store');
    ctx.body = await deps.clients.rotateSecret(param(ctx, 'client_id'), auditContext(ctx));
  });

  // Resource servers
  router.get('/resource-servers', guard('admin:resource-servers'), async function listResourceServers(ctx) {
    ctx.body = await deps.resourceServers.list(parseOrThrow(listQuery, ctx.query, 'query'));
  });
  router.post('/resource-servers', guard('admin:resource-servers'), async function createResourceServer(ctx) {
    const server = await deps.resourceServers.create(parseOrThrow(createResourceServerBody, ctx.state['body'] ?? {}), auditContext(ctx));
    ctx.status = 201;
    ctx.set('Location', `${ADMIN_PREFIX}/resource-servers/${server.id}`);
    ctx.body = server;
  });
  router.get('/resource-servers/:id', guard('admin:resource-servers'), async function readResourceServer(ctx) {
    respondWithVersion(ctx, await deps.resourceServers.get(param(ctx, 'id')));
  });
  router.patch('/resource-servers/:id', guard('admin:resource-servers'), async function updateResourceServer(ctx) {
    const body = parseOrThrow(patchResourceServerBody, ctx.state['body'] ?? {});
    respondWithVersion(ctx, await deps.resourceServers.update(param(ctx, 'id'), body, auditContext(ctx), ifMatch(ctx)));
  });
  router.delete('/resource-servers/:id', guard('admin:resource-servers'), async function deleteResourceServer(ctx) {
    await deps.resourceServers.delete(param(ctx, 'id'), auditContext(ctx));
    ctx.status = 204;
  });

  // Users (people who sign in through the hosted pages)
  router.get('/users', guard('admin:users'), async function listUsers(ctx) {
    ctx.body = await deps.users.list(parseOrThrow(userListQuery, ctx.query, 'query'));
  });
  router.post('/users', guard('admin:users'), async function createUser(ctx) {
    const user = await deps.users.create(parseOrThrow(createUserBody, ctx.state['body'] ?? {}), auditContext(ctx));
    ctx.status = 201;
    ctx.set('Location', `${ADMIN_PREFIX}/users/${user.id}`);
    ctx.body = user;
  });
  router.get('/users/:id', guard('admin:users'), async function readUser(ctx) {
    respondWithVersion(ctx, await deps.users.get(param(ctx, 'id')));
  });
  router.patch('/users/:id', guard('admin:users'), async function updateUser(ctx) {
    const body = parseOrThrow(patchUserBody, ctx.state['body'] ?? {});
    respondWithVersion(ctx, await deps.users.update(param(ctx, 'id'), body, auditContext(ctx), ifMatch(ctx)));
  });
  router.delete('/users/:id/mfa', guard('admin:users'), async function resetUserSecondFactor(ctx) {
    await deps.users.resetSecondFactor(param(ctx, 'id'), auditContext(ctx));
    ctx.status = 204;
  });
  router.delete('/users/:id', guard('admin:users'), async function deleteUser(ctx) {
    await deps.users.delete(param(ctx, 'id'), auditContext(ctx));
    ctx.status = 204;
  });

  // Audit trail (read-only: there is no path to change or delete events)
  router.get('/audit-events', guard('admin:audit'), async function listAuditEvents(ctx) {
    ctx.body = await deps.auditEvents.list(parseOrThrow(auditEventQuery, ctx.query, 'query'));
  });

  // Signing keys
  router.get('/keys', guard('admin:keys'), async function listKeys(ctx) {
    ctx.body = await deps.keys.list(parseOrThrow(listQuery, ctx.query, 'query'));
  });
  router.post('/keys/rotate', guard('admin:keys'), async function rotateKeys(ctx) {
    const body = parseOrThrow(rotateKeysBody, ctx.state['body']);
    ctx.status = 201;
    ctx.body = { items: await deps.keys.rotate(body?.algs, auditContext(ctx)) };
  });
  router.post('/keys/:kid/revoke', guard('admin:keys'), async function revokeKey(ctx) {
    ctx.body = await deps.keys.revoke(param(ctx, 'kid'), auditContext(ctx));
  });

  const api = compose([problemErrors(deps.logger), router.routes() as Middleware, router.allowedMethods({ throw: false }) as Middleware]);
  return async function adminApi(ctx, next) {
    if (ctx.path !== ADMIN_PREFIX && !ctx.path.startsWith(`${ADMIN_PREFIX}/`)) {
      await next();
      return;
    }
    ctx.set('Cache-Control', 'no-store');
    await api(ctx, () => Promise.resolve());
  };
}
