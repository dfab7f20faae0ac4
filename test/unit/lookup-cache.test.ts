import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { createLookupCache } from '../../src/oidc/lookup-cache.js';

/** A load whose result the test releases when it wants, counting calls. */
function controlledLoads() {
  const pending: ((value: string | undefined) => void)[] = [];
  let calls = 0;
  return {
    get calls() {
      return calls;
    },
    load: () => {
      calls++;
      return new Promise<string | undefined>((resolve) => pending.push(resolve));
    },
    resolveNext: (value: string | undefined) => pending.shift()!(value),
  };
}

describe('lookup cache (clients and resource servers on the token path)', () => {
  test('while live, a second lookup is served from the cache; concurrent lookups share one load', async () => {
    let loads = 0;
    const cache = createLookupCache<string>({ ttlMs: 60_000, maxEntries: 10, isLive: () => true });
    const load = () => Promise.resolve(`row ${++loads}`);
    const [a, b] = await Promise.all([cache.get('k', load), cache.get('k', load)]);
    assert.equal(a, 'row 1');
    assert.equal(b, 'row 1');
    assert.equal(await cache.get('k', load), 'row 1');
    assert.equal(loads, 1);
  });

  test('not live (notifications may be lost): every lookup goes to the database', async () => {
    let live = false;
    let loads = 0;
    const cache = createLookupCache<string>({ ttlMs: 60_000, maxEntries: 10, isLive: () => live });
    const load = () => Promise.resolve(`row ${++loads}`);
    await cache.get('k', load);
    await cache.get('k', load);
    assert.equal(loads, 2);
    live = true;
    await cache.get('k', load);
    assert.equal(await cache.get('k', load), 'row 3');
    live = false;
    assert.equal(await cache.get('k', load), 'row 4', 'an entry made while live is not served once the feed is down');
  });

  test('an invalidation drops the entry: the next lookup loads again', async () => {
    let loads = 0;
    const cache = createLookupCache<string>({ ttlMs: 60_000, maxEntries: 10, isLive: () => true });
    const load = () => Promise.resolve(`row ${++loads}`);
    await cache.get('k', load);
    cache.invalidate('k');
    assert.equal(await cache.get('k', load), 'row 2');
    cache.clear();
    assert.equal(await cache.get('k', load), 'row 3');
  });

  test('a row read before a change was announced is not kept after the announcement', async () => {
    const loads = controlledLoads();
    const cache = createLookupCache<string>({ ttlMs: 60_000, maxEntries: 10, isLive: () => true });
    const stale = cache.get('k', loads.load);
    cache.invalidate('k'); // the change commits and is announced while the old row is in flight
    loads.resolveNext('old');
    assert.equal(await stale, 'old', 'the request already under way gets what it read');
    const fresh = cache.get('k', loads.load);
    loads.resolveNext('new');
    assert.equal(await fresh, 'new');
    assert.equal(loads.calls, 2);
  });

  test('entries expire after ttlMs even without any announcement', async () => {
    let clock = 1_000;
    let loads = 0;
    const cache = createLookupCache<string>({ ttlMs: 3_000, maxEntries: 10, isLive: () => true, now: () => clock });
    const load = () => Promise.resolve(`row ${++loads}`);
    await cache.get('k', load);
    clock += 2_999;
    assert.equal(await cache.get('k', load), 'row 1');
    clock += 1;
    assert.equal(await cache.get('k', load), 'row 2');
  });

  test('"not found" is not cached unless asked, failures never are', async () => {
    let loads = 0;
    const misses = createLookupCache<string>({ ttlMs: 60_000, maxEntries: 10, isLive: () => true });
    const missing = () => {
      loads++;
      return Promise.resolve(undefined);
    };
    await misses.get('k', missing);
    await misses.get('k', missing);
    assert.equal(loads, 2);

    const remembered = createLookupCache<string>({ ttlMs: 60_000, maxEntries: 10, isLive: () => true, cacheMisses: true });
    await remembered.get('k', missing);
    await remembered.get('k', missing);
    assert.equal(loads, 3);

    let attempts = 0;
    const failing = () => {
      attempts++;
      return Promise.reject(new Error('database unavailable'));
    };
    await assert.rejects(remembered.get('f', failing));
    await assert.rejects(remembered.get('f', failing));
    assert.equal(attempts, 2);
  });

  test('the cache holds at most maxEntries', async () => {
    const loaded: string[] = [];
    const cache = createLookupCache<string>({ ttlMs: 60_000, maxEntries: 3, isLive: () => true });
    const load = (key: string) => () => {
      loaded.push(key);
      return Promise.resolve(key);
    };
    for (const key of ['a', 'b', 'c', 'd']) await cache.get(key, load(key));
    await cache.get('a', load('a')); // evicted first
    await cache.get('d', load('d')); // still there
    assert.deepEqual(loaded, ['a', 'b', 'c', 'd', 'a']);
  });
});
