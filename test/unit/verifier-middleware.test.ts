import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import Koa from 'koa';
import { createVerifier, requireToken, VerifierError } from '../../src/verifier/index.js';
import type { BearerFailure, RequireTokenOptions, VerifiedToken, Verifier } from '../../src/verifier/index.js';
import { createEncryptionKey, createSigningKey, startFakeIssuer, type EncryptionKey, type FakeIssuer, type SigningKey } from '../support/fake-issuer.js';

const audience = 'https://orders.example.com';

interface Protected {
  readonly url: string;
  /** What the route behind the middleware saw in `ctx.state.token`. */
  readonly seen: VerifiedToken[];
  /** Errors the middleware let through instead of answering 401/403. */
  readonly thrown: unknown[];
}

describe('requireToken: RFC 6750 bearer middleware on a Koa app', () => {
  let issuer: FakeIssuer;
  let key: SigningKey;
  let innerKey: EncryptionKey;
  let verifier: Verifier;
  const servers: Server[] = [];

  /** A Koa app serving one protected route on loopback. */
  const serve = async (guard: Verifier, options: RequireTokenOptions): Promise<Protected> => {
    const seen: VerifiedToken[] = [];
    const thrown: unknown[] = [];
    const app = new Koa();
    app.use(async function recordEscapedErrors(ctx, next) {
      try {
        await next();
      } catch (error) {
        thrown.push(error);
        ctx.status = 503;
        ctx.body = { error: 'temporarily_unavailable' };
      }
    });
    app.use(requireToken(guard, options));
    app.use(function orders(ctx) {
      const token = ctx.state['token'] as VerifiedToken;
      seen.push(token);
      ctx.body = { sub: token.claims.sub, email: token.inner?.email };
    });
    const handle = app.callback();
    const server = createServer((req, res) => void handle(req, res));
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/orders`, seen, thrown };
  };

  const get = (url: string, authorization?: string) => fetch(url, authorization === undefined ? {} : { headers: { authorization } });

  let orders: Protected;

  before(async () => {
    [key, innerKey] = await Promise.all([createSigningKey('ES256'), createEncryptionKey()]);
    issuer = await startFakeIssuer([key]);
    verifier = createVerifier({ issuer: issuer.issuer, audience, innerKey: innerKey.privateJwk });
    orders = await serve(verifier, { scopes: ['orders:read'] });
  });

  after(async () => {
    for (const server of servers) {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
    await issuer.stop();
  });

  test('no Authorization header: 401 with a bare Bearer challenge (RFC 6750 §3.1)', async () => {
    const response = await get(orders.url);
    assert.equal(response.status, 401);
    assert.equal(response.headers.get('www-authenticate'), 'Bearer');
    assert.equal(response.headers.get('cache-control'), 'no-store');
    assert.deepEqual(await response.json(), { error: 'unauthorized' });
    assert.equal(orders.seen.length, 0);
  });

  test('another scheme (Basic): 401 with a bare Bearer challenge (RFC 6750 §3.1)', async () => {
    for (const authorization of ['Basic xyz', 'Basic b3JkZXJzOnNlY3JldA==', 'Digest x']) {
      const response = await get(orders.url, authorization);
      assert.equal(response.status, 401, authorization);
      assert.equal(response.headers.get('www-authenticate'), 'Bearer', authorization);
    }
    assert.equal(orders.seen.length, 0);
  });

  test('a Bearer header without a usable token: 401 invalid_token', async () => {
    for (const authorization of ['Bearer', 'Bearer a b']) {
      const response = await get(orders.url, authorization);
      assert.equal(response.status, 401, authorization);
      assert.match(response.headers.get('www-authenticate') ?? '', /^Bearer error="invalid_token"(, |$)/, authorization);
      const body = (await response.json()) as { error: string };
      assert.equal(body.error, 'invalid_token');
    }
    assert.equal(orders.seen.length, 0);
  });

  test('a bad token: 401 Bearer error="invalid_token" with an error_description', async () => {
    const now = Math.floor(Date.now() / 1000);
    const tokens = [
      'not-a-token',
      'a.b.c',
      await issuer.mint(key, audience, { claims: { iat: now - 600, exp: now - 300 } }),
      await issuer.mint(key, 'https://billing.example.com'),
      await issuer.mint(key, audience, { header: { typ: 'JWT' } }),
    ];
    for (const token of tokens) {
      const response = await get(orders.url, `Bearer ${token}`);
      assert.equal(response.status, 401, token);
      const challenge = response.headers.get('www-authenticate') ?? '';
      assert.match(challenge, /^Bearer error="invalid_token", error_description="[^"\\]+"$/, token);
      const body = (await response.json()) as { error: string; error_description: string };
      assert.equal(body.error, 'invalid_token');
      assert.equal(challenge, `Bearer error="invalid_token", error_description="${body.error_description}"`);
    }
    assert.equal(orders.seen.length, 0);
  });

  test('a valid token without the required scope: 403 insufficient_scope naming the scope', async () => {
    for (const scope of ['orders:write', 'orders:readonly', undefined]) {
      const token = await issuer.mint(key, audience, { claims: { scope } });
      const response = await get(orders.url, `Bearer ${token}`);
      assert.equal(response.status, 403, String(scope));
      const challenge = response.headers.get('www-authenticate') ?? '';
      assert.match(challenge, /^Bearer error="insufficient_scope"/);
      assert.match(challenge, /(^|, )scope="orders:read"$/);
      assert.equal(((await response.json()) as { error: string }).error, 'insufficient_scope');
    }
    assert.equal(orders.seen.length, 0);
  });

  test('every required scope must be granted, and the challenge lists them all', async () => {
    const both = await serve(verifier, { scopes: ['orders:read', 'orders:write'] });
    const partial = await get(both.url, `Bearer ${await issuer.mint(key, audience, { claims: { scope: 'orders:read' } })}`);
    assert.equal(partial.status, 403);
    assert.match(partial.headers.get('www-authenticate') ?? '', /scope="orders:read orders:write"$/);
    const full = await get(both.url, `Bearer ${await issuer.mint(key, audience, { claims: { scope: 'openid orders:write orders:read' } })}`);
    assert.equal(full.status, 200);
  });

  test('a valid token: 200, and ctx.state.token holds { claims, inner }', async () => {
    const token = await issuer.mint(key, audience, { innerTo: innerKey, inner: { email: 'ada@example.com' }, claims: { scope: 'openid orders:read' } });
    const before = orders.seen.length;
    // RFC 6750 §2.1 / RFC 9110 §11.1: the scheme is case-insensitive.
    for (const scheme of ['Bearer', 'bearer']) {
      const response = await get(orders.url, `${scheme} ${token}`);
      assert.equal(response.status, 200);
      assert.deepEqual(await response.json(), { sub: 'user-7f3a', email: 'ada@example.com' });
    }
    assert.equal(orders.seen.length, before + 2);
    const state = orders.seen.at(-1)!;
    assert.deepEqual(Object.keys(state).sort(), ['claims', 'inner']);
    assert.deepEqual(state, await verifier.verify(token));
    assert.equal(state.claims.scope, 'openid orders:read');
    assert.equal(state.inner?.jti, state.claims.jti);
  });

  test('a custom respond option writes the refusal body; the challenge is still set', async () => {
    const failures: BearerFailure[] = [];
    const custom = await serve(verifier, {
      scopes: ['orders:read'],
      respond(ctx, failure) {
        failures.push(failure);
        ctx.type = 'application/problem+json';
        ctx.body = { type: 'about:blank', title: 'Unauthorized', status: failure.status, code: failure.code ?? null };
      },
    });

    const missing = await get(custom.url);
    assert.equal(missing.status, 401);
    assert.equal(missing.headers.get('www-authenticate'), 'Bearer');
    assert.match(missing.headers.get('content-type') ?? '', /^application\/problem\+json/);
    assert.deepEqual(await missing.json(), { type: 'about:blank', title: 'Unauthorized', status: 401, code: null });

    const wrongAudience = await get(custom.url, `Bearer ${await issuer.mint(key, 'https://billing.example.com')}`);
    assert.equal(wrongAudience.status, 401);
    assert.match(wrongAudience.headers.get('www-authenticate') ?? '', /^Bearer error="invalid_token"/);
    assert.deepEqual(await wrongAudience.json(), { type: 'about:blank', title: 'Unauthorized', status: 401, code: 'wrong_audience' });

    const noScope = await get(custom.url, `Bearer ${await issuer.mint(key, audience, { claims: { scope: 'orders:write' } })}`);
    assert.equal(noScope.status, 403);
    assert.deepEqual(await noScope.json(), { type: 'about:blank', title: 'Unauthorized', status: 403, code: null });

    assert.deepEqual(
      failures.map((f) => [f.status, f.error, f.code]),
      [
        [401, undefined, undefined],
        [401, 'invalid_token', 'wrong_audience'],
        [403, 'insufficient_scope', undefined],
      ],
    );
  });

  test('jwks_unavailable is not the client’s fault: it propagates as an error, not a 401', async () => {
    // No backoff after the failure, so the recovery below is seen at once.
    const fresh = createVerifier({ issuer: issuer.issuer, audience, fetchBackoff: { initialSeconds: 0 } });
    const app = await serve(fresh, { scopes: ['orders:read'] });
    const token = await issuer.mint(key, audience);
    issuer.discovery = 'unavailable';
    try {
      const response = await get(app.url, `Bearer ${token}`);
      assert.equal(response.status, 503);
      assert.equal(response.headers.get('www-authenticate'), null);
      assert.equal(app.thrown.length, 1);
      assert.ok(app.thrown[0] instanceof VerifierError && app.thrown[0].code === 'jwks_unavailable');
    } finally {
      issuer.discovery = 'ok';
    }
    // Once the issuer answers again, the same token is accepted.
    assert.equal((await get(app.url, `Bearer ${token}`)).status, 200);
  });
});
