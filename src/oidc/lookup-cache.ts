import { BoundedCache } from '../lib/bounded-cache.js';

/**
 * A short-lived cache for rows the token path reads on every request (clients, resource
 * servers), kept honest by the database's change notifications (src/db/change-feed.ts).
 *
 * The bound on staleness: a change is dropped here when its notification arrives (milliseconds
 * after commit), and no entry is older than `ttlMs` in any case. While notifications are not
 * known to flow (`isLive()` false: listener connecting or its connection lost) nothing is
 * cached or served from the cache at all.
 */
export interface LookupCache<V> {
  get(key: string, load: () => Promise<V | undefined>): Promise<V | undefined>;
  invalidate(key: string): void;
  clear(): void;
}

export interface LookupCacheOptions {
  readonly ttlMs: number;
  readonly maxEntries: number;
  readonly isLive: () => boolean;
  /** Remember "not found" too (only where a row's creation is also notified). */
  readonly cacheMisses?: boolean;
  readonly now?: () => number;
}

export function createLookupCache<V>(options: LookupCacheOptions): LookupCache<V> {
  const now = options.now ?? Date.now;
  const entries = new BoundedCache<string, { expires: number; value: Promise<V | undefined> }>(options.maxEntries);

  function forget(key: string, value: Promise<V | undefined>) {
    if (entries.get(key)?.value === value) entries.delete(key);
  }

  return {
    get(key, load) {
      if (!options.isLive()) return load();
      const hit = entries.get(key);
      if (hit !== undefined && hit.expires > now()) return hit.value;
      // Stored before the load resolves, so concurrent requests share one query, and an
      // invalidation that arrives meanwhile removes this very promise: a row read before a
      // change committed is never kept after the change was announced.
      const value = load();
      entries.set(key, { expires: now() + options.ttlMs, value });
      value.then(
        (row) => {
          if (row === undefined && options.cacheMisses !== true) forget(key, value);
        },
        () => forget(key, value),
      );
      return value;
    },
    invalidate(key) {
      entries.delete(key);
    },
    clear() {
      entries.clear();
    },
  };
}
