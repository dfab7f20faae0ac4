import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Database } from '../../src/db/database.js';
import { migrate } from '../../src/db/migrator.js';
import { createOidcModelStore } from '../../src/db/oidc-models.js';
import { pruneOnce } from '../../src/maintenance.js';
import { backends, createTestDatabase, type TestDatabase } from '../support/database.js';

for (const backend of backends) {
  describe(`background pruning (${backend})`, () => {
    let database: TestDatabase;
    let db: Database;

    before(async () => {
      database = await createTestDatabase(backend);
      db = await database.connect();
      await migrate(db);
    });
    after(async () => {
      await db.close();
      await database.drop();
    });

    test('expired models, stale throttle rows and expired code attempts go; live ones stay', async () => {
      const models = createOidcModelStore(db);
      await db.query(
        `INSERT INTO oidc_models (model, id, payload, expires_at)
         SELECT 'Session', 'old-' || i, '{}'::jsonb, now() - interval '1 second' FROM generate_series(1, 1200) AS i`,
      );
      await models.upsert('Session', 'live', { accountId: 'a' }, 3600);
      await models.upsert('Grant', 'forever', { accountId: 'a' }, undefined);
      await db.query(
        `INSERT INTO login_throttle (key, failures, window_start, locked_until, updated_at) VALUES
           ('account:stale', 3, now() - interval '2 hours', NULL, now() - interval '2 hours'),
           ('account:locked', 9, now() - interval '2 hours', now() + interval '10 minutes', now() - interval '2 hours'),
           ('account:fresh', 1, now(), NULL, now())`,
      );

      await db.query(
        `INSERT INTO audit_events (occurred_at, type, target) VALUES
           (now() - interval '91 days', 'old.event', 'x'), (now() - interval '89 days', 'kept.event', 'y')`,
      );
      const [user] = (
        await db.query<{ id: string }>("INSERT INTO users (username, username_normalized, password_hash) VALUES ('pruned', 'pruned', 'x') RETURNING id")
      ).rows;
      await db.query(
        `INSERT INTO sign_in_code_attempts (attempt_id, account_id, codes, expires_at) VALUES
           ('attempt-expired', $1, 2, now() - interval '1 second'), ('attempt-live', $1, 1, now() + interval '30 minutes')`,
        [user!.id],
      );
      await db.query(
        `INSERT INTO device_code_polls (code_hash, polled_at, interval_seconds, expires_at) VALUES
           ('poll-expired', now() - interval '11 minutes', 5, now() - interval '1 second'), ('poll-live', now(), 5, now() + interval '10 minutes')`,
      );
      // A wrong-user-code counter in its 10-minute window outlives the pages' one-minute windows.
      await db.query(
        `INSERT INTO request_rate_limits (key, window_start, hits) VALUES
           ('pages:old', now() - interval '30 minutes', 3), ('user-codes:current', now() - interval '5 minutes', 4)`,
      );
      const report = await pruneOnce(db, { auditRetentionDays: 90 });
      assert.equal(report.codeAttempts, 1, 'the expired code attempt');
      assert.equal(report.devicePolls, 1, 'the expired device code pace');
      assert.deepEqual((await db.query<{ code_hash: string }>('SELECT code_hash FROM device_code_polls')).rows.map((r) => r.code_hash), ['poll-live']);
      assert.deepEqual((await db.query<{ key: string }>('SELECT key FROM request_rate_limits')).rows.map((r) => r.key), ['user-codes:current']);
      const attempts = await db.query<{ attempt_id: string }>('SELECT attempt_id FROM sign_in_code_attempts');
      assert.deepEqual(attempts.rows.map((r) => r.attempt_id), ['attempt-live']);
      assert.equal(report.models, 1_200, 'more than one batch of expired models');
      assert.equal(report.throttleRows, 1);
      assert.equal(report.auditEvents, 1);
      const audit = await db.query<{ type: string }>('SELECT type FROM audit_events');
      assert.deepEqual(audit.rows.map((r) => r.type), ['kept.event']);
      const { rows } = await db.query<{ id: string }>('SELECT id FROM oidc_models ORDER BY id');
      assert.deepEqual(rows.map((r) => r.id), ['forever', 'live']);
      const keys = await db.query<{ key: string }>('SELECT key FROM login_throttle ORDER BY key');
      assert.deepEqual(keys.rows.map((r) => r.key), ['account:fresh', 'account:locked']);
    });

    test('two pruners at once delete each row once and never block each other', { skip: backend === 'pglite' ? 'one connection on PGlite' : false }, async () => {
      await db.query(
        `INSERT INTO oidc_models (model, id, payload, expires_at)
         SELECT 'Interaction', 'gone-' || i, '{}'::jsonb, now() - interval '1 second' FROM generate_series(1, 500) AS i`,
      );
      const other = await database.connect();
      try {
        const [a, b] = await Promise.all([pruneOnce(db, { auditRetentionDays: 90 }), pruneOnce(other, { auditRetentionDays: 90 })]);
        assert.equal(a.models + b.models, 500);
      } finally {
        await other.close();
      }
    });
  });
}
