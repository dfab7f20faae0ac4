import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startTestServer, type TestServer } from '../support/server.js';

// SPEC §6 metrics; the headers every response carries; hosted error page and stylesheet.

let server: TestServer;

before(async () => {
  server = await startTestServer();
});
after(() => server?.close());

async function issueToken(): Promise<Response> {
  return fetch(`${server.url}/token`, {
    method: 'POST',
    headers: {
      authorization: `Basic ${Buffer.from(`${server.admin.clientId}:${server.admin.clientSecret}`).toString('base64')}`,
      'content-type': 'application/x-www-form-urlencoded',
    },
    body: 'grant_type=client_credentials&scope=admin:clients',
  });
}

/** The value of one sample, e.g. sample(text, 'gatehouse_tokens_issued_total', { grant_type: 'client_credentials' }). */
function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    const match = /^[^{ ]+(?:\{(.*)\})? (\S+)$/.exec(line);
    if (match === null) continue;
    const present = new Map([...(match[1] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((m) => [m[1], m[2]]));
    if (Object.entries(labels).every(([key, value]) => present.get(key) === value)) return Number(match[2]);
  }
  return undefined;
}

describe('/metrics', () => {
  let text: string;
  let contentType: string;

  before(async () => {
    assert.equal((await fetch(`${server.url}/healthz`)).status, 200);
    assert.equal((await issueToken()).status, 200);
    assert.equal((await fetch(`${server.url}/no-such-page-4711`)).status, 404);
    // Served on the management listener only (test/integration/metrics.management-port.test.ts).
    const response = await fetch(`${server.managementUrl}/metrics`);
    assert.equal(response.status, 200);
    contentType = response.headers.get('content-type') ?? '';
    text = await response.text();
  });

  test('is Prometheus text exposition', () => {
    assert.match(contentType, /^text\/plain; version=0\.0\.4/);
    assert.match(text, /^# HELP gatehouse_http_requests_total /m);
    assert.match(text, /^# TYPE gatehouse_http_requests_total counter$/m);
  });

  test('counts requests by route template and status', () => {
    assert.equal(sample(text, 'gatehouse_http_requests_total', { method: 'GET', route: '/healthz', status: '200' }), 1);
    assert.ok((sample(text, 'gatehouse_http_requests_total', { method: 'POST', status: '200' }) ?? 0) >= 1, 'the token request is counted');
    assert.ok(sample(text, 'gatehouse_http_request_duration_seconds_count', { route: '/healthz', status: '200' }) === 1, 'latency histogram');
  });

  test('never labels a request with its raw path', () => {
    assert.doesNotMatch(text, /no-such-page-4711/);
    assert.ok(sample(text, 'gatehouse_http_requests_total', { status: '404' }) !== undefined);
  });

  test('counts tokens issued by grant type', () => {
    assert.equal(sample(text, 'gatehouse_tokens_issued_total', { grant_type: 'client_credentials' }), 1);
  });

  test('reports pool usage and process metrics', () => {
    assert.ok(sample(text, 'gatehouse_db_pool_connections') !== undefined, 'gatehouse_db_pool_connections');
    assert.ok(sample(text, 'gatehouse_db_pool_idle') !== undefined, 'gatehouse_db_pool_idle');
    assert.ok(sample(text, 'gatehouse_db_pool_waiting') !== undefined, 'gatehouse_db_pool_waiting');
    assert.ok((sample(text, 'gatehouse_process_cpu_seconds_total') ?? -1) >= 0, 'process CPU');
    assert.ok((sample(text, 'gatehouse_process_start_time_seconds') ?? 0) > 0, 'process start time');
    assert.ok((sample(text, 'gatehouse_nodejs_heap_size_used_bytes') ?? 0) > 0, 'heap usage');
  });
});

describe('security headers', () => {
  const cases: readonly { readonly name: string; readonly path: string; readonly status: number; readonly type: RegExp }[] = [
    { name: 'JSON', path: '/healthz', status: 200, type: /^application\/json/ },
    { name: 'JSON from the provider', path: '/.well-known/openid-configuration', status: 200, type: /^application\/json/ },
    { name: 'HTML error page', path: '/auth?client_id=nope', status: 400, type: /^text\/html/ },
    { name: 'not found', path: '/no-such-page', status: 404, type: /./ },
    { name: 'stylesheet', path: '/static/gatehouse.css', status: 200, type: /^text\/css/ },
    { name: 'console script', path: '/static/console.js', status: 200, type: /^text\/javascript/ },
  ];
  for (const { name, path, status, type } of cases) {
    test(`are set on ${name} responses (${path})`, async () => {
      const response = await fetch(`${server.url}${path}`, { redirect: 'manual' });
      assert.equal(response.status, status);
      assert.match(response.headers.get('content-type') ?? '', type);
      const csp = response.headers.get('content-security-policy') ?? '';
      assert.match(csp, /frame-ancestors 'none'/);
      assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/);
      assert.equal(response.headers.get('x-content-type-options'), 'nosniff');
      assert.ok(response.headers.get('referrer-policy'), 'Referrer-Policy');
      assert.ok(response.headers.get('x-request-id'), 'X-Request-Id');
    });
  }
});

describe('hosted error page', () => {
  test('a bad /auth request renders our template with the request id and no internals', async () => {
    const response = await fetch(`${server.url}/auth?client_id=nope&response_type=code&scope=openid`, {
      headers: { 'x-request-id': 'ops-error-page-1' },
      redirect: 'manual',
    });
    assert.equal(response.status, 400);
    assert.match(response.headers.get('content-type') ?? '', /^text\/html/);
    const html = await response.text();
    assert.match(html, /^<!DOCTYPE html>/);
    assert.match(html, /<link rel="stylesheet" href="\/static\/gatehouse\.css">/, 'the layout from views/');
    assert.match(html, /ops-error-page-1/, 'the request id is shown for support');
    assert.doesNotMatch(html, /<style|<script|style=/i, 'nothing the CSP would block');
    assert.doesNotMatch(html, /\bat [\w.<>]+ \(|node_modules|\.js:\d+|Error:/, 'no stack trace');
  });
});

describe('/static/gatehouse.css', () => {
  test('is served as text/css with an ETag and revalidates to 304', async () => {
    const first = await fetch(`${server.url}/static/gatehouse.css`);
    assert.equal(first.status, 200);
    assert.match(first.headers.get('content-type') ?? '', /^text\/css/);
    const etag = first.headers.get('etag');
    assert.ok(etag !== null && etag !== '', 'ETag');
    assert.ok((await first.text()).length > 0);

    const again = await fetch(`${server.url}/static/gatehouse.css`, { headers: { 'if-none-match': etag } });
    assert.equal(again.status, 304);
    assert.equal(await again.text(), '');
    assert.equal(again.headers.get('etag'), etag);

    const stale = await fetch(`${server.url}/static/gatehouse.css`, { headers: { 'if-none-match': '"not-the-etag"' } });
    assert.equal(stale.status, 200);
    await stale.arrayBuffer();
  });
});
