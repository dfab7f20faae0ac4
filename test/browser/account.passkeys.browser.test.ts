/// <reference lib="dom" />
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import * as oidc from 'openid-client';
import type { Browser, BrowserContext, CDPSession, Page, Response } from 'playwright-core';
import { LAST_FACTOR_MESSAGE } from '../../src/account/routes.js';
import { adminCall, adminToken } from '../support/admin-api.js';
import { assertAccessible, chromiumMissing, launchChromium, screenshots } from '../support/browser.js';
import { freePort, startTestServer, type TestServer } from '../support/server.js';

/**
 * SPEC §4, the account page: `<ISSUER>/account/passkeys`, reached from the login page's "Manage
 * your passkeys" link, in Debian's Chromium with a CDP virtual authenticator. A person signs in
 * as the built-in account client (a second factor always: someone without one enrolls first),
 * lists their passkeys, adds one (registration through the passkey service, the script from
 * Gatehouse under script-src 'self'), renames and removes one, each behind its own page; the
 * last second factor of someone with mfa_required is refused, anyone else's is allowed. Every
 * change is audited with the person as actor; a post without the CSRF token, or for another
 * person's passkey, or without a session, changes nothing. axe-core on every new page.
 */

const REDIRECT = 'http://127.0.0.1:8089/callback';
const PASSWORD = 'correct horse battery staple';

interface Authenticator {
  readonly cdp: CDPSession;
  readonly id: string;
}

/** A virtual platform authenticator for this tab (they are per tab). */
async function addAuthenticator(page: Page, options: { synced?: boolean } = {}): Promise<Authenticator> {
  const cdp = await page.context().newCDPSession(page);
  await cdp.send('WebAuthn.enable');
  const { authenticatorId } = await cdp.send('WebAuthn.addVirtualAuthenticator', {
    options: {
      protocol: 'ctap2',
      transport: 'internal',
      hasResidentKey: true,
      hasUserVerification: true,
      isUserVerified: true,
      automaticPresenceSimulation: true,
      ...(options.synced === true ? { defaultBackupEligibility: true, defaultBackupState: true } : {}),
    },
  });
  return { cdp, id: authenticatorId };
}

describe('the account page: a person’s own passkeys', { skip: chromiumMissing }, () => {
  let server: TestServer;
  let browser: Browser;
  let config: oidc.Configuration;
  const ids = new Map<string, string>();
  const listUrl = () => `${server.issuer}/account/passkeys`;

  async function newContext(): Promise<BrowserContext> {
    // bypassCSP only so the test can inject axe-core; the pages load their own scripts under script-src 'self'.
    const context = await browser.newContext({ bypassCSP: true });
    // The virtual authenticator answers a conditional request at once; the login pages here are for typing a password.
    await context.addInitScript(() => {
      PublicKeyCredential.isConditionalMediationAvailable = () => Promise.resolve(false);
    });
    await context.route('http://127.0.0.1:8089/**', (route) => route.fulfill({ status: 200, contentType: 'text/plain', body: 'client callback' }));
    return context;
  }

  async function post(page: Page, click: () => Promise<void>): Promise<Response> {
    const [response] = await Promise.all([page.waitForResponse((candidate) => candidate.request().method() === 'POST' && !candidate.url().endsWith('/options')), click()]);
    return response;
  }

  /** The password, then enrollment with a passkey (the account client always asks for a second factor), then the recovery codes. */
  async function signInEnrollingPasskey(page: Page, username: string, name: string): Promise<void> {
    await page.waitForSelector('#username');
    await page.fill('#username', username);
    await page.fill('#password', PASSWORD);
    await page.press('#password', 'Enter');
    await page.waitForSelector('h1:has-text("Set up two-step verification")');
    await page.waitForSelector('button:has-text("Create a passkey")', { state: 'visible' });
    await page.fill('#passkey-name', name);
    await page.click('button:has-text("Create a passkey")');
    await page.waitForSelector('h1:has-text("Save your recovery codes")');
    await page.click('button:has-text("I have saved them")');
    await page.waitForURL(listUrl());
  }

  async function passkeyNames(page: Page): Promise<string[]> {
    return (await page.locator('.passkey-list li strong').allTextContents()).map((name) => name.trim());
  }

  async function storedNames(username: string): Promise<string[]> {
    const { rows } = await server.db.query<{ name: string }>(
      'SELECT p.name FROM user_passkeys p JOIN users u ON u.id = p.user_id WHERE u.username = $1 ORDER BY p.created_at, p.credential_id',
      [username],
    );
    return rows.map((row) => row.name);
  }

  async function eventsOf(type: string, actor: string) {
    const { rows } = await server.db.query<{ target: string; details: Record<string, unknown> }>('SELECT target, details FROM audit_events WHERE type = $1 AND actor = $2 ORDER BY id', [
      type,
      actor,
    ]);
    return rows;
  }

  before(async () => {
    const port = await freePort();
    server = await startTestServer({ env: { PORT: String(port), ISSUER: `http://localhost:${port}` } });
    const token = await adminToken(server, 'admin:clients admin:users');
    const client = await adminCall<{ client_id: string; client_secret: string }>(
      server,
      'POST',
      '/clients',
      { client_name: 'Shop', grant_types: ['authorization_code'], redirect_uris: [REDIRECT], scope: 'openid', first_party: true },
      token,
    );
    assert.equal(client.status, 201, JSON.stringify(client.body));
    for (const [username, mfaRequired] of [
      ['ada', true],
      ['bob', false],
    ] as const) {
      const user = await adminCall<{ id: string }>(server, 'POST', '/users', { username, password: PASSWORD, mfa_required: mfaRequired }, token);
      assert.equal(user.status, 201, JSON.stringify(user.body));
      ids.set(username, user.body.id);
    }
    config = await oidc.discovery(new URL(server.issuer), client.body.client_id, client.body.client_secret, undefined, { execute: [oidc.allowInsecureRequests] });
    browser = await launchChromium();
  });
  after(async () => {
    await browser?.close();
    await server?.close();
  });

  test('from the login page’s link: sign in (enrolling a passkey), list, add, rename, remove; the last required factor stays; all audited', async () => {
    const ada = ids.get('ada')!;
    const context = await newContext();
    const page = await context.newPage();
    const laptop = await addAuthenticator(page);

    // An application's login page links to the account page; the account's own login page does not.
    await page.goto(oidc.buildAuthorizationUrl(config, { redirect_uri: REDIRECT, scope: 'openid', code_challenge: 'x'.repeat(43), code_challenge_method: 'S256' }).href);
    await page.waitForSelector('h1:has-text("Sign in")');
    await page.click('a:has-text("Manage your passkeys")');
    await page.waitForURL(/\/interaction\//);
    await page.waitForSelector('text=to continue to Your Gatehouse account');
    assert.equal(await page.locator('a:has-text("Manage your passkeys")').count(), 0);
    await signInEnrollingPasskey(page, 'ada', 'Laptop');

    // The list, with the add form (the passkey script under script-src 'self', nothing inline).
    await page.waitForSelector('h1:has-text("Your passkeys")');
    assert.deepEqual(await passkeyNames(page), ['Laptop']);
    const csp = (await page.request.get(listUrl())).headers()['content-security-policy'] ?? '';
    assert.match(csp, /script-src 'self'/);
    assert.equal(await page.locator('script:not([src])').count(), 0, 'no inline script');
    await page.waitForSelector('button:has-text("Create a passkey")', { state: 'visible' });
    await assertAccessible(page, 'account passkeys');
    await screenshots(page, 'account-passkeys');

    // The same authenticator again: the browser refuses (it holds a passkey for this account already).
    await page.fill('#passkey-name', 'Laptop again');
    await page.click('button:has-text("Create a passkey")');
    await page.waitForSelector('#passkey-error:has-text("already has a passkey")');
    assert.deepEqual(await storedNames('ada'), ['Laptop']);

    // Another device (a synced one): added, audited.
    await laptop.cdp.send('WebAuthn.removeVirtualAuthenticator', { authenticatorId: laptop.id });
    await addAuthenticator(page, { synced: true });
    await page.fill('#passkey-name', 'Phone');
    const added = await post(page, () => page.click('button:has-text("Create a passkey")'));
    assert.equal(added.status(), 303);
    await page.waitForSelector('[role="status"]:has-text("Passkey added.")');
    assert.deepEqual(await passkeyNames(page), ['Laptop', 'Phone']);
    assert.match(await page.locator('.passkey-list li').nth(1).textContent() ?? '', /Synced/);
    const registered = await eventsOf('passkey.registered', ada);
    assert.deepEqual(registered.map((event) => [event.target, event.details['name'], event.details['backed_up']]), [[ada, 'Phone', true]]);

    // Rename: its own page; an empty name is refused by the field.
    await page.click('a[aria-label="Rename Phone"]');
    await page.waitForSelector('h1:has-text("Rename passkey")');
    await assertAccessible(page, 'account rename passkey');
    await screenshots(page, 'account-passkey-rename');
    await page.fill('#passkey-name', '   ');
    const empty = await post(page, () => page.click('button:has-text("Save the name")'));
    assert.equal(empty.status(), 400);
    await page.waitForSelector('#name-error:has-text("Give the passkey a name.")');
    assert.equal(await page.getAttribute('#passkey-name', 'aria-invalid'), 'true');
    await assertAccessible(page, 'account rename passkey, refused');
    await page.fill('#passkey-name', 'Pocket phone');
    assert.equal((await post(page, () => page.click('button:has-text("Save the name")'))).status(), 303);
    await page.waitForSelector('[role="status"]:has-text("Passkey renamed.")');
    assert.deepEqual(await storedNames('ada'), ['Laptop', 'Pocket phone']);
    assert.deepEqual((await eventsOf('passkey.renamed', ada)).map((event) => [event.details['from'], event.details['to']]), [['Phone', 'Pocket phone']]);

    // Without the CSRF token: refused, nothing removed.
    const laptopHref = await page.getAttribute('a[aria-label="Remove Laptop"]', 'href');
    assert.ok(laptopHref);
    const forged = await context.request.post(laptopHref, { form: { csrf: 'forged' }, maxRedirects: 0 });
    assert.equal(forged.status(), 403);
    assert.deepEqual(await storedNames('ada'), ['Laptop', 'Pocket phone']);

    // Remove: a confirmation page, then gone.
    await page.click('a[aria-label="Remove Laptop"]');
    await page.waitForSelector('h1:has-text("Remove “Laptop”?")');
    await assertAccessible(page, 'account remove passkey');
    await screenshots(page, 'account-passkey-remove');
    assert.equal((await post(page, () => page.click('button:has-text("Remove this passkey")'))).status(), 303);
    await page.waitForSelector('[role="status"]:has-text("Passkey removed.")');
    assert.deepEqual(await passkeyNames(page), ['Pocket phone']);
    const removed = await eventsOf('passkey.removed', ada);
    assert.deepEqual(removed.map((event) => [event.details['name'], event.details['last_factor']]), [['Laptop', false]]);

    // The last one: ada must use a second factor, so it stays (409, the reason on the page).
    await page.click('a[aria-label="Remove Pocket phone"]');
    const refused = await post(page, () => page.click('button:has-text("Remove this passkey")'));
    assert.equal(refused.status(), 409);
    await page.waitForSelector(`[role="alert"]:has-text("${LAST_FACTOR_MESSAGE}")`);
    await assertAccessible(page, 'account remove last passkey, refused');
    await screenshots(page, 'account-passkey-remove-last');
    assert.deepEqual(await storedNames('ada'), ['Pocket phone']);
    assert.equal((await eventsOf('passkey.removed', ada)).length, 1);

    // The account cookie gone, the Gatehouse session (with its second factor) signs in again without asking.
    await context.clearCookies({ name: 'gatehouse-account' });
    await page.goto(listUrl());
    await page.waitForURL(listUrl());
    assert.deepEqual(await passkeyNames(page), ['Pocket phone']);

    // Signing out ends the Gatehouse session too (its own confirmation page).
    await page.goto(listUrl());
    await page.click('button:has-text("Sign out")');
    await page.waitForSelector('h1:has-text("Sign out?")');
    await page.click('button:has-text("Yes, sign me out")');
    await page.goto(listUrl());
    await page.waitForSelector('#username');
    await context.close();
  });

  test('someone without mfa_required enrolls at the account’s sign-in, and may remove their only passkey (the recovery codes go with it)', async () => {
    const bob = ids.get('bob')!;
    const context = await newContext();
    const page = await context.newPage();
    await addAuthenticator(page);
    await page.goto(listUrl());
    await signInEnrollingPasskey(page, 'bob', '');
    assert.deepEqual(await passkeyNames(page), ['Passkey']);
    await page.click('a[aria-label="Remove Passkey"]');
    assert.equal((await post(page, () => page.click('button:has-text("Remove this passkey")'))).status(), 303);
    await page.waitForSelector('#no-passkeys');
    assert.deepEqual(await storedNames('bob'), []);
    const { rows } = await server.db.query<{ n: number }>('SELECT count(*)::int AS n FROM user_recovery_codes WHERE user_id = $1', [bob]);
    assert.equal(rows[0]?.n, 0);
    assert.deepEqual((await eventsOf('passkey.removed', bob)).map((event) => event.details['last_factor']), [true]);

    // Another person's passkey is not found from bob's session; nothing changes.
    const { rows: adas } = await server.db.query<{ credential_id: string }>('SELECT credential_id FROM user_passkeys WHERE user_id = $1', [ids.get('ada')!]);
    const adaPasskey = adas[0]!.credential_id;
    const foreign = await page.goto(`${listUrl()}/${adaPasskey}/remove`);
    assert.equal(foreign?.status(), 404);
    await assertAccessible(page, 'account passkey not found');
    assert.deepEqual(await storedNames('ada'), ['Pocket phone']);
    await context.close();
  });

  test('without a session, every page sends the browser to sign in and no post changes anything', async () => {
    const context = await newContext();
    const { rows } = await server.db.query<{ credential_id: string }>('SELECT credential_id FROM user_passkeys WHERE user_id = $1', [ids.get('ada')!]);
    const passkey = rows[0]!.credential_id;
    for (const [method, path] of [
      ['GET', '/account/passkeys'],
      ['GET', `/account/passkeys/${passkey}/remove`],
      ['POST', `/account/passkeys/${passkey}/remove`],
      ['POST', `/account/passkeys/${passkey}/rename`],
      ['POST', '/account/passkeys/options'],
      ['POST', '/account/passkeys'],
    ] as const) {
      const response = await context.request.fetch(`${server.issuer}${path}`, { method, form: method === 'POST' ? { csrf: 'x', name: 'taken over' } : undefined, maxRedirects: 0 });
      assert.equal(response.status(), 303, `${method} ${path}`);
      assert.equal(response.headers()['location'], `${server.issuer}/account/sign-in`);
    }
    assert.deepEqual(await storedNames('ada'), ['Pocket phone']);
    await context.close();
  });
});
