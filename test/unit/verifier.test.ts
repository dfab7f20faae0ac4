import assert from 'node:assert/strict';
import { createPrivateKey, createPublicKey, randomBytes, randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { base64url, exportJWK, SignJWT } from 'jose';
import { createVerifier, VerifierError } from '../../src/verifier/index.js';
import type { Verifier, VerifierErrorCode, VerifierOptions } from '../../src/verifier/index.js';
import {
  createEncryptionKey,
  createSigningKey,
  encryptTo,
  startFakeIssuer,
  type EncryptionKey,
  type FakeIssuer,
  type SigningKey,
} from '../support/fake-issuer.js';

const audience = 'https://orders.example.com';
/** Longer than the verifier's JWKS refetch cooldown (5 s). */
const pastCooldown = 6_000;
/** Longer than the verifier's first backoff after a failed fetch (1 s). */
const pastBackoff = 1_500;

async function refusal(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  return assert.fail('the token was accepted');
}

/** The verifier must refuse with a VerifierError carrying one of `codes`, never anything else. */
async function assertRefused(promise: Promise<unknown>, ...codes: VerifierErrorCode[]): Promise<VerifierError> {
  const error = await refusal(promise);
  assert.ok(error instanceof VerifierError, `expected a VerifierError, got ${String(error)}`);
  assert.ok(codes.includes(error.code), `expected ${codes.join(' or ')}, got ${error.code} (${error.message})`);
  return error;
}

describe('verifier: Gatehouse access tokens against a loopback issuer', () => {
  let issuer: FakeIssuer;
  let es256: SigningKey;
  let eddsa: SigningKey;
  let ps256: SigningKey;
  let rs256: SigningKey;
  let innerKey: EncryptionKey;
  let otherInnerKey: EncryptionKey;

  /** A fresh verifier (own JWKS and inner caches) for this issuer and audience. */
  const verifierFor = (options: Partial<VerifierOptions> = {}): Verifier => {
    return createVerifier({ issuer: issuer.issuer, audience, ...options });
  };

  before(async () => {
    [es256, eddsa, ps256, rs256, innerKey, otherInnerKey] = await Promise.all([
      createSigningKey('ES256'),
      createSigningKey('EdDSA'),
      createSigningKey('PS256'),
      createSigningKey('RS256'),
      createEncryptionKey('ECDH-ES+A256KW', 'P-256'),
      createEncryptionKey('ECDH-ES+A256KW', 'P-256'),
    ]);
    issuer = await startFakeIssuer([es256, eddsa, ps256, rs256]);
  });

  after(async () => {
    await issuer.stop();
  });

  describe('accepts what Gatehouse issues', () => {
    test('ES256, EdDSA, PS256 and RS256 tokens verify and return their claims', async () => {
      const verifier = verifierFor();
      for (const key of [es256, eddsa, ps256, rs256]) {
        const jti = randomUUID();
        const token = await issuer.mint(key, audience, { claims: { jti, scope: 'orders:read orders:write' } });
        const { claims, inner } = await verifier.verify(token);
        assert.equal(claims.iss, issuer.issuer, key.alg);
        assert.equal(claims.aud, audience);
        assert.equal(claims.jti, jti);
        assert.equal(claims.sub, 'user-7f3a');
        assert.equal(claims.client_id, 'orders-web');
        assert.equal(claims.scope, 'orders:read orders:write');
        assert.equal(inner, undefined);
      }
    });

    test('an aud array that names this resource server is accepted', async () => {
      const token = await issuer.mint(es256, audience, { claims: { aud: ['https://billing.example.com', audience] } });
      const { claims } = await verifierFor().verify(token);
      assert.deepEqual(claims.aud, ['https://billing.example.com', audience]);
    });

    test('decrypts the inner layer with the private key given as a JWK object', async () => {
      const token = await issuer.mint(es256, audience, {
        innerTo: innerKey,
        inner: { sub: 'user-7f3a', email: 'ada@example.com', roles: ['buyer'] },
      });
      const { claims, inner } = await verifierFor({ innerKey: innerKey.privateJwk }).verify(token);
      assert.equal(typeof claims.inner, 'string');
      assert.deepEqual(inner, {
        jti: claims.jti,
        client_id: 'orders-web',
        client_name: 'Orders web',
        sub: 'user-7f3a',
        email: 'ada@example.com',
        roles: ['buyer'],
      });
    });

    test('decrypts the inner layer with the private key given as a KeyObject (P-256, X25519, RSA-OAEP-256)', async () => {
      const keys = await Promise.all([
        Promise.resolve(innerKey),
        createEncryptionKey('ECDH-ES+A256KW', 'X25519'),
        createEncryptionKey('RSA-OAEP-256'),
      ]);
      for (const key of keys) {
        const keyObject = createPrivateKey({ key: key.privateJwk, format: 'jwk' });
        const token = await issuer.mint(eddsa, audience, { innerTo: key, inner: { preferred_username: 'ada' } });
        const { claims, inner } = await verifierFor({ innerKey: keyObject }).verify(token);
        assert.equal(inner?.jti, claims.jti, key.alg);
        assert.equal(inner?.preferred_username, 'ada');
      }
    });

    test('without innerKey the inner layer stays encrypted and `inner` is undefined', async () => {
      const token = await issuer.mint(es256, audience, { innerTo: innerKey, inner: { email: 'ada@example.com' } });
      const { claims, inner } = await verifierFor().verify(token);
      assert.equal(inner, undefined);
      assert.equal(typeof claims.inner, 'string');
      assert.equal(claims.inner!.split('.').length, 5);
      assert.ok(!JSON.stringify(claims).includes('ada@example.com'));
    });

    test('a whole-token JWE (nested JWT, cty "JWT") verifies with innerKey', async () => {
      const jws = await issuer.mint(es256, audience, { innerTo: innerKey, inner: { email: 'ada@example.com' } });
      const jwe = await encryptTo(innerKey, jws, { cty: 'JWT' });
      const { claims, inner } = await verifierFor({ innerKey: innerKey.privateJwk }).verify(jwe);
      assert.equal(claims.iss, issuer.issuer);
      assert.equal(inner?.email, 'ada@example.com');
    });

    test('the whole-token JWE is refused without innerKey (inner_invalid)', async () => {
      const jwe = await encryptTo(innerKey, await issuer.mint(es256, audience), { cty: 'JWT' });
      await assertRefused(verifierFor().verify(jwe), 'inner_invalid');
    });

    test('a whole-token JWE encrypted to another key is refused (inner_invalid)', async () => {
      const jwe = await encryptTo(otherInnerKey, await issuer.mint(es256, audience), { cty: 'JWT' });
      await assertRefused(verifierFor({ innerKey: innerKey.privateJwk }).verify(jwe), 'inner_invalid');
    });

    test('a JWE that does not say it holds a JWT (cty) is refused as wrong_type', async () => {
      const verifier = verifierFor({ innerKey: innerKey.privateJwk });
      const jws = await issuer.mint(es256, audience);
      for (const header of [{ cty: 'json' }, {}, { cty: 5 }, { cty: ['JWT'] }]) {
        await assertRefused(verifier.verify(await encryptTo(innerKey, jws, header)), 'wrong_type');
      }
    });
  });

  describe('keys: unknown kid, rotation, refetch rate limit', () => {
    test('an unknown kid is unknown_key; the JWKS is refetched once per cooldown, not per token', async (t) => {
      t.mock.timers.enable({ apis: ['Date'], now: Date.now() });
      const verifier = verifierFor();
      const stranger = await createSigningKey('ES256');
      const start = issuer.counts.jwks;

      await verifier.verify(await issuer.mint(es256, audience));
      assert.equal(issuer.counts.jwks, start + 1);

      // Just fetched: an unknown kid does not trigger another fetch.
      await assertRefused(verifier.verify(await issuer.mint(stranger, audience)), 'unknown_key');
      assert.equal(issuer.counts.jwks, start + 1);

      t.mock.timers.tick(pastCooldown);
      await assertRefused(verifier.verify(await issuer.mint(stranger, audience)), 'unknown_key');
      assert.equal(issuer.counts.jwks, start + 2, 'refetched once for the unknown kid');

      const burst = await Promise.all(
        Array.from({ length: 20 }, async () => issuer.mint(await createSigningKey('ES256', `unknown-${randomUUID()}`), audience)),
      );
      const results = await Promise.allSettled(burst.map((token) => verifier.verify(token)));
      for (const result of results) {
        assert.ok(result.status === 'rejected' && result.reason instanceof VerifierError && result.reason.code === 'unknown_key');
      }
      assert.equal(issuer.counts.jwks, start + 2, 'a burst within the cooldown fetches nothing');

      t.mock.timers.tick(pastCooldown);
      await Promise.allSettled(burst.map((token) => verifier.verify(token)));
      assert.ok(issuer.counts.jwks <= start + 3, `a concurrent burst after the cooldown fetched ${issuer.counts.jwks - start - 2} times`);
    });

    test('a fresh verifier hit by a burst of unknown kids fetches discovery and the JWKS once, not per token', async () => {
      const verifier = verifierFor();
      const before = { ...issuer.counts };
      const stranger = await createSigningKey('ES256');
      const tokens = await Promise.all(Array.from({ length: 20 }, () => issuer.mint(stranger, audience)));
      const results = await Promise.allSettled(tokens.map((token) => verifier.verify(token)));
      assert.ok(results.every((r) => r.status === 'rejected' && r.reason instanceof VerifierError && r.reason.code === 'unknown_key'));
      assert.ok(issuer.counts.jwks - before.jwks <= 2, `fetched the JWKS ${issuer.counts.jwks - before.jwks} times`);
      assert.ok(issuer.counts.discovery - before.discovery <= 2, `fetched discovery ${issuer.counts.discovery - before.discovery} times`);
    });

    test('a key rotation at the issuer (new kid) is picked up by refetching', async (t) => {
      t.mock.timers.enable({ apis: ['Date'], now: Date.now() });
      const verifier = verifierFor();
      await verifier.verify(await issuer.mint(es256, audience));
      const fetched = issuer.counts.jwks;

      const rotated = await createSigningKey('ES256');
      const previous = issuer.published;
      issuer.published = [rotated, ...previous];
      try {
        t.mock.timers.tick(pastCooldown);
        const { claims } = await verifier.verify(await issuer.mint(rotated, audience));
        assert.equal(claims.iss, issuer.issuer);
        assert.equal(issuer.counts.jwks, fetched + 1);
        // The old key is still published and still cached: no further fetch.
        await verifier.verify(await issuer.mint(es256, audience));
        assert.equal(issuer.counts.jwks, fetched + 1);
      } finally {
        issuer.published = previous;
      }
    });
  });

  describe('refuses tokens that are not for us, not yet or no longer valid', () => {
    test('another audience is wrong_audience', async () => {
      const token = await issuer.mint(es256, 'https://billing.example.com');
      await assertRefused(verifierFor().verify(token), 'wrong_audience');
    });

    test('another issuer is wrong_issuer', async () => {
      const token = await issuer.mint(es256, audience, { claims: { iss: 'https://evil.example' } });
      await assertRefused(verifierFor().verify(token), 'wrong_issuer');
    });

    test('typ "JWT" (an ID token or any other JWT) or no typ is wrong_type', async () => {
      const verifier = verifierFor();
      for (const typ of ['JWT', 'application/jwt', undefined]) {
        await assertRefused(verifier.verify(await issuer.mint(es256, audience, { header: { typ } })), 'wrong_type');
      }
      // RFC 9068 §4: "application/at+jwt" is the same type.
      await verifier.verify(await issuer.mint(es256, audience, { header: { typ: 'application/at+jwt' } }));
    });

    test('expired beyond clockTolerance is token_expired; within it is accepted', async () => {
      const now = Math.floor(Date.now() / 1000);
      const verifier = verifierFor({ clockTolerance: 30 });
      await assertRefused(verifier.verify(await issuer.mint(es256, audience, { claims: { iat: now - 600, exp: now - 60 } })), 'token_expired');
      const { claims } = await verifier.verify(await issuer.mint(es256, audience, { claims: { iat: now - 600, exp: now - 10 } }));
      assert.equal(claims.exp, now - 10);
      // The default tolerance is a few seconds, not minutes.
      await assertRefused(verifierFor().verify(await issuer.mint(es256, audience, { claims: { iat: now - 600, exp: now - 60 } })), 'token_expired');
    });

    test('nbf in the future is token_not_yet_valid; within clockTolerance is accepted', async () => {
      const now = Math.floor(Date.now() / 1000);
      const verifier = verifierFor({ clockTolerance: 30 });
      await assertRefused(verifier.verify(await issuer.mint(es256, audience, { claims: { nbf: now + 120 } })), 'token_not_yet_valid');
      await verifier.verify(await issuer.mint(es256, audience, { claims: { nbf: now + 10 } }));
    });

    test('a token missing a required claim (jti, client_id, sub, exp, iat, aud, iss) is refused', async () => {
      const verifier = verifierFor();
      for (const claim of ['jti', 'client_id', 'sub', 'exp', 'iat']) {
        await assertRefused(verifier.verify(await issuer.mint(es256, audience, { claims: { [claim]: undefined } })), 'token_malformed');
      }
      await assertRefused(verifier.verify(await issuer.mint(es256, audience, { claims: { aud: undefined } })), 'token_malformed', 'wrong_audience');
      await assertRefused(verifier.verify(await issuer.mint(es256, audience, { claims: { iss: undefined } })), 'token_malformed', 'wrong_issuer');
    });
  });

  describe('refuses forged and mangled tokens', () => {
    test('alg "none" (unsigned, crafted by hand) is refused', async () => {
      const verifier = verifierFor();
      const now = Math.floor(Date.now() / 1000);
      const payload = base64url.encode(
        JSON.stringify({ iss: issuer.issuer, sub: 'admin', aud: audience, iat: now, exp: now + 300, jti: randomUUID(), client_id: 'x', scope: 'orders:read' }),
      );
      for (const alg of ['none', 'None', 'NONE']) {
        for (const header of [{ alg, typ: 'at+jwt' }, { alg, typ: 'at+jwt', kid: es256.kid }]) {
          const signed = await issuer.mint(es256, audience);
          for (const signature of ['', signed.split('.')[2]!]) {
            const token = `${base64url.encode(JSON.stringify(header))}.${payload}.${signature}`;
            await assertRefused(verifier.verify(token), 'signature_invalid', 'token_malformed');
          }
        }
      }
    });

    test('an alg outside the allow-list, even one naming an object property, is refused as a bad token', async () => {
      const verifier = verifierFor();
      const [, payload, signature] = (await issuer.mint(es256, audience)).split('.') as [string, string, string];
      for (const alg of ['__proto__', 'constructor', 'toString', 'ES512', 'RSA-OAEP-256', 'dir', 42, null]) {
        const header = base64url.encode(JSON.stringify({ alg, typ: 'at+jwt', kid: es256.kid }));
        await assertRefused(verifier.verify(`${header}.${payload}.${signature}`), 'signature_invalid', 'token_malformed');
      }
    });

    test('HS256 keyed with the RSA public key or the EC public JWK (algorithm confusion) is refused', async () => {
      const verifier = verifierFor();
      const rsaPem = createPublicKey({ key: rs256.publicJwk, format: 'jwk' }).export({ type: 'spki', format: 'pem' }) as string;
      const secrets: Array<[string, Uint8Array]> = [
        [rs256.kid, new TextEncoder().encode(rsaPem)],
        [rs256.kid, createPublicKey({ key: rs256.publicJwk, format: 'jwk' }).export({ type: 'pkcs1', format: 'der' })],
        [es256.kid, new TextEncoder().encode(JSON.stringify(es256.publicJwk))],
        [es256.kid, new TextEncoder().encode(JSON.stringify(await exportJWK(createPublicKey({ key: es256.publicJwk, format: 'jwk' }))))],
      ];
      const now = Math.floor(Date.now() / 1000);
      for (const [kid, secret] of secrets) {
        for (const alg of ['HS256', 'HS384', 'HS512']) {
          const token = await new SignJWT({ sub: 'admin', aud: audience, iss: issuer.issuer, iat: now, exp: now + 300, jti: randomUUID(), client_id: 'x' })
            .setProtectedHeader({ alg, kid, typ: 'at+jwt' })
            .sign(secret);
          await assertRefused(verifier.verify(token), 'signature_invalid');
        }
      }
    });

    test('a tampered signature or payload is signature_invalid', async () => {
      const verifier = verifierFor();
      for (const key of [es256, eddsa, ps256, rs256]) {
        const [header, payload, signature] = (await issuer.mint(key, audience, { claims: { scope: 'orders:read' } })).split('.') as [string, string, string];
        const bytes = base64url.decode(signature);
        bytes[Math.floor(bytes.length / 2)]! ^= 0x01;
        await assertRefused(verifier.verify(`${header}.${payload}.${base64url.encode(bytes)}`), 'signature_invalid');

        const claims = JSON.parse(new TextDecoder().decode(base64url.decode(payload))) as Record<string, unknown>;
        const widened = base64url.encode(JSON.stringify({ ...claims, scope: 'orders:read orders:admin' }));
        await assertRefused(verifier.verify(`${header}.${widened}.${signature}`), 'signature_invalid');
      }
    });

    test('a signature by one published key presented under another key id is signature_invalid', async () => {
      const sibling = await createSigningKey('ES256');
      const previous = issuer.published;
      issuer.published = [...previous, sibling];
      try {
        const token = await issuer.mint(sibling, audience, { header: { kid: es256.kid } });
        await assertRefused(verifierFor().verify(token), 'signature_invalid');
      } finally {
        issuer.published = previous;
      }
    });

    test('garbage is token_malformed, never another kind of error', async () => {
      const random = () => randomBytes(12).toString('base64url');
      const json = (value: unknown) => base64url.encode(JSON.stringify(value));
      const garbage: unknown[] = [
        '',
        'a',
        'a.b',
        'a.b.c',
        'a.b.c.d',
        '....',
        '.....',
        'a.b.c.d.e.f',
        Array.from({ length: 5 }, random).join('.'),
        Array.from({ length: 3 }, random).join('.'),
        `${json('not an object')}.${json({})}.`,
        `${json({ alg: 'ECDH-ES+A256KW' })}.${random()}.${random()}.${random()}.${random()}`,
        `${json({ alg: 'ES256' })}.${random()}.${random()}.${random()}.${random()}`,
        ' '.repeat(10),
        'Bearer abc.def.ghi',
        undefined,
        null,
        42,
      ];
      for (const options of [{}, { innerKey: innerKey.privateJwk }]) {
        const verifier = verifierFor(options);
        for (const token of garbage) {
          const error = await refusal(verifier.verify(token as string));
          assert.ok(error instanceof VerifierError, `${JSON.stringify(token)}: ${String(error)}`);
          assert.equal(error.code, 'token_malformed', `${JSON.stringify(token)} with${'innerKey' in options ? '' : 'out'} innerKey: ${error.message}`);
        }
        // With a usable header the signature is checked before the payload is read.
        for (const payload of ['not-json', json([1, 2]), json('claims')]) {
          const token = `${json({ alg: 'ES256', typ: 'at+jwt', kid: es256.kid })}.${payload}.${random()}`;
          await assertRefused(verifier.verify(token), 'signature_invalid', 'token_malformed');
        }
      }
    });
  });

  describe('the inner layer belongs to its token', () => {
    test('an inner layer encrypted to another key is inner_invalid', async () => {
      const token = await issuer.mint(es256, audience, { innerTo: otherInnerKey });
      await assertRefused(verifierFor({ innerKey: innerKey.privateJwk }).verify(token), 'inner_invalid');
    });

    test('an inner layer whose jti differs from the outer jti is inner_invalid', async () => {
      const token = await issuer.mint(es256, audience, { innerTo: innerKey, inner: { jti: randomUUID() } });
      await assertRefused(verifierFor({ innerKey: innerKey.privateJwk }).verify(token), 'inner_invalid');
    });

    test('an inner layer that is not a JWE of a JSON object is inner_invalid', async () => {
      const verifier = verifierFor({ innerKey: innerKey.privateJwk });
      const jti = randomUUID();
      for (const inner of [42, { jwe: true }, await encryptTo(innerKey, 'not json'), await encryptTo(innerKey, 'null'), await encryptTo(innerKey, JSON.stringify([jti]))]) {
        await assertRefused(verifier.verify(await issuer.mint(es256, audience, { claims: { jti, inner } })), 'inner_invalid');
      }
    });

    test('the same token verified twice is decrypted once: the cached inner object is returned', async () => {
      const verifier = verifierFor({ innerKey: innerKey.privateJwk });
      const token = await issuer.mint(es256, audience, { innerTo: innerKey, inner: { email: 'ada@example.com' } });
      const first = await verifier.verify(token);
      const second = await verifier.verify(token);
      assert.ok(first.inner !== undefined);
      assert.equal(second.inner, first.inner);

      // The cache is per token: another token's inner layer is its own.
      const other = await verifier.verify(await issuer.mint(es256, audience, { innerTo: innerKey, inner: { email: 'bob@example.com' } }));
      assert.notEqual(other.inner, first.inner);
      assert.equal(other.inner?.email, 'bob@example.com');
    });

    test('a cached inner layer is not reused for a token with the same jti but another inner ciphertext', async () => {
      const verifier = verifierFor({ innerKey: innerKey.privateJwk });
      const jti = randomUUID();
      const first = await verifier.verify(await issuer.mint(es256, audience, { claims: { jti }, innerTo: innerKey, inner: { email: 'ada@example.com' } }));
      const second = await verifier.verify(await issuer.mint(es256, audience, { claims: { jti }, innerTo: innerKey, inner: { email: 'bob@example.com' } }));
      assert.equal(first.inner?.email, 'ada@example.com');
      assert.equal(second.inner?.email, 'bob@example.com');
    });
  });

  describe('a token seen before: the verification cache', () => {
    /** The same token with one base64url character changed in the middle of `part` (0 header, 1 payload, 2 signature). */
    const tamper = (token: string, part: number): string => {
      const parts = token.split('.');
      const segment = parts[part]!;
      const at = Math.floor(segment.length / 2);
      parts[part] = `${segment.slice(0, at)}${segment[at] === 'A' ? 'B' : 'A'}${segment.slice(at + 1)}`;
      return parts.join('.');
    };

    test('a token verified before is answered from the cache: the same frozen result, for JWS and whole-token JWE', async () => {
      const verifier = verifierFor({ innerKey: innerKey.privateJwk });
      const token = await issuer.mint(es256, audience, { innerTo: innerKey, inner: { email: 'ada@example.com', roles: ['buyer'] } });
      const first = await verifier.verify(token);
      const second = await verifier.verify(token);
      assert.equal(second, first, 'a token seen before is answered from the cache');
      assert.equal(second.inner?.email, 'ada@example.com');

      const jwe = await encryptTo(innerKey, await issuer.mint(es256, audience, { innerTo: innerKey }), { cty: 'JWT' });
      const nested = await verifier.verify(jwe);
      assert.equal(await verifier.verify(jwe), nested);

      // Concurrent first sightings both succeed with the same claims.
      const fresh = await issuer.mint(es256, audience, { innerTo: innerKey });
      const [a, b] = await Promise.all([verifier.verify(fresh), verifier.verify(fresh)]);
      assert.equal(a.claims.jti, b.claims.jti);
    });

    test('a caller cannot alter what the cache hands out next: the result is frozen all the way down', async () => {
      const verifier = verifierFor({ innerKey: innerKey.privateJwk });
      const token = await issuer.mint(es256, audience, {
        claims: { aud: [audience, 'https://billing.example.com'] },
        innerTo: innerKey,
        inner: { roles: ['buyer'] },
      });
      const first = await verifier.verify(token);
      assert.throws(() => {
        (first.claims as { scope?: string }).scope = 'orders:admin';
      }, TypeError);
      assert.throws(() => (first.claims.aud as string[]).push('https://evil.example'), TypeError);
      assert.throws(() => first.inner!.roles!.push('admin'), TypeError);
      assert.throws(() => {
        (first as { inner: unknown }).inner = { roles: ['admin'] };
      }, TypeError);
      const again = await verifier.verify(token);
      assert.equal(again.claims.scope, 'orders:read');
      assert.deepEqual(again.claims.aud, [audience, 'https://billing.example.com']);
      assert.deepEqual(again.inner?.roles, ['buyer']);
      // Also frozen with the cache off, so callers see one behaviour.
      assert.ok(Object.isFrozen((await verifierFor({ cacheSize: 0 }).verify(token)).claims));
    });

    test('cacheSize 0 or cacheMaxAgeSeconds 0 turns the cache off; a bad value is refused at creation', async () => {
      const token = await issuer.mint(es256, audience);
      for (const options of [{ cacheSize: 0 }, { cacheMaxAgeSeconds: 0 }]) {
        const verifier = verifierFor(options);
        const first = await verifier.verify(token);
        assert.notEqual(await verifier.verify(token), first, JSON.stringify(options));
      }
      for (const options of [{ cacheSize: -1 }, { cacheMaxAgeSeconds: -5 }, { cacheMaxAgeSeconds: Number.NaN }, { cacheSize: Infinity }]) {
        assert.throws(() => verifierFor(options), TypeError, JSON.stringify(options));
      }
    });

    test('an entry is forgotten after cacheMaxAgeSeconds (default a few seconds) and the token verified afresh', async (t) => {
      t.mock.timers.enable({ apis: ['Date'], now: Date.now() });
      const token = await issuer.mint(es256, audience);
      const byDefault = verifierFor();
      const first = await byDefault.verify(token);
      t.mock.timers.tick(4_000);
      assert.equal(await byDefault.verify(token), first, 'still remembered after 4 s');
      t.mock.timers.tick(1_500);
      const after = await byDefault.verify(token);
      assert.notEqual(after, first, 'verified afresh after 5.5 s');
      assert.equal(after.claims.jti, first.claims.jti);

      const configured = verifierFor({ cacheMaxAgeSeconds: 60 });
      const remembered = await configured.verify(token);
      t.mock.timers.tick(59_000);
      assert.equal(await configured.verify(token), remembered);
      t.mock.timers.tick(2_000);
      assert.notEqual(await configured.verify(token), remembered);
    });

    test('a cached token is refused as token_expired once its exp passes, as a fresh verification would', async (t) => {
      t.mock.timers.enable({ apis: ['Date'], now: Date.now() });
      const now = Math.floor(Date.now() / 1000);
      const token = await issuer.mint(es256, audience, { claims: { iat: now, exp: now + 10 } });

      const strict = verifierFor({ clockTolerance: 0, cacheMaxAgeSeconds: 3600 });
      const first = await strict.verify(token);
      t.mock.timers.tick(9_000);
      assert.equal(await strict.verify(token), first);
      t.mock.timers.tick(1_000);
      await assertRefused(strict.verify(token), 'token_expired');
      await assertRefused(strict.verify(token), 'token_expired');

      // With a tolerance, an entry still ends at exp; within the tolerance the token is verified
      // afresh and accepted, beyond it refused.
      t.mock.timers.setTime((now - 5) * 1000);
      const tolerant = verifierFor({ clockTolerance: 5, cacheMaxAgeSeconds: 3600 });
      const remembered = await tolerant.verify(token);
      t.mock.timers.setTime((now + 12) * 1000);
      const within = await tolerant.verify(token);
      assert.notEqual(within, remembered, 'the entry did not outlive exp');
      t.mock.timers.setTime((now + 15) * 1000);
      await assertRefused(tolerant.verify(token), 'token_expired');
    });

    test('a cached token is refused as token_not_yet_valid when the clock steps back before nbf', async (t) => {
      t.mock.timers.enable({ apis: ['Date'], now: Date.now() });
      const now = Math.floor(Date.now() / 1000);
      const token = await issuer.mint(es256, audience, { claims: { nbf: now + 3 } });
      const verifier = verifierFor({ clockTolerance: 5, cacheMaxAgeSeconds: 3600 });
      const first = await verifier.verify(token);
      assert.equal(await verifier.verify(token), first);
      t.mock.timers.setTime((now - 10) * 1000);
      await assertRefused(verifier.verify(token), 'token_not_yet_valid');
    });

    test('a key removed from, or replaced in, an in-process key set is not honoured through the cache', async () => {
      let keys = { keys: [es256.publicJwk, eddsa.publicJwk] };
      const verifier = verifierFor({ jwks: () => keys, cacheMaxAgeSeconds: 3600 });
      const token = await issuer.mint(es256, audience);
      const first = await verifier.verify(token);
      assert.equal(await verifier.verify(token), first);

      keys = { keys: [eddsa.publicJwk] };
      await assertRefused(verifier.verify(token), 'unknown_key');

      // Another public key published under the same kid: the cached result was verified with the old one.
      keys = { keys: [es256.publicJwk] };
      assert.notEqual(await verifier.verify(token), first);
      const impostor = await createSigningKey('ES256', es256.kid);
      keys = { keys: [impostor.publicJwk] };
      await assertRefused(verifier.verify(token), 'signature_invalid');
    });

    test('a key removed at the issuer is not honoured once the verifier refetches the JWKS, even with an entry still young', async (t) => {
      t.mock.timers.enable({ apis: ['Date'], now: Date.now() });
      const leaving = await createSigningKey('ES256');
      const previous = issuer.published;
      issuer.published = [...previous, leaving];
      try {
        const verifier = verifierFor({ cacheMaxAgeSeconds: 3600 });
        const token = await issuer.mint(leaving, audience, { claims: { exp: Math.floor(Date.now() / 1000) + 7200 } });
        const first = await verifier.verify(token);
        assert.equal(await verifier.verify(token), first);

        issuer.published = previous;
        // An unknown kid after the cooldown makes the verifier refetch: the removed key goes with it.
        t.mock.timers.tick(pastCooldown);
        await assertRefused(verifier.verify(await issuer.mint(await createSigningKey('ES256'), audience)), 'unknown_key');
        await assertRefused(verifier.verify(token), 'unknown_key');

        // Without any unknown kid, the JWKS copy's own age (10 min) bounds it.
        issuer.published = [...previous, leaving];
        const other = verifierFor({ cacheMaxAgeSeconds: 3600 });
        const remembered = await other.verify(token);
        issuer.published = previous;
        t.mock.timers.tick(9 * 60_000);
        assert.equal(await other.verify(token), remembered, 'the JWKS copy is still fresh');
        t.mock.timers.tick(2 * 60_000);
        await assertRefused(other.verify(token), 'unknown_key');
      } finally {
        issuer.published = previous;
      }
    });

    test('a token with one character changed is not a cache hit', async () => {
      const verifier = verifierFor({ innerKey: innerKey.privateJwk });
      const token = await issuer.mint(es256, audience, { innerTo: innerKey });
      await verifier.verify(token);
      await verifier.verify(token);
      await assertRefused(verifier.verify(tamper(token, 2)), 'signature_invalid');
      await assertRefused(verifier.verify(tamper(token, 1)), 'signature_invalid', 'token_malformed');
      await assertRefused(verifier.verify(tamper(token, 0)), 'signature_invalid', 'token_malformed', 'unknown_key');
      await assertRefused(verifier.verify(`${token}A`), 'signature_invalid', 'token_malformed');

      const jwe = await encryptTo(innerKey, token, { cty: 'JWT' });
      await verifier.verify(jwe);
      await assertRefused(verifier.verify(tamper(jwe, 3)), 'inner_invalid');
    });

    test('a failed verification is not remembered: the same token succeeds once its key is published', async () => {
      let keys = { keys: [eddsa.publicJwk] };
      const verifier = verifierFor({ jwks: () => keys, innerKey: innerKey.privateJwk });
      const token = await issuer.mint(es256, audience);
      await assertRefused(verifier.verify(token), 'unknown_key');
      keys = { keys: [eddsa.publicJwk, es256.publicJwk] };
      assert.equal((await verifier.verify(token)).claims.iss, issuer.issuer);

      // A signed token whose inner layer fails is refused every time, not accepted from a cache.
      const badInner = await issuer.mint(es256, audience, { innerTo: otherInnerKey });
      await assertRefused(verifier.verify(badInner), 'inner_invalid');
      await assertRefused(verifier.verify(badInner), 'inner_invalid');
    });

    test('the cache is bounded: the least recently used token is forgotten first', async () => {
      const verifier = verifierFor({ cacheSize: 2 });
      const [one, two, three] = await Promise.all([issuer.mint(es256, audience), issuer.mint(es256, audience), issuer.mint(es256, audience)]);
      const first = await verifier.verify(one);
      const second = await verifier.verify(two);
      assert.equal(await verifier.verify(one), first, 'one is now the most recently used');
      await verifier.verify(three);
      assert.equal(await verifier.verify(one), first, 'one stayed');
      assert.notEqual(await verifier.verify(two), second, 'two was forgotten');
    });
  });

  describe('the issuer is unreachable', () => {
    test('issuer down (refused connection) is jwks_unavailable; a later call succeeds once it is back and the backoff passed', async (t) => {
      t.mock.timers.enable({ apis: ['Date'], now: Date.now() });
      const token = await issuer.mint(es256, audience);
      const verifier = verifierFor();
      await issuer.stop();
      try {
        await assertRefused(verifier.verify(token), 'jwks_unavailable');
        await assertRefused(verifier.verify(token), 'jwks_unavailable');
      } finally {
        await issuer.start();
      }
      t.mock.timers.tick(pastBackoff);
      const { claims } = await verifier.verify(token);
      assert.equal(claims.iss, issuer.issuer);
    });

    for (const behaviour of ['unavailable', 'html', 'other-issuer'] as const) {
      test(`discovery answering ${behaviour} is jwks_unavailable, remembered only for the backoff`, async (t) => {
        t.mock.timers.enable({ apis: ['Date'], now: Date.now() });
        const token = await issuer.mint(es256, audience);
        const verifier = verifierFor();
        const before = issuer.counts.discovery;
        issuer.discovery = behaviour;
        try {
          await assertRefused(verifier.verify(token), 'jwks_unavailable');
        } finally {
          issuer.discovery = 'ok';
        }
        // Within the backoff the failure stands without asking again.
        await assertRefused(verifier.verify(token), 'jwks_unavailable');
        assert.equal(issuer.counts.discovery, before + 1);
        t.mock.timers.tick(pastBackoff);
        await verifier.verify(token);
      });
    }

    test('a JWKS endpoint answering 503 is jwks_unavailable, not a bad token', async (t) => {
      t.mock.timers.enable({ apis: ['Date'], now: Date.now() });
      const token = await issuer.mint(es256, audience);
      const verifier = verifierFor();
      issuer.jwksStatus = 503;
      try {
        await assertRefused(verifier.verify(token), 'jwks_unavailable');
      } finally {
        issuer.jwksStatus = 200;
      }
      t.mock.timers.tick(pastBackoff);
      await verifier.verify(token);
    });

    test('an outage does not throw away keys already fetched, even when an unknown kid asks for a refetch', async (t) => {
      t.mock.timers.enable({ apis: ['Date'], now: Date.now() });
      const verifier = verifierFor();
      const token = await issuer.mint(es256, audience);
      await verifier.verify(token);
      const stranger = await issuer.mint(await createSigningKey('ES256'), audience);

      await issuer.stop();
      try {
        t.mock.timers.tick(pastCooldown);
        await assertRefused(verifier.verify(stranger), 'jwks_unavailable', 'unknown_key');
        const { claims } = await verifier.verify(token);
        assert.equal(claims.iss, issuer.issuer);
      } finally {
        await issuer.start();
      }
    });
  });
});
