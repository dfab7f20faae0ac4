import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { createTotp, TOTP_PERIOD_SECONDS } from '../../src/accounts/totp.js';
import { base32Decode, totpCode } from '../support/totp.js';

/** RFC 6238 Appendix B: the seed is the ASCII string "12345678901234567890" for SHA-1. */
const RFC_SECRET = 'GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ';
/** Appendix B, SHA-1 column: Unix time (s) → 8-digit TOTP. Gatehouse uses 6 digits: the last six (RFC 4226 §5.3 truncation mod 10^6). */
const RFC_VECTORS: readonly (readonly [number, string])[] = [
  [59, '94287082'],
  [1111111109, '07081804'],
  [1111111111, '14050471'],
  [1234567890, '89005924'],
  [2000000000, '69279037'],
  [20000000000, '65353130'],
];
const STEP_MS = TOTP_PERIOD_SECONDS * 1000;

/** A verifier whose clock is frozen at `atMs` (never the wall clock). */
const frozenAt = (atMs: number) => createTotp({ issuer: 'id.example.com', now: () => atMs });

describe('TOTP (RFC 6238: SHA-1, 6 digits, 30 s, one step of drift)', () => {
  test('the seed decodes to the RFC 6238 Appendix B ASCII secret', () => {
    assert.equal(base32Decode(RFC_SECRET).toString('ascii'), '12345678901234567890');
  });

  test('the independent test generator reproduces the 8-digit Appendix B vectors', () => {
    for (const [seconds, expected] of RFC_VECTORS) assert.equal(totpCode(RFC_SECRET, seconds * 1000, 0, 8), expected, `T = ${seconds}`);
  });

  test('the verifier accepts each Appendix B vector (last 6 digits) at its time, and reports its time step', () => {
    for (const [seconds, expected] of RFC_VECTORS) {
      const result = frozenAt(seconds * 1000).check(RFC_SECRET, expected.slice(-6));
      assert.deepEqual(result, { ok: true, timeStep: Math.floor(seconds / TOTP_PERIOD_SECONDS) }, `T = ${seconds}`);
    }
  });

  test('a vector is refused far from its time', () => {
    const [seconds, expected] = RFC_VECTORS[3]!;
    assert.equal(frozenAt((seconds + 10 * TOTP_PERIOD_SECONDS) * 1000).check(RFC_SECRET, expected.slice(-6)).ok, false);
  });

  // The clock at the first, middle and last millisecond of a step: drift is counted in steps, not seconds.
  const base = 1_700_000_010 * 1000 - (1_700_000_010 * 1000) % STEP_MS;
  for (const [where, atMs] of [
    ['start', base],
    ['middle', base + STEP_MS / 2],
    ['end', base + STEP_MS - 1],
  ] as const) {
    test(`one step either way is accepted, two are refused (clock at the ${where} of a step)`, () => {
      const totp = frozenAt(atMs);
      const step = Math.floor(atMs / STEP_MS);
      for (const offset of [-1, 0, 1]) {
        assert.deepEqual(totp.check(RFC_SECRET, totpCode(RFC_SECRET, atMs, offset)), { ok: true, timeStep: step + offset }, `offset ${offset}`);
      }
      for (const offset of [-3, -2, 2, 3]) {
        const code = totpCode(RFC_SECRET, atMs, offset);
        // A code outside the window could collide with one inside it (1 in 10^6 per step); not here.
        assert.ok([-1, 0, 1].every((inside) => totpCode(RFC_SECRET, atMs, inside) !== code));
        assert.deepEqual(totp.check(RFC_SECRET, code), { ok: false }, `offset ${offset}`);
      }
    });
  }

  test('malformed codes are refused without throwing', () => {
    const totp = frozenAt(59_000);
    for (const code of ['', '12345', '1234567', 'abcdef', ' 123456', '287082 ', '28708２', '28 7082', '-28708', '2.8708', '\u0000287082']) {
      assert.doesNotThrow(() => totp.check(RFC_SECRET, code), JSON.stringify(code));
      assert.deepEqual(totp.check(RFC_SECRET, code), { ok: false }, JSON.stringify(code));
    }
    // The well-formed code for that time is still accepted: the refusals above are about shape.
    assert.equal(totp.check(RFC_SECRET, '287082').ok, true);
  });

  test('newSecret is 160 random bits in base32, different on every call', () => {
    const totp = frozenAt(0);
    const secrets = Array.from({ length: 20 }, () => totp.newSecret());
    for (const secret of secrets) {
      assert.match(secret, /^[A-Z2-7]{32}$/);
      assert.equal(base32Decode(secret).length, 20);
    }
    assert.equal(new Set(secrets).size, secrets.length);
  });

  test('a new secret works with an independent RFC 6238 implementation', () => {
    const atMs = 1_800_000_000_000;
    const totp = frozenAt(atMs);
    const secret = totp.newSecret();
    assert.deepEqual(totp.check(secret, totpCode(secret, atMs)), { ok: true, timeStep: Math.floor(atMs / STEP_MS) });
  });

  test('uri() is a parseable Key Uri Format otpauth://totp URI with issuer, label and secret', () => {
    const totp = frozenAt(0);
    const secret = totp.newSecret();
    const uri = new URL(totp.uri(secret, 'alice@example.com'));
    assert.equal(uri.protocol, 'otpauth:');
    assert.equal(uri.host, 'totp');
    assert.equal(decodeURIComponent(uri.pathname.slice(1)), 'id.example.com:alice@example.com');
    assert.equal(uri.searchParams.get('secret'), secret);
    assert.equal(uri.searchParams.get('issuer'), 'id.example.com');
    // Omitted parameters mean SHA1, 6 digits, 30 s; present ones must say the same.
    assert.equal(uri.searchParams.get('algorithm') ?? 'SHA1', 'SHA1');
    assert.equal(uri.searchParams.get('digits') ?? '6', '6');
    assert.equal(uri.searchParams.get('period') ?? '30', '30');
  });

  test('uri() keeps an account name with reserved characters in the label', () => {
    const uri = new URL(frozenAt(0).uri(RFC_SECRET, 'bob smith:ops/1?x&y'));
    assert.equal(decodeURIComponent(uri.pathname.slice(1)), 'id.example.com:bob smith:ops/1?x&y');
    assert.equal(uri.searchParams.get('secret'), RFC_SECRET);
  });
});
