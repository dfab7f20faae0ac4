/// <reference lib="dom" />
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import type { Browser, BrowserContext, Page, Response } from 'playwright-core';
import { createOidcModelStore } from '../../src/db/oidc-models.js';
import { createPasskeyStore } from '../../src/db/passkeys.js';
import { adminApi, adminToken, type AdminApi, type Page as ApiPage } from '../support/admin-api.js';
import { assertAccessible, chromiumMissing, launchChromium, screenshots } from '../support/browser.js';
import { firstConsoleSignIn } from '../support/console.js';
import { startTestServer, type TestServer } from '../support/server.js';

/**
 * SPEC §4/§11, a person's passkeys in the console's users area, in Debian's Chromium: the person's
 * page lists them (name, kind, created, last used), each with a Remove link to a confirmation
 * page; removing goes through the user service (the admin API's DELETE …/passkeys/{id}), ends
 * the person's sessions, is audited as `passkey.removed` with the console person as actor and
 * comes back with a fixed message. A post without the CSRF token changes nothing; a person whose
 * roles open more than the remover's areas keeps their passkey (403 on the confirmation page).
 * The passkeys are stored rows; registering them in a browser is test/browser/passkeys.browser.test.ts.
 */

const PASSWORD = 'correct horse battery staple';

interface AuditEvent {
  type: string;
  actor: string | null;
  target: string | null;
  details: Record<string, unknown>;
}

describe('the admin console: a person’s passkeys', { skip: chromiumMissing }, () => {
  let server: TestServer;
  let browser: Browser;
  let api: AdminApi;
  const ids = new Map<string, string>();
  /** warden's browser, signed in to the console once (TOTP enrolled on the way). */
  let context: BrowserContext;
  let page: Page;

  const newContext = (): Promise<BrowserContext> => browser.newContext({ bypassCSP: true });
  const userUrl = (id: string) => `${server.issuer}/console/users/${id}`;

  async function post(page: Page, click: () => Promise<void>): Promise<Response> {
    const [response] = await Promise.all([page.waitForResponse((candidate) => candidate.request().method() === 'POST'), click()]);
    return response;
  }

  async function addPasskey(userId: string, name: string, synced = false): Promise<string> {
    const credentialId = randomBytes(16).toString('base64url');
    await createPasskeyStore(server.db).insert({ credentialId, userId, publicKey: randomBytes(77), signCount: 0, transports: ['internal'], backupEligible: synced, backedUp: synced, name });
    return credentialId;
  }

  async function sessionsOf(accountId: string): Promise<number> {
    const { rows } = await server.db.query('SELECT 1 FROM oidc_models WHERE account_id = $1', [accountId]);
    return rows.length;
  }

  async function passkeyNames(userId: string): Promise<string[]> {
    const listed = await api.request<{ items: { name: string }[] }>('GET', `/users/${userId}/passkeys`);
    assert.equal(listed.status, 200, listed.text);
    return listed.body.items.map((item) => item.name);
  }

  before(async () => {
    server = await startTestServer();
    api = adminApi(server, await adminToken(server, 'admin:users admin:audit admin:keys'));
    for (const [username, roles] of [
      ['warden', ['gatehouse:users']],
      ['holder', []],
      ['keeper', ['gatehouse:keys']],
    ] as const) {
      const person = await api.request<{ id: string }>('POST', '/users', { json: { username, password: PASSWORD, roles } });
      assert.equal(person.status, 201, person.text);
      ids.set(username, person.body.id);
    }
    browser = await launchChromium();
    context = await newContext();
    page = await firstConsoleSignIn(context, server.issuer, 'warden', PASSWORD);
  });
  after(async () => {
    await context?.close();
    await browser?.close();
    await server?.close();
  });

  test('the person’s page lists their passkeys; Remove → confirmation → removed, sessions ended, audited with the person as actor', async () => {
    const holder = ids.get('holder')!;
    const warden = ids.get('warden')!;
    await addPasskey(holder, 'Work laptop');
    const phone = await addPasskey(holder, 'Old phone <b>', true);
    await createOidcModelStore(server.db).upsert('Session', `sid-${randomUUID()}`, { accountId: holder, loginTs: Math.floor(Date.now() / 1000) }, 3600);

    await page.goto(userUrl(holder));
    await page.waitForSelector('h2:has-text("Passkeys")');
    assert.equal(await page.textContent('#user-mfa'), 'Enrolled, 2 passkeys');
    const rows = page.locator('table[aria-labelledby="passkeys-heading"] tbody tr');
    assert.equal(await rows.count(), 2);
    assert.deepEqual(await rows.locator('td:first-child').allTextContents(), ['Work laptop', 'Old phone <b>']);
    assert.deepEqual(await rows.locator('td:nth-child(2)').allTextContents(), ['This device only', 'Synced (backed up)']);
    assert.deepEqual(await rows.locator('td:nth-child(4)').allTextContents(), ['never', 'never']);
    await assertAccessible(page, 'console user with passkeys');
    await screenshots(page, 'console-user-passkeys');

    await page.click('a[aria-label="Remove the passkey Old phone <b>"]');
    await page.waitForURL(`${userUrl(holder)}/passkeys/${phone}/remove`);
    await page.waitForSelector('h1:has-text("Remove passkey of holder?")');
    await page.waitForSelector('text=“Old phone <b>”');
    await assertAccessible(page, 'console remove passkey');
    await screenshots(page, 'console-user-passkey-remove');

    // Without the CSRF token: refused, nothing removed.
    const forged = await context.request.post(`${userUrl(holder)}/passkeys/${phone}/remove`, { form: { csrf: 'forged' }, maxRedirects: 0 });
    assert.equal(forged.status(), 403);
    assert.deepEqual(await passkeyNames(holder), ['Work laptop', 'Old phone <b>']);

    const removed = await post(page, () => page.click('button:has-text("Remove this passkey")'));
    assert.equal(removed.status(), 303);
    await page.waitForURL(`${userUrl(holder)}?done=passkey-removed`);
    await page.waitForSelector('[role="status"]:has-text("Passkey removed.")');
    assert.equal(await rows.count(), 1);
    assert.deepEqual(await passkeyNames(holder), ['Work laptop']);
    assert.equal(await sessionsOf(holder), 0, 'the removal ended their session');

    const events = await api.request<ApiPage<AuditEvent>>('GET', `/audit-events?actor=${warden}&type=passkey.removed`);
    assert.equal(events.status, 200, events.text);
    assert.deepEqual(
      events.body.items.map((event) => [event.target, event.details['credential_id']]),
      [[holder, phone]],
    );

    // The same link again: that passkey is gone.
    const again = await page.goto(`${userUrl(holder)}/passkeys/${phone}/remove`);
    assert.equal(again?.status(), 404);
    await page.waitForSelector('text=no passkey with that id');
  });

  test('a person whose roles open the keys area keeps their passkey: the confirmation page says which scope is missing (403)', async () => {
    const keeper = ids.get('keeper')!;
    const key = await addPasskey(keeper, 'Keeper’s key');
    await page.goto(`${userUrl(keeper)}/passkeys/${key}/remove`);
    const refused = await post(page, () => page.click('button:has-text("Remove this passkey")'));
    assert.equal(refused.status(), 403);
    await page.waitForSelector('[role="alert"]:has-text("admin:keys")');
    assert.deepEqual(await passkeyNames(keeper), ['Keeper’s key']);
  });
});
