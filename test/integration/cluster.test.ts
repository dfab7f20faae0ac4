import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import { after, before, describe, test } from 'node:test';
import { createLocalJWKSet, jwtVerify, type JSONWebKeySet } from 'jose';
import { adminToken, createClient, createResourceServer, type AdminServer, type ClientBody } from '../support/admin-api.js';
import { createTestDatabase, postgresUrl, type TestDatabase } from '../support/database.js';
import { spawnGatehouse, type GatehouseProcess } from '../support/process.js';
import { freePort, waitFor } from '../support/server.js';

/**
 * WORKERS=2 (src/cluster.ts): a real Gatehouse process on PostgreSQL whose primary forks two
 * workers sharing one port. Which process answered a request is read from its access-log line
 * (every worker's log lines carry its pid, and the request id we send names the line), so the
 * test needs nothing exposed that production does not already expose.
 */

const RESOURCE = 'https://orders.cluster.example';

interface LogLine {
  readonly msg?: string;
  readonly pid?: number;
  readonly role?: string;
  readonly reqId?: string;
  readonly status?: number;
  readonly workerPid?: number;
  readonly workerPids?: number[];
  readonly [field: string]: unknown;
}

function logLines(gatehouse: GatehouseProcess): LogLine[] {
  return gatehouse.output.stdout
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as LogLine);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** One POST /token on a connection of its own (no keep-alive), so node:cluster picks a worker for it. */
function tokenOnNewConnection(url: string, client: ClientBody, requestId: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const body = new URLSearchParams({ grant_type: 'client_credentials', resource: RESOURCE, scope: 'orders:read' }).toString();
  const basic = Buffer.from(`${encodeURIComponent(client.client_id)}:${encodeURIComponent(client.client_secret ?? '')}`).toString('base64');
  return new Promise((resolve, reject) => {
    const request = http.request(
      `${url}/token`,
      {
        method: 'POST',
        agent: false,
        headers: { authorization: `Basic ${basic}`, 'content-type': 'application/x-www-form-urlencoded', 'x-request-id': requestId, 'content-length': Buffer.byteLength(body) },
      },
      (response) => {
        let text = '';
        response.setEncoding('utf8');
        response.on('data', (chunk: string) => (text += chunk));
        response.on('end', () => resolve({ status: response.statusCode ?? 0, body: JSON.parse(text) as Record<string, unknown> }));
        response.on('error', reject);
      },
    );
    request.on('error', reject);
    request.end(body);
  });
}

describe('WORKERS=2: one port served by two worker processes', { skip: postgresUrl === undefined ? 'needs PostgreSQL (TEST_DATABASE_URL): several processes cannot share PGlite' : false }, () => {
  const admin = { clientId: 'cluster-admin', clientSecret: randomBytes(32).toString('base64url') };
  let database: TestDatabase;
  let server: AdminServer;
  let gatehouse: GatehouseProcess;
  let workerPids: number[];
  let client: ClientBody;
  let keys: ReturnType<typeof createLocalJWKSet>;
  let sequence = 0;

  /** A token request on a new connection; resolves with its status, token and the pid of the worker that logged it. */
  async function tokenFromSomeWorker(): Promise<{ status: number; token: unknown; pid: number }> {
    const requestId = `cluster-${process.pid}-${(sequence += 1)}`;
    const { status, body } = await tokenOnNewConnection(server.url, client, requestId);
    const line = await waitFor(() => logLines(gatehouse).find((entry) => entry.reqId === requestId && entry.msg === 'request'), 10_000, 10);
    assert.equal(typeof line.pid, 'number', JSON.stringify(line));
    return { status, token: body['access_token'], pid: line.pid! };
  }

  /** Waits for a log line, failing at once (with the output) if the process exits first. */
  async function logged(what: string, match: (line: LogLine) => boolean, timeoutMs = 60_000): Promise<LogLine> {
    let exited: number | string | undefined;
    void gatehouse.exited.then((code) => (exited = code));
    try {
      return await waitFor(() => {
        if (exited !== undefined) throw new Error(`gatehouse exited (${exited})`);
        return logLines(gatehouse).find(match);
      }, timeoutMs, 50);
    } catch (error) {
      throw new Error(`${what} not logged: ${(error as Error).message}\n${gatehouse.output.stderr}\n${gatehouse.output.stdout.slice(-4000)}`, { cause: error });
    }
  }

  before(async () => {
    database = await createTestDatabase('postgres');
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    server = { url, issuer: url, admin };
    gatehouse = spawnGatehouse({
      NODE_ENV: 'test',
      PORT: String(port),
      HOST: '127.0.0.1',
      ISSUER: url,
      DATA_DIR: database.dataDir,
      DATABASE_URL: database.url ?? '',
      MASTER_KEY: randomBytes(32).toString('base64url'),
      BOOTSTRAP_ADMIN_CLIENT_ID: admin.clientId,
      BOOTSTRAP_ADMIN_CLIENT_SECRET: admin.clientSecret,
      LOG_LEVEL: 'info',
      SHUTDOWN_TIMEOUT_MS: '5000',
      WORKERS: '2',
    });
    const ready = await logged('every worker listening', (line) => line.role === 'primary' && line.msg?.startsWith('gatehouse cluster listening') === true);
    workerPids = ready.workerPids ?? [];
    assert.equal(workerPids.length, 2, JSON.stringify(ready));

    const token = await adminToken(server, 'admin:clients admin:resource-servers');
    await createResourceServer(server, { identifier: RESOURCE, name: 'Orders', scopes: ['orders:read'] }, token);
    client = await createClient(server, { client_name: 'cluster service', allowed_resources: [RESOURCE], scope: 'orders:read' }, token);
    keys = createLocalJWKSet((await (await fetch(`${url}/jwks`)).json()) as JSONWebKeySet);
  });

  after(async () => {
    if (gatehouse !== undefined && gatehouse.child.exitCode === null && gatehouse.child.signalCode === null) {
      gatehouse.kill('SIGKILL');
      await gatehouse.exited;
    }
    for (const pid of workerPids ?? []) if (alive(pid)) process.kill(pid, 'SIGKILL');
    await database?.drop();
  });

  test('the primary prepared the database once and serves nothing; both workers issue valid tokens', async () => {
    const primaryPid = gatehouse.child.pid;
    assert.ok(primaryPid !== undefined && !workerPids.includes(primaryPid));
    const migrated = logLines(gatehouse).filter((line) => line.msg === 'migrations applied');
    assert.deepEqual(migrated.map((line) => line.pid), [primaryPid], 'migrations are applied by the primary alone');

    const answeredBy = new Map<number, unknown>();
    for (let i = 0; i < 20; i += 1) {
      const answer = await tokenFromSomeWorker();
      assert.equal(answer.status, 200);
      answeredBy.set(answer.pid, answer.token);
    }
    assert.deepEqual([...answeredBy.keys()].sort(), [...workerPids].sort(), 'connections are shared between the two workers, and only them');
    for (const token of answeredBy.values()) {
      assert.equal(typeof token, 'string');
      await jwtVerify(token as string, keys, { issuer: server.issuer, audience: RESOURCE, typ: 'at+jwt' });
    }
  });

  test('a worker killed with SIGKILL is replaced, and the other serves meanwhile', async () => {
    const [victim, survivor] = workerPids as [number, number];
    process.kill(victim, 'SIGKILL');
    const noticed = await logged('the dead worker', (line) => line.msg?.startsWith('worker exited unexpectedly') === true && line.workerPid === victim, 10_000);
    assert.equal(noticed['signal'], 'SIGKILL');

    // No outage: every request after the primary noticed is answered, never by the dead worker.
    for (let i = 0; i < 10; i += 1) {
      const answer = await tokenFromSomeWorker();
      assert.equal(answer.status, 200);
      assert.notEqual(answer.pid, victim);
    }

    const replacement = await logged('a replacement worker listening', (line) => line.msg === 'gatehouse listening' && line.pid !== undefined && !workerPids.includes(line.pid));
    const replacementPid = replacement.pid!;
    const seen = new Set<number>();
    await waitFor(async () => {
      const answer = await tokenFromSomeWorker();
      assert.equal(answer.status, 200);
      seen.add(answer.pid);
      return seen.has(replacementPid) && seen.has(survivor);
    }, 20_000, 0);
    assert.ok(!seen.has(victim));
    workerPids = [survivor, replacementPid];
  });

  test('SIGTERM to the primary drains every worker, then it exits 0', async () => {
    const statuses: number[] = [];
    let stopped = false;
    // Keep-alive load on four connections until the server is gone.
    const loop = async () => {
      while (!stopped) {
        try {
          const response = await fetch(`${server.url}/token`, {
            method: 'POST',
            headers: {
              authorization: `Basic ${Buffer.from(`${encodeURIComponent(client.client_id)}:${encodeURIComponent(client.client_secret ?? '')}`).toString('base64')}`,
              'content-type': 'application/x-www-form-urlencoded',
            },
            body: new URLSearchParams({ grant_type: 'client_credentials', resource: RESOURCE, scope: 'orders:read' }).toString(),
          });
          await response.arrayBuffer();
          statuses.push(response.status);
        } catch {
          return; // refused: every worker has stopped listening
        }
      }
    };
    const loops = Array.from({ length: 4 }, loop);
    await waitFor(() => statuses.length >= 20, 20_000, 5);
    gatehouse.kill('SIGTERM');
    assert.equal(await gatehouse.exited, 0, gatehouse.output.stderr);
    stopped = true;
    await Promise.all(loops);

    assert.ok(statuses.length >= 20);
    assert.deepEqual(
      statuses.filter((status) => status !== 200),
      [],
      'every request answered while draining was served',
    );
    const lines = logLines(gatehouse);
    for (const pid of workerPids) {
      assert.ok(lines.some((line) => line.pid === pid && line.msg === 'shutdown complete'), `worker ${pid} drained`);
      assert.equal(alive(pid), false, `worker ${pid} has exited`);
    }
    assert.ok(lines.some((line) => line.role === 'primary' && line.msg?.startsWith('shutdown complete') === true));
  });
});

describe('WORKERS above 1 without PostgreSQL', () => {
  test('is refused at start with one line naming WORKERS', async () => {
    const scratch = await createTestDatabase('pglite');
    try {
      const gatehouse = spawnGatehouse({ NODE_ENV: 'test', PORT: '0', HOST: '127.0.0.1', DATA_DIR: scratch.dataDir, WORKERS: '2' });
      const timer = setTimeout(() => gatehouse.kill('SIGKILL'), 20_000);
      const code = await gatehouse.exited;
      clearTimeout(timer);
      assert.equal(code, 1);
      const lines = gatehouse.output.stderr.split('\n').filter((line) => line.trim() !== '');
      assert.equal(lines.length, 1, gatehouse.output.stderr);
      assert.match(lines[0] ?? '', /^gatehouse: invalid configuration: WORKERS must be 1 when DATABASE_URL is unset: .*PostgreSQL/);
      assert.doesNotMatch(gatehouse.output.stdout, /gatehouse listening/);
    } finally {
      await scratch.drop();
    }
  });
});
