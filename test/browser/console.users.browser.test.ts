/// <reference lib="dom" />
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import type { Browser, BrowserContext, Page, Response } from 'playwright-core';
import { CONSOLE_AREAS } from '../../src/console/areas.js';
import { consoleModules } from '../../src/console/modules.js';
import { STALE_FORM_MESSAGE } from '../../src/console/forms.js';
import { createUserIdentityStore } from '../../src/db/identity-providers.js';
import type { ManagementServices } from '../../src/management/index.js';
import { adminApi, adminToken, type AdminApi, type Page as ApiPage } from '../support/admin-api.js';
import { assertAccessible, chromiumMissing, launchChromium, screenshots } from '../support/browser.js';
import { firstConsoleSignIn } from '../support/console.js';
import { startTestServer, type TestServer } from '../support/server.js';

/**
 * SPEC §11, the console's users area in Debian's Chromium: a person holding only `gatehouse:users`
 * sees that area and no other; creates a user (errors by field), finds them by the start of the
 * username and of the email, pages through more than 50; edits roles, and a form made stale by
 * a change through the admin API is refused with the conflict message (409), nothing
 * overwritten; sets a new password (the new one signs in at the hosted login, the old one no
 * longer), disables (no sign-in), removes the second factor, unlinks an identity and deletes,
 * each behind a confirmation page. Every change is read back through the admin API's audit
 * events with the person's id as the actor; a post without the CSRF token changes nothing.
 */

const PASSWORD = 'correct horse battery staple';
const NEW_PASSWORD = 'plum-violet-orbit-42-new';
/** More than one page of the console's list (50 a page). */
const BULK = 60;

interface UserBody {
  id: string;
  username: string;
  email: string | null;
  name: string | null;
  roles: string[];
  disabled: boolean;
  mfa_enrolled: boolean;
  identities: { provider_id: string }[];
}

interface AuditEvent {
  type: string;
  actor: string | null;
  target: string | null;
  details: Record<string, unknown>;
}

describe('the admin console: users', { skip: chromiumMissing }, () => {
  let server: TestServer;
  let browser: Browser;
  let api: AdminApi;
  /** The people who use the console here, all with only gatehouse:users: one a test (each enrolls TOTP on first sign-in). */
  const ids = new Map<string, string>();
  const wardenId = () => ids.get('warden')!;

  // bypassCSP only so the test can inject axe-core; the pages themselves run only console.js.
  const newContext = (): Promise<BrowserContext> => browser.newContext({ bypassCSP: true });
  const usersUrl = () => `${server.issuer}/console/users`;

  async function post(page: Page, click: () => Promise<void>): Promise<Response> {
    const [response] = await Promise.all([page.waitForResponse((candidate) => candidate.request().method() === 'POST'), click()]);
    return response;
  }

  async function rowNames(page: Page): Promise<string[]> {
    return page.locator('tbody tr td:first-child').allTextContents().then((cells) => cells.map((cell) => cell.trim()));
  }

  async function apiUser(id: string): Promise<UserBody> {
    const read = await api.request<UserBody>('GET', `/users/${id}`);
    assert.equal(read.status, 200, read.text);
    return read.body;
  }

  /** The audit events the person caused, newest first, through the admin API. */
  async function eventsBy(actor: string): Promise<AuditEvent[]> {
    const read = await api.request<ApiPage<AuditEvent>>('GET', `/audit-events?actor=${encodeURIComponent(actor)}&limit=200`);
    assert.equal(read.status, 200, read.text);
    return read.body.items;
  }

  async function assertAudited(type: string, target: string, actor = wardenId()): Promise<AuditEvent> {
    const event = (await eventsBy(actor)).find((candidate) => candidate.type === type && candidate.target === target);
    assert.ok(event, `${type} on ${target} with the person as actor`);
    return event;
  }

  /** The hosted login with these credentials: true when the password is accepted (the next step is the second factor). */
  async function passwordAccepted(username: string, password: string): Promise<boolean> {
    const context = await newContext();
    try {
      const page = await context.newPage();
      await page.goto(`${server.issuer}/console`);
      await page.waitForSelector('#username');
      await page.fill('#username', username);
      await page.fill('#password', password);
      await page.click('button[type="submit"]');
      const refused = page.locator('#login-error');
      await refused.or(page.locator('h1', { hasText: 'two-step verification' })).waitFor();
      return (await refused.count()) === 0;
    } finally {
      await context.close();
    }
  }

  before(async () => {
    server = await startTestServer();
    api = adminApi(server, await adminToken(server, 'admin:users admin:audit admin:identity-providers'));
    for (const username of ['gatekeeper', 'warden', 'steward']) {
      const person = await api.request<UserBody>('POST', '/users', { json: { username, password: PASSWORD, roles: ['gatehouse:users'] } });
      assert.equal(person.status, 201, person.text);
      ids.set(username, person.body.id);
    }
    for (let i = 0; i < BULK; i += 1) {
      const n = String(i).padStart(3, '0');
      const created = await api.request('POST', '/users', { json: { username: `bulk-${n}`, password: PASSWORD, email: `bulk-${n}@bulk.example` } });
      assert.equal(created.status, 201, created.text);
    }
    browser = await launchChromium();
  });
  after(async () => {
    await browser?.close();
    await server?.close();
  });

  test('gatehouse:users alone: the users area and nothing else; every other area refused on direct URLs', async () => {
    const context = await newContext();
    const page = await firstConsoleSignIn(context, server.issuer, 'gatekeeper', PASSWORD);
    await page.goto(usersUrl());
    assert.deepEqual(await page.locator('nav[aria-label="Console areas"] a').allTextContents(), ['Users']);
    // Areas with pages in this tree must answer 403; those still being built elsewhere have no route yet (404).
    const built = new Set(consoleModules(new Proxy({}, { get: () => ({}) }) as ManagementServices).map((module) => module.id));
    for (const area of CONSOLE_AREAS.filter((candidate) => candidate.id !== 'users')) {
      const response = await page.goto(`${server.issuer}/console/${area.id}`);
      if (built.has(area.id)) {
        assert.equal(response?.status(), 403, `${area.id} is refused`);
        await page.waitForSelector('h1:has-text("No access to the console")');
      } else {
        assert.ok([403, 404].includes(response?.status() ?? 0), `${area.id}: ${response?.status()}`);
      }
    }
    const rotate = await context.request.post(`${server.issuer}/console/keys/rotate`, { form: { csrf: 'x' }, maxRedirects: 0 });
    assert.equal(rotate.status(), 403);
    await context.close();
  });

  test('create, search, page, edit (and a stale edit), new password, disable, second factor, unlink, delete: all audited with the person as actor', async () => {
    const context = await newContext();
    const page = await firstConsoleSignIn(context, server.issuer, 'warden', PASSWORD);

    // The list: the first 50, a Next page link.
    await page.click('a:has-text("Users")');
    await page.waitForURL(usersUrl());
    assert.equal(await page.title(), 'Users · Gatehouse');
    assert.equal(await page.locator('tbody tr').count(), 50);
    assert.deepEqual(await page.locator('thead th').allTextContents(), ['Username', 'Email', 'Roles', 'Status', 'Second factor', 'Identities']);
    await assertAccessible(page, 'console users');
    await screenshots(page, 'console-users');
    await page.click('a:has-text("Next page")');
    await page.waitForSelector('a:has-text("First page")');
    assert.equal(await page.locator('tbody tr').count(), BULK + ids.size - 50);

    // Create: refused first, each error by its field, what was typed kept (but never the password).
    await page.goto(usersUrl());
    await page.click('a:has-text("New user")');
    await page.waitForSelector('h1:has-text("New user")');
    await page.fill('#username', 'ada-lovelace');
    await page.fill('#password', 'short');
    await page.fill('#password_confirmation', 'different');
    await page.fill('#email', 'not-an-email');
    await page.fill('#roles', 'billing:admin bad/role');
    const refused = await post(page, () => page.click('button:has-text("Create user")'));
    assert.equal(refused.status(), 400);
    assert.equal(await page.title(), 'Error: New user · Gatehouse');
    for (const [field, message] of [
      ['password', /at least 12 characters/],
      ['password_confirmation', /does not match/],
      ['email', /email address/],
      ['roles', /“bad\/role”/],
    ] as const) {
      assert.equal(await page.getAttribute(`#${field}`, 'aria-invalid'), 'true', field);
      assert.match((await page.getAttribute(`#${field}`, 'aria-describedby')) ?? '', new RegExp(`${field}-error`));
      assert.match((await page.textContent(`#${field}-error`)) ?? '', message);
    }
    assert.equal(await page.inputValue('#username'), 'ada-lovelace');
    assert.equal(await page.inputValue('#roles'), 'billing:admin bad/role');
    assert.equal(await page.inputValue('#password'), '');
    await assertAccessible(page, 'console new user with errors');
    await screenshots(page, 'console-user-new-errors');

    await page.fill('#password', PASSWORD);
    await page.fill('#password_confirmation', PASSWORD);
    await page.fill('#email', 'ada@analytical.example');
    await page.fill('#name', 'Ada Lovelace');
    await page.fill('#roles', 'billing:admin');
    const createdResponse = await post(page, () => page.click('button:has-text("Create user")'));
    assert.equal(createdResponse.status(), 303);
    await page.waitForSelector('[role="status"]:has-text("User created")');
    const adaId = new URL(page.url()).pathname.split('/').at(-1)!;
    const ada = await apiUser(adaId);
    assert.deepEqual([ada.username, ada.email, ada.name, ada.roles, ada.disabled], ['ada-lovelace', 'ada@analytical.example', 'Ada Lovelace', ['billing:admin'], false]);
    await assertAudited('user.created', adaId);
    await assertAccessible(page, 'console user');
    await screenshots(page, 'console-user');

    // The same name again (ignoring case): the service's 409 by the username field.
    await page.goto(`${usersUrl()}/new`);
    await page.fill('#username', 'Ada-Lovelace');
    await page.fill('#password', PASSWORD);
    await page.fill('#password_confirmation', PASSWORD);
    assert.equal((await post(page, () => page.click('button:has-text("Create user")'))).status(), 409);
    assert.match((await page.textContent('#username-error')) ?? '', /already taken/);

    // Search: the start of the username, the start of the email (any case), nothing.
    await page.goto(usersUrl());
    await page.fill('#q', 'ada-l');
    await page.press('#q', 'Enter');
    await page.waitForURL((url) => url.searchParams.get('q') === 'ada-l');
    assert.deepEqual(await rowNames(page), ['ada-lovelace']);
    await page.fill('#q', 'ADA@Analyt');
    await page.press('#q', 'Enter');
    await page.waitForURL((url) => url.searchParams.get('q') === 'ADA@Analyt');
    assert.deepEqual(await rowNames(page), ['ada-lovelace']);
    await assertAccessible(page, 'console users search');
    await screenshots(page, 'console-users-search');
    await page.goto(`${usersUrl()}?q=${encodeURIComponent('<b>nobody</b>')}`);
    await page.waitForSelector('text=No user matches.');
    assert.equal(await page.locator('b').count(), 0, 'the search term is escaped');
    // The search is kept across pages: 50 of the 60 bulk users, then the other 10, then back.
    await page.goto(`${usersUrl()}?q=bulk-`);
    assert.equal(await page.locator('tbody tr').count(), 50);
    await page.click('a:has-text("Next page")');
    await page.waitForURL((url) => url.searchParams.has('cursor') && url.searchParams.get('q') === 'bulk-');
    assert.deepEqual(await rowNames(page), Array.from({ length: 10 }, (_, i) => `bulk-${String(50 + i).padStart(3, '0')}`));
    await page.click('a:has-text("First page")');
    await page.waitForURL((url) => !url.searchParams.has('cursor') && url.searchParams.get('q') === 'bulk-');
    assert.equal(await page.locator('tbody tr').count(), 50);
    await page.goto(`${usersUrl()}?q=%40bulk.example`);
    assert.equal(await page.locator('tbody tr').count(), 0, 'an email is searched from its start');
    // A forged cursor: a clear 400, never a 500.
    const forged = await page.goto(`${usersUrl()}?cursor=forged`);
    assert.equal(forged?.status(), 400);
    await page.waitForSelector('[role="alert"]:has-text("Next page")');

    // Edit roles.
    await page.goto(`${usersUrl()}/${adaId}`);
    await page.fill('#roles', 'billing:admin reports:read');
    assert.equal((await post(page, () => page.click('button:has-text("Save changes")'))).status(), 303);
    await page.waitForSelector('[role="status"]:has-text("Changes saved")');
    assert.deepEqual((await apiUser(adaId)).roles, ['billing:admin', 'reports:read']);
    assert.deepEqual((await assertAudited('user.updated', adaId)).details['fields'], ['roles']);

    // A bad value: refused by its field, nothing saved.
    await page.fill('#username', 'two words');
    assert.equal((await post(page, () => page.click('button:has-text("Save changes")'))).status(), 400);
    assert.equal(await page.getAttribute('#username', 'aria-invalid'), 'true');
    assert.equal(await page.inputValue('#username'), 'two words');
    assert.equal((await apiUser(adaId)).username, 'ada-lovelace');

    // A stale form: someone changes the user through the admin API meanwhile.
    await page.goto(`${usersUrl()}/${adaId}`);
    await page.fill('#roles', 'overwritten:role');
    const elsewhere = await api.request('PATCH', `/users/${adaId}`, { json: { name: 'Changed Elsewhere' } });
    assert.equal(elsewhere.status, 200, elsewhere.text);
    assert.equal((await post(page, () => page.click('button:has-text("Save changes")'))).status(), 409);
    await page.waitForSelector(`[role="alert"]:has-text("${STALE_FORM_MESSAGE.slice(0, 40)}")`);
    assert.equal(await page.inputValue('#name'), 'Changed Elsewhere', 'the form shows the current values');
    assert.equal(await page.inputValue('#roles'), 'billing:admin reports:read');
    const afterStale = await apiUser(adaId);
    assert.deepEqual([afterStale.name, afterStale.roles], ['Changed Elsewhere', ['billing:admin', 'reports:read']], 'nothing overwritten');
    await assertAccessible(page, 'console user stale form');
    await screenshots(page, 'console-user-stale');
    // The refreshed form carries the new version: the change made again applies.
    await page.fill('#roles', 'billing:admin');
    assert.equal((await post(page, () => page.click('button:has-text("Save changes")'))).status(), 303);
    assert.deepEqual((await apiUser(adaId)).roles, ['billing:admin']);

    // A new password: the schema's rules, then the old password fails and the new one signs in.
    await page.click('a:has-text("Set a new password")');
    await page.waitForSelector('h1:has-text("New password for ada-lovelace")');
    await page.fill('#password', 'too-short');
    await page.fill('#password_confirmation', 'too-short');
    assert.equal((await post(page, () => page.click('button:has-text("Set the new password")'))).status(), 400);
    assert.match((await page.textContent('#password-error')) ?? '', /at least 12 characters/);
    assert.equal(await page.getAttribute('#password', 'aria-invalid'), 'true');
    await assertAccessible(page, 'console new password with errors');
    await screenshots(page, 'console-user-password');
    await page.fill('#password', NEW_PASSWORD);
    await page.fill('#password_confirmation', `${NEW_PASSWORD}x`);
    assert.equal((await post(page, () => page.click('button:has-text("Set the new password")'))).status(), 400);
    assert.match((await page.textContent('#password_confirmation-error')) ?? '', /does not match/);
    await page.fill('#password', NEW_PASSWORD);
    await page.fill('#password_confirmation', NEW_PASSWORD);
    assert.equal((await post(page, () => page.click('button:has-text("Set the new password")'))).status(), 303);
    await page.waitForSelector('[role="status"]:has-text("New password set")');
    await assertAudited('user.password_changed', adaId);
    assert.equal(await passwordAccepted('ada-lovelace', PASSWORD), false, 'the old password no longer signs in');
    // The new one signs in; Ada enrolls TOTP on the way (she has no console area: the no-access page).
    const adaContext = await newContext();
    const adaPage = await firstConsoleSignIn(adaContext, server.issuer, 'ada-lovelace', NEW_PASSWORD);
    await adaPage.waitForSelector('h1:has-text("No access to the console")');
    assert.equal((await apiUser(adaId)).mfa_enrolled, true);

    // Disable, behind a confirmation page: her session ends and she can no longer sign in.
    await page.goto(`${usersUrl()}/${adaId}`);
    await page.click('a:has-text("Disable this user")');
    await page.waitForSelector('h1:has-text("Disable user ada-lovelace?")');
    assert.equal(await page.locator('text=This is you').count(), 0);
    await assertAccessible(page, 'console disable user');
    await screenshots(page, 'console-user-disable');
    assert.equal((await post(page, () => page.click('button:has-text("Disable this user")'))).status(), 303);
    await page.waitForSelector('[role="status"]:has-text("User disabled")');
    assert.equal(await page.textContent('#user-status'), 'Disabled: cannot sign in');
    assert.equal((await apiUser(adaId)).disabled, true);
    await assertAudited('user.disabled', adaId);
    await adaPage.goto(`${server.issuer}/console`);
    await adaPage.waitForSelector('#username');
    await adaContext.close();
    assert.equal(await passwordAccepted('ada-lovelace', NEW_PASSWORD), false, 'a disabled user cannot sign in');
    // And enable again.
    await page.click('a:has-text("Enable this user")');
    await page.waitForSelector('h1:has-text("Enable user ada-lovelace?")');
    assert.equal((await post(page, () => page.click('button:has-text("Enable this user")'))).status(), 303);
    await page.waitForSelector('[role="status"]:has-text("User enabled")');
    assert.equal((await apiUser(adaId)).disabled, false);
    assert.deepEqual((await assertAudited('user.updated', adaId)).details['fields'], ['disabled']);

    // Remove the second factor.
    assert.equal(await page.textContent('#user-mfa'), 'Enrolled');
    await page.click('a:has-text("Remove the second factor")');
    await page.waitForSelector('h1:has-text("Remove second factor ada-lovelace?")');
    assert.equal((await post(page, () => page.click('button:has-text("Remove the second factor")'))).status(), 303);
    await page.waitForSelector('[role="status"]:has-text("Second factor removed")');
    assert.equal((await apiUser(adaId)).mfa_enrolled, false);
    assert.equal(await page.locator('a:has-text("Remove the second factor")').count(), 0);
    await assertAudited('mfa.reset', adaId);

    // Unlink an identity. Linked through the data layer (as a federated sign-in would), at a
    // provider made through the admin API: no upstream is needed for the console's part.
    const provider = await api.request<{ id: string }>('POST', '/identity-providers', { json: { name: 'Corp SSO', issuer: 'https://sso.corp.example', client_id: 'gatehouse' } });
    assert.equal(provider.status, 201, provider.text);
    assert.ok(await createUserIdentityStore(server.db).link({ providerId: provider.body.id, subject: 'corp-sub-7', userId: adaId, email: 'ada@corp.example', mappedRoles: [] }));
    await page.goto(`${usersUrl()}/${adaId}`);
    assert.match((await page.locator(`tr[data-provider="${provider.body.id}"]`).textContent()) ?? '', /Corp SSO\s*corp-sub-7\s*ada@corp\.example/);
    await page.goto(`${usersUrl()}?q=ada-l`);
    assert.equal(await page.textContent('tbody tr td.identities'), '1');
    await page.goto(`${usersUrl()}/${adaId}`);
    await page.click('a:has-text("Unlink")');
    await page.waitForSelector('h1:has-text("Unlink identity of ada-lovelace?")');
    await page.waitForSelector('text=Corp SSO, subject corp-sub-7');
    await assertAccessible(page, 'console unlink identity');
    await screenshots(page, 'console-user-unlink');
    assert.equal((await post(page, () => page.click('button:has-text("Unlink this identity")'))).status(), 303);
    await page.waitForSelector('[role="status"]:has-text("Identity unlinked")');
    assert.deepEqual((await apiUser(adaId)).identities, []);
    assert.equal((await assertAudited('user.identity_unlinked', adaId)).details['subject'], 'corp-sub-7');
    const gone = await page.goto(`${usersUrl()}/${adaId}/identities/${provider.body.id}/unlink`);
    assert.equal(gone?.status(), 404);

    // Without the session's CSRF token nothing happens.
    for (const form of [{ csrf: 'forged' }, { confirm: 'yes' }] as Record<string, string>[]) {
      const refusedDelete = await context.request.post(`${usersUrl()}/${adaId}/delete`, { form, maxRedirects: 0 });
      assert.equal(refusedDelete.status(), 403);
    }
    const noCsrfEdit = await context.request.post(`${usersUrl()}/${adaId}`, { form: { username: 'hijacked', roles: 'gatehouse:admin' }, maxRedirects: 0 });
    assert.equal(noCsrfEdit.status(), 403);
    const intact = await apiUser(adaId);
    assert.deepEqual([intact.username, intact.roles], ['ada-lovelace', ['billing:admin']]);

    // Delete, behind a confirmation page.
    await page.goto(`${usersUrl()}/${adaId}`);
    await page.click('a:has-text("Delete this user")');
    await page.waitForSelector('h1:has-text("Delete user ada-lovelace?")');
    await assertAccessible(page, 'console delete user');
    assert.equal((await post(page, () => page.click('button:has-text("Delete this user")'))).status(), 303);
    await page.waitForURL((url) => url.pathname.endsWith('/console/users') && url.searchParams.get('done') === 'deleted');
    await page.waitForSelector('[role="status"]:has-text("User deleted")');
    assert.equal((await api.request('GET', `/users/${adaId}`)).status, 404);
    await assertAudited('user.deleted', adaId);
    const missing = await page.goto(`${usersUrl()}/${adaId}`);
    assert.equal(missing?.status(), 404);
    await page.waitForSelector('[role="alert"]:has-text("No user with that id")');
    assert.equal((await page.goto(`${usersUrl()}/not-a-uuid/delete`))?.status(), 404);
    assert.equal((await page.goto(`${usersUrl()}/${randomUUID()}/password`))?.status(), 404);

    // Every change above names the person as the actor.
    const types = new Set((await eventsBy(wardenId())).filter((event) => event.target === adaId).map((event) => event.type));
    for (const type of ['user.created', 'user.updated', 'user.password_changed', 'user.disabled', 'mfa.reset', 'user.identity_unlinked', 'user.deleted']) {
      assert.ok(types.has(type), type);
    }
    await context.close();
  });

  test('acting on oneself: allowed as in the admin API, but the confirmation page says it is you', async () => {
    const context = await newContext();
    const page = await firstConsoleSignIn(context, server.issuer, 'steward', PASSWORD);
    const self = ids.get('steward')!;
    await page.goto(`${usersUrl()}/${self}`);
    await page.waitForSelector('h1:has-text("(you)")');
    // SPEC §11: a role opens what its admin scopes do; gatehouse:users alone cannot grant gatehouse:admin, to itself or anyone.
    await page.fill('#roles', 'gatehouse:users gatehouse:admin');
    const climb = await post(page, () => page.click('button:has-text("Save changes")'));
    assert.equal(climb.status(), 403);
    await page.waitForSelector('[role="alert"]:has-text("admin:keys")');
    assert.deepEqual((await apiUser(self)).roles, ['gatehouse:users']);
    for (const action of ['disable', 'delete', 'second-factor', 'password']) {
      await page.goto(`${usersUrl()}/${self}/${action}`);
      await page.waitForSelector('[role="note"]:has-text("This is you")');
    }
    await page.goto(`${usersUrl()}/${self}/disable`);
    await assertAccessible(page, 'console disable yourself');
    await screenshots(page, 'console-user-disable-self');
    // Doing it ends this console session at once: the next page is the sign-in.
    assert.equal((await post(page, () => page.click('button:has-text("Disable this user")'))).status(), 303);
    await page.waitForSelector('#username');
    assert.equal((await apiUser(self)).disabled, true);
    await assertAudited('user.disabled', self, self);
    await context.close();
  });
});
