import assert from 'node:assert/strict';
import { generateKeyPairSync, randomBytes, type KeyObject } from 'node:crypto';
import { describe, test } from 'node:test';
import { compactDecrypt, decodeProtectedHeader } from 'jose';
import { createJweEncryptor } from '../../src/tokens/crypto-pool.js';
import { importRecipient, openEscrowed } from '../../src/tokens/jwe.js';

function recipientPair(generate: () => { publicKey: KeyObject; privateKey: KeyObject }) {
  const { publicKey, privateKey } = generate();
  return { recipient: importRecipient({ ...publicKey.export({ format: 'jwk' }), kid: 'rs-key' }), privateKey };
}

const KEYS = [
  { name: 'EC P-256', generate: () => generateKeyPairSync('ec', { namedCurve: 'P-256' }) },
  { name: 'OKP X25519', generate: () => generateKeyPairSync('x25519') },
  { name: 'RSA 2048', generate: () => generateKeyPairSync('rsa', { modulusLength: 2048 }) },
];

describe('JWE encryption off the event loop (src/tokens/crypto-pool.ts)', () => {
  for (const key of KEYS) {
    test(`${key.name}: a worker thread's JWE decrypts with jose to the plaintext`, async () => {
      const encryptor = createJweEncryptor({ threads: 1 });
      try {
        const { recipient, privateKey } = recipientPair(key.generate);
        const jwe = await encryptor.encrypt(recipient, '{"jti":"abc"}');
        const { plaintext, protectedHeader } = await compactDecrypt(jwe, privateKey);
        assert.equal(Buffer.from(plaintext).toString(), '{"jti":"abc"}');
        assert.equal(protectedHeader.kid, 'rs-key');
        assert.equal(protectedHeader.enc, 'A256GCM');
        assert.deepEqual(encryptor.counts(), { worker: 1, eventLoop: 0 }, 'built by the worker thread');
      } finally {
        await encryptor.close();
      }
    });
  }

  test('many concurrent jobs across two threads: each result is its own plaintext, every content key distinct', async () => {
    const encryptor = createJweEncryptor({ threads: 2 });
    try {
      const { recipient, privateKey } = recipientPair(KEYS[0]!.generate);
      const plaintexts = Array.from({ length: 300 }, (_, index) => JSON.stringify({ jti: `token-${index}` }));
      const jwes = await Promise.all(plaintexts.map((plaintext) => encryptor.encrypt(recipient, plaintext)));
      const decrypted = await Promise.all(jwes.map(async (jwe) => Buffer.from((await compactDecrypt(jwe, privateKey)).plaintext).toString()));
      assert.deepEqual(decrypted, plaintexts);
      assert.equal(encryptor.counts().worker, plaintexts.length);
      assert.equal(new Set(jwes.map((jwe) => jwe.split('.')[1])).size, jwes.length, 'a fresh wrapped key per token');
    } finally {
      await encryptor.close();
    }
  });

  test('whole-token encryption: extra header and the escrowed content key survive the trip to the worker', async () => {
    const encryptor = createJweEncryptor({ threads: 1 });
    try {
      const { recipient, privateKey } = recipientPair(KEYS[0]!.generate);
      const escrowKey = randomBytes(32);
      const jwe = await encryptor.encrypt(recipient, 'a.b.c', { extraHeader: { cty: 'JWT' }, escrowKey });
      assert.equal(decodeProtectedHeader(jwe).cty, 'JWT');
      assert.equal(Buffer.from((await compactDecrypt(jwe, privateKey)).plaintext).toString(), 'a.b.c');
      assert.equal(openEscrowed(jwe, escrowKey)?.toString(), 'a.b.c');
      assert.equal(openEscrowed(jwe, randomBytes(32)), undefined);
    } finally {
      await encryptor.close();
    }
  });

  test('a worker that dies: its jobs still complete (on the event loop) and the failure is reported', async () => {
    const failures: Error[] = [];
    const encryptor = createJweEncryptor({
      threads: 1,
      workerUrl: new URL('../fixtures/failing-crypto-worker.ts', import.meta.url),
      onWorkerError: (error) => failures.push(error),
    });
    try {
      const { recipient, privateKey } = recipientPair(KEYS[0]!.generate);
      const jwes = await Promise.all([encryptor.encrypt(recipient, 'one'), encryptor.encrypt(recipient, 'two')]);
      const plaintexts = await Promise.all(jwes.map(async (jwe) => Buffer.from((await compactDecrypt(jwe, privateKey)).plaintext).toString()));
      assert.deepEqual(plaintexts, ['one', 'two']);
      assert.deepEqual(encryptor.counts(), { worker: 0, eventLoop: 2 });
      assert.equal(failures.length, 1);
      assert.match(failures[0]!.message, /exited with code 3/);
      // Right after a failure, new jobs stay on the event loop rather than respawn in a loop.
      assert.equal(Buffer.from((await compactDecrypt(await encryptor.encrypt(recipient, 'three'), privateKey)).plaintext).toString(), 'three');
      assert.equal(failures.length, 1);
    } finally {
      await encryptor.close();
    }
  });

  test('threads: 0 builds the JWE on the event loop, and close() leaves later jobs working', async () => {
    const inline = createJweEncryptor({ threads: 0 });
    const { recipient, privateKey } = recipientPair(KEYS[0]!.generate);
    assert.equal(Buffer.from((await compactDecrypt(await inline.encrypt(recipient, 'x'), privateKey)).plaintext).toString(), 'x');
    assert.deepEqual(inline.counts(), { worker: 0, eventLoop: 1 });
    const pooled = createJweEncryptor({ threads: 1 });
    await pooled.encrypt(recipient, 'warm');
    await pooled.close();
    assert.equal(Buffer.from((await compactDecrypt(await pooled.encrypt(recipient, 'y'), privateKey)).plaintext).toString(), 'y');
  });
});
