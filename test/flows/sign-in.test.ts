import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { compactDecrypt, exportJWK, generateKeyPair, type CryptoKey as JoseKey } from 'jose';
import * as oidc from 'openid-client';
import { adminCall, adminToken } from '../support/admin-api.js';
import { CookieClient, formAction, hiddenField } from '../support/cookie-client.js';
import { pkceParams, signIn } from '../support/sign-in.js';
import { startTestServer, waitFor, type TestServer } from '../support/server.js';

const ORDERS = 'https://orders.sign-in.example';
const REDIRECT = 'http://127.0.0.1:9/callback';
const PASSWORD = 'correct horse battery staple';
const ALICE = { username: 'alice', password: PASSWORD };

interface Client {
  client_id: string;
  client_secret: string;
}

describe('people sign in through the hosted pages (authorization code + PKCE)', () => {
  let server: TestServer;
  let client: Client;
  let config: oidc.Configuration;
  let innerKey: JoseKey;
  let userId: string;

  before(async () => {
    server = await startTestServer();
    const pair = await generateKeyPair('ECDH-ES+A256KW', { crv: 'P-256' });
    innerKey = pair.privateKey;
    const rs = await adminCall(server, 'POST', '/resource-servers', {
      identifier: ORDERS,
      name: 'Orders',
      scopes: ['orders:read'],
      inner_encryption_jwk: await exportJWK(pair.publicKey),
    });
    assert.equal(rs.status, 201);
    const created = await adminCall<Client>(server, 'POST', '/clients', {
      client_name: 'Shop',
      grant_types: ['authorization_code', 'refresh_token'],
      redirect_uris: [REDIRECT],
      post_logout_redirect_uris: ['http://127.0.0.1:9/bye'],
      allowed_resources: [ORDERS],
      scope: 'openid profile email offline_access orders:read',
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    client = created.body;
    const user = await adminCall<{ id: string }>(
      server,
      'POST',
      '/users',
      { username: 'Alice', password: PASSWORD, email: 'alice@example.com', email_verified: true, name: 'Alice Liddell', roles: ['buyer'] },
      await adminToken(server, 'admin:users'),
    );
    assert.equal(user.status, 201, JSON.stringify(user.body));
    userId = user.body.id;
    config = await oidc.discovery(new URL(server.issuer), client.client_id, client.client_secret, undefined, { execute: [oidc.allowInsecureRequests] });
  });
  after(() => server.close());

  test('sign-in, consent, ID token, userinfo, and a double-wrapped token for the API', async () => {
    const browser = new CookieClient();
    const { verifier, state, nonce, params } = await pkceParams(REDIRECT, 'openid profile email offline_access orders:read', {
      resource: ORDERS,
      prompt: 'consent',
    });
    const { callback, pages } = await signIn(browser, config, server.url, params, ALICE);
    assert.match(pages[0]!, /Shop/, 'the login page names the client');
    assert.match(pages[1]!, /See your email address/);
    assert.match(pages[1]!, /Use &quot;orders:read&quot; on Orders|Use "orders:read" on Orders/);

    const tokens = await oidc.authorizationCodeGrant(config, callback, { pkceCodeVerifier: verifier, expectedState: state, expectedNonce: nonce });
    const idClaims = tokens.claims()!;
    assert.equal(idClaims.sub, userId);
    assert.equal(idClaims.iss, server.issuer);
    assert.equal(idClaims['acr'], 'urn:gatehouse:acr:pwd');
    assert.deepEqual(idClaims['amr'], ['pwd']);
    // OIDC Core §5.4: with an access token issued, scope claims come from userinfo.
    assert.equal(idClaims['email'], undefined);
    assert.ok(tokens.refresh_token);

    // Without `resource`, an openid grant yields the userinfo token.
    const userinfo = await oidc.fetchUserInfo(config, tokens.access_token, userId);
    assert.equal(userinfo['name'], 'Alice Liddell');
    assert.equal(userinfo['preferred_username'], 'Alice');
    assert.equal(userinfo['email'], 'alice@example.com');
    assert.equal(userinfo['email_verified'], true);

    // Naming the resource yields its double-wrapped token.
    const api = await oidc.refreshTokenGrant(config, tokens.refresh_token, { resource: ORDERS });
    const payload = JSON.parse(Buffer.from(api.access_token.split('.')[1]!, 'base64url').toString()) as Record<string, unknown>;
    assert.equal(payload['aud'], ORDERS);
    assert.equal(payload['sub'], userId);
    assert.equal(payload['acr'], 'urn:gatehouse:acr:pwd');
    assert.equal(typeof payload['auth_time'], 'number');
    for (const personal of ['email', 'name', 'preferred_username', 'roles']) assert.equal(payload[personal], undefined, `${personal} is not public`);
    const inner = JSON.parse(new TextDecoder().decode((await compactDecrypt(payload['inner'] as string, innerKey)).plaintext)) as Record<string, unknown>;
    assert.equal(inner['jti'], payload['jti']);
    assert.equal(inner['sub'], userId);
    assert.equal(inner['preferred_username'], 'Alice');
    assert.equal(inner['email'], 'alice@example.com');
    assert.deepEqual(inner['roles'], ['buyer']);
    assert.deepEqual(inner['amr'], ['pwd']);
    assert.equal(typeof inner['sid'], 'string');
    assert.equal(inner['client_name'], 'Shop');
  });

  test('a rotated refresh token used twice revokes the whole grant', async () => {
    const browser = new CookieClient();
    const { verifier, state, nonce, params } = await pkceParams(REDIRECT, 'openid offline_access orders:read', { prompt: 'consent' });
    const { callback } = await signIn(browser, config, server.url, params, ALICE);
    const tokens = await oidc.authorizationCodeGrant(config, callback, { pkceCodeVerifier: verifier, expectedState: state, expectedNonce: nonce });
    const first = tokens.refresh_token!;
    const rotated = await oidc.refreshTokenGrant(config, first);
    assert.ok(rotated.refresh_token && rotated.refresh_token !== first, 'the refresh token rotates');
    await assert.rejects(oidc.refreshTokenGrant(config, first), (error: unknown) => error instanceof oidc.ResponseBodyError && error.error === 'invalid_grant');
    // The reuse revoked the grant: the newest refresh token is dead too.
    await assert.rejects(oidc.refreshTokenGrant(config, rotated.refresh_token), (error: unknown) => error instanceof oidc.ResponseBodyError && error.error === 'invalid_grant');
    // And it is a security event in the audit trail, with no token in it.
    // Recorded after the response is sent (src/oidc/provider.ts, grant.revoked): poll for it.
    const rows = await waitFor(async () => {
      const found = await server.db.query<Record<string, unknown>>("SELECT * FROM audit_events WHERE type = 'token.reuse_detected'");
      return found.rows.length >= 1 && found.rows;
    });
    assert.equal(rows[0]!['actor'], client.client_id);
    assert.deepEqual((rows[0]!['details'] as Record<string, unknown>)['grant_type'], 'refresh_token');
    for (const row of rows) assert.ok(!JSON.stringify(row).includes(first) && !JSON.stringify(row).includes(rotated.refresh_token));
  });

  test('one code redeemed by five requests at once gives tokens at most once; one refresh token used by five at once rotates at most once', async () => {
    const { verifier, state, params } = await pkceParams(REDIRECT, 'openid offline_access orders:read', { prompt: 'consent' });
    const { callback } = await signIn(new CookieClient(), config, server.url, params, ALICE);
    const tokenEndpoint = config.serverMetadata().token_endpoint!;
    const basicAuth = `Basic ${Buffer.from(`${encodeURIComponent(client.client_id)}:${encodeURIComponent(client.client_secret)}`).toString('base64')}`;
    const post = async (body: Record<string, string>) => {
      const response = await fetch(tokenEndpoint, { method: 'POST', headers: { authorization: basicAuth, 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams(body) });
      return { status: response.status, body: (await response.json()) as Record<string, unknown> };
    };
    assert.equal(callback.searchParams.get('state'), state);

    const redeemed = await Promise.all(
      Array.from({ length: 5 }, () => post({ grant_type: 'authorization_code', code: callback.searchParams.get('code')!, redirect_uri: REDIRECT, code_verifier: verifier })),
    );
    const granted = redeemed.filter((answer) => answer.status === 200);
    // Never two. One when all five find the code before it is spent; none when a later one sees it
    // spent and, as a reuse (RFC 6749 §4.1.2), revokes the grant the first is issuing from.
    assert.ok(granted.length <= 1, JSON.stringify(redeemed.map((answer) => answer.body['error'] ?? 'tokens')));
    for (const refused of redeemed.filter((answer) => answer.status !== 200)) assert.equal(refused.body['error'], 'invalid_grant');

    // A fresh code for the refresh race: the concurrent losers above may have revoked that grant (reuse).
    const again = await pkceParams(REDIRECT, 'openid offline_access orders:read', { prompt: 'consent' });
    const second = await signIn(new CookieClient(), config, server.url, again.params, ALICE);
    const tokens = await oidc.authorizationCodeGrant(config, second.callback, { pkceCodeVerifier: again.verifier, expectedState: again.state, expectedNonce: again.nonce });
    const refreshed = await Promise.all(Array.from({ length: 5 }, () => post({ grant_type: 'refresh_token', refresh_token: tokens.refresh_token! })));
    const rotated = refreshed.filter((answer) => answer.status === 200);
    assert.ok(rotated.length <= 1, JSON.stringify(refreshed.map((answer) => answer.body['error'] ?? 'tokens')));
    for (const refused of refreshed.filter((answer) => answer.status !== 200)) assert.equal(refused.body['error'], 'invalid_grant');
  });

  test('one finished sign-in resumed by two requests at once (a double click) gives one code, not two', async () => {
    const firstParty = await adminCall<Client>(server, 'POST', '/clients', {
      client_name: 'Shop (first party)',
      grant_types: ['authorization_code'],
      redirect_uris: [REDIRECT],
      scope: 'openid',
      first_party: true,
    });
    assert.equal(firstParty.status, 201, JSON.stringify(firstParty.body));
    const firstPartyConfig = await oidc.discovery(new URL(server.issuer), firstParty.body.client_id, firstParty.body.client_secret, undefined, { execute: [oidc.allowInsecureRequests] });
    const browser = new CookieClient();
    const { params } = await pkceParams(REDIRECT, 'openid');
    const page = await browser.follow(await browser.get(oidc.buildAuthorizationUrl(firstPartyConfig, params)), server.url);
    const html = await page.text();
    const action = formAction(html, /\/login$/);
    assert.ok(action !== undefined, 'a login form');
    const posted = await browser.postForm(new URL(action, server.url), { csrf: hiddenField(html, 'csrf') ?? '', ...ALICE });
    const resume = posted.headers.get('location');
    assert.ok(posted.status === 303 && resume !== null && new URL(resume, server.url).pathname.startsWith('/auth/'), `the resume: ${posted.status} ${resume}`);

    const answers = await Promise.all(Array.from({ length: 4 }, () => browser.get(new URL(resume, server.url))));
    const codes = answers.map((answer) => answer.headers.get('location')).filter((location) => location !== null && new URL(location).searchParams.has('code'));
    assert.equal(codes.length, 1, `answers: ${answers.map((answer) => `${answer.status} ${answer.headers.get('location') ?? ''}`).join(', ')}`);
    // The others: the provider's 400 (its interaction already gone) or 409 from the one commit, never a 5xx.
    for (const answer of answers) assert.ok(answer.status === 303 || answer.status === 400 || answer.status === 409, String(answer.status));
  });

  test('PKCE is required for the code exchange and plain is refused', async () => {
    const browser = new CookieClient();
    const plain = await browser.get(
      oidc.buildAuthorizationUrl(config, { redirect_uri: REDIRECT, scope: 'openid', code_challenge: 'x'.repeat(43), code_challenge_method: 'plain', state: 's' }),
    );
    const location = new URL(plain.headers.get('location')!);
    assert.equal(location.origin + location.pathname, REDIRECT);
    assert.equal(location.searchParams.get('error'), 'invalid_request');
  });

  test('a wrong password shows one generic message and no code', async () => {
    const browser = new CookieClient();
    const start = await browser.get(
      oidc.buildAuthorizationUrl(config, {
        redirect_uri: REDIRECT,
        scope: 'openid',
        code_challenge: await oidc.calculatePKCECodeChallenge(oidc.randomPKCECodeVerifier()),
        code_challenge_method: 'S256',
        state: 's',
      }),
    );
    const page = await browser.follow(start, server.url);
    const html = await page.text();
    const action = new URL(formAction(html, /\/login$/)!, server.url);
    const wrong = await browser.postForm(action, { csrf: hiddenField(html, 'csrf')!, username: 'alice', password: 'not the password at all' });
    const unknown = await browser.postForm(action, { csrf: hiddenField(html, 'csrf')!, username: 'nobody-here', password: 'not the password at all' });
    assert.equal(wrong.status, 401);
    assert.equal(unknown.status, 401);
    const [a, b] = [await wrong.text(), await unknown.text()];
    const message = (text: string) => /role="alert">([^<]*)</.exec(text)?.[1];
    assert.ok(message(a));
    assert.equal(message(a), message(b), 'unknown user and wrong password look the same');
    const missingCsrf = await browser.postForm(action, { username: 'alice', password: PASSWORD });
    assert.equal(missingCsrf.status, 403);
    const wrongCsrf = await browser.postForm(action, { csrf: 'x'.repeat(43), username: 'alice', password: PASSWORD });
    assert.equal(wrongCsrf.status, 403);
  });
});
