import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { createLocalJWKSet, jwtVerify } from 'jose';
import { startTestServer, type TestServer } from '../support/server.js';

// Private JWK members (RFC 7518 §6.2.2, §6.3.2, RFC 8037 §2).
const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k'];

describe('signing keys: sealed at rest, public in the JWKS', () => {
  let server: TestServer;

  before(async () => {
    server = await startTestServer();
  });
  after(() => server.close());

  test('the JWKS serves only public keys: the active and the next key of each supported algorithm', async () => {
    const response = await fetch(`${server.url}/jwks`);
    assert.equal(response.status, 200);
    const jwks = (await response.json()) as { keys: Record<string, unknown>[] };
    assert.deepEqual(jwks.keys.map((k) => k['alg']).sort(), ['ES256', 'ES256', 'EdDSA', 'EdDSA', 'PS256', 'PS256', 'RS256', 'RS256']);
    for (const key of jwks.keys) {
      assert.equal(typeof key['kid'], 'string');
      for (const member of PRIVATE_MEMBERS) assert.equal(key[member], undefined, `${String(key['kid'])} exposes ${member}`);
    }
  });

  test('a raw SELECT of the keys table shows no private key material', async () => {
    const { rows } = await server.db.query<Record<string, unknown>>('SELECT * FROM signing_keys');
    assert.equal(rows.length, 8, 'an active and a next key per algorithm');
    for (const row of rows) {
      const publicJwk = row['public_jwk'] as Record<string, unknown>;
      for (const member of PRIVATE_MEMBERS) assert.equal(publicJwk[member], undefined);
      assert.match(String(row['private_jwk_sealed']), /^ge1\./);
      assert.ok(!JSON.stringify(row).includes('"d"'), 'no JWK "d" member anywhere in the row');
    }
    const secrets = await server.db.query<{ sealed: string }>('SELECT sealed FROM server_secrets');
    assert.ok(secrets.rows.length >= 2);
    for (const { sealed } of secrets.rows) assert.match(sealed, /^ge1\./);
  });

  test('tokens verify against the published JWKS with an independent JOSE library', async () => {
    const tokenResponse = await fetch(`${server.url}/token`, {
      method: 'POST',
      headers: {
        authorization: `Basic ${Buffer.from(`${server.admin.clientId}:${server.admin.clientSecret}`).toString('base64')}`,
        'content-type': 'application/x-www-form-urlencoded',
      },
      body: 'grant_type=client_credentials&scope=admin%3Akeys',
    });
    assert.equal(tokenResponse.status, 200);
    const { access_token: token } = (await tokenResponse.json()) as { access_token: string };
    const jwks = createLocalJWKSet((await (await fetch(`${server.url}/jwks`)).json()) as Parameters<typeof createLocalJWKSet>[0]);
    const { payload, protectedHeader } = await jwtVerify(token, jwks, {
      issuer: server.issuer,
      audience: `${server.issuer}/admin`,
      typ: 'at+jwt',
    });
    assert.equal(protectedHeader.alg, 'ES256');
    assert.equal(payload['scope'], 'admin:keys');
  });

  test('a second instance on the same database loads the same keys instead of making new ones', async (t) => {
    // PGlite is one process per data dir, so a second instance needs PostgreSQL.
    if (server.database.backend === 'pglite') return t.skip('needs PostgreSQL');
    const second = await startTestServer({ database: server.database, env: { MASTER_KEY: server.masterKey } });
    try {
      const [a, b] = await Promise.all([server.url, second.url].map(async (url) => (await (await fetch(`${url}/jwks`)).json()) as unknown));
      assert.deepEqual(a, b);
      const { rows } = await server.db.query<{ n: number }>('SELECT count(*)::int AS n FROM signing_keys');
      assert.equal(rows[0]!.n, 8);
    } finally {
      await second.close();
    }
  });
});
