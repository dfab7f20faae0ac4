import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { createLocalJWKSet, decodeJwt, decodeProtectedHeader, exportJWK, generateKeyPair, jwtVerify, type JSONWebKeySet } from 'jose';
import * as oidc from 'openid-client';
import { adminToken, createClient, createResourceServer, deleteClient, type ClientBody } from '../support/admin-api.js';
import { startTestServer, type TestServer } from '../support/server.js';

/**
 * The client-credentials grant (SPEC §2) through openid-client, for each client authentication
 * method, and the access token it yields (SPEC §3, RFC 9068): header, exact public claims,
 * per-resource-server signing algorithm, and the RFC 8707 resource policy.
 */

const ORDERS = 'https://orders.client-credentials.example';
const BILLING = 'https://billing.client-credentials.example';
const INNER = 'https://inner.client-credentials.example';
const ALGS = ['ES256', 'EdDSA', 'PS256', 'RS256'] as const;
const byAlg = (alg: string) => `https://${alg.toLowerCase()}.client-credentials.example`;
const ORDERS_TTL = 1234;
const PUBLIC_CLAIMS = ['aud', 'client_id', 'exp', 'iat', 'iss', 'jti', 'scope', 'sub'];

const insecure = { execute: [oidc.allowInsecureRequests] };

/**
 * Asserts an RFC 6749 §5.2 error response. When the client authenticated with HTTP Basic, a 401
 * carries a `WWW-Authenticate` challenge, which openid-client surfaces as its own error class.
 */
async function rejectsWith(promise: Promise<unknown>, error: string, status: number): Promise<void> {
  const thrown = await promise.then(
    () => assert.fail(`expected ${error}, got a token`),
    (reason: unknown) => reason,
  );
  if (thrown instanceof oidc.WWWAuthenticateChallengeError) {
    assert.equal(thrown.status, status);
    assert.equal(thrown.cause[0]?.scheme, 'basic');
    const body = (await thrown.response.json()) as { error?: string };
    assert.equal(body.error, error);
    return;
  }
  assert.ok(thrown instanceof oidc.ResponseBodyError, `expected a protocol error, got ${String(thrown)}`);
  assert.equal(thrown.error, error);
  assert.equal(thrown.status, status);
}

describe('client credentials: authentication methods, the at+jwt and the resource policy', () => {
  let server: TestServer;
  let jwks: JSONWebKeySet;
  let basic: ClientBody;
  let post: ClientBody;
  let keyed: ClientBody;
  let multi: ClientBody;
  let basicConfig: oidc.Configuration;
  let postConfig: oidc.Configuration;
  let keyedConfig: oidc.Configuration;
  let multiConfig: oidc.Configuration;
  let signingKey: oidc.CryptoKey;

  const discover = (clientId: string, secret?: string, auth?: oidc.ClientAuth) => oidc.discovery(new URL(server.issuer), clientId, secret, auth, insecure);

  async function verifyAgainstJwks(token: string, audience: string, algorithms: string[] = [...ALGS]) {
    return jwtVerify(token, createLocalJWKSet(jwks), { issuer: server.issuer, audience, typ: 'at+jwt', algorithms });
  }

  before(async () => {
    server = await startTestServer();
    const token = await adminToken(server, 'admin:clients admin:resource-servers');
    await createResourceServer(server, { identifier: ORDERS, name: 'Orders', scopes: ['orders:read', 'orders:write'], access_token_ttl: ORDERS_TTL }, token);
    await createResourceServer(server, { identifier: BILLING, name: 'Billing', scopes: ['billing:read'] }, token);
    const innerKey = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ format: 'jwk' });
    await createResourceServer(server, { identifier: INNER, name: 'Inner', scopes: ['inner:read'], inner_encryption_jwk: innerKey }, token);
    for (const alg of ALGS) {
      await createResourceServer(server, { identifier: byAlg(alg), name: alg, scopes: ['read'], signing_alg: alg, access_token_ttl: 600 }, token);
    }

    basic = await createClient(server, { client_name: 'Basic worker', allowed_resources: [ORDERS] }, token);
    post = await createClient(server, { client_name: 'Post worker', token_endpoint_auth_method: 'client_secret_post', allowed_resources: [ORDERS] }, token);
    const pair = await generateKeyPair('ES256');
    signingKey = pair.privateKey;
    const publicJwk = { ...(await exportJWK(pair.publicKey)), kid: 'worker-key-1', alg: 'ES256', use: 'sig' };
    keyed = await createClient(
      server,
      { client_name: 'Keyed worker', token_endpoint_auth_method: 'private_key_jwt', jwks: { keys: [publicJwk] }, allowed_resources: [ORDERS] },
      token,
    );
    assert.equal(keyed.client_secret, undefined, 'a private_key_jwt client gets no secret');
    multi = await createClient(server, { client_name: 'Multi worker', allowed_resources: [ORDERS, BILLING, INNER, ...ALGS.map(byAlg)] }, token);

    basicConfig = await discover(basic.client_id, basic.client_secret, oidc.ClientSecretBasic(basic.client_secret));
    postConfig = await discover(post.client_id, post.client_secret, oidc.ClientSecretPost(post.client_secret));
    keyedConfig = await discover(keyed.client_id, undefined, oidc.PrivateKeyJwt({ key: signingKey, kid: 'worker-key-1' }));
    multiConfig = await discover(multi.client_id, multi.client_secret, oidc.ClientSecretBasic(multi.client_secret));

    const response = await fetch(basicConfig.serverMetadata().jwks_uri!);
    assert.equal(response.status, 200);
    jwks = (await response.json()) as JSONWebKeySet;
  });
  after(() => server?.close());

  for (const [method, client, config] of [
    ['client_secret_basic', () => basic, () => basicConfig],
    ['client_secret_post', () => post, () => postConfig],
    ['private_key_jwt', () => keyed, () => keyedConfig],
  ] as const) {
    test(`${method}: issues an at+jwt with exactly the public claims of SPEC §3`, async () => {
      const tokens = await oidc.clientCredentialsGrant(config(), { scope: 'orders:read', resource: ORDERS });
      assert.equal(tokens.token_type.toLowerCase(), 'bearer');
      assert.equal(tokens.expires_in, ORDERS_TTL);
      assert.equal(tokens.refresh_token, undefined);
      const token = tokens.access_token;
      assert.equal(token.split('.').length, 3, 'a JWS compact serialization');

      const header = decodeProtectedHeader(token);
      assert.deepEqual(Object.keys(header).sort(), ['alg', 'kid', 'typ']);
      assert.equal(header.alg, 'ES256');
      assert.equal(header.typ, 'at+jwt');
      const published = jwks.keys.find((key) => key.kid === header.kid);
      assert.ok(published !== undefined, `kid ${String(header.kid)} is not in /jwks`);
      assert.equal(published.alg, 'ES256');

      const payload = decodeJwt(token);
      assert.deepEqual(Object.keys(payload).sort(), PUBLIC_CLAIMS);
      for (const personal of ['username', 'preferred_username', 'email', 'name', 'roles', 'inner']) assert.equal(payload[personal], undefined, personal);
      assert.equal(payload.iss, server.issuer);
      assert.equal(payload.sub, client().client_id);
      assert.equal(payload['client_id'], client().client_id);
      assert.equal(payload.aud, ORDERS);
      assert.equal(payload['scope'], 'orders:read');
      assert.equal(typeof payload.jti, 'string');
      assert.equal(payload.exp! - payload.iat!, ORDERS_TTL);
      assert.ok(Math.abs(payload.iat! - Date.now() / 1000) < 60);

      const { payload: verified, protectedHeader } = await verifyAgainstJwks(token, ORDERS, ['ES256']);
      assert.equal(protectedHeader.kid, header.kid);
      assert.equal(verified.jti, payload.jti);
    });
  }

  test('the payload gains only `inner` for a resource server with an inner key', async () => {
    const tokens = await oidc.clientCredentialsGrant(multiConfig, { scope: 'inner:read', resource: INNER });
    const payload = decodeJwt(tokens.access_token);
    assert.deepEqual(Object.keys(payload).sort(), [...PUBLIC_CLAIMS, 'inner'].sort());
    assert.equal(typeof payload['inner'], 'string');
    assert.equal((payload['inner'] as string).split('.').length, 5);
  });

  for (const alg of ALGS) {
    test(`a resource server signing with ${alg} gets ${alg} tokens that verify against /jwks`, async () => {
      const tokens = await oidc.clientCredentialsGrant(multiConfig, { scope: 'read', resource: byAlg(alg) });
      const header = decodeProtectedHeader(tokens.access_token);
      assert.deepEqual(Object.keys(header).sort(), ['alg', 'kid', 'typ']);
      assert.equal(header.alg, alg);
      assert.equal(header.typ, 'at+jwt');
      assert.equal(jwks.keys.find((key) => key.kid === header.kid)?.alg, alg, `kid ${String(header.kid)} is not a published ${alg} key`);
      const { payload } = await verifyAgainstJwks(tokens.access_token, byAlg(alg), [alg]);
      assert.equal(payload.aud, byAlg(alg));
      assert.equal(payload.exp! - payload.iat!, 600);
      assert.deepEqual(Object.keys(payload).sort(), PUBLIC_CLAIMS);
    });
  }

  test('a token does not verify for another audience or under another key', async () => {
    const { access_token: token } = await oidc.clientCredentialsGrant(basicConfig, { scope: 'orders:read', resource: ORDERS });
    await assert.rejects(verifyAgainstJwks(token, BILLING), { code: 'ERR_JWT_CLAIM_VALIDATION_FAILED', claim: 'aud' });
    const kid = decodeProtectedHeader(token).kid;
    const others = { keys: jwks.keys.filter((key) => key.kid !== kid) };
    await assert.rejects(jwtVerify(token, createLocalJWKSet(others), { issuer: server.issuer, audience: ORDERS }), { code: 'ERR_JWKS_NO_MATCHING_KEY' });
  });

  test('without `resource`, a client with exactly one allowed resource gets a token for it', async () => {
    for (const config of [basicConfig, postConfig, keyedConfig]) {
      const tokens = await oidc.clientCredentialsGrant(config, { scope: 'orders:read orders:write' });
      const payload = decodeJwt(tokens.access_token);
      assert.equal(payload.aud, ORDERS);
      assert.equal(payload['scope'], 'orders:read orders:write');
    }
  });

  test('without `resource`, a client with several allowed resources is refused: invalid_target', async () => {
    await rejectsWith(oidc.clientCredentialsGrant(multiConfig, { scope: 'orders:read' }), 'invalid_target', 400);
    await rejectsWith(oidc.clientCredentialsGrant(multiConfig, {}), 'invalid_target', 400);
  });

  test('a resource outside the client’s allowed_resources, or unknown, is invalid_target (RFC 8707 §2)', async () => {
    await rejectsWith(oidc.clientCredentialsGrant(basicConfig, { scope: 'billing:read', resource: BILLING }), 'invalid_target', 400);
    await rejectsWith(oidc.clientCredentialsGrant(basicConfig, { resource: BILLING }), 'invalid_target', 400);
    await rejectsWith(oidc.clientCredentialsGrant(keyedConfig, { resource: INNER }), 'invalid_target', 400);
    await rejectsWith(oidc.clientCredentialsGrant(multiConfig, { resource: 'https://unknown.client-credentials.example' }), 'invalid_target', 400);
    // The admin API is a resource like any other: a client not allowed it gets no admin token.
    await rejectsWith(oidc.clientCredentialsGrant(basicConfig, { scope: 'admin:clients', resource: `${server.issuer}/admin` }), 'invalid_target', 400);
  });

  test('a scope the resource server does not define is invalid_scope, and no token is issued', async () => {
    await rejectsWith(oidc.clientCredentialsGrant(basicConfig, { scope: 'orders:delete', resource: ORDERS }), 'invalid_scope', 400);
    await rejectsWith(oidc.clientCredentialsGrant(basicConfig, { scope: 'orders:read orders:delete' }), 'invalid_scope', 400);
    // Another resource server's scope is not borrowed either.
    await rejectsWith(oidc.clientCredentialsGrant(multiConfig, { scope: 'billing:read', resource: ORDERS }), 'invalid_scope', 400);
    await rejectsWith(oidc.clientCredentialsGrant(multiConfig, { scope: 'admin:clients', resource: ORDERS }), 'invalid_scope', 400);

    const response = await fetch(basicConfig.serverMetadata().token_endpoint!, {
      method: 'POST',
      headers: {
        authorization: `Basic ${Buffer.from(`${basic.client_id}:${basic.client_secret!}`).toString('base64')}`,
        'content-type': 'application/x-www-form-urlencoded',
      },
      body: new URLSearchParams({ grant_type: 'client_credentials', resource: ORDERS, scope: 'orders:delete' }),
    });
    assert.equal(response.status, 400);
    const body = (await response.json()) as Record<string, unknown>;
    assert.equal(body['error'], 'invalid_scope');
    assert.equal(body['access_token'], undefined);
  });

  test('a client that registered `scope` gets only those of the server’s scopes', async () => {
    const restricted = await createClient(server, { client_name: 'Reader', allowed_resources: [ORDERS], scope: 'orders:read' });
    const config = await discover(restricted.client_id, restricted.client_secret, oidc.ClientSecretBasic(restricted.client_secret));
    assert.equal(decodeJwt((await oidc.clientCredentialsGrant(config, { scope: 'orders:read' })).access_token)['scope'], 'orders:read');
    await rejectsWith(oidc.clientCredentialsGrant(config, { scope: 'orders:write' }), 'invalid_scope', 400);
  });

  test('a wrong secret or an unregistered signing key is invalid_client (401)', async () => {
    const wrongBasic = await discover(basic.client_id, `${basic.client_secret!}x`, oidc.ClientSecretBasic(`${basic.client_secret!}x`));
    await rejectsWith(oidc.clientCredentialsGrant(wrongBasic, { scope: 'orders:read' }), 'invalid_client', 401);
    const wrongPost = await discover(post.client_id, basic.client_secret, oidc.ClientSecretPost(basic.client_secret));
    await rejectsWith(oidc.clientCredentialsGrant(wrongPost, { scope: 'orders:read' }), 'invalid_client', 401);
    // A private_key_jwt client has no secret to present.
    const secretForKeyed = await discover(keyed.client_id, basic.client_secret, oidc.ClientSecretPost(basic.client_secret));
    await rejectsWith(oidc.clientCredentialsGrant(secretForKeyed, { scope: 'orders:read' }), 'invalid_client', 401);
    const stranger = await generateKeyPair('ES256');
    const wrongKey = await discover(keyed.client_id, undefined, oidc.PrivateKeyJwt({ key: stranger.privateKey, kid: 'worker-key-1' }));
    await rejectsWith(oidc.clientCredentialsGrant(wrongKey, { scope: 'orders:read' }), 'invalid_client', 401);
  });

  test('a client deleted through the admin API is refused at once: invalid_client', async () => {
    const doomed = await createClient(server, { client_name: 'Doomed', token_endpoint_auth_method: 'client_secret_post', allowed_resources: [ORDERS] });
    const config = await discover(doomed.client_id, doomed.client_secret, oidc.ClientSecretPost(doomed.client_secret));
    assert.equal(decodeJwt((await oidc.clientCredentialsGrant(config, { scope: 'orders:read' })).access_token)['client_id'], doomed.client_id);
    await deleteClient(server, doomed.client_id);
    await rejectsWith(oidc.clientCredentialsGrant(config, { scope: 'orders:read' }), 'invalid_client', 401);
  });
});
