import assert from 'node:assert/strict';
import { generateKeyPairSync, randomBytes, type JsonWebKey, type KeyObject } from 'node:crypto';
import { describe, test } from 'node:test';
import { compactDecrypt, decodeProtectedHeader, errors as joseErrors } from 'jose';
import { importRecipient, JweKeyError, openEscrowed, type KeyManagementAlg } from '../../src/tokens/jwe.js';

/**
 * Our compact JWE (src/tokens/jwe.ts) is hand-built on node:crypto, so every algorithm it claims is
 * proven here by an independent implementation: jose decrypts its output with the private key.
 */

interface RecipientKind {
  readonly name: string;
  readonly alg: KeyManagementAlg;
  readonly epk: { kty: string; crv: string } | undefined;
  generate(): { publicKey: KeyObject; privateKey: KeyObject };
}

const KINDS: readonly RecipientKind[] = [
  { name: 'EC P-256', alg: 'ECDH-ES+A256KW', epk: { kty: 'EC', crv: 'P-256' }, generate: () => generateKeyPairSync('ec', { namedCurve: 'P-256' }) },
  { name: 'EC P-384', alg: 'ECDH-ES+A256KW', epk: { kty: 'EC', crv: 'P-384' }, generate: () => generateKeyPairSync('ec', { namedCurve: 'P-384' }) },
  { name: 'EC P-521', alg: 'ECDH-ES+A256KW', epk: { kty: 'EC', crv: 'P-521' }, generate: () => generateKeyPairSync('ec', { namedCurve: 'P-521' }) },
  { name: 'OKP X25519', alg: 'ECDH-ES+A256KW', epk: { kty: 'OKP', crv: 'X25519' }, generate: () => generateKeyPairSync('x25519') },
  { name: 'RSA 2048', alg: 'RSA-OAEP-256', epk: undefined, generate: () => generateKeyPairSync('rsa', { modulusLength: 2048 }) },
  { name: 'RSA 3072', alg: 'RSA-OAEP-256', epk: undefined, generate: () => generateKeyPairSync('rsa', { modulusLength: 3072 }) },
];

const decryptOptions = { keyManagementAlgorithms: ['ECDH-ES+A256KW', 'RSA-OAEP-256'], contentEncryptionAlgorithms: ['A256GCM'] };

function publicJwk(publicKey: KeyObject, extra: Record<string, string> = {}): JsonWebKey {
  return { ...publicKey.export({ format: 'jwk' }), ...extra };
}

function segment(compact: string, index: number): string {
  const value = compact.split('.')[index];
  assert.ok(value !== undefined, `segment ${index} of ${compact}`);
  return value;
}

/** The compact JWE with one segment replaced. */
function withSegment(compact: string, index: number, value: string): string {
  const parts = compact.split('.');
  parts[index] = value;
  return parts.join('.');
}

/** Flips the low bit of one byte in the middle of a base64url segment's decoded bytes. */
function flipByte(encoded: string): string {
  const bytes = Buffer.from(encoded, 'base64url');
  const index = Math.floor(bytes.length / 2);
  bytes[index] = bytes[index]! ^ 0x01;
  return bytes.toString('base64url');
}

function assertRefused(jwk: Record<string, unknown>, pattern?: RegExp): void {
  assert.throws(
    () => importRecipient(jwk),
    (error: unknown) => {
      assert.ok(error instanceof JweKeyError, `expected JweKeyError, got ${String(error)}`);
      assert.equal(error.code, 'jwe_key_unsupported');
      if (pattern !== undefined) assert.match(error.message, pattern);
      return true;
    },
  );
}

for (const kind of KINDS) {
  describe(`compact JWE to an ${kind.name} key, decrypted by jose`, () => {
    const keys = kind.generate();
    const other = kind.generate();
    const kid = `kid-${kind.name.replace(/\W+/g, '-').toLowerCase()}`;
    const recipient = importRecipient(publicJwk(keys.publicKey, { kid, use: 'enc', alg: kind.alg }));
    const plaintext = JSON.stringify({ jti: 'token-1', client_id: 'orders', client_name: 'Orders ✓' });

    test('jose decrypts it with the private key to the same plaintext', async () => {
      assert.equal(recipient.alg, kind.alg);
      assert.equal(recipient.kid, kid);
      const jwe = recipient.encrypt(plaintext, { cty: 'JWT' });
      assert.equal(jwe.split('.').length, 5);
      const result = await compactDecrypt(jwe, keys.privateKey, decryptOptions);
      assert.equal(new TextDecoder().decode(result.plaintext), plaintext);
    });

    test('the protected header names alg, enc, kid, the extra cty and (for ECDH) a public epk', async () => {
      const jwe = recipient.encrypt(plaintext, { cty: 'JWT' });
      const { protectedHeader } = await compactDecrypt(jwe, keys.privateKey, decryptOptions);
      assert.equal(protectedHeader.alg, kind.alg);
      assert.equal(protectedHeader.enc, 'A256GCM');
      assert.equal(protectedHeader.kid, kid);
      assert.equal(protectedHeader.cty, 'JWT');
      // RFC 7516 §7.1: the compact serialization has no shared or per-recipient unprotected header.
      assert.equal(segment(jwe, 0), Buffer.from(JSON.stringify(protectedHeader)).toString('base64url'));
      if (kind.epk === undefined) {
        assert.equal(protectedHeader.epk, undefined);
        assert.deepEqual(Object.keys(protectedHeader).sort(), ['alg', 'cty', 'enc', 'kid']);
      } else {
        const epk = protectedHeader.epk as Record<string, unknown>;
        assert.equal(epk['kty'], kind.epk.kty);
        assert.equal(epk['crv'], kind.epk.crv);
        assert.equal(typeof epk['x'], 'string');
        assert.equal(epk['d'], undefined, 'the ephemeral private key never leaves');
        if (kind.epk.kty === 'EC') assert.equal(typeof epk['y'], 'string');
        else assert.equal(epk['y'], undefined);
        assert.deepEqual(Object.keys(protectedHeader).sort(), ['alg', 'cty', 'enc', 'epk', 'kid']);
      }
    });

    test('without an extra header there is no cty, and a key without kid writes no kid', async () => {
      const anonymous = importRecipient(publicJwk(keys.publicKey));
      assert.equal(anonymous.kid, undefined);
      const jwe = anonymous.encrypt('hello');
      const { plaintext: opened, protectedHeader } = await compactDecrypt(jwe, keys.privateKey, decryptOptions);
      assert.equal(new TextDecoder().decode(opened), 'hello');
      assert.equal('kid' in protectedHeader, false);
      assert.equal('cty' in protectedHeader, false);
    });

    test('another key of the same type cannot decrypt it', async () => {
      const jwe = recipient.encrypt(plaintext);
      await assert.rejects(compactDecrypt(jwe, other.privateKey, decryptOptions), joseErrors.JWEDecryptionFailed);
    });

    test('a flipped byte in the ciphertext, tag, IV or encrypted key fails authentication', async () => {
      const jwe = recipient.encrypt(plaintext, { cty: 'JWT' });
      for (const [index, part] of [
        [3, 'ciphertext'],
        [4, 'tag'],
        [2, 'iv'],
        [1, 'encrypted key'],
      ] as const) {
        const tampered = withSegment(jwe, index, flipByte(segment(jwe, index)));
        await assert.rejects(compactDecrypt(tampered, keys.privateKey, decryptOptions), joseErrors.JWEDecryptionFailed, `${part} was not authenticated`);
      }
    });

    test('the protected header, cty included, is authenticated (RFC 7516 §5.1 step 14)', async () => {
      const jwe = recipient.encrypt(plaintext, { cty: 'JWT' });
      const header = Buffer.from(segment(jwe, 0), 'base64url').toString('utf8');
      assert.ok(header.includes('"cty":"JWT"'));
      // A header that still parses and names the same key, but says something else about the content.
      const retyped = withSegment(jwe, 0, Buffer.from(header.replace('"cty":"JWT"', '"cty":"JWS"')).toString('base64url'));
      await assert.rejects(compactDecrypt(retyped, keys.privateKey, decryptOptions), joseErrors.JWEDecryptionFailed);
      const rekeyed = withSegment(jwe, 0, Buffer.from(header.replace(`"kid":"${kid}"`, `"kid":"${kid}x"`)).toString('base64url'));
      await assert.rejects(compactDecrypt(rekeyed, keys.privateKey, decryptOptions), joseErrors.JWEDecryptionFailed);
      // One raw byte of the header: it no longer parses, or no longer authenticates.
      const rawFlipped = withSegment(jwe, 0, flipByte(segment(jwe, 0)));
      await assert.rejects(compactDecrypt(rawFlipped, keys.privateKey, decryptOptions));
    });

    test('every encryption uses a fresh IV, content key and (for ECDH) ephemeral key', () => {
      const first = recipient.encrypt(plaintext);
      const second = recipient.encrypt(plaintext);
      assert.notEqual(segment(first, 2), segment(second, 2), 'iv reused');
      assert.notEqual(segment(first, 3), segment(second, 3), 'ciphertext repeated');
      assert.notEqual(segment(first, 1), segment(second, 1), 'encrypted key repeated');
      if (kind.epk !== undefined) {
        assert.notDeepEqual(decodeProtectedHeader(first).epk, decodeProtectedHeader(second).epk, 'ephemeral key reused');
      }
    });

    test('an escrowed content key is ignored by jose and opens only with the escrow key', async () => {
      const escrowKey = randomBytes(32);
      const jwe = recipient.encrypt(plaintext, { cty: 'JWT' }, escrowKey);
      assert.equal(new TextDecoder().decode((await compactDecrypt(jwe, keys.privateKey, decryptOptions)).plaintext), plaintext);
      assert.equal(openEscrowed(jwe, escrowKey)?.toString('utf8'), plaintext);
      assert.equal(openEscrowed(jwe, randomBytes(32)), undefined);
      assert.equal(openEscrowed(recipient.encrypt(plaintext), escrowKey), undefined);
      assert.equal(openEscrowed(withSegment(jwe, 3, flipByte(segment(jwe, 3))), escrowKey), undefined);
    });
  });
}

describe('importRecipient refuses keys SPEC §3 does not allow', () => {
  const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const x25519 = generateKeyPairSync('x25519');

  test('private JWKs (EC, RSA, X25519 with d), even when otherwise valid', () => {
    assertRefused(ec.privateKey.export({ format: 'jwk' }), /private/);
    assertRefused(rsa.privateKey.export({ format: 'jwk' }), /private/);
    assertRefused(x25519.privateKey.export({ format: 'jwk' }), /private/);
    // Only one private member is enough.
    assertRefused({ ...rsa.publicKey.export({ format: 'jwk' }), p: 'AQAB' }, /private/);
  });

  test('symmetric keys (kty oct), with or without k', () => {
    assertRefused({ kty: 'oct', k: randomBytes(32).toString('base64url') });
    assertRefused({ kty: 'oct', alg: 'A256KW' });
  });

  test('signing keys: Ed25519 and Ed448', () => {
    assertRefused(generateKeyPairSync('ed25519').publicKey.export({ format: 'jwk' }));
    assertRefused(generateKeyPairSync('ed448').publicKey.export({ format: 'jwk' }));
  });

  test('curves other than P-256/384/521 and X25519: secp256k1 (P-256K), X448', () => {
    const k1 = generateKeyPairSync('ec', { namedCurve: 'secp256k1' }).publicKey.export({ format: 'jwk' });
    assertRefused(k1);
    assertRefused({ ...k1, crv: 'P-256K' });
    assertRefused(generateKeyPairSync('x448').publicKey.export({ format: 'jwk' }));
  });

  test('RSA keys under 2048 bits', () => {
    assertRefused(generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey.export({ format: 'jwk' }), /2048/);
  });

  test('keys marked for signing (use "sig")', () => {
    assertRefused({ ...ec.publicKey.export({ format: 'jwk' }), use: 'sig' }, /encryption/);
    assertRefused({ ...rsa.publicKey.export({ format: 'jwk' }), use: 'sig' }, /encryption/);
    assertRefused({ ...x25519.publicKey.export({ format: 'jwk' }), use: 'sig' }, /encryption/);
  });

  test('an alg that does not match the key type or is not ours', () => {
    assertRefused({ ...ec.publicKey.export({ format: 'jwk' }), alg: 'RSA-OAEP-256' });
    assertRefused({ ...ec.publicKey.export({ format: 'jwk' }), alg: 'ECDH-ES' });
    assertRefused({ ...ec.publicKey.export({ format: 'jwk' }), alg: 'ES256' });
    assertRefused({ ...x25519.publicKey.export({ format: 'jwk' }), alg: 'ECDH-ES+A128KW' });
    assertRefused({ ...rsa.publicKey.export({ format: 'jwk' }), alg: 'ECDH-ES+A256KW' });
    assertRefused({ ...rsa.publicKey.export({ format: 'jwk' }), alg: 'RSA-OAEP' });
    assertRefused({ ...rsa.publicKey.export({ format: 'jwk' }), alg: 'RSA1_5' });
  });

  test('malformed public keys: a point off the curve, wrong coordinate lengths, missing members', () => {
    const jwk = ec.publicKey.export({ format: 'jwk' });
    const y = Buffer.from(jwk.y!, 'base64url');
    y[y.length - 1] = y[y.length - 1]! ^ 0x01;
    assertRefused({ ...jwk, y: y.toString('base64url') });
    assertRefused({ ...jwk, x: Buffer.from(jwk.x!, 'base64url').subarray(1).toString('base64url') });
    assertRefused({ kty: 'EC', crv: 'P-256', x: jwk.x });
    assertRefused({ ...jwk, crv: 'P-384' });
    assertRefused({ kty: 'OKP', crv: 'X25519', x: randomBytes(31).toString('base64url') });
    assertRefused({ kty: 'RSA', e: 'AQAB' });
    assertRefused({ kty: 'EC' });
    assertRefused({});
  });

  test('X25519 low-order points, with which no shared secret can be derived (RFC 7748 §6.1)', () => {
    // With one of these registered, every token for the resource server would fail to encrypt.
    assertRefused({ kty: 'OKP', crv: 'X25519', x: Buffer.alloc(32).toString('base64url') });
    assertRefused({ kty: 'OKP', crv: 'X25519', x: Buffer.concat([Buffer.from([1]), Buffer.alloc(31)]).toString('base64url') });
  });

  test('accepts public keys with use "enc" and the matching alg, or neither', () => {
    assert.equal(importRecipient({ ...ec.publicKey.export({ format: 'jwk' }), use: 'enc', alg: 'ECDH-ES+A256KW' }).alg, 'ECDH-ES+A256KW');
    assert.equal(importRecipient(x25519.publicKey.export({ format: 'jwk' })).alg, 'ECDH-ES+A256KW');
    assert.equal(importRecipient({ ...rsa.publicKey.export({ format: 'jwk' }), use: 'enc', alg: 'RSA-OAEP-256' }).alg, 'RSA-OAEP-256');
  });
});
