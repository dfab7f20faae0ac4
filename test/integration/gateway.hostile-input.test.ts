import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import fc from 'fast-check';
import { adminCall, adminToken, clientCredentials, createClient, createResourceServer } from '../support/admin-api.js';
import { exchange, headerSafe, hostileText, METHODS, mostly, oddText, rawForUrl } from '../support/hostile-input.js';
import { startTestServer, type TestServer } from '../support/server.js';

/**
 * SPEC §7 "Bad input": whatever a gateway (or someone who reaches the doors) sends, the answer
 * is a clear 4xx, never a 5xx and never an allow. Missing, repeated or malformed forwarded
 * headers, unknown hosts, odd paths, repeated, oversized or foreign Authorization headers,
 * cookies that are not Gatehouse's, and the `/.gatehouse/` paths with odd queries. The one
 * route on the protected host needs a scope no token here has, and is a browser route, so a
 * cookie or token that slipped through would show as a 200.
 */

const SEED = Number(process.env['FUZZ_SEED'] ?? Date.now() % 1_000_000);
const RUNS = Number(process.env['GATEWAY_FUZZ_RUNS'] ?? 400);
const HOST = 'shop.fuzz.test';
const RESOURCE = 'https://shop.fuzz.test/api';

interface DoorRequest {
  readonly method: string;
  readonly path: string;
  readonly headers: Record<string, string>;
}

describe('gateway doors under hostile input', () => {
  let server: TestServer;
  let port: string;
  /** A real token for the route's audience, without the scope the route needs. */
  let lesserToken: string;

  before(async () => {
    server = await startTestServer();
    port = new URL(server.url).port;
    const admin = await adminToken(server, 'admin:clients admin:resource-servers admin:gateway');
    await createResourceServer(server, { identifier: RESOURCE, name: 'Shop', scopes: ['shop:read', 'shop:admin'] }, admin);
    const client = await createClient(server, { client_name: 'Fuzz', allowed_resources: [RESOURCE] }, admin);
    const issued = await clientCredentials(server, client.client_id, client.client_secret!, { resource: RESOURCE, scope: 'shop:read' });
    lesserToken = issued.body['access_token'] as string;
    const route = await adminCall(server, 'POST', '/gateway-routes', { host: HOST, path_prefix: '/', resource_server: RESOURCE, required_scopes: ['shop:admin'], browser_sign_in: true }, admin);
    assert.equal(route.status, 201);
  });
  after(() => server.close());

  const send = (request: DoorRequest) => exchange(port, { ...request, body: undefined, chunked: false }, 10_000);

  test('deterministic cases: each a 4xx', async () => {
    const forwarded = { 'x-forwarded-method': 'GET', 'x-forwarded-host': HOST, 'x-forwarded-uri': '/a' };
    const cases: (DoorRequest & { readonly expect: number })[] = [
      { method: 'GET', path: '/gateway/forward-auth', headers: {}, expect: 400 },
      { method: 'GET', path: '/gateway/auth-request', headers: {}, expect: 400 },
      { method: 'GET', path: '/gateway/auth-request', headers: { 'x-original-method': 'GET', 'x-original-url': `ftp://${HOST}/a` }, expect: 400 },
      { method: 'GET', path: '/gateway/auth-request', headers: { 'x-original-method': 'GET', 'x-original-url': `https://u:p@${HOST}/a` }, expect: 400 },
      { method: 'GET', path: '/gateway/forward-auth', headers: { ...forwarded, 'x-forwarded-uri': 'a' }, expect: 400 },
      { method: 'GET', path: '/gateway/forward-auth', headers: { ...forwarded, 'x-forwarded-host': 'a b' }, expect: 400 },
      { method: 'GET', path: '/gateway/forward-auth', headers: { ...forwarded, 'x-forwarded-method': 'G E T' }, expect: 400 },
      { method: 'GET', path: '/gateway/forward-auth', headers: { ...forwarded, 'x-forwarded-host': 'unknown.fuzz.test' }, expect: 403 },
      { method: 'GET', path: '/gateway/forward-auth', headers: { ...forwarded, authorization: 'Basic YTpi' }, expect: 401 },
      { method: 'GET', path: '/gateway/forward-auth', headers: { ...forwarded, authorization: `Bearer ${lesserToken}` }, expect: 403 },
      { method: 'GET', path: '/gateway/forward-auth', headers: { ...forwarded, authorization: `Bearer ${lesserToken}x` }, expect: 401 },
      { method: 'GET', path: '/gateway/forward-auth', headers: { ...forwarded, authorization: `Bearer ${'a'.repeat(12_000)}` }, expect: 401 },
      // Past Node's 16 KB of headers: refused before any of Gatehouse's code runs.
      { method: 'GET', path: '/gateway/forward-auth', headers: { ...forwarded, authorization: `Bearer ${'a'.repeat(20_000)}` }, expect: 431 },
      { method: 'GET', path: '/gateway/forward-auth', headers: { ...forwarded, cookie: `gatehouse=${'a'.repeat(9_000)}; __Host-gatehouse=x` }, expect: 401 },
      { method: 'GET', path: '/gateway/forward-auth', headers: { ...forwarded, cookie: 'gatehouse=a.b.c.d.e', accept: 'text/html' }, expect: 302 },
      { method: 'GET', path: '/.gatehouse/sign-in?rd=%2F%2Fevil', headers: { host: HOST }, expect: 400 },
      { method: 'GET', path: '/.gatehouse/callback?state=%00%00%00%00%00%00%00%00%00%00%00%00&code=x', headers: { host: HOST }, expect: 400 },
    ];
    for (const { expect, ...request } of cases) {
      const answer = await send(request);
      assert.equal(answer.status, expect, JSON.stringify(request).slice(0, 300));
    }
    // Two Authorization headers: node's raw headers keep both; the policy refuses the request.
    const twice = await fetch(`${server.url}/gateway/forward-auth`, { headers: [...Object.entries(forwarded), ['authorization', `Bearer ${lesserToken}`], ['authorization', 'Bearer x']] });
    assert.equal(twice.status, 401);
    assert.match(twice.headers.get('www-authenticate') ?? '', /invalid_request/);
  });

  test(`fuzzed requests: never a 5xx, never an allow (seed ${SEED}, ${RUNS} runs)`, async () => {
    const header = (values: fc.Arbitrary<string>) => fc.option(values.map(headerSafe), { nil: undefined, freq: 4 });
    const host = fc.oneof(fc.constant(HOST), fc.constant(`${HOST}:443`), fc.constant(`*.${HOST}`), oddText, fc.constant(`${HOST}@evil`));
    const uri = fc.oneof(
      fc.constantFrom('/', '/a', '/a/../b', '/%2e%2e/x', '//x', '/a?b=c', '/a#x', '/\\x', 'x', '*', `https://${HOST}/a`),
      hostileText.map((text) => `/${rawForUrl(text)}`),
    );
    const authorization = fc.oneof(
      fc.constant(`Bearer ${lesserToken}`),
      fc.constantFrom('Bearer', 'Bearer ', 'bearer x', 'DPoP x', 'Basic Og==', `Bearer ${lesserToken} x`, `Bearer ${lesserToken.split('.').slice(0, 2).join('.')}.`),
      oddText.map((text) => `Bearer ${text}`),
    );
    const cookie = fc.oneof(fc.constantFrom('gatehouse=', 'gatehouse=a.b.c.d.e', '__Host-gatehouse=eyJ.eyJ.x.y.z', 'gatehouse'), oddText.map((text) => `gatehouse=${text}`));
    const door = fc.record({
      method: fc.constantFrom(...METHODS.filter((m) => m !== 'HEAD')),
      path: fc.constantFrom('/gateway/forward-auth', '/gateway/auth-request', '/gateway/forward-auth?x=1'),
      forwardedMethod: header(mostly('GET', fc.oneof(fc.constantFrom(...METHODS), oddText))),
      forwardedHost: header(host),
      forwardedUri: header(uri),
      originalUrl: header(fc.oneof(uri.map((u) => `https://${HOST}${u.startsWith('/') ? u : `/${u}`}`), oddText)),
      authorization: header(authorization),
      cookie: header(cookie),
      accept: header(fc.constantFrom('text/html', '*/*', 'application/json', 'text/html;q=0')),
    });
    const signInPaths = fc.record({
      method: fc.constantFrom('GET', 'POST', 'PUT', 'DELETE'),
      path: fc.tuple(fc.constantFrom('/.gatehouse/sign-in', '/.gatehouse/callback', '/.gatehouse/sign-out', '/.gatehouse/x'), fc.string({ maxLength: 40 })).map(([p, q]) => `${p}?${rawForUrl(q)}`),
      host: header(host),
      cookie: header(cookie),
      proto: header(fc.constantFrom('https', 'http', 'https, http', 'gopher', '')),
    });
    await fc.assert(
      fc.asyncProperty(fc.oneof({ weight: 4, arbitrary: door }, { weight: 1, arbitrary: signInPaths }), async (input) => {
        const headers: Record<string, string> = {};
        const set = (name: string, value: string | undefined) => {
          if (value !== undefined) headers[name] = value;
        };
        if ('forwardedMethod' in input) {
          set('x-forwarded-method', input.forwardedMethod);
          set('x-forwarded-host', input.forwardedHost);
          set('x-forwarded-uri', input.forwardedUri);
          set('x-original-method', input.forwardedMethod);
          set('x-original-url', input.originalUrl);
          set('authorization', input.authorization);
          set('accept', input.accept);
        } else {
          set('host', input.host);
          set('x-forwarded-proto', input.proto);
        }
        set('cookie', input.cookie);
        const answer = await send({ method: input.method, path: input.path, headers });
        const shown = JSON.stringify({ ...input, status: answer.status, body: answer.text.slice(0, 200) });
        assert.ok(answer.status >= 300 && answer.status < 500, shown);
      }),
      { seed: SEED, numRuns: RUNS, includeErrorInReport: true },
    );
  });
});
