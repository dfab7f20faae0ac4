import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { spawnGatehouse, waitUntilReady, type GatehouseProcess } from '../support/process.js';
import { freePort, waitFor } from '../support/server.js';

// SPEC §6: on SIGTERM, stop accepting, finish in-flight requests, close the pool, exit 0.

const admin = { clientId: 'shutdown-admin', clientSecret: randomBytes(32).toString('base64url') };
const BODY = 'grant_type=client_credentials&scope=admin:clients';

let dataDir: string;
let port: number;
let managementPort: number;
let gatehouse: GatehouseProcess;

before(async () => {
  dataDir = await mkdtemp(path.join(tmpdir(), 'gatehouse-shutdown-'));
  port = await freePort();
  managementPort = await freePort();
  gatehouse = spawnGatehouse({
    NODE_ENV: 'test',
    PORT: String(port),
    MANAGEMENT_PORT: String(managementPort),
    HOST: '127.0.0.1',
    ISSUER: `http://127.0.0.1:${port}`,
    DATA_DIR: dataDir,
    MASTER_KEY: randomBytes(32).toString('base64url'),
    BOOTSTRAP_ADMIN_CLIENT_ID: admin.clientId,
    BOOTSTRAP_ADMIN_CLIENT_SECRET: admin.clientSecret,
  });
  await waitUntilReady(`http://127.0.0.1:${port}`);
});

after(async () => {
  if (gatehouse !== undefined && gatehouse.child.exitCode === null && gatehouse.child.signalCode === null) {
    gatehouse.kill('SIGKILL');
    await gatehouse.exited;
  }
  await rm(dataDir, { recursive: true, force: true });
});

/** Resolves true when a new TCP connection to the port is refused or fails. */
function connectionFails(to = port): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(to, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('error', () => resolve(true));
  });
}

/** One GET on `agent`'s connection, read to the end. */
function fetchVia(agent: http.Agent, to: number, requestPath: string): Promise<{ status: number }> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port: to, path: requestPath, agent }, (response) => {
        response.resume();
        response.once('end', () => resolve({ status: response.statusCode ?? 0 }));
        response.once('error', reject);
      })
      .once('error', reject);
  });
}

test('SIGTERM lets an in-flight request finish, refuses new connections on both listeners and exits 0', async () => {
  // `Expect: 100-continue` makes the server confirm it has parsed the request headers, so the
  // request is provably in flight (not just queued in the kernel) before the signal arrives.
  const request = http.request({
    host: '127.0.0.1',
    port,
    method: 'POST',
    path: '/token',
    // A keep-alive client, as load balancers are: the drain must not wait for it to hang up.
    agent: new http.Agent({ keepAlive: true }),
    headers: {
      authorization: `Basic ${Buffer.from(`${admin.clientId}:${admin.clientSecret}`).toString('base64')}`,
      'content-type': 'application/x-www-form-urlencoded',
      'content-length': String(Buffer.byteLength(BODY)),
      expect: '100-continue',
    },
  });
  const responded = new Promise<{ status: number; contentType: string; connection: string; body: string }>((resolve, reject) => {
    request.once('response', (response) => {
      let body = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => (body += chunk));
      response.once('end', () =>
        resolve({
          status: response.statusCode ?? 0,
          contentType: response.headers['content-type'] ?? '',
          connection: response.headers.connection ?? '',
          body,
        }),
      );
      response.once('error', reject);
    });
    request.once('error', reject);
  });
  await new Promise<void>((resolve, reject) => {
    request.once('continue', () => resolve());
    request.once('error', reject);
    request.flushHeaders();
  });
  const half = Math.floor(BODY.length / 2);
  request.write(BODY.slice(0, half));
  // A scraper on the management listener holding a kept-alive connection must not hold the exit open.
  const scraper = new http.Agent({ keepAlive: true });
  const scrape = await fetchVia(scraper, managementPort, '/metrics');
  assert.equal(scrape.status, 200);

  gatehouse.kill('SIGTERM');
  await waitFor(() => gatehouse.output.stdout.includes('shutting down'), 5_000, 20);

  // Still mid-request: the listener is closed, so a new connection cannot get in.
  assert.equal(await waitFor(connectionFails, 2_000, 20), true, 'a new connection after SIGTERM is refused');
  assert.equal(await waitFor(() => connectionFails(managementPort), 2_000, 20), true, 'the management listener is closed too');
  assert.equal(gatehouse.child.exitCode, null, 'the process waits for the in-flight request');

  request.end(BODY.slice(half));
  const response = await responded;
  assert.ok(response.status >= 200 && response.status < 600, `complete HTTP response, got ${response.status}`);
  assert.match(response.contentType, /application\/json/);
  const parsed = JSON.parse(response.body) as Record<string, unknown>;
  assert.equal(response.status, 200, `token issued during drain, got ${response.body}`);
  assert.equal(typeof parsed['access_token'], 'string');
  assert.equal(response.connection, 'close', 'the drained connection is not kept alive for more requests');

  const code = await Promise.race([
    gatehouse.exited,
    new Promise<string>((resolve) => setTimeout(resolve, 10_000, 'still running after 10 s').unref()),
  ]);
  assert.equal(code, 0, `exit code (stderr: ${gatehouse.output.stderr})`);
  assert.match(gatehouse.output.stdout, /shutdown complete/);
});
