import type { Queryable } from '../db/database.js';
import { createResourceServerStore, type ResourceServerRow } from '../db/resource-servers.js';
import { importRecipient, type JweRecipient } from '../tokens/jwe.js';
import { createLookupCache } from './lookup-cache.js';
import { BoundedCache } from '../lib/bounded-cache.js';

/**
 * Resource servers as the token path needs them, with the inner-layer key imported once.
 *
 * Every token request needs its resource server two or three times (policy, inner layer,
 * whole-token encryption); a cache keeps that off the database. Bound (src/oidc/lookup-cache.ts):
 * a change is seen at once on the instance that made it, on the others when its notification
 * arrives, and never later than CACHE_TTL_MS.
 */
export const CACHE_TTL_MS = 3_000;

export interface ResourceServerEntry {
  readonly row: ResourceServerRow;
  /** The inner-layer recipient, when the resource server has an `inner_encryption_jwk`. */
  readonly recipient: JweRecipient | undefined;
}

export interface ResourceServerRegistry {
  get(identifier: string): Promise<ResourceServerEntry | undefined>;
  /** Forget one identifier (or everything) after a change. */
  invalidate(identifier?: string): void;
}

export function createResourceServerRegistry(
  db: Queryable,
  options: { isLive: () => boolean; ttlMs?: number; now?: () => number },
): ResourceServerRegistry {
  const store = createResourceServerStore(db);
  // Unknown identifiers are cached too: a resource server's creation is announced like any change.
  const cache = createLookupCache<ResourceServerEntry>({
    ttlMs: options.ttlMs ?? CACHE_TTL_MS,
    maxEntries: 10_000,
    isLive: options.isLive,
    cacheMisses: true,
    ...(options.now === undefined ? {} : { now: options.now }),
  });
  // Imported keys survive cache expiry as long as the row did not change.
  const recipients = new BoundedCache<string, { version: number; recipient: JweRecipient }>(10_000);

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
    get: (identifier) => cache.get(identifier, () => load(identifier)),
    invalidate(identifier) {
      if (identifier === undefined) cache.clear();
      else cache.invalidate(identifier);
    },
  };
}
