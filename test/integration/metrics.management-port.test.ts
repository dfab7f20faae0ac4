import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startTestServer, type TestServer } from '../support/server.js';

// SPEC §1 MANAGEMENT_PORT, §6: /metrics (resource servers, admin activity, lockouts) is served on
// the management listener only; the public port answers it 404. Both serve /healthz and /readyz.

describe('with a management port', () => {
  let server: TestServer;

  before(async () => {
    server = await startTestServer();
  });
  after(() => server?.close());

  test('the public port answers /metrics with 404, whatever the method or spelling', async () => {
    for (const path of ['/metrics', '/metrics/', '/METRICS', '/metrics?format=prometheus']) {
      const response = await fetch(`${server.url}${path}`);
      const body = await response.text();
      assert.equal(response.status, 404, `${path} on the public port`);
      assert.doesNotMatch(body, /gatehouse_/, `${path} shows no metric`);
    }
    assert.equal((await fetch(`${server.url}/metrics`, { method: 'HEAD' })).status, 404);
  });

  test('the management port serves /metrics as Prometheus text', async () => {
    assert.ok(server.managementUrl !== undefined, 'a management listener');
    assert.notEqual(new URL(server.managementUrl).port, new URL(server.url).port);
    const response = await fetch(`${server.managementUrl}/metrics`);
    assert.equal(response.status, 200);
    assert.match(response.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
    assert.equal(response.headers.get('cache-control'), 'no-store');
    const text = await response.text();
    assert.match(text, /^# TYPE gatehouse_http_requests_total counter$/m);
    assert.match(text, /^# TYPE gatehouse_lockouts_total counter$/m);
  });

  test('both ports serve /healthz and /readyz', async () => {
    for (const base of [server.url, server.managementUrl]) {
      const health = await fetch(`${base}/healthz`);
      assert.equal(health.status, 200, `${base}/healthz`);
      assert.deepEqual(await health.json(), { status: 'ok' });
      const ready = await fetch(`${base}/readyz`);
      assert.equal(ready.status, 200, `${base}/readyz`);
      assert.equal(((await ready.json()) as { status?: unknown }).status, 'ready');
    }
  });

  test('the management port serves nothing else', async () => {
    for (const path of ['/.well-known/openid-configuration', '/jwks', '/token', '/admin/v1/clients', '/interaction/x', '/static/gatehouse.css']) {
      assert.equal((await fetch(`${server.managementUrl}${path}`)).status, 404, `${path} on the management port`);
    }
    assert.equal((await fetch(`${server.managementUrl}/metrics`, { method: 'POST' })).status, 405);
  });
});

describe('MANAGEMENT_PORT=0', () => {
  let server: TestServer;

  before(async () => {
    server = await startTestServer({ env: { MANAGEMENT_PORT: '0' } });
  });
  after(() => server?.close());

  test('opens no second listener, and /metrics stays off the public port', async () => {
    assert.equal(server.managementUrl, undefined);
    assert.equal(server.running.managementServer, undefined);
    assert.equal((await fetch(`${server.url}/metrics`)).status, 404);
    assert.equal((await fetch(`${server.url}/healthz`)).status, 200);
  });
});
