import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import { createClientStore } from '../../src/db/clients.js';
import type { Database } from '../../src/db/database.js';
import { migrate } from '../../src/db/migrator.js';
import { createResourceServerStore } from '../../src/db/resource-servers.js';
import { subscribeToChanges, type ChangeFeed, type ChangeKind } from '../../src/db/change-feed.js';
import { createEnabledProviders, type EnabledProviders } from '../../src/federation/enabled-providers.js';
import { backends, createTestDatabase, postgresUrl, type TestDatabase } from '../support/database.js';

/** Polls `check` until it holds or the deadline passes (no fixed sleeps). */
async function eventually(what: string, check: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

const client = (id: string) => ({
  clientId: id,
  clientName: id,
  clientSecretHash: null,
  metadata: { grant_types: ['client_credentials'], token_endpoint_auth_method: 'none' },
  allowedResources: [],
  requireMfa: false,
});

for (const backend of backends) {
  describe(`change notifications for the token-path caches (${backend})`, () => {
    let database: TestDatabase;
    let db: Database;
    let feed: ChangeFeed;
    const seen: string[] = [];
    const states: boolean[] = [];
    /** Dropped by the feed, as src/background.ts does. */
    let enabledProviders: EnabledProviders | undefined;

    before(async () => {
      database = await createTestDatabase(backend);
      db = await database.connect();
      await migrate(db);
      feed = subscribeToChanges(db, {
        onChange: (kind: ChangeKind, key: string) => {
          seen.push(`${kind}:${key}`);
          if (kind === 'identity_provider') enabledProviders?.invalidate();
        },
        onState: (live) => states.push(live),
      });
      await eventually('the feed is live', () => feed.live());
    });

    after(async () => {
      await feed?.close();
      await db?.close();
      await database?.drop();
    });

    test('a client created, changed and deleted is announced each time, after commit only', async () => {
      const clients = createClientStore(db);
      await clients.insert(client('svc-a'));
      await eventually('insert announced', () => seen.includes('client:svc-a'));
      seen.length = 0;

      await db.transaction(async (tx) => {
        await createClientStore(tx).update('svc-a', { clientName: 'renamed' });
        throw new Error('rolled back');
      }).catch(() => undefined);
      await clients.update('svc-a', { requireMfa: true }); // a later committed change, to know the feed has caught up
      await eventually('update announced', () => seen.includes('client:svc-a'));
      assert.deepEqual(seen, ['client:svc-a'], 'the rolled-back change was never announced');

      seen.length = 0;
      await clients.delete('svc-a');
      await eventually('delete announced', () => seen.includes('client:svc-a'));
    });

    test('resource servers are announced by identifier, also by SQL that bypasses Gatehouse', async () => {
      const store = createResourceServerStore(db);
      const created = await store.insert('https://orders.example', {
        name: 'orders',
        scopes: ['orders:read'],
        accessTokenTtl: 300,
        signingAlg: 'ES256',
        innerEncryptionJwk: null,
        encryptWholeToken: false,
        tokenFormat: 'jwt',
        requireSenderConstraint: false,
      });
      assert.ok(created);
      await eventually('insert announced', () => seen.includes('resource_server:https://orders.example'));
      seen.length = 0;
      await db.query(`UPDATE resource_servers SET identifier = 'https://billing.example' WHERE id = $1`, [created.id]);
      await eventually('old and new identifiers announced', () =>
        seen.includes('resource_server:https://orders.example') && seen.includes('resource_server:https://billing.example'),
      );
    });

    test('identity providers are announced by any change, SQL included; the login page\'s cached list is read once and reloaded after each announcement', async () => {
      let reads = 0;
      // Read through a function: assert.equal narrows a variable to the literal it checked.
      const readsSoFar = () => reads;
      // Counts the statements that read the table, as the cached list makes them.
      const counting = new Proxy(db, {
        get(target, property, receiver) {
          if (property !== 'query') return Reflect.get(target, property, receiver) as unknown;
          return ((text: string, values?: readonly unknown[]) => {
            if (text.includes('FROM identity_providers')) reads += 1;
            return target.query(text, values);
          }) as Database['query'];
        },
      });
      let live = true;
      enabledProviders = createEnabledProviders(counting, { isLive: () => live && feed.live() });
      assert.deepEqual(await enabledProviders.list(), []);
      assert.deepEqual(await enabledProviders.list(), []);
      assert.equal(readsSoFar(), 1, 'the second render was served from the cache');

      const { rows } = await db.query<{ id: string }>(
        `INSERT INTO identity_providers (name, issuer, client_id, email_domains) VALUES ('Corp', 'https://sso.corp.example', 'gh', '{corp.example}') RETURNING id`,
      );
      await eventually('insert announced', () => seen.includes('identity_provider:'));
      assert.deepEqual(await enabledProviders.list(), [{ id: rows[0]!.id, name: 'Corp', emailDomains: ['corp.example'] }]);
      assert.equal(readsSoFar(), 2);
      assert.ok(!JSON.stringify(await enabledProviders.list()).includes('client'), 'no client id or secret is kept');

      seen.length = 0;
      await db.query(`UPDATE identity_providers SET enabled = false WHERE id = $1`, [rows[0]!.id]);
      await eventually('disabling announced', () => seen.includes('identity_provider:'));
      assert.deepEqual(await enabledProviders.list(), []);

      // While the feed is not known to flow, nothing is served from the cache.
      live = false;
      const before = readsSoFar();
      await enabledProviders.list();
      await enabledProviders.list();
      assert.equal(readsSoFar(), before + 2);
      enabledProviders = undefined;
    });

    test('a person is announced by id when what the gateway reads changes (roles, status, names), not on other writes', async () => {
      const { rows } = await db.query<{ id: string }>(
        `INSERT INTO users (username, username_normalized, password_hash) VALUES ('feed', 'feed', 'x') RETURNING id`,
      );
      const id = rows[0]!.id;
      await eventually('insert announced', () => seen.includes(`user:${id}`));
      seen.length = 0;
      await db.query(`UPDATE users SET password_changed_at = now() WHERE id = $1`, [id]);
      await db.query(`UPDATE users SET roles = '{staff}' WHERE id = $1`, [id]);
      await eventually('the role change announced', () => seen.includes(`user:${id}`));
      assert.deepEqual(seen, [`user:${id}`], 'the password timestamp alone was not announced');
      seen.length = 0;
      await db.query(`UPDATE users SET disabled = true WHERE id = $1`, [id]);
      await eventually('disabling announced', () => seen.includes(`user:${id}`));
      seen.length = 0;
      await db.query(`DELETE FROM users WHERE id = $1`, [id]);
      await eventually('deletion announced', () => seen.includes(`user:${id}`));
    });
  });
}

describe('change notifications survive a lost listener connection (postgres)', { skip: postgresUrl === undefined ? 'needs PostgreSQL (TEST_DATABASE_URL)' : false }, () => {
  let database: TestDatabase;
  let db: Database;

  before(async () => {
    database = await createTestDatabase('postgres');
    db = await database.connect();
    await migrate(db);
  });

  after(async () => {
    await db?.close();
    await database?.drop();
  });

  test('the feed reports not-live when its connection dies, reconnects, and announces again', async () => {
    const seen: string[] = [];
    const states: boolean[] = [];
    const feed = subscribeToChanges(db, { onChange: (kind, key) => seen.push(`${kind}:${key}`), onState: (live) => states.push(live) });
    try {
      await eventually('live', () => feed.live());
      const admin = new pg.Client({ connectionString: database.url });
      await admin.connect();
      try {
        const { rowCount } = await admin.query(
          `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'gatehouse-listener'`,
        );
        assert.equal(rowCount, 1, 'exactly one listener connection');
      } finally {
        await admin.end();
      }
      await eventually('not live after the connection died', () => states.includes(false));
      await eventually('live again', () => feed.live());
      assert.deepEqual(states, [true, false, true]);

      await createClientStore(db).insert(client('svc-after'));
      await eventually('announced after reconnecting', () => seen.includes('client:svc-after'));
    } finally {
      await feed.close();
    }
    assert.equal(feed.live(), false);
  });
});
