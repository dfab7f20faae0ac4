import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { commandAvailable, gatewayBehaviourTests, startGatewayScenario, type GatewayScenario } from '../support/gateway.js';
import { nginxArgs, privateNginxConfig } from '../support/nginx.js';
import { gatewayBrowserTests } from '../support/gateway-browser.js';
import { REPO_ROOT } from '../support/process.js';
import { waitFor } from '../support/server.js';

/**
 * SPEC §7 auth_request with the real gateway: Debian's nginx (nginx-light) runs the repository's
 * own deploy/gateway/nginx-gatehouse.conf (auth_request to /gateway/auth-request) in front of an
 * echo upstream. A token with the route's scope reaches the upstream with Gatehouse's identity
 * headers; no token is 401 with a challenge; a missing scope 403; a client's own X-Gatehouse-*
 * header never reaches the upstream; a POST is checked as a POST; an unrouted path is denied.
 */

const nginxAvailable = await commandAvailable('nginx', ['-v']);

const ORDERS = 'https://orders.gateway-nginx.test';

describe('gateway auth_request behind nginx (deploy/gateway/nginx-gatehouse.conf)', { skip: nginxAvailable ? false : 'needs nginx (nginx-light; .ci/run installs it)' }, () => {
  let scenario: GatewayScenario;
  let nginx: ChildProcess;
  let nginxLog = '';
  let dir: string;

  before(async () => {
    scenario = await startGatewayScenario(ORDERS);
    const { server, port } = scenario;
    dir = await mkdtemp(path.join(tmpdir(), 'gatehouse-gateway-nginx-'));
    const shipped = await readFile(path.join(REPO_ROOT, 'deploy/gateway/nginx-gatehouse.conf'), 'utf8');
    // The shipped server block, on this test's port; a private instance (own pid, logs, temp dirs).
    await writeFile(path.join(dir, 'gatehouse.conf'), shipped.replace('listen 8080;', `listen 127.0.0.1:${port};`));
    await writeFile(
      path.join(dir, 'nginx.conf'),
      privateNginxConfig(dir, [`upstream gatehouse { server ${new URL(server.url).host}; }`, `upstream app { server ${scenario.upstream}; }`, `include ${dir}/gatehouse.conf;`]),
    );
    nginx = spawn('nginx', nginxArgs(dir), { stdio: ['ignore', 'pipe', 'pipe'] });
    nginx.stdout?.on('data', (chunk: Buffer) => (nginxLog += chunk.toString('utf8')));
    nginx.stderr?.on('data', (chunk: Buffer) => (nginxLog += chunk.toString('utf8')));
    await waitFor(async () => (await fetch(`${scenario.site}/orders`).catch(() => undefined)) !== undefined, 30_000, 100).catch(() => {
      throw new Error(`nginx did not start:\n${nginxLog}`);
    });
  });
  after(async () => {
    if (nginx !== undefined && nginx.exitCode === null) {
      nginx.kill('SIGQUIT');
      await once(nginx, 'exit');
    }
    await scenario?.close();
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  });

  gatewayBehaviourTests(() => scenario);
  gatewayBrowserTests(() => scenario);

  test('the door itself refuses a request without the original method and URL (400, never an allow), and resolves dot segments', async () => {
    const { server, token, site } = scenario;
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
