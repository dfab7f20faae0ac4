import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { base64url, CompactSign, type CompactJWSHeaderParameters } from 'jose';
import { createVerifier, VerifierError } from '../../src/verifier/index.js';
import type { VerifierErrorCode, VerifierOptions } from '../../src/verifier/index.js';
import { createEncryptionKey, createSigningKey, encryptTo, startFakeIssuer, type EncryptionKey, type FakeIssuer, type SigningKey } from '../support/fake-issuer.js';

/**
 * SPEC §3: "While discovery or the JWKS cannot be fetched, it backs off (a burst of unknown tokens
 * causes a handful of fetches, not one each)"; `token_malformed` for a payload or header that is
 * not JSON; `requireEncryption` refuses a bare JWS. The issuer is a real HTTP server on loopback
 * counting discovery and JWKS requests; time is moved with mocked `Date`, never slept.
 */

const audience = 'https://orders.backoff.example';
const BURST = 200;
/** A handful: the review counted 101 discovery fetches for 200 junk tokens. */
const HANDFUL = 5;

async function codeOf(promise: Promise<unknown>): Promise<VerifierErrorCode> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof VerifierError, `expected a VerifierError, got ${String(error)}`);
    return error.code;
  }
  return assert.fail('the token was accepted');
}

async function codesOf(promises: Promise<unknown>[]): Promise<Set<VerifierErrorCode>> {
  return new Set(await Promise.all(promises.map(codeOf)));
}

/** Verifies `tokens` ten at a time, each wave after the last, expecting `code` for all. */
async function inWaves(tokens: string[], verifier: { verify(token: string): Promise<unknown> }, code: VerifierErrorCode): Promise<void> {
  for (let i = 0; i < tokens.length; i += 10) {
    assert.deepEqual(await codesOf(tokens.slice(i, i + 10).map((token) => verifier.verify(token))), new Set([code]));
  }
}

describe('verifier: backoff while the issuer fails, malformed JWS, requireEncryption', () => {
  let issuer: FakeIssuer;
  let es256: SigningKey;
  let innerKey: EncryptionKey;
  const verifierFor = (options: Partial<VerifierOptions> = {}) => createVerifier({ issuer: issuer.issuer, audience, ...options });
  /** Tokens signed by keys the issuer does not publish: junk with a plausible shape. */
  const junk = (count: number) =>
    Promise.all(Array.from({ length: count }, async () => issuer.mint(await createSigningKey('ES256', `junk-${randomUUID()}`), audience)));

  before(async () => {
    [es256, innerKey] = await Promise.all([createSigningKey('ES256'), createEncryptionKey('ECDH-ES+A256KW', 'P-256')]);
    issuer = await startFakeIssuer([es256]);
  });
  after(() => issuer.stop());

  test(`${BURST} parallel tokens with unknown kids while discovery fails cost a handful of fetches; after the backoff verification succeeds`, async (t) => {
    t.mock.timers.enable({ apis: ['Date'], now: Date.now() });
    const verifier = verifierFor();
    const tokens = await junk(BURST);
    const start = issuer.counts.discovery;
    issuer.discovery = 'unavailable';
    try {
      assert.deepEqual(await codesOf(tokens.map((token) => verifier.verify(token))), new Set(['jwks_unavailable']));
      // The same tokens again as they would arrive at a busy resource server: in waves of 10.
      await inWaves(tokens, verifier, 'jwks_unavailable');
      const fetched = issuer.counts.discovery - start;
      t.diagnostic(`discovery fetched ${fetched} times for ${2 * BURST} tokens`);
      assert.ok(fetched >= 1 && fetched <= HANDFUL, `discovery fetched ${fetched} times`);
    } finally {
      issuer.discovery = 'ok';
    }
    // The issuer is back, but the backoff has not passed: no fetch yet.
    const good = await issuer.mint(es256, audience);
    const during = issuer.counts.discovery;
    assert.equal(await codeOf(verifier.verify(good)), 'jwks_unavailable');
    assert.equal(issuer.counts.discovery, during);
    t.mock.timers.tick(1_500);
    assert.equal((await verifier.verify(good)).claims.iss, issuer.issuer);
  });

  test(`${BURST} parallel tokens while the JWKS endpoint answers 500 cost a handful of JWKS fetches`, async (t) => {
    t.mock.timers.enable({ apis: ['Date'], now: Date.now() });
    const verifier = verifierFor();
    const tokens = [...(await junk(BURST / 2)), ...(await Promise.all(Array.from({ length: BURST / 2 }, () => issuer.mint(es256, audience))))];
    const start = issuer.counts.jwks;
    issuer.jwksStatus = 500;
    try {
      assert.deepEqual(await codesOf(tokens.map((token) => verifier.verify(token))), new Set(['jwks_unavailable']));
      await inWaves(tokens, verifier, 'jwks_unavailable');
      const fetched = issuer.counts.jwks - start;
      t.diagnostic(`JWKS fetched ${fetched} times for ${2 * BURST} tokens`);
      assert.ok(fetched >= 1 && fetched <= HANDFUL, `JWKS fetched ${fetched} times`);
    } finally {
      issuer.jwksStatus = 200;
    }
    t.mock.timers.tick(1_500);
    assert.equal((await verifier.verify(tokens.at(-1)!)).claims.iss, issuer.issuer);
  });

  test('an oversized JWKS is refused as jwks_unavailable (bodies are read up to 256 KiB), and a normal one works after the backoff', async (t) => {
    t.mock.timers.enable({ apis: ['Date'], now: Date.now() });
    const verifier = verifierFor();
    const token = await issuer.mint(es256, audience);
    issuer.jwksPaddingBytes = 2 * 1024 * 1024;
    try {
      assert.equal(await codeOf(verifier.verify(token)), 'jwks_unavailable');
    } finally {
      issuer.jwksPaddingBytes = 0;
    }
    t.mock.timers.tick(1_500);
    assert.equal((await verifier.verify(token)).claims.iss, issuer.issuer);
  });

  test('the backoff doubles with each failure (1 s, 2 s, 4 s …) and ends with the first success', async (t) => {
    t.mock.timers.enable({ apis: ['Date'], now: Date.now() });
    const verifier = verifierFor();
    const token = await issuer.mint(es256, audience);
    const start = issuer.counts.discovery;
    const fetches = () => issuer.counts.discovery - start;
    issuer.discovery = 'unavailable';
    try {
      await codeOf(verifier.verify(token));
      assert.equal(fetches(), 1);
      t.mock.timers.tick(1_100); // past 1 s
      await codeOf(verifier.verify(token));
      assert.equal(fetches(), 2);
      t.mock.timers.tick(1_100); // 1.1 s of 2 s
      await codeOf(verifier.verify(token));
      assert.equal(fetches(), 2, 'the second backoff is longer');
      t.mock.timers.tick(1_000); // past 2 s
      await codeOf(verifier.verify(token));
      assert.equal(fetches(), 3);
      t.mock.timers.tick(3_000); // 3 s of 4 s
      await codeOf(verifier.verify(token));
      assert.equal(fetches(), 3);
    } finally {
      issuer.discovery = 'ok';
    }
    t.mock.timers.tick(1_100);
    await verifier.verify(token);
    assert.equal(fetches(), 4);
  });

  test(`unknown-kid refetches are single-flight and rate-limited; a rotation is picked up after the cooldown`, async (t) => {
    t.mock.timers.enable({ apis: ['Date'], now: Date.now() });
    const verifier = verifierFor();
    await verifier.verify(await issuer.mint(es256, audience));
    const start = issuer.counts.jwks;
    const tokens = await junk(BURST);

    t.mock.timers.tick(6_000);
    assert.deepEqual(await codesOf(tokens.map((token) => verifier.verify(token))), new Set(['unknown_key']));
    assert.equal(issuer.counts.jwks - start, 1, 'one refetch for the whole burst');
    assert.deepEqual(await codesOf(tokens.map((token) => verifier.verify(token))), new Set(['unknown_key']));
    assert.equal(issuer.counts.jwks - start, 1, 'none within the cooldown');

    const rotated = await createSigningKey('ES256');
    const previous = issuer.published;
    issuer.published = [rotated, ...previous];
    try {
      const fresh = await issuer.mint(rotated, audience);
      assert.equal(await codeOf(verifier.verify(fresh)), 'unknown_key', 'still within the cooldown');
      t.mock.timers.tick(6_000);
      assert.equal((await verifier.verify(fresh)).claims.iss, issuer.issuer, 'the first unknown-kid token after the cooldown finds the new key');
      assert.equal(issuer.counts.jwks - start, 2);
    } finally {
      issuer.published = previous;
    }
  });

  test('a JWS whose payload or protected header is not JSON is token_malformed, whatever its signature', async () => {
    const verifier = verifierFor();
    const sign = (payload: string, header: CompactJWSHeaderParameters = { alg: 'ES256', kid: es256.kid, typ: 'at+jwt' }) =>
      new CompactSign(new TextEncoder().encode(payload)).setProtectedHeader(header).sign(es256.privateKey);
    const signedNotJson = await sign('not json');
    const [header, , signature] = signedNotJson.split('.');
    const valid = await issuer.mint(es256, audience);
    const [, validPayload, validSignature] = valid.split('.');
    const cases: Record<string, string> = {
      'payload not JSON, signed by the published key': signedNotJson,
      'payload not JSON, wrong signature': `${header}.${base64url.encode('{"nope":')}.${signature}`,
      'payload a JSON array': await sign('[1,2,3]'),
      'payload not base64url': `${header}.%%%.${signature}`,
      'payload not UTF-8': `${header}.${base64url.encode(new Uint8Array([0xff, 0xfe, 0x7b]))}.${signature}`,
      'payload not JSON, unknown kid': await sign('not json', { alg: 'ES256', kid: 'nobody', typ: 'at+jwt' }),
      'header not JSON': `${base64url.encode('{"alg":')}.${validPayload}.${validSignature}`,
      'header a JSON string': `${base64url.encode('"ES256"')}.${validPayload}.${validSignature}`,
    };
    for (const [name, token] of Object.entries(cases)) {
      assert.equal(await codeOf(verifier.verify(token)), 'token_malformed', name);
    }
  });

  test('requireEncryption refuses a bare JWS as wrong_type and accepts an encrypt_whole_token JWE', async () => {
    const verifier = verifierFor({ innerKey: innerKey.privateJwk, requireEncryption: true });
    const jws = await issuer.mint(es256, audience, { innerTo: innerKey, inner: { email: 'ada@example.com' } });
    assert.equal(await codeOf(verifier.verify(jws)), 'wrong_type');
    const jwe = await encryptTo(innerKey, jws, { cty: 'JWT' });
    const { claims, inner } = await verifier.verify(jwe);
    assert.equal(claims.iss, issuer.issuer);
    assert.equal(inner?.email, 'ada@example.com');
    // Still refused after the JWE (the verified-token cache is per token string).
    assert.equal(await codeOf(verifier.verify(jws)), 'wrong_type');
    // Without requireEncryption the same JWS is fine.
    assert.equal((await verifierFor({ innerKey: innerKey.privateJwk }).verify(jws)).claims.iss, issuer.issuer);
    // A JWE cannot be opened without the key, so the option needs it.
    assert.throws(() => verifierFor({ requireEncryption: true }), TypeError);
  });
});
