import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { ADMIN_SCOPES } from '../../src/management/admin-scopes.js';
import {
  adminApi,
  adminToken,
  assertAudited,
  assertNotAudited,
  assertProblem,
  auditRowsFor,
  clientCredentials,
  createClient,
  createResourceServer,
  uniqueName,
  type AdminApi,
  type ClientBody,
} from '../support/admin-api.js';
import { startTestServer, type TestServer } from '../support/server.js';

/**
 * SPEC §5: the admin API's own resource server is privileged. Creating, changing, rotating the
 * secret of, or deleting a client that may use it needs every scope that client may get; a token
 * with `admin:clients` alone is refused `403`. The attacks the review ran with such a token:
 * mint a client with every admin scope, PATCH its own client's `scope` to null (which used to mean
 * "all of the resource server's scopes"), rotate the bootstrap client's secret, delete it.
 */

const ORDERS = 'https://orders.privilege.example';
const ALL = ADMIN_SCOPES.join(' ');

describe('admin API: admin:clients is not root', () => {
  let server: TestServer;
  let admin: string;
  /** The full admin token (the bootstrap client, every admin scope). */
  let full: AdminApi;
  /** A client that may get admin:clients and nothing else, and a token from it. */
  let narrowClient: ClientBody;
  let narrow: AdminApi;

  const adminResource = () => `${server.issuer}/admin`;

  async function tokenFor(client: { client_id: string; client_secret?: string | undefined }, scope?: string) {
    return clientCredentials(server, client.client_id, client.client_secret!, { resource: adminResource(), ...(scope === undefined ? {} : { scope }) });
  }

  async function adminClient(scope: string | undefined, token: string): Promise<ClientBody> {
    return createClient(server, { client_name: uniqueName('admin-client'), allowed_resources: [adminResource()], ...(scope === undefined ? {} : { scope }) }, token);
  }

  async function clientCount(): Promise<number> {
    const { rows } = await server.db.query<{ n: number }>('SELECT count(*)::int AS n FROM clients');
    return rows[0]!.n;
  }

  before(async () => {
    server = await startTestServer();
    admin = await adminToken(server, ALL);
    full = adminApi(server, admin);
    await createResourceServer(server, { identifier: ORDERS, name: 'Orders', scopes: ['orders:read', 'orders:write'] }, admin);
    narrowClient = await adminClient('admin:clients', admin);
    const issued = await tokenFor(narrowClient, 'admin:clients');
    assert.equal(issued.status, 200, JSON.stringify(issued.body));
    narrow = adminApi(server, issued.body['access_token'] as string);
  });
  after(() => server?.close());

  describe('a token with admin:clients alone', () => {
    test('cannot create a client with admin scopes it does not hold: 403, nothing stored, nothing audited', async () => {
      const before = await clientCount();
      for (const scope of [ALL, 'admin:clients admin:users', 'admin:keys']) {
        const response = await narrow.request('POST', '/clients', {
          json: { client_name: uniqueName('escalate'), grant_types: ['client_credentials'], allowed_resources: [adminResource()], scope },
        });
        const problem = assertProblem(response, 403, 'forbidden');
        assert.match(problem.detail, /admin:(users|keys)/, 'the problem names the missing scopes');
        await assertNotAudited(server, response.requestId);
      }
      assert.equal(await clientCount(), before);
    });

    test('cannot widen its own client: PATCH scope to null grants no admin scope, PATCH to more scopes is 403', async () => {
      const self = await adminClient('admin:clients', admin);
      const own = adminApi(server, (await tokenFor(self, 'admin:clients')).body['access_token'] as string);

      const wider = await own.request('PATCH', `/clients/${self.client_id}`, { json: { scope: 'admin:clients admin:users' } });
      assertProblem(wider, 403, 'forbidden');
      await assertNotAudited(server, wider.requestId);

      // null no longer means "every scope of the resource server": for the admin API it means none,
      // so the change grants nothing the caller lacks and a fresh token gets no admin scope at all.
      const nulled = await own.request<ClientBody>('PATCH', `/clients/${self.client_id}`, { json: { scope: null } });
      if (nulled.status !== 403) assert.equal(nulled.status, 200, nulled.text);
      for (const scope of ['admin:users', 'admin:clients', ALL]) {
        const fresh = await tokenFor(self, scope);
        assert.equal(fresh.status, 400, `a token for ${scope} after scope:null: ${JSON.stringify(fresh.body)}`);
        assert.equal(fresh.body['error'], 'invalid_scope');
      }
      const bare = await tokenFor(self);
      if (bare.status === 200) {
        const payload = JSON.parse(Buffer.from((bare.body['access_token'] as string).split('.')[1]!, 'base64url').toString()) as Record<string, unknown>;
        assert.ok(payload['scope'] === undefined || payload['scope'] === '', `no admin scope without a registered scope, got ${String(payload['scope'])}`);
        const refused = await adminApi(server, bare.body['access_token'] as string).request('GET', '/users');
        assertProblem(refused, 403, 'forbidden');
      }
    });

    test('cannot rotate the secret of, change or delete the bootstrap admin client: 403, and its secret still works', async () => {
      const bootstrap = encodeURIComponent(server.admin.clientId);
      assertProblem(await narrow.request('POST', `/clients/${bootstrap}/secret`), 403, 'forbidden');
      assertProblem(await narrow.request('DELETE', `/clients/${bootstrap}`), 403, 'forbidden');
      assertProblem(await narrow.request('PATCH', `/clients/${bootstrap}`, { json: { client_name: 'pwned' } }), 403, 'forbidden');
      assertProblem(await narrow.request('PATCH', `/clients/${bootstrap}`, { json: { allowed_resources: [ORDERS], scope: null } }), 403, 'forbidden');
      const still = await clientCredentials(server, server.admin.clientId, server.admin.clientSecret, { resource: adminResource(), scope: ALL });
      assert.equal(still.status, 200, 'the bootstrap secret was not rotated');
      assert.equal((await full.request<ClientBody>('GET', `/clients/${bootstrap}`)).body.client_name, 'Gatehouse bootstrap admin');
    });

    test('cannot turn an ordinary client into an admin client with scopes it lacks', async () => {
      const plain = await createClient(server, { client_name: uniqueName('plain'), allowed_resources: [ORDERS], scope: 'orders:read' }, admin);
      const response = await narrow.request('PATCH', `/clients/${plain.client_id}`, {
        json: { allowed_resources: [ORDERS, adminResource()], scope: 'orders:read admin:audit' },
      });
      assertProblem(response, 403, 'forbidden');
    });

    test('still manages ordinary clients, and admin clients within its own scopes', async () => {
      const created = await narrow.request<ClientBody>('POST', '/clients', {
        json: { client_name: uniqueName('worker'), grant_types: ['client_credentials'], allowed_resources: [ORDERS] },
      });
      assert.equal(created.status, 201, created.text);
      assert.equal((await narrow.request('POST', `/clients/${created.body.client_id}/secret`)).status, 200);
      assert.equal((await narrow.request('PATCH', `/clients/${created.body.client_id}`, { json: { scope: 'orders:read' } })).status, 200);
      assert.equal((await narrow.request('DELETE', `/clients/${created.body.client_id}`)).status, 204);

      const peer = await narrow.request<ClientBody>('POST', '/clients', {
        json: { client_name: uniqueName('peer'), grant_types: ['client_credentials'], allowed_resources: [adminResource()], scope: 'admin:clients' },
      });
      assert.equal(peer.status, 201, peer.text);
      assert.equal((await narrow.request('DELETE', `/clients/${peer.body.client_id}`)).status, 204);
    });
  });

  describe('a token with every scope the client may get', () => {
    test('creates, changes, rotates and deletes an admin client; each audit event says what was granted, never a secret', async () => {
      const created = await full.request<ClientBody>('POST', '/clients', {
        json: { client_name: uniqueName('ops'), grant_types: ['client_credentials'], allowed_resources: [adminResource(), ORDERS], scope: 'admin:users admin:audit orders:read' },
      });
      assert.equal(created.status, 201, created.text);
      const id = created.body.client_id;
      const createdEvent = await assertAudited(server, created.requestId, 'client.created', id);
      assert.deepEqual(createdEvent.details['granted'], {
        resources: [adminResource(), ORDERS].sort(),
        scopes: ['admin:audit', 'admin:users', 'orders:read'],
      });

      const changed = await full.request<ClientBody>('PATCH', `/clients/${id}`, { json: { scope: 'admin:users admin:keys orders:read' } });
      assert.equal(changed.status, 200, changed.text);
      const changedEvent = await assertAudited(server, changed.requestId, 'client.updated', id);
      assert.deepEqual(changedEvent.details['before'], { resources: [adminResource(), ORDERS].sort(), scopes: ['admin:audit', 'admin:users', 'orders:read'] });
      assert.deepEqual(changedEvent.details['after'], { resources: [adminResource(), ORDERS].sort(), scopes: ['admin:keys', 'admin:users', 'orders:read'] });
      assert.deepEqual(changedEvent.details['granted'], { resources: [], scopes: ['admin:keys'] });
      assert.deepEqual(changedEvent.details['removed'], { resources: [], scopes: ['admin:audit'] });

      const rotated = await full.request<{ client_secret: string }>('POST', `/clients/${id}/secret`);
      assert.equal(rotated.status, 200, rotated.text);
      const rotatedEvent = await assertAudited(server, rotated.requestId, 'client.secret_rotated', id);
      assert.deepEqual(rotatedEvent.details['granted'], { resources: [adminResource(), ORDERS].sort(), scopes: ['admin:keys', 'admin:users', 'orders:read'] });

      const deleted = await full.request('DELETE', `/clients/${id}`);
      assert.equal(deleted.status, 204, deleted.text);
      const deletedEvent = await assertAudited(server, deleted.requestId, 'client.deleted', id);
      assert.deepEqual(deletedEvent.details['revoked'], { resources: [adminResource(), ORDERS].sort(), scopes: ['admin:keys', 'admin:users', 'orders:read'] });

      for (const requestId of [created.requestId, changed.requestId, rotated.requestId, deleted.requestId]) {
        const text = JSON.stringify(await auditRowsFor(server, requestId));
        for (const secret of [created.body.client_secret!, rotated.body.client_secret]) assert.ok(!text.includes(secret), 'no secret in the audit trail');
        assert.ok(!/hmac-sha256/.test(text), 'no secret hash in the audit trail');
      }
    });

    test('a token holding only some of a client’s admin scopes is refused even for a harmless change', async () => {
      const strong = await adminClient('admin:clients admin:users admin:keys', admin);
      const partial = adminApi(server, await adminToken(server, 'admin:clients admin:users'));
      assertProblem(await partial.request('PATCH', `/clients/${strong.client_id}`, { json: { client_name: 'renamed' } }), 403, 'forbidden');
      const holder = adminApi(server, await adminToken(server, 'admin:clients admin:users admin:keys'));
      assert.equal((await holder.request('PATCH', `/clients/${strong.client_id}`, { json: { client_name: 'renamed' } })).status, 200);
    });

    test('a client for the admin API without a scope gets no admin scope (null never widens)', async () => {
      const unscoped = await adminClient(undefined, admin);
      for (const scope of ['admin:clients', 'admin:users']) {
        const issued = await tokenFor(unscoped, scope);
        assert.equal(issued.status, 400, JSON.stringify(issued.body));
        assert.equal(issued.body['error'], 'invalid_scope');
      }
      // An ordinary resource server keeps SPEC §2's rule: its own scopes, and only its own.
      const worker = await createClient(server, { client_name: uniqueName('worker'), allowed_resources: [ORDERS] }, admin);
      const orders = await clientCredentials(server, worker.client_id, worker.client_secret!, { resource: ORDERS, scope: 'orders:read orders:write' });
      assert.equal(orders.status, 200, JSON.stringify(orders.body));
    });
  });
});

/**
 * SPEC §11: console roles are as strong as the admin scopes they stand for. A token with
 * `admin:users` alone cannot make anyone (itself included) `gatehouse:admin`, nor take over a
 * person who holds console roles it lacks (password, second factor, disabling, deleting); a token
 * with `admin:identity-providers` alone cannot map an upstream claim to `gatehouse:admin`.
 */
describe('admin API: console roles need the scopes they stand for', () => {
  let server: TestServer;
  let full: AdminApi;
  let usersOnly: AdminApi;
  let providersOnly: AdminApi;
  const PASSWORD = 'correct horse battery staple';

  before(async () => {
    server = await startTestServer();
    full = adminApi(server, await adminToken(server, ALL));
    usersOnly = adminApi(server, await adminToken(server, 'admin:users'));
    providersOnly = adminApi(server, await adminToken(server, 'admin:identity-providers'));
  });
  after(() => server?.close());

  test('admin:users alone cannot create a gatehouse:admin or gatehouse:keys person: 403, nothing stored, nothing audited', async () => {
    for (const roles of [['gatehouse:admin'], ['gatehouse:keys'], ['gatehouse:users', 'gatehouse:clients']]) {
      const username = uniqueName('climber');
      const refused = await usersOnly.request('POST', '/users', { json: { username, password: PASSWORD, roles } });
      assertProblem(refused, 403, 'forbidden');
      assert.match(refused.text, /admin:/);
      await assertNotAudited(server, refused.requestId);
      const { rows } = await server.db.query('SELECT 1 FROM users WHERE username = $1', [username]);
      assert.equal(rows.length, 0);
    }
    // Its own area's role, and roles that open nothing, it may grant.
    const peer = await usersOnly.request('POST', '/users', { json: { username: uniqueName('peer'), password: PASSWORD, roles: ['gatehouse:users', 'orders-reader'] } });
    assert.equal(peer.status, 201, peer.text);
  });

  test('admin:users alone cannot promote a person, nor take over one whose roles open more: password, second factor, disable, delete all 403', async () => {
    const plain = await full.request<{ id: string }>('POST', '/users', { json: { username: uniqueName('plain'), password: PASSWORD } });
    assert.equal(plain.status, 201, plain.text);
    const promote = await usersOnly.request('PATCH', `/users/${plain.body.id}`, { json: { roles: ['gatehouse:admin'] } });
    assertProblem(promote, 403, 'forbidden');
    assert.deepEqual((await full.request<{ roles: string[] }>('GET', `/users/${plain.body.id}`)).body.roles, []);

    const keeper = await full.request<{ id: string }>('POST', '/users', { json: { username: uniqueName('keeper'), password: PASSWORD, roles: ['gatehouse:keys'] } });
    assert.equal(keeper.status, 201, keeper.text);
    const id = keeper.body.id;
    const attempts = await Promise.all([
      usersOnly.request('PATCH', `/users/${id}`, { json: { password: 'an attacker chose this one' } }),
      usersOnly.request('PATCH', `/users/${id}`, { json: { disabled: true } }),
      usersOnly.request('PATCH', `/users/${id}`, { json: { roles: [] } }),
      usersOnly.request('DELETE', `/users/${id}/mfa`),
      usersOnly.request('DELETE', `/users/${id}`),
    ]);
    for (const attempt of attempts) {
      assertProblem(attempt, 403, 'forbidden');
      await assertNotAudited(server, attempt.requestId);
    }
    const after = await full.request<{ roles: string[]; disabled: boolean }>('GET', `/users/${id}`);
    assert.equal(after.status, 200);
    assert.deepEqual(after.body.roles, ['gatehouse:keys']);
    assert.equal(after.body.disabled, false);
    // With the scopes the roles stand for, the same change goes through.
    const allowed = adminApi(server, await adminToken(server, 'admin:users admin:keys'));
    assert.equal((await allowed.request('PATCH', `/users/${id}`, { json: { disabled: true } })).status, 200);
  });

  test('admin:identity-providers alone cannot map upstream claims to console roles it lacks', async () => {
    const mapping = [{ claim: 'groups', value: 'ops', role: 'gatehouse:admin' }];
    const issuer = `https://${uniqueName('corp')}.example.com`;
    const refused = await providersOnly.request('POST', '/identity-providers', { json: { name: 'Corp', issuer, client_id: 'gatehouse', role_mappings: mapping } });
    assertProblem(refused, 403, 'forbidden');
    await assertNotAudited(server, refused.requestId);

    const harmless = await providersOnly.request<{ id: string }>('POST', '/identity-providers', {
      json: { name: 'Corp', issuer, client_id: 'gatehouse', role_mappings: [{ claim: 'groups', value: 'sso', role: 'gatehouse:identity-providers' }] },
    });
    assert.equal(harmless.status, 201, harmless.text);
    const widen = await providersOnly.request('PATCH', `/identity-providers/${harmless.body.id}`, { json: { role_mappings: mapping } });
    assertProblem(widen, 403, 'forbidden');
    const byFull = await full.request('PATCH', `/identity-providers/${harmless.body.id}`, { json: { role_mappings: mapping } });
    assert.equal(byFull.status, 200, byFull.text);
    // Now the provider hands out gatehouse:admin: changing it at all (its issuer, say) needs every admin scope.
    const repoint = await providersOnly.request('PATCH', `/identity-providers/${harmless.body.id}`, { json: { issuer: `https://${uniqueName('evil')}.example.com` } });
    assertProblem(repoint, 403, 'forbidden');
  });
});
