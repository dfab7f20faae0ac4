import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  adminApi,
  adminToken,
  assertAudited,
  assertAuditFreeOf,
  assertInvalid,
  assertNotAudited,
  assertProblem,
  clientCredentials,
  uniqueName,
  type AdminApi,
  type ClientBody,
  type Page,
  type ResourceServerBody,
} from '../support/admin-api.js';
import { startTestServer, type TestServer } from '../support/server.js';

/** SPEC §5 clients: RFC 7591 metadata in, secrets shown once, every change audited. */

const BASE64URL_256_BITS = /^[A-Za-z0-9_-]{43,}$/;

/** The client as GET shows it: what create returned, less the one-time secret. */
function withoutSecret(client: ClientBody): Record<string, unknown> {
  return Object.fromEntries(Object.entries(client).filter(([key]) => key !== 'client_secret' && key !== 'client_secret_expires_at'));
}

describe('admin API: clients', () => {
  let server: TestServer;
  let api: AdminApi;
  let orders: string;
  /** Every client secret the API showed us; none may ever appear in an audit event. */
  const secretsSeen = new Set<string>();

  async function createClient(json: Record<string, unknown>): Promise<ClientBody> {
    const response = await api.request<ClientBody>('POST', '/clients', { json });
    assert.equal(response.status, 201, response.text);
    if (response.body.client_secret !== undefined) secretsSeen.add(response.body.client_secret);
    return response.body;
  }

  function serviceClient(extra: Record<string, unknown> = {}): Promise<ClientBody> {
    return createClient({ client_name: uniqueName('svc'), grant_types: ['client_credentials'], allowed_resources: [orders], scope: 'orders:read', ...extra });
  }

  before(async () => {
    server = await startTestServer();
    api = adminApi(server, await adminToken(server, 'admin:clients admin:resource-servers'));
    orders = `https://${uniqueName('orders')}.example.com`;
    const rs = await api.request<ResourceServerBody>('POST', '/resource-servers', {
      json: { identifier: orders, name: 'Orders', scopes: ['orders:read', 'orders:write'] },
    });
    assert.equal(rs.status, 201, rs.text);
  });
  after(() => server.close());

  describe('create and read', () => {
    test('201 with Location, the stored client, and the secret exactly once', async () => {
      const startedAt = Math.floor(Date.now() / 1000);
      const name = uniqueName('web');
      const response = await api.request<ClientBody>('POST', '/clients', {
        json: { client_name: name, redirect_uris: ['https://app.example.com/cb'], allowed_resources: [orders], scope: 'openid orders:read', require_mfa: true },
      });
      assert.equal(response.status, 201, response.text);
      assert.match(response.headers.get('content-type') ?? '', /^application\/json/);
      const client = response.body;
      assert.equal(response.headers.get('location'), `/admin/v1/clients/${encodeURIComponent(client.client_id)}`);
      assert.equal(typeof client.client_id, 'string');
      assert.ok(client.client_id.length >= 16);
      assert.equal(client.client_name, name);
      assert.deepEqual(client.grant_types, ['authorization_code']);
      assert.deepEqual(client.response_types, ['code']);
      assert.deepEqual(client.redirect_uris, ['https://app.example.com/cb']);
      assert.equal(client.token_endpoint_auth_method, 'client_secret_basic');
      assert.equal(client.scope, 'openid orders:read');
      assert.deepEqual(client.allowed_resources, [orders]);
      assert.equal(client.require_mfa, true);
      assert.deepEqual(client.post_logout_redirect_uris, []);
      // RFC 7591 §3.2.1: client_id_issued_at in seconds; a secret comes with client_secret_expires_at (0: never).
      assert.ok(Number.isInteger(client.client_id_issued_at));
      assert.ok(Math.abs(client.client_id_issued_at - startedAt) <= 5, String(client.client_id_issued_at));
      assert.equal(client.client_secret_expires_at, 0);
      // SPEC §2: random, at least 256 bits.
      assert.match(client.client_secret ?? '', BASE64URL_256_BITS);
      secretsSeen.add(client.client_secret!);
      await assertAudited(server, response.requestId, 'client.created', client.client_id);

      const read = await api.request<ClientBody>('GET', `/clients/${encodeURIComponent(client.client_id)}`);
      assert.equal(read.status, 200, read.text);
      assert.deepEqual(read.body, withoutSecret(client));
    });

    test('GET never shows the secret or its hash', async () => {
      const client = await serviceClient();
      const { rows } = await server.db.query<{ client_secret_hash: string }>('SELECT client_secret_hash FROM clients WHERE client_id = $1', [client.client_id]);
      const hash = rows[0]?.client_secret_hash;
      assert.ok(typeof hash === 'string' && hash.length > 0);
      assert.ok(!hash.includes(client.client_secret!), 'the secret is stored only as a hash');

      const one = await api.request<ClientBody>('GET', `/clients/${encodeURIComponent(client.client_id)}`);
      const all = await api.request<Page<ClientBody>>('GET', '/clients?limit=200');
      for (const response of [one, all]) {
        assert.equal(response.status, 200);
        assert.ok(!response.text.includes(client.client_secret!));
        assert.ok(!response.text.includes(hash));
        assert.ok(!/"client_secret(_hash)?"\s*:/.test(response.text), response.text);
      }
      for (const item of all.body.items) assert.deepEqual(Object.keys(item).filter((key) => /secret|hash/.test(key)), []);
    });

    test('public and private_key_jwt clients get no secret', async () => {
      const pub = await createClient({ redirect_uris: ['http://127.0.0.1:8080/cb'], token_endpoint_auth_method: 'none' });
      assert.equal(pub.client_secret, undefined);
      assert.equal(pub.client_secret_expires_at, undefined);
      assert.deepEqual(pub.redirect_uris, ['http://127.0.0.1:8080/cb']);
      const jwk = { kty: 'EC', crv: 'P-256', x: 'f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU', y: 'x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0' };
      const pkj = await createClient({ grant_types: ['client_credentials'], token_endpoint_auth_method: 'private_key_jwt', jwks: { keys: [jwk] } });
      assert.equal(pkj.client_secret, undefined);
      assert.deepEqual(pkj.jwks, { keys: [jwk] });
    });

    test('unknown client: 404 problem', async () => {
      assertProblem(await api.request('GET', '/clients/no-such-client'), 404, 'not-found');
      for (const [method, path] of [
        ['PATCH', '/clients/no-such-client'],
        ['DELETE', '/clients/no-such-client'],
        ['POST', '/clients/no-such-client/secret'],
      ] as const) {
        const response = await api.request(method, path, method === 'PATCH' ? { json: { client_name: 'x' } } : {});
        assertProblem(response, 404, 'not-found');
        await assertNotAudited(server, response.requestId);
      }
    });
  });

  describe('listing', () => {
    test('walks every client with limit=2 via next_cursor, in a stable order without duplicates', async () => {
      // More than ten: positions 9 and 10 sort differently as text than as numbers.
      const prefix = uniqueName('page');
      const created: string[] = [];
      for (let i = 0; i < 11; i++) created.push((await serviceClient({ client_name: `${prefix}-${i}` })).client_id);

      const whole = await api.request<Page<ClientBody>>('GET', '/clients?limit=200');
      assert.equal(whole.status, 200);
      assert.equal(whole.body.next_cursor, null);
      const everyone = whole.body.items.map((c) => c.client_id);
      assert.ok(everyone.length > 2);
      assert.ok(everyone.includes(server.admin.clientId));

      const walked: string[] = [];
      let cursor: string | null = null;
      let pages = 0;
      do {
        const query: string = cursor === null ? '?limit=2' : `?limit=2&cursor=${encodeURIComponent(cursor)}`;
        const page = await api.request<Page<ClientBody>>('GET', `/clients${query}`);
        assert.equal(page.status, 200, page.text);
        assert.deepEqual(Object.keys(page.body).sort(), ['items', 'next_cursor']);
        assert.ok(page.body.items.length <= 2);
        assert.ok(page.body.next_cursor === null || typeof page.body.next_cursor === 'string');
        walked.push(...page.body.items.map((c) => c.client_id));
        cursor = page.body.next_cursor;
        pages++;
        assert.ok(pages < 100, 'the cursor walk must end');
      } while (cursor !== null);
      assert.equal(new Set(walked).size, walked.length, 'no duplicates');
      assert.deepEqual(walked, everyone, 'the same clients in the same order as one big page');
      // Our five, in creation order.
      assert.deepEqual(
        walked.filter((id) => created.includes(id)),
        created,
      );
    });

    test('the default limit is 50', async () => {
      const page = await api.request<Page<ClientBody>>('GET', '/clients');
      assert.equal(page.status, 200);
      assert.ok(page.body.items.length <= 50);
    });

    test('client_name filters by prefix (and pages within it)', async () => {
      const prefix = uniqueName('pfx');
      const mine = [await serviceClient({ client_name: `${prefix}-a` }), await serviceClient({ client_name: `${prefix}-b` }), await serviceClient({ client_name: `${prefix}-c` })];
      await serviceClient({ client_name: `other-${prefix}` });
      const first = await api.request<Page<ClientBody>>('GET', `/clients?client_name=${encodeURIComponent(prefix)}&limit=2`);
      assert.equal(first.status, 200, first.text);
      assert.deepEqual(
        first.body.items.map((c) => c.client_name),
        [`${prefix}-a`, `${prefix}-b`],
      );
      assert.equal(typeof first.body.next_cursor, 'string');
      const second = await api.request<Page<ClientBody>>('GET', `/clients?client_name=${encodeURIComponent(prefix)}&limit=2&cursor=${encodeURIComponent(first.body.next_cursor!)}`);
      assert.deepEqual(
        second.body.items.map((c) => c.client_id),
        [mine[2]!.client_id],
      );
      assert.equal(second.body.next_cursor, null);
      // LIKE wildcards in the prefix are literal.
      const wildcard = await api.request<Page<ClientBody>>('GET', '/clients?client_name=%25');
      assert.deepEqual(wildcard.body.items, []);
    });

    test('limit out of bounds or not a number: 400 at #/limit', async () => {
      for (const limit of ['0', '201', 'abc', '-1', '1.5']) {
        assertInvalid(await api.request('GET', `/clients?limit=${limit}`), '#/limit');
      }
      const max = await api.request<Page<ClientBody>>('GET', '/clients?limit=200');
      assert.equal(max.status, 200);
    });

    test('a cursor the API did not make: 400 at #/cursor', async () => {
      for (const cursor of ['garbage', Buffer.from('{"p":"1 OR 1=1"}').toString('base64url'), Buffer.from('[1]').toString('base64url')]) {
        assertInvalid(await api.request('GET', `/clients?cursor=${encodeURIComponent(cursor)}`), '#/cursor');
      }
    });
  });

  describe('validation', () => {
    async function assertCreateRefused(json: unknown, ...pointers: string[]) {
      const response = await api.request('POST', '/clients', { json });
      assertInvalid(response, ...pointers);
      await assertNotAudited(server, response.requestId);
    }

    test('an unknown field is refused and named', async () => {
      const response = await api.request('POST', '/clients', { json: { client_name: 'x', redirect_uris: ['https://a.example/cb'], client_secret: 'mine' } });
      assert.deepEqual(assertInvalid(response), [{ pointer: '#/client_secret', detail: 'unknown field' }]);
      await assertNotAudited(server, response.requestId);
    });

    test('redirect URIs: https, or http on loopback only', async () => {
      await assertCreateRefused({ redirect_uris: ['http://app.example.com/cb'] }, '#/redirect_uris/0');
      await assertCreateRefused({ redirect_uris: ['https://ok.example.com/cb', 'http://evil.example.com/cb'] }, '#/redirect_uris/1');
      await assertCreateRefused({ redirect_uris: ['https://app.example.com/cb#frag'] }, '#/redirect_uris/0');
      await assertCreateRefused({ redirect_uris: ['/relative'] }, '#/redirect_uris/0');
      for (const uri of ['http://127.0.0.1/cb', 'http://127.0.0.1:43210/cb', 'http://localhost:8080/cb']) {
        const client = await createClient({ redirect_uris: [uri] });
        assert.deepEqual(client.redirect_uris, [uri]);
      }
    });

    test('authorization_code without redirect_uris is refused', async () => {
      await assertCreateRefused({ grant_types: ['authorization_code'] }, '#/redirect_uris');
      await assertCreateRefused({}, '#/redirect_uris');
    });

    test('allowed_resources must name registered resource servers', async () => {
      await assertCreateRefused({ grant_types: ['client_credentials'], allowed_resources: ['https://nowhere.example.com'] }, '#/allowed_resources/0');
      await assertCreateRefused({ grant_types: ['client_credentials'], allowed_resources: [orders, 'https://nowhere.example.com'] }, '#/allowed_resources/1');
      await assertCreateRefused({ grant_types: ['client_credentials'], allowed_resources: ['not a uri'] }, '#/allowed_resources/0');
    });

    test('scope must be defined by the allowed resource servers', async () => {
      await assertCreateRefused({ grant_types: ['client_credentials'], allowed_resources: [orders], scope: 'orders:read orders:delete' }, '#/scope');
      await assertCreateRefused({ grant_types: ['client_credentials'], scope: 'orders:read' }, '#/scope');
      // Another server's scope, even a real one, is not this client's to ask for.
      await assertCreateRefused({ grant_types: ['client_credentials'], allowed_resources: [orders], scope: 'admin:clients' }, '#/scope');
      await assertCreateRefused({ grant_types: ['client_credentials'], allowed_resources: [orders], scope: 'orders:read orders:read' }, '#/scope');
    });

    test('a public client cannot use client_credentials', async () => {
      await assertCreateRefused({ grant_types: ['client_credentials'], token_endpoint_auth_method: 'none' }, '#/token_endpoint_auth_method');
    });

    test('private_key_jwt needs jwks or jwks_uri', async () => {
      await assertCreateRefused({ grant_types: ['client_credentials'], token_endpoint_auth_method: 'private_key_jwt' }, '#/jwks');
      const privateJwk = { kty: 'EC', crv: 'P-256', x: 'f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU', y: 'x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0', d: 'jpsQnnGQmL-YBIffH1136cspYG6-0iY7X1fCE9-E9LI' };
      await assertCreateRefused({ grant_types: ['client_credentials'], token_endpoint_auth_method: 'private_key_jwt', jwks: { keys: [privateJwk] } }, '#/jwks/keys');
    });

    test('field types and enums', async () => {
      await assertCreateRefused({ grant_types: ['implicit'], redirect_uris: ['https://a.example/cb'] }, '#/grant_types/0');
      await assertCreateRefused({ grant_types: [] }, '#/grant_types');
      await assertCreateRefused({ grant_types: ['client_credentials'], token_endpoint_auth_method: 'client_secret_jwt' }, '#/token_endpoint_auth_method');
      await assertCreateRefused({ grant_types: ['client_credentials'], require_mfa: 'yes' }, '#/require_mfa');
      await assertCreateRefused({ grant_types: ['client_credentials'], client_name: '' }, '#/client_name');
      await assertCreateRefused({ grant_types: ['client_credentials', 'refresh_token'] }, '#/grant_types');
    });

    test('a body that is not a JSON object is refused', async () => {
      assertInvalid(await api.request('POST', '/clients', { json: [] }), '#');
      assertInvalid(await api.request('POST', '/clients', { json: 'client' }), '#');
    });

    test('wrong content type: 415', async () => {
      const response = await api.request('POST', '/clients', { raw: JSON.stringify({ grant_types: ['client_credentials'] }), headers: { 'Content-Type': 'text/plain' } });
      assertProblem(response, 415, 'unsupported-media-type');
      await assertNotAudited(server, response.requestId);
    });

    test('malformed JSON: 400', async () => {
      const response = await api.request('POST', '/clients', { raw: '{"grant_types": [', headers: { 'Content-Type': 'application/json' } });
      assertProblem(response, 400, 'malformed-body');
      await assertNotAudited(server, response.requestId);
    });

    test('a body over 64 KB: 413', async () => {
      const json = { client_name: 'big', grant_types: ['client_credentials'], padding: 'x'.repeat(70 * 1024) };
      const response = await api.request('POST', '/clients', { json });
      assertProblem(response, 413, 'payload-too-large');
      await assertNotAudited(server, response.requestId);
      // The connection and the API are still fine afterwards.
      assert.equal((await api.request('GET', '/clients?limit=1')).status, 200);
    });
  });

  describe('update', () => {
    test('PATCH returns the updated client, persists it, and is audited', async () => {
      const client = await createClient({ client_name: uniqueName('web'), redirect_uris: ['https://a.example.com/cb'] });
      const name = uniqueName('renamed');
      const response = await api.request<ClientBody>('PATCH', `/clients/${encodeURIComponent(client.client_id)}`, {
        json: { client_name: name, redirect_uris: ['https://b.example.com/cb', 'http://127.0.0.1:9000/cb'], require_mfa: true },
      });
      assert.equal(response.status, 200, response.text);
      assert.equal(response.body.client_name, name);
      assert.deepEqual(response.body.redirect_uris, ['https://b.example.com/cb', 'http://127.0.0.1:9000/cb']);
      assert.equal(response.body.require_mfa, true);
      assert.equal(response.body.client_id, client.client_id);
      assert.equal(response.body.client_id_issued_at, client.client_id_issued_at);
      assert.equal(response.body.client_secret, undefined, 'an update does not show the secret again');
      await assertAudited(server, response.requestId, 'client.updated', client.client_id);

      const read = await api.request<ClientBody>('GET', `/clients/${encodeURIComponent(client.client_id)}`);
      assert.deepEqual(read.body, response.body);
    });

    test('PATCH validates like create and changes nothing when refused', async () => {
      const client = await createClient({ client_name: uniqueName('web'), redirect_uris: ['https://a.example.com/cb'] });
      const path = `/clients/${encodeURIComponent(client.client_id)}`;
      for (const [json, pointer] of [
        [{ redirect_uris: ['http://a.example.com/cb'] }, '#/redirect_uris/0'],
        [{ redirect_uris: [] }, '#/redirect_uris'],
        [{ allowed_resources: ['https://nowhere.example.com'] }, '#/allowed_resources/0'],
        [{ scope: 'orders:read' }, '#/scope'],
        [{ token_endpoint_auth_method: 'private_key_jwt' }, '#/jwks'],
      ] as const) {
        const response = await api.request('PATCH', path, { json });
        assertInvalid(response, pointer);
        await assertNotAudited(server, response.requestId);
      }
      const unknown = await api.request('PATCH', path, { json: { client_name: 'x', client_id: 'mine' } });
      assert.deepEqual(assertInvalid(unknown), [{ pointer: '#/client_id', detail: 'unknown field' }]);
      const read = await api.request<ClientBody>('GET', path);
      assert.deepEqual(read.body, withoutSecret(client));
    });

    test('PATCH with null removes an optional field', async () => {
      const client = await serviceClient();
      const response = await api.request<ClientBody>('PATCH', `/clients/${encodeURIComponent(client.client_id)}`, { json: { scope: null } });
      assert.equal(response.status, 200, response.text);
      assert.equal(response.body.scope, undefined);
    });
  });

  describe('secrets and deletion at the token endpoint', () => {
    test('rotation shows the new secret once; the old one stops working at once', async () => {
      const client = await serviceClient();
      const oldSecret = client.client_secret!;
      assert.equal((await clientCredentials(server, client.client_id, oldSecret, { scope: 'orders:read' })).status, 200);

      const response = await api.request<{ client_id: string; client_secret: string; client_secret_expires_at: number }>(
        'POST',
        `/clients/${encodeURIComponent(client.client_id)}/secret`,
      );
      assert.equal(response.status, 200, response.text);
      assert.equal(response.body.client_id, client.client_id);
      assert.equal(response.body.client_secret_expires_at, 0);
      const newSecret = response.body.client_secret;
      assert.match(newSecret, BASE64URL_256_BITS);
      assert.notEqual(newSecret, oldSecret);
      secretsSeen.add(newSecret);
      await assertAudited(server, response.requestId, 'client.secret_rotated', client.client_id);

      const old = await clientCredentials(server, client.client_id, oldSecret, { scope: 'orders:read' });
      assert.equal(old.status, 401, JSON.stringify(old.body));
      assert.equal(old.body['error'], 'invalid_client');
      const fresh = await clientCredentials(server, client.client_id, newSecret, { scope: 'orders:read' });
      assert.equal(fresh.status, 200, JSON.stringify(fresh.body));

      const read = await api.request('GET', `/clients/${encodeURIComponent(client.client_id)}`);
      assert.ok(!read.text.includes(newSecret));
    });

    test('a client without a secret has none to rotate: 409', async () => {
      const pub = await createClient({ redirect_uris: ['http://127.0.0.1/cb'], token_endpoint_auth_method: 'none' });
      const response = await api.request('POST', `/clients/${encodeURIComponent(pub.client_id)}/secret`);
      assertProblem(response, 409, 'conflict');
      await assertNotAudited(server, response.requestId);
    });

    test('DELETE: 204, then 404, invalid_client at the token endpoint, and its grants are gone', async () => {
      const client = await serviceClient();
      const secret = client.client_secret!;
      assert.equal((await clientCredentials(server, client.client_id, secret, { scope: 'orders:read' })).status, 200);
      // A grant the provider stored for this client (as an authorization would).
      const provider = server.running.providers.current();
      const grant = new provider.Grant({ clientId: client.client_id, accountId: 'someone' });
      grant.addResourceScope(orders, 'orders:read');
      await grant.save();
      const rowsFor = async () =>
        (await server.db.query<{ n: number }>('SELECT count(*)::int AS n FROM oidc_models WHERE client_id = $1', [client.client_id])).rows[0]?.n;
      assert.equal(await rowsFor(), 1);

      const response = await api.request('DELETE', `/clients/${encodeURIComponent(client.client_id)}`);
      assert.equal(response.status, 204, response.text);
      assert.equal(response.text, '');
      const audit = await assertAudited(server, response.requestId, 'client.deleted', client.client_id);
      assert.equal(audit.details['revoked_artifacts'], 1);

      assertProblem(await api.request('GET', `/clients/${encodeURIComponent(client.client_id)}`), 404, 'not-found');
      const token = await clientCredentials(server, client.client_id, secret, { scope: 'orders:read' });
      assert.equal(token.status, 401, JSON.stringify(token.body));
      assert.equal(token.body['error'], 'invalid_client');
      assert.equal(await rowsFor(), 0);
      assert.equal(await provider.Grant.find(grant.jti), undefined);
      // Deleting twice is a 404, not a second event.
      const again = await api.request('DELETE', `/clients/${encodeURIComponent(client.client_id)}`);
      assertProblem(again, 404, 'not-found');
      await assertNotAudited(server, again.requestId);
    });
  });

  test('no audit event holds a client secret', async () => {
    assert.ok(secretsSeen.size >= 3);
    await assertAuditFreeOf(server, secretsSeen);
  });
});
