import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import * as oidc from 'openid-client';
import { adminCall, adminToken } from '../support/admin-api.js';
import { CookieClient, formAction, hiddenField } from '../support/cookie-client.js';
import { postgresUrl } from '../support/database.js';
import { pkceParams } from '../support/sign-in.js';
import { startTestServer, waitFor, type TestServer } from '../support/server.js';

/**
 * Concurrent password guesses get no more tries than sequential ones (SPEC §4): the attempt is
 * counted in PostgreSQL before argon2 runs. A flood of wrong passwords posted at once to one
 * login form, on one instance or split across two, has at most five of them checked (answered
 * 401, one login.failure each); the rest are refused before the check (429); and the right
 * password posted while the flood locks the account does not sign in.
 */

const REDIRECT = 'http://127.0.0.1:9/callback';
const PASSWORD = 'correct horse battery staple';
const THRESHOLD = 5;
const FLOOD = 150;

interface Login {
  readonly browser: CookieClient;
  readonly action: URL;
  readonly csrf: string;
}

async function openLogin(server: TestServer, config: oidc.Configuration, base = server.url): Promise<Login> {
  const browser = new CookieClient();
  // Instances share the issuer, where the pages' redirects and forms point: reach it at `base`.
  browser.routeTo(server.issuer, base);
  const { params } = await pkceParams(REDIRECT, 'openid');
  const url = oidc.buildAuthorizationUrl(config, params);
  const page = await browser.follow(await browser.get(new URL(url.pathname + url.search, base)), base);
  assert.equal(page.status, 200);
  const html = await page.text();
  const action = formAction(html, /\/login$/);
  const csrf = hiddenField(html, 'csrf');
  assert.ok(action !== undefined && csrf !== undefined, 'a login form');
  return { browser, action: new URL(action, base), csrf };
}

async function post(login: Login, username: string, password: string): Promise<number> {
  const response = await login.browser.postForm(login.action, { csrf: login.csrf, username, password });
  await response.text();
  return response.status;
}

async function setUp(server: TestServer, username: string): Promise<{ config: oidc.Configuration; userId: string }> {
  const token = await adminToken(server, 'admin:clients admin:users');
  const client = await adminCall<{ client_id: string; client_secret: string }>(
    server,
    'POST',
    '/clients',
    { client_name: 'Flooded', grant_types: ['authorization_code'], redirect_uris: [REDIRECT], scope: 'openid', first_party: true },
    token,
  );
  assert.equal(client.status, 201, JSON.stringify(client.body));
  const user = await adminCall<{ id: string }>(server, 'POST', '/users', { username, password: PASSWORD }, token);
  assert.equal(user.status, 201, JSON.stringify(user.body));
  const config = await oidc.discovery(new URL(server.issuer), client.body.client_id, client.body.client_secret, undefined, { execute: [oidc.allowInsecureRequests] });
  return { config, userId: user.body.id };
}

function tally(statuses: readonly number[]): Record<number, number> {
  const counts: Record<number, number> = {};
  for (const status of statuses) counts[status] = (counts[status] ?? 0) + 1;
  return counts;
}

async function failuresAudited(server: TestServer, userId: string): Promise<number> {
  const { rows } = await server.db.query<{ n: number }>("SELECT count(*)::int AS n FROM audit_events WHERE type = 'login.failure' AND target = $1", [userId]);
  return rows[0]!.n;
}

/** The flood, and the right password posted (on `rightOn`) as soon as the database shows the account locked. */
async function floodThenRight(server: TestServer, logins: readonly Login[], rightOn: Login, username: string) {
  const flood = Promise.all(Array.from({ length: FLOOD }, (_, i) => post(logins[i % logins.length]!, username, `wrong password number ${i}`)));
  await waitFor(async () => {
    const { rows } = await server.db.query("SELECT 1 FROM login_throttle WHERE key = $1 AND locked_until > now()", [`account:${username}`]);
    return rows.length > 0;
  });
  const right = await rightOn.browser.postForm(rightOn.action, { csrf: rightOn.csrf, username, password: PASSWORD });
  await right.text();
  return { statuses: await flood, right };
}

describe('concurrent password guesses on one instance', () => {
  let server: TestServer;
  let config: oidc.Configuration;
  let userId: string;

  before(async () => {
    server = await startTestServer();
    ({ config, userId } = await setUp(server, 'flooded'));
  });
  after(() => server?.close());

  test(`${FLOOD} concurrent wrong passwords: at most ${THRESHOLD} are checked, the rest are refused before argon2, and the right password is refused while locked`, async () => {
    const login = await openLogin(server, config);
    const { statuses, right } = await floodThenRight(server, [login], login, 'flooded');
    const counts = tally(statuses);
    const checked = counts[401] ?? 0;
    assert.ok(checked >= 1 && checked <= THRESHOLD, `checked ${checked} of ${FLOOD}: ${JSON.stringify(counts)}`);
    assert.equal(checked + (counts[429] ?? 0), FLOOD, `every other guess refused: ${JSON.stringify(counts)}`);
    assert.equal(await failuresAudited(server, userId), checked, 'one login.failure per checked guess');
    const { rows } = await server.db.query<{ failures: number }>('SELECT failures FROM login_throttle WHERE key = $1', ['account:flooded']);
    assert.equal(rows[0]?.failures, THRESHOLD, 'the counter holds the tries allowed, not the flood');

    assert.equal(right.status, 429, 'the right password, posted while the flood locks the account, is refused');
    assert.equal(right.headers.get('location'), null, 'no redirect, no code');
    assert.ok(Number(right.headers.get('retry-after')) > 0);
  });
});

describe('concurrent password guesses across two instances on one database', { skip: postgresUrl === undefined ? 'needs PostgreSQL (TEST_DATABASE_URL)' : false }, () => {
  let one: TestServer;
  let two: TestServer;
  let config: oidc.Configuration;
  let userId: string;

  before(async () => {
    one = await startTestServer();
    // Instances behind one load balancer share the issuer, the database and MASTER_KEY.
    two = await startTestServer({ database: one.database, env: { MASTER_KEY: one.masterKey, ISSUER: one.issuer } });
    ({ config, userId } = await setUp(one, 'split'));
  });
  after(async () => {
    await two?.close();
    await one?.close();
  });

  test(`${FLOOD} wrong passwords split over two instances: at most ${THRESHOLD} checked between them`, async () => {
    const logins = [await openLogin(one, config, one.url), await openLogin(two, config, two.url)];
    const { statuses, right } = await floodThenRight(one, logins, logins[1]!, 'split');
    const counts = tally(statuses);
    const checked = counts[401] ?? 0;
    assert.ok(checked >= 1 && checked <= THRESHOLD, `checked ${checked} of ${FLOOD}: ${JSON.stringify(counts)}`);
    assert.equal(checked + (counts[429] ?? 0), FLOOD, JSON.stringify(counts));
    assert.equal(await failuresAudited(one, userId), checked);
    assert.equal(right.status, 429, 'the right password on the other instance is refused while locked');
    assert.equal(right.headers.get('location'), null);
  });
});
