import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import Koa from 'koa';
import type { AdapterFactory } from 'oidc-provider';
import type { Database, Queryable } from '../../src/db/database.js';
import { migrate } from '../../src/db/migrator.js';
import { createRequestWrites, type RequestWrites } from '../../src/db/request-writes.js';
import { commitSignInWritesTogether } from '../../src/http/sign-in-commit.js';
import { createAdapterFactory, createClientMetadataSource } from '../../src/oidc/adapter.js';
import { createLookupCache } from '../../src/oidc/lookup-cache.js';
import { backends, createTestDatabase, type TestDatabase } from '../support/database.js';

/**
 * A sign-in request's writes (performance issue 23): held back while the request runs, then
 * committed in one transaction before it answers, all or nothing; the request reads its own
 * writes; anything outside a request is written at once.
 */

const HOUR = 3600;

for (const backend of backends) {
  describe(`a request's writes commit together on ${backend}`, () => {
    let database: TestDatabase;
    let db: Database;
    // PostgreSQL: another connection, which sees only what is committed. PGlite is one connection.
    let raw: Database;
    let writes: RequestWrites;
    let adapterFor: AdapterFactory;

    before(async () => {
      database = await createTestDatabase(backend);
      db = await database.connect();
      await migrate(db);
      raw = backend === 'postgres' ? await database.connect() : db;
      writes = createRequestWrites(db);
      adapterFor = createAdapterFactory(db, createClientMetadataSource(db, createLookupCache({ ttlMs: 0, maxEntries: 0, isLive: () => false }), 'http://127.0.0.1:9'), writes);
    });

    after(async () => {
      if (raw !== undefined && raw !== db) await raw.close();
      await db?.close();
      await database?.drop();
    });

    async function stored(model: string, id: string): Promise<Record<string, unknown> | undefined> {
      const { rows } = await raw.query<{ payload: Record<string, unknown>; grant_id: string | null; live: boolean }>(
        'SELECT payload, grant_id, expires_at > now() AS live FROM oidc_models WHERE model = $1 AND id = $2',
        [model, id],
      );
      return rows[0] === undefined ? undefined : { ...rows[0].payload, grant_id: rows[0].grant_id, live: rows[0].live };
    }

    async function auditCount(requestId: string): Promise<number> {
      const { rows } = await raw.query<{ n: number }>('SELECT count(*)::int AS n FROM audit_events WHERE request_id = $1', [requestId]);
      return rows[0]?.n ?? 0;
    }

    const audit = (requestId: string) => async (tx: Queryable) => {
      await tx.query(`INSERT INTO audit_events (type, actor, target, outcome, request_id, details) VALUES ('test.event', NULL, 't', 'success', $1, '{}')`, [requestId]);
    };

    test('writes wait for the end of the request, then the upserts, the delete and the audit step are all stored', async () => {
      const spent = randomUUID();
      const grant = randomUUID();
      const session = randomUUID();
      const requestId = randomUUID();
      await adapterFor('Interaction').upsert(spent, { uid: spent }, HOUR);
      await writes.run(async () => {
        await adapterFor('Interaction').destroy(spent);
        await adapterFor('Grant').upsert(grant, { accountId: 'a', clientId: 'c' }, HOUR);
        await adapterFor('Session').upsert(session, { uid: randomUUID(), grantId: grant }, HOUR);
        await writes.transaction(audit(requestId));
        if (backend === 'postgres') {
          // Not yet committed: another connection (another instance) sees the state before the request.
          assert.ok(await stored('Interaction', spent));
          assert.equal(await stored('Grant', grant), undefined);
          assert.equal(await auditCount(requestId), 0);
        }
      });
      assert.equal(await stored('Interaction', spent), undefined);
      assert.deepEqual(await stored('Grant', grant), { accountId: 'a', clientId: 'c', grant_id: null, live: true });
      assert.equal((await stored('Session', session))?.['grant_id'], grant);
      assert.equal(await auditCount(requestId), 1);
    });

    test('the request reads its own writes, in order', async () => {
      const id = randomUUID();
      await writes.run(async () => {
        await adapterFor('Grant').upsert(id, { accountId: 'first' }, HOUR);
        assert.equal((await adapterFor('Grant').find(id))?.['accountId'], 'first');
        await adapterFor('Grant').destroy(id);
        assert.equal(await adapterFor('Grant').find(id), undefined);
        await adapterFor('Grant').upsert(id, { accountId: 'second' }, HOUR);
      });
      assert.equal((await stored('Grant', id))?.['accountId'], 'second');
    });

    test('all or nothing: when the commit fails, neither the audit step nor the model writes are stored', async () => {
      const id = randomUUID();
      const requestId = randomUUID();
      await assert.rejects(
        writes.run(async () => {
          await adapterFor('Grant').upsert(id, { accountId: 'a' }, HOUR);
          await writes.transaction(audit(requestId));
          await writes.transaction(async (tx) => {
            await tx.query('SELECT 1 / 0');
          });
        }),
        /division by zero/,
      );
      assert.equal(await stored('Grant', id), undefined);
      assert.equal(await auditCount(requestId), 0);
    });

    test('what the request did before it threw is still committed (an audit event is never dropped)', async () => {
      const requestId = randomUUID();
      await assert.rejects(
        writes.run(async () => {
          await writes.transaction(audit(requestId));
          throw new Error('the page failed');
        }),
        /the page failed/,
      );
      assert.equal(await auditCount(requestId), 1);
    });

    test('outside a request, and for work a request leaves running, every write is immediate', async () => {
      const outside = randomUUID();
      await adapterFor('Grant').upsert(outside, { accountId: 'a' }, HOUR);
      assert.ok(await stored('Grant', outside));
      let later: Promise<void> | undefined;
      const afterwards = randomUUID();
      let release: () => void = () => undefined;
      const gate = new Promise<void>((resolve) => (release = resolve));
      await writes.run(() => {
        later = gate.then(() => adapterFor('Grant').upsert(afterwards, { accountId: 'b' }, HOUR));
        return Promise.resolve();
      });
      release();
      await later;
      assert.ok(await stored('Grant', afterwards));
    });
  });
}

describe('the sign-in routes that commit together', () => {
  test('a commit that fails sends no redirect: the browser is not sent on with a code that was never stored', async () => {
    const failing: RequestWrites = {
      run: async (fn) => {
        await fn();
        throw new Error('commit failed');
      },
      transaction: () => Promise.reject(new Error('unused')),
      deferUpsert: () => false,
      deferDestroy: () => false,
      settle: () => Promise.resolve(),
    };
    const app = new Koa();
    app.use(async (ctx, next) => {
      try {
        await next();
      } catch {
        ctx.status = 503;
        ctx.body = 'unavailable';
      }
    });
    app.use(commitSignInWritesTogether(failing));
    app.use((ctx) => {
      ctx.redirect('http://127.0.0.1:9/cb?code=never-stored');
    });
    const server = app.listen(0, '127.0.0.1');
    await once(server, 'listening');
    try {
      const { port } = server.address() as AddressInfo;
      const resumed = await fetch(`http://127.0.0.1:${port}/auth/some-uid`, { redirect: 'manual' });
      assert.equal(resumed.status, 503);
      assert.equal(resumed.headers.get('location'), null);
      // A route outside the list is not held back at all.
      const other = await fetch(`http://127.0.0.1:${port}/interaction/some-uid/consent`, { method: 'POST', redirect: 'manual' });
      assert.equal(other.status, 302);
    } finally {
      server.close();
    }
  });
});
