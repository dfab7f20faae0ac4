import assert from 'node:assert/strict';
import { createHmac, randomBytes } from 'node:crypto';
import { describe, test } from 'node:test';
import { createClientSecretHasher, generateClientId, generateClientSecret } from '../../src/crypto/client-secret.js';

describe('client secrets: keyed hash at rest', () => {
  const key = randomBytes(32);
  const hasher = createClientSecretHasher(key);

  test('generated secrets carry 256 random bits', () => {
    const secret = generateClientSecret();
    assert.equal(Buffer.from(secret, 'base64url').length, 32);
    assert.notEqual(generateClientSecret(), secret);
  });

  test('client ids carry 128 random bits and never start with "-" (a CLI argument would read as an option)', () => {
    // 1 in 64 base64url ids would start with '-': 2,000 draws meet one with near certainty.
    const ids = Array.from({ length: 2_000 }, () => generateClientId());
    assert.ok(ids.every((id) => Buffer.from(id, 'base64url').length === 16 && !id.startsWith('-')));
    assert.equal(new Set(ids).size, ids.length);
  });

  test('the stored form is HMAC-SHA-256 under the server key, not the secret', () => {
    const secret = generateClientSecret();
    const stored = hasher.hash(secret);
    assert.ok(!stored.includes(secret));
    assert.equal(stored, `hmac-sha256$${createHmac('sha256', key).update(secret).digest('base64url')}`);
  });

  test('verifies the right secret only', () => {
    const secret = generateClientSecret();
    const stored = hasher.hash(secret);
    assert.equal(hasher.verify(secret, stored), true);
    assert.equal(hasher.verify(`${secret}x`, stored), false);
    assert.equal(hasher.verify('', stored), false);
  });

  test('a hash made under another server key does not verify', () => {
    const secret = generateClientSecret();
    assert.equal(createClientSecretHasher(randomBytes(32)).verify(secret, hasher.hash(secret)), false);
  });

  test('malformed stored values never verify', () => {
    for (const stored of ['', 'plain-text-secret', 'hmac-sha256$', 'md5$abc', 'hmac-sha256$AAAA']) {
      assert.equal(hasher.verify('anything', stored), false, stored);
    }
  });
});
