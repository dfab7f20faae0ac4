import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, beforeEach, describe, test } from 'node:test';
import * as oidc from 'openid-client';
import { createDeviceCookies, DEVICE_COOKIE } from '../../src/sign-in/device-cookies.js';
import { adminCall, adminToken } from '../support/admin-api.js';
import { CookieClient, formAction, hiddenField } from '../support/cookie-client.js';
import { pkceParams } from '../support/sign-in.js';
import { totpCode } from '../support/totp.js';
import { startTestServer, type TestServer } from '../support/server.js';

/**
 * Lockout as denial of service (SPEC §4, OWASP "device cookies"): anyone can lock a known
 * username with five wrong passwords, but a browser that signed in to the account before carries
 * a signed device cookie and is counted under its own key, so it still signs in. Without the
 * cookie, or with a tampered or forged one, the account's lock applies; a device's own failures
 * lock that device only.
 */

const REDIRECT = 'http://127.0.0.1:9/callback';
const PASSWORD = 'correct horse battery staple';
const WRONG = 'not the password at all';

describe('device cookies: a browser that signed in before is not locked out by failures from elsewhere', () => {
  let server: TestServer;
  let config: oidc.Configuration;

  async function loginForm(browser: CookieClient): Promise<{ action: URL; csrf: string }> {
    const { params } = await pkceParams(REDIRECT, 'openid');
    const page = await browser.follow(await browser.get(oidc.buildAuthorizationUrl(config, params)), server.url);
    assert.equal(page.status, 200);
    const html = await page.text();
    const action = formAction(html, /\/login$/);
    const csrf = hiddenField(html, 'csrf');
    assert.ok(action !== undefined && csrf !== undefined);
    return { action: new URL(action, server.url), csrf };
  }

  /** One password post in a fresh authorization request of `browser`; the response. */
  async function attempt(browser: CookieClient, username: string, password: string): Promise<Response> {
    const form = await loginForm(browser);
    const response = await browser.postForm(form.action, { csrf: form.csrf, username, password });
    await response.text();
    return response;
  }

  const signedIn = (response: Response) => response.status === 303 && !(response.headers.get('location') ?? '').includes('/interaction/');

  async function createUser(username: string): Promise<void> {
    const created = await adminCall(server, 'POST', '/users', { username, password: PASSWORD }, await adminToken(server, 'admin:users'));
    assert.equal(created.status, 201, JSON.stringify(created.body));
  }

  /** Five wrong passwords from a browser without any cookie of the account: the account is locked. */
  async function lockFromElsewhere(username: string): Promise<void> {
    const attacker = new CookieClient();
    for (let i = 0; i < 5; i += 1) assert.equal((await attempt(attacker, username, WRONG)).status, 401);
    assert.equal((await attempt(attacker, username, PASSWORD)).status, 429, 'locked for anyone without a device cookie');
  }

  before(async () => {
    server = await startTestServer();
    const client = await adminCall<{ client_id: string; client_secret: string }>(
      server,
      'POST',
      '/clients',
      { client_name: 'Trusting', grant_types: ['authorization_code'], redirect_uris: [REDIRECT], scope: 'openid', first_party: true },
      await adminToken(server, 'admin:clients'),
    );
    assert.equal(client.status, 201);
    config = await oidc.discovery(new URL(server.issuer), client.body.client_id, client.body.client_secret, undefined, { execute: [oidc.allowInsecureRequests] });
  });
  after(() => server?.close());
  // Every request comes from 127.0.0.1: the address's own (looser) limit is not under test here.
  beforeEach(() => server.db.query("DELETE FROM login_throttle WHERE key LIKE 'ip:%'"));

  test('a sign-in sets a signed, HttpOnly, SameSite=Lax, long-lived device cookie', async () => {
    await createUser('owner');
    const browser = new CookieClient();
    const form = await loginForm(browser);
    const response = await browser.postForm(form.action, { csrf: form.csrf, username: 'owner', password: PASSWORD });
    assert.equal(response.status, 303);
    const header = response.headers.getSetCookie().find((h) => h.startsWith(`${DEVICE_COOKIE}=`));
    assert.ok(header, 'a device cookie');
    assert.match(header, /; HttpOnly/);
    assert.match(header, /; SameSite=Lax/);
    assert.match(header, /; Path=\/interaction/);
    assert.ok(Number(/Max-Age=(\d+)/.exec(header)?.[1]) >= 180 * 24 * 3600, 'long-lived');
    assert.doesNotMatch(header, /; Secure/, 'not Secure under an http:// issuer');
    assert.doesNotMatch(header, /owner/, 'the username is not in the cookie');
    // A failed attempt sets none.
    const stranger = await attempt(new CookieClient(), 'owner', WRONG);
    assert.equal(stranger.headers.getSetCookie().some((h) => h.startsWith(`${DEVICE_COOKIE}=`)), false);
  });

  test('the account locked from elsewhere: the browser with the device cookie signs in; without it, or with a tampered or forged one, refused', async () => {
    await createUser('target');
    const trusted = new CookieClient();
    assert.ok(signedIn(await attempt(trusted, 'target', PASSWORD)), 'the first sign-in from this browser');
    const genuine = trusted.cookies.get(DEVICE_COOKIE);

    await lockFromElsewhere('target');

    const again = await attempt(trusted, 'target', PASSWORD);
    assert.ok(signedIn(again), `the trusted browser still signs in while the account is locked (got ${again.status})`);
    assert.ok(genuine, 'the browser held a device cookie');
    assert.notEqual(trusted.cookies.get(DEVICE_COOKIE), genuine, 'and gets a fresh device cookie');

    const without = await attempt(new CookieClient(), 'target', PASSWORD);
    assert.equal(without.status, 429, 'without the cookie: the account lock');

    const [payload, signature] = genuine.split('.');
    const flipped = `${payload!.slice(0, -2)}${payload!.at(-2) === 'A' ? 'B' : 'A'}${payload!.at(-1)}.${signature}`;
    const forged = createDeviceCookies({ keys: [randomBytes(32)], secure: false }).issue(undefined, 'target').value;
    for (const [label, value] of [
      ['tampered', flipped],
      ['forged with another key', forged],
      ['the old cookie, with its signature cut', `${payload}.`],
    ] as const) {
      const browser = new CookieClient();
      browser.cookies.set(DEVICE_COOKIE, value);
      assert.equal((await attempt(browser, 'target', PASSWORD)).status, 429, `${label}: treated as no cookie`);
    }

    // The cookie is for its account only: with it, another locked account is still locked.
    await createUser('neighbour');
    await lockFromElsewhere('neighbour');
    assert.equal((await attempt(trusted, 'neighbour', PASSWORD)).status, 429, "another account's lock still applies");
  });

  test("a device's own failures lock that device, not the account", async () => {
    await createUser('typist');
    const device = new CookieClient();
    assert.ok(signedIn(await attempt(device, 'typist', PASSWORD)));
    for (let i = 0; i < 5; i += 1) assert.equal((await attempt(device, 'typist', WRONG)).status, 401);
    const locked = await attempt(device, 'typist', PASSWORD);
    assert.equal(locked.status, 429, 'the device is locked after its own five failures');
    assert.ok(Number(locked.headers.get('retry-after')) > 0);
    const { rows } = await server.db.query<{ key: string; failures: number }>("SELECT key, failures FROM login_throttle WHERE key LIKE 'device:%' AND failures = 5");
    assert.equal(rows.length, 1, 'counted under the device key');
    assert.ok(signedIn(await attempt(new CookieClient(), 'typist', PASSWORD)), 'the account itself is not locked by them');
  });

  test('with a second factor: the cookie comes only with the completed sign-in, and then the code step is the device\'s too', async () => {
    const created = await adminCall(server, 'POST', '/users', { username: 'careful', password: PASSWORD, mfa_required: true }, await adminToken(server, 'admin:users'));
    assert.equal(created.status, 201);
    const browser = new CookieClient();
    const codeStep = async (): Promise<{ response: Response; html: string }> => {
      const form = await loginForm(browser);
      const response = await browser.postForm(form.action, { csrf: form.csrf, username: 'careful', password: PASSWORD });
      if (response.status !== 303) return { response, html: await response.text() };
      const page = await browser.follow(response, server.url);
      return { response, html: await page.text() };
    };
    const submit = async (html: string, code: string) => {
      const action = formAction(html, /\/second-factor$/);
      assert.ok(action, 'a code form');
      return browser.postForm(new URL(action, server.url), { csrf: hiddenField(html, 'csrf') ?? '', code });
    };

    const enrolling = await codeStep();
    assert.equal(enrolling.response.headers.getSetCookie().some((h) => h.startsWith(`${DEVICE_COOKIE}=`)), false, 'no device cookie for a password alone');
    const secret = new URL(/href="(otpauth:\/\/totp\/[^"]+)"/.exec(enrolling.html)![1]!.replaceAll('&amp;', '&')).searchParams.get('secret')!;
    const confirmed = await submit(enrolling.html, totpCode(secret));
    assert.equal(confirmed.status, 200);
    assert.ok(browser.cookies.get(DEVICE_COOKIE), 'the device cookie once the second factor is set up');
    assert.equal((await submit(await confirmed.text(), '')).status, 303);

    await lockFromElsewhere('careful');
    const step = await codeStep();
    assert.match(step.html, /Two-step verification/, 'the trusted browser reaches the code step while the account is locked');
    const done = await submit(step.html, totpCode(secret, Date.now(), 1));
    assert.ok(signedIn(done), `and signs in with the code (got ${done.status})`);
  });
});
