import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import { after, before, test } from 'node:test';
import { createTestDatabase, defaultBackend, type TestDatabase } from '../support/database.js';
import { spawnGatehouse, waitUntilReady, type GatehouseProcess } from '../support/process.js';
import { freePort, waitFor } from '../support/server.js';

/**
 * SPEC §6 under load: SIGTERM while ~20 keep-alive clients send token requests back to back.
 * Every request the server accepted is answered in full (200), including one that was already on
 * its way over a kept-alive connection (answered with `Connection: close`); a connection opened
 * after the listener closed is refused; the process exits 0 within 10 s. shutdown.test.ts covers
 * the single slow request; this is the same promise with many at once.
 */

const admin = { clientId: 'drain-admin', clientSecret: randomBytes(32).toString('base64url') };
const BODY = 'grant_type=client_credentials&scope=admin:clients';
const WORKERS = 20;
const AUTHORIZATION = `Basic ${Buffer.from(`${admin.clientId}:${admin.clientSecret}`).toString('base64')}`;

interface Attempt {
  readonly id: string;
  /** performance.now() when sent. */
  readonly startedAt: number;
  /** Date.now() when sent, to compare with the server's log times. */
  readonly sentAt: number;
  endedAt?: number;
  status?: number;
  /** The response's Connection header. */
  connection?: string;
  /** The client error code (ECONNREFUSED, ECONNRESET, ...) when no response came. */
  error?: string;
  /** Sent on a kept-alive connection rather than a new one. */
  reusedSocket?: boolean;
}

let database: TestDatabase;
let port: number;
let gatehouse: GatehouseProcess;

before(async () => {
  database = await createTestDatabase(defaultBackend);
  port = await freePort();
  gatehouse = spawnGatehouse({
    NODE_ENV: 'test',
    PORT: String(port),
    HOST: '127.0.0.1',
    ISSUER: `http://127.0.0.1:${port}`,
    DATA_DIR: database.dataDir,
    MASTER_KEY: randomBytes(32).toString('base64url'),
    BOOTSTRAP_ADMIN_CLIENT_ID: admin.clientId,
    BOOTSTRAP_ADMIN_CLIENT_SECRET: admin.clientSecret,
    SHUTDOWN_TIMEOUT_MS: '8000',
    ...(database.url === undefined ? {} : { DATABASE_URL: database.url }),
  });
  await waitUntilReady(`http://127.0.0.1:${port}`);
});

after(async () => {
  if (gatehouse !== undefined && gatehouse.child.exitCode === null && gatehouse.child.signalCode === null) {
    gatehouse.kill('SIGKILL');
    await gatehouse.exited;
  }
  await database?.drop();
});

/** One token request; resolves (never rejects) with what happened to it. */
function tokenRequest(id: string, agent: http.Agent | false): Promise<Attempt> {
  const attempt: Attempt = { id, startedAt: performance.now(), sentAt: Date.now() };
  return new Promise((resolve) => {
    const done = () => {
      attempt.endedAt = performance.now();
      resolve(attempt);
    };
    const request = http.request(
      {
        host: '127.0.0.1',
        port,
        method: 'POST',
        path: '/token',
        agent,
        headers: {
          authorization: AUTHORIZATION,
          'content-type': 'application/x-www-form-urlencoded',
          'content-length': String(Buffer.byteLength(BODY)),
          'x-request-id': id,
        },
      },
      (response) => {
        attempt.status = response.statusCode;
        attempt.connection = response.headers.connection;
        let body = '';
        response.setEncoding('utf8');
        response.on('data', (chunk: string) => (body += chunk));
        response.once('end', () => {
          if (response.statusCode === 200 && typeof (JSON.parse(body) as { access_token?: unknown }).access_token !== 'string') attempt.error = 'incomplete body';
          done();
        });
        response.once('error', (error: NodeJS.ErrnoException) => {
          attempt.error = `response ${error.code ?? error.message}`;
          done();
        });
      },
    );
    request.once('socket', () => (attempt.reusedSocket = request.reusedSocket));
    request.once('error', (error: NodeJS.ErrnoException) => {
      attempt.error = error.code ?? error.message;
      done();
    });
    request.end(BODY);
  });
}

/** The server's request log lines, by request id. */
function loggedRequests(): Map<string, { status: number; time: number; ms: number }> {
  const lines = new Map<string, { status: number; time: number; ms: number }>();
  for (const text of gatehouse.output.stdout.split('\n')) {
    if (!text.startsWith('{')) continue;
    const line = JSON.parse(text) as { msg?: string; reqId?: string; status?: number; time?: string; ms?: number };
    if (line.msg === 'request' && typeof line.reqId === 'string') lines.set(line.reqId, { status: line.status ?? 0, time: Date.parse(line.time ?? ''), ms: line.ms ?? 0 });
  }
  return lines;
}

function shutdownLoggedAt(): number {
  const line = gatehouse.output.stdout.split('\n').find((text) => text.includes('shutting down'));
  assert.ok(line, 'the process logged the start of its shutdown');
  return Date.parse((JSON.parse(line) as { time: string }).time);
}

test('SIGTERM under 20 concurrent keep-alive clients: accepted requests all get 200, new connections are refused, exit 0 within 10 s', async () => {
  const agent = new http.Agent({ keepAlive: true, maxSockets: WORKERS });
  const attempts: Attempt[] = [];
  let sequence = 0;

  // Each worker sends its next request as soon as the last is answered, until one fails.
  const worker = async (w: number) => {
    for (;;) {
      const attempt = await tokenRequest(`drain-${w}-${(sequence += 1)}`, agent);
      attempts.push(attempt);
      if (attempt.error !== undefined || attempt.status !== 200) return;
    }
  };
  const inFlightNow = () => sequence - attempts.length;
  const workers = Array.from({ length: WORKERS }, (_, w) => worker(w));

  // Warm up until every worker has a kept-alive connection and the server is busy.
  await waitFor(() => attempts.length >= 200, 30_000, 5);
  const inFlightAtSigterm = inFlightNow();
  const sigtermAt = performance.now();
  gatehouse.kill('SIGTERM');

  // The moment a fresh connection is refused, the listener is closed.
  await waitFor(
    () =>
      tokenRequest(`probe-${(sequence += 1)}`, false).then((probe) => {
        attempts.push(probe);
        return probe.error === 'ECONNREFUSED';
      }),
    5_000,
    0,
  );
  // After that, fresh connections keep being refused, never queued.
  for (let i = 0; i < 5; i += 1) {
    const late = await tokenRequest(`late-${i}`, false);
    attempts.push(late);
    assert.equal(late.error, 'ECONNREFUSED', `a new connection after the listener closed: ${JSON.stringify(late)}`);
  }

  const exitCode = await Promise.race([gatehouse.exited, new Promise<string>((resolve) => setTimeout(resolve, 10_000, 'still running after 10 s').unref())]);
  const exitMs = Math.round(performance.now() - sigtermAt);
  assert.equal(exitCode, 0, `exit code (stderr: ${gatehouse.output.stderr})`);
  assert.ok(exitMs < 10_000);
  await Promise.all(workers);
  agent.destroy();

  const logged = loggedRequests();
  const drained = attempts.filter((a) => a.status === 200 && (a.endedAt ?? 0) > sigtermAt);
  const shutdownAt = shutdownLoggedAt();
  const unanswered: Record<string, number> = {};
  for (const { error, reusedSocket } of attempts) {
    if (error === undefined) continue;
    const key = `${error}${reusedSocket === true ? ' on a kept-alive connection' : ''}`;
    unanswered[key] = (unanswered[key] ?? 0) + 1;
  }
  // Server side: requests that had started and not yet finished when it began to shut down.
  const serverInFlight = [...logged.values()].filter((line) => line.time - line.ms <= shutdownAt && line.time >= shutdownAt).length;
  const duringDrain = attempts.filter((a) => a.reusedSocket === true && a.sentAt > shutdownAt && a.status === 200).length;
  console.log(
    `shutdown under load: ${inFlightAtSigterm} requests in flight (client side) and ${serverInFlight} in the server at SIGTERM; ` +
      `${duringDrain} sent on kept-alive connections during the drain were answered; ` +
      `${drained.length} answered 200 after it; exit 0 after ${exitMs} ms; ${attempts.length} requests in all; ` +
      `not answered: ${JSON.stringify(unanswered)}`,
  );
  assert.ok(inFlightAtSigterm >= WORKERS / 2, `about ${WORKERS} requests in flight at SIGTERM, got ${inFlightAtSigterm}`);
  assert.ok(drained.length > 0, 'requests in flight at SIGTERM were answered');

  for (const attempt of attempts) {
    const line = logged.get(attempt.id);
    if (line !== undefined) {
      // Accepted by the server: answered in full, with 200, on both sides.
      assert.equal(line.status, 200, `${attempt.id} logged ${line.status}`);
      assert.equal(attempt.error, undefined, `${attempt.id} was accepted but the client got ${attempt.error}`);
      assert.equal(attempt.status, 200, `${attempt.id}`);
      // Sent once the server was shutting down (on a kept-alive connection): answered, and that
      // connection is not kept for another request.
      if (attempt.sentAt > shutdownAt) assert.equal(attempt.connection, 'close', `${attempt.id} sent during the drain`);
    } else if (attempt.status !== undefined) {
      assert.fail(`${attempt.id} got ${attempt.status} but has no request log line`);
    } else {
      // Not accepted: only ever a new connection after SIGTERM, refused. A request already sent
      // on a kept-alive connection is never reset unread (src/server.ts keeps idle connections
      // open for a moment after the listener closes).
      assert.equal(attempt.reusedSocket, false, `${attempt.id} was sent on a kept-alive connection and got ${attempt.error}`);
      // A connect that reached the kernel's accept queue just before the listener closed is reset
      // rather than refused (Linux answers RST for the queued, never-accepted socket); neither
      // was read by the server.
      assert.ok(attempt.error === 'ECONNREFUSED' || attempt.error === 'ECONNRESET', `${attempt.id} on a new connection: ${attempt.error}`);
      assert.ok(attempt.startedAt >= sigtermAt, `${attempt.id} refused before SIGTERM`);
    }
  }
  assert.match(gatehouse.output.stdout, /shutdown complete/);
});
