import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { adminCall, adminToken, clientCredentials, createClient, createResourceServer } from '../support/admin-api.js';
import { gatewayBehaviourTests } from '../support/gateway.js';
import { REPO_ROOT } from '../support/process.js';
import { freePort, startTestServer, waitFor, type TestServer } from '../support/server.js';

/**
 * SPEC §7 forward auth with the real gateway: Debian's Caddy runs the repository's own
 * deploy/Caddyfile for gateways (forward_auth to /gateway/forward-auth) in front of an echo
 * upstream. A token with the route's scope reaches the upstream with Gatehouse's identity
 * headers; no token is 401 with a challenge; a missing scope 403; a client's own X-Gatehouse-*
 * header never reaches the upstream; a POST is checked as a POST; an unrouted path is denied.
 */

const caddyAvailable = await new Promise<boolean>((resolve) => {
  const probe = spawn('caddy', ['version'], { stdio: 'ignore' });
  probe.on('error', () => resolve(false));
  probe.on('exit', (code) => resolve(code === 0));
});

const ORDERS = 'https://orders.gateway-caddy.test';

describe('gateway forward auth behind Caddy (deploy/gateway/Caddyfile)', { skip: caddyAvailable ? false : 'needs caddy (.ci/run installs it)' }, () => {
  let server: TestServer;
  let upstream: Server;
  let caddy: ChildProcess;
  let caddyLog = '';
  let dir: string;
  let site: string;
  let secret: { client_id: string; client_secret: string };
  /** What the upstream saw of each request that reached it. */
  const reached: { method: string; url: string; headers: Record<string, string | string[] | undefined> }[] = [];

  async function token(scope: string): Promise<string> {
    const { status, body } = await clientCredentials(server, secret.client_id, secret.client_secret, { scope, resource: ORDERS });
    assert.equal(status, 200, JSON.stringify(body));
    return body['access_token'] as string;
  }

  before(async () => {
    server = await startTestServer();
    upstream = createServer((req, res) => {
      reached.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers });
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end('upstream');
    });
    upstream.listen(0, '127.0.0.1');
    await once(upstream, 'listening');
    const port = await freePort();
    site = `http://127.0.0.1:${port}`;

    const admin = await adminToken(server, 'admin:clients admin:resource-servers admin:gateway');
    await createResourceServer(server, { identifier: ORDERS, name: 'Orders', scopes: ['orders:read', 'orders:write'] }, admin);
    const shop = await createClient(server, { client_name: 'Shop', allowed_resources: [ORDERS] }, admin);
    secret = { client_id: shop.client_id, client_secret: shop.client_secret! };
    for (const body of [
      { host: `127.0.0.1:${port}`, path_prefix: '/orders', methods: ['GET'], resource_server: ORDERS, required_scopes: ['orders:read'] },
      { host: `127.0.0.1:${port}`, path_prefix: '/orders', methods: ['POST'], resource_server: ORDERS, required_scopes: ['orders:write'] },
    ]) {
      const created = await adminCall(server, 'POST', '/gateway-routes', body, admin);
      assert.equal(created.status, 201, JSON.stringify(created.body));
    }

    dir = await mkdtemp(path.join(tmpdir(), 'gatehouse-gateway-caddy-'));
    const config = path.join(dir, 'Caddyfile');
    await writeFile(config, `{\n\tadmin off\n\tauto_https off\n\tstorage file_system ${dir}/storage\n}\nimport ${path.join(REPO_ROOT, 'deploy/gateway/Caddyfile')}\n`);
    caddy = spawn('caddy', ['run', '--config', config, '--adapter', 'caddyfile'], {
      env: {
        PATH: process.env['PATH'] ?? '',
        HOME: dir,
        SITE: `http://127.0.0.1:${port}`,
        GATEHOUSE: new URL(server.url).host,
        UPSTREAM: `127.0.0.1:${(upstream.address() as AddressInfo).port}`,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    caddy.stdout?.on('data', (chunk: Buffer) => (caddyLog += chunk.toString('utf8')));
    caddy.stderr?.on('data', (chunk: Buffer) => (caddyLog += chunk.toString('utf8')));
    await waitFor(async () => (await fetch(`${site}/orders`).catch(() => undefined)) !== undefined, 30_000, 100).catch(() => {
      throw new Error(`caddy did not start:\n${caddyLog}`);
    });
  });
  after(async () => {
    if (caddy !== undefined && caddy.exitCode === null) {
      caddy.kill('SIGTERM');
      await once(caddy, 'exit');
    }
    upstream?.close();
    await server?.close();
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  });

  gatewayBehaviourTests(() => ({ site, clientId: secret.client_id, token, reached }));

  test('the door itself refuses a request without the forwarded headers (400, never an allow)', async () => {
    const response = await fetch(`${server.url}/gateway/forward-auth`, { headers: { authorization: `Bearer ${await token('orders:read')}` } });
    assert.equal(response.status, 400);
    const repeated = await fetch(`${server.url}/gateway/forward-auth`, {
      headers: [
        ['x-forwarded-method', 'GET'],
        ['x-forwarded-host', 'a.test'],
        ['x-forwarded-host', 'b.test'],
        ['x-forwarded-uri', '/orders'],
      ],
    });
    assert.equal(repeated.status, 400);
    // Dot segments are resolved as the upstream will: climbing out of a covered prefix is judged where it lands.
    const port = new URL(site).port;
    const climbing = await fetch(`${server.url}/gateway/forward-auth`, {
      headers: {
        'x-forwarded-method': 'GET',
        'x-forwarded-host': `127.0.0.1:${port}`,
        'x-forwarded-uri': '/orders/%2e%2e/billing',
        authorization: `Bearer ${await token('orders:read')}`,
      },
    });
    assert.equal(climbing.status, 403);
    const within = await fetch(`${server.url}/gateway/forward-auth`, {
      headers: { 'x-forwarded-method': 'GET', 'x-forwarded-host': `127.0.0.1:${port}`, 'x-forwarded-uri': '/billing/../orders/1', authorization: `Bearer ${await token('orders:read')}` },
    });
    assert.equal(within.status, 200);
  });
});
