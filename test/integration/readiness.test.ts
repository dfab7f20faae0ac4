import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import * as oidc from 'openid-client';
import { adminCall, adminToken } from '../support/admin-api.js';
import { CookieClient, formAction, hiddenField } from '../support/cookie-client.js';
import { backends, createTestDatabase, postgresUrl, type TestDatabase } from '../support/database.js';
import { startTestServer, waitFor, type TestServer } from '../support/server.js';
import { pkceParams, startAuthorization } from '../support/sign-in.js';
import { startTcpProxy, type TcpProxy } from '../support/tcp-proxy.js';

// SPEC §6: /readyz reports the database and migrations; when PostgreSQL goes away requests fail
// fast with 503, the process stays up, and it recovers by itself when the database returns.

interface Readiness {
  status: string;
  checks: { database: string; migrations: string };
}

async function readyz(server: TestServer): Promise<{ status: number; body: Readiness }> {
  const response = await fetch(`${server.url}/readyz`);
  return { status: response.status, body: (await response.json()) as Readiness };
}

function requestToken(server: TestServer, signal?: AbortSignal): Promise<Response> {
  return fetch(`${server.url}/token`, {
    method: 'POST',
    headers: {
      authorization: `Basic ${Buffer.from(`${server.admin.clientId}:${server.admin.clientSecret}`).toString('base64')}`,
      'content-type': 'application/x-www-form-urlencoded',
    },
    body: 'grant_type=client_credentials&scope=admin:clients',
    ...(signal === undefined ? {} : { signal }),
  });
}

for (const backend of backends) {
  describe(`readiness on a healthy server (${backend})`, () => {
    let server: TestServer;

    before(async () => {
      server = await startTestServer({ backend });
    });
    after(() => server?.close());

    test('/readyz is 200 and reports the database and migrations ok', async () => {
      const { status, body } = await readyz(server);
      assert.equal(status, 200);
      assert.deepEqual(body, { status: 'ready', checks: { database: 'ok', migrations: 'ok' } });
    });

    test('/readyz is 503 with migrations pending while the last migration is not recorded', async () => {
      const { rows } = await server.db.query<{ id: number; name: string; checksum: string; applied_at: Date }>(
        'SELECT id, name, checksum, applied_at FROM schema_migrations ORDER BY id DESC LIMIT 1',
      );
      const last = rows[0];
      assert.ok(last, 'at least one migration is recorded');
      await server.db.query('DELETE FROM schema_migrations WHERE id = $1', [last.id]);
      try {
        const { status, body } = await readyz(server);
        assert.equal(status, 503);
        assert.equal(body.status, 'unavailable');
        assert.deepEqual(body.checks, { database: 'ok', migrations: 'pending' });
      } finally {
        await server.db.query('INSERT INTO schema_migrations (id, name, checksum, applied_at) VALUES ($1, $2, $3, $4)', [
          last.id,
          last.name,
          last.checksum,
          last.applied_at,
        ]);
      }
      assert.equal((await readyz(server)).status, 200);
    });
  });
}

describe('PostgreSQL going away and coming back', { skip: postgresUrl === undefined ? 'needs TEST_DATABASE_URL or DATABASE_URL' : false }, () => {
  let database: TestDatabase;
  let proxy: TcpProxy;
  let server: TestServer;

  before(async () => {
    database = await createTestDatabase('postgres');
    const target = new URL(database.url ?? '');
    proxy = await startTcpProxy(target.hostname || '127.0.0.1', Number(target.port || 5432));
    server = await startTestServer({ database, databaseUrl: proxy.url(database.url ?? '') });
  });
  after(async () => {
    await proxy?.restore();
    await server?.close();
    await proxy?.close();
    await database?.drop();
  });

  test('is ready and issues tokens while the database is reachable', async () => {
    const { status, body } = await readyz(server);
    assert.equal(status, 200);
    assert.equal(body.status, 'ready');
    const token = await requestToken(server);
    assert.equal(token.status, 200);
  });

  test('fails fast with 503 while the database is gone, and recovers by itself', async () => {
    await proxy.cut();

    const unready = await waitFor(
      async () => {
        const result = await readyz(server);
        return result.status === 503 ? result : undefined;
      },
      5_000,
      100,
    );
    assert.equal(unready.body.checks.database, 'unreachable');

    const health = await fetch(`${server.url}/healthz`);
    assert.equal(health.status, 200, 'the process itself stays alive');

    const started = Date.now();
    const token = await requestToken(server, AbortSignal.timeout(5_000));
    assert.ok(Date.now() - started < 5_000, 'the token endpoint answers rather than hangs');
    assert.equal(token.status, 503);
    assert.match(token.headers.get('content-type') ?? '', /application\/json/);
    const error = (await token.json()) as { error?: string };
    assert.ok(
      error.error === 'temporarily_unavailable' || error.error === 'server_error',
      `OAuth error while the database is gone, got ${JSON.stringify(error)}`,
    );

    await proxy.restore();

    await waitFor(async () => (await readyz(server)).status === 200, 30_000, 200);
    const issued = await waitFor(
      async () => {
        const response = await requestToken(server);
        return response.status === 200 ? ((await response.json()) as { access_token?: string }) : undefined;
      },
      30_000,
      200,
    );
    assert.equal(typeof issued.access_token, 'string');
    // An outage is an operational condition, logged as a warning, not an error with a stack.
    const levels = server.logs.lines.map((line) => (JSON.parse(line) as { level?: string }).level);
    assert.ok(!levels.includes('error') && !levels.includes('fatal'), server.logs.text);
    assert.match(server.logs.text, /"msg":"database unavailable"/);
  });

  test('sign-in pages answer the HTML error page with 503 while the database is gone, then work again', async () => {
    const redirect = 'http://127.0.0.1:9/callback';
    const token = await adminToken(server, 'admin:clients admin:users');
    const client = await adminCall<{ client_id: string; client_secret: string }>(
      server,
      'POST',
      '/clients',
      { client_name: 'Outage app', grant_types: ['authorization_code'], redirect_uris: [redirect], allowed_resources: [], scope: 'openid' },
      token,
    );
    assert.equal(client.status, 201, JSON.stringify(client.body));
    assert.equal((await adminCall(server, 'POST', '/users', { username: 'outage-user', password: 'correct horse battery staple' }, token)).status, 201);
    const config = await oidc.discovery(new URL(server.issuer), client.body.client_id, client.body.client_secret, undefined, { execute: [oidc.allowInsecureRequests] });
    const browser = new CookieClient();
    const { params } = await pkceParams(redirect, 'openid');
    const page = await startAuthorization(browser, config, server.url, params);
    assert.equal(page.status, 200);
    const pageUrl = new URL(page.url);
    const html = await page.text();
    const login = { action: new URL(formAction(html, /\/login$/)!, server.url), csrf: hiddenField(html, 'csrf') ?? '' };
    const logLinesBefore = server.logs.lines.length;

    await proxy.cut();
    try {
      await waitFor(async () => (await readyz(server)).status === 503, 5_000, 100);
      const shown = async (what: string, request: () => Promise<Response>) => {
        const started = Date.now();
        const response = await request();
        const body = await response.text();
        assert.ok(Date.now() - started < 5_000, `${what}: answered rather than hung`);
        assert.equal(response.status, 503, `${what}: ${body}`);
        assert.match(response.headers.get('content-type') ?? '', /^text\/html/, what);
        assert.match(body, /temporarily unavailable/i, `${what}: the error page`);
        assert.doesNotMatch(body, /\bat .+\.(ts|js):\d+|Error:|ECONNREFUSED|pg-pool|node_modules/, `${what}: no stack or internals`);
        assert.doesNotMatch(body, /name="password"/, `${what}: not the login form`);
      };
      await shown('the interaction page', () => browser.request(pageUrl, { signal: AbortSignal.timeout(5_000) }));
      await shown('the login POST', () =>
        browser.request(login.action, {
          method: 'POST',
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
          body: new URLSearchParams({ csrf: login.csrf, username: 'outage-user', password: 'correct horse battery staple' }),
          signal: AbortSignal.timeout(5_000),
        }),
      );
      await shown('a new authorization request', () =>
        browser.request(oidc.buildAuthorizationUrl(config, params), { headers: { accept: 'text/html' }, signal: AbortSignal.timeout(5_000) }),
      );
    } finally {
      await proxy.restore();
    }

    await waitFor(async () => (await readyz(server)).status === 200, 30_000, 200);
    // The same sign-in carries on: its interaction was kept in the database.
    const again = await browser.request(pageUrl);
    assert.equal(again.status, 200);
    assert.match(await again.text(), /name="password"/);
    // An outage is logged as a warning, never as an error with a stack.
    const levels = server.logs.lines.slice(logLinesBefore).map((line) => (JSON.parse(line) as { level?: string }).level);
    assert.ok(!levels.includes('error') && !levels.includes('fatal'), server.logs.lines.slice(logLinesBefore).join('\n'));
  });
});
