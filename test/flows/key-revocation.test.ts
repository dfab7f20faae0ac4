import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { createLocalJWKSet, decodeProtectedHeader, errors as joseErrors, jwtVerify, type JSONWebKeySet } from 'jose';
import { createVerifier, VerifierError } from '../../src/verifier/index.js';
import { adminApi, adminCall, adminToken, assertProblem, clientCredentials, introspectToken, type KeyBody, type Page } from '../support/admin-api.js';
import { startTestServer, waitFor, type TestServer } from '../support/server.js';

async function jwks(url: string): Promise<JSONWebKeySet> {
  return (await (await fetch(`${url}/jwks`)).json()) as JSONWebKeySet;
}

const kidOf = (token: string) => String(decodeProtectedHeader(token).kid);
const needsPostgres = process.env['TEST_DATABASE_URL'] || process.env['DATABASE_URL'] ? false : 'needs PostgreSQL (TEST_DATABASE_URL)';

interface Client {
  client_id: string;
  client_secret: string;
}

async function introspect(server: TestServer, caller: Client, token: string): Promise<Record<string, unknown>> {
  const { status, body } = await introspectToken(server, caller, token);
  assert.equal(status, 200);
  return body;
}

async function listKeys(server: TestServer): Promise<KeyBody[]> {
  const { status, body } = await adminCall<Page<KeyBody>>(server, 'GET', '/keys?limit=200');
  assert.equal(status, 200);
  return body.items;
}

describe('emergency key revocation across two instances', { skip: needsPostgres }, () => {
  let one: TestServer;
  let two: TestServer;
  let client: Client;
  const resource = 'https://revocation.example';

  before(async () => {
    // Instance two polls for key changes only once a minute: within the deadlines below, only the
    // database's change notification can tell it about the revocation.
    one = await startTestServer({ env: { KEY_REFRESH_INTERVAL_MS: '60000' } });
    two = await startTestServer({ database: one.database, env: { MASTER_KEY: one.masterKey, ISSUER: one.issuer, KEY_REFRESH_INTERVAL_MS: '60000' } });
    assert.equal((await adminCall(one, 'POST', '/resource-servers', { identifier: resource, name: 'Revocation', scopes: ['r'] })).status, 201);
    client = (await adminCall<Client>(one, 'POST', '/clients', { client_name: 'revocation', grant_types: ['client_credentials'], allowed_resources: [resource] })).body;
  });
  after(async () => {
    await two?.close();
    await one?.close();
  });

  test('revoking the active key: out of every JWKS at once, its tokens inactive everywhere, issuance goes on with the next key', async () => {
    const token = (await clientCredentials(two, client.client_id, client.client_secret, { resource })).body['access_token'] as string;
    const revokedKid = kidOf(token);
    const keysBefore = await listKeys(one);
    const next = keysBefore.find((key) => key.alg === 'ES256' && key.status === 'next')!;
    assert.equal(keysBefore.find((key) => key.kid === revokedKid)?.status, 'active');
    const cachedJwks = await jwks(two.url);
    assert.equal((await introspect(two, client, token))['active'], true);
    const verifier = createVerifier({ issuer: one.issuer, audience: resource, jwksUri: `${two.url}/jwks`, cacheMaxAgeSeconds: 0 });
    assert.equal((await verifier.verify(token)).claims.client_id, client.client_id);

    const api = adminApi(one, await adminToken(one, 'admin:keys admin:audit'));
    const revoked = await api.request<KeyBody>('POST', `/keys/${revokedKid}/revoke`);
    assert.equal(revoked.status, 200, revoked.text);
    assert.equal(revoked.body.kid, revokedKid);
    assert.equal(revoked.body.status, 'revoked');

    // The JWKS of both instances drops it the moment the revocation committed.
    for (const server of [one, two]) assert.ok(!(await jwks(server.url)).keys.some((key) => key.kid === revokedKid), `${server.url} still publishes it`);
    // Introspection refuses its tokens: at once where it was revoked, on the other instance on the notification.
    assert.equal((await introspect(one, client, token))['active'], false);
    await waitFor(async () => (await introspect(two, client, token))['active'] === false, 5_000);

    // A verifier refreshing its JWKS no longer finds the key.
    await assert.rejects(
      jwtVerify(token, createLocalJWKSet(await jwks(two.url)), { issuer: one.issuer, audience: resource }),
      (error: unknown) => error instanceof joseErrors.JWKSNoMatchingKey,
    );
    await assert.rejects(createVerifier({ issuer: one.issuer, audience: resource, jwksUri: `${two.url}/jwks` }).verify(token), (error: unknown) => error instanceof VerifierError && error.code === 'unknown_key');

    // Both instances sign with the promoted next key, which verifiers already held.
    for (const server of [one, two]) {
      const fresh = await waitFor(async () => {
        const issued = await clientCredentials(server, client.client_id, client.client_secret, { resource });
        return issued.status === 200 && kidOf(issued.body['access_token'] as string) === next.kid ? (issued.body['access_token'] as string) : undefined;
      }, 5_000);
      await jwtVerify(fresh, createLocalJWKSet(cachedJwks), { issuer: one.issuer, audience: resource, typ: 'at+jwt' });
      assert.equal((await introspect(server, client, fresh))['active'], true);
    }
    const keysAfter = await listKeys(two);
    assert.equal(keysAfter.find((key) => key.kid === next.kid)?.status, 'active');
    const newNext = keysAfter.filter((key) => key.alg === 'ES256' && key.status === 'next');
    assert.equal(newNext.length, 1, 'a fresh next key is published');
    assert.ok((await jwks(one.url)).keys.some((key) => key.kid === newNext[0]!.kid));

    const { rows } = await one.db.query<{ type: string; target: string; details: Record<string, unknown> }>('SELECT type, target, details FROM audit_events WHERE request_id = $1', [revoked.requestId]);
    assert.deepEqual(rows, [{ type: 'key.revoked', target: revokedKid, details: { alg: 'ES256', was: 'active', activated: next.kid } }]);
  });

  test('revoking again is 409; an unknown kid is 404; both problem+json, nothing audited', async () => {
    const api = adminApi(one, await adminToken(one, 'admin:keys'));
    const revoked = (await listKeys(one)).find((key) => key.status === 'revoked')!;
    const again = await api.request('POST', `/keys/${revoked.kid}/revoke`);
    assertProblem(again, 409, 'conflict');
    const unknown = await api.request('POST', '/keys/no-such-kid/revoke');
    assertProblem(unknown, 404, 'not-found');
    const odd = await api.request('POST', `/keys/${encodeURIComponent('a b/c')}/revoke`);
    assert.equal(odd.status, 404);
    const { rows } = await one.db.query('SELECT 1 FROM audit_events WHERE request_id = ANY($1)', [[again.requestId, unknown.requestId]]);
    assert.equal(rows.length, 0);
  });

  test('revoking a next key publishes a fresh one; revoking a retired key drops it from the JWKS before its time', async () => {
    const keys = await listKeys(one);
    const next = keys.find((key) => key.alg === 'EdDSA' && key.status === 'next')!;
    assert.equal((await adminCall<KeyBody>(one, 'POST', `/keys/${next.kid}/revoke`)).status, 200);
    const after = await listKeys(one);
    const fresh = after.filter((key) => key.alg === 'EdDSA' && key.status === 'next');
    assert.equal(fresh.length, 1);
    assert.notEqual(fresh[0]!.kid, next.kid);

    const rotated = await adminCall<{ items: KeyBody[] }>(one, 'POST', '/keys/rotate', { algs: ['PS256'] });
    assert.equal(rotated.status, 201);
    const retired = (await listKeys(one)).find((key) => key.alg === 'PS256' && key.status === 'retired')!;
    assert.ok((await jwks(one.url)).keys.some((key) => key.kid === retired.kid));
    assert.equal((await adminCall<KeyBody>(one, 'POST', `/keys/${retired.kid}/revoke`)).status, 200);
    assert.ok(!(await jwks(one.url)).keys.some((key) => key.kid === retired.kid));
    const statuses = await listKeys(one);
    for (const alg of ['ES256', 'EdDSA', 'PS256', 'RS256']) {
      assert.equal(statuses.filter((key) => key.alg === alg && key.status === 'active').length, 1, `${alg} active`);
      assert.equal(statuses.filter((key) => key.alg === alg && key.status === 'next').length, 1, `${alg} next`);
    }
  });
});
