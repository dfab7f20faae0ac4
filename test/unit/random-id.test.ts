import assert from 'node:assert/strict';
import { test } from 'node:test';
import { generateSigningKey } from '../../src/crypto/signing-keys.js';
import { randomIdentifier } from '../../src/crypto/random-id.js';

// 1 in 64 base64url identifiers would start with '-', which a CLI argument reads as an option
// (`gatehouse keys revoke KID` flaked on such a kid).
test('random identifiers carry the bits asked for and never start with "-"', () => {
  const ids = Array.from({ length: 2_000 }, () => randomIdentifier(12));
  assert.ok(ids.every((id) => Buffer.from(id, 'base64url').length === 12 && !id.startsWith('-')));
  assert.equal(new Set(ids).size, ids.length);
});

test('signing key ids never start with "-"', async () => {
  const keys = await Promise.all(Array.from({ length: 300 }, () => generateSigningKey('EdDSA')));
  assert.ok(keys.every((key) => !key.kid.startsWith('-') && Buffer.from(key.kid, 'base64url').length === 12));
});
