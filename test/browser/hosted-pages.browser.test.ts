// The client's redirect URIs use port 8089: Chromium refuses navigation to "unsafe" ports such as 9.

/// <reference lib="dom" />
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import * as oidc from 'openid-client';
import type { Browser, BrowserContext } from 'playwright-core';
import { adminCall, adminToken } from '../support/admin-api.js';
import { startTestServer, type TestServer } from '../support/server.js';
import { assertAccessible, chromiumMissing, launchChromium, screenshots } from '../support/browser.js';

const REDIRECT = 'http://127.0.0.1:8089/callback';
const PASSWORD = 'correct horse battery staple';




describe('hosted pages in headless Chromium', { skip: chromiumMissing }, () => {
  let server: TestServer;
  let browser: Browser;
  let context: BrowserContext;
  let config: oidc.Configuration;
  let callbacks: string[];

  before(async () => {
    server = await startTestServer();
    const client = await adminCall<{ client_id: string; client_secret: string }>(server, 'POST', '/clients', {
      client_name: 'Shop',
      grant_types: ['authorization_code', 'refresh_token'],
      redirect_uris: [REDIRECT],
      post_logout_redirect_uris: ['http://127.0.0.1:8089/signed-out'],
      scope: 'openid profile email offline_access',
    });
    assert.equal(client.status, 201);
    const user = await adminCall(server, 'POST', '/users', { username: 'alice', password: PASSWORD, name: 'Alice' }, await adminToken(server, 'admin:users'));
    assert.equal(user.status, 201);
    config = await oidc.discovery(new URL(server.issuer), client.body.client_id, client.body.client_secret, undefined, {
      execute: [oidc.allowInsecureRequests],
    });
    browser = await launchChromium();
    // bypassCSP only so the test can inject axe-core; the pages themselves run no script.
    context = await browser.newContext({ bypassCSP: true });
    callbacks = [];
    await context.route('http://127.0.0.1:8089/**', async (route) => {
      callbacks.push(route.request().url());
      await route.fulfill({ status: 200, contentType: 'text/plain', body: 'client callback' });
    });
  });
  after(async () => {
    await browser?.close();
    await server?.close();
  });

  test('keyboard-only sign-in and consent, accessible and readable at 360 px and 1280 px', async () => {
    const page = await context.newPage();
    const verifier = oidc.randomPKCECodeVerifier();
    const url = oidc.buildAuthorizationUrl(config, {
      redirect_uri: REDIRECT,
      scope: 'openid profile email',
      code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
      code_challenge_method: 'S256',
      state: 'browser-state',
    });
    await page.goto(url.href);
    assert.equal(await page.title(), 'Sign in · Gatehouse');
    assert.equal(await page.getAttribute('html', 'lang'), 'en');
    assert.match((await page.textContent('main')) ?? '', /Shop/);
    // Labelled inputs.
    assert.equal(await page.getAttribute('label[for="username"]', 'for'), 'username');
    assert.equal(await page.getAttribute('label[for="password"]', 'for'), 'password');
    await assertAccessible(page, 'login page');
    await screenshots(page, 'login');

    // A wrong password: error tied to the fields, still accessible.
    await page.fill('#username', 'alice');
    await page.fill('#password', 'wrong password here');
    await page.press('#password', 'Enter');
    await page.waitForSelector('[role="alert"]');
    assert.equal(await page.getAttribute('#password', 'aria-describedby'), 'login-error');
    await assertAccessible(page, 'login page with an error');
    await screenshots(page, 'login-error');

    // Keyboard only: the username keeps focus order, Tab to the password, Enter submits.
    await page.focus('#username');
    await page.keyboard.press('Control+A');
    await page.keyboard.type('alice');
    await page.keyboard.press('Tab');
    assert.equal(await page.evaluate(() => document.activeElement?.id), 'password');
    await page.keyboard.type(PASSWORD);
    await page.keyboard.press('Enter');
    await page.waitForURL(/\/interaction\//);
    await page.waitForSelector('h1:has-text("Allow access?")');
    await assertAccessible(page, 'consent page');
    await screenshots(page, 'consent');
    // Focus is visible: the focused button has an outline.
    await page.keyboard.press('Tab');
    await page.keyboard.press('Tab');
    const outline = await page.evaluate(() => getComputedStyle(document.activeElement!).outlineStyle);
    assert.notEqual(outline, 'none');
    await page.click('button:has-text("Allow")');
    await page.waitForURL(/127\.0\.0\.1:8089\/callback/);
    const callback = new URL(callbacks.at(-1)!);
    assert.ok(callback.searchParams.get('code'));
    assert.equal(callback.searchParams.get('state'), 'browser-state');
    await page.close();
  });

  test('SPEC §12: a scripted client pushes its request (RFC 9126, plain POST), Chromium signs in from the request_uri alone, the code gets tokens', async () => {
    const verifier = oidc.randomPKCECodeVerifier();
    const metadata = config.serverMetadata();
    const { client_id: clientId } = config.clientMetadata();
    const secret = String(config.clientMetadata().client_secret);
    const pushed = await fetch(metadata.pushed_authorization_request_endpoint!, {
      method: 'POST',
      headers: { authorization: `Basic ${Buffer.from(`${clientId}:${secret}`).toString('base64')}`, 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        response_type: 'code',
        client_id: clientId,
        redirect_uri: REDIRECT,
        scope: 'openid profile',
        code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
        code_challenge_method: 'S256',
        state: 'pushed-state',
      }),
    });
    assert.equal(pushed.status, 201);
    const { request_uri: requestUri } = (await pushed.json()) as { request_uri: string };

    // A fresh browser profile, so the person signs in (no session from the test before).
    const pushedContext = await browser.newContext();
    const seen: string[] = [];
    await pushedContext.route('http://127.0.0.1:8089/**', async (route) => {
      seen.push(route.request().url());
      await route.fulfill({ status: 200, contentType: 'text/plain', body: 'client callback' });
    });
    const page = await pushedContext.newPage();
    const url = new URL(metadata.authorization_endpoint!);
    url.search = new URLSearchParams({ client_id: clientId, request_uri: requestUri }).toString();
    await page.goto(url.href);
    await page.waitForSelector('h1:has-text("Sign in")');
    assert.match((await page.textContent('main')) ?? '', /Shop/);
    await page.fill('#username', 'alice');
    await page.fill('#password', PASSWORD);
    await page.press('#password', 'Enter');
    await page.waitForSelector('h1:has-text("Allow access?")');
    await page.click('button:has-text("Allow")');
    await page.waitForURL(/127\.0\.0\.1:8089\/callback/);
    const callback = new URL(seen.at(-1)!);
    assert.equal(callback.searchParams.get('state'), 'pushed-state', 'the pushed parameters, never in the browser, came back');
    const tokens = await oidc.authorizationCodeGrant(config, callback, { pkceCodeVerifier: verifier, expectedState: 'pushed-state' });
    assert.ok(tokens.id_token);
    await pushedContext.close();
  });

  test('logout confirmation, signed-out and error pages are accessible', async () => {
    const page = await context.newPage();
    await page.goto(`${server.url}/session/end?client_id=${encodeURIComponent(config.clientMetadata().client_id)}`);
    await page.waitForSelector('h1:has-text("Sign out?")');
    await assertAccessible(page, 'logout page');
    await screenshots(page, 'logout');
    await page.click('button:has-text("Yes, sign me out")');
    await page.waitForSelector('h1:has-text("You are signed out")');
    await assertAccessible(page, 'signed-out page');
    await screenshots(page, 'signed-out');

    await page.goto(`${server.url}/auth?client_id=unknown-client&response_type=code&scope=openid`);
    await page.waitForSelector('h1');
    await assertAccessible(page, 'error page');
    await screenshots(page, 'error');
    await page.close();
  });
});
