import type { Queryable } from '../db/database.js';
import { createResourceServerStore, type ResourceServerRow } from '../db/resource-servers.js';
import { importRecipient, type JweRecipient } from '../tokens/jwe.js';

/**
 * Resource servers as the token path needs them, with the inner-layer key imported once.
 *
 * Every token request needs its resource server two or three times (policy, inner layer,
 * whole-token encryption); a short cache keeps that off the database. Bound: an admin change
 * is seen at once on the instance that made it and within CACHE_TTL_MS on the others.
 */
export const CACHE_TTL_MS = 3_000;

export interface ResourceServerEntry {
  readonly row: ResourceServerRow;
  /** The inner-layer recipient, when the resource server has an `inner_encryption_jwk`. */
  readonly recipient: JweRecipient | undefined;
}

export interface ResourceServerRegistry {
  get(identifier: string): Promise<ResourceServerEntry | undefined>;
  /** Forget one identifier (or everything) after an admin change on this instance. */
  invalidate(identifier?: string): void;
}

export function createResourceServerRegistry(db: Queryable, options: { ttlMs?: number; now?: () => number } = {}): ResourceServerRegistry {
  const store = createResourceServerStore(db);
  const ttl = options.ttlMs ?? CACHE_TTL_MS;
  const now = options.now ?? Date.now;
  const cache = new Map<string, { expires: number; entry: Promise<ResourceServerEntry | undefined> }>();
  // Imported keys survive cache expiry as long as the row did not change.
  const recipients = new Map<string, { version: number; recipient: JweRecipient }>();

  function recipientFor(row: ResourceServerRow): JweRecipient | undefined {
    if (row.inner_encryption_jwk === null) return undefined;
    const version = row.updated_at.getTime();
    const known = recipients.get(row.id);
    if (known?.version === version) return known.recipient;
    const recipient = importRecipient(row.inner_encryption_jwk);
    recipients.set(row.id, { version, recipient });
    return recipient;
  }

  async function load(identifier: string): Promise<ResourceServerEntry | undefined> {
    const row = await store.findByIdentifier(identifier);
    return row === undefined ? undefined : { row, recipient: recipientFor(row) };
  }

  return {
    get(identifier) {
      const cached = cache.get(identifier);
      if (cached !== undefined && cached.expires > now()) return cached.entry;
      const entry = load(identifier);
      cache.set(identifier, { expires: now() + ttl, entry });
      // A failed load is not cached: the next request tries the database again.
      entry.catch(() => cache.delete(identifier));
      if (cache.size > 10_000) cache.delete(cache.keys().next().value as string);
      return entry;
    },
    invalidate(identifier) {
      if (identifier === undefined) cache.clear();
      else cache.delete(identifier);
    },
  };
}
