import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { adminCall, adminToken } from '../support/admin-api.js';
import { REPO_ROOT } from '../support/process.js';
import { freePort, startTestServer, waitFor, type TestServer } from '../support/server.js';

/**
 * The shipped production shape (docker-compose.yml) with the real parts: Debian's Caddy, running
 * the repository's own deploy/Caddyfile with `tls internal`, terminates TLS in front of Gatehouse
 * (TRUST_PROXY=true, ISSUER https). Over real HTTPS, every advertised URL starts with ISSUER,
 * cookies are Secure, and /metrics is not reachable through the proxy (issue 13 items 6 and 10).
 */

const caddyAvailable = await new Promise<boolean>((resolve) => {
  const probe = spawn('caddy', ['version'], { stdio: 'ignore' });
  probe.on('error', () => resolve(false));
  probe.on('exit', (code) => resolve(code === 0));
});

interface HttpsResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

describe('behind Caddy (deploy/Caddyfile, tls internal)', { skip: caddyAvailable ? false : 'needs caddy (apt-get install caddy; .ci/run installs it)' }, () => {
  let server: TestServer;
  let caddy: ChildProcess;
  let caddyLog = '';
  let dir: string;
  let issuer: string;
  let rootCa: string;

  function get(url: string, cookie?: string): Promise<HttpsResponse> {
    return new Promise((resolve, reject) => {
      const req = request(url, { ca: rootCa, servername: 'localhost', headers: cookie === undefined ? {} : { cookie } }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (body += chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      });
      req.on('error', reject);
      req.end();
    });
  }

  before(async () => {
    const httpsPort = await freePort();
    issuer = `https://localhost:${httpsPort}`;
    server = await startTestServer({ env: { ISSUER: issuer, TRUST_PROXY: 'true' } });
    dir = await mkdtemp(path.join(tmpdir(), 'gatehouse-caddy-'));
    // A private instance: no admin endpoint, no :80 redirect listener, no system trust store, its
    // own storage; the site itself is the shipped Caddyfile, imported unchanged.
    const config = path.join(dir, 'Caddyfile');
    await writeFile(
      config,
      `{\n\tadmin off\n\tauto_https disable_redirects\n\tskip_install_trust\n\tstorage file_system ${dir}/storage\n}\nimport ${path.join(REPO_ROOT, 'deploy/Caddyfile')}\n`,
    );
    caddy = spawn('caddy', ['run', '--config', config, '--adapter', 'caddyfile'], {
      env: {
        PATH: process.env['PATH'] ?? '',
        HOME: dir,
        GATEHOUSE_HOST: `localhost:${httpsPort}`,
        GATEHOUSE_UPSTREAM: new URL(server.url).host,
        CADDY_TLS: 'internal',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    caddy.stdout?.on('data', (chunk: Buffer) => (caddyLog += chunk.toString('utf8')));
    caddy.stderr?.on('data', (chunk: Buffer) => (caddyLog += chunk.toString('utf8')));
    const rootFile = path.join(dir, 'storage/pki/authorities/local/root.crt');
    rootCa = await waitFor(() => readFile(rootFile, 'utf8').catch(() => undefined), 30_000, 100).catch(() => {
      throw new Error(`caddy did not create its local CA:\n${caddyLog}`);
    });
    await waitFor(async () => (await get(`${issuer}/healthz`).catch(() => undefined))?.status === 200, 30_000, 100).catch(() => {
      throw new Error(`caddy did not serve https:\n${caddyLog}`);
    });
  });
  after(async () => {
    if (caddy !== undefined && caddy.exitCode === null) {
      caddy.kill('SIGTERM');
      await once(caddy, 'exit');
    }
    await server?.close();
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  });

  test('discovery over HTTPS advertises only ISSUER URLs', async () => {
    const response = await get(`${issuer}/.well-known/openid-configuration`);
    assert.equal(response.status, 200);
    const discovery = JSON.parse(response.body) as Record<string, unknown>;
    assert.equal(discovery['issuer'], issuer);
    const urls = Object.entries(discovery).filter(([key, value]) => typeof value === 'string' && (key.endsWith('_endpoint') || key.endsWith('_uri')));
    assert.ok(urls.length >= 5, 'endpoints are advertised');
    for (const [key, value] of urls) assert.ok((value as string).startsWith(`${issuer}/`), `${key}: ${String(value)}`);
  });

  test('a sign-in starts on ISSUER with Secure cookies, and the login form posts to ISSUER', async () => {
    const redirect = 'https://app.example.test/callback';
    const created = await adminCall<{ client_id: string }>(
      server,
      'POST',
      '/clients',
      { client_name: 'Behind Caddy', grant_types: ['authorization_code'], redirect_uris: [redirect], scope: 'openid' },
      await adminToken(server, 'admin:clients'),
    );
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const auth = new URL(`${issuer}/auth`);
    for (const [key, value] of Object.entries({
      client_id: created.body.client_id,
      redirect_uri: redirect,
      response_type: 'code',
      scope: 'openid',
      code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM',
      code_challenge_method: 'S256',
      state: 'caddy',
    })) {
      auth.searchParams.set(key, value);
    }
    const started = await get(auth.href);
    assert.equal(started.status, 303);
    const location = String(started.headers['location']);
    assert.ok(location.startsWith(`${issuer}/interaction/`), location);
    const cookies = [started.headers['set-cookie'] ?? []].flat();
    assert.ok(cookies.length > 0);
    for (const cookie of cookies) assert.match(cookie, /;\s*secure/i, cookie);

    const page = await get(location, cookies.map((cookie) => cookie.split(';')[0]).join('; '));
    assert.equal(page.status, 200);
    const actions = [...page.body.matchAll(/<form[^>]*action="([^"]*)"/g)].map((match) => match[1]!);
    assert.ok(actions.length > 0, 'a login form');
    for (const action of actions) assert.ok(action.startsWith(`${issuer}/`), action);
  });

  test('/metrics is not served through the proxy; it lives on the management port', async () => {
    assert.equal((await get(`${issuer}/metrics`)).status, 404);
    assert.equal((await get(`${issuer}/readyz`)).status, 200);
  });
});
