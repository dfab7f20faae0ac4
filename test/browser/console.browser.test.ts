/// <reference lib="dom" />
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { adminCall, adminToken, ALL_ADMIN_SCOPES } from '../support/admin-api.js';
import { assertAccessible, chromiumMissing, launchChromium, screenshots } from '../support/browser.js';
import { firstConsoleSignIn } from '../support/console.js';
import { startTestServer, type TestServer } from '../support/server.js';
import { totpCode } from '../support/totp.js';

/**
 * SPEC §11, the console's front door, in Debian's Chromium: `<ISSUER>/console` signs a person in
 * through Gatehouse itself and always asks for a second factor (a first visit enrolls TOTP); what
 * they see follows their roles; no role gives a clear "no access" page; signing out ends the
 * console session and the Gatehouse session. axe-core and screenshots at 360 and 1280 px.
 */

const PASSWORD = 'correct horse battery staple';

describe('the admin console: sign-in, roles, sign-out', { skip: chromiumMissing }, () => {
  let server: TestServer;
  let browser: Browser;

  async function newContext(): Promise<BrowserContext> {
    // bypassCSP only so the test can inject axe-core; the pages themselves run no script.
    return browser.newContext({ bypassCSP: true });
  }

  const signIn = (context: BrowserContext, username: string): Promise<Page> => firstConsoleSignIn(context, server.issuer, username, PASSWORD);

  before(async () => {
    server = await startTestServer();
    const token = await adminToken(server, ALL_ADMIN_SCOPES);
    for (const [username, roles] of [
      ['root', ['gatehouse:admin']],
      ['helpdesk', ['gatehouse:users']],
      ['nobody', []],
    ] as const) {
      const created = await adminCall(server, 'POST', '/users', { username, password: PASSWORD, roles: [...roles] }, token);
      assert.equal(created.status, 201, JSON.stringify(created.body));
    }
    browser = await launchChromium();
  });
  after(async () => {
    await browser?.close();
    await server?.close();
  });

  test('gatehouse:admin: a second factor is asked for, then every area, the signing keys and recent audit events', async () => {
    const context = await newContext();
    const page = await signIn(context, 'root');
    assert.equal(await page.title(), 'Console · Gatehouse');
    assert.deepEqual(await page.locator('.areas li').allTextContents(), [
      'Clients',
      'Resource servers',
      'Users',
      'Signing keys',
      'Audit events',
      'Gateway routes',
      'Identity providers',
    ]);
    // How many of each, as the database has them, each linking to its area where it has pages.
    const expected: [string, string, string][] = [
      ['clients', 'Clients', 'clients'],
      ['resource-servers', 'Resource servers', 'resource_servers'],
      ['users', 'Users', 'users'],
      ['gateway', 'Gateway routes', 'gateway_routes'],
      ['identity-providers', 'Identity providers', 'identity_providers'],
    ];
    assert.deepEqual(await page.locator('#counts-heading + table tbody th').allTextContents(), expected.map(([, title]) => title));
    for (const [id, title, table] of expected) {
      const { rows } = await server.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${table}`);
      const cell = page.locator(`#counts-heading + table tr[data-area="${id}"] td`);
      assert.equal((await cell.textContent())?.trim(), String(rows[0]!.n), title);
      const link = cell.locator('a');
      if ((await link.count()) > 0) assert.equal(await link.getAttribute('href'), `${server.issuer}/console/${id}`);
    }
    assert.equal(await page.locator('#counts-heading + table tr[data-area="users"] td').textContent(), '3', 'root, helpdesk and nobody');
    assert.equal(await page.getAttribute('#counts-heading + table tr[data-area="resource-servers"] a', 'href'), `${server.issuer}/console/resource-servers`);
    assert.ok((await page.locator('#keys-heading + table tbody tr').count()) >= 1, 'the signing keys');
    assert.match((await page.locator('#events-heading + table').textContent()) ?? '', /login\.success/);
    await assertAccessible(page, 'console overview');
    await screenshots(page, 'console-overview');

    // Signing out ends the console session and, after Gatehouse's confirmation, the sign-in session.
    await page.click('button:has-text("Sign out")');
    await page.waitForSelector('h1:has-text("Sign out?")');
    await page.click('button:has-text("Yes, sign me out")');
    await page.waitForSelector('#username');
    assert.ok(page.url().startsWith(`${server.issuer}/interaction/`), 'the console asks for a sign-in again');
    await context.close();
  });

  test('gatehouse:users sees the users area and nothing else', async () => {
    const context = await newContext();
    const page = await signIn(context, 'helpdesk');
    assert.deepEqual(await page.locator('.areas li').allTextContents(), ['Users']);
    // Only the areas one may open are counted.
    assert.deepEqual(await page.locator('#counts-heading + table tbody th').allTextContents(), ['Users']);
    assert.equal(await page.locator('#keys-heading').count(), 0);
    assert.equal(await page.locator('#events-heading').count(), 0);
    await context.close();
  });

  test('a person with no console role gets a clear no-access page (403)', async () => {
    const context = await newContext();
    const page = await context.newPage();
    const responses: number[] = [];
    page.on('response', (response) => {
      if (response.url() === `${server.issuer}/console`) responses.push(response.status());
    });
    await page.goto(`${server.issuer}/console`);
    await page.fill('#username', 'nobody');
    await page.fill('#password', PASSWORD);
    await page.click('button[type="submit"]');
    await page.waitForSelector('h1:has-text("Set up two-step verification")');
    const uri = await page.getAttribute('a[href^="otpauth://"]', 'href');
    await page.fill('#code', totpCode(new URL(uri!).searchParams.get('secret')!, Date.now()));
    await page.keyboard.press('Enter');
    await page.click('button:has-text("I have saved them")');
    await page.waitForSelector('h1:has-text("No access to the console")');
    assert.ok(responses.includes(403), JSON.stringify(responses));
    await assertAccessible(page, 'console no access');
    await screenshots(page, 'console-no-access');
    await context.close();
  });

  test('without a console session, or with a forged cookie, the console sends the browser to sign in', async () => {
    const plain = await fetch(`${server.issuer}/console`, { redirect: 'manual' });
    assert.equal(plain.status, 303);
    assert.equal(plain.headers.get('location'), `${server.issuer}/console/sign-in`);
    const forged = await fetch(`${server.issuer}/console`, { redirect: 'manual', headers: { cookie: 'gatehouse-console=eyJhbGciOiJkaXIiLCJlbmMiOiJBMjU2R0NNIn0..x.y.z' } });
    assert.equal(forged.status, 303);
    const start = await fetch(`${server.issuer}/console/sign-in`, { redirect: 'manual' });
    const authorize = new URL(start.headers.get('location') ?? '');
    assert.equal(authorize.searchParams.get('client_id'), 'gatehouse-console');
    assert.equal(authorize.searchParams.get('acr_values'), 'urn:gatehouse:acr:mfa');
    assert.equal(authorize.searchParams.get('code_challenge_method'), 'S256');
    // A callback in a browser that did not start the sign-in signs nobody in.
    const stranger = await fetch(`${server.issuer}/console/callback?state=${authorize.searchParams.get('state')}&code=x`, { redirect: 'manual' });
    assert.equal(stranger.status, 400);
  });
});
