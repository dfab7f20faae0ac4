import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import {
  allPages,
  adminApi,
  adminToken,
  assertAudited,
  assertInvalid,
  assertNotAudited,
  assertProblem,
  auditRowsFor,
  uniqueName,
  type AdminApi,
  type ResourceServerBody,
} from '../support/admin-api.js';
import { startTestServer, type TestServer } from '../support/server.js';

/** SPEC §7 gateway routes: `/admin/v1/gateway-routes`, scope `admin:gateway`. */

interface GatewayRouteBody {
  id: string;
  host: string;
  path_prefix: string;
  methods: string[] | null;
  resource_server: string | null;
  required_scopes: string[];
  required_roles: string[];
  require_mfa: boolean;
  anonymous: boolean;
  browser_sign_in: boolean;
  upstream_token: string;
  upstream_resource_server: string | null;
  identity_headers: string;
  created_at: string;
  updated_at: string;
}

/** Polls with a deadline shorter than the route table's TTL (3 s): only the change feed can make it. */
async function until<T>(what: string, probe: () => Promise<T | undefined>, deadlineMs = 1_500): Promise<T> {
  const deadline = Date.now() + deadlineMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((resolve) => setImmediate(resolve));
  }
}

describe('admin API: gateway routes', () => {
  let server: TestServer;
  let api: AdminApi;
  let orders: ResourceServerBody;

  function host(): string {
    return `${uniqueName('gw')}.example.com`;
  }

  async function createRoute(json: Record<string, unknown> = {}): Promise<GatewayRouteBody> {
    const response = await api.request<GatewayRouteBody>('POST', '/gateway-routes', {
      json: { host: host(), path_prefix: '/orders', resource_server: orders.identifier, ...json },
    });
    assert.equal(response.status, 201, response.text);
    return response.body;
  }

  async function assertCreateRefused(json: Record<string, unknown>, ...pointers: string[]) {
    const response = await api.request('POST', '/gateway-routes', { json: { host: host(), path_prefix: '/orders', resource_server: orders.identifier, ...json } });
    assertInvalid(response, ...pointers);
    await assertNotAudited(server, response.requestId);
  }

  before(async () => {
    server = await startTestServer();
    api = adminApi(server, await adminToken(server, 'admin:gateway admin:resource-servers'));
    const created = await api.request<ResourceServerBody>('POST', '/resource-servers', {
      json: { identifier: `https://${uniqueName('orders')}.example.com`, name: 'Orders', scopes: ['orders:read', 'orders:write'] },
    });
    assert.equal(created.status, 201, created.text);
    orders = created.body;
  });
  after(() => server.close());

  test('create: 201 with Location, defaults and normalised host and methods; audited; read back', async () => {
    const name = host();
    const response = await api.request<GatewayRouteBody>('POST', '/gateway-routes', {
      json: { host: name.toUpperCase(), path_prefix: '/orders', methods: ['POST', 'GET', 'GET'], resource_server: orders.identifier, required_scopes: ['orders:read'] },
    });
    assert.equal(response.status, 201, response.text);
    const route = response.body;
    assert.equal(response.headers.get('location'), `/admin/v1/gateway-routes/${route.id}`);
    assert.equal(route.host, name);
    assert.deepEqual(route.methods, ['GET', 'POST']);
    assert.deepEqual(route.required_scopes, ['orders:read']);
    assert.deepEqual(route.required_roles, []);
    assert.equal(route.require_mfa, false);
    assert.equal(route.anonymous, false);
    assert.equal(route.browser_sign_in, false);
    assert.equal(route.upstream_token, 'pass');
    assert.equal(route.upstream_resource_server, null);
    assert.equal(route.identity_headers, 'public');
    const row = await assertAudited(server, response.requestId, 'gateway_route.created', route.id);
    assert.equal(row.details['host'], name);
    assert.equal(row.details['path_prefix'], '/orders');

    const read = await api.request<GatewayRouteBody>('GET', `/gateway-routes/${route.id}`);
    assert.equal(read.status, 200);
    assert.deepEqual(read.body, route);
    assert.ok(read.headers.get('etag'));
  });

  test('the same host, prefix and method set twice: 409 (methods compared as a set)', async () => {
    const first = await createRoute({ methods: ['GET', 'PUT'] });
    const again = await api.request('POST', '/gateway-routes', {
      json: { host: first.host, path_prefix: '/orders', methods: ['PUT', 'GET'], resource_server: orders.identifier },
    });
    assertProblem(again, 409, 'conflict');
    await assertNotAudited(server, again.requestId);
    // Another method set on the same prefix is another route.
    await createRoute({ host: first.host, methods: null });
  });

  test('anonymous routes need no resource server and may ask for nothing', async () => {
    const route = await createRoute({ resource_server: null, anonymous: true, identity_headers: 'none' });
    assert.equal(route.resource_server, null);
    assert.equal(route.anonymous, true);
  });

  describe('validation: 400 with field pointers, nothing stored or audited', () => {
    test('shape of each field', async () => {
      await assertCreateRefused({ host: 'not a host' }, '#/host');
      await assertCreateRefused({ host: 'api.*.example.com' }, '#/host');
      await assertCreateRefused({ host: 'api.example.com:99999' }, '#/host');
      await assertCreateRefused({ path_prefix: 'orders' }, '#/path_prefix');
      await assertCreateRefused({ path_prefix: '/orders?x=1' }, '#/path_prefix');
      await assertCreateRefused({ methods: ['get'] }, '#/methods/0');
      await assertCreateRefused({ methods: [] }, '#/methods');
      await assertCreateRefused({ upstream_token: 'forward' }, '#/upstream_token');
      await assertCreateRefused({ identity_headers: 'all' }, '#/identity_headers');
      await assertCreateRefused({ extra: true }, '#/extra');
    });

    test('a wildcard host and a port are accepted', async () => {
      const wild = await createRoute({ host: `*.${host()}:8443` });
      assert.match(wild.host, /^\*\..+:8443$/);
    });

    test('resource servers must be registered and scopes theirs', async () => {
      await assertCreateRefused({ resource_server: 'https://unknown.example.com' }, '#/resource_server');
      await assertCreateRefused({ required_scopes: ['orders:read', 'billing:read'] }, '#/required_scopes/1');
      await assertCreateRefused({ upstream_token: 'exchange', upstream_resource_server: 'https://unknown.example.com' }, '#/upstream_resource_server');
      await assertCreateRefused({ resource_server: null }, '#/resource_server');
    });

    test('an anonymous route asks for no scopes, roles, MFA or exchange', async () => {
      await assertCreateRefused({ anonymous: true, required_scopes: ['orders:read'] }, '#/required_scopes');
      await assertCreateRefused({ anonymous: true, required_roles: ['staff'] }, '#/required_roles');
      await assertCreateRefused({ anonymous: true, require_mfa: true }, '#/require_mfa');
      await assertCreateRefused({ anonymous: true, upstream_token: 'exchange' }, '#/upstream_token');
    });

    test('a PATCH is checked as a whole', async () => {
      const route = await createRoute({ required_scopes: ['orders:read'] });
      const response = await api.request('PATCH', `/gateway-routes/${route.id}`, { json: { anonymous: true } });
      assertInvalid(response, '#/required_scopes');
      await assertNotAudited(server, response.requestId);
      assert.deepEqual((await api.request<GatewayRouteBody>('GET', `/gateway-routes/${route.id}`)).body, route);
    });
  });

  test('update: changes applied, audited with what changed; a stale If-Match is 412 and changes nothing', async () => {
    const route = await createRoute();
    const read = await api.request<GatewayRouteBody>('GET', `/gateway-routes/${route.id}`);
    const etag = read.headers.get('etag')!;
    const updated = await api.request<GatewayRouteBody>('PATCH', `/gateway-routes/${route.id}`, {
      json: { required_scopes: ['orders:write'], require_mfa: true },
      headers: { 'If-Match': etag },
    });
    assert.equal(updated.status, 200, updated.text);
    assert.deepEqual(updated.body.required_scopes, ['orders:write']);
    assert.equal(updated.body.require_mfa, true);
    const row = await assertAudited(server, updated.requestId, 'gateway_route.updated', route.id);
    assert.deepEqual(row.details['changes'], { required_scopes: { from: [], to: ['orders:write'] }, require_mfa: { from: false, to: true } });

    const stale = await api.request('PATCH', `/gateway-routes/${route.id}`, { json: { require_mfa: false }, headers: { 'If-Match': etag } });
    assertProblem(stale, 412, 'precondition-failed');
    await assertNotAudited(server, stale.requestId);
    assert.equal((await api.request<GatewayRouteBody>('GET', `/gateway-routes/${route.id}`)).body.require_mfa, true);
  });

  test('update onto another route’s host, prefix and methods: 409', async () => {
    const first = await createRoute();
    const second = await createRoute({ host: first.host, path_prefix: '/billing' });
    const response = await api.request('PATCH', `/gateway-routes/${second.id}`, { json: { path_prefix: '/orders' } });
    assertProblem(response, 409, 'conflict');
    await assertNotAudited(server, response.requestId);
  });

  test('list pages oldest first; delete is audited and then 404', async () => {
    const a = await createRoute();
    const b = await createRoute();
    const ids = (await allPages<GatewayRouteBody>(api, '/gateway-routes', 2)).map((item) => item.id);
    assert.ok(ids.indexOf(a.id) >= 0 && ids.indexOf(a.id) < ids.indexOf(b.id));
    assert.equal(new Set(ids).size, ids.length);

    const deleted = await api.request('DELETE', `/gateway-routes/${a.id}`);
    assert.equal(deleted.status, 204);
    const row = await assertAudited(server, deleted.requestId, 'gateway_route.deleted', a.id);
    assert.equal(row.details['host'], a.host);
    assertProblem(await api.request('GET', `/gateway-routes/${a.id}`), 404, 'not-found');
    assertProblem(await api.request('DELETE', `/gateway-routes/${a.id}`), 404, 'not-found');
    assertProblem(await api.request('GET', `/gateway-routes/${randomUUID()}`), 404, 'not-found');
  });

  test('403 without admin:gateway, 401 without a token; nothing written', async () => {
    const other = await adminToken(server, 'admin:resource-servers');
    const denied = await api.request('POST', '/gateway-routes', { token: other, json: { host: host(), path_prefix: '/', resource_server: orders.identifier } });
    assert.equal(denied.status, 403, denied.text);
    assert.match(denied.headers.get('www-authenticate') ?? '', /insufficient_scope/);
    assert.equal((await api.request('GET', '/gateway-routes', { token: other })).status, 403);
    assert.equal((await api.request('GET', '/gateway-routes', { token: null })).status, 401);
    assert.deepEqual(await auditRowsFor(server, denied.requestId), []);
  });

  test('the route table follows changes: at once on this instance, by the change feed on another', async () => {
    const two = await startTestServer({ database: server.database, env: { MASTER_KEY: server.masterKey, ISSUER: server.issuer } });
    try {
      const name = host();
      const request = { host: name, path: '/orders/1', method: 'GET' };
      const matchedOn = async (instance: TestServer) => (await instance.running.gatewayRoutes.match(request))?.id;
      assert.equal(await matchedOn(server), undefined);
      const first = await createRoute({ host: name });
      assert.equal(await matchedOn(server), first.id);
      // Until instance two's change feed is live it caches nothing and reads every time.
      await until('instance two to see the first route', async () => ((await matchedOn(two)) === first.id ? true : undefined), 10_000);

      // The table is cached now (deadlines below the TTL): only the change feed can refresh it.
      assert.equal((await api.request('DELETE', `/gateway-routes/${first.id}`)).status, 204);
      assert.equal(await matchedOn(server), undefined);
      await until('instance two to drop the route', async () => ((await matchedOn(two)) === undefined ? true : undefined));
      const second = await createRoute({ host: name });
      await until('instance two to see the new route', async () => ((await matchedOn(two)) === second.id ? true : undefined));
    } finally {
      await two.close();
    }
  });
});
