import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { commandAvailable, gatewayBehaviourTests, startGatewayScenario, type GatewayScenario } from '../support/gateway.js';
import { gatewayBrowserTests } from '../support/gateway-browser.js';
import { REPO_ROOT } from '../support/process.js';
import { waitFor } from '../support/server.js';

/**
 * SPEC §7 forward auth with the real gateway: Debian's Caddy runs the repository's own
 * deploy/Caddyfile for gateways (forward_auth to /gateway/forward-auth) in front of an echo
 * upstream. A token with the route's scope reaches the upstream with Gatehouse's identity
 * headers; no token is 401 with a challenge; a missing scope 403; a client's own X-Gatehouse-*
 * header never reaches the upstream; a POST is checked as a POST; an unrouted path is denied.
 */

const caddyAvailable = await commandAvailable('caddy', ['version']);

const ORDERS = 'https://orders.gateway-caddy.test';

describe('gateway forward auth behind Caddy (deploy/gateway/Caddyfile)', { skip: caddyAvailable ? false : 'needs caddy (.ci/run installs it)' }, () => {
  let scenario: GatewayScenario;
  let caddy: ChildProcess;
  let caddyLog = '';
  let dir: string;

  before(async () => {
    scenario = await startGatewayScenario(ORDERS);
    const { server, port } = scenario;
    dir = await mkdtemp(path.join(tmpdir(), 'gatehouse-gateway-caddy-'));
    const config = path.join(dir, 'Caddyfile');
    await writeFile(config, `{\n\tadmin off\n\tauto_https off\n\tstorage file_system ${dir}/storage\n}\nimport ${path.join(REPO_ROOT, 'deploy/gateway/Caddyfile')}\n`);
    caddy = spawn('caddy', ['run', '--config', config, '--adapter', 'caddyfile'], {
      env: {
        PATH: process.env['PATH'] ?? '',
        HOME: dir,
        SITE: `http://127.0.0.1:${port}`,
        GATEHOUSE: new URL(server.url).host,
        UPSTREAM: scenario.upstream,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    caddy.stdout?.on('data', (chunk: Buffer) => (caddyLog += chunk.toString('utf8')));
    caddy.stderr?.on('data', (chunk: Buffer) => (caddyLog += chunk.toString('utf8')));
    await waitFor(async () => (await fetch(`${scenario.site}/orders`).catch(() => undefined)) !== undefined, 30_000, 100).catch(() => {
      throw new Error(`caddy did not start:\n${caddyLog}`);
    });
  });
  after(async () => {
    if (caddy !== undefined && caddy.exitCode === null) {
      caddy.kill('SIGTERM');
      await once(caddy, 'exit');
    }
    await scenario?.close();
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  });

  gatewayBehaviourTests(() => scenario);
  gatewayBrowserTests(() => scenario);

  test('the door itself refuses a request without the forwarded headers (400, never an allow)', async () => {
    const { server, token, site } = scenario;
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
