import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { createLocalJWKSet, decodeProtectedHeader, jwtVerify, type JSONWebKeySet } from 'jose';
import { adminCall, clientCredentials, type KeyBody, type Page } from '../support/admin-api.js';
import { startTestServer, type TestServer } from '../support/server.js';

async function jwks(url: string): Promise<JSONWebKeySet> {
  return (await (await fetch(`${url}/jwks`)).json()) as JSONWebKeySet;
}

const kidOf = (token: string) => decodeProtectedHeader(token).kid;
const ALGS = ['ES256', 'EdDSA', 'PS256', 'RS256'];
const needsPostgres = process.env['TEST_DATABASE_URL'] || process.env['DATABASE_URL'] ? false : 'needs PostgreSQL (TEST_DATABASE_URL)';

async function listKeys(server: TestServer): Promise<KeyBody[]> {
  const { status, body } = await adminCall<Page<KeyBody>>(server, 'GET', '/keys?limit=200');
  assert.equal(status, 200);
  return body.items;
}

function byStatus(keys: readonly KeyBody[], status: KeyBody['status']): string[] {
  return keys
    .filter((key) => key.status === status)
    .map((key) => key.alg)
    .sort();
}

describe('key rotation: the next signing key is published before it signs', () => {
  let server: TestServer;
  let client: { client_id: string; client_secret: string };
  const resource = 'https://ahead.rotation.example';

  before(async () => {
    server = await startTestServer();
    assert.equal((await adminCall(server, 'POST', '/resource-servers', { identifier: resource, name: 'Ahead', scopes: ['r'] })).status, 201);
    client = (await adminCall<{ client_id: string; client_secret: string }>(server, 'POST', '/clients', { client_name: 'ahead', grant_types: ['client_credentials'], allowed_resources: [resource] })).body;
  });
  after(() => server.close());

  test('a token signed after a rotation verifies against the JWKS a verifier cached before it', async () => {
    const cached = await jwks(server.url);
    const rotated = await adminCall<{ items: KeyBody[] }>(server, 'POST', '/keys/rotate', { algs: ['ES256'] });
    assert.equal(rotated.status, 201);

    const issued = await clientCredentials(server, client.client_id, client.client_secret, { resource });
    assert.equal(issued.status, 200);
    const token = issued.body['access_token'] as string;
    assert.equal(kidOf(token), rotated.body.items[0]!.kid, 'signed by the newly active key');
    const { payload } = await jwtVerify(token, createLocalJWKSet(cached), { issuer: server.issuer, audience: resource, typ: 'at+jwt' });
    assert.equal(payload['client_id'], client.client_id);

    // And again: the rotation published a fresh next key, so the following rotation is covered too.
    const cachedAgain = await jwks(server.url);
    const keys = await listKeys(server);
    const next = keys.filter((key) => key.status === 'next');
    assert.deepEqual(next.map((key) => key.alg).sort(), ALGS);
    for (const key of next) assert.ok(cachedAgain.keys.some((published) => published.kid === key.kid), `next key ${key.kid} is in /jwks`);
    const second = await adminCall<{ items: KeyBody[] }>(server, 'POST', '/keys/rotate', { algs: ['ES256'] });
    assert.equal(second.body.items[0]!.kid, next.find((key) => key.alg === 'ES256')!.kid);
    const later = (await clientCredentials(server, client.client_id, client.client_secret, { resource })).body['access_token'] as string;
    await jwtVerify(later, createLocalJWKSet(cachedAgain), { issuer: server.issuer, audience: resource, typ: 'at+jwt' });
  });

  test('a next key never signs: every token names an active key', async () => {
    const keys = await listKeys(server);
    const next = new Set(keys.filter((key) => key.status === 'next').map((key) => key.kid));
    const active = new Set(keys.filter((key) => key.status === 'active').map((key) => key.kid));
    const token = (await clientCredentials(server, client.client_id, client.client_secret, { resource })).body['access_token'] as string;
    assert.ok(active.has(String(kidOf(token))));
    assert.ok(!next.has(String(kidOf(token))));
  });
});

describe('key rotation: concurrent rotations and start-up on an existing database', { skip: needsPostgres }, () => {
  let one: TestServer;
  let two: TestServer;

  before(async () => {
    one = await startTestServer();
    two = await startTestServer({ database: one.database, env: { MASTER_KEY: one.masterKey, ISSUER: one.issuer } });
  });
  after(async () => {
    await two?.close();
    await one?.close();
  });

  test('rotations racing on two instances all succeed and leave one active and one next key per algorithm', async () => {
    const results = await Promise.all([one, two, one, two].map((server) => adminCall<{ items: KeyBody[] }>(server, 'POST', '/keys/rotate', { algs: ['ES256', 'EdDSA'] })));
    assert.deepEqual(
      results.map((result) => result.status),
      [201, 201, 201, 201],
    );
    const keys = await listKeys(one);
    assert.deepEqual(byStatus(keys, 'active'), ALGS);
    assert.deepEqual(byStatus(keys, 'next'), ALGS);
    // Four rotations of two algorithms: each made a distinct key active.
    const activated = results.flatMap((result) => result.body.items.map((key) => key.kid));
    assert.equal(new Set(activated).size, 8);
    const { rows } = await one.db.query<{ alg: string; n: number }>("SELECT alg, count(*)::int AS n FROM signing_keys WHERE status = 'retired' GROUP BY alg ORDER BY alg");
    assert.deepEqual(rows, [
      { alg: 'ES256', n: 4 },
      { alg: 'EdDSA', n: 4 },
    ]);
  });

  test('a database without next keys (from before them) gets one per algorithm at start-up, published', async () => {
    await one.db.query("DELETE FROM signing_keys WHERE status = 'next'");
    const third = await startTestServer({ database: one.database, env: { MASTER_KEY: one.masterKey, ISSUER: one.issuer } });
    try {
      const keys = await listKeys(third);
      assert.deepEqual(byStatus(keys, 'next'), ALGS);
      assert.deepEqual(byStatus(keys, 'active'), ALGS);
      const published = (await jwks(third.url)).keys.map((key) => key.kid);
      for (const key of keys.filter((k) => k.status === 'next')) assert.ok(published.includes(key.kid));
    } finally {
      await third.close();
    }
  });
});
