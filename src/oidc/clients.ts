import type { ClientRow } from '../db/clients.js';

/** Scopes oidc-provider itself knows; every other scope belongs to a resource server. */
export const OIDC_SCOPES = ['openid', 'offline_access', 'profile', 'email'] as const;

/** Gatehouse metadata that oidc-provider should carry on its Client model. */
export const EXTRA_CLIENT_METADATA = ['allowed_resources', 'require_mfa', 'first_party', 'registered_scope', 'tokens_not_before', 'browser_hosts', 'token_exchange'] as const;

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
    tokens_not_before: tokensNotBeforeOf(row),
  };
}

/**
 * The earliest `iat` (seconds) of a token this client still stands behind: tokens from before its
 * credentials last changed (migrations/0007) are not. iat has second precision, so a token issued
 * in the second of the change cannot be told apart from one issued just before it: such tokens are
 * refused (the admin API hands out a new secret only once that second is over,
 * src/management/clients/service.ts). The change time is the database's clock and iat the issuing
 * instance's: they are assumed to agree to well within a second (NTP).
 */
function tokensNotBeforeOf(row: ClientRow): number {
  return row.credentials_changed_at === null ? 0 : Math.floor(row.credentials_changed_at.getTime() / 1000) + 1;
}

/** See tokensNotBeforeOf; undefined for metadata that does not carry it. */
export function tokensNotBefore(client: object): number | undefined {
  const value = (client as { tokens_not_before?: unknown }).tokens_not_before;
  return typeof value === 'number' ? value : undefined;
}

/**
 * Gatehouse's own client policy, read from the provider's Client (which carries it as extra
 * metadata, EXTRA_CLIENT_METADATA) with its type checked, not cast.
 */
export function isFirstParty(client: object | undefined): boolean {
  return (client as { first_party?: unknown } | undefined)?.first_party === true;
}

/** The client asks for a second factor from everyone who signs in to it (SPEC §4). */
export function requiresMfa(client: object | undefined): boolean {
  return (client as { require_mfa?: unknown } | undefined)?.require_mfa === true;
}

/**
 * Read per client object, which does not change once built (a changed client is a new object,
 * src/oidc/adapter.ts), several times per token request: worked out once (bench/README.md).
 */
const registeredByClient = new WeakMap<object, readonly string[] | undefined>();
const allowedByClient = new WeakMap<object, readonly string[]>();

/** The scopes a client registered, or undefined when it registered no restriction. */
export function registeredScopes(client: object): readonly string[] | undefined {
  if (registeredByClient.has(client)) return registeredByClient.get(client);
  const value = (client as { registered_scope?: unknown }).registered_scope;
  const scopes = typeof value === 'string' ? Object.freeze(splitScope(value)) : undefined;
  registeredByClient.set(client, scopes);
  return scopes;
}

/** What grantableScopes needs of a resource server row. */
export interface ScopedResourceServer {
  readonly scopes: readonly string[];
  /** Gatehouse's own admin API (SPEC §5: privileged). */
  readonly built_in: boolean;
}

/**
 * The scopes of `server` a client may obtain tokens with: the one rule, used by the token path
 * (src/oidc/resource-indicators.ts) and by the admin API's privilege check
 * (src/management/clients/service.ts), so the two can never disagree.
 *
 * - A client that registered a `scope` gets those of the server's scopes, never more.
 * - A client that registered none gets every scope of an ordinary resource server (SPEC §2: "with
 *   scopes that resource server defines"), but none of a privileged one: for the admin API a
 *   missing `scope` never widens, so removing a client's scope cannot grant it every admin scope.
 */
export function grantableScopes(registered: readonly string[] | undefined, server: ScopedResourceServer): string[] {
  if (registered === undefined) return server.built_in ? [] : [...server.scopes];
  return server.scopes.filter((scope) => registered.includes(scope));
}

export function allowedResources(client: object): readonly string[] {
  let allowed = allowedByClient.get(client);
  if (allowed === undefined) {
    const value = (client as { allowed_resources?: unknown }).allowed_resources;
    allowed = Object.freeze(Array.isArray(value) ? value.filter((v): v is string => typeof v === 'string') : []);
    allowedByClient.set(client, allowed);
  }
  return allowed;
}
