import assert from 'node:assert/strict';
import { request } from 'node:http';
import { after, before, describe, test } from 'node:test';
import { adminCall, adminToken } from '../support/admin-api.js';
import { startGatewayScenario, type GatewayScenario } from '../support/gateway.js';
import { IDENTITY_HEADERS } from '../../src/gateway/decide.js';

/**
 * SPEC §7 for the two gateways Debian does not ship, as contract tests: requests shaped exactly
 * as each sends its check, against a real Gatehouse, and the answers each acts on.
 *
 * Envoy's HTTP ext_authz (envoy.filters.http.ext_authz, http_service): the check keeps the
 * original method; its path is `path_prefix` + the original path and query; Host is the
 * original `:authority`; Content-Length is 0 (no with_request_body); Authorization and the
 * `allowed_headers` come along, and Envoy adds its own x-envoy-* and x-request-id. A 200 lets
 * the request through with `allowed_upstream_headers` overwriting the request's own; anything
 * else goes to the client as is, with `allowed_client_headers`.
 *
 * Traefik's forwardAuth: always a GET to `address` (without `preserveRequestMethod`), the
 * original headers copied, X-Forwarded-Method/-Proto/-Host/-Uri/-For describing the original
 * request. A 2xx copies `authResponseHeaders` onto the upstream request; otherwise Traefik
 * returns the auth answer, with its Location resolved against `address` (Go's
 * Response.Location), so a relative Location would send the browser to Gatehouse's address.
 */

const ORDERS = 'https://orders.gateway-contract.test';

interface Answer {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
}

function send(base: string, method: string, path: string, headers: Record<string, string>): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(new URL(path, base), { method, headers, agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('gateway contracts for Envoy ext_authz and Traefik forwardAuth', () => {
  let scenario: GatewayScenario;
  let host: string;

  before(async () => {
    scenario = await startGatewayScenario(ORDERS);
    host = `127.0.0.1:${scenario.port}`;
    const admin = await adminToken(scenario.server, 'admin:gateway');
    const web = await adminCall(scenario.server, 'POST', '/gateway-routes', { host, path_prefix: '/web', resource_server: ORDERS, required_scopes: [], browser_sign_in: true }, admin);
    assert.equal(web.status, 201);
  });
  after(() => scenario?.close());

  describe('Envoy ext_authz (HTTP service, path_prefix /gateway/ext-authz)', () => {
    /** A check request as Envoy builds it for `method original`, with the headers allowed through. */
    const envoyCheck = (method: string, original: string, allowed: Record<string, string> = {}) =>
      send(scenario.server.url, method, `/gateway/ext-authz${original}`, {
        host,
        'content-length': '0',
        'x-forwarded-proto': 'http',
        'x-request-id': '6f1c1b3e-2f7a-4c51-9a53-5a4a4f0f6f10',
        'x-envoy-expected-rq-timeout-ms': '1000',
        'x-envoy-internal': 'true',
        ...allowed,
      });

    test('a token with the route scope: 200 with every identity header (allowed_upstream_headers overwrite the client’s own)', async () => {
      const answer = await envoyCheck('GET', '/orders/42?x=1', { authorization: `Bearer ${await scenario.token('orders:read')}`, 'x-gatehouse-subject': 'admin' });
      assert.equal(answer.status, 200);
      for (const name of IDENTITY_HEADERS) assert.equal(typeof answer.headers[name.toLowerCase()], 'string', `${name} is answered`);
      assert.equal(answer.headers['x-gatehouse-subject'], scenario.clientId);
      assert.equal(answer.headers['x-gatehouse-scope'], 'orders:read');
    });

    test('the method is the original one: a POST needs orders:write, a DELETE no route covers is denied', async () => {
      const read = { authorization: `Bearer ${await scenario.token('orders:read')}` };
      const refused = await envoyCheck('POST', '/orders', read);
      assert.equal(refused.status, 403);
      assert.match(String(refused.headers['www-authenticate']), /error="insufficient_scope"/);
      assert.equal((await envoyCheck('POST', '/orders', { authorization: `Bearer ${await scenario.token('orders:write')}` })).status, 200);
      assert.equal((await envoyCheck('DELETE', '/orders/1', read)).status, 403);
      assert.equal((await envoyCheck('PATCH', '/orders/1', read)).status, 403);
    });

    test('no token: 401 with the challenge (allowed_client_headers carries it to the client)', async () => {
      const answer = await envoyCheck('GET', '/orders/1');
      assert.equal(answer.status, 401);
      assert.equal(answer.headers['www-authenticate'], 'Bearer');
    });

    test('the path is judged where it lands, the bare prefix is "/", and a missing or bad Host is a 400', async () => {
      const read = { authorization: `Bearer ${await scenario.token('orders:read')}` };
      assert.equal((await envoyCheck('GET', '/orders/%2e%2e/billing', read)).status, 403);
      assert.equal((await envoyCheck('GET', '/billing/../orders/1', read)).status, 200);
      assert.equal((await envoyCheck('GET', '', read)).status, 403, 'the bare prefix checks "/", which no route covers');
      assert.equal((await envoyCheck('GET', '//evil.test/orders', read)).status, 403);
      assert.equal((await send(scenario.server.url, 'GET', '/gateway/ext-authz/orders', { host: 'a b', ...read })).status, 400);
      assert.equal((await envoyCheck('GET', '/orders', { ...read, 'x-forwarded-proto': 'gopher' })).status, 400);
      assert.equal((await send(scenario.server.url, 'GET', '/gateway/ext-authzorders', { host, ...read })).status, 404, 'not the door');
    });

    test('a browser without a session is redirected to sign in on the protected host: 302 for GET, 303 for a POST', async () => {
      const get = await envoyCheck('GET', '/web/page?a=1', { accept: 'text/html,application/xhtml+xml' });
      assert.equal(get.status, 302);
      assert.equal(get.headers.location, `http://${host}/.gatehouse/sign-in?rd=${encodeURIComponent('/web/page?a=1')}`);
      const post = await envoyCheck('POST', '/web/form', { accept: 'text/html' });
      assert.equal(post.status, 303);
      assert.equal((await envoyCheck('GET', '/web/page', { accept: 'application/json' })).status, 401);
    });
  });

  describe('Traefik forwardAuth (address …/gateway/forward-auth)', () => {
    /** Traefik's check: a GET to the address, the original headers copied, X-Forwarded-* describing the original. */
    const traefikCheck = (method: string, uri: string, original: Record<string, string> = {}) =>
      send(scenario.server.url, 'GET', '/gateway/forward-auth', {
        host: new URL(scenario.server.url).host,
        'user-agent': 'Mozilla/5.0',
        'accept-encoding': 'gzip',
        ...original,
        'x-forwarded-method': method,
        'x-forwarded-proto': 'https',
        'x-forwarded-host': host,
        'x-forwarded-uri': uri,
        'x-forwarded-for': '198.51.100.7',
      });

    test('allowed with the identity headers authResponseHeaders copies; the original method counts, not the GET', async () => {
      const allowed = await traefikCheck('GET', '/orders/7', { authorization: `Bearer ${await scenario.token('orders:read')}` });
      assert.equal(allowed.status, 200);
      assert.equal(allowed.headers['x-gatehouse-client-id'], scenario.clientId);
      const post = await traefikCheck('POST', '/orders', { authorization: `Bearer ${await scenario.token('orders:read')}` });
      assert.equal(post.status, 403);
      assert.match(String(post.headers['www-authenticate']), /scope="orders:write"/);
      // `//host/orders` is a path the upstream sees as such, not /orders on another host.
      assert.equal((await traefikCheck('GET', '//evil.test/orders', { authorization: `Bearer ${await scenario.token('orders:read')}` })).status, 403);
    });

    test('no token: 401 Bearer; a browser gets an absolute Location on the protected host (Traefik would resolve a relative one against Gatehouse)', async () => {
      assert.equal((await traefikCheck('GET', '/orders/7')).headers['www-authenticate'], 'Bearer');
      const browser = await traefikCheck('PUT', '/web/x', { accept: 'text/html' });
      assert.equal(browser.status, 303);
      assert.equal(browser.headers.location, `https://${host}/.gatehouse/sign-in?rd=%2Fweb%2Fx`);
    });
  });
});
