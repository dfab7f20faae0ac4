import type { ClientRow } from '../db/clients.js';

/** Scopes oidc-provider itself knows; every other scope belongs to a resource server. */
export const OIDC_SCOPES = ['openid', 'offline_access', 'profile', 'email'] as const;

/** Gatehouse metadata that oidc-provider should carry on its Client model. */
export const EXTRA_CLIENT_METADATA = ['allowed_resources', 'require_mfa', 'first_party', 'registered_scope'] as const;

function splitScope(scope: unknown): string[] {
  return typeof scope === 'string' ? scope.split(' ').filter(Boolean) : [];
}

/**
 * A clients row as oidc-provider client metadata.
 *
 * - `client_secret` carries the stored *hash*: the provider only needs it to exist for the
 *   secret-based auth methods, and the one place that compares secrets (`compareClientSecret`,
 *   set in provider.ts) checks against the hash.
 * - The provider validates `scope` against its own static scope list, but resource-server scopes
 *   live in the database. So `scope` keeps only the OpenID scopes, and the full registered
 *   scope travels as `registered_scope` for the resource-indicator policy to enforce.
 */
export function clientMetadataFromRow(row: ClientRow): Record<string, unknown> {
  const { scope, ...metadata } = row.metadata;
  const registered = splitScope(scope);
  const oidcScopes = registered.filter((s) => (OIDC_SCOPES as readonly string[]).includes(s));
  return {
    ...metadata,
    client_id: row.client_id,
    client_name: row.client_name,
    client_id_issued_at: Math.floor(row.created_at.getTime() / 1000),
    ...(row.client_secret_hash === null ? {} : { client_secret: row.client_secret_hash }),
    ...(scope === undefined ? {} : { registered_scope: registered.join(' ') }),
    // The provider refuses an empty scope; a client with no OpenID scopes registers none here.
    ...(oidcScopes.length === 0 ? {} : { scope: oidcScopes.join(' ') }),
    allowed_resources: row.allowed_resources,
    require_mfa: row.require_mfa,
    first_party: row.first_party,
  };
}

/** The scopes a client registered, or undefined when it registered no restriction. */
export function registeredScopes(client: object): string[] | undefined {
  const value = (client as { registered_scope?: unknown }).registered_scope;
  return typeof value === 'string' ? splitScope(value) : undefined;
}

export function allowedResources(client: object): string[] {
  const value = (client as { allowed_resources?: unknown }).allowed_resources;
  return Array.isArray(value) ? value.filter((v): v is string => typeof v === 'string') : [];
}
