import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { calculateJwkThumbprint, decodeJwt } from 'jose';
import * as oidc from 'openid-client';
import { adminCall, adminToken, createResourceServer } from '../support/admin-api.js';
import { CookieClient } from '../support/cookie-client.js';
import { pkceParams, signIn } from '../support/sign-in.js';
import { startTestServer, type TestServer } from '../support/server.js';

/**
 * SPEC §8 for people: a public client (a single-page app, no secret) signs a person in with the
 * code flow and PKCE and binds its tokens with DPoP through openid-client. The refresh token is
 * bound to the key too (RFC 9449 §5: public clients), so a refresh keeps the binding and a thief
 * without the key cannot refresh; userinfo takes the bound token only with a proof.
 */

const REDIRECT = 'http://127.0.0.1:9/spa-callback';
const ORDERS = 'https://orders.dpop-people.example';
const PASSWORD = 'correct horse battery staple';

describe('DPoP for a public client signing a person in', () => {
  let server: TestServer;
  let config: oidc.Configuration;
  let keys: CryptoKeyPair;
  let handle: oidc.DPoPHandle;
  let jkt: string;
  let tokens: oidc.TokenEndpointResponse & oidc.TokenEndpointResponseHelpers;

  before(async () => {
    server = await startTestServer();
    const admin = await adminToken(server, 'admin:clients admin:resource-servers admin:users');
    await createResourceServer(server, { identifier: ORDERS, name: 'Orders', scopes: ['orders:read'] }, admin);
    const user = await adminCall(server, 'POST', '/users', { username: 'dpop-person', password: PASSWORD }, admin);
    assert.equal(user.status, 201, JSON.stringify(user.body));
    const client = await adminCall<{ client_id: string }>(
      server,
      'POST',
      '/clients',
      {
        client_name: 'DPoP SPA',
        grant_types: ['authorization_code', 'refresh_token'],
        redirect_uris: [REDIRECT],
        token_endpoint_auth_method: 'none',
        scope: 'openid offline_access orders:read',
        allowed_resources: [ORDERS],
        first_party: true,
        dpop_bound_access_tokens: true,
      },
      admin,
    );
    assert.equal(client.status, 201, JSON.stringify(client.body));
    config = await oidc.discovery(new URL(server.issuer), client.body.client_id, undefined, oidc.None(), { execute: [oidc.allowInsecureRequests] });
    keys = await oidc.randomDPoPKeyPair('ES256');
    handle = oidc.getDPoPHandle(config, keys);
    jkt = await calculateJwkThumbprint(await crypto.subtle.exportKey('jwk', keys.publicKey));

    const browser = new CookieClient();
    const { verifier, state, nonce, params } = await pkceParams(REDIRECT, 'openid offline_access orders:read', { prompt: 'consent', resource: ORDERS });
    const { callback } = await signIn(browser, config, server.url, params, { username: 'dpop-person', password: PASSWORD });
    tokens = await oidc.authorizationCodeGrant(config, callback, { pkceCodeVerifier: verifier, expectedState: state, expectedNonce: nonce }, undefined, { DPoP: handle });
  });
  after(() => server?.close());

  test('the code exchange with a proof yields DPoP tokens and a refresh token', () => {
    assert.equal(tokens.token_type.toLowerCase(), 'dpop');
    assert.ok(tokens.refresh_token);
  });

  test('userinfo takes the bound token with a proof, not as Bearer', async () => {
    const claims = await oidc.fetchUserInfo(config, tokens.access_token, tokens.claims()!.sub, { DPoP: handle });
    assert.equal(claims.sub, tokens.claims()!.sub);
    const asBearer = await fetch(`${server.issuer}/me`, { headers: { authorization: `Bearer ${tokens.access_token}` } });
    assert.equal(asBearer.status, 401);
  });

  test('a refresh with the key keeps the binding (cnf.jkt) for the resource server token; without it, or with another key, the refresh token is useless', async () => {
    const stolen = tokens.refresh_token!;
    const thiefHandle = oidc.getDPoPHandle(config, await oidc.randomDPoPKeyPair('ES256'));
    await assert.rejects(oidc.refreshTokenGrant(config, stolen, { resource: ORDERS, scope: 'orders:read' }, { DPoP: thiefHandle }), (error: unknown) => error instanceof oidc.ResponseBodyError && error.error === 'invalid_grant');
    await assert.rejects(oidc.refreshTokenGrant(config, stolen, { resource: ORDERS, scope: 'orders:read' }), (error: unknown) => error instanceof oidc.ResponseBodyError && error.error === 'invalid_grant');

    const refreshed = await oidc.refreshTokenGrant(config, stolen, { resource: ORDERS, scope: 'orders:read' }, { DPoP: handle });
    assert.equal(refreshed.token_type.toLowerCase(), 'dpop');
    const claims = decodeJwt(refreshed.access_token);
    assert.equal(claims.aud, ORDERS);
    assert.deepEqual(claims['cnf'], { jkt });
    assert.ok(refreshed.refresh_token, 'rotated');
    const again = await oidc.refreshTokenGrant(config, refreshed.refresh_token, { resource: ORDERS, scope: 'orders:read' }, { DPoP: handle });
    assert.deepEqual(decodeJwt(again.access_token)['cnf'], { jkt });
  });
});
