import assert from 'node:assert/strict';
import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { ADMIN_SCOPES } from '../../src/management/admin-scopes.js';
import {
  adminApi,
  adminToken,
  assertAudited,
  assertAuditFreeOf,
  assertInvalid,
  assertNotAudited,
  assertProblem,
  uniqueName,
  type AdminApi,
  type ClientBody,
  type Page,
  type ResourceServerBody,
} from '../support/admin-api.js';
import { startTestServer, type TestServer } from '../support/server.js';

/** SPEC §5 resource servers: what a token's audience can be, and how its inner layer is encrypted. */

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

function ecKeyPair(): { publicJwk: Record<string, unknown>; privateJwk: Record<string, unknown> } {
  const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return { publicJwk: { ...publicKey.export({ format: 'jwk' }) }, privateJwk: { ...privateKey.export({ format: 'jwk' }) } };
}

describe('admin API: resource servers', () => {
  let server: TestServer;
  let api: AdminApi;
  const secretsSeen = new Set<string>();

  function identifier(): string {
    return `https://${uniqueName('api')}.example.com`;
  }

  async function createServer(json: Record<string, unknown> = {}): Promise<ResourceServerBody> {
    const response = await api.request<ResourceServerBody>('POST', '/resource-servers', { json: { identifier: identifier(), name: 'API', ...json } });
    assert.equal(response.status, 201, response.text);
    return response.body;
  }

  async function assertCreateRefused(json: Record<string, unknown>, ...pointers: string[]) {
    const response = await api.request('POST', '/resource-servers', { json: { identifier: identifier(), name: 'API', ...json } });
    assertInvalid(response, ...pointers);
    await assertNotAudited(server, response.requestId);
  }

  before(async () => {
    server = await startTestServer();
    api = adminApi(server, await adminToken(server, 'admin:resource-servers admin:clients'));
  });
  after(() => server.close());

  describe('create and read', () => {
    test('201 with its id, Location and the defaults; audited', async () => {
      const id = identifier();
      const response = await api.request<ResourceServerBody>('POST', '/resource-servers', { json: { identifier: id, name: 'Orders', scopes: ['orders:read', 'orders:write'] } });
      assert.equal(response.status, 201, response.text);
      const rs = response.body;
      assert.match(rs.id, UUID);
      assert.equal(response.headers.get('location'), `/admin/v1/resource-servers/${rs.id}`);
      assert.equal(rs.identifier, id);
      assert.equal(rs.name, 'Orders');
      assert.deepEqual(rs.scopes, ['orders:read', 'orders:write']);
      assert.equal(rs.access_token_ttl, 900);
      assert.equal(rs.signing_alg, 'ES256');
      assert.equal(rs.inner_encryption_jwk, null);
      assert.equal(rs.encrypt_whole_token, false);
      assert.equal(rs.built_in, false);
      assert.ok(!Number.isNaN(Date.parse(rs.created_at)));
      await assertAudited(server, response.requestId, 'resource_server.created', rs.id);

      const read = await api.request<ResourceServerBody>('GET', `/resource-servers/${rs.id}`);
      assert.equal(read.status, 200);
      assert.deepEqual(read.body, rs);
    });

    test('the identifier must be an absolute URI without a fragment', async () => {
      for (const bad of ['orders', '/orders', 'https://orders.example.com/#x', '', 42]) {
        await assertCreateRefused({ identifier: bad }, '#/identifier');
      }
      const missing = await api.request('POST', '/resource-servers', { json: { name: 'No identifier' } });
      assertInvalid(missing, '#/identifier');
      const urn = await createServer({ identifier: `urn:example:${randomUUID()}` });
      assert.match(urn.identifier, /^urn:example:/);
    });

    test('a duplicate identifier: 409, and nothing is audited', async () => {
      const rs = await createServer();
      const response = await api.request('POST', '/resource-servers', { json: { identifier: rs.identifier, name: 'Again' } });
      const problem = assertProblem(response, 409, 'conflict');
      assert.deepEqual(problem.errors?.map((error) => error.pointer), ['#/identifier']);
      await assertNotAudited(server, response.requestId);
      const { rows } = await server.db.query('SELECT 1 FROM resource_servers WHERE identifier = $1', [rs.identifier]);
      assert.equal(rows.length, 1);
    });

    test('scopes: unique scope tokens, never the OpenID ones', async () => {
      await assertCreateRefused({ scopes: ['a', 'a'] }, '#/scopes');
      await assertCreateRefused({ scopes: ['a b'] }, '#/scopes/0');
      await assertCreateRefused({ scopes: ['ok', 'quo"te'] }, '#/scopes/1');
      await assertCreateRefused({ scopes: [''] }, '#/scopes/0');
      await assertCreateRefused({ scopes: ['openid'] }, '#/scopes');
      await assertCreateRefused({ scopes: ['offline_access'] }, '#/scopes');
      await assertCreateRefused({ scopes: 'a b' }, '#/scopes');
    });

    test('access_token_ttl: whole seconds from 60 to 86400', async () => {
      for (const ttl of [59, 86_401, 0, -1, 1.5, '900', null]) await assertCreateRefused({ access_token_ttl: ttl }, '#/access_token_ttl');
      assert.equal((await createServer({ access_token_ttl: 60 })).access_token_ttl, 60);
      assert.equal((await createServer({ access_token_ttl: 86_400 })).access_token_ttl, 86_400);
    });

    test('signing_alg: ES256, EdDSA, PS256 or RS256', async () => {
      for (const alg of ['HS256', 'none', 'es256', 'ES384', '']) await assertCreateRefused({ signing_alg: alg }, '#/signing_alg');
      for (const alg of ['ES256', 'EdDSA', 'PS256', 'RS256']) assert.equal((await createServer({ signing_alg: alg })).signing_alg, alg);
    });

    test('inner_encryption_jwk: a public key is kept; a private key or garbage is refused', async () => {
      const { publicJwk, privateJwk } = ecKeyPair();
      await assertCreateRefused({ inner_encryption_jwk: privateJwk }, '#/inner_encryption_jwk');
      await assertCreateRefused({ inner_encryption_jwk: { kty: 'EC', crv: 'P-256', x: 'AAAA', y: 'BBBB' } }, '#/inner_encryption_jwk');
      await assertCreateRefused({ inner_encryption_jwk: { foo: 'bar' } }, '#/inner_encryption_jwk');
      await assertCreateRefused({ inner_encryption_jwk: 'a key' }, '#/inner_encryption_jwk');
      await assertCreateRefused({ inner_encryption_jwk: { ...publicJwk, use: 'sig' } }, '#/inner_encryption_jwk');
      await assertCreateRefused({ inner_encryption_jwk: { kty: 'oct', k: 'c2VjcmV0' } }, '#/inner_encryption_jwk');

      const response = await api.request<ResourceServerBody>('POST', '/resource-servers', { json: { identifier: identifier(), name: 'Inner', inner_encryption_jwk: publicJwk } });
      assert.equal(response.status, 201, response.text);
      assert.deepEqual(response.body.inner_encryption_jwk, publicJwk);
      assert.ok(!response.text.includes(String(privateJwk['d'])));
      const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey.export({ format: 'jwk' });
      assert.deepEqual((await createServer({ inner_encryption_jwk: rsa })).inner_encryption_jwk, { ...rsa });
    });

    test('encrypt_whole_token needs a key to encrypt to', async () => {
      await assertCreateRefused({ encrypt_whole_token: true }, '#/encrypt_whole_token');
      await assertCreateRefused({ encrypt_whole_token: true, inner_encryption_jwk: null }, '#/encrypt_whole_token');
      await assertCreateRefused({ encrypt_whole_token: 'yes' }, '#/encrypt_whole_token');
      const rs = await createServer({ encrypt_whole_token: true, inner_encryption_jwk: ecKeyPair().publicJwk });
      assert.equal(rs.encrypt_whole_token, true);
    });

    test('an unknown field is refused and named', async () => {
      const response = await api.request('POST', '/resource-servers', { json: { identifier: identifier(), name: 'X', built_in: true } });
      assert.deepEqual(assertInvalid(response), [{ pointer: '#/built_in', detail: 'unknown field' }]);
      await assertNotAudited(server, response.requestId);
    });

    test('not a uuid, or no such id: 404', async () => {
      for (const id of ['not-a-uuid', "1' OR '1'='1", randomUUID()]) {
        const path = `/resource-servers/${encodeURIComponent(id)}`;
        assertProblem(await api.request('GET', path), 404, 'not-found');
        const patch = await api.request('PATCH', path, { json: { name: 'x' } });
        assertProblem(patch, 404, 'not-found');
        const del = await api.request('DELETE', path);
        assertProblem(del, 404, 'not-found');
        await assertNotAudited(server, patch.requestId);
        await assertNotAudited(server, del.requestId);
      }
    });
  });

  describe('listing', () => {
    test('pages with limit=2 walk every server once, in creation order, the built-in one included', async () => {
      // More than ten, so positions 9 and 10 are compared as numbers, not as text.
      for (let i = 0; i < 11; i++) await createServer({ name: `page ${i}` });
      const whole = await api.request<Page<ResourceServerBody>>('GET', '/resource-servers?limit=200');
      assert.equal(whole.status, 200);
      assert.equal(whole.body.next_cursor, null);
      assert.ok(whole.body.items.length > 12);

      const walked: ResourceServerBody[] = [];
      let cursor: string | null = null;
      do {
        const query: string = cursor === null ? '' : `&cursor=${encodeURIComponent(cursor)}`;
        const page = await api.request<Page<ResourceServerBody>>('GET', `/resource-servers?limit=2${query}`);
        assert.equal(page.status, 200, page.text);
        assert.ok(page.body.items.length <= 2);
        walked.push(...page.body.items);
        cursor = page.body.next_cursor;
        assert.ok(walked.length <= whole.body.items.length, 'the cursor walk must end');
      } while (cursor !== null);
      assert.deepEqual(
        walked.map((rs) => rs.id),
        whole.body.items.map((rs) => rs.id),
      );
      assert.equal(new Set(walked.map((rs) => rs.id)).size, walked.length);

      const builtIn = walked.filter((rs) => rs.built_in);
      assert.equal(builtIn.length, 1);
      assert.equal(builtIn[0]!.identifier, `${server.issuer}/admin`);
      assert.deepEqual([...builtIn[0]!.scopes].sort(), [...ADMIN_SCOPES].sort());
    });

    test('limit and cursor are validated', async () => {
      for (const limit of ['0', '201', 'abc']) assertInvalid(await api.request('GET', `/resource-servers?limit=${limit}`), '#/limit');
      assertInvalid(await api.request('GET', '/resource-servers?cursor=nope'), '#/cursor');
    });
  });

  describe('update', () => {
    test('PATCH returns the updated server, persists it, and is audited', async () => {
      const rs = await createServer({ scopes: ['a'] });
      const { publicJwk } = ecKeyPair();
      const response = await api.request<ResourceServerBody>('PATCH', `/resource-servers/${rs.id}`, {
        json: { name: 'Renamed', scopes: ['a', 'b'], access_token_ttl: 300, signing_alg: 'PS256', inner_encryption_jwk: publicJwk, encrypt_whole_token: true },
      });
      assert.equal(response.status, 200, response.text);
      assert.deepEqual(
        { ...response.body, updated_at: rs.updated_at },
        { ...rs, name: 'Renamed', scopes: ['a', 'b'], access_token_ttl: 300, signing_alg: 'PS256', inner_encryption_jwk: publicJwk, encrypt_whole_token: true },
      );
      await assertAudited(server, response.requestId, 'resource_server.updated', rs.id);
      const read = await api.request<ResourceServerBody>('GET', `/resource-servers/${rs.id}`);
      assert.deepEqual(read.body, response.body);
    });

    test('PATCH validates its fields; the identifier cannot change', async () => {
      const rs = await createServer();
      const path = `/resource-servers/${rs.id}`;
      for (const [json, pointer] of [
        [{ identifier: 'https://elsewhere.example.com' }, '#/identifier'],
        [{ access_token_ttl: 10 }, '#/access_token_ttl'],
        [{ signing_alg: 'HS256' }, '#/signing_alg'],
        [{ scopes: ['openid'] }, '#/scopes'],
        [{ inner_encryption_jwk: ecKeyPair().privateJwk }, '#/inner_encryption_jwk'],
        [{ encrypt_whole_token: true }, '#/encrypt_whole_token'],
      ] as const) {
        const response = await api.request('PATCH', path, { json });
        assertInvalid(response, pointer);
        await assertNotAudited(server, response.requestId);
      }
      const read = await api.request<ResourceServerBody>('GET', path);
      assert.deepEqual(read.body, rs);
    });

    test('removing the key of a whole-token encrypting server is refused', async () => {
      const rs = await createServer({ encrypt_whole_token: true, inner_encryption_jwk: ecKeyPair().publicJwk });
      const response = await api.request('PATCH', `/resource-servers/${rs.id}`, { json: { inner_encryption_jwk: null } });
      assertInvalid(response, '#/encrypt_whole_token');
      await assertNotAudited(server, response.requestId);
      const both = await api.request<ResourceServerBody>('PATCH', `/resource-servers/${rs.id}`, { json: { inner_encryption_jwk: null, encrypt_whole_token: false } });
      assert.equal(both.status, 200, both.text);
      assert.equal(both.body.inner_encryption_jwk, null);
    });
  });

  describe('the built-in admin resource server', () => {
    async function builtIn(): Promise<ResourceServerBody> {
      const page = await api.request<Page<ResourceServerBody>>('GET', '/resource-servers?limit=200');
      const found = page.body.items.find((rs) => rs.built_in);
      assert.ok(found !== undefined);
      return found;
    }

    test('cannot be changed or deleted: 409, nothing audited', async () => {
      const rs = await builtIn();
      assert.equal(rs.identifier, `${server.issuer}/admin`);
      const patch = await api.request('PATCH', `/resource-servers/${rs.id}`, { json: { access_token_ttl: 86_400 } });
      assertProblem(patch, 409, 'conflict');
      const del = await api.request('DELETE', `/resource-servers/${rs.id}`);
      assertProblem(del, 409, 'conflict');
      await assertNotAudited(server, patch.requestId);
      await assertNotAudited(server, del.requestId);
      assert.deepEqual(await builtIn(), rs);
      // The admin API still works with it.
      assert.equal((await api.request('GET', '/resource-servers?limit=1')).status, 200);
    });
  });

  describe('delete', () => {
    test('a server a client still names: 409 listing that client; once the client is gone, 204', async () => {
      const rs = await createServer({ scopes: ['x:read'] });
      const created = await api.request<ClientBody>('POST', '/clients', {
        json: { grant_types: ['client_credentials'], allowed_resources: [rs.identifier], scope: 'x:read' },
      });
      assert.equal(created.status, 201, created.text);
      secretsSeen.add(created.body.client_secret!);

      const refused = await api.request('DELETE', `/resource-servers/${rs.id}`);
      const problem = assertProblem(refused, 409, 'conflict');
      assert.deepEqual(problem['client_ids'], [created.body.client_id]);
      await assertNotAudited(server, refused.requestId);
      assert.equal((await api.request('GET', `/resource-servers/${rs.id}`)).status, 200);

      assert.equal((await api.request('DELETE', `/clients/${encodeURIComponent(created.body.client_id)}`)).status, 204);
      const deleted = await api.request('DELETE', `/resource-servers/${rs.id}`);
      assert.equal(deleted.status, 204, deleted.text);
      assert.equal(deleted.text, '');
      await assertAudited(server, deleted.requestId, 'resource_server.deleted', rs.id);
      assertProblem(await api.request('GET', `/resource-servers/${rs.id}`), 404, 'not-found');
    });

    test('an unreferenced server: 204, then 404, and its identifier is free again', async () => {
      const rs = await createServer();
      const deleted = await api.request('DELETE', `/resource-servers/${rs.id}`);
      assert.equal(deleted.status, 204, deleted.text);
      await assertAudited(server, deleted.requestId, 'resource_server.deleted', rs.id);
      assertProblem(await api.request('GET', `/resource-servers/${rs.id}`), 404, 'not-found');
      const again = await api.request('DELETE', `/resource-servers/${rs.id}`);
      assertProblem(again, 404, 'not-found');
      await assertNotAudited(server, again.requestId);
      const reused = await createServer({ identifier: rs.identifier });
      assert.notEqual(reused.id, rs.id);
    });
  });

  test('no audit event holds a client secret', async () => {
    await assertAuditFreeOf(server, secretsSeen);
  });
});
