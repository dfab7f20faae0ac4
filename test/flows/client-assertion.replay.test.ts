import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey } from 'jose';
import { adminToken, createClient, createResourceServer, uniqueName } from '../support/admin-api.js';
import { postgresUrl } from '../support/database.js';
import { startTestServer, type TestServer } from '../support/server.js';

/**
 * SPEC §2: a client assertion's `jti` is accepted once, atomically across concurrent requests
 * and instances (RFC 7523 §3 item 7 lets a server refuse a reused jti). oidc-provider's
 * ReplayDetection.unique() is find-then-save, so concurrent requests carrying one assertion used
 * to pass together (4 of 24 on PostgreSQL); it is now one insert-only statement (issue 13 item 12).
 */

const PARALLEL = 24;

describe('private_key_jwt: one client assertion is accepted once, even by concurrent requests on two instances', { skip: postgresUrl === undefined ? 'needs PostgreSQL (TEST_DATABASE_URL): two instances cannot share a PGlite database' : false }, () => {
  let one: TestServer;
  let two: TestServer;
  let clientId: string;
  let signingKey: CryptoKey;
  let resource: string;
  let tokenEndpoint: string;

  before(async () => {
    one = await startTestServer();
    two = await startTestServer({ database: one.database, env: { MASTER_KEY: one.masterKey, ISSUER: one.issuer } });
    const token = await adminToken(one, 'admin:clients admin:resource-servers');
    resource = `https://${uniqueName('replay')}.example.test`;
    await createResourceServer(one, { identifier: resource, name: 'Replay target', scopes: ['things:read'] }, token);
    const keys = await generateKeyPair('ES256', { extractable: true });
    signingKey = keys.privateKey;
    const publicJwk = { ...(await exportJWK(keys.publicKey)), kid: 'replay-key', alg: 'ES256', use: 'sig' };
    const client = await createClient(
      one,
      { client_name: 'Asserting worker', token_endpoint_auth_method: 'private_key_jwt', jwks: { keys: [publicJwk] }, allowed_resources: [resource] },
      token,
    );
    clientId = client.client_id;
    const discovery = (await (await fetch(new URL('/.well-known/openid-configuration', one.url))).json()) as { token_endpoint: string };
    tokenEndpoint = discovery.token_endpoint;
  });
  after(async () => {
    await two?.close();
    await one?.close();
  });

  function assertion(jti: string): Promise<string> {
    return new SignJWT({})
      .setProtectedHeader({ alg: 'ES256', kid: 'replay-key' })
      .setIssuer(clientId)
      .setSubject(clientId)
      // The issuer identifier (RFC 7523 §3 item 3) is valid at every instance.
      .setAudience(one.issuer)
      .setJti(jti)
      .setIssuedAt()
      .setExpirationTime('60s')
      .sign(signingKey);
  }

  /** A token request with `jwt` sent to the instance at `base`; the HTTP status and error. */
  async function tokenRequest(base: string, jwt: string): Promise<{ status: number; error?: string }> {
    const response = await fetch(new URL(new URL(tokenEndpoint).pathname, base), {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        grant_type: 'client_credentials',
        scope: 'things:read',
        resource,
        client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
        client_assertion: jwt,
      }),
    });
    const body = (await response.json()) as { error?: string };
    return { status: response.status, ...(body.error === undefined ? {} : { error: body.error }) };
  }

  test('sequential reuse is refused', async () => {
    const jwt = await assertion(randomUUID());
    assert.equal((await tokenRequest(one.url, jwt)).status, 200);
    assert.deepEqual(await tokenRequest(two.url, jwt), { status: 401, error: 'invalid_client' });
  });

  test(`${PARALLEL} concurrent requests with one assertion, split over two instances: exactly one token`, async () => {
    const jwt = await assertion(randomUUID());
    const results = await Promise.all(Array.from({ length: PARALLEL }, (_, i) => tokenRequest(i % 2 === 0 ? one.url : two.url, jwt)));
    const issued = results.filter((result) => result.status === 200).length;
    assert.equal(issued, 1, `tokens issued for one assertion: ${issued} of ${PARALLEL}`);
    for (const result of results.filter((r) => r.status !== 200)) assert.deepEqual(result, { status: 401, error: 'invalid_client' });
  });

  test('distinct assertions all succeed (the claim is per jti, not per client)', async () => {
    const results = await Promise.all(Array.from({ length: 6 }, async (_, i) => tokenRequest(i % 2 === 0 ? one.url : two.url, await assertion(randomUUID()))));
    assert.deepEqual(results.map((r) => r.status), Array(6).fill(200));
  });
});
