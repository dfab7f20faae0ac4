import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
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
 * SPEC §7 auth_request with the real gateway: Debian's nginx (nginx-light) runs the repository's
 * own deploy/gateway/nginx-gatehouse.conf (auth_request to /gateway/auth-request) in front of an
 * echo upstream. A token with the route's scope reaches the upstream with Gatehouse's identity
 * headers; no token is 401 with a challenge; a missing scope 403; a client's own X-Gatehouse-*
 * header never reaches the upstream; a POST is checked as a POST; an unrouted path is denied.
 */

const nginxAvailable = await new Promise<boolean>((resolve) => {
  const probe = spawn('nginx', ['-v'], { stdio: 'ignore' });
  probe.on('error', () => resolve(false));
  probe.on('exit', (code) => resolve(code === 0));
});

const ORDERS = 'https://orders.gateway-nginx.test';

describe('gateway auth_request behind nginx (deploy/gateway/nginx-gatehouse.conf)', { skip: nginxAvailable ? false : 'needs nginx (nginx-light; .ci/run installs it)' }, () => {
  let server: TestServer;
  let upstream: Server;
  let nginx: ChildProcess;
  let nginxLog = '';
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

    dir = await mkdtemp(path.join(tmpdir(), 'gatehouse-gateway-nginx-'));
    const shipped = await readFile(path.join(REPO_ROOT, 'deploy/gateway/nginx-gatehouse.conf'), 'utf8');
    // The shipped server block, on this test's port; a private instance (own pid, logs, temp dirs).
    await writeFile(path.join(dir, 'gatehouse.conf'), shipped.replace('listen 8080;', `listen 127.0.0.1:${port};`));
    await writeFile(
      path.join(dir, 'nginx.conf'),
      [
        'daemon off;',
        'worker_processes 1;',
        `pid ${dir}/nginx.pid;`,
        `error_log ${dir}/error.log info;`,
        'events { worker_connections 64; }',
        'http {',
        `  access_log ${dir}/access.log;`,
        `  client_body_temp_path ${dir}/body; proxy_temp_path ${dir}/proxy; fastcgi_temp_path ${dir}/fastcgi; uwsgi_temp_path ${dir}/uwsgi; scgi_temp_path ${dir}/scgi;`,
        `  upstream gatehouse { server ${new URL(server.url).host}; }`,
        `  upstream app { server 127.0.0.1:${(upstream.address() as AddressInfo).port}; }`,
        `  include ${dir}/gatehouse.conf;`,
        '}',
        '',
      ].join('\n'),
    );
    nginx = spawn('nginx', ['-p', dir, '-c', path.join(dir, 'nginx.conf')], { stdio: ['ignore', 'pipe', 'pipe'] });
    nginx.stdout?.on('data', (chunk: Buffer) => (nginxLog += chunk.toString('utf8')));
    nginx.stderr?.on('data', (chunk: Buffer) => (nginxLog += chunk.toString('utf8')));
    await waitFor(async () => (await fetch(`${site}/orders`).catch(() => undefined)) !== undefined, 30_000, 100).catch(() => {
      throw new Error(`nginx did not start:\n${nginxLog}`);
    });
  });
  after(async () => {
    if (nginx !== undefined && nginx.exitCode === null) {
      nginx.kill('SIGQUIT');
      await once(nginx, 'exit');
    }
    upstream?.close();
    await server?.close();
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  });

  gatewayBehaviourTests(() => ({ site, clientId: secret.client_id, token, reached }));

  test('the door itself refuses a request without the original method and URL (400, never an allow), and resolves dot segments', async () => {
    const bearer = `Bearer ${await token('orders:read')}`;
    const door = `${server.url}/gateway/auth-request`;
    assert.equal((await fetch(door, { headers: { authorization: bearer } })).status, 400);
    for (const url of ['not a url', 'ftp://127.0.0.1/orders', 'http://user:pw@127.0.0.1/orders']) {
      assert.equal((await fetch(door, { headers: { 'x-original-method': 'GET', 'x-original-url': url, authorization: bearer } })).status, 400, url);
    }
    const port = new URL(site).port;
    const climbing = await fetch(door, { headers: { 'x-original-method': 'GET', 'x-original-url': `http://127.0.0.1:${port}/orders/%2e%2e/billing`, authorization: bearer } });
    assert.equal(climbing.status, 403);
  });
});
