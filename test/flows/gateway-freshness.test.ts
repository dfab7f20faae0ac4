import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { compactDecrypt, createRemoteJWKSet, exportJWK, generateKeyPair, jwtVerify, type CryptoKey } from 'jose';
import * as oidc from 'openid-client';
import { adminCall, adminToken, clientCredentials, createClient, createResourceServer, decodeJwt, deleteClient } from '../support/admin-api.js';
import { CookieClient } from '../support/cookie-client.js';
import { postgresUrl } from '../support/database.js';
import { startTestServer, waitFor, type TestServer } from '../support/server.js';
import { pkceParams, signIn } from '../support/sign-in.js';

/**
 * SPEC §7: the gateway's hot path is cached (verified tokens, people, clients), and stays honest
 * across instances. Two instances share one database; a change made through one instance's
 * admin API must stop being honoured by the other's gateway within the caches' bound (the change
 * notification, milliseconds; at most the 3 s safety TTL): a role removed, a person disabled, a
 * client deleted, a signing key revoked.
 */

const API = 'https://api.gateway-freshness.test';
const HOST = 'api.gateway-freshness.test';
/** A route for services (no roles: a client is no person). */
const SERVICE_HOST = 'svc.gateway-freshness.test';
/** An exchange route: the upstream gets a token for INNER, whose inner layer carries the person. */
const EXCHANGE_HOST = 'exchange.gateway-freshness.test';
const INNER = 'https://inner.gateway-freshness.test';
const REDIRECT = 'http://127.0.0.1:9/callback';
const PASSWORD = 'gateway freshness pass phrase';
/** Comfortably above the documented bound, so a slow machine does not fail the test; the poll returns as soon as it holds. */
const DEADLINE_MS = 8_000;

describe('gateway caches across two instances', { skip: postgresUrl === undefined ? 'needs PostgreSQL (TEST_DATABASE_URL): two instances share it' : false }, () => {
  let one: TestServer;
  let two: TestServer;
  let admin: string;
  let userId: string;
  let personToken: string;
  let innerKey: CryptoKey;

  before(async () => {
    one = await startTestServer();
    two = await startTestServer({ database: one.database, env: { MASTER_KEY: one.masterKey, ISSUER: one.issuer } });
    admin = await adminToken(one, 'admin:clients admin:resource-servers admin:gateway admin:users admin:keys');
    await createResourceServer(one, { identifier: API, name: 'API', scopes: ['api:read'] }, admin);
    const user = await adminCall<{ id: string }>(one, 'POST', '/users', { username: 'fresh', password: PASSWORD, roles: ['staff'] }, admin);
    assert.equal(user.status, 201);
    userId = user.body.id;
    const route = await adminCall(one, 'POST', '/gateway-routes', { host: HOST, path_prefix: '/', resource_server: API, required_scopes: ['api:read'], required_roles: ['staff'], identity_headers: 'trusted' }, admin);
    assert.equal(route.status, 201);
    assert.equal((await adminCall(one, 'POST', '/gateway-routes', { host: SERVICE_HOST, path_prefix: '/', resource_server: API, required_scopes: ['api:read'] }, admin)).status, 201);
    const pair = await generateKeyPair('ECDH-ES+A256KW', { crv: 'P-256' });
    innerKey = pair.privateKey;
    await createResourceServer(one, { identifier: INNER, name: 'Inner', scopes: ['api:read'], inner_encryption_jwk: await exportJWK(pair.publicKey) }, admin);
    const exchangeRoute = { host: EXCHANGE_HOST, path_prefix: '/', resource_server: API, required_scopes: ['api:read'], upstream_token: 'exchange', upstream_resource_server: INNER };
    assert.equal((await adminCall(one, 'POST', '/gateway-routes', exchangeRoute, admin)).status, 201);

    const web = await adminCall<{ client_id: string; client_secret: string }>(
      one,
      'POST',
      '/clients',
      { client_name: 'Web', grant_types: ['authorization_code'], redirect_uris: [REDIRECT], allowed_resources: [API], scope: 'openid api:read', first_party: true },
      admin,
    );
    assert.equal(web.status, 201, JSON.stringify(web.body));
    const config = await oidc.discovery(new URL(one.issuer), web.body.client_id, web.body.client_secret, undefined, { execute: [oidc.allowInsecureRequests] });
    const { verifier, state, nonce, params } = await pkceParams(REDIRECT, 'openid api:read', { resource: API });
    const { callback } = await signIn(new CookieClient(), config, one.url, params, { username: 'fresh', password: PASSWORD });
    personToken = (await oidc.authorizationCodeGrant(config, callback, { pkceCodeVerifier: verifier, expectedState: state, expectedNonce: nonce }, { resource: API })).access_token;
  });
  after(async () => {
    await two?.close();
    await one?.close();
  });

  const decide = (instance: TestServer, token: string, host = HOST) =>
    fetch(`${instance.url}/gateway/forward-auth`, {
      headers: { 'x-forwarded-method': 'GET', 'x-forwarded-proto': 'https', 'x-forwarded-host': host, 'x-forwarded-uri': '/things', authorization: `Bearer ${token}` },
    });
  const until = (instance: TestServer, token: string, status: number, host = HOST) =>
    waitFor(async () => {
      const response = await decide(instance, token, host);
      return response.status === status ? response : undefined;
    }, DEADLINE_MS, 50);

  test('a role removed or a person disabled on one instance stops the other’s gateway; restored, it lets them in again', async () => {
    // Both instances have the person cached before the change.
    for (const instance of [one, two]) {
      const allowed = await decide(instance, personToken);
      assert.equal(allowed.status, 200);
      assert.equal(allowed.headers.get('x-gatehouse-roles'), 'staff');
    }
    assert.equal((await adminCall(one, 'PATCH', `/users/${userId}`, { roles: ['visitor'] }, admin)).status, 200);
    await until(two, personToken, 403);
    await until(one, personToken, 403);
    assert.equal((await adminCall(two, 'PATCH', `/users/${userId}`, { roles: ['staff', 'auditor'] }, admin)).status, 200);
    assert.equal((await until(one, personToken, 200)).headers.get('x-gatehouse-roles'), 'staff,auditor');

    assert.equal((await adminCall(one, 'PATCH', `/users/${userId}`, { disabled: true }, admin)).status, 200);
    await until(two, personToken, 403);
    assert.equal((await adminCall(one, 'PATCH', `/users/${userId}`, { disabled: false }, admin)).status, 200);
    await until(two, personToken, 200);
  });

  test('exchange for a person: the upstream’s token carries the person in its inner layer, read from Gatehouse’s tables; none once the person is disabled', async () => {
    const decided = await decide(two, personToken, EXCHANGE_HOST);
    assert.equal(decided.status, 200);
    const exchanged = (decided.headers.get('authorization') ?? '').slice('Bearer '.length);
    const { payload } = await jwtVerify(exchanged, createRemoteJWKSet(new URL(`${one.issuer}/jwks`)), { issuer: one.issuer, audience: INNER });
    assert.equal(payload.sub, userId);
    assert.equal(typeof payload['auth_time'], 'number');
    assert.equal(payload['acr'], decodeJwt(personToken).payload['acr']);
    assert.equal(payload['preferred_username'], undefined, 'nothing personal in the public claims');
    const inner = JSON.parse(new TextDecoder().decode((await compactDecrypt(String(payload['inner']), innerKey)).plaintext)) as Record<string, unknown>;
    assert.equal(inner['sub'], userId);
    assert.equal(inner['preferred_username'], 'fresh');
    assert.deepEqual(inner['roles'], ['staff', 'auditor']);
    assert.equal((await adminCall(one, 'PATCH', `/users/${userId}`, { disabled: true }, admin)).status, 200);
    await until(two, personToken, 403, EXCHANGE_HOST);
    assert.equal((await adminCall(one, 'PATCH', `/users/${userId}`, { disabled: false }, admin)).status, 200);
    await until(two, personToken, 200, EXCHANGE_HOST);
  });

  test('a deleted client’s tokens stop passing every instance’s gateway (as introspection answers), cached verification or not', async () => {
    const service = await createClient(one, { client_name: 'Service', allowed_resources: [API] }, admin);
    const issued = await clientCredentials(one, service.client_id, service.client_secret!, { resource: API, scope: 'api:read' });
    const token = issued.body['access_token'] as string;
    for (const instance of [one, two]) assert.equal((await decide(instance, token, SERVICE_HOST)).status, 200);
    await deleteClient(one, service.client_id, admin);
    const refused = await until(two, token, 401, SERVICE_HOST);
    assert.match(refused.headers.get('www-authenticate') ?? '', /invalid_token/);
    await until(one, token, 401, SERVICE_HOST);
  });

  test('a revoked signing key: the tokens it signed stop passing at once, though a verification was remembered', async () => {
    const service = await createClient(one, { client_name: 'Service two', allowed_resources: [API] }, admin);
    const token = (await clientCredentials(one, service.client_id, service.client_secret!, { resource: API, scope: 'api:read' })).body['access_token'] as string;
    for (const instance of [one, two]) assert.equal((await decide(instance, token, SERVICE_HOST)).status, 200);
    const kid = decodeJwt(token).header['kid'] as string;
    assert.equal((await adminCall(one, 'POST', '/keys/rotate', {}, admin)).status, 201);
    const revoked = await adminCall(one, 'POST', `/keys/${kid}/revoke`, {}, admin);
    assert.equal(revoked.status, 200, JSON.stringify(revoked.body));
    await until(two, token, 401, SERVICE_HOST);
    await until(one, token, 401, SERVICE_HOST);
  });
});
