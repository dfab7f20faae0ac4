import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { importJWK, SignJWT, type JWK } from 'jose';
import { createEnvelope } from '../../src/crypto/envelope.js';
import { adminCall, clientCredentials, introspectToken } from '../support/admin-api.js';
import { startTestServer, type TestServer } from '../support/server.js';

interface Client {
  client_id: string;
  client_secret: string;
}

const introspect = (server: TestServer, caller: Client, token: string) => introspectToken(server, caller, token);

describe('introspection (RFC 7662) of JWT access tokens', () => {
  let server: TestServer;
  let owner: Client;
  let peer: Client;
  let stranger: Client;
  const orders = 'https://orders.introspection.example';
  const vault = 'https://vault.introspection.example';
  const other = 'https://other.introspection.example';

  async function makeClient(name: string, allowed: string[]): Promise<Client> {
    const { status, body } = await adminCall<Client>(server, 'POST', '/clients', { client_name: name, grant_types: ['client_credentials'], allowed_resources: allowed });
    assert.equal(status, 201);
    return body;
  }

  async function token(client: Client, resource: string): Promise<string> {
    const { status, body } = await clientCredentials(server, client.client_id, client.client_secret, { resource, scope: 'read' });
    assert.equal(status, 200, JSON.stringify(body));
    return body['access_token'] as string;
  }

  before(async () => {
    server = await startTestServer();
    const { generateKeyPair, exportJWK } = await import('jose');
    const { publicKey } = await generateKeyPair('ECDH-ES+A256KW', { crv: 'P-256' });
    for (const [identifier, extra] of [
      [orders, {}],
      [vault, { inner_encryption_jwk: await exportJWK(publicKey), encrypt_whole_token: true }],
      [other, {}],
    ] as const) {
      assert.equal((await adminCall(server, 'POST', '/resource-servers', { identifier, name: identifier, scopes: ['read'], ...extra })).status, 201);
    }
    owner = await makeClient('owner', [orders, vault]);
    peer = await makeClient('peer', [orders]);
    stranger = await makeClient('stranger', [other]);
  });
  after(() => server.close());

  test("the token's own client sees it active with the standard members", async () => {
    const jwt = await token(owner, orders);
    const { status, body } = await introspect(server, owner, jwt);
    assert.equal(status, 200);
    assert.equal(body['active'], true);
    assert.equal(body['client_id'], owner.client_id);
    assert.equal(body['sub'], owner.client_id);
    assert.equal(body['aud'], orders);
    assert.equal(body['iss'], server.issuer);
    assert.equal(body['scope'], 'read');
    assert.equal(body['token_type'], 'Bearer');
    assert.equal(typeof body['exp'], 'number');
    assert.equal(typeof body['jti'], 'string');
  });

  test('a client allowed for the same resource server may introspect it; others learn nothing', async () => {
    const jwt = await token(owner, orders);
    assert.equal((await introspect(server, peer, jwt)).body['active'], true);
    assert.deepEqual((await introspect(server, stranger, jwt)).body, { active: false });
  });

  test('whole-token encrypted tokens are introspectable too', async () => {
    const jwe = await token(owner, vault);
    assert.equal(jwe.split('.').length, 5);
    const { body } = await introspect(server, owner, jwe);
    assert.equal(body['active'], true);
    assert.equal(body['aud'], vault);
  });

  test('tampered, unknown and garbage tokens are inactive, never unsupported_token_type', async () => {
    const jwt = await token(owner, orders);
    const [h, p, s] = jwt.split('.') as [string, string, string];
    const tamperedSignature = `${h}.${p}.${s.startsWith('A') ? `B${s.slice(1)}` : `A${s.slice(1)}`}`;
    const forgedPayload = `${h}.${Buffer.from(JSON.stringify({ ...JSON.parse(Buffer.from(p, 'base64url').toString()), scope: 'admin' })).toString('base64url')}.${s}`;
    for (const value of [tamperedSignature, forgedPayload, 'not-a-token', 'a.b.c', 'a.b.c.d.e', `${jwt.split('.').slice(0, 2).join('.')}.`]) {
      const { status, body } = await introspect(server, owner, value);
      assert.equal(status, 200, value);
      assert.deepEqual(body, { active: false }, value);
    }
  });

  test('an expired token is inactive', async () => {
    // Mint with Gatehouse's own active key (opened with the test server's MASTER_KEY).
    const { rows } = await server.db.query<{ kid: string; private_jwk_sealed: string }>(
      "SELECT kid, private_jwk_sealed FROM signing_keys WHERE alg = 'ES256' AND status = 'active'",
    );
    const row = rows[0]!;
    const jwk = JSON.parse(createEnvelope(Buffer.from(server.masterKey, 'base64url')).open(row.private_jwk_sealed, `signing_keys:${row.kid}`).toString()) as JWK;
    const now = Math.floor(Date.now() / 1000);
    const expired = await new SignJWT({ client_id: owner.client_id, scope: 'read' })
      .setProtectedHeader({ alg: 'ES256', typ: 'at+jwt', kid: row.kid })
      .setIssuer(server.issuer)
      .setSubject(owner.client_id)
      .setAudience(orders)
      .setJti('expired-token')
      .setIssuedAt(now - 3600)
      .setExpirationTime(now - 1800)
      .sign(await importJWK(jwk, 'ES256'));
    assert.deepEqual((await introspect(server, owner, expired)).body, { active: false });
  });

  test("a deleted client's tokens turn inactive at once", async () => {
    const doomed = await makeClient('doomed', [orders]);
    const jwt = await token(doomed, orders);
    assert.equal((await introspect(server, peer, jwt)).body['active'], true);
    assert.equal((await adminCall(server, 'DELETE', `/clients/${doomed.client_id}`)).status, 204);
    assert.deepEqual((await introspect(server, peer, jwt)).body, { active: false });
  });

  test('introspection needs client authentication', async () => {
    const jwt = await token(owner, orders);
    const { status, body } = await introspect(server, { client_id: owner.client_id, client_secret: 'wrong' }, jwt);
    assert.equal(status, 401);
    assert.equal(body['error'], 'invalid_client');
  });
});
