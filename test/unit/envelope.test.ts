import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, test } from 'node:test';
import { createEnvelope, EnvelopeError, masterKeyId } from '../../src/crypto/envelope.js';

describe('secrets at rest: AES-256-GCM envelope', () => {
  const key = randomBytes(32);
  const envelope = createEnvelope(key);

  test('round-trips and never contains the plaintext', () => {
    const sealed = envelope.seal('private key material', 'signing_keys:k1');
    assert.match(sealed, /^ge1\.[\w-]+\.[\w-]+\.[\w-]+\.[\w-]+$/);
    assert.ok(!sealed.includes('private'));
    assert.equal(envelope.open(sealed, 'signing_keys:k1').toString(), 'private key material');
  });

  test('names the master key that sealed it, so MASTER_KEY can be rotated', () => {
    const sealed = envelope.seal('x', 'p');
    assert.equal(sealed.split('.')[1], masterKeyId(key));
    const rotated = createEnvelope(randomBytes(32), [key]);
    assert.equal(rotated.open(sealed, 'p').toString(), 'x');
    assert.notEqual(rotated.seal('x', 'p').split('.')[1], masterKeyId(key));
  });

  test('refuses a value copied to another purpose (row binding)', () => {
    const sealed = envelope.seal('x', 'signing_keys:a');
    assert.throws(() => envelope.open(sealed, 'signing_keys:b'), (e: unknown) => e instanceof EnvelopeError && e.code === 'envelope_tampered');
  });

  test('refuses tampered ciphertext', () => {
    const parts = envelope.seal('secret value', 'p').split('.');
    const ciphertext = Buffer.from(parts[3]!, 'base64url');
    ciphertext[0] = ciphertext[0]! ^ 1;
    parts[3] = ciphertext.toString('base64url');
    assert.throws(() => envelope.open(parts.join('.'), 'p'), (e: unknown) => e instanceof EnvelopeError && e.code === 'envelope_tampered');
  });

  test('a different MASTER_KEY cannot open it and says why', () => {
    const sealed = envelope.seal('x', 'p');
    assert.throws(
      () => createEnvelope(randomBytes(32)).open(sealed, 'p'),
      (e: unknown) => e instanceof EnvelopeError && e.code === 'envelope_unknown_key' && /MASTER_KEY/.test(e.message),
    );
  });

  test('rejects garbage and short keys', () => {
    assert.throws(() => envelope.open('not-an-envelope', 'p'), (e: unknown) => e instanceof EnvelopeError && e.code === 'envelope_malformed');
    assert.throws(() => createEnvelope(randomBytes(16)), RangeError);
  });
});
