import type { Database, Queryable } from '../../db/database.js';
import { createGatewayRouteStore, type GatewayRouteFields, type GatewayRouteRow } from '../../db/gateway-routes.js';
import { createResourceServerStore } from '../../db/resource-servers.js';
import { recordAudit, type AuditContext } from '../../audit/audit.js';
import { decodeCursor, toPage, type Page } from '../pagination.js';
import { checkIfMatch } from '../etag.js';
import { Conflict, NotFound, ValidationFailed, type FieldError, type ManagementError } from '../errors.js';
import { presentGatewayRoute, type GatewayRouteResponse } from './presenter.js';
import type { CreateGatewayRouteBody, PatchGatewayRouteBody } from './schema.js';

export interface GatewayRouteServiceDeps {
  readonly db: Database;
  /** Reloads this instance's route table at once (the others follow the change feed). */
  readonly routesChanged: () => void;
}

function notFound(): ManagementError {
  return new NotFound('No gateway route with that id.');
}

function duplicate(): ManagementError {
  return new Conflict('A gateway route with that host, path_prefix and methods already exists.', {
    errors: [{ pointer: '#/path_prefix', detail: 'a route with this host, path_prefix and methods exists' }],
  });
}

/** One spelling per method set (sorted, deduplicated), so the unique index sees duplicates. */
function normaliseMethods(methods: readonly string[] | null): string[] | null {
  return methods === null ? null : [...new Set(methods)].sort();
}

function fromBody(body: CreateGatewayRouteBody): GatewayRouteFields {
  return {
    host: body.host,
    pathPrefix: body.path_prefix,
    methods: normaliseMethods(body.methods),
    resourceServer: body.resource_server,
    requiredScopes: body.required_scopes,
    requiredRoles: body.required_roles,
    requireMfa: body.require_mfa,
    anonymous: body.anonymous,
    browserSignIn: body.browser_sign_in,
    upstreamToken: body.upstream_token,
    upstreamResourceServer: body.upstream_resource_server,
    identityHeaders: body.identity_headers,
  };
}

function bodyOf(row: GatewayRouteRow): CreateGatewayRouteBody {
  const present = presentGatewayRoute(row);
  return {
    host: present.host,
    path_prefix: present.path_prefix,
    methods: present.methods,
    resource_server: present.resource_server,
    required_scopes: present.required_scopes,
    required_roles: present.required_roles,
    require_mfa: present.require_mfa,
    anonymous: present.anonymous,
    browser_sign_in: present.browser_sign_in,
    upstream_token: present.upstream_token,
    upstream_resource_server: present.upstream_resource_server,
    identity_headers: present.identity_headers,
  };
}

/**
 * What a route must be as a whole, beyond each field's shape: its resource servers exist, its
 * scopes are theirs, and an anonymous route asks for nothing it could not check.
 */
async function checkRoute(db: Queryable, route: GatewayRouteFields): Promise<void> {
  const errors: FieldError[] = [];
  const servers = createResourceServerStore(db);
  if (route.anonymous) {
    if (route.requiredScopes.length > 0) errors.push({ pointer: '#/required_scopes', detail: 'an anonymous route cannot require scopes' });
    if (route.requiredRoles.length > 0) errors.push({ pointer: '#/required_roles', detail: 'an anonymous route cannot require roles' });
    if (route.requireMfa) errors.push({ pointer: '#/require_mfa', detail: 'an anonymous route cannot require MFA' });
    if (route.upstreamToken === 'exchange') errors.push({ pointer: '#/upstream_token', detail: 'an anonymous route has no token to exchange' });
  } else if (route.resourceServer === null) {
    errors.push({ pointer: '#/resource_server', detail: 'required unless the route is anonymous' });
  }
  if (route.resourceServer !== null) {
    const server = await servers.findByIdentifier(route.resourceServer);
    if (server === undefined) errors.push({ pointer: '#/resource_server', detail: 'no resource server with this identifier' });
    else {
      route.requiredScopes.forEach((scope, index) => {
        if (!server.scopes.includes(scope)) errors.push({ pointer: `#/required_scopes/${index}`, detail: `not a scope of ${server.identifier}` });
      });
    }
  }
  if (route.upstreamResourceServer !== null && (await servers.findByIdentifier(route.upstreamResourceServer)) === undefined) {
    errors.push({ pointer: '#/upstream_resource_server', detail: 'no resource server with this identifier' });
  }
  if (errors.length > 0) throw new ValidationFailed('The request body is invalid.', { errors });
}

/** Gateway routes (SPEC §7): the admin API and the CLI both go through here. */
export function createGatewayRouteService(deps: GatewayRouteServiceDeps) {
  const { db, routesChanged } = deps;

  return {
    /** How many there are (the console's overview). */
    count(): Promise<number> {
      return createGatewayRouteStore(db).count();
    },

    async list(query: { limit: number; cursor?: string | undefined }): Promise<Page<GatewayRouteResponse>> {
      const rows = await createGatewayRouteStore(db).list({ after: decodeCursor(query.cursor), limit: query.limit + 1 });
      return toPage(rows, query.limit, (row) => row.seq, presentGatewayRoute);
    },

    async get(id: string): Promise<GatewayRouteResponse> {
      const row = await createGatewayRouteStore(db).findById(id);
      if (row === undefined) throw notFound();
      return presentGatewayRoute(row);
    },

    async create(body: CreateGatewayRouteBody, audit: AuditContext): Promise<GatewayRouteResponse> {
      const fields = fromBody(body);
      const row = await db.transaction(async (tx) => {
        await checkRoute(tx, fields);
        const created = await createGatewayRouteStore(tx).insert(fields);
        if (created === undefined) throw duplicate();
        await recordAudit(tx, audit, {
          type: 'gateway_route.created',
          target: created.id,
          details: { host: created.host, path_prefix: created.path_prefix, methods: created.methods, resource_server: created.resource_server, anonymous: created.anonymous },
        });
        return created;
      });
      routesChanged();
      return presentGatewayRoute(row);
    },

    async update(id: string, patch: PatchGatewayRouteBody, audit: AuditContext, ifMatch?: string): Promise<GatewayRouteResponse> {
      const row = await db.transaction(async (tx) => {
        const store = createGatewayRouteStore(tx);
        const current = await store.findById(id, { forUpdate: true });
        if (current === undefined) throw notFound();
        checkIfMatch(ifMatch, presentGatewayRoute(current));
        const before = bodyOf(current);
        const merged: CreateGatewayRouteBody = { ...before };
        for (const [key, value] of Object.entries(patch)) {
          if (value !== undefined) (merged as Record<string, unknown>)[key] = value;
        }
        const fields = fromBody(merged);
        await checkRoute(tx, fields);
        const updated = await store.update(id, fields);
        if (updated === undefined) throw duplicate();
        const after = bodyOf(updated);
        // What changed, old and new, so the trail shows a policy being loosened or tightened.
        const changes = Object.fromEntries(
          (Object.keys(after) as (keyof CreateGatewayRouteBody)[])
            .filter((key) => JSON.stringify(before[key]) !== JSON.stringify(after[key]))
            .map((key) => [key, { from: before[key], to: after[key] }]),
        );
        await recordAudit(tx, audit, { type: 'gateway_route.updated', target: id, details: { changes } });
        return updated;
      });
      routesChanged();
      return presentGatewayRoute(row);
    },

    async delete(id: string, audit: AuditContext): Promise<void> {
      await db.transaction(async (tx) => {
        const store = createGatewayRouteStore(tx);
        const current = await store.findById(id, { forUpdate: true });
        if (current === undefined) throw notFound();
        await store.delete(id);
        await recordAudit(tx, audit, {
          type: 'gateway_route.deleted',
          target: id,
          details: { host: current.host, path_prefix: current.path_prefix, methods: current.methods },
        });
      });
      routesChanged();
    },
  };
}

export type GatewayRouteService = ReturnType<typeof createGatewayRouteService>;
