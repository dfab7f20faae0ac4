import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { ConfigError, loadConfig } from '../../src/config.js';
import { createRateLimiter, type RateLimitDecision } from '../../src/http/rate-limit.js';
import { createTokenRateLimits } from '../../src/oidc/token-rate-limits.js';
import { adminCall, adminToken, createClient, createResourceServer, type ClientBody } from '../support/admin-api.js';
import { startTestServer, type TestServer } from '../support/server.js';

/**
 * Token endpoint rate limits: the token bucket itself on an injected clock, the configuration,
 * and over HTTP the per-client limit (only authenticated client ids count, every grant type) and
 * the per-IP limit on the token, introspection and revocation endpoints (X-Forwarded-For only
 * with TRUST_PROXY). Servers run with a refill so slow (one request per 1000 s) that nothing
 * refills during a test, whatever the machine's speed.
 */

function manualClock(start = 1_000_000) {
  let ms = start;
  return { now: () => ms, advance: (by: number) => (ms += by), set: (to: number) => (ms = to) };
}

function refused(decision: RateLimitDecision): number {
  assert.equal(decision.allowed, false, 'expected the request to be refused');
  return (decision as { retryAfterSeconds: number }).retryAfterSeconds;
}

describe('token bucket', () => {
  test('allows a burst, then refuses with the whole seconds until the next request fits', () => {
    const clock = manualClock();
    const limiter = createRateLimiter({ ratePerSecond: 2, burst: 3 }, { now: clock.now });
    for (let i = 0; i < 3; i += 1) assert.deepEqual(limiter.take('a'), { allowed: true });
    // Half a second at 2/s refills one request: rounded up to the next whole second.
    assert.equal(refused(limiter.take('a')), 1);
    // A refused request spends nothing: the next one still waits the same.
    assert.equal(refused(limiter.take('a')), 1);
  });

  test('refills at the rate and never beyond the burst', () => {
    const clock = manualClock();
    const limiter = createRateLimiter({ ratePerSecond: 2, burst: 3 }, { now: clock.now });
    for (let i = 0; i < 3; i += 1) limiter.take('a');
    clock.advance(499);
    refused(limiter.take('a'));
    clock.advance(1);
    assert.deepEqual(limiter.take('a'), { allowed: true }, '500 ms at 2/s is one request');
    refused(limiter.take('a'));
    clock.advance(3_600_000);
    for (let i = 0; i < 3; i += 1) assert.deepEqual(limiter.take('a'), { allowed: true });
    refused(limiter.take('a'));
  });

  test('Retry-After counts the seconds to one whole request, and is never 0', () => {
    const clock = manualClock();
    const slow = createRateLimiter({ ratePerSecond: 0.1, burst: 1 }, { now: clock.now });
    slow.take('a');
    assert.equal(refused(slow.take('a')), 10);
    clock.advance(4_000);
    assert.equal(refused(slow.take('a')), 6);
    clock.advance(5_500);
    assert.equal(refused(slow.take('a')), 1, '0.5 s left still says 1');
    clock.advance(500);
    assert.deepEqual(slow.take('a'), { allowed: true });

    const fast = createRateLimiter({ ratePerSecond: 1000, burst: 1 }, { now: clock.now });
    fast.take('a');
    assert.equal(refused(fast.take('a')), 1, 'a 1 ms wait is announced as 1 s');
  });

  test('keys are independent', () => {
    const clock = manualClock();
    const limiter = createRateLimiter({ ratePerSecond: 1, burst: 1 }, { now: clock.now });
    limiter.take('a');
    refused(limiter.take('a'));
    assert.deepEqual(limiter.take('b'), { allowed: true });
  });

  test('a clock that steps backwards refills nothing', () => {
    const clock = manualClock();
    const limiter = createRateLimiter({ ratePerSecond: 1, burst: 1 }, { now: clock.now });
    limiter.take('a');
    clock.advance(-60_000);
    refused(limiter.take('a'));
  });

  test('idle keys are forgotten: memory follows the active keys', () => {
    const clock = manualClock();
    const limiter = createRateLimiter({ ratePerSecond: 10, burst: 20 }, { now: clock.now });
    for (let i = 0; i < 500; i += 1) limiter.take(`idle-${i}`);
    assert.equal(limiter.size, 500);
    // 20 tokens at 10/s: after 2 s every bucket is full again, the same as an unknown key.
    clock.advance(2_000);
    limiter.take('active');
    assert.equal(limiter.size, 1);
  });

  test('a key still being refilled is kept across a sweep', () => {
    const clock = manualClock();
    const limiter = createRateLimiter({ ratePerSecond: 1, burst: 2 }, { now: clock.now });
    limiter.take('busy');
    limiter.take('busy');
    clock.advance(1_500);
    limiter.take('other');
    assert.equal(limiter.size, 2);
    assert.deepEqual(limiter.take('busy'), { allowed: true });
    refused(limiter.take('busy'));
  });

  test('the number of tracked keys is capped; the least recently used goes first', () => {
    const clock = manualClock();
    const limiter = createRateLimiter({ ratePerSecond: 0.001, burst: 1 }, { now: clock.now, maxKeys: 3 });
    for (const key of ['a', 'b', 'c']) limiter.take(key);
    refused(limiter.take('a')); // a is now the most recently used
    for (let i = 0; i < 1_000; i += 1) {
      limiter.take(`flood-${i}`);
      assert.ok(limiter.size <= 3);
    }
    assert.equal(limiter.size, 3);
    // Forgotten keys start again with a full bucket.
    assert.deepEqual(limiter.take('b'), { allowed: true });
  });

  test('refuses a policy that cannot work', () => {
    assert.throws(() => createRateLimiter({ ratePerSecond: 0, burst: 1 }), RangeError);
    assert.throws(() => createRateLimiter({ ratePerSecond: Number.POSITIVE_INFINITY, burst: 1 }), RangeError);
    assert.throws(() => createRateLimiter({ ratePerSecond: 1, burst: 0 }), RangeError);
    assert.throws(() => createRateLimiter({ ratePerSecond: 1, burst: 1.5 }), RangeError);
  });

  test('a rate of 0 builds no limiter', () => {
    const limits = createTokenRateLimits({ perClient: { ratePerSecond: 0, burst: 1 }, perIp: { ratePerSecond: 3, burst: 6 } }, () => {});
    assert.equal(limits.perClient, undefined);
    assert.ok(limits.perIp !== undefined);
  });
});

describe('rate limit configuration', () => {
  test('defaults are above what one instance serves, with a two-second burst', () => {
    const { tokenRateLimits } = loadConfig({});
    assert.deepEqual(tokenRateLimits, {
      perClient: { ratePerSecond: 5_000, burst: 10_000 },
      perIp: { ratePerSecond: 10_000, burst: 20_000 },
    });
  });

  test('rates may be fractions; an unset burst is two seconds of the rate, at least 1; 0 disables', () => {
    const config = loadConfig({ TOKEN_RATE_LIMIT_PER_CLIENT: '0.2', TOKEN_RATE_LIMIT_PER_IP: '0', TOKEN_RATE_LIMIT_PER_IP_BURST: '7' });
    assert.deepEqual(config.tokenRateLimits.perClient, { ratePerSecond: 0.2, burst: 1 });
    assert.deepEqual(config.tokenRateLimits.perIp, { ratePerSecond: 0, burst: 7 });
    assert.deepEqual(loadConfig({ TOKEN_RATE_LIMIT_PER_CLIENT: '25', TOKEN_RATE_LIMIT_PER_CLIENT_BURST: '5' }).tokenRateLimits.perClient, {
      ratePerSecond: 25,
      burst: 5,
    });
  });

  test('bad values stop start-up with one line per variable', () => {
    try {
      loadConfig({ TOKEN_RATE_LIMIT_PER_CLIENT: 'fast', TOKEN_RATE_LIMIT_PER_IP: '-1', TOKEN_RATE_LIMIT_PER_CLIENT_BURST: '0', TOKEN_RATE_LIMIT_PER_IP_BURST: '2.5' });
      assert.fail('expected a ConfigError');
    } catch (error) {
      assert.ok(error instanceof ConfigError);
      assert.deepEqual(
        [...error.problems].sort(),
        [
          'TOKEN_RATE_LIMIT_PER_CLIENT must be a number of requests per second (got "fast")',
          'TOKEN_RATE_LIMIT_PER_CLIENT_BURST must be at least 1 (got "0")',
          'TOKEN_RATE_LIMIT_PER_IP must be 0 (off) or more (got "-1")',
          'TOKEN_RATE_LIMIT_PER_IP_BURST must be a whole number (got "2.5")',
        ],
      );
    }
  });
});

// ---- over HTTP ----

/** One request per 1000 s: nothing refills while a test runs. */
const NO_REFILL = '0.001';
const RESOURCE = 'https://orders.rate-limit.example';

interface TokenEndpointResponse {
  readonly status: number;
  readonly headers: Headers;
  readonly body: Record<string, unknown>;
}

function basic(clientId: string, secret: string): string {
  return `Basic ${Buffer.from(`${encodeURIComponent(clientId)}:${encodeURIComponent(secret)}`).toString('base64')}`;
}

async function post(server: TestServer, path: string, form: Record<string, string>, headers: Record<string, string> = {}): Promise<TokenEndpointResponse> {
  const response = await fetch(`${server.url}${path}`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded', Accept: 'application/json', ...headers },
    body: new URLSearchParams(form).toString(),
  });
  const text = await response.text();
  return { status: response.status, headers: response.headers, body: text === '' ? {} : (JSON.parse(text) as Record<string, unknown>) };
}

function tokenFor(server: TestServer, client: ClientBody, headers: Record<string, string> = {}): Promise<TokenEndpointResponse> {
  return post(server, '/token', { grant_type: 'client_credentials' }, { Authorization: basic(client.client_id, client.client_secret ?? ''), ...headers });
}

/** A 429 as documented: Retry-After in whole seconds, not cached, an RFC 6749-style JSON body. */
function assertRateLimited(response: TokenEndpointResponse, maxRetryAfter = 1000): number {
  assert.equal(response.status, 429, JSON.stringify(response.body));
  const retryAfter = response.headers.get('retry-after') ?? '';
  assert.match(retryAfter, /^\d+$/, 'Retry-After is delay-seconds');
  const seconds = Number(retryAfter);
  assert.ok(seconds >= 1 && seconds <= maxRetryAfter, `Retry-After ${seconds}`);
  assert.equal(response.headers.get('cache-control'), 'no-store');
  assert.match(response.headers.get('content-type') ?? '', /^application\/json/);
  assert.deepEqual(response.body, { error: 'temporarily_unavailable', error_description: `too many requests; retry after ${seconds} s` });
  return seconds;
}

async function metricsText(server: TestServer): Promise<string> {
  const response = await fetch(`${server.managementUrl}/metrics`);
  assert.equal(response.status, 200);
  return response.text();
}

/** One sample's value; 0 when the series has not been created. */
function sample(text: string, name: string, labels: Record<string, string>): number {
  for (const line of text.split('\n')) {
    const match = /^([^{ ]+)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (match === null || match[1] !== name) continue;
    const present = new Map([...(match[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((m) => [m[1], m[2]]));
    if (Object.entries(labels).every(([key, value]) => present.get(key) === value)) return Number(match[3]);
  }
  return 0;
}

describe('per-client limit on the token endpoint', () => {
  const BURST = 3;
  let server: TestServer;
  let first: ClientBody;
  let second: ClientBody;
  let victim: ClientBody;
  let posting: ClientBody;
  let coded: ClientBody;

  before(async () => {
    server = await startTestServer({
      env: { TOKEN_RATE_LIMIT_PER_CLIENT: NO_REFILL, TOKEN_RATE_LIMIT_PER_CLIENT_BURST: String(BURST), TOKEN_RATE_LIMIT_PER_IP: '0' },
    });
    const token = await adminToken(server, 'admin:clients admin:resource-servers');
    await createResourceServer(server, { identifier: RESOURCE, name: 'Orders', scopes: ['orders:read'] }, token);
    first = await createClient(server, { client_name: 'First', allowed_resources: [RESOURCE] }, token);
    second = await createClient(server, { client_name: 'Second', allowed_resources: [RESOURCE] }, token);
    victim = await createClient(server, { client_name: 'Victim', allowed_resources: [RESOURCE] }, token);
    posting = await createClient(server, { client_name: 'Posting', token_endpoint_auth_method: 'client_secret_post', allowed_resources: [RESOURCE] }, token);
    const created = await adminCall<ClientBody>(
      server,
      'POST',
      '/clients',
      {
        client_name: 'Web app',
        grant_types: ['authorization_code', 'client_credentials'],
        response_types: ['code'],
        redirect_uris: ['https://app.rate-limit.example/callback'],
        allowed_resources: [RESOURCE],
      },
      token,
    );
    assert.equal(created.status, 201, JSON.stringify(created.body));
    coded = created.body;
  });
  after(() => server?.close());

  test('a client over its limit gets 429 with Retry-After; another client is unaffected', async () => {
    const before = sample(await metricsText(server), 'gatehouse_rate_limited_total', { scope: 'client' });
    for (let i = 0; i < BURST; i += 1) assert.equal((await tokenFor(server, first)).status, 200, `request ${i + 1} is within the burst`);
    const retryAfter = assertRateLimited(await tokenFor(server, first));
    assert.ok(retryAfter > 900, `the next request fits in about 1000 s, got ${retryAfter}`);
    assertRateLimited(await tokenFor(server, first));

    const other = await tokenFor(server, second);
    assert.equal(other.status, 200, JSON.stringify(other.body));
    assert.equal(typeof other.body['access_token'], 'string');

    const text = await metricsText(server);
    assert.equal(sample(text, 'gatehouse_rate_limited_total', { scope: 'client' }) - before, 2);
    assert.equal(sample(text, 'gatehouse_rate_limited_total', { scope: 'ip' }), 0, 'TOKEN_RATE_LIMIT_PER_IP=0 disables the per-IP limit');
    assert.ok(sample(text, 'gatehouse_http_requests_total', { method: 'POST', route: '/token', status: '429' }) >= 2, 'request metrics show the 429s');
  });

  test('failed authentication spends nothing: nobody can exhaust a client by naming it', async () => {
    for (let i = 0; i < BURST * 3; i += 1) {
      const response = await post(server, '/token', { grant_type: 'client_credentials' }, { Authorization: basic(victim.client_id, 'not-the-secret') });
      assert.equal(response.status, 401);
      assert.equal(response.body['error'], 'invalid_client');
    }
    for (let i = 0; i < BURST; i += 1) assert.equal((await tokenFor(server, victim)).status, 200);
    assertRateLimited(await tokenFor(server, victim));
    // Authentication still comes first once the client is limited.
    const wrong = await post(server, '/token', { grant_type: 'client_credentials' }, { Authorization: basic(victim.client_id, 'not-the-secret') });
    assert.equal(wrong.status, 401);
  });

  test('client_secret_post clients are counted by their authenticated client_id from the body', async () => {
    const form = { grant_type: 'client_credentials', client_id: posting.client_id, client_secret: posting.client_secret ?? '' };
    for (let i = 0; i < BURST; i += 1) assert.equal((await post(server, '/token', form)).status, 200);
    assertRateLimited(await post(server, '/token', form));
  });

  test('every grant type counts, and a limited client is refused before the grant is examined', async () => {
    const auth = { Authorization: basic(coded.client_id, coded.client_secret ?? '') };
    const exchange = { grant_type: 'authorization_code', code: 'not-a-code', redirect_uri: 'https://app.rate-limit.example/callback', code_verifier: 'x'.repeat(43) };
    assert.equal((await post(server, '/token', exchange, auth)).body['error'], 'invalid_grant');
    for (let i = 1; i < BURST; i += 1) assert.equal((await post(server, '/token', { grant_type: 'client_credentials' }, auth)).status, 200);
    assertRateLimited(await post(server, '/token', exchange, auth));
  });
});

describe('per-IP limit behind a trusted proxy (TRUST_PROXY=true)', () => {
  const BURST = 2;
  let server: TestServer;
  let client: ClientBody;
  let accessToken: string;

  before(async () => {
    server = await startTestServer({
      env: { TRUST_PROXY: 'true', TOKEN_RATE_LIMIT_PER_IP: NO_REFILL, TOKEN_RATE_LIMIT_PER_IP_BURST: String(BURST), TOKEN_RATE_LIMIT_PER_CLIENT: '0' },
    });
    // Setup traffic comes from 127.0.0.1 (no X-Forwarded-For); the tests use addresses of their own.
    const token = await adminToken(server, 'admin:clients admin:resource-servers');
    await createResourceServer(server, { identifier: RESOURCE, name: 'Orders', scopes: ['orders:read'] }, token);
    client = await createClient(server, { client_name: 'Worker', allowed_resources: [RESOURCE] }, token);
    const issued = await tokenFor(server, client, { 'X-Forwarded-For': '192.0.2.200' });
    assert.equal(issued.status, 200);
    accessToken = issued.body['access_token'] as string;
  });
  after(() => server?.close());

  test('counts by the X-Forwarded-For client: one address is limited, another is not', async () => {
    const before = sample(await metricsText(server), 'gatehouse_rate_limited_total', { scope: 'ip' });
    const from = (address: string) => ({ 'X-Forwarded-For': address });
    for (let i = 0; i < BURST; i += 1) assert.equal((await tokenFor(server, client, from('203.0.113.1'))).status, 200);
    assertRateLimited(await tokenFor(server, client, from('203.0.113.1')));
    assert.equal((await tokenFor(server, client, from('203.0.113.2'))).status, 200);

    const text = await metricsText(server);
    assert.equal(sample(text, 'gatehouse_rate_limited_total', { scope: 'ip' }) - before, 1);
    assert.ok(sample(text, 'gatehouse_http_requests_total', { method: 'POST', route: '/token', status: '429' }) >= 1, 'labelled as the provider would');
    assert.equal(sample(text, 'gatehouse_rate_limited_total', { scope: 'client' }), 0, 'TOKEN_RATE_LIMIT_PER_CLIENT=0 disables the per-client limit');
  });

  test('every POST counts, authenticated or not, before the provider reads it', async () => {
    const from = { 'X-Forwarded-For': '203.0.113.3' };
    for (let i = 0; i < BURST; i += 1) {
      const response = await post(server, '/token', { grant_type: 'client_credentials' }, { ...from, Authorization: basic(client.client_id, 'wrong') });
      assert.equal(response.status, 401);
    }
    assertRateLimited(await post(server, '/token', { grant_type: 'client_credentials' }, { ...from, Authorization: basic(client.client_id, client.client_secret ?? '') }));
  });

  test('introspection and revocation are limited too, from the same budget', async () => {
    const from = { 'X-Forwarded-For': '203.0.113.4', Authorization: basic(client.client_id, client.client_secret ?? '') };
    const introspected = await post(server, '/token/introspection', { token: accessToken }, from);
    assert.equal(introspected.status, 200);
    assert.equal(introspected.body['active'], true);
    assert.equal((await post(server, '/token/revocation', { token: 'not-a-token' }, from)).status, 200);
    assertRateLimited(await post(server, '/token/introspection', { token: accessToken }, from));
    assertRateLimited(await post(server, '/token/revocation', { token: 'not-a-token' }, from));
    assertRateLimited(await tokenFor(server, client, { 'X-Forwarded-For': '203.0.113.4' }));
  });

  test('other endpoints and methods are not limited', async () => {
    const from = { 'X-Forwarded-For': '203.0.113.1' }; // limited by the first test
    for (const path of ['/.well-known/openid-configuration', '/jwks']) {
      assert.equal((await fetch(`${server.url}${path}`, { headers: from })).status, 200, path);
    }
    const get = await fetch(`${server.url}/token`, { headers: from });
    assert.notEqual(get.status, 429);
  });
});

describe('per-IP limit without a trusted proxy (TRUST_PROXY=false)', () => {
  let server: TestServer;

  before(async () => {
    server = await startTestServer({ env: { TRUST_PROXY: 'false', TOKEN_RATE_LIMIT_PER_IP: NO_REFILL, TOKEN_RATE_LIMIT_PER_IP_BURST: '2' } });
  });
  after(() => server?.close());

  test('X-Forwarded-For is ignored: a client cannot claim a fresh address per request', async () => {
    const attempt = (i: number) => post(server, '/token', { grant_type: 'client_credentials' }, { 'X-Forwarded-For': `198.51.100.${i}` });
    for (let i = 1; i <= 2; i += 1) assert.notEqual((await attempt(i)).status, 429);
    assertRateLimited(await attempt(3));
    assertRateLimited(await attempt(4));
    assert.equal(sample(await metricsText(server), 'gatehouse_rate_limited_total', { scope: 'ip' }), 2);
  });
});
