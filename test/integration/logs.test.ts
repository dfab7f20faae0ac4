import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, test } from 'node:test';
import { createTestDatabase, defaultBackend, type TestDatabase } from '../support/database.js';
import { spawnGatehouse, waitUntilReady, type GatehouseProcess } from '../support/process.js';
import { freePort, waitFor } from '../support/server.js';

// SPEC §6: one JSON line per request with a request id; never a password, secret, code, token
// or private key, even at LOG_LEVEL=trace. STYLE.md §2: no oidc-provider "must change" notices.

const admin = { clientId: 'logs-admin', clientSecret: randomBytes(32).toString('base64url') };
const wrongSecret = randomBytes(32).toString('base64url');
const masterKey = randomBytes(32).toString('base64url');

interface Sent {
  readonly label: string;
  readonly method: string;
  readonly path: string;
  readonly response: Response;
  readonly body: string;
}

let database: TestDatabase;
let gatehouse: GatehouseProcess;
let baseUrl: string;
const sent: Sent[] = [];
const authorizationValues: string[] = [];
let accessToken = '';

function basic(clientId: string, secret: string): string {
  const value = `Basic ${Buffer.from(`${clientId}:${secret}`).toString('base64')}`;
  authorizationValues.push(value);
  return value;
}

async function send(label: string, path: string, init: RequestInit = {}): Promise<Sent> {
  const response = await fetch(`${baseUrl}${path}`, init);
  const entry = { label, method: init.method ?? 'GET', path, response, body: await response.text() };
  sent.push(entry);
  return entry;
}

const form = { 'content-type': 'application/x-www-form-urlencoded' };
const CLIENT_CREDENTIALS = 'grant_type=client_credentials&scope=admin:clients';

before(async () => {
  database = await createTestDatabase(defaultBackend);
  const port = await freePort();
  baseUrl = `http://127.0.0.1:${port}`;
  gatehouse = spawnGatehouse({
    NODE_ENV: 'test',
    PORT: String(port),
    HOST: '127.0.0.1',
    ISSUER: baseUrl,
    DATA_DIR: database.dataDir,
    MASTER_KEY: masterKey,
    BOOTSTRAP_ADMIN_CLIENT_ID: admin.clientId,
    BOOTSTRAP_ADMIN_CLIENT_SECRET: admin.clientSecret,
    LOG_LEVEL: 'trace',
    ...(database.url === undefined ? {} : { DATABASE_URL: database.url }),
  });
  await waitUntilReady(baseUrl);

  const issued = await send('client_secret_basic', '/token', {
    method: 'POST',
    headers: { ...form, authorization: basic(admin.clientId, admin.clientSecret), 'x-request-id': 'test-req-123' },
    body: CLIENT_CREDENTIALS,
  });
  assert.equal(issued.response.status, 200, issued.body);
  accessToken = (JSON.parse(issued.body) as { access_token: string }).access_token;

  // The admin client is registered for client_secret_basic, so this is refused, but the secret
  // still travels in the body and must not be logged either way.
  await send('client_secret_post', '/token', {
    method: 'POST',
    headers: form,
    body: `${CLIENT_CREDENTIALS}&client_id=${admin.clientId}&client_secret=${admin.clientSecret}`,
  });
  const refused = await send('wrong secret', '/token', {
    method: 'POST',
    headers: { ...form, authorization: basic(admin.clientId, wrongSecret) },
    body: CLIENT_CREDENTIALS,
  });
  assert.equal(refused.response.status, 401, refused.body);
  // A bearer token presented to an endpoint is as sensitive as one issued by it.
  authorizationValues.push(`Bearer ${accessToken}`);
  await send('introspection with the token', '/token/introspection', {
    method: 'POST',
    headers: { ...form, authorization: basic(admin.clientId, admin.clientSecret) },
    body: `token=${accessToken}`,
  });
  await send('jwks', '/jwks');
  await send('discovery', '/.well-known/openid-configuration');

  // Each request's line is written once its response is sent: wait for the last one.
  const lastId = sent.at(-1)?.response.headers.get('x-request-id') ?? '';
  await waitFor(() => gatehouse.output.stdout.includes(lastId), 5_000, 20);
});

after(async () => {
  if (gatehouse !== undefined && gatehouse.child.exitCode === null && gatehouse.child.signalCode === null) {
    gatehouse.kill('SIGTERM');
    await gatehouse.exited;
  }
  await database?.drop();
});

function allOutput(): string {
  return `${gatehouse.output.stdout}\n${gatehouse.output.stderr}`;
}

function jsonLines(): Record<string, unknown>[] {
  return gatehouse.output.stdout
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}

test('no secret, token, master key or Authorization value appears in the output', () => {
  assert.ok(accessToken.split('.').length === 3, 'a JWT access token was issued');
  const signature = accessToken.split('.')[2] ?? '';
  const output = allOutput();
  const forbidden: Record<string, string> = {
    'the client secret': admin.clientSecret,
    'the wrong secret': wrongSecret,
    'the master key': masterKey,
    'the access token': accessToken,
    "the access token's signature": signature,
  };
  authorizationValues.forEach((value, i) => {
    forbidden[`Authorization value #${i + 1}`] = value;
    // The credential part alone, in case a header is logged split from its scheme.
    forbidden[`Authorization credentials #${i + 1}`] = value.slice(value.indexOf(' ') + 1);
  });
  for (const [what, value] of Object.entries(forbidden)) {
    assert.ok(value.length >= 16, `${what} is long enough to search for`);
    assert.ok(!output.includes(value), `${what} appears in the process output`);
  }
});

test('stdout is JSON lines only, so log shippers can parse every line', () => {
  const lines = gatehouse.output.stdout.split('\n').filter((line) => line.trim() !== '');
  assert.ok(lines.length > 0);
  for (const line of lines) assert.doesNotThrow(() => JSON.parse(line), `not JSON: ${line}`);
});

test('every request produces exactly one JSON line with its request id', () => {
  const lines = jsonLines();
  for (const { label, method, path, response } of sent) {
    const reqId = response.headers.get('x-request-id');
    assert.ok(reqId !== null && reqId !== '', `${label}: response carries X-Request-Id`);
    const matching = lines.filter((line) => line['msg'] === 'request' && line['reqId'] === reqId);
    assert.equal(matching.length, 1, `${label}: one request line for ${reqId}`);
    const [line] = matching;
    assert.equal(line?.['method'], method, label);
    assert.equal(line?.['path'], path, label);
    assert.equal(line?.['status'], response.status, label);
  }
});

test('a caller-provided X-Request-Id is echoed and logged', () => {
  const first = sent[0];
  assert.equal(first?.response.headers.get('x-request-id'), 'test-req-123');
  const logged = jsonLines().filter((line) => line['reqId'] === 'test-req-123' && line['msg'] === 'request');
  assert.equal(logged.length, 1);
  assert.equal(logged[0]?.['path'], '/token');
});

test('oidc-provider prints no warnings, default-function notices or runtime complaints', () => {
  const output = allOutput();
  assert.doesNotMatch(output, /oidc-provider WARNING/);
  assert.doesNotMatch(output, /default \S+ function called/);
  assert.doesNotMatch(output, /Unsupported runtime/);
});
