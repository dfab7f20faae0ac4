import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import Koa from 'koa';
import { createVerifier, requireToken, VerifierError, type Verifier, type VerifierErrorCode } from '../../src/verifier/index.js';
import { commandAvailable } from '../support/gateway.js';
import { dpopKey, dpopProof, type DpopKey } from '../support/dpop.js';
import { createSigningKey, startFakeIssuer, type FakeIssuer, type SigningKey } from '../support/fake-issuer.js';
import { createPki, type Issued, type Pki } from '../support/pki.js';

/**
 * SPEC §3 and §8: the verifier checks that a request holds what a bound token is bound to: a
 * DPoP proof (RFC 9449 §4.3, §7) for `cnf.jkt`, the client certificate (RFC 8705 §3) for
 * `cnf.x5t#S256`. The middleware reads them from `Authorization: DPoP`, the `DPoP` header and
 * the TLS connection, and answers RFC 9449 / RFC 6750 challenges.
 */

const audience = 'https://orders.binding.example';
const URL_ORDERS = 'https://orders.binding.example/orders';
const opensslAvailable = await commandAvailable('openssl', ['version']);

async function rejectsWith(promise: Promise<unknown>, code: VerifierErrorCode, message?: RegExp): Promise<void> {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof VerifierError, String(error));
    assert.equal(error.code, code, error.message);
    if (message !== undefined) assert.match(error.message, message);
    return true;
  });
}

describe('verify(token, { dpop, certificate }): sender-constrained tokens', () => {
  let issuer: FakeIssuer;
  let signing: SigningKey;
  let verifier: Verifier;
  let holder: DpopKey;
  let other: DpopKey;

  const bound = (jkt: string) => issuer.mint(signing, audience, { claims: { cnf: { jkt } } });
  const present = async (token: string, key: DpopKey, claims: Parameters<typeof dpopProof>[3] = {}, method = 'GET', url = URL_ORDERS) => ({
    dpop: { proof: await dpopProof(key, method, url, { accessToken: token, ...claims }), method: 'GET', url: URL_ORDERS },
  });

  before(async () => {
    signing = await createSigningKey('ES256');
    issuer = await startFakeIssuer([signing]);
    verifier = createVerifier({ issuer: issuer.issuer, audience });
    [holder, other] = await Promise.all([dpopKey('ES256'), dpopKey('EdDSA')]);
  });
  after(async () => {
    await issuer?.stop();
  });

  test('a DPoP-bound token with a proof for this request, token and key verifies; cnf is in the claims', async () => {
    const token = await bound(holder.thumbprint);
    const { claims } = await verifier.verify(token, await present(token, holder));
    assert.deepEqual(claims.cnf, { jkt: holder.thumbprint });
    // The proof's htu is compared without query and fragment (RFC 9449 §4.3 step 9).
    const proof = await dpopProof(holder, 'GET', `${URL_ORDERS}?page=2#x`, { accessToken: token });
    await verifier.verify(token, { dpop: { proof, method: 'GET', url: `${URL_ORDERS}?page=3` } });
  });

  test('each proof is accepted once; a remembered token still needs a fresh proof each time', async () => {
    const token = await bound(holder.thumbprint);
    const presented = await present(token, holder);
    await verifier.verify(token, presented);
    await rejectsWith(verifier.verify(token, presented), 'dpop_invalid', /already used/);
    await verifier.verify(token, await present(token, holder));
    await rejectsWith(verifier.verify(token), 'binding_mismatch', /DPoP-bound/);
  });

  test('no proof, or a proof by another key, is binding_mismatch; a proof with an unbound token too', async () => {
    const token = await bound(holder.thumbprint);
    await rejectsWith(verifier.verify(token), 'binding_mismatch');
    await rejectsWith(verifier.verify(token, await present(token, other)), 'binding_mismatch', /another key/);
    const plain = await issuer.mint(signing, audience);
    await rejectsWith(verifier.verify(plain, await present(plain, holder)), 'binding_mismatch', /not DPoP-bound/);
    await verifier.verify(plain);
  });

  test('a proof for another method, URL or token, stale, from the future, or not a dpop+jwt is dpop_invalid', async () => {
    const token = await bound(holder.thumbprint);
    const now = Math.floor(Date.now() / 1000);
    const cases: [string, Promise<{ dpop: { proof: string; method: string; url: string } }>][] = [
      ['htm', present(token, holder, {}, 'POST')],
      ['htu path', present(token, holder, {}, 'GET', 'https://orders.binding.example/other')],
      ['htu origin', present(token, holder, {}, 'GET', 'https://evil.example/orders')],
      ['ath', present(token, holder, { accessToken: `${token}x` })],
      ['no ath', (async () => ({ dpop: { proof: await dpopProof(holder, 'GET', URL_ORDERS), method: 'GET', url: URL_ORDERS } }))()],
      ['stale iat', present(token, holder, { iat: now - 301 - 5 })],
      ['future iat', present(token, holder, { iat: now + 60 })],
      ['typ', present(token, holder, { typ: 'JWT' })],
      ['two headers', (async () => { const one = await present(token, holder); return { dpop: { ...one.dpop, proof: `${one.dpop.proof}, ${one.dpop.proof}` } }; })()],
    ];
    for (const [label, presented] of cases) {
      await assert.rejects(verifier.verify(token, await presented), (error: unknown) => error instanceof VerifierError && error.code === 'dpop_invalid', label);
    }
  });

  test('a symmetric, unsigned or private-key proof is dpop_invalid', async () => {
    const token = await bound(holder.thumbprint);
    const segment = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
    const payload = { htm: 'GET', htu: URL_ORDERS, jti: 'j', iat: Math.floor(Date.now() / 1000), ath: createHash('sha256').update(token).digest('base64url') };
    const hs = `${segment({ alg: 'HS256', typ: 'dpop+jwt', jwk: { kty: 'oct', k: 'c2VjcmV0' } })}.${segment(payload)}.c2ln`;
    const none = `${segment({ alg: 'none', typ: 'dpop+jwt', jwk: holder.publicJwk })}.${segment(payload)}.`;
    const { privateKey } = await generateKeyPair('ES256', { extractable: true });
    const privateJwk = await exportJWK(privateKey);
    const withPrivate = await new SignJWT(payload).setProtectedHeader({ alg: 'ES256', typ: 'dpop+jwt', jwk: privateJwk }).sign(privateKey);
    for (const proof of [hs, none, withPrivate]) {
      await rejectsWith(verifier.verify(token, { dpop: { proof, method: 'GET', url: URL_ORDERS } }), 'dpop_invalid');
    }
  });

  test('requireSenderConstraint: an unbound token is binding_mismatch', async () => {
    const strict = createVerifier({ issuer: issuer.issuer, audience, requireSenderConstraint: true });
    await rejectsWith(strict.verify(await issuer.mint(signing, audience)), 'binding_mismatch', /only DPoP- or certificate-bound/);
    const token = await bound(holder.thumbprint);
    await strict.verify(token, await present(token, holder));
  });

  test('a shared replay store sees every proof: a second verifier (another instance) refuses a proof the first took', async () => {
    const seen = new Map<string, number>();
    const replayStore = { firstUse: (key: string, until: number) => (seen.has(key) ? false : (seen.set(key, until), true)) };
    const [a, b] = [createVerifier({ issuer: issuer.issuer, audience, dpop: { replayStore } }), createVerifier({ issuer: issuer.issuer, audience, dpop: { replayStore } })];
    const token = await bound(holder.thumbprint);
    const presented = await present(token, holder);
    await a.verify(token, presented);
    await rejectsWith(b.verify(token, presented), 'dpop_invalid', /already used/);
  });

  describe('certificate-bound tokens', { skip: opensslAvailable ? false : 'needs openssl' }, () => {
    let pki: Pki;
    let mine: Issued;
    let theirs: Issued;
    before(async () => {
      pki = await createPki();
      [mine, theirs] = await Promise.all([pki.issue('mine', '/CN=mine'), pki.issue('theirs', '/CN=theirs')]);
    });
    after(async () => {
      await pki?.close();
    });

    test('the certificate the token is bound to verifies; another or none is binding_mismatch', async () => {
      const x5t = createHash('sha256').update(mine.certificate.raw).digest('base64url');
      const token = await issuer.mint(signing, audience, { claims: { cnf: { 'x5t#S256': x5t } } });
      await verifier.verify(token, { certificate: mine.certificate });
      await rejectsWith(verifier.verify(token, { certificate: theirs.certificate }), 'binding_mismatch', /another client certificate/);
      await rejectsWith(verifier.verify(token), 'binding_mismatch', /none was presented/);
      // A plain token over an mTLS connection is fine.
      await verifier.verify(await issuer.mint(signing, audience), { certificate: mine.certificate });
    });
  });

  describe('requireToken: DPoP scheme and challenges', () => {
    let server: Server;
    let url: string;
    const origin = 'https://orders.binding.example';
    before(async () => {
      const app = new Koa();
      // Behind a proxy the service is addressed at its public origin, not the loopback one.
      app.use(requireToken(verifier, { scopes: ['orders:read'], origin }));
      app.use((ctx) => {
        ctx.body = { ok: true };
      });
      const handle = app.callback();
      server = createServer((req, res) => void handle(req, res));
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    });
    after(() => new Promise<void>((resolve) => server.close(() => resolve())));

    const call = (path: string, headers: Record<string, string>) => fetch(`${url}${path}`, { headers });
    const scoped = (jkt: string) => issuer.mint(signing, audience, { claims: { cnf: { jkt }, scope: 'orders:read' } });

    test('Authorization: DPoP with its proof passes; htu is the public origin plus the request path', async () => {
      const token = await scoped(holder.thumbprint);
      const proof = await dpopProof(holder, 'GET', `${origin}/orders`, { accessToken: token });
      const response = await call('/orders?x=1', { authorization: `DPoP ${token}`, dpop: proof });
      assert.equal(response.status, 200, await response.clone().text());
    });

    test('a DPoP-bound token sent as Bearer: 401 with a DPoP invalid_token challenge naming the algorithms', async () => {
      const token = await scoped(holder.thumbprint);
      const response = await call('/orders', { authorization: `Bearer ${token}`, dpop: await dpopProof(holder, 'GET', `${origin}/orders`, { accessToken: token }) });
      assert.equal(response.status, 401);
      const challenge = response.headers.get('www-authenticate') ?? '';
      assert.match(challenge, /^DPoP error="invalid_token"/);
      assert.match(challenge, /algs="ES256 EdDSA Ed25519 PS256 RS256"/);
      assert.equal(((await response.json()) as { error: string }).error, 'invalid_token');
    });

    test('a bad or missing proof: 401 DPoP error="invalid_dpop_proof"', async () => {
      const token = await scoped(holder.thumbprint);
      const attempts: Record<string, string>[] = [
        { authorization: `DPoP ${token}` },
        { authorization: `DPoP ${token}`, dpop: await dpopProof(holder, 'GET', `${url}/orders`, { accessToken: token }) },
      ];
      for (const headers of attempts) {
        const response = await call('/orders', headers);
        assert.equal(response.status, 401);
        assert.match(response.headers.get('www-authenticate') ?? '', /^DPoP error="invalid_dpop_proof"/);
        assert.equal(((await response.json()) as { error: string }).error, 'invalid_dpop_proof');
      }
    });

    test('no credentials still get the bare Bearer challenge (SPEC §3); scope errors keep the DPoP scheme', async () => {
      const bare = await call('/orders', {});
      assert.equal(bare.status, 401);
      assert.equal(bare.headers.get('www-authenticate'), 'Bearer');
      const unscoped = await issuer.mint(signing, audience, { claims: { cnf: { jkt: holder.thumbprint }, scope: 'orders:write' } });
      const response = await call('/orders', { authorization: `DPoP ${unscoped}`, dpop: await dpopProof(holder, 'GET', `${origin}/orders`, { accessToken: unscoped }) });
      assert.equal(response.status, 403);
      assert.match(response.headers.get('www-authenticate') ?? '', /^DPoP error="insufficient_scope".*scope="orders:read"/);
    });
  });
});
