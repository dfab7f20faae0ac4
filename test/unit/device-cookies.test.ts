import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, test } from 'node:test';
import { createDeviceCookies, DEVICE_COOKIE } from '../../src/sign-in/device-cookies.js';

describe('device cookies (OWASP): signed entries per account', () => {
  const key = randomBytes(32);

  test('an entry is found for its own account only; a new sign-in keeps the other accounts and replaces its own nonce', () => {
    const cookies = createDeviceCookies({ keys: [key], secure: false });
    const alice = cookies.issue(undefined, 'alice');
    assert.equal(cookies.nonceFor(alice.value, 'alice'), alice.nonce);
    assert.equal(cookies.nonceFor(alice.value, 'bob'), undefined);
    const both = cookies.issue(alice.value, 'bob');
    assert.equal(cookies.nonceFor(both.value, 'alice'), alice.nonce);
    assert.equal(cookies.nonceFor(both.value, 'bob'), both.nonce);
    const again = cookies.issue(both.value, 'alice');
    assert.notEqual(again.nonce, alice.nonce);
    assert.equal(cookies.nonceFor(again.value, 'alice'), again.nonce);
    assert.doesNotMatch(Buffer.from(again.value.split('.')[0]!, 'base64url').toString(), /alice|bob/, 'no username in the cookie');
  });

  test('at most five accounts are remembered, the most recent first', () => {
    const cookies = createDeviceCookies({ keys: [key], secure: false });
    let value: string | undefined;
    for (const name of ['a', 'b', 'c', 'd', 'e', 'f']) value = cookies.issue(value, name).value;
    assert.equal(cookies.nonceFor(value, 'a'), undefined);
    for (const name of ['b', 'c', 'd', 'e', 'f']) assert.ok(cookies.nonceFor(value, name));
  });

  test('another key, a changed payload or signature, junk: no entry; an earlier key still verifies', () => {
    const cookies = createDeviceCookies({ keys: [key], secure: false });
    const { value } = cookies.issue(undefined, 'alice');
    const [payload, signature] = value.split('.') as [string, string];
    assert.equal(createDeviceCookies({ keys: [randomBytes(32)], secure: false }).nonceFor(value, 'alice'), undefined);
    assert.equal(cookies.nonceFor(`${payload}x.${signature}`, 'alice'), undefined);
    assert.equal(cookies.nonceFor(`${payload}.${signature.slice(1)}`, 'alice'), undefined);
    for (const junk of ['', '.', 'a.b.c', 'x'.repeat(5000), `${Buffer.from('{}').toString('base64url')}.${signature}`]) assert.equal(cookies.nonceFor(junk, 'alice'), undefined);
    const rotated = createDeviceCookies({ keys: [randomBytes(32), key], secure: false });
    assert.ok(rotated.nonceFor(value, 'alice'), 'verified with the previous key');
  });

  test('the cookie is HttpOnly, SameSite=Lax, scoped to the sign-in pages, long-lived, and Secure under an https issuer', () => {
    const plain = createDeviceCookies({ keys: [key], secure: false }).header('v');
    const secure = createDeviceCookies({ keys: [key], secure: true }).header('v');
    assert.match(plain, new RegExp(`^${DEVICE_COOKIE.replace('.', '\\.')}=v; Path=/interaction; Max-Age=31536000; Expires=[^;]+; HttpOnly; SameSite=Lax$`));
    assert.equal(secure, `${plain}; Secure`);
  });
});
