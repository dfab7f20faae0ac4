import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { createLocalJWKSet, decodeProtectedHeader, jwtVerify, type JSONWebKeySet } from 'jose';
import { adminCall, adminToken, clientCredentials } from '../support/admin-api.js';
import { startTestServer, waitFor, type TestServer } from '../support/server.js';

async function jwks(url: string): Promise<JSONWebKeySet> {
  return (await (await fetch(`${url}/jwks`)).json()) as JSONWebKeySet;
}

const kidOf = (token: string) => decodeProtectedHeader(token).kid;

describe('key rotation with two instances on one database', { skip: process.env['TEST_DATABASE_URL'] || process.env['DATABASE_URL'] ? false : 'needs PostgreSQL (TEST_DATABASE_URL)' }, () => {
  let one: TestServer;
  let two: TestServer;
  let client: { client_id: string; client_secret: string };
  const resource = 'https://rotation.example.com';

  before(async () => {
    one = await startTestServer({ env: { KEY_REFRESH_INTERVAL_MS: '200' } });
    // Instances behind one load balancer share the issuer, the database and MASTER_KEY.
    two = await startTestServer({ database: one.database, env: { MASTER_KEY: one.masterKey, ISSUER: one.issuer, KEY_REFRESH_INTERVAL_MS: '200' } });
    assert.equal((await adminCall(one, 'POST', '/resource-servers', { identifier: resource, name: 'Rotation', scopes: ['r'] })).status, 201);
    const created = await adminCall<{ client_id: string; client_secret: string }>(one, 'POST', '/clients', {
      client_name: 'rotation',
      grant_types: ['client_credentials'],
      allowed_resources: [resource],
    });
    client = created.body;
  });
  after(async () => {
    await two?.close();
    await one?.close();
  });

  test('both instances sign with the new key within seconds, publish both keys, and fail no request', async () => {
    const before = await clientCredentials(two, client.client_id, client.client_secret);
    assert.equal(before.status, 200);
    const oldToken = before.body['access_token'] as string;
    const oldKid = kidOf(oldToken);

    // Keep instance two busy while instance one rotates: none of these may fail.
    let stop = false;
    const statuses: number[] = [];
    const load = (async () => {
      while (!stop) statuses.push((await clientCredentials(two, client.client_id, client.client_secret)).status);
    })();

    const rotated = await adminCall<{ items: { kid: string; alg: string; status: string }[] }>(one, 'POST', '/keys/rotate', { algs: ['ES256'] });
    assert.equal(rotated.status, 201);
    const newKid = rotated.body.items[0]!.kid;
    assert.notEqual(newKid, oldKid);

    // Published on both instances the moment the rotation committed.
    for (const server of [one, two]) {
      const kids = (await jwks(server.url)).keys.map((k) => k.kid);
      assert.ok(kids.includes(oldKid) && kids.includes(newKid), `${server.url} publishes both keys`);
    }
    // The rotating instance signs with the new key at once; the other within its refresh interval.
    assert.equal(kidOf((await clientCredentials(one, client.client_id, client.client_secret)).body['access_token'] as string), newKid);
    await waitFor(async () => kidOf((await clientCredentials(two, client.client_id, client.client_secret)).body['access_token'] as string) === newKid, 5_000);

    stop = true;
    await load;
    assert.ok(statuses.length > 0);
    assert.deepEqual([...new Set(statuses)], [200]);

    // Tokens signed before the rotation still verify against either instance's JWKS.
    for (const server of [one, two]) {
      await jwtVerify(oldToken, createLocalJWKSet(await jwks(server.url)), { issuer: one.issuer, audience: resource, typ: 'at+jwt' });
    }

    const keys = await adminCall<{ items: { kid: string; alg: string; status: string; publish_until: string | null }[] }>(two, 'GET', '/keys');
    const old = keys.body.items.find((k) => k.kid === oldKid);
    assert.equal(old?.status, 'retired');
    assert.ok(old?.publish_until !== null && Date.parse(old.publish_until) > Date.now() + 86_000_000, 'kept published for the longest token lifetime');
    assert.equal(keys.body.items.find((k) => k.kid === newKid)?.status, 'active');
  });

  test('the admin API on one instance accepts an admin token signed by the other after rotation', async () => {
    await adminCall(two, 'POST', '/keys/rotate', { algs: ['ES256'] });
    const token = await adminToken(two);
    const response = await waitFor(async () => {
      const result = await adminCall(one, 'GET', '/keys', undefined, token);
      return result.status === 200 ? result : undefined;
    }, 5_000);
    assert.equal(response.status, 200);
  });
});
