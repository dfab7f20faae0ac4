import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { ACCOUNT_POLICY, accountKey, createLoginThrottle, IP_POLICY } from '../../src/sign-in/throttle.js';
import type { Database } from '../../src/db/database.js';
import { createLoginThrottleStore, type ThrottlePolicy } from '../../src/db/login-throttle.js';
import { migrate } from '../../src/db/migrator.js';
import { createUserStore } from '../../src/db/users.js';
import { backends, createTestDatabase, type TestDatabase } from '../support/database.js';

/**
 * The sign-in throttle's statements against the real database: an attempt is reserved (counted)
 * for the account and the address in one statement, each by its own policy, only while neither is
 * locked; concurrent reservations get exactly the threshold; an attempt that was no failure is
 * taken back; the password step's statement also returns the person's row.
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
    async function failures(key: string): Promise<number | undefined> {
      const { rows } = await db.query<{ failures: number }>('SELECT failures FROM login_throttle WHERE key = $1', [key]);
      return rows[0]?.failures;
    }
    const endLocks = (keys: string[]) => db.query("UPDATE login_throttle SET locked_until = now() - interval '1 second' WHERE key = ANY($1)", [keys]);

    test('two keys reserved in one statement follow their own policies; a lock on either refuses and counts nothing', async () => {
      const store = createLoginThrottleStore(db);
      const tight = fresh('account');
      const loose = fresh('ip');
      const keys = [{ key: tight, policy: TIGHT }, { key: loose, policy: LOOSE }];
      const first = await store.reserve(keys);
      assert.deepEqual(first.reservations.map((r) => [r.key, r.failures, r.locked]), [[tight, 1, false], [loose, 1, false]]);
      const second = await store.reserve(keys);
      assert.deepEqual(second.reservations.map((r) => [r.failures, r.locked]), [[2, true], [2, false]], 'the second reservation locks TIGHT');
      const refused = await store.reserve(keys);
      assert.equal(refused.reservations.length, 0);
      assert.ok(refused.lockedSeconds > 25 && refused.lockedSeconds <= 30, `locked for ${refused.lockedSeconds}`);
      assert.equal(await failures(loose), 2, 'the refused attempt counted for neither key');

      // Growing delay: TIGHT at its 3rd failure 30 s × 2 = 60 s; at its 4th 120 s, capped at 100.
      await endLocks([tight]);
      await store.reserve(keys);
      const third = await lockSeconds(tight);
      assert.ok(third !== null && third > 55 && third <= 60, `third ${third}`);
      await endLocks([tight]);
      const fourth = await store.reserve(keys);
      assert.deepEqual(fourth.reservations.map((r) => [r.failures, r.locked]), [[4, true], [4, true]], 'LOOSE locks at its 4th');
      const tightLock = await lockSeconds(tight);
      const looseLock = await lockSeconds(loose);
      assert.ok(tightLock !== null && tightLock > 95 && tightLock <= 100, `tight lock ${tightLock}`);
      assert.ok(looseLock !== null && looseLock > 55 && looseLock <= 60, `loose lock ${looseLock}`);
      // The answer's order is the order asked.
      await endLocks([tight, loose]);
      const reversed = await store.reserve([{ key: loose, policy: LOOSE }, { key: tight, policy: TIGHT }]);
      assert.deepEqual(reversed.reservations.map((r) => [r.key, r.failures]), [[loose, 5], [tight, 5]]);
      await assert.rejects(store.reserve([{ key: tight, policy: TIGHT }, { key: tight, policy: LOOSE }]), /distinct/);
    });

    test('a window that ran out starts counting again from one', async () => {
      const store = createLoginThrottleStore(db);
      const key = fresh('account');
      await store.reserve([{ key, policy: LOOSE }]);
      await store.reserve([{ key, policy: LOOSE }]);
      await db.query("UPDATE login_throttle SET window_start = now() - interval '901 seconds' WHERE key = $1", [key]);
      const again = await store.reserve([{ key, policy: LOOSE }]);
      assert.deepEqual(again.reservations.map((r) => [r.failures, r.locked]), [[1, false]]);
    });

    test('concurrent reservations get exactly the threshold between them (PostgreSQL: several connections), also for keys never seen before', async () => {
      const store = createLoginThrottleStore(db);
      // Fresh keys each round: the first burst for a key is the one with no row to lock yet.
      for (let round = 0; round < 10; round += 1) {
        const account = fresh('account');
        const address = fresh('ip');
        const results = await Promise.all(Array.from({ length: 40 }, () => store.reserve([{ key: account, policy: LOOSE }, { key: address, policy: LOOSE }])));
        const allowed = results.filter((r) => r.reservations.length > 0);
        assert.equal(allowed.length, LOOSE.threshold, `round ${round}: as many tries as sequential attempts get`);
        assert.deepEqual(allowed.map((r) => r.reservations[0]!.failures).sort(), [1, 2, 3, 4]);
        assert.deepEqual([await failures(account), await failures(address)], [4, 4]);
      }
    });

    test('an attempt taken back is no failure: the count drops and the lock it set is lifted', async () => {
      const store = createLoginThrottleStore(db);
      const key = fresh('account');
      for (let i = 1; i < TIGHT.threshold; i += 1) await store.reserve([{ key, policy: TIGHT }]);
      const locking = await store.reserve([{ key, policy: TIGHT }]);
      assert.equal(locking.reservations[0]!.locked, true);
      assert.equal((await store.reserve([{ key, policy: TIGHT }])).reservations.length, 0, 'locked meanwhile');
      await store.release(locking.reservations);
      assert.equal(await failures(key), TIGHT.threshold - 1);
      assert.equal(await lockSeconds(key), null, 'no lock left');
      assert.equal((await store.reserve([{ key, policy: TIGHT }])).reservations.length, 1);
    });

    test("the password step's statement: the reservation and the person's row; a success forgets the account's failures, not the address's", async () => {
      const throttle = createLoginThrottle(db);
      const users = createUserStore(db);
      const username = fresh('user').replace(':', '-');
      const ip = `192.0.2.${counter % 250}`;
      const user = await users.insert(
        { username, usernameNormalized: username, email: null, emailVerified: false, name: null, roles: [], disabled: false, mfaRequired: false },
        '$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g',
      );
      assert.ok(user);

      const first = await throttle.reservePassword(username, accountKey(username), ip);
      assert.ok(first.allowed);
      assert.equal(first.user?.id, user.id);
      assert.equal(first.user?.mfa_enrolled, false);
      assert.equal(first.reservation.subject.failures, 1, 'counted before any password is checked');

      const unknown = await throttle.reservePassword(`${username}-nobody`, accountKey(`${username}-nobody`), ip);
      assert.ok(unknown.allowed);
      assert.equal(unknown.user, undefined);

      for (let i = 1; i < ACCOUNT_POLICY.threshold; i += 1) assert.ok((await throttle.reservePassword(username, accountKey(username), ip)).allowed);
      const locked = await throttle.reservePassword(username, accountKey(username), ip);
      assert.equal(locked.allowed, false);
      assert.ok(!locked.allowed && locked.retryAfter > 0 && locked.retryAfter <= ACCOUNT_POLICY.baseDelaySeconds);
      assert.equal(locked.user?.id, user.id, 'the row is read even when refused');

      // Another account from the same address is not locked by it (the address allows more).
      assert.ok(ACCOUNT_POLICY.threshold < IP_POLICY.threshold);
      const other = await throttle.reservePassword(`${username}-other`, accountKey(`${username}-other`), ip);
      assert.ok(other.allowed);

      await throttle.succeeded(other.reservation);
      assert.equal(await failures(accountKey(`${username}-other`)), undefined, "the account's counter is gone");
      // The address keeps the failures; the successful attempt itself is taken back from it.
      assert.equal(await failures(`ip:${ip}`), ACCOUNT_POLICY.threshold + 1);
    });

    test('a lock on the address alone refuses any account from it, and counts nothing', async () => {
      const throttle = createLoginThrottle(db);
      const ip = `198.51.100.${counter % 250}`;
      await db.query("INSERT INTO login_throttle (key, failures, window_start, locked_until, updated_at) VALUES ($1, 40, now(), now() + interval '60 seconds', now())", [`ip:${ip}`]);
      const anyone = fresh('anyone');
      const refused = await throttle.reservePassword(anyone, accountKey(anyone), ip);
      assert.ok(!refused.allowed && refused.retryAfter > 55 && refused.retryAfter <= 60, JSON.stringify(refused));
      // Nothing counted (the reservation's row exists, at zero, so later attempts lock it).
      assert.equal((await failures(accountKey(anyone))) ?? 0, 0);
    });
  });
}
