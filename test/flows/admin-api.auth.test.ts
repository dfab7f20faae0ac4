import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { importJWK, SignJWT } from 'jose';
import { loadSigningJwks } from '../../src/oidc/keys.js';
import {
  adminApi,
  adminToken,
  assertAudited,
  assertInvalid,
  assertNotAudited,
  assertProblem,
  clientCredentials,
  decodeJwt,
  uniqueName,
  type AdminApi,
  type ApiResponse,
  type ClientBody,
  type KeyBody,
  type Page,
  type ResourceServerBody,
} from '../support/admin-api.js';
import { startTestServer, waitFor, type TestServer } from '../support/server.js';

/**
 * Who gets into the admin API (RFC 6750 §3 challenges: what a refusal says), and the signing keys
 * behind the tokens it accepts (SPEC §5: listed without private material; rotation keeps old
 * tokens verifiable).
 */

/** What the admin API shows of a signing key, and what it must never show. */
const KEY_FIELDS = ['alg', 'created_at', 'kid', 'publish_until', 'retired_at', 'status'];
const PRIVATE_MEMBERS = /"(d|p|q|dp|dq|qi|k|private_jwk_sealed|public_jwk)"\s*:/;

function challenge(response: ApiResponse<unknown>): string {
  return response.headers.get('www-authenticate') ?? '';
}

/** `401` with an `invalid_token` challenge and a problem+json body. */
function assertInvalidToken(response: ApiResponse<unknown>): void {
  assertProblem(response, 401, 'unauthorized');
  assert.match(challenge(response), /^Bearer error="invalid_token"(, |$)/);
}

/** `403` with an `insufficient_scope` challenge naming the scope the area needs. */
function assertInsufficientScope(response: ApiResponse<unknown>, scope: string): void {
  assertProblem(response, 403, 'forbidden');
  const value = challenge(response);
  assert.match(value, /^Bearer error="insufficient_scope"/);
  assert.ok(value.includes(`scope="${scope}"`), value);
}

// One server for the file: starting one (database, migrations, keys) costs seconds.
let server: TestServer;

before(async () => {
  server = await startTestServer();
});
after(() => server.close());

describe('admin API: authentication and authorization', () => {
  let api: AdminApi;
  /** A token for the admin resource carrying only admin:keys. */
  let keysOnly: string;
  /** A valid token for another resource server. */
  let foreign: string;

  before(async () => {
    api = adminApi(server, await adminToken(server, 'admin:clients admin:resource-servers admin:keys'));

    // A client of our own that may only manage keys.
    const keysClient = await api.request<ClientBody>('POST', '/clients', {
      json: { client_name: uniqueName('keys-operator'), grant_types: ['client_credentials'], allowed_resources: [`${server.issuer}/admin`], scope: 'admin:keys' },
    });
    assert.equal(keysClient.status, 201, keysClient.text);
    const keysToken = await clientCredentials(server, keysClient.body.client_id, keysClient.body.client_secret!, { scope: 'admin:keys' });
    assert.equal(keysToken.status, 200, JSON.stringify(keysToken.body));
    keysOnly = keysToken.body['access_token'] as string;

    // A resource server and a client for it: a perfectly valid token, for someone else.
    const orders = `https://${uniqueName('orders')}.example.com`;
    const rs = await api.request<ResourceServerBody>('POST', '/resource-servers', { json: { identifier: orders, name: 'Orders', scopes: ['orders:read'] } });
    assert.equal(rs.status, 201, rs.text);
    const ordersClient = await api.request<ClientBody>('POST', '/clients', {
      json: { grant_types: ['client_credentials'], allowed_resources: [orders], scope: 'orders:read' },
    });
    assert.equal(ordersClient.status, 201, ordersClient.text);
    const ordersToken = await clientCredentials(server, ordersClient.body.client_id, ordersClient.body.client_secret!, { scope: 'orders:read' });
    assert.equal(ordersToken.status, 200, JSON.stringify(ordersToken.body));
    foreign = ordersToken.body['access_token'] as string;
  });

  test('no Authorization header: 401 with a bare Bearer challenge and a problem body', async () => {
    for (const path of ['/clients', '/clients/nope', '/resource-servers', '/keys']) {
      const response = await api.request('GET', path, { token: null });
      assertProblem(response, 401, 'unauthorized');
      // RFC 6750 §3.1: a request without credentials gets no error code.
      assert.equal(challenge(response), 'Bearer');
    }
  });

  test('no token is asked for its body: an unauthenticated POST is 401, not 415 or 400', async () => {
    const wrongType = await api.request('POST', '/clients', { token: null, raw: 'hello', headers: { 'Content-Type': 'text/plain' } });
    assertProblem(wrongType, 401, 'unauthorized');
    const broken = await api.request('POST', '/clients', { token: null, raw: '{', headers: { 'Content-Type': 'application/json' } });
    assertProblem(broken, 401, 'unauthorized');
    assert.equal(challenge(broken), 'Bearer');
  });

  test('a garbage token: 401 invalid_token', async () => {
    assertInvalidToken(await api.request('GET', '/clients', { token: 'not-a-jwt' }));
    assertInvalidToken(await api.request('GET', '/clients', { token: 'eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.' }));
    // Not a Bearer credential at all: refused. (RFC 6750 §3.1 would prefer a bare challenge here,
    // as for no credentials; the challenge's error code is deliberately not pinned.)
    const basic = await api.request('GET', '/clients', { token: null, headers: { Authorization: `Basic ${Buffer.from('a:b').toString('base64')}` } });
    assertProblem(basic, 401, 'unauthorized');
    assert.match(challenge(basic), /^Bearer( |$)/);
  });

  test('a token for another resource server: 401 invalid_token', async () => {
    assertInvalidToken(await api.request('GET', '/clients', { token: foreign }));
    assertInvalidToken(await api.request('GET', '/keys', { token: foreign }));
  });

  test('an expired token signed with a real Gatehouse key: 401 invalid_token', async () => {
    const { keys } = await loadSigningJwks(server.db, server.runtime.envelope);
    const jwk = keys.find((key) => (key as { alg?: string }).alg === 'ES256') as { kid: string } | undefined;
    assert.ok(jwk !== undefined);
    const key = await importJWK(jwk, 'ES256');
    const sign = (iat: number, exp: number) =>
      new SignJWT({ client_id: server.admin.clientId, scope: 'admin:clients', jti: randomUUID() })
        .setProtectedHeader({ alg: 'ES256', kid: jwk.kid, typ: 'at+jwt' })
        .setIssuer(server.issuer)
        .setAudience(`${server.issuer}/admin`)
        .setSubject(server.admin.clientId)
        .setIssuedAt(iat)
        .setExpirationTime(exp)
        .sign(key);
    const now = Math.floor(Date.now() / 1000);
    // The same token, unexpired, is accepted: what fails below is the expiry alone.
    const fresh = await api.request('GET', '/clients?limit=1', { token: await sign(now, now + 300) });
    assert.equal(fresh.status, 200, fresh.text);
    const expired = await api.request('GET', '/clients?limit=1', { token: await sign(now - 3600, now - 1800) });
    assertInvalidToken(expired);
  });

  test('a token without the area scope: 403 insufficient_scope naming the scope', async () => {
    assertInsufficientScope(await api.request('GET', '/clients', { token: keysOnly }), 'admin:clients');
    assertInsufficientScope(await api.request('POST', '/clients', { token: keysOnly, json: { client_name: 'x' } }), 'admin:clients');
    assertInsufficientScope(await api.request('GET', '/resource-servers', { token: keysOnly }), 'admin:resource-servers');
    assertInsufficientScope(
      await api.request('DELETE', `/resource-servers/${randomUUID()}`, { token: keysOnly }),
      'admin:resource-servers',
    );
    // The scope it holds works.
    const keys = await api.request('GET', '/keys', { token: keysOnly });
    assert.equal(keys.status, 200, keys.text);
  });

  test('403 comes before 404: an unknown id is not revealed to a token without the scope', async () => {
    assertInsufficientScope(await api.request('GET', '/clients/no-such-client', { token: keysOnly }), 'admin:clients');
    assertInsufficientScope(await api.request('PATCH', '/clients/no-such-client', { token: keysOnly, json: { client_name: 'x' } }), 'admin:clients');
    assertInsufficientScope(await api.request('DELETE', '/clients/no-such-client', { token: keysOnly }), 'admin:clients');
    assertInsufficientScope(await api.request('POST', '/clients/no-such-client/secret', { token: keysOnly }), 'admin:clients');
    // With the scope, the same request is a plain 404.
    assertProblem(await api.request('GET', '/clients/no-such-client'), 404, 'not-found');
  });

  test('a refused token changes nothing and is not audited', async () => {
    const before = await server.db.query<{ n: number }>('SELECT count(*)::int AS n FROM audit_events');
    const refused = await api.request('POST', '/clients', { token: keysOnly, json: { grant_types: ['client_credentials'] } });
    assert.equal(refused.status, 403);
    const unauthenticated = await api.request('POST', '/keys/rotate', { token: null, json: {} });
    assert.equal(unauthenticated.status, 401);
    const after = await server.db.query<{ n: number }>('SELECT count(*)::int AS n FROM audit_events');
    assert.equal(after.rows[0]?.n, before.rows[0]?.n);
  });

  test('unknown paths and methods under /admin/v1 are problems too', async () => {
    assertProblem(await api.request('GET', '/no-such-thing'), 404, 'not-found');
    const put = await api.request('PUT', '/clients', { json: {} });
    assertProblem(put, 405, 'method-not-allowed');
    assert.ok((put.headers.get('allow') ?? '').includes('POST'));
  });
});

describe('admin API: signing keys', () => {
  let api: AdminApi;

  async function listKeys(): Promise<KeyBody[]> {
    const response = await api.request<Page<KeyBody>>('GET', '/keys?limit=200');
    assert.equal(response.status, 200, response.text);
    assert.equal(response.body.next_cursor, null);
    assert.ok(!PRIVATE_MEMBERS.test(response.text), response.text);
    return response.body.items;
  }

  async function publishedKids(): Promise<string[]> {
    const response = await fetch(`${server.url}/jwks`);
    assert.equal(response.status, 200);
    const text = await response.text();
    assert.ok(!/"d"\s*:/.test(text), 'the JWKS holds public keys only');
    return (JSON.parse(text) as { keys: { kid: string }[] }).keys.map((key) => key.kid);
  }

  async function adminTokenKid(): Promise<string> {
    return decodeJwt(await adminToken(server, 'admin:keys')).header['kid'] as string;
  }

  before(async () => {
    api = adminApi(server, await adminToken(server, 'admin:keys'));
  });

  test('before any rotation, one active and one next key per algorithm, without private material', async () => {
    const keys = await listKeys();
    assert.equal(keys.length, 8);
    for (const status of ['active', 'next']) {
      assert.deepEqual(keys.filter((key) => key.status === status).map((key) => key.alg).sort(), ['ES256', 'EdDSA', 'PS256', 'RS256'], status);
    }
    for (const key of keys) {
      assert.deepEqual(Object.keys(key).sort(), KEY_FIELDS);
      assert.equal(typeof key.kid, 'string');
      assert.ok(key.kid.length > 0);
      assert.ok(!Number.isNaN(Date.parse(key.created_at)));
      assert.equal(key.retired_at, null);
      assert.equal(key.publish_until, null);
    }
    assert.deepEqual((await publishedKids()).sort(), keys.map((key) => key.kid).sort());
  });

  test('pages with limit=2 walk every key once', async () => {
    const all = (await listKeys()).map((key) => key.kid);
    const walked: string[] = [];
    let cursor: string | null = null;
    do {
      const query: string = cursor === null ? '' : `&cursor=${encodeURIComponent(cursor)}`;
      const page = await api.request<Page<KeyBody>>('GET', `/keys?limit=2${query}`);
      assert.equal(page.status, 200, page.text);
      walked.push(...page.body.items.map((key) => key.kid));
      cursor = page.body.next_cursor;
      assert.ok(walked.length <= all.length, 'the cursor walk must end');
    } while (cursor !== null);
    assert.deepEqual(walked, all);
    assertInvalid(await api.request('GET', '/keys?limit=0'), '#/limit');
    assertInvalid(await api.request('GET', '/keys?cursor=%25%25'), '#/cursor');
  });

  test('rotating ES256: the next key becomes active and signs new tokens; the old one stays published, retired; a fresh next key is published', async () => {
    const before = await listKeys();
    const oldEs256 = before.find((key) => key.alg === 'ES256' && key.status === 'active')!;
    const nextEs256 = before.find((key) => key.alg === 'ES256' && key.status === 'next')!;
    const others = before.filter((key) => key.alg !== 'ES256');
    const tokenBefore = await adminToken(server, 'admin:keys');
    assert.equal(decodeJwt(tokenBefore).header['kid'], oldEs256.kid);

    const startedAt = Date.now();
    const response = await api.request<{ items: KeyBody[] }>('POST', '/keys/rotate', { json: { algs: ['ES256'] } });
    assert.equal(response.status, 201, response.text);
    assert.ok(!PRIVATE_MEMBERS.test(response.text), response.text);
    assert.equal(response.body.items.length, 1);
    const fresh = response.body.items[0]!;
    assert.deepEqual(Object.keys(fresh).sort(), KEY_FIELDS);
    assert.equal(fresh.alg, 'ES256');
    assert.equal(fresh.status, 'active');
    assert.equal(fresh.kid, nextEs256.kid, 'the key published ahead is the one that now signs');
    await assertAudited(server, response.requestId, 'key.rotated', fresh.kid);

    const after = await listKeys();
    assert.equal(after.length, 9);
    const newNext = after.filter((key) => key.alg === 'ES256' && key.status === 'next');
    assert.equal(newNext.length, 1);
    assert.ok(![oldEs256.kid, nextEs256.kid].includes(newNext[0]!.kid));
    const retired = after.find((key) => key.kid === oldEs256.kid)!;
    assert.equal(retired.status, 'retired');
    assert.ok(retired.retired_at !== null);
    assert.ok(retired.publish_until !== null);
    // Published at least as long as the longest-lived token it can have signed (a day).
    assert.ok(Date.parse(retired.publish_until) >= startedAt + 86_400_000, retired.publish_until);
    assert.deepEqual(after.find((key) => key.kid === fresh.kid), fresh);
    for (const other of others) assert.deepEqual(after.find((key) => key.kid === other.kid), other);
    assert.deepEqual(after.filter((key) => key.status === 'active').map((key) => key.alg).sort(), ['ES256', 'EdDSA', 'PS256', 'RS256']);

    const published = await publishedKids();
    assert.ok(published.includes(oldEs256.kid), 'the old key is still published');
    assert.ok(published.includes(fresh.kid), 'the new key is published');
    assert.ok(published.includes(newNext[0]!.kid), 'the new next key is published');

    // The rotating instance signs with the new key at once; poll briefly in case that changes.
    await waitFor(async () => (await adminTokenKid()) === fresh.kid, 5_000);
    // A token signed before the rotation still opens the admin API.
    const old = await api.request('GET', '/keys?limit=1', { token: tokenBefore });
    assert.equal(old.status, 200, old.text);
  });

  test('invalid rotation requests: 400, nothing rotated or audited', async () => {
    const before = await listKeys();
    for (const [json, pointer] of [
      [{ algs: ['HS256'] }, '#/algs/0'],
      [{ algs: ['ES256', 'none'] }, '#/algs/1'],
      [{ algs: [] }, '#/algs'],
      [{ algs: 'ES256' }, '#/algs'],
      [{ alg: 'ES256' }, '#/alg'],
    ] as const) {
      const response = await api.request('POST', '/keys/rotate', { json });
      assertInvalid(response, pointer);
      await assertNotAudited(server, response.requestId);
    }
    assert.deepEqual(await listKeys(), before);
  });

  test('rotating without a body rotates every algorithm, one audit event per key', async () => {
    const before = (await listKeys()).filter((key) => key.status === 'active');
    const response = await api.request<{ items: KeyBody[] }>('POST', '/keys/rotate');
    assert.equal(response.status, 201, response.text);
    assert.deepEqual(response.body.items.map((key) => key.alg).sort(), ['ES256', 'EdDSA', 'PS256', 'RS256']);
    const { rows } = await server.db.query<{ type: string; target: string; actor: string }>(
      'SELECT type, target, actor FROM audit_events WHERE request_id = $1 ORDER BY id',
      [response.requestId],
    );
    assert.deepEqual(
      rows.map((row) => row.target).sort(),
      response.body.items.map((key) => key.kid).sort(),
    );
    for (const row of rows) {
      assert.equal(row.type, 'key.rotated');
      assert.equal(row.actor, server.admin.clientId);
    }
    const after = await listKeys();
    for (const key of before) assert.equal(after.find((k) => k.kid === key.kid)?.status, 'retired');
    const published = await publishedKids();
    for (const key of [...before, ...response.body.items]) assert.ok(published.includes(key.kid));
  });
});
