import assert from 'node:assert/strict';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import http from 'node:http';
import { after, before, describe, test } from 'node:test';
import { adminCall, adminToken, type AdminServer } from '../support/admin-api.js';
import { formAction, hiddenField } from '../support/cookie-client.js';
import { startTestServer, waitFor, type TestServer } from '../support/server.js';

/**
 * SPEC §1: every URL Gatehouse advertises (discovery, redirects, `Location` headers, the hosted
 * pages' form actions, end-session) starts with ISSUER, whatever Host, X-Forwarded-Host or
 * X-Forwarded-Proto a request carries, with TRUST_PROXY on or off; cookies are Secure whenever
 * ISSUER is https://, though here the hop to Gatehouse is plain HTTP on an ephemeral port.
 *
 * Threat: a client (or a proxy that passes Host through, like Caddy's forward_auth) chooses the
 * origin discovery sends relying parties to, where a password form posts, or downgrades cookies.
 */

const REDIRECT = 'http://127.0.0.1:9/callback';
const PASSWORD = 'correct horse battery staple';
/** What an attacker sends: their own host, plain http, a prefix of their choosing. */
const SPOOFED = {
  host: 'evil.example:8080',
  'x-forwarded-host': 'evil.example',
  'x-forwarded-proto': 'http',
  'x-forwarded-port': '80',
  'x-forwarded-prefix': '/phish',
  forwarded: 'host=evil.example;proto=http',
  'x-forwarded-for': '203.0.113.9',
};

interface RawResponse {
  readonly status: number;
  readonly headers: http.IncomingHttpHeaders;
  readonly body: string;
}

/** A request with exactly these headers (fetch would not let a test choose Host). */
function raw(server: TestServer, method: string, path: string, headers: Record<string, string>, body?: string): Promise<RawResponse> {
  const { port } = new URL(server.url);
  return new Promise((resolve, reject) => {
    const request = http.request(
      {
        host: '127.0.0.1',
        port,
        method,
        path,
        headers: { ...headers, ...(body === undefined ? {} : { 'content-type': 'application/x-www-form-urlencoded', 'content-length': String(Buffer.byteLength(body)) }) },
      },
      (response) => {
        let text = '';
        response.setEncoding('utf8');
        response.on('data', (chunk: string) => (text += chunk));
        response.once('end', () => resolve({ status: response.statusCode ?? 0, headers: response.headers, body: text }));
        response.once('error', reject);
      },
    );
    request.once('error', reject);
    request.end(body);
  });
}

/** Every string in a JSON value that looks like an absolute URL. */
function urlsIn(value: unknown): string[] {
  if (typeof value === 'string') return /^[a-z][a-z0-9+.-]*:\/\//i.test(value) ? [value] : [];
  if (Array.isArray(value)) return value.flatMap(urlsIn);
  if (value !== null && typeof value === 'object') return Object.values(value).flatMap(urlsIn);
  return [];
}

function assertUnderIssuer(url: string | undefined, issuer: string, what: string): void {
  assert.ok(url !== undefined, `${what}: no URL`);
  assert.ok(url === issuer || url.startsWith(`${issuer}/`), `${what}: ${url} does not start with ${issuer}`);
}

/** The path Gatehouse itself serves an advertised URL at: the proxy in front strips ISSUER's path. */
function servedPath(url: string, issuer: string): string {
  assertUnderIssuer(url, issuer, 'served path');
  return url.slice(issuer.length) || '/';
}

function setCookies(response: RawResponse): string[] {
  return response.headers['set-cookie'] ?? [];
}

function assertSecureCookies(response: RawResponse, what: string): void {
  const cookies = setCookies(response);
  assert.ok(cookies.length > 0, `${what}: sets cookies`);
  for (const cookie of cookies) assert.match(cookie, /;\s*secure(;|$)/i, `${what}: ${cookie.split('=')[0]} is not Secure`);
}

/** A cookie jar as a browser at ISSUER would keep it (names only: every request here is for it). */
function remember(jar: Map<string, string>, response: RawResponse): void {
  for (const cookie of setCookies(response)) {
    const [pair] = cookie.split(';');
    const eq = pair!.indexOf('=');
    const value = pair!.slice(eq + 1);
    if (value === '') jar.delete(pair!.slice(0, eq));
    else jar.set(pair!.slice(0, eq), value);
  }
}

const cookieHeader = (jar: Map<string, string>) => [...jar].map(([name, value]) => `${name}=${value}`).join('; ');

const CASES = [
  { trustProxy: 'false', issuer: 'https://id.gatehouse.example' },
  { trustProxy: 'true', issuer: 'https://id.gatehouse.example' },
  { trustProxy: 'true', issuer: 'https://gatehouse.example/tenant-a' },
] as const;

for (const { trustProxy, issuer } of CASES) {
  describe(`ISSUER=${issuer}, TRUST_PROXY=${trustProxy}, spoofed Host and X-Forwarded-*`, () => {
    let server: TestServer;
    let clientId: string;

    before(async () => {
      server = await startTestServer({ env: { ISSUER: issuer, TRUST_PROXY: trustProxy } });
      const admin: AdminServer = { url: server.url, issuer, admin: server.admin };
      const created = await adminCall<{ client_id: string }>(admin, 'POST', '/clients', {
        client_name: 'Shop',
        grant_types: ['authorization_code'],
        redirect_uris: [REDIRECT],
        post_logout_redirect_uris: ['http://127.0.0.1:9/bye'],
        scope: 'openid profile',
      });
      assert.equal(created.status, 201, JSON.stringify(created.body));
      clientId = created.body.client_id;
      const user = await adminCall(admin, 'POST', '/users', { username: 'alice', password: PASSWORD }, await adminToken(admin, 'admin:users'));
      assert.equal(user.status, 201, JSON.stringify(user.body));
    });
    after(() => server?.close());

    test('discovery: the issuer and every endpoint start with ISSUER', async () => {
      const response = await raw(server, 'GET', '/.well-known/openid-configuration', SPOOFED);
      assert.equal(response.status, 200, response.body);
      const document = JSON.parse(response.body) as Record<string, unknown>;
      assert.equal(document['issuer'], issuer);
      const urls = urlsIn(document);
      assert.ok(urls.length >= 6, `the endpoints are advertised: ${urls.join(', ')}`);
      for (const url of urls) assertUnderIssuer(url, issuer, 'discovery');
      for (const key of ['authorization_endpoint', 'token_endpoint', 'jwks_uri', 'userinfo_endpoint', 'end_session_endpoint', 'introspection_endpoint']) {
        assertUnderIssuer(document[key] as string | undefined, issuer, key);
      }
    });

    test('sign-in: redirects, form actions and cookies follow ISSUER; every cookie is Secure', async () => {
      const verifier = randomBytes(32).toString('base64url');
      const query = new URLSearchParams({
        client_id: clientId,
        redirect_uri: REDIRECT,
        response_type: 'code',
        scope: 'openid',
        state: randomBytes(8).toString('hex'),
        code_challenge: createHash('sha256').update(verifier).digest('base64url'),
        code_challenge_method: 'S256',
      });
      const jar = new Map<string, string>();
      const authorize = await raw(server, 'GET', `/auth?${query}`, SPOOFED);
      assert.equal(authorize.status, 303, authorize.body);
      assertSecureCookies(authorize, '/auth');
      const loginUrl = authorize.headers.location;
      assertUnderIssuer(loginUrl, issuer, '/auth Location');
      remember(jar, authorize);

      const loginPage = await raw(server, 'GET', servedPath(loginUrl!, issuer), { ...SPOOFED, cookie: cookieHeader(jar) });
      assert.equal(loginPage.status, 200, loginPage.body);
      const action = formAction(loginPage.body, /\/login$/);
      assertUnderIssuer(action, issuer, 'login form action');
      assertUnderIssuer(formAction(loginPage.body, /\/abort$/), issuer, 'abort form action');

      const login = await raw(
        server,
        'POST',
        servedPath(action!, issuer),
        { ...SPOOFED, cookie: cookieHeader(jar) },
        new URLSearchParams({ csrf: hiddenField(loginPage.body, 'csrf') ?? '', username: 'alice', password: PASSWORD }).toString(),
      );
      assert.equal(login.status, 303, login.body);
      let location = login.headers.location;
      assertUnderIssuer(location, issuer, 'login Location');
      assertSecureCookies(login, 'login (device cookie)');
      remember(jar, login);

      // Resume, consent, resume again: every hop's Location and cookies, until the client's callback.
      for (let hop = 0; hop < 6 && !location!.startsWith(REDIRECT); hop += 1) {
        const path = servedPath(location!, issuer);
        let response = await raw(server, 'GET', path, { ...SPOOFED, cookie: cookieHeader(jar) });
        remember(jar, response);
        for (const cookie of setCookies(response)) assert.match(cookie, /;\s*secure(;|$)/i, `${path}: ${cookie.split('=')[0]} is not Secure`);
        if (response.status === 200) {
          const consent = formAction(response.body, /\/consent$/);
          assertUnderIssuer(consent, issuer, 'consent form action');
          response = await raw(server, 'POST', servedPath(consent!, issuer), { ...SPOOFED, cookie: cookieHeader(jar) }, new URLSearchParams({ csrf: hiddenField(response.body, 'csrf') ?? '' }).toString());
          remember(jar, response);
        }
        assert.ok(response.status === 302 || response.status === 303, `${path}: ${response.status} ${response.body}`);
        location = response.headers.location;
        if (!location!.startsWith(REDIRECT)) assertUnderIssuer(location, issuer, `${path} Location`);
      }
      const callback = new URL(location!);
      assert.equal(`${callback.origin}${callback.pathname}`, REDIRECT);
      assert.equal(callback.searchParams.get('iss'), issuer);
      assert.ok(jar.has('_session'), 'signed in: a session cookie');

      // End-session: the confirmation form posts to ISSUER.
      const logout = await raw(server, 'GET', `/session/end?client_id=${encodeURIComponent(clientId)}`, { ...SPOOFED, cookie: cookieHeader(jar) });
      assert.equal(logout.status, 200, logout.body);
      assertUnderIssuer(formAction(logout.body, /./), issuer, 'end-session form action');
    });

    test(`the client address: X-Forwarded-For ${trustProxy === 'true' ? 'is' : 'is not'} honoured`, async () => {
      const requestId = `spoof-${randomUUID()}`;
      assert.equal((await raw(server, 'GET', '/healthz', { ...SPOOFED, 'x-request-id': requestId })).status, 200);
      const line = await waitFor(() => server.logs.lines.map((text) => JSON.parse(text) as { reqId?: string; ip?: string }).find((entry) => entry.reqId === requestId));
      if (trustProxy === 'true') assert.equal(line.ip, '203.0.113.9');
      else assert.match(line.ip ?? '', /127\.0\.0\.1$/);
    });
  });
}
