import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { describe, test } from 'node:test';
import { EncryptJWT } from 'jose';
import type { GatewayRouteRow } from '../../src/db/gateway-routes.js';
import { createSealedCookies } from '../../src/http/sealed-cookies.js';
import { safeReturnPath } from '../../src/gateway/browser/sign-in.js';
import { decide, type GatewayPerson, type GatewayPolicyDeps, type GatewayToken } from '../../src/gateway/decide.js';
import { gatewayCallbackAllowed, gatewayClientMetadata } from '../../src/oidc/gateway-client.js';

/**
 * The pieces of SPEC §7's browser sign-in that need no server: where the gateway's client may
 * send codes, which return paths are the protected host's own, what the sealed cookies open to,
 * and how the policy treats a browser session.
 */

describe('gateway client redirect URIs', () => {
  const hosts = ['shop.example.test', '*.apps.example.test', '*.ports.example.test:8443', '127.0.0.1:8080', '[::1]:9443'];
  const allowed = (uri: string) => gatewayCallbackAllowed(uri, hosts);

  test('the callback on a routed host, or under a wildcard (with its port), in either scheme', () => {
    for (const uri of [
      'https://shop.example.test/.gatehouse/callback',
      'http://shop.example.test/.gatehouse/callback',
      'https://a.apps.example.test/.gatehouse/callback',
      'https://a.b.apps.example.test/.gatehouse/callback',
      'https://x.ports.example.test:8443/.gatehouse/callback',
      'http://127.0.0.1:8080/.gatehouse/callback',
      'https://[::1]:9443/.gatehouse/callback',
    ]) {
      assert.equal(allowed(uri), true, uri);
    }
  });

  test('nothing else: other hosts, paths, ports, a query, userinfo, the bare wildcard suffix, other schemes', () => {
    for (const uri of [
      'https://evil.test/.gatehouse/callback',
      'https://shop.example.test.evil.test/.gatehouse/callback',
      'https://shop.example.test/.gatehouse/callback?x=1',
      'https://shop.example.test/.gatehouse/callback#x',
      'https://shop.example.test/.gatehouse/callback/',
      'https://shop.example.test/.gatehouse/sign-in',
      'https://shop.example.test:444/.gatehouse/callback',
      'https://user@shop.example.test/.gatehouse/callback',
      'https://apps.example.test/.gatehouse/callback',
      'https://xapps.example.test/.gatehouse/callback',
      'https://x.ports.example.test/.gatehouse/callback',
      'https://x.ports.example.test:9999/.gatehouse/callback',
      'https://SHOP.example.test/.gatehouse/callback',
      'https://shop.example.test/.gatehouse/%63allback',
      'javascript://shop.example.test/.gatehouse/callback',
      'not a url',
    ]) {
      assert.equal(allowed(uri), false, uri);
    }
  });

  test('the client exists only with browser routes, and its secret matches no stored hash', () => {
    assert.equal(gatewayClientMetadata([]), undefined);
    const metadata = gatewayClientMetadata(['*.apps.example.test'])!;
    assert.deepEqual(metadata['grant_types'], ['authorization_code']);
    assert.deepEqual(metadata['redirect_uris'], ['https://gateway.invalid/.gatehouse/callback'], 'only wildcards: a placeholder that never resolves');
    assert.match(String(metadata['client_secret']), /^unusable:/);
  });
});

describe('return paths after sign-in', () => {
  test('a path on the same host, kept with its query', () => {
    assert.equal(safeReturnPath('/'), '/');
    assert.equal(safeReturnPath('/app/a?b=1&c=%2F'), '/app/a?b=1&c=%2F');
    assert.equal(safeReturnPath('/app/../x'), '/x');
  });
  test('never another origin, control characters or something that is no path', () => {
    for (const rd of ['//evil.test', '/\\evil.test', '\\\\evil.test', 'https://evil.test/', 'evil', '', '/a\r\nSet-Cookie: x', '/a\\b', `/${'a'.repeat(3000)}`, 42, undefined, ['/a']]) {
      assert.equal(safeReturnPath(rd), undefined, String(rd));
    }
  });
});

describe('sealed gateway cookies', () => {
  const secret = randomBytes(32);
  const cookies = createSealedCookies(secret);
  const exp = Math.floor(Date.now() / 1000) + 600;
  const session = { sub: 'person-1', sid: 'session-1', acr: 'urn:gatehouse:acr:mfa', amr: ['pwd', 'otp'], authTime: 1_700_000_000, exp };

  test('opens on its own host only, to what was sealed', async () => {
    const sealed = await cookies.sealSession(session, 'shop.example.test');
    assert.deepEqual(await cookies.openSession(sealed, 'shop.example.test'), session);
    assert.equal(await cookies.openSession(sealed, 'other.example.test'), undefined);
    assert.equal(sealed.includes('person-1'), false);
  });

  test('a pending sign-in is no session (and the other way round); another deployment’s, a tampered or an expired one opens to nothing', async () => {
    const pending = await cookies.sealPending({ state: 's'.repeat(43), verifier: 'v'.repeat(43), rd: '/x', exp }, 'shop.example.test');
    assert.equal(await cookies.openSession(pending, 'shop.example.test'), undefined);
    assert.equal((await cookies.openPending(pending, 'shop.example.test'))?.rd, '/x');
    const sealed = await cookies.sealSession(session, 'shop.example.test');
    assert.equal(await cookies.openPending(sealed, 'shop.example.test'), undefined);
    assert.equal(await createSealedCookies(randomBytes(32)).openSession(sealed, 'shop.example.test'), undefined);
    const parts = sealed.split('.');
    parts[3] = `${parts[3]!.slice(0, -2)}${parts[3]!.endsWith('AA') ? 'BB' : 'AA'}`;
    assert.equal(await cookies.openSession(parts.join('.'), 'shop.example.test'), undefined);
    const expired = await cookies.sealSession({ ...session, exp: Math.floor(Date.now() / 1000) - 1 }, 'shop.example.test');
    assert.equal(await cookies.openSession(expired, 'shop.example.test'), undefined);
  });

  test('a JWE under a key that is not the derived one (the raw secret) does not open', async () => {
    const forged = await new EncryptJWT({ sub: 'admin', sid: 'x' })
      .setProtectedHeader({ alg: 'dir', enc: 'A256GCM', typ: 'gatehouse-gateway-session+jwt' })
      .setAudience('shop.example.test')
      .setExpirationTime(exp)
      .encrypt(new Uint8Array(secret));
    assert.equal(await cookies.openSession(forged, 'shop.example.test'), undefined);
  });
});

describe('the policy with a browser session', () => {
  const people = new Map<string, GatewayPerson>([['person-1', { username: 'pat', email: null, name: null, roles: ['staff'] }]]);
  const deps: GatewayPolicyDeps = {
    verify: () => Promise.reject(new Error('no token in these cases')),
    person: (sub) => Promise.resolve(people.get(sub)),
    mfaAcr: 'urn:gatehouse:acr:mfa',
    upstreamToken: () => Promise.reject(new Error('no exchange routes in these cases')),
  };
  const browserRoute = (overrides: Partial<GatewayRouteRow> = {}): GatewayRouteRow => ({
    id: randomUUID(),
    seq: '1',
    host: 'shop.example.test',
    path_prefix: '/',
    methods: null,
    resource_server: 'https://shop.example.test/api',
    required_scopes: ['shop:read'],
    required_roles: ['staff'],
    require_mfa: false,
    anonymous: false,
    browser_sign_in: true,
    upstream_token: 'pass',
    upstream_resource_server: null,
    identity_headers: 'trusted',
    created_at: new Date(),
    updated_at: new Date(),
    ...overrides,
  });
  const session: GatewayToken = { sub: 'person-1', client_id: 'gatehouse-gateway', acr: undefined, exp: Math.floor(Date.now() / 1000) + 60 };

  test('the person is let in by roles (a session has no OAuth scopes), with trusted headers', async () => {
    const decision = await decide(deps, browserRoute(), undefined, session);
    assert.equal(decision.outcome, 'allow');
    assert.equal(decision.outcome === 'allow' && decision.headers['X-Gatehouse-Username'], 'pat');
    assert.equal(decision.outcome === 'allow' && decision.headers['X-Gatehouse-Scope'], '');
    const other = await decide(deps, browserRoute(), undefined, { ...session, sub: 'person-2' });
    assert.equal(other.outcome, 'forbidden');
  });

  test('without a session a browser route offers sign-in; a second factor missing asks for step-up; a token given always wins', async () => {
    const none = await decide(deps, browserRoute(), undefined, undefined);
    assert.deepEqual(none, { outcome: 'unauthenticated', challenge: 'Bearer', signIn: 'session' });
    const weak = await decide(deps, browserRoute({ require_mfa: true }), undefined, session);
    assert.equal(weak.outcome === 'forbidden' && weak.signIn, 'mfa');
    const strong = await decide(deps, browserRoute({ require_mfa: true }), undefined, { ...session, acr: 'urn:gatehouse:acr:mfa' });
    assert.equal(strong.outcome, 'allow');
    const withToken = await decide(deps, browserRoute(), ['Bearer abc'], session);
    assert.equal(withToken.outcome, 'unauthenticated');
    assert.equal(withToken.outcome === 'unauthenticated' && withToken.signIn, undefined, 'a rejected token is no invitation to sign in');
  });

  test('a session counts on browser routes only', async () => {
    const decision = await decide(deps, browserRoute({ browser_sign_in: false }), undefined, session);
    assert.deepEqual(decision, { outcome: 'unauthenticated', challenge: 'Bearer' });
  });
});
