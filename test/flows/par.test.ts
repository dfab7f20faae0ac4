import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import * as oidc from 'openid-client';
import { adminCall, adminToken } from '../support/admin-api.js';
import { CookieClient, formAction, hiddenField } from '../support/cookie-client.js';
import { openAuthorizationUrl, pkceParams, signInAt, submitLogin } from '../support/sign-in.js';
import { startTestServer, type TestServer } from '../support/server.js';

/** RFC 9126 §2.2: the request_uri a pushed request gets. */
const REQUEST_URN = /^urn:ietf:params:oauth:request_uri:[\w-]+$/;
const REDIRECT = 'http://127.0.0.1:9/callback';
const PASSWORD = 'correct horse battery staple';
const ALICE = { username: 'alice', password: PASSWORD };
const INVALID_REQUEST_URI = 'request_uri is invalid, expired, or was already used';

interface Client {
  client_id: string;
  client_secret: string;
  require_pushed_authorization_requests: boolean;
}

function basic(client: Client): string {
  return `Basic ${Buffer.from(`${encodeURIComponent(client.client_id)}:${encodeURIComponent(client.client_secret)}`).toString('base64')}`;
}

/** A relying party's plain HTTP push (RFC 9126 §2.1), no library. */
async function push(endpoint: string, client: Client, params: Record<string, string>, authorization = basic(client)): Promise<{ status: number; body: Record<string, unknown> }> {
  const response = await fetch(endpoint, {
    method: 'POST',
    headers: { authorization, 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ response_type: 'code', client_id: client.client_id, ...params }),
  });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

/**
 * How the authorization endpoint refuses a request_uri: back at the client's registered redirect_uri
 * (its only one, so the provider can trust it) with RFC 9126 §7.3's invalid_request_uri.
 */
function assertRefused(response: Response, description: string): void {
  assert.equal(response.status, 303);
  const location = new URL(response.headers.get('location')!);
  assert.equal(`${location.origin}${location.pathname}`, REDIRECT);
  assert.equal(location.searchParams.get('error'), 'invalid_request_uri');
  assert.equal(location.searchParams.get('error_description'), description);
  assert.equal(location.searchParams.get('code'), null);
}

async function createClient(server: TestServer, name: string, extra: Record<string, unknown> = {}): Promise<Client> {
  const created = await adminCall<Client>(server, 'POST', '/clients', {
    client_name: name,
    grant_types: ['authorization_code'],
    redirect_uris: [REDIRECT],
    scope: 'openid profile',
    ...extra,
  });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  return created.body;
}

describe('pushed authorization requests (RFC 9126, SPEC §12)', () => {
  let server: TestServer;
  let shop: Client;
  let strict: Client;
  let shopConfig: oidc.Configuration;
  let strictConfig: oidc.Configuration;
  let parEndpoint: string;
  let userId: string;

  before(async () => {
    server = await startTestServer();
    shop = await createClient(server, 'Shop');
    strict = await createClient(server, 'Strict shop', { require_pushed_authorization_requests: true });
    const user = await adminCall<{ id: string }>(server, 'POST', '/users', { username: 'Alice', password: PASSWORD, email: 'alice@example.com' }, await adminToken(server, 'admin:users'));
    assert.equal(user.status, 201, JSON.stringify(user.body));
    userId = user.body.id;
    const options = { execute: [oidc.allowInsecureRequests] };
    shopConfig = await oidc.discovery(new URL(server.issuer), shop.client_id, shop.client_secret, undefined, options);
    strictConfig = await oidc.discovery(new URL(server.issuer), strict.client_id, strict.client_secret, undefined, options);
    parEndpoint = shopConfig.serverMetadata().pushed_authorization_request_endpoint!;
  });
  after(() => server.close());

  test('discovery advertises the PAR endpoint under the issuer, not required of every client', () => {
    const metadata = shopConfig.serverMetadata();
    assert.equal(metadata.pushed_authorization_request_endpoint, `${server.issuer}/request`);
    // RFC 9126 §5: omitted means false; only clients registered with it must push.
    assert.equal(metadata.require_pushed_authorization_requests ?? false, false);
  });

  test('the admin API stores require_pushed_authorization_requests, false unless asked', async () => {
    assert.equal(shop.require_pushed_authorization_requests, false);
    assert.equal(strict.require_pushed_authorization_requests, true);
    const patched = await adminCall<Client>(server, 'PATCH', `/clients/${shop.client_id}`, { require_pushed_authorization_requests: true });
    assert.equal(patched.status, 200, JSON.stringify(patched.body));
    assert.equal(patched.body.require_pushed_authorization_requests, true);
    const back = await adminCall<Client>(server, 'PATCH', `/clients/${shop.client_id}`, { require_pushed_authorization_requests: false });
    assert.equal(back.body.require_pushed_authorization_requests, false);
    const wrong = await adminCall(server, 'PATCH', `/clients/${shop.client_id}`, { require_pushed_authorization_requests: 'yes' });
    assert.equal(wrong.status, 400);
  });

  test('openid-client pushes, the person signs in, the code gets tokens; the request_uri is then spent', async () => {
    const browser = new CookieClient();
    const { verifier, state, nonce, params } = await pkceParams(REDIRECT, 'openid profile');
    const url = await oidc.buildAuthorizationUrlWithPAR(shopConfig, params);
    const requestUri = url.searchParams.get('request_uri')!;
    assert.match(requestUri, REQUEST_URN);
    // RFC 9126 §4: the authorization request carries only client_id and request_uri.
    assert.deepEqual([...url.searchParams.keys()].sort(), ['client_id', 'request_uri']);

    const { callback } = await signInAt(browser, url, server.url, ALICE);
    const tokens = await oidc.authorizationCodeGrant(shopConfig, callback, { pkceCodeVerifier: verifier, expectedState: state, expectedNonce: nonce });
    assert.equal(tokens.claims()?.sub, userId);

    // RFC 9126 §4: single use. Neither the signed-in browser nor a fresh one gets a second code.
    assertRefused(await openAuthorizationUrl(browser, url, server.url), INVALID_REQUEST_URI);
    assertRefused(await openAuthorizationUrl(new CookieClient(), url, server.url), INVALID_REQUEST_URI);
  });

  test('a scripted client: plain POST with client_secret_basic gets 201 {request_uri, expires_in}, then the sign-in', async () => {
    const { verifier, state, nonce, params } = await pkceParams(REDIRECT, 'openid');
    const pushed = await push(parEndpoint, shop, params);
    assert.equal(pushed.status, 201, JSON.stringify(pushed.body));
    assert.match(String(pushed.body['request_uri']), REQUEST_URN);
    assert.equal(typeof pushed.body['expires_in'], 'number');
    assert.ok((pushed.body['expires_in'] as number) > 0 && (pushed.body['expires_in'] as number) <= 60);

    const url = new URL(shopConfig.serverMetadata().authorization_endpoint!);
    url.search = new URLSearchParams({ client_id: shop.client_id, request_uri: String(pushed.body['request_uri']) }).toString();
    const { callback } = await signInAt(new CookieClient(), url, server.url, ALICE);
    const tokens = await oidc.authorizationCodeGrant(shopConfig, callback, { pkceCodeVerifier: verifier, expectedState: state, expectedNonce: nonce });
    assert.ok(tokens.id_token);
  });

  test('DPoP on PAR (RFC 9449 §10.1): the push binds the code to the proof key; only that key redeems it', async () => {
    const key = await oidc.randomDPoPKeyPair('ES256');
    const other = await oidc.randomDPoPKeyPair('ES256');
    const browser = new CookieClient();
    /** A push with a proof of `key`, then the sign-in (the browser's session skips it after the first). */
    async function pushedCode() {
      const { verifier, state, nonce, params } = await pkceParams(REDIRECT, 'openid profile');
      // openid-client answers the nonce challenge (RFC 9449 §8) and retries the push by itself.
      const url = await oidc.buildAuthorizationUrlWithPAR(shopConfig, params, { DPoP: oidc.getDPoPHandle(shopConfig, key) });
      const { callback } = await signInAt(browser, url, server.url, ALICE);
      return { callback, checks: { pkceCodeVerifier: verifier, expectedState: state, expectedNonce: nonce } };
    }
    const invalidGrant = (error: oidc.ResponseBodyError) => error.error === 'invalid_grant';

    // The provider checks the binding once the code is redeemed, so each refusal spends its code.
    const bare = await pushedCode();
    await assert.rejects(oidc.authorizationCodeGrant(shopConfig, bare.callback, bare.checks), invalidGrant, 'without a proof');
    const stolen = await pushedCode();
    await assert.rejects(oidc.authorizationCodeGrant(shopConfig, stolen.callback, stolen.checks, undefined, { DPoP: oidc.getDPoPHandle(shopConfig, other) }), invalidGrant, 'with another key');
    const own = await pushedCode();
    const tokens = await oidc.authorizationCodeGrant(shopConfig, own.callback, own.checks, undefined, { DPoP: oidc.getDPoPHandle(shopConfig, key) });
    assert.equal(tokens.token_type, 'dpop');
    assert.equal(tokens.claims()?.sub, userId);
  });

  test('the PAR endpoint authenticates the client and refuses an unregistered redirect_uri', async () => {
    const { params } = await pkceParams(REDIRECT, 'openid');
    const wrongSecret = await push(parEndpoint, shop, params, basic({ ...shop, client_secret: 'not-the-secret' }));
    assert.equal(wrongSecret.status, 401);
    assert.equal(wrongSecret.body['error'], 'invalid_client');
    const elsewhere = await push(parEndpoint, shop, { ...params, redirect_uri: 'https://attacker.example/callback' });
    assert.equal(elsewhere.status, 400);
    assert.equal(elsewhere.body['error'], 'invalid_request');
  });

  test('a client registered with require_pushed_authorization_requests: a plain request is refused, a pushed one works', async () => {
    const { params } = await pkceParams(REDIRECT, 'openid');
    const plain = await new CookieClient().get(oidc.buildAuthorizationUrl(strictConfig, params));
    // The redirect_uri is registered, so the provider answers at it (RFC 6749 §4.1.2.1).
    assert.equal(plain.status, 303);
    const location = new URL(plain.headers.get('location')!);
    assert.equal(`${location.origin}${location.pathname}`, REDIRECT);
    assert.equal(location.searchParams.get('error'), 'invalid_request');
    assert.match(location.searchParams.get('error_description') ?? '', /Pushed Authorization Request must be used/);

    const url = await oidc.buildAuthorizationUrlWithPAR(strictConfig, params);
    const { callback } = await signInAt(new CookieClient(), url, server.url, ALICE);
    assert.ok(callback.searchParams.get('code'), callback.href);
  });

  test('two sign-ins finishing at once from one request_uri: exactly one gets a code', async () => {
    const { params } = await pkceParams(REDIRECT, 'openid profile');
    const url = await oidc.buildAuthorizationUrlWithPAR(shopConfig, params);
    // RFC 9126 §4 lets a reload reuse the request_uri until it is spent; both people reach consent.
    const consents = await Promise.all(
      [new CookieClient(), new CookieClient()].map(async (browser) => {
        const login = await (await openAuthorizationUrl(browser, url, server.url)).text();
        const consent = await (await submitLogin(browser, server.url, login, ALICE)).text();
        const action = formAction(consent, /\/consent$/);
        assert.ok(action, 'a consent form');
        return { browser, action, csrf: hiddenField(consent, 'csrf') ?? '' };
      }),
    );
    // Over loopback the two rarely interleave inside the provider's check-then-mark (this passes
    // without the conditional update in src/oidc/model-extensions.ts too): it pins the outcome, the
    // single UPDATE ... WHERE consumed_at IS NULL is what guarantees it.
    const answers = await Promise.all(
      consents.map(async ({ browser, action, csrf }) => browser.follow(await browser.postForm(new URL(action, server.url), { csrf }), server.url)),
    );
    const locations = answers.map((answer) => new URL(answer.headers.get('location')!));
    assert.deepEqual(locations.map((location) => (location.searchParams.has('code') ? 'code' : location.searchParams.get('error'))).sort(), ['code', 'invalid_request_uri']);
  });

  test('an expired request_uri is refused', async () => {
    const { params } = await pkceParams(REDIRECT, 'openid');
    const url = await oidc.buildAuthorizationUrlWithPAR(shopConfig, params);
    const id = url.searchParams.get('request_uri')!.split(':').pop()!;
    // The provider's lifetime is fixed at 60 s (RFC 9126 §2.2 expires_in); the row's expiry is
    // what the adapter honours, so the test moves it into the past instead of waiting.
    const { rowCount } = await server.db.query("UPDATE oidc_models SET expires_at = now() - interval '1 second' WHERE model = 'PushedAuthorizationRequest' AND id = $1", [id]);
    assert.equal(rowCount, 1);
    assertRefused(await openAuthorizationUrl(new CookieClient(), url, server.url), INVALID_REQUEST_URI);
  });
});

describe('the PAR endpoint is limited per client IP, as the token endpoint is', () => {
  let server: TestServer;
  let shop: Client;

  before(async () => {
    server = await startTestServer({ env: { TOKEN_RATE_LIMIT_PER_IP: '0.001', TOKEN_RATE_LIMIT_PER_IP_BURST: '3' } });
    shop = await createClient(server, 'Shop');
  });
  after(() => server.close());

  test('past its burst, pushes get 429 with Retry-After, before the client is looked up', async () => {
    const endpoint = `${server.issuer}/request`;
    const { params } = await pkceParams(REDIRECT, 'openid');
    // createClient's admin token request spent one of the three.
    const statuses: number[] = [];
    for (let i = 0; i < 3; i += 1) statuses.push((await push(endpoint, shop, params)).status);
    assert.deepEqual(statuses, [201, 201, 429]);
    const response = await fetch(endpoint, { method: 'POST', headers: { authorization: basic(shop), 'content-type': 'application/x-www-form-urlencoded' }, body: 'x=1' });
    assert.equal(response.status, 429);
    assert.ok(Number(response.headers.get('retry-after')) >= 1);
    assert.equal(((await response.json()) as { error: string }).error, 'temporarily_unavailable');
  });
});
