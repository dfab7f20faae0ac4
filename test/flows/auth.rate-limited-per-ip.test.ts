import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { adminCall } from '../support/admin-api.js';
import { startTestServer, waitFor, type TestServer } from '../support/server.js';

/**
 * SPEC §6: "Unauthenticated requests that create state (`/auth`, interaction pages, device codes)
 * are rate-limited per client IP." Each /auth request stores a 30-minute interaction; one address
 * gets AUTH_RATE_LIMIT_PER_IP of them (and of the hosted pages and end-session) a minute, counted
 * in the database, so two instances share the count. Addresses come from X-Forwarded-For under
 * TRUST_PROXY.
 */

const LIMIT = 6;
const REDIRECT = 'http://127.0.0.1:9/callback';

describe('unauthenticated state-creating requests are rate-limited per client IP, across instances', () => {
  let one: TestServer;
  let two: TestServer;
  let clientId: string;

  before(async () => {
    const env = { TRUST_PROXY: 'true', AUTH_RATE_LIMIT_PER_IP: String(LIMIT) };
    one = await startTestServer({ env });
    two = await startTestServer({ database: one.database, env: { ...env, MASTER_KEY: one.masterKey, ISSUER: one.issuer } });
    const created = await adminCall<{ client_id: string }>(one, 'POST', '/clients', {
      client_name: 'Shop',
      grant_types: ['authorization_code'],
      redirect_uris: [REDIRECT],
      scope: 'openid',
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    clientId = created.body.client_id;
  });
  after(async () => {
    await two?.close();
    await one?.close();
  });

  /** The window is a fixed minute: start a test well inside one, so its requests share it. */
  async function freshWindow(): Promise<void> {
    await waitFor(async () => {
      const { rows } = await one.db.query<{ s: number }>('SELECT extract(second FROM now())::float8 AS s');
      return rows[0]!.s < 40;
    }, 30_000, 250);
  }

  function authorize(server: TestServer, from: string): Promise<Response> {
    const query = new URLSearchParams({
      client_id: clientId,
      response_type: 'code',
      redirect_uri: REDIRECT,
      scope: 'openid',
      state: 'state-value',
      code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM',
      code_challenge_method: 'S256',
    });
    return fetch(`${server.url}/auth?${query}`, { headers: { 'x-forwarded-for': from }, redirect: 'manual' });
  }

  async function interactions(): Promise<number> {
    const { rows } = await one.db.query<{ n: number }>("SELECT count(*)::int AS n FROM oidc_models WHERE model = 'Interaction'");
    return rows[0]!.n;
  }

  function assertRefused(response: Response, body: string): void {
    assert.equal(response.status, 429);
    assert.match(response.headers.get('retry-after') ?? '', /^[1-9][0-9]*$/, 'Retry-After in whole seconds');
    assert.ok((response.headers.get('content-type') ?? '').startsWith('text/html'), 'an HTML page for a browser');
    assert.match(body, /Too many requests/);
  }

  test('beyond the limit /auth gets 429 with Retry-After and stores nothing; both instances count into one budget', async () => {
    await freshWindow();
    const before = await interactions();
    // Within the limit: half on each instance, all at once.
    const allowed = await Promise.all(Array.from({ length: LIMIT }, (_, i) => authorize(i % 2 === 0 ? one : two, '203.0.113.10')));
    for (const response of allowed) assert.equal(response.status, 303, 'redirected to the login page');
    const loginPage = allowed[0]!.headers.get('location')!;
    assert.equal(await interactions(), before + LIMIT);

    const refused = await Promise.all(Array.from({ length: 4 }, (_, i) => authorize(i % 2 === 0 ? one : two, '203.0.113.10')));
    for (const response of refused) assertRefused(response, await response.text());
    assert.equal(await interactions(), before + LIMIT, 'no interaction stored for refused requests');

    // The hosted pages and end-session share the address's budget.
    const page = await fetch(new URL(loginPage, one.url), { headers: { 'x-forwarded-for': '203.0.113.10' }, redirect: 'manual' });
    assertRefused(page, await page.text());
    const logout = await fetch(`${two.url}/session/end`, { headers: { 'x-forwarded-for': '203.0.113.10' }, redirect: 'manual' });
    assertRefused(logout, await logout.text());

    // Another address is unaffected, on either instance.
    assert.equal((await authorize(two, '198.51.100.10')).status, 303);
    assert.equal((await authorize(one, '198.51.100.10')).status, 303);
  });

  test('concurrent requests from one address get exactly the limit, not more (one atomic count)', async () => {
    await freshWindow();
    const responses = await Promise.all(Array.from({ length: 30 }, (_, i) => authorize(i % 2 === 0 ? one : two, '203.0.113.20')));
    const statuses = responses.map((r) => r.status);
    assert.equal(statuses.filter((s) => s === 303).length, LIMIT, JSON.stringify(statuses));
    assert.equal(statuses.filter((s) => s === 429).length, 30 - LIMIT, JSON.stringify(statuses));
  });
});
