import assert from 'node:assert/strict';
import { request } from 'node:http';
import { after, before, describe, test } from 'node:test';
import { adminCall, adminToken, createResourceServer } from '../support/admin-api.js';
import { CookieClient } from '../support/cookie-client.js';
import { postgresUrl } from '../support/database.js';
import { startTestServer, waitFor, type TestServer } from '../support/server.js';
import { submitLogin } from '../support/sign-in.js';

/**
 * SPEC §7 browser sign-in, from the gateway's side of the wire, on two instances of one
 * deployment: the gateway forwards `/.gatehouse/` on the protected host (here
 * shop.example.test, on https) to whichever instance, with the browser's Host and
 * X-Forwarded-Proto; the doors see the cookie the browser sends. The sign-in starts on one
 * instance and its callback lands on the other.
 */

const SHOP = 'shop.example.test';
const RESOURCE = 'https://shop-api.example.test';
const PASSWORD = 'browser sign-in pass phrase';

interface RawResponse {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: string;
}

/** A request with the Host a gateway passes on (fetch does not let a caller choose Host). */
function asGateway(instance: TestServer, path: string, headers: Record<string, string>, method = 'GET'): Promise<RawResponse> {
  const url = new URL(path, instance.url);
  return new Promise((resolve, reject) => {
    const req = request(url, { method, headers: { host: SHOP, 'x-forwarded-proto': 'https', ...headers } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

function setCookies(response: RawResponse): string[] {
  const value = response.headers['set-cookie'];
  return value === undefined ? [] : Array.isArray(value) ? value : [value];
}

describe('gateway browser sign-in across two instances', { skip: postgresUrl === undefined ? 'needs PostgreSQL (TEST_DATABASE_URL): two instances share it' : false }, () => {
  let one: TestServer;
  let two: TestServer;
  let admin: string;
  let userId: string;

  before(async () => {
    one = await startTestServer();
    two = await startTestServer({ database: one.database, env: { MASTER_KEY: one.masterKey, ISSUER: one.issuer } });
    admin = await adminToken(one, 'admin:resource-servers admin:gateway admin:users');
    await createResourceServer(one, { identifier: RESOURCE, name: 'Shop', scopes: ['shop:read'] }, admin);
    const user = await adminCall<{ id: string }>(one, 'POST', '/users', { username: 'shopper', password: PASSWORD, roles: ['buyer'] }, admin);
    assert.equal(user.status, 201);
    userId = user.body.id;
  });
  after(async () => {
    await two?.close();
    await one?.close();
  });

  const authorize = (instance: TestServer, redirectUri: string) =>
    fetch(
      `${instance.url}/auth?${new URLSearchParams({ client_id: 'gatehouse-gateway', response_type: 'code', scope: 'openid', redirect_uri: redirectUri, code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGrSw3cM10', code_challenge_method: 'S256', state: 'abcdefghijklmnop' }).toString()}`,
      { redirect: 'manual' },
    );

  test('the gateway client exists only while a route signs browsers in, sends codes only to those hosts, and never authenticates at /token', async () => {
    const before = await authorize(one, `https://${SHOP}/.gatehouse/callback`);
    assert.equal(before.status, 400, 'no browser route yet: no such client');
    assert.equal(before.headers.get('location'), null);

    for (const body of [
      { host: SHOP, path_prefix: '/', resource_server: RESOURCE, required_scopes: [], required_roles: ['buyer'], browser_sign_in: true, identity_headers: 'trusted' },
      { host: '*.apps.example.test', path_prefix: '/', resource_server: RESOURCE, required_scopes: [], browser_sign_in: true },
    ]) {
      assert.equal((await adminCall(one, 'POST', '/gateway-routes', body, admin)).status, 201);
    }
    // Both instances follow the routes (the other one through the change feed).
    for (const instance of [one, two]) {
      await waitFor(async () => (await authorize(instance, `https://${SHOP}/.gatehouse/callback`)).status === 303, 10_000, 100);
      assert.equal((await authorize(instance, 'https://team.apps.example.test/.gatehouse/callback')).status, 303, 'a host under a wildcard route');
    }
    for (const foreign of [
      'https://evil.example.test/.gatehouse/callback',
      `https://${SHOP}/.gatehouse/callback?x=1`,
      `https://${SHOP}/elsewhere`,
      `https://${SHOP}.evil.test/.gatehouse/callback`,
      'https://apps.example.test/.gatehouse/callback',
      `https://user@${SHOP}/.gatehouse/callback`,
    ]) {
      const response = await authorize(one, foreign);
      assert.equal(response.status, 400, foreign);
      assert.equal(response.headers.get('location'), null, `no redirect to ${foreign}`);
    }
    const token = await fetch(`${one.url}/token`, {
      method: 'POST',
      headers: { authorization: `Basic ${Buffer.from('gatehouse-gateway:unusable').toString('base64')}`, 'content-type': 'application/x-www-form-urlencoded' },
      body: 'grant_type=authorization_code&code=x&redirect_uri=https%3A%2F%2Fshop.example.test%2F.gatehouse%2Fcallback',
    });
    assert.equal(token.status, 401);
    assert.equal(((await token.json()) as { error: string }).error, 'invalid_client');
  });

  test('sign-in starts on one instance, finishes on the other; the cookie is __Host-, sealed, and honoured by every instance until the Gatehouse session ends', async () => {
    const start = await asGateway(one, '/.gatehouse/sign-in?rd=%2Fcart%3Fitem%3D7', {});
    assert.equal(start.status, 302);
    const authorizeUrl = new URL(String(start.headers.location));
    assert.equal(`${authorizeUrl.origin}${authorizeUrl.pathname}`, `${one.issuer}/auth`);
    assert.equal(authorizeUrl.searchParams.get('redirect_uri'), `https://${SHOP}/.gatehouse/callback`);
    assert.equal(authorizeUrl.searchParams.get('code_challenge_method'), 'S256');
    const [pendingCookie] = setCookies(start);
    assert.match(pendingCookie ?? '', /^__Host-gatehouse-signin-[\w-]{12}=[^;]+; Path=\/; Max-Age=600; Secure; HttpOnly; SameSite=Lax$/);
    const pending = pendingCookie!.split(';')[0]!;

    const browser = new CookieClient();
    const login = await browser.follow(await browser.get(authorizeUrl), one.url);
    const back = await submitLogin(browser, one.url, await login.text(), { username: 'shopper', password: PASSWORD });
    const callback = new URL(back.headers.get('location') ?? '');
    assert.equal(`${callback.origin}${callback.pathname}`, `https://${SHOP}/.gatehouse/callback`);

    // A callback without the browser's pending cookie, or with another sign-in's, is refused.
    assert.equal((await asGateway(two, `${callback.pathname}${callback.search}`, {})).status, 400);
    const finished = await asGateway(two, `${callback.pathname}${callback.search}`, { cookie: pending });
    assert.equal(finished.status, 303, finished.body);
    assert.equal(finished.headers.location, '/cart?item=7');
    const sessionCookie = setCookies(finished).find((c) => c.startsWith('__Host-gatehouse='));
    assert.match(sessionCookie ?? '', /^__Host-gatehouse=[^;]+; Path=\/; Max-Age=\d+; Secure; HttpOnly; SameSite=Lax$/);
    assert.ok(setCookies(finished).some((c) => c.startsWith(`${pending.split('=')[0]}=;`) && c.includes('Max-Age=0')), 'the pending cookie is cleared');
    const maxAge = Number(/Max-Age=(\d+)/.exec(sessionCookie!)![1]);
    assert.ok(maxAge > 11 * 3600 && maxAge <= 12 * 3600, `no longer than the 12 h Gatehouse session (${maxAge} s)`);
    const cookie = sessionCookie!.split(';')[0]!;
    // The same answer again: the code is spent.
    assert.equal((await asGateway(one, `${callback.pathname}${callback.search}`, { cookie: pending })).status, 400);

    const decide = (instance: TestServer, extra: Record<string, string> = {}) =>
      fetch(`${instance.url}/gateway/forward-auth`, {
        headers: { 'x-forwarded-method': 'GET', 'x-forwarded-proto': 'https', 'x-forwarded-host': SHOP, 'x-forwarded-uri': '/cart', accept: 'text/html', cookie, ...extra },
        redirect: 'manual',
      });
    for (const instance of [one, two]) {
      const allowed = await decide(instance);
      assert.equal(allowed.status, 200);
      assert.equal(allowed.headers.get('x-gatehouse-subject'), userId);
      assert.equal(allowed.headers.get('x-gatehouse-username'), 'shopper');
      assert.equal(allowed.headers.get('x-gatehouse-roles'), 'buyer');
    }
    // A token always wins over the cookie: a bad one is a 401, not the cookie's allow.
    assert.equal((await decide(one, { authorization: 'Bearer not-a-token' })).status, 401);

    // A password reset ends the person's Gatehouse sessions: every instance stops honouring the cookie.
    assert.equal((await adminCall(one, 'PATCH', `/users/${userId}`, { password: `${PASSWORD} renewed` }, admin)).status, 200);
    for (const instance of [one, two]) {
      const refused = await waitFor(async () => {
        const response = await decide(instance);
        return response.status === 302 ? response : undefined;
      }, 15_000, 200);
      assert.equal(refused.headers.get('location'), `https://${SHOP}/.gatehouse/sign-in?rd=%2Fcart`);
    }
  });

  test('bad input on the sign-in paths is a clear 4xx', async () => {
    assert.equal((await asGateway(one, '/.gatehouse/sign-in?rd=%2F%2Fevil.test', {})).status, 400);
    assert.equal((await asGateway(one, '/.gatehouse/sign-in?rd=%2F', { host: 'unrouted.example.test' })).status, 404);
    assert.equal((await asGateway(one, '/.gatehouse/sign-in?rd=%2F', { host: 'bad host' })).status, 400);
    assert.equal((await asGateway(one, '/.gatehouse/sign-in?rd=%2F', { 'x-forwarded-proto': 'gopher' })).status, 400);
    assert.equal((await asGateway(one, '/.gatehouse/callback?state=short', {})).status, 400);
    assert.equal((await asGateway(one, `/.gatehouse/callback?state=${'x'.repeat(40)}&code=abc`, { cookie: `__Host-gatehouse-signin-xxxxxxxxxxxx=${'a'.repeat(50)}` })).status, 400);
    const signOut = await asGateway(one, '/.gatehouse/sign-out', {}, 'POST');
    assert.equal(signOut.status, 303);
    assert.equal(signOut.headers.location, `${one.issuer}/session/end?client_id=gatehouse-gateway`);
    assert.match(setCookies(signOut)[0] ?? '', /^__Host-gatehouse=; Path=\/; Max-Age=0; Secure; HttpOnly; SameSite=Lax$/);
  });
});
