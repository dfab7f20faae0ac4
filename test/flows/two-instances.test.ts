import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { createLocalJWKSet, jwtVerify, type JSONWebKeySet } from 'jose';
import * as oidc from 'openid-client';
import { adminCall, adminToken, clientCredentials, createClient, createResourceServer, deleteClient } from '../support/admin-api.js';
import { CookieClient, formAction, hiddenField } from '../support/cookie-client.js';
import { postgresUrl } from '../support/database.js';
import { CACHE_TTL_MS } from '../../src/oidc/resource-server-registry.js';
import { startTestServer, type TestServer } from '../support/server.js';
import { pkceParams, startAuthorization } from '../support/sign-in.js';
import { totpCode } from '../support/totp.js';

/**
 * Two instances behind one load balancer share one PostgreSQL database, MASTER_KEY and ISSUER
 * (SPEC §6). Whatever a person or a client did on one counts on the other: a sign-in may hop
 * between them at every step, a session made by one is honoured by the other, and a client
 * deleted through one is refused by the other at once. (Key rotation across instances is in
 * key-rotation.test.ts, the lockout in sign-in.security.test.ts, TOTP replay in
 * second-factor.policy.test.ts.)
 */

const REDIRECT = 'http://127.0.0.1:9/callback';
const ORDERS = 'https://orders.two-instances.example';
const PASSWORD = 'correct horse battery staple';
const USERNAME = 'hopper';

const isRedirect = (response: Response) => response.status >= 300 && response.status < 400;

/** The same path and query on another instance: what a load balancer does with any request. */
function on(base: string, location: string | URL): URL {
  const url = new URL(location, base);
  return new URL(`${url.pathname}${url.search}`, base);
}

async function jwks(url: string): Promise<JSONWebKeySet> {
  return (await (await fetch(`${url}/jwks`)).json()) as JSONWebKeySet;
}

describe('two instances on one database', { skip: postgresUrl === undefined ? 'needs PostgreSQL (TEST_DATABASE_URL): two instances cannot share a PGlite database' : false }, () => {
  let one: TestServer;
  let two: TestServer;
  let app: { client_id: string; client_secret: string };
  let configOne: oidc.Configuration;
  let configTwo: oidc.Configuration;
  let userId: string;
  /** Cookies as one browser holds them: the instances share a host name behind the balancer. */
  const browser = new CookieClient();

  before(async () => {
    one = await startTestServer();
    // Instances behind one load balancer share the issuer, the database and MASTER_KEY.
    two = await startTestServer({ database: one.database, env: { MASTER_KEY: one.masterKey, ISSUER: one.issuer } });
    const token = await adminToken(one, 'admin:clients admin:resource-servers admin:users');
    await createResourceServer(one, { identifier: ORDERS, name: 'Orders', scopes: ['orders:read'] }, token);
    const created = await adminCall<{ client_id: string; client_secret: string }>(
      one,
      'POST',
      '/clients',
      { client_name: 'Hopper app', grant_types: ['authorization_code'], redirect_uris: [REDIRECT], allowed_resources: [ORDERS], scope: 'openid', first_party: true },
      token,
    );
    assert.equal(created.status, 201, JSON.stringify(created.body));
    app = created.body;
    const user = await adminCall<{ id: string }>(one, 'POST', '/users', { username: USERNAME, password: PASSWORD, mfa_required: true }, token);
    assert.equal(user.status, 201, JSON.stringify(user.body));
    userId = user.body.id;
    configOne = await oidc.discovery(new URL(one.issuer), app.client_id, app.client_secret, undefined, { execute: [oidc.allowInsecureRequests] });
    // The same client talking to instance two's token endpoint (same issuer, other address).
    // (Through JSON: the metadata as discovered, without the helper methods openid-client adds.)
    const metadata = JSON.parse(JSON.stringify(configOne.serverMetadata())) as oidc.ServerMetadata;
    configTwo = new oidc.Configuration({ ...metadata, token_endpoint: `${two.url}/token` }, app.client_id, app.client_secret);
    oidc.allowInsecureRequests(configTwo);
  });
  after(async () => {
    await two?.close();
    await one?.close();
  });

  test('both instances publish the same keys: the second start generated none', async () => {
    assert.deepEqual(await jwks(two.url), await jwks(one.url));
    assert.match(one.logs.text, /signing keys generated/);
    assert.doesNotMatch(two.logs.text, /signing keys generated/);
  });

  test('a sign-in with second-factor enrollment completes while every step lands on the other instance', async () => {
    const auth = await pkceParams(REDIRECT, 'openid');
    // /auth on one; it redirects to the login page, also served by one.
    const authorize = await browser.get(on(one.url, oidc.buildAuthorizationUrl(configOne, auth.params)));
    assert.ok(isRedirect(authorize), `expected the redirect to the login page, got ${authorize.status}`);
    const loginPage = await browser.get(on(one.url, authorize.headers.get('location')!));
    assert.equal(loginPage.status, 200);
    const loginHtml = await loginPage.text();
    assert.match(loginHtml, /name="password"/);

    // The login POST goes to two: its interaction, CSRF token and cookies came from one.
    const login = await browser.postForm(on(two.url, formAction(loginHtml, /\/login$/)!), { csrf: hiddenField(loginHtml, 'csrf') ?? '', username: USERNAME, password: PASSWORD });
    assert.equal(login.status, 303, `the password is accepted on two, got ${login.status}: ${await login.clone().text()}`);
    // The enrollment page comes from one, with the pending sign-in two saved.
    const enrollPage = await browser.get(on(one.url, login.headers.get('location')!));
    assert.equal(enrollPage.status, 200);
    const enrollHtml = await enrollPage.text();
    assert.match(enrollHtml, /Set up two-step verification/);
    const uri = /href="(otpauth:\/\/totp\/[^"]+)"/.exec(enrollHtml)?.[1]?.replaceAll('&amp;', '&');
    assert.ok(uri, 'the otpauth URI');
    const secret = new URL(uri).searchParams.get('secret')!;

    // The code goes to two; the recovery codes page comes back from it.
    const confirmed = await browser.postForm(on(two.url, formAction(enrollHtml, /\/second-factor$/)!), { csrf: hiddenField(enrollHtml, 'csrf') ?? '', code: totpCode(secret) });
    assert.equal(confirmed.status, 200);
    const codesHtml = await confirmed.text();
    assert.equal([...codesHtml.matchAll(/<li><code>([A-Z0-9-]+)<\/code><\/li>/g)].length, 10, 'ten recovery codes');

    // "Continue" goes to one, and the provider resumes the authorization on one too: the session
    // is made there.
    const finished = await browser.postForm(on(one.url, formAction(codesHtml, /\/second-factor$/)!), { csrf: hiddenField(codesHtml, 'csrf') ?? '', code: '' });
    assert.ok(isRedirect(finished), `the sign-in finishes, got ${finished.status}`);
    const resumed = await browser.get(on(one.url, finished.headers.get('location')!));
    assert.ok(isRedirect(resumed), `the authorization resumes, got ${resumed.status}`);
    const callback = new URL(resumed.headers.get('location')!);
    assert.equal(`${callback.origin}${callback.pathname}`, REDIRECT);

    // The code is exchanged at two's token endpoint.
    const tokens = await oidc.authorizationCodeGrant(configTwo, callback, { pkceCodeVerifier: auth.verifier, expectedState: auth.state, expectedNonce: auth.nonce });
    const claims = tokens.claims()!;
    assert.equal(claims.sub, userId);
    assert.equal(claims['acr'], 'urn:gatehouse:acr:mfa');
    assert.deepEqual(claims['amr'], ['pwd', 'otp']);
    // Both instances' JWKS verify the ID token.
    for (const server of [one, two]) await jwtVerify(tokens.id_token!, createLocalJWKSet(await jwks(server.url)), { issuer: one.issuer, audience: app.client_id });
  });

  test('the session made on one is honoured by prompt=none on two', async () => {
    const auth = await pkceParams(REDIRECT, 'openid', { prompt: 'none' });
    const silent = await browser.get(on(two.url, oidc.buildAuthorizationUrl(configOne, auth.params)));
    assert.ok(isRedirect(silent), `expected a redirect, got ${silent.status}`);
    // The provider may resume through its own /auth/:uid step first; follow it on two.
    let location = new URL(silent.headers.get('location')!, two.url);
    for (let hop = 0; hop < 3 && !location.href.startsWith(REDIRECT); hop += 1) {
      const next = await browser.get(on(two.url, location));
      assert.ok(isRedirect(next), `expected a redirect, got ${next.status}`);
      location = new URL(next.headers.get('location')!, two.url);
    }
    assert.equal(location.searchParams.get('error'), null, `no login_required: ${location.href}`);
    assert.ok(location.searchParams.get('code'), 'a code without any page');
    const tokens = await oidc.authorizationCodeGrant(configOne, location, { pkceCodeVerifier: auth.verifier, expectedState: auth.state, expectedNonce: auth.nonce });
    assert.equal(tokens.claims()?.sub, userId);
    assert.equal(tokens.claims()?.['acr'], 'urn:gatehouse:acr:mfa', 'the session keeps the second factor it was made with');
  });

  test('a client changed through one (its secret rotated, its resource taken away) is held to the change by two within the cache bound', async () => {
    const service = await createClient(one, { client_name: 'changing', allowed_resources: [ORDERS], scope: 'orders:read' });
    // Two has built and cached the client (src/oidc/model-extensions.ts reuses it while its metadata lives).
    for (let i = 0; i < 3; i += 1) assert.equal((await clientCredentials(two, service.client_id, service.client_secret!, { resource: ORDERS })).status, 200);

    /** Polls two until `refused` holds, at most the documented bound (no fixed sleep). */
    async function heldWithinBound(request: () => Promise<{ status: number }>, refused: (status: number) => boolean): Promise<number> {
      const deadline = Date.now() + CACHE_TTL_MS;
      let status = (await request()).status;
      while (!refused(status) && Date.now() < deadline) {
        await new Promise((resolve) => setImmediate(resolve));
        status = (await request()).status;
      }
      return status;
    }

    const rotated = await adminCall<{ client_secret: string }>(one, 'POST', `/clients/${service.client_id}/secret`, undefined, await adminToken(one, 'admin:clients'));
    assert.equal(rotated.status, 200, JSON.stringify(rotated.body));
    assert.equal(await heldWithinBound(() => clientCredentials(two, service.client_id, service.client_secret!, { resource: ORDERS }), (status) => status === 401), 401, 'the old secret');
    assert.equal((await clientCredentials(two, service.client_id, rotated.body.client_secret, { resource: ORDERS })).status, 200, 'the new secret');

    const narrowed = await adminCall(one, 'PATCH', `/clients/${service.client_id}`, { allowed_resources: [], scope: null }, await adminToken(one, 'admin:clients'));
    assert.equal(narrowed.status, 200, JSON.stringify(narrowed.body));
    assert.equal(await heldWithinBound(() => clientCredentials(two, service.client_id, rotated.body.client_secret, { resource: ORDERS }), (status) => status === 400), 400, 'the resource taken away');
  });

  test('the login page\'s identity-provider buttons follow a change made on one: at once there, within the cache bound on two, an operator\'s own SQL too', async () => {
    const token = await adminToken(one, 'admin:identity-providers');
    /** The login page as `instance` renders it for a new browser. */
    async function loginPageOn(instance: TestServer): Promise<string> {
      const visitor = new CookieClient();
      visitor.routeTo(one.issuer, instance.url);
      const { params } = await pkceParams(REDIRECT, 'openid');
      const page = await startAuthorization(visitor, configOne, instance.url, params);
      assert.equal(page.status, 200);
      return page.text();
    }
    /** Polls an instance's login page until `holds`, at most the documented bound (no fixed sleep). */
    async function showsWithinBound(instance: TestServer, holds: (html: string) => boolean): Promise<boolean> {
      const deadline = Date.now() + CACHE_TTL_MS;
      for (;;) {
        if (holds(await loginPageOn(instance))) return true;
        if (Date.now() > deadline) return false;
        await new Promise((resolve) => setImmediate(resolve));
      }
    }

    // Both have rendered (and cached) the list without it.
    for (const instance of [one, two]) assert.ok(!(await loginPageOn(instance)).includes('Hopper SSO'));
    const created = await adminCall<{ id: string }>(one, 'POST', '/identity-providers', { name: 'Hopper SSO', issuer: 'https://sso.two-instances.example', client_id: 'gatehouse' }, token);
    assert.equal(created.status, 201, JSON.stringify(created.body));
    assert.ok((await loginPageOn(one)).includes('Hopper SSO'), 'the changing instance shows it at once');
    assert.ok(await showsWithinBound(two, (html) => html.includes('Hopper SSO')), 'two shows the new provider');

    const renamed = await adminCall(one, 'PATCH', `/identity-providers/${created.body.id}`, { name: 'Hopper Login' }, token);
    assert.equal(renamed.status, 200, JSON.stringify(renamed.body));
    assert.ok(await showsWithinBound(two, (html) => html.includes('Hopper Login') && !html.includes('Hopper SSO')), 'two shows the new name');

    // Not through Gatehouse at all: the table's trigger announces it.
    await one.db.query('UPDATE identity_providers SET enabled = false WHERE id = $1', [created.body.id]);
    assert.ok(await showsWithinBound(two, (html) => !html.includes('Hopper Login')), 'two drops the disabled provider');
    assert.ok(await showsWithinBound(one, (html) => !html.includes('Hopper Login')), 'and so does one');
  });

  test('one finished sign-in resumed on both instances at once gives one code', async () => {
    const token = await adminToken(one, 'admin:users');
    const person = await adminCall(one, 'POST', '/users', { username: 'hopper-single-factor', password: PASSWORD }, token);
    assert.equal(person.status, 201, JSON.stringify(person.body));
    const visitor = new CookieClient();
    visitor.routeTo(one.issuer, one.url);
    const { params } = await pkceParams(REDIRECT, 'openid');
    const page = await startAuthorization(visitor, configOne, one.url, params);
    const html = await page.text();
    const action = formAction(html, /\/login$/);
    assert.ok(action !== undefined, 'a login form');
    const posted = await visitor.postForm(new URL(action, one.url), { csrf: hiddenField(html, 'csrf') ?? '', username: 'hopper-single-factor', password: PASSWORD });
    const resume = posted.headers.get('location');
    assert.ok(posted.status === 303 && resume !== null, `the resume: ${posted.status} ${resume}`);

    // The same browser's resume sent twice to each instance at once (the cookies go with it).
    const answers = await Promise.all(
      [one, two, one, two].map((instance) =>
        fetch(on(instance.url, resume), { redirect: 'manual', headers: { cookie: [...visitor.cookies].map(([k, v]) => `${k}=${v}`).join('; ') } }),
      ),
    );
    const codes = answers.filter((answer) => new URL(answer.headers.get('location') ?? 'http://x/').searchParams.has('code'));
    assert.equal(codes.length, 1, answers.map((answer) => `${answer.status} ${answer.headers.get('location') ?? ''}`).join(', '));
    for (const answer of answers) assert.ok([303, 400, 409].includes(answer.status), String(answer.status));
  });

  test('a client deleted through one is refused by two as soon as the change is announced, and its tokens are no longer active there', async () => {
    const service = await createClient(one, { client_name: 'doomed', allowed_resources: [ORDERS], scope: 'orders:read' });
    const issued = await clientCredentials(two, service.client_id, service.client_secret!, { resource: ORDERS });
    assert.equal(issued.status, 200, JSON.stringify(issued.body));
    const accessToken = issued.body['access_token'] as string;
    // Another client allowed for the same resource server may learn about the token (SPEC §2).
    const observer = await createClient(one, { client_name: 'observer', allowed_resources: [ORDERS], scope: 'orders:read' });
    const introspect = async (token: string) => {
      const response = await fetch(`${two.url}/token/introspection`, {
        method: 'POST',
        headers: {
          authorization: `Basic ${Buffer.from(`${observer.client_id}:${observer.client_secret!}`).toString('base64')}`,
          'content-type': 'application/x-www-form-urlencoded',
        },
        body: new URLSearchParams({ token }).toString(),
      });
      assert.equal(response.status, 200);
      return (await response.json()) as Record<string, unknown>;
    };
    assert.equal((await introspect(accessToken))['active'], true);

    await deleteClient(one, service.client_id);

    // Two caches clients and drops its copy on the database's change notification (milliseconds
    // after the commit); the documented bound is CACHE_TTL_MS even if a notification were lost.
    const deadline = Date.now() + CACHE_TTL_MS;
    let refused = await clientCredentials(two, service.client_id, service.client_secret!, { resource: ORDERS });
    while (refused.status === 200 && Date.now() < deadline) {
      await new Promise((resolve) => setImmediate(resolve));
      refused = await clientCredentials(two, service.client_id, service.client_secret!, { resource: ORDERS });
    }
    assert.equal(refused.status, 401, 'refused within the cache bound');
    assert.equal(refused.body['error'], 'invalid_client');
    assert.deepEqual(await introspect(accessToken), { active: false });
  });
});
