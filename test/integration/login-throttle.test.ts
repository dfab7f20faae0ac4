import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { ACCOUNT_POLICY, createLoginThrottle, IP_POLICY } from '../../src/accounts/throttle.js';
import type { Database } from '../../src/db/database.js';
import { createLoginThrottleStore, type ThrottlePolicy } from '../../src/db/login-throttle.js';
import { migrate } from '../../src/db/migrator.js';
import { createUserStore } from '../../src/db/users.js';
import { backends, createTestDatabase, type TestDatabase } from '../support/database.js';

/**
 * The sign-in throttle's statements against the real database: the account and the address are
 * counted in one statement, each by its own policy; the sign-in's first read returns the lock,
 * whether the account has failures to clear, and the person's row.
 */

const TIGHT: ThrottlePolicy = { threshold: 2, windowSeconds: 900, baseDelaySeconds: 30, maxDelaySeconds: 100 };
const LOOSE: ThrottlePolicy = { threshold: 4, windowSeconds: 900, baseDelaySeconds: 60, maxDelaySeconds: 3600 };

let counter = 0;
const fresh = (prefix: string) => `${prefix}:${Date.now().toString(36)}-${++counter}`;

for (const backend of backends) {
  describe(`login throttle on ${backend}`, () => {
    let database: TestDatabase;
    let db: Database;

    before(async () => {
      database = await createTestDatabase(backend);
      db = await database.connect();
      await migrate(db);
    });
    after(async () => {
      await db?.close();
      await database?.drop();
    });

    async function lockSeconds(key: string): Promise<number | null> {
      const { rows } = await db.query<{ seconds: number | null }>('SELECT extract(epoch FROM locked_until - now())::float8 AS seconds FROM login_throttle WHERE key = $1', [key]);
      return rows[0]?.seconds ?? null;
    }

    test('two keys counted in one statement follow their own policies', async () => {
      const store = createLoginThrottleStore(db);
      const tight = fresh('account');
      const loose = fresh('ip');
      const seen: { failures: number; locked: boolean }[][] = [];
      for (let i = 0; i < 5; i++) seen.push(await store.recordFailures([{ key: tight, policy: TIGHT }, { key: loose, policy: LOOSE }]));
      assert.deepEqual(
        seen.map(([a]) => a),
        [1, 2, 3, 4, 5].map((failures) => ({ failures, locked: failures >= 2 })),
      );
      assert.deepEqual(
        seen.map(([, b]) => b),
        [1, 2, 3, 4, 5].map((failures) => ({ failures, locked: failures >= 4 })),
      );
      // TIGHT at its 5th failure: 30 s × 2^(5−2) = 240 s, capped at 100; LOOSE at its 5th: 60 × 2 = 120 s.
      const tightLock = await lockSeconds(tight);
      const looseLock = await lockSeconds(loose);
      assert.ok(tightLock !== null && tightLock > 95 && tightLock <= 100, `tight lock ${tightLock}`);
      assert.ok(looseLock !== null && looseLock > 115 && looseLock <= 120, `loose lock ${looseLock}`);
      // The order of the answer is the order asked, whatever order the rows come back in.
      const [looseAgain, tightAgain] = await store.recordFailures([{ key: loose, policy: LOOSE }, { key: tight, policy: TIGHT }]);
      assert.equal(looseAgain!.failures, 6);
      assert.equal(tightAgain!.failures, 6);
      await assert.rejects(store.recordFailures([{ key: tight, policy: TIGHT }, { key: tight, policy: LOOSE }]), /distinct/);
    });

    test('a window that ran out starts counting again from one', async () => {
      const store = createLoginThrottleStore(db);
      const key = fresh('account');
      await store.recordFailures([{ key, policy: TIGHT }]);
      await store.recordFailures([{ key, policy: TIGHT }]);
      await db.query("UPDATE login_throttle SET window_start = now() - interval '901 seconds', locked_until = NULL WHERE key = $1", [key]);
      assert.deepEqual(await store.recordFailures([{ key, policy: TIGHT }]), [{ failures: 1, locked: false }]);
    });

    test('concurrent failures are all counted (PostgreSQL: several connections)', async () => {
      const store = createLoginThrottleStore(db);
      const account = fresh('account');
      const address = fresh('ip');
      await Promise.all(Array.from({ length: 12 }, () => store.recordFailures([{ key: account, policy: LOOSE }, { key: address, policy: LOOSE }])));
      const { rows } = await db.query<{ key: string; failures: number }>('SELECT key, failures FROM login_throttle WHERE key = ANY($1) ORDER BY key', [[account, address]]);
      assert.deepEqual(
        rows.map((row) => row.failures),
        [12, 12],
      );
    });

    test("the sign-in's first read: lock, failures to clear, and the person's row", async () => {
      const throttle = createLoginThrottle(db);
      const users = createUserStore(db);
      const username = fresh('user').replace(':', '-');
      const ip = `192.0.2.${counter % 250}`;
      const user = await users.insert(
        { username, usernameNormalized: username, email: null, emailVerified: false, name: null, roles: [], disabled: false, mfaRequired: false },
        '$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g',
      );
      assert.ok(user);

      const clean = await throttle.check(username, ip);
      assert.equal(clean.retryAfter, 0);
      assert.equal(clean.accountCounted, false, 'no row: a success has nothing to clear');
      assert.equal(clean.user?.id, user.id);
      assert.equal(clean.user?.mfa_enrolled, false);

      const unknown = await throttle.check(`${username}-nobody`, ip);
      assert.equal(unknown.user, undefined);
      assert.equal(unknown.retryAfter, 0);

      await throttle.failed(username, ip);
      const counted = await throttle.check(username, ip);
      assert.equal(counted.accountCounted, true);
      assert.equal(counted.retryAfter, 0, 'one failure does not lock');

      for (let i = 1; i < ACCOUNT_POLICY.threshold; i++) await throttle.failed(username, ip);
      const locked = await throttle.check(username, ip);
      assert.ok(locked.retryAfter > 0 && locked.retryAfter <= ACCOUNT_POLICY.baseDelaySeconds, `retryAfter ${locked.retryAfter}`);
      assert.equal(locked.user?.id, user.id);

      // Another account from the same address is not locked by it (the address allows more).
      assert.ok(ACCOUNT_POLICY.threshold < IP_POLICY.threshold);
      assert.equal((await throttle.check(`${username}-other`, ip)).retryAfter, 0);

      await throttle.succeeded(username);
      const cleared = await throttle.check(username, ip);
      assert.equal(cleared.accountCounted, false);
      assert.equal(cleared.retryAfter, 0);
      // The address keeps its count: only the account is forgiven by a success.
      const address = await db.query<{ failures: number }>('SELECT failures FROM login_throttle WHERE key = $1', [`ip:${ip}`]);
      assert.equal(address.rows[0]?.failures, ACCOUNT_POLICY.threshold);
    });

    test('a lock on the address alone refuses any account from it', async () => {
      const throttle = createLoginThrottle(db);
      const ip = `198.51.100.${counter % 250}`;
      await db.query("INSERT INTO login_throttle (key, failures, window_start, locked_until, updated_at) VALUES ($1, 40, now(), now() + interval '60 seconds', now())", [`ip:${ip}`]);
      const check = await throttle.check(fresh('anyone'), ip);
      assert.ok(check.retryAfter > 55 && check.retryAfter <= 60, `retryAfter ${check.retryAfter}`);
      assert.equal(check.accountCounted, false);
    });
  });
}
