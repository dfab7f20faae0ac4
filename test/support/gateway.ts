import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { adminCall, adminToken, clientCredentials, createClient, createResourceServer } from './admin-api.js';
import { freePort, startTestServer, type TestServer } from './server.js';

/** What a gateway test set up: the protected site, tokens, and what its echo upstream saw. */
export interface GatewayUnderTest {
  readonly site: string;
  readonly clientId: string;
  readonly token: (scope: string) => Promise<string>;
  readonly reached: { method: string; url: string; headers: Record<string, string | string[] | undefined> }[];
}

/**
 * SPEC §7's behaviour through a real gateway, the same for every door: with a route for GET
 * /orders (orders:read) and POST /orders (orders:write) on the site's host.
 */
export function gatewayBehaviourTests(env: () => GatewayUnderTest): void {
  test('a token with the route scope reaches the upstream with identity headers; a client-sent X-Gatehouse-* never does', async () => {
    env().reached.length = 0;
    const response = await fetch(`${env().site}/orders/42?x=1`, {
      headers: { authorization: `Bearer ${await env().token('orders:read')}`, 'x-gatehouse-subject': 'admin', 'x-gatehouse-roles': 'gatehouse:admin' },
    });
    assert.equal(response.status, 200);
    assert.equal(await response.text(), 'upstream');
    assert.equal(env().reached.length, 1);
    const { headers } = env().reached[0]!;
    assert.equal(headers['x-gatehouse-subject'], env().clientId);
    assert.equal(headers['x-gatehouse-client-id'], env().clientId);
    assert.equal(headers['x-gatehouse-scope'], 'orders:read');
    assert.equal(headers['x-gatehouse-roles'] ?? '', '', 'the client-sent roles header was overwritten');
  });

  test('no token: 401 with a Bearer challenge, and the upstream is not reached', async () => {
    env().reached.length = 0;
    const response = await fetch(`${env().site}/orders/42`);
    assert.equal(response.status, 401);
    assert.equal(response.headers.get('www-authenticate'), 'Bearer');
    const bad = await fetch(`${env().site}/orders/42`, { headers: { authorization: 'Bearer not-a-token' } });
    assert.equal(bad.status, 401);
    assert.match(bad.headers.get('www-authenticate') ?? '', /error="invalid_token"/);
    assert.equal(env().reached.length, 0);
  });

  test('a POST is checked as a POST: orders:read is not enough, orders:write is', async () => {
    env().reached.length = 0;
    const refused = await fetch(`${env().site}/orders`, { method: 'POST', headers: { authorization: `Bearer ${await env().token('orders:read')}` }, body: 'x' });
    assert.equal(refused.status, 403);
    assert.match(refused.headers.get('www-authenticate') ?? '', /error="insufficient_scope".*scope="orders:write"/);
    assert.equal(env().reached.length, 0);
    const allowed = await fetch(`${env().site}/orders`, { method: 'POST', headers: { authorization: `Bearer ${await env().token('orders:write')}` }, body: 'x' });
    assert.equal(allowed.status, 200);
    assert.equal(env().reached.at(-1)?.method, 'POST');
  });

  test('a path no route covers is denied, and a prefix matches whole segments only', async () => {
    env().reached.length = 0;
    const bearer = { authorization: `Bearer ${await env().token('orders:read')}` };
    assert.equal((await fetch(`${env().site}/billing`, { headers: bearer })).status, 403);
    assert.equal((await fetch(`${env().site}/ordersx`, { headers: bearer })).status, 403);
    assert.equal(env().reached.length, 0);
  });
}

/** Whether `command args` runs here (a gateway the test drives, from Debian). */
export function commandAvailable(command: string, args: readonly string[]): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = spawn(command, [...args], { stdio: 'ignore' });
    probe.on('error', () => resolve(false));
    probe.on('exit', (code) => resolve(code === 0));
  });
}

export interface GatewayScenario extends GatewayUnderTest {
  readonly server: TestServer;
  /** The port the gateway must listen on (the routes are for 127.0.0.1:<port>). */
  readonly port: number;
  /** host:port of the echo upstream. */
  readonly upstream: string;
  /** The resource server the routes name. */
  readonly resource: string;
  close(): Promise<void>;
}

/**
 * A Gatehouse with a resource server, a client and the two routes gatewayBehaviourTests expects,
 * plus an echo upstream that records what reaches it. The gateway itself is the test's to start.
 */
export async function startGatewayScenario(resource: string): Promise<GatewayScenario> {
  const server = await startTestServer();
  const reached: GatewayUnderTest['reached'] = [];
  const upstream = createServer((req, res) => {
    reached.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers });
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end('upstream');
  });
  upstream.listen(0, '127.0.0.1');
  await once(upstream, 'listening');
  const port = await freePort();

  const admin = await adminToken(server, 'admin:clients admin:resource-servers admin:gateway');
  await createResourceServer(server, { identifier: resource, name: 'Orders', scopes: ['orders:read', 'orders:write'] }, admin);
  const shop = await createClient(server, { client_name: 'Shop', allowed_resources: [resource] }, admin);
  for (const body of [
    { host: `127.0.0.1:${port}`, path_prefix: '/orders', methods: ['GET'], resource_server: resource, required_scopes: ['orders:read'] },
    { host: `127.0.0.1:${port}`, path_prefix: '/orders', methods: ['POST'], resource_server: resource, required_scopes: ['orders:write'] },
  ]) {
    const created = await adminCall(server, 'POST', '/gateway-routes', body, admin);
    assert.equal(created.status, 201, JSON.stringify(created.body));
  }
  return {
    server,
    port,
    site: `http://127.0.0.1:${port}`,
    upstream: `127.0.0.1:${(upstream.address() as AddressInfo).port}`,
    resource,
    clientId: shop.client_id,
    reached,
    token: async (scope) => {
      const { status, body } = await clientCredentials(server, shop.client_id, shop.client_secret!, { scope, resource });
      assert.equal(status, 200, JSON.stringify(body));
      return body['access_token'] as string;
    },
    async close() {
      upstream.close();
      await server.close();
    },
  };
}
