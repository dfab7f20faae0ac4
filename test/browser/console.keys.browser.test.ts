/// <reference lib="dom" />
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { adminCall, adminToken, ALL_ADMIN_SCOPES } from '../support/admin-api.js';
import { assertAccessible, chromiumMissing, launchChromium, screenshots } from '../support/browser.js';
import { firstConsoleSignIn } from '../support/console.js';
import { startTestServer, type TestServer } from '../support/server.js';

/**
 * SPEC §11, the console's signing keys in Debian's Chromium: a `gatehouse:keys` person sees every
 * key, rotates (a new active key), revokes one behind a confirmation page (audited with their id
 * as the actor), and gets a clear message, not a 500, when the key service refuses; someone
 * without the role gets 403. axe-core and screenshots at 360 and 1280 px.
 */

const PASSWORD = 'correct horse battery staple';

interface Row {
  kid: string;
  status: string;
}

describe('the admin console: signing keys', { skip: chromiumMissing }, () => {
  let server: TestServer;
  let browser: Browser;
  const ids = new Map<string, string>();

  async function newContext(): Promise<BrowserContext> {
    // bypassCSP only so the test can inject axe-core; the pages themselves run no script.
    return browser.newContext({ bypassCSP: true });
  }

  const signIn = (context: BrowserContext, username: string): Promise<Page> => firstConsoleSignIn(context, server.issuer, username, PASSWORD);

  async function rows(page: Page): Promise<Row[]> {
    return page.locator('tbody tr').evaluateAll((trs) => trs.map((tr) => ({ kid: tr.getAttribute('data-kid') ?? '', status: tr.querySelector('.status')?.textContent ?? '' })));
  }

  before(async () => {
    server = await startTestServer();
    const token = await adminToken(server, ALL_ADMIN_SCOPES);
    for (const [username, roles] of [
      ['keeper', ['gatehouse:keys']],
      ['helpdesk', ['gatehouse:users']],
    ] as const) {
      const created = await adminCall(server, 'POST', '/users', { username, password: PASSWORD, roles: [...roles] }, token);
      assert.equal(created.status, 201, JSON.stringify(created.body));
      ids.set(username, (created.body as { id: string }).id);
    }
    browser = await launchChromium();
  });
  after(async () => {
    await browser?.close();
    await server?.close();
  });

  test('gatehouse:keys lists the keys, rotates, and revokes one after confirming; both audited with the person as actor', async () => {
    const context = await newContext();
    const page = await signIn(context, 'keeper');
    await page.click('a:has-text("Signing keys")');
    await page.waitForURL(`${server.issuer}/console/keys`);
    assert.equal(await page.title(), 'Signing keys · Gatehouse');
    const first = await rows(page);
    assert.ok(first.some((row) => row.status === 'active'), JSON.stringify(first));
    assert.equal(await page.locator('th').allTextContents().then((ths) => ths.slice(0, 4).join('|')), 'Key id|Algorithm|Status|Created');
    await assertAccessible(page, 'console keys');
    await screenshots(page, 'console-keys');

    await page.click('button:has-text("Rotate keys")');
    await page.waitForURL((url) => url.pathname.endsWith('/console/keys') && url.searchParams.get('done') === 'rotated');
    await page.waitForSelector('[role="status"]:has-text("Keys rotated")');
    const rotated = await rows(page);
    const wasActive = new Set(first.filter((row) => row.status === 'active').map((row) => row.kid));
    const nowActive = rotated.filter((row) => row.status === 'active');
    assert.ok(nowActive.length > 0 && nowActive.every((row) => !wasActive.has(row.kid)), 'a new active key');
    assert.ok(rotated.length > first.length, 'a fresh next key is listed');
    for (const kid of wasActive) assert.equal(rotated.find((row) => row.kid === kid)?.status, 'retired');

    // Revoke a retired key, after a confirmation page that says what revoking does.
    const victim = [...wasActive][0]!;
    await page.click(`tr[data-kid="${victim}"] a:has-text("Revoke")`);
    await page.waitForURL(`${server.issuer}/console/keys/${victim}/revoke`);
    await page.waitForSelector('h1:has-text("Revoke signing key")');
    assert.match((await page.textContent('main')) ?? '', /leaves the JWKS at once/);
    await assertAccessible(page, 'console key revocation');
    await screenshots(page, 'console-keys-revoke');
    await page.click('button:has-text("Revoke this key")');
    await page.waitForURL((url) => url.searchParams.get('done') === 'revoked');
    await page.waitForSelector('[role="status"]:has-text("Key revoked")');
    const revoked = await rows(page);
    assert.equal(revoked.find((row) => row.kid === victim)?.status, 'revoked');
    assert.equal(await page.locator(`tr[data-kid="${victim}"] a`).count(), 0, 'a revoked key offers no revocation');

    const { rows: events } = await server.db.query<{ type: string; actor: string | null; target: string }>(
      "SELECT type, actor, target FROM audit_events WHERE type IN ('key.rotated', 'key.revoked') ORDER BY occurred_at",
    );
    const revocation = events.filter((event) => event.type === 'key.revoked');
    assert.deepEqual(revocation, [{ type: 'key.revoked', actor: ids.get('keeper'), target: victim }]);
    const rotations = events.filter((event) => event.type === 'key.rotated');
    assert.ok(rotations.length > 0 && rotations.every((event) => event.actor === ids.get('keeper')), JSON.stringify(rotations));

    // Revoking it again: the service's 409 as a clear message on the page.
    const again = await page.goto(`${server.issuer}/console/keys/${victim}/revoke`);
    assert.equal(again?.status(), 200);
    const [answer] = await Promise.all([page.waitForResponse((response) => response.request().method() === 'POST'), page.click('button:has-text("Revoke this key")')]);
    assert.equal(answer.status(), 409);
    await page.waitForSelector('[role="alert"]:has-text("already revoked")');

    // An unknown kid: 404 with a message, never a 500.
    await page.goto(`${server.issuer}/console/keys/no-such-key/revoke`);
    const [missing] = await Promise.all([page.waitForResponse((response) => response.request().method() === 'POST'), page.click('button:has-text("Revoke this key")')]);
    assert.equal(missing.status(), 404);
    await page.waitForSelector('[role="alert"]:has-text("No signing key")');
    const strange = await page.goto(`${server.issuer}/console/keys/${encodeURIComponent('a.b')}/revoke`);
    assert.equal(strange?.status(), 404);

    // A change without the session's CSRF token is refused and changes nothing.
    const forged = await context.request.post(`${server.issuer}/console/keys/rotate`, { form: { csrf: 'forged' }, maxRedirects: 0 });
    assert.equal(forged.status(), 403);
    const { rows: count } = await server.db.query<{ n: number }>("SELECT count(*)::int AS n FROM audit_events WHERE type = 'key.rotated'");
    assert.equal(count[0]?.n, rotations.length);

    // The confirmation query is a fixed set of messages, and what it echoes is escaped.
    await page.goto(`${server.issuer}/console/keys?done=${encodeURIComponent('<b>x</b>')}&kid=${encodeURIComponent('<script>')}`);
    assert.equal(await page.locator('[role="status"]').count(), 0);
    await context.close();
  });

  test('gatehouse:users gets 403 at the keys area', async () => {
    const context = await newContext();
    const page = await signIn(context, 'helpdesk');
    const response = await page.goto(`${server.issuer}/console/keys`);
    assert.equal(response?.status(), 403);
    await page.waitForSelector('h1:has-text("No access to the console")');
    const post = await context.request.post(`${server.issuer}/console/keys/rotate`, { form: { csrf: 'x' }, maxRedirects: 0 });
    assert.equal(post.status(), 403);
    await context.close();
  });

  test('without a console session the keys area sends the browser to sign in', async () => {
    const plain = await fetch(`${server.issuer}/console/keys`, { redirect: 'manual' });
    assert.equal(plain.status, 303);
    assert.equal(plain.headers.get('location'), `${server.issuer}/console/sign-in`);
  });
});
