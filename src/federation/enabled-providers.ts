import type { Queryable } from '../db/database.js';
import { createIdentityProviderStore } from '../db/identity-providers.js';
import { CACHE_TTL_MS } from '../oidc/resource-server-registry.js';
import { createLookupCache } from '../oidc/lookup-cache.js';

/** What the login page and a login_hint need of an enabled identity provider: no secret. */
export interface EnabledProvider {
  readonly id: string;
  readonly name: string;
  readonly emailDomains: readonly string[];
}

/**
 * The enabled identity providers, in creation order, cached per process (performance issue 23:
 * the login page read them from PostgreSQL on every render). Dropped at once by this instance's
 * admin changes and by the change feed on the others (migrations/0018), never older than the
 * token-path caches' bound, and not cached while the feed is down (src/oidc/lookup-cache.ts).
 * Starting and finishing a federated sign-in still read the provider's row itself, so a provider
 * disabled a moment ago is refused even if its button was still shown.
 */
export interface EnabledProviders {
  list(): Promise<readonly EnabledProvider[]>;
  invalidate(): void;
}

export function createEnabledProviders(db: Queryable, options: { readonly isLive: () => boolean }): EnabledProviders {
  const store = createIdentityProviderStore(db);
  const cache = createLookupCache<readonly EnabledProvider[]>({ ttlMs: CACHE_TTL_MS, maxEntries: 1, isLive: options.isLive });
  const load = async () => (await store.enabled()).map((row) => ({ id: row.id, name: row.name, emailDomains: row.email_domains }));
  return {
    list: async () => (await cache.get('', load)) ?? [],
    invalidate: () => cache.clear(),
  };
}
