/// <reference lib="dom" />
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { adminCall, adminToken } from './admin-api.js';
import { CookieClient } from './cookie-client.js';
import { chromiumMissing, launchChromium } from './browser.js';
import type { GatewayScenario } from './gateway.js';
import { waitFor } from './server.js';
import { totpCode } from './totp.js';

const PASSWORD = 'gateway browser pass phrase';

/**
 * SPEC §7 browser sign-in through a real gateway, the same for every door: a person without a
 * session is sent to sign in on the hosted pages (Chromium), comes back through the gateway's
 * `/.gatehouse/callback` on the protected host and reaches the app; the sealed cookie is the
 * credential from then on. Routes: /app (role `staff`, trusted headers) and /app/admin (also a
 * second factor) on the scenario's host; /app on `localhost:<port>` too (another host).
 */
export function gatewayBrowserTests(env: () => GatewayScenario): void {
  describe('browser sign-in (Chromium)', { skip: chromiumMissing }, () => browserTests(env));
}

function browserTests(env: () => GatewayScenario): void {
  let browser: Browser;
  let context: BrowserContext;
  let userId: string;
  let admin: string;
  const username = `gw-${Date.now().toString(36)}`;

  before(async () => {
    const { server, port } = env();
    admin = await adminToken(server, 'admin:users admin:gateway');
    const user = await adminCall<{ id: string }>(server, 'POST', '/users', { username, password: PASSWORD, roles: ['staff'], email: `${username}@example.test`, name: 'Gate Keeper' }, admin);
    assert.equal(user.status, 201, JSON.stringify(user.body));
    userId = user.body.id;
    const resource = env().resource;
    for (const body of [
      { host: `127.0.0.1:${port}`, path_prefix: '/app', resource_server: resource, required_scopes: [], required_roles: ['staff'], browser_sign_in: true, identity_headers: 'trusted' },
      { host: `127.0.0.1:${port}`, path_prefix: '/app/admin', resource_server: resource, required_scopes: [], required_roles: ['staff'], require_mfa: true, browser_sign_in: true },
      { host: `localhost:${port}`, path_prefix: '/app', resource_server: resource, required_scopes: [], browser_sign_in: true },
    ]) {
      const created = await adminCall(server, 'POST', '/gateway-routes', body, admin);
      assert.equal(created.status, 201, JSON.stringify(created.body));
    }
    browser = await launchChromium();
    context = await browser.newContext();
  });
  after(async () => {
    await browser?.close();
  });

  async function signInOnHostedPage(page: Page): Promise<void> {
    await page.waitForSelector('#username');
    await page.fill('#username', username);
    await page.fill('#password', PASSWORD);
    await page.press('#password', 'Enter');
  }

  const sessionCookie = async () => (await context.cookies(env().site)).find((cookie) => cookie.name === 'gatehouse');

  test('browser: no session → sign-in on the hosted pages → back on the app with the person’s headers; the cookie is sealed, host-only, Secure, HttpOnly, Lax', async () => {
    const { site, reached, server } = env();
    reached.length = 0;
    const page = await context.newPage();
    const redirects: string[] = [];
    page.on('response', (response) => {
      if (response.status() >= 300 && response.status() < 400) redirects.push(`${response.status()} ${response.url()}`);
    });
    await page.goto(`${site}/app/reports?year=2026`);
    await page.waitForURL((url) => url.href.startsWith(server.url));
    assert.ok(redirects.some((r) => r.startsWith(`302 ${site}/app/reports`)), `the app's URL redirected with a 302: ${redirects.join(', ')}`);
    await signInOnHostedPage(page);
    await page.waitForURL(`${site}/app/reports?year=2026`);
    assert.equal(await page.textContent('body'), 'upstream');
    const seen = reached.at(-1)!;
    assert.equal(seen.url, '/app/reports?year=2026');
    assert.equal(seen.headers['x-gatehouse-subject'], userId);
    assert.equal(seen.headers['x-gatehouse-client-id'], 'gatehouse-gateway');
    assert.equal(seen.headers['x-gatehouse-username'], username);
    assert.equal(seen.headers['x-gatehouse-roles'], 'staff');
    // Caddy copies the (empty) Authorization answer; nginx leaves an empty header out.
    assert.equal(seen.headers['authorization'] ?? '', '', 'the session is not turned into a token the upstream sees');
    assert.equal(seen.url.includes('.gatehouse'), false);

    const cookie = await sessionCookie();
    assert.ok(cookie, 'the gateway session cookie is set on the protected host');
    assert.equal(cookie.httpOnly, true);
    assert.equal(cookie.secure, true);
    assert.equal(cookie.sameSite, 'Lax');
    assert.equal(cookie.domain, '127.0.0.1', 'host-only');
    assert.equal(cookie.path, '/');
    // No longer than the Gatehouse session (12 h).
    assert.ok(cookie.expires > Date.now() / 1000 && cookie.expires <= Date.now() / 1000 + 12 * 3600 + 5, `expires ${cookie.expires}`);
    assert.equal(cookie.value.split('.').length, 5, 'a JWE: nothing readable in the cookie');
    assert.equal(Buffer.from(cookie.value.split('.')[0]!, 'base64url').toString().includes(userId), false);
    await page.close();
  });

  test('browser: the cookie is the credential for other paths; no session for scripts and non-HTML requests (401), a POST form is sent on with 303', async () => {
    const { site } = env();
    const cookie = await sessionCookie();
    assert.ok(cookie, 'signed in by the previous test');
    const withCookie = await fetch(`${site}/app/other`, { headers: { cookie: `gatehouse=${cookie.value}`, accept: 'text/html' } });
    assert.equal(withCookie.status, 200);

    const script = await fetch(`${site}/app/data`, { headers: { accept: 'application/json' }, redirect: 'manual' });
    assert.equal(script.status, 401);
    assert.equal(script.headers.get('www-authenticate'), 'Bearer');
    const xhr = await fetch(`${site}/app/data`, { headers: { accept: 'text/html', 'x-requested-with': 'XMLHttpRequest' }, redirect: 'manual' });
    assert.equal(xhr.status, 401);
    const navigation = await fetch(`${site}/app/data?q=1`, { headers: { accept: 'text/html,application/xhtml+xml' }, redirect: 'manual' });
    assert.equal(navigation.status, 302);
    assert.equal(navigation.headers.get('location'), `${site}/.gatehouse/sign-in?rd=${encodeURIComponent('/app/data?q=1')}`);
    const form = await fetch(`${site}/app/data`, { method: 'POST', headers: { accept: 'text/html', 'content-type': 'application/x-www-form-urlencoded' }, body: 'a=1', redirect: 'manual' });
    assert.equal(form.status, 303);
    assert.ok(form.headers.get('location')?.startsWith(`${site}/.gatehouse/sign-in?rd=`), form.headers.get('location') ?? '');
  });

  test('browser: a cookie for another host, a tampered or a foreign one is no credential (never an allow)', async () => {
    const { site, port, reached } = env();
    const cookie = await sessionCookie();
    assert.ok(cookie);
    reached.length = 0;
    // Another protected host with a browser route (asked of the door itself: the gateway serves one
    // host): the sealed cookie names the host it was set for.
    const door = (host: string) =>
      fetch(`${env().server.url}/gateway/forward-auth`, {
        headers: { 'x-forwarded-method': 'GET', 'x-forwarded-proto': 'http', 'x-forwarded-host': host, 'x-forwarded-uri': '/app', cookie: `gatehouse=${cookie.value}`, accept: 'application/json' },
      });
    assert.equal((await door(`127.0.0.1:${port}`)).status, 200, 'the cookie works on its own host');
    assert.equal((await door(`localhost:${port}`)).status, 401);
    const tampered = `${cookie.value.slice(0, -4)}${cookie.value.endsWith('AAAA') ? 'BBBB' : 'AAAA'}`;
    for (const value of [tampered, 'garbage', `${cookie.value}.x`, '']) {
      const response = await fetch(`${site}/app`, { headers: { cookie: `gatehouse=${value}`, accept: 'application/json' }, redirect: 'manual' });
      assert.equal(response.status, 401, value.slice(0, 20));
    }
    assert.equal(reached.length, 0);
  });

  test('browser: a route needing a second factor steps the session up (enrolment on the hosted pages), then lets it in', async () => {
    const { site, reached, server } = env();
    const page = await context.newPage();
    await page.goto(`${site}/app/admin/users`);
    await page.waitForURL((url) => url.href.startsWith(server.url));
    // Signed in at Gatehouse already, with a password only: it asks for it again, then enrolment.
    await signInOnHostedPage(page);
    await page.waitForSelector('.secret code');
    const secret = ((await page.textContent('.secret code')) ?? '').replace(/\s/g, '');
    await page.fill('#code', totpCode(secret));
    await page.press('#code', 'Enter');
    await page.waitForSelector('h1:has-text("Save your recovery codes")');
    await page.click('button[type="submit"]');
    await page.waitForURL(`${site}/app/admin/users`);
    assert.equal(reached.at(-1)?.headers['x-gatehouse-acr'], 'urn:gatehouse:acr:mfa');
    await page.close();
  });

  test('browser: a sign-in code is redeemed once, however many race for it; return paths stay on the host', async () => {
    const { site, server } = env();
    // Chromium does not let a test hold back a redirect's target, so the code is fetched with
    // the browser's Gatehouse session (signed in by the tests above) and raced from here.
    const jar = new CookieClient();
    for (const cookie of await context.cookies(server.url)) jar.cookies.set(cookie.name, cookie.value);
    jar.cookies.delete('gatehouse');
    const start = await jar.get(`${site}/.gatehouse/sign-in?rd=%2Fapp`);
    assert.equal(start.status, 302);
    const toCallback = await jar.follow(await jar.get(start.headers.get('location')!), server.url);
    const callback = new URL(toCallback.headers.get('location') ?? '', server.url);
    assert.equal(`${callback.origin}${callback.pathname}`, `${site}/.gatehouse/callback`);
    const pending = [...jar.cookies].filter(([name]) => name.startsWith('gatehouse-signin-')).map(([name, value]) => `${name}=${value}`).join('; ');
    assert.ok(pending, 'the pending sign-in cookie was set');
    const answers = await Promise.all(Array.from({ length: 6 }, () => fetch(callback, { headers: { cookie: pending }, redirect: 'manual' })));
    assert.deepEqual(answers.map((a) => a.status).sort(), [303, 400, 400, 400, 400, 400], 'exactly one redemption succeeds');
    const winner = answers.find((a) => a.status === 303)!;
    assert.equal(winner.headers.get('location'), '/app');
    assert.match(winner.headers.getSetCookie().join('\n'), /^gatehouse=[^;]+; Path=\/; Max-Age=\d+; Secure; HttpOnly; SameSite=Lax$/m);
    // Without the pending cookie (another browser), a sign-in answer is refused.
    assert.equal((await fetch(callback, { redirect: 'manual' })).status, 400);
    for (const rd of ['//evil.example/', '/\\evil.example', 'https://evil.example/', '/app\r\nx: y', 'app']) {
      const response = await fetch(`${site}/.gatehouse/sign-in?rd=${encodeURIComponent(rd)}`, { redirect: 'manual' });
      assert.equal(response.status, 400, rd);
    }
    // Only where a browser route signs people in.
    assert.equal((await fetch(`${site}/.gatehouse/sign-in?rd=%2Forders`, { redirect: 'manual' })).status, 404);
  });

  test('browser: sign-out clears the cookie and ends the Gatehouse session; a session ended at Gatehouse stops the cookie', async () => {
    const { site, server } = env();
    const cookie = await sessionCookie();
    assert.ok(cookie);
    const page = await context.newPage();
    await page.goto(`${site}/.gatehouse/sign-out`);
    await page.waitForSelector('h1:has-text("Sign out?")');
    assert.equal(await sessionCookie(), undefined, 'the gateway cookie is gone');
    await page.click('button:has-text("Yes, sign me out")');
    await page.waitForSelector('h1:has-text("You are signed out")');
    // The old cookie value, replayed, stops working once Gatehouse's session is gone (re-checked within 5 s).
    await waitFor(async () => {
      const response = await fetch(`${site}/app`, { headers: { cookie: `gatehouse=${cookie.value}`, accept: 'application/json' } });
      return response.status === 401;
    }, 15_000, 200);
    await page.goto(`${site}/app`);
    await page.waitForURL((url) => url.href.startsWith(`${server.url}/interaction/`));
    await page.close();
  });
}
