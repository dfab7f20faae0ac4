/// <reference lib="dom" />
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import jsqr from 'jsqr';
import * as oidc from 'openid-client';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { PNG } from 'pngjs';
import { adminCall, adminToken } from '../support/admin-api.js';
import { freezeClock, type FrozenClock } from '../support/clock.js';
import { startTestServer, type TestServer } from '../support/server.js';
import { ARTIFACTS, assertAccessible, chromiumMissing, launchChromium, screenshots } from '../support/browser.js';
import { totpCode } from '../support/totp.js';

const REDIRECT = 'http://127.0.0.1:8089/callback';
const PASSWORD = 'correct horse battery staple';




/** Decodes the QR code in a PNG screenshot. */
function decodeQr(png: Buffer): string | undefined {
  const image = PNG.sync.read(png);
  // jsqr is CommonJS whose exports carry `default` too: the typed way to reach the function from ESM.
  return jsqr.default(new Uint8ClampedArray(image.data.buffer, image.data.byteOffset, image.data.length), image.width, image.height)?.data;
}

const activeId = (page: Page) => page.evaluate(() => document.activeElement?.id ?? '');

describe('second-factor pages in headless Chromium', { skip: chromiumMissing }, () => {
  let clock: FrozenClock;
  let server: TestServer;
  let browser: Browser;
  let config: oidc.Configuration;
  let userId: string;
  let secret: string;
  /** Resolves with the next request the client's callback receives. */
  let onCallback: ((url: URL) => void) | undefined;
  const nextCallback = () => new Promise<URL>((resolve) => (onCallback = resolve));
  /** The page the enrollment test leaves on the recovery codes. */
  let enrolling: Page;

  /** A fresh browser profile (no session), with the client's callback answered locally. */
  async function newContext(): Promise<BrowserContext> {
    // bypassCSP only so the test can inject axe-core; the pages themselves run no script.
    const context = await browser.newContext({ bypassCSP: true });
    // Chromium reports the first attempt at the redirect as a failed navigation (port 9 is on its
    // unsafe list) before the route answers it, so tests wait for this handler, not for the URL.
    await context.route('http://127.0.0.1:8089/**', async (route) => {
      onCallback?.(new URL(route.request().url()));
      await route.fulfill({ status: 200, contentType: 'text/plain', body: 'client callback' });
    });
    return context;
  }

  /** Opens an authorization request and signs in with the password, with the keyboard. */
  async function passwordStep(context: BrowserContext): Promise<Page> {
    const page = await context.newPage();
    const url = oidc.buildAuthorizationUrl(config, {
      redirect_uri: REDIRECT,
      scope: 'openid profile',
      code_challenge: await oidc.calculatePKCECodeChallenge(oidc.randomPKCECodeVerifier()),
      code_challenge_method: 'S256',
      state: 'mfa-state',
    });
    await page.goto(url.href);
    await page.fill('#username', 'carol');
    await page.fill('#password', PASSWORD);
    await page.press('#password', 'Enter');
    await page.waitForURL(/\/interaction\//);
    return page;
  }

  before(async () => {
    clock = freezeClock();
    server = await startTestServer();
    const token = await adminToken(server, 'admin:clients admin:users');
    const client = await adminCall<{ client_id: string; client_secret: string }>(
      server,
      'POST',
      '/clients',
      { client_name: 'Shop', grant_types: ['authorization_code'], redirect_uris: [REDIRECT], scope: 'openid profile', first_party: true },
      token,
    );
    assert.equal(client.status, 201, JSON.stringify(client.body));
    const user = await adminCall<{ id: string }>(server, 'POST', '/users', { username: 'carol', password: PASSWORD, mfa_required: true }, token);
    assert.equal(user.status, 201, JSON.stringify(user.body));
    userId = user.body.id;
    config = await oidc.discovery(new URL(server.issuer), client.body.client_id, client.body.client_secret, undefined, { execute: [oidc.allowInsecureRequests] });
    browser = await launchChromium();
  });
  after(async () => {
    await browser?.close();
    await server?.close();
    clock?.restore();
  });

  test('enrollment page: the QR code decodes to the otpauth link, accessible at 360 and 1280 px, the code typed with the keyboard alone', async () => {
    const context = await newContext();
    enrolling = await passwordStep(context);
    const page = enrolling;
    await page.waitForSelector('h1:has-text("Set up two-step verification")');
    assert.equal(await page.title(), 'Set up two-step verification · Gatehouse');
    // SPEC §4: this issuer is an IP address, so no passkeys: the page says so, loads no script, and the app works.
    assert.match((await page.textContent('#passkeys-unavailable')) ?? '', /Passkeys are not available on this server/);
    assert.equal(await page.locator('script').count(), 0);
    assert.match((await page.request.get(page.url())).headers()['content-security-policy'] ?? '', /script-src 'none'/);

    const uri = await page.getAttribute('a[href^="otpauth://"]', 'href');
    assert.ok(uri, 'the otpauth URI as a link');
    secret = new URL(uri).searchParams.get('secret')!;
    assert.match(secret, /^[A-Z2-7]{32}$/);
    // The key typed by hand is the same secret, in groups of four.
    assert.equal((await page.textContent('.secret code'))?.replace(/\s/g, ''), secret);

    // The QR code as the page shows it at desktop width...
    await page.setViewportSize({ width: 1280, height: 800 });
    assert.equal(decodeQr(await page.locator('figure.qr svg').screenshot()), uri, 'the QR code on the page is the otpauth URI');
    // ...and the same SVG rendered large on its own, so decoding does not depend on the page's scale.
    const svg = await page.locator('figure.qr svg').evaluate((element) => element.outerHTML);
    const alone = await context.newPage();
    await alone.setViewportSize({ width: 640, height: 640 });
    await alone.setContent(`<!DOCTYPE html><html><body style="margin:0;background:#fff"><div style="width:600px;padding:20px">${svg}</div></body></html>`);
    await alone.locator('svg').evaluate((element) => element.setAttribute('style', 'width:600px;height:600px;display:block'));
    assert.equal(decodeQr(await alone.screenshot()), uri, 'the SVG decodes to the otpauth URI');
    await alone.close();

    await assertAccessible(page, 'enrollment page');
    await screenshots(page, 'enroll');

    // Keyboard only: Tab from the top reaches the phone link, then the code field.
    const order: string[] = [];
    for (let i = 0; i < 6 && (await activeId(page)) !== 'code'; i += 1) {
      await page.keyboard.press('Tab');
      order.push(await page.evaluate(() => document.activeElement?.getAttribute('href')?.split(':')[0] ?? document.activeElement?.id ?? ''));
    }
    assert.deepEqual(order, ['otpauth', 'code']);
    await page.keyboard.type(totpCode(secret, clock.now()));
    await page.keyboard.press('Enter');
    await page.waitForSelector('h1:has-text("Save your recovery codes")');
  });

  test('recovery codes page: accessible, the codes visible when printed, continued with the keyboard', async () => {
    const page = enrolling;
    assert.ok(page, 'the enrollment test left the recovery codes open');
    const codes = await page.locator('.recovery-codes code').allTextContents();
    assert.equal(codes.length, 10);
    for (const code of codes) assert.match(code, /^[A-Z0-9]{5}-[A-Z0-9]{5}$/);
    await assertAccessible(page, 'recovery codes page');
    await screenshots(page, 'recovery-codes');

    await page.emulateMedia({ media: 'print' });
    try {
      assert.equal(await page.evaluate(() => matchMedia('print').matches), true);
      for (const [i, code] of (await page.locator('.recovery-codes code').all()).entries()) {
        assert.ok(await code.isVisible(), `recovery code ${i + 1} is printed`);
        const box = await code.boundingBox();
        assert.ok(box !== null && box.width > 0 && box.height > 0);
        assert.equal(await code.textContent(), codes[i]);
      }
      assert.ok(await page.locator('h1').isVisible(), 'the heading is printed');
      assert.equal(await page.locator('form button').isVisible(), false, 'the continue button is not printed');
      await page.setViewportSize({ width: 1280, height: 800 });
      await page.screenshot({ path: `${ARTIFACTS}recovery-codes-print-1280.png`, fullPage: true });
    } finally {
      await page.emulateMedia({ media: 'screen' });
    }

    // Keyboard only: the continue button is the first stop.
    await page.keyboard.press('Tab');
    assert.match((await page.evaluate(() => document.activeElement?.textContent)) ?? '', /I have saved them/);
    const reached = nextCallback();
    await page.keyboard.press('Enter');
    const callback = await reached;
    assert.ok(callback.searchParams.get('code'));
    assert.equal(callback.searchParams.get('state'), 'mfa-state');
    await page.context().close();
  });

  test('code page: focus starts in the code field, accessible with the few-codes notice and with an error, the code typed with the keyboard alone', async () => {
    assert.ok(secret, 'the enrollment test enrolled carol');
    // Few recovery codes left, so the page shows its notice (role=status) for the scan.
    await server.db.query(
      'UPDATE user_recovery_codes SET used_at = now() WHERE user_id = $1 AND code_hash IN (SELECT code_hash FROM user_recovery_codes WHERE user_id = $1 LIMIT 8)',
      [userId],
    );
    clock.advanceSteps();
    const context = await newContext();
    const page = await passwordStep(context);
    await page.waitForSelector('h1:has-text("Two-step verification")');
    assert.equal(await activeId(page), 'code', 'the code field has focus on arrival');
    assert.equal(await page.getAttribute('#code', 'autocomplete'), 'one-time-code');
    assert.equal(await page.getAttribute('#code', 'inputmode'), 'numeric');
    assert.match((await page.textContent('[role="status"]')) ?? '', /You have 2 recovery codes left/);
    await assertAccessible(page, 'code page');
    await screenshots(page, 'second-factor');

    // A wrong code: the error is announced and tied to the field, which has focus again.
    const valid = new Set([-1, 0, 1].map((offset) => totpCode(secret, clock.now(), offset)));
    const wrong = ['000000', '111111'].find((c) => !valid.has(c))!;
    await page.keyboard.type(wrong);
    await page.keyboard.press('Enter');
    await page.waitForSelector('[role="alert"]');
    assert.equal(await page.getAttribute('#code', 'aria-invalid'), 'true');
    assert.match((await page.getAttribute('#code', 'aria-describedby')) ?? '', /\bcode-error\b/);
    assert.equal(await activeId(page), 'code');
    await assertAccessible(page, 'code page with an error');
    await screenshots(page, 'second-factor-error');

    await page.keyboard.type(totpCode(secret, clock.now()));
    const reached = nextCallback();
    await page.keyboard.press('Enter');
    const callback = await reached;
    assert.ok(callback.searchParams.get('code'));
    assert.equal(callback.searchParams.get('state'), 'mfa-state');
    await context.close();
  });
});
