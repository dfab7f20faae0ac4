/// <reference lib="dom" />
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { createLocalJWKSet, jwtVerify, type JSONWebKeySet } from 'jose';
import type { Browser, BrowserContext, Page, Response } from 'playwright-core';
import { adminCall, adminToken, clientCredentials, createClient, uniqueName, type ClientBody, ALL_ADMIN_SCOPES } from '../support/admin-api.js';
import { assertAccessible, chromiumMissing, launchChromium, screenshots } from '../support/browser.js';
import { firstConsoleSignIn } from '../support/console.js';
import { startTestServer, type TestServer } from '../support/server.js';

/**
 * SPEC §11, the console's clients area, in Debian's Chromium: a person with gatehouse:clients and
 * gatehouse:resource-servers signs in with TOTP, creates a resource server with its form, then a
 * client for it with the client form (errors by field first, what was typed kept), reads the
 * secret from the page that shows it once, and gets a real client-credentials token for the
 * resource server; edits it (a stale form is refused with the conflict message and overwrites
 * nothing), rotates its secret (the old one is refused, the new one works) and deletes it (its
 * credentials are refused), each audited with the person as the actor. The list pages with a
 * cursor and finds a client by name prefix and by client_id; a post without the CSRF token and a
 * person without the area are refused.
 */

const PASSWORD = 'correct horse battery staple';
/** More than one page of the console's list (50 a page). */
const EXISTING = 55;

interface AuditEvent {
  readonly type: string;
  readonly actor: string | null;
  readonly target: string | null;
}

describe('the admin console: clients', { skip: chromiumMissing }, () => {
  let server: TestServer;
  let browser: Browser;
  let personId: string;
  let listUrl: string;
  /** The client owner's browser, signed in once (a second sign-in would ask for the TOTP code). */
  let owner: BrowserContext;
  let ownerFirstPage: Page;

  const signIn = (context: BrowserContext, username: string): Promise<Page> => firstConsoleSignIn(context, server.issuer, username, PASSWORD);

  async function auditEvents(type: string, target: string): Promise<AuditEvent[]> {
    const query = new URLSearchParams({ type, target }).toString();
    const response = await adminCall<{ items: AuditEvent[] }>(server, 'GET', `/audit-events?${query}`, undefined, await adminToken(server, 'admin:audit'));
    assert.equal(response.status, 200, JSON.stringify(response.body));
    return response.body.items;
  }

  async function assertAuditedByPerson(type: string, clientId: string): Promise<void> {
    const events = await auditEvents(type, clientId);
    assert.equal(events.length, 1, `one ${type} event for ${clientId}: ${JSON.stringify(events)}`);
    assert.equal(events[0]!.actor, personId, `${type}: the person is the actor`);
  }

  /** Clicks `selector` and returns the answer to the POST it sends. */
  async function submit(page: Page, selector: string): Promise<Response> {
    const [response] = await Promise.all([page.waitForResponse((r) => r.request().method() === 'POST' && r.request().isNavigationRequest()), page.click(selector)]);
    await page.waitForLoadState();
    return response;
  }

  before(async () => {
    server = await startTestServer();
    listUrl = `${server.issuer}/console/clients`;
    const users = await adminToken(server, ALL_ADMIN_SCOPES);
    for (const [username, roles] of [
      ['client-owner', ['gatehouse:clients', 'gatehouse:resource-servers']],
      ['helpdesk', ['gatehouse:users']],
    ] as const) {
      const created = await adminCall(server, 'POST', '/users', { username, password: PASSWORD, roles: [...roles] }, users);
      assert.equal(created.status, 201, JSON.stringify(created.body));
      if (username === 'client-owner') personId = created.body['id'] as string;
    }
    const token = await adminToken(server);
    for (let i = 0; i < EXISTING; i += 1) await createClient(server, { client_name: `Paging ${String(i).padStart(2, '0')}`, allowed_resources: [] }, token);
    browser = await launchChromium();
    // bypassCSP only so the test can inject axe-core; the console's own script runs either way.
    owner = await browser.newContext({ bypassCSP: true });
    await owner.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: new URL(server.issuer).origin });
    ownerFirstPage = await signIn(owner, 'client-owner');
  });
  after(async () => {
    await owner?.close();
    await browser?.close();
    await server?.close();
  });

  test('create a resource server and a client for it in the console; the secret shown once gets a real token; edit (stale form 409), rotate and delete, audited with the person', async () => {
    const page = ownerFirstPage;
    const context = owner;

    // The resource server, through the resource-servers area's form.
    const identifier = `https://${uniqueName('billing')}.example.com`;
    await page.goto(`${server.issuer}/console/resource-servers/new`);
    await page.fill('#identifier', identifier);
    await page.fill('#name', 'Billing API');
    await page.fill('#scopes', 'billing:read billing:write');
    // Creating one opens its page, which says so.
    await Promise.all([page.waitForURL(/\/console\/resource-servers\/[\w-]+\?done=created$/), page.click('button:has-text("Create resource server")')]);

    await page.click('nav a:has-text("Clients")');
    await page.waitForURL(listUrl);
    assert.equal(await page.title(), 'Clients · Gatehouse');
    await assertAccessible(page, 'console clients');
    await screenshots(page, 'console-clients');

    await page.click('a:has-text("New client")');
    await page.waitForURL(`${listUrl}/new`);
    await assertAccessible(page, 'console new client');
    await screenshots(page, 'console-client-new');

    // A redirect URI on a client-credentials client and a scope no allowed resource server defines: each by its field.
    const name = uniqueName('Billing worker');
    await page.fill('#client_name', name);
    assert.ok(await page.isChecked('#grant_types-2'), 'client_credentials ticked by default');
    await page.fill('#redirect_uris', 'https://app.example.com/callback');
    await page.selectOption('#token_endpoint_auth_method', 'client_secret_basic');
    await page.check(`input[name="resource:${identifier}"]`);
    await page.fill('#scope', 'billing:read billing:nope');
    await page.check('#require_mfa');
    const refused = await submit(page, 'button:has-text("Create client")');
    assert.equal(refused.status(), 400);
    assert.equal(await page.title(), 'Error: New client · Gatehouse');
    assert.match((await page.textContent('#redirect_uris-error')) ?? '', /only clients with the authorization_code grant/);
    assert.equal(await page.getAttribute('#redirect_uris', 'aria-invalid'), 'true');
    assert.match((await page.getAttribute('#redirect_uris', 'aria-describedby')) ?? '', /redirect_uris-error/);
    assert.equal(await page.locator('#client_name-error').count(), 0, 'no error where there is none');
    // What was typed is kept.
    assert.equal(await page.inputValue('#client_name'), name);
    assert.equal(await page.inputValue('#redirect_uris'), 'https://app.example.com/callback');
    assert.equal(await page.inputValue('#scope'), 'billing:read billing:nope');
    assert.ok(await page.isChecked(`input[name="resource:${identifier}"]`));
    assert.ok(await page.isChecked('#require_mfa'));
    await assertAccessible(page, 'console new client with errors');
    await screenshots(page, 'console-client-new-errors');

    // The schema passes; the service then judges the scope against the resource server.
    await page.fill('#redirect_uris', '');
    const scopeRefused = await submit(page, 'button:has-text("Create client")');
    assert.equal(scopeRefused.status(), 400);
    assert.match((await page.textContent('#scope-error')) ?? '', /not defined by the allowed resource servers: billing:nope/);

    await page.fill('#scope', 'billing:read');
    await page.uncheck('#require_mfa');
    const created = await submit(page, 'button:has-text("Create client")');
    assert.equal(created.status(), 200);
    assert.equal(created.headers()['cache-control'], 'no-store');
    assert.equal(page.url(), listUrl, 'the secret is in the answer to the POST, never in a URL');
    assert.match((await page.textContent('[role="alert"]')) ?? '', /shown only this once and will not be shown again/);
    const secret = ((await page.textContent('#client-secret')) ?? '').trim();
    const clientId = ((await page.textContent('#client-id')) ?? '').trim();
    assert.ok(secret.length >= 32 && clientId.length > 0);
    assert.ok((await context.cookies()).every((cookie) => !cookie.value.includes(secret)), 'nor in a cookie');
    // The copy button (views/static/console.js) copies the secret.
    await page.click('button[data-copy="client-secret"]');
    assert.equal(await page.evaluate(() => navigator.clipboard.readText()), secret);
    await assertAccessible(page, 'console client secret');
    await screenshots(page, 'console-client-secret');

    // A real client-credentials token for the resource server.
    const issued = await clientCredentials(server, clientId, secret, { resource: identifier, scope: 'billing:read' });
    assert.equal(issued.status, 200, JSON.stringify(issued.body));
    const jwks = createLocalJWKSet((await (await fetch(`${server.issuer}/jwks`)).json()) as JSONWebKeySet);
    const { payload } = await jwtVerify(issued.body['access_token'] as string, jwks, { issuer: server.issuer, audience: identifier, typ: 'at+jwt' });
    assert.equal(payload['client_id'], clientId);
    assert.equal(payload['scope'], 'billing:read');
    await assertAuditedByPerson('client.created', clientId);

    // Leaving the page and coming back does not show the secret again (no-store, and a POST is not resent silently).
    await page.click('a:has-text("go to the client")');
    await page.waitForURL(`${listUrl}/${clientId}`);
    assert.ok(!((await page.content()).includes(secret)));
    // Going back: Chromium has no copy of the no-store answer to show and does not resend the POST by itself.
    const back = await page.goBack().then(
      () => undefined,
      (error: unknown) => error,
    );
    assert.match(back instanceof Error ? back.message : 'the secret page came back', /ERR_CACHE_MISS/);
    // Chromium then shows its own error page; let that navigation finish before the next one.
    await page.waitForURL((url) => url.protocol === 'chrome-error:', { timeout: 15_000 });
    const named = await adminCall<{ items: ClientBody[] }>(server, 'GET', `/clients?${new URLSearchParams({ client_name: name }).toString()}`, undefined, await adminToken(server));
    assert.equal(named.body.items.length, 1, 'and does not create the client again');

    // The detail page with its edit form.
    await page.goto(`${listUrl}/${clientId}`);
    assert.equal(await page.title(), `${name} · Gatehouse`);
    assert.equal(await page.inputValue('#scope'), 'billing:read');
    await assertAccessible(page, 'console client');
    await screenshots(page, 'console-client');

    // A stale form: someone changes the client through the admin API meanwhile.
    await page.fill('#scope', 'billing:read billing:write');
    const patched = await adminCall(server, 'PATCH', `/clients/${clientId}`, { client_name: `${name} (renamed)` }, await adminToken(server));
    assert.equal(patched.status, 200, JSON.stringify(patched.body));
    const stale = await submit(page, 'button:has-text("Save client")');
    assert.equal(stale.status(), 409);
    assert.match((await page.textContent('.form-error')) ?? '', /Someone else changed this while you were editing it/);
    assert.equal(await page.inputValue('#client_name'), `${name} (renamed)`, 'the form shows the current values');
    assert.equal(await page.inputValue('#scope'), 'billing:read');
    const unchanged = await adminCall<ClientBody>(server, 'GET', `/clients/${clientId}`, undefined, await adminToken(server));
    assert.equal(unchanged.body.client_name, `${name} (renamed)`, 'nothing overwritten');
    assert.equal(unchanged.body.scope, 'billing:read');
    await assertAccessible(page, 'console client stale form');
    await screenshots(page, 'console-client-stale');

    // Made again on the fresh form, it is saved.
    await page.fill('#scope', 'billing:read billing:write');
    const saved = await submit(page, 'button:has-text("Save client")');
    assert.equal(saved.status(), 303);
    await page.waitForURL(`${listUrl}/${clientId}?done=updated`);
    assert.match((await page.textContent('[role="status"]')) ?? '', /Client saved/);
    assert.equal(await page.inputValue('#scope'), 'billing:read billing:write');
    const updates = await auditEvents('client.updated', clientId);
    assert.equal(updates.filter((event) => event.actor === personId).length, 1, 'the console’s change audited with the person as actor');

    // Rotate: a confirmation page, then the new secret once.
    await page.click('a:has-text("Rotate secret")');
    await page.waitForURL(`${listUrl}/${clientId}/rotate`);
    assert.match((await page.textContent('h1')) ?? '', /Rotate the secret of/);
    await assertAccessible(page, 'console rotate client secret');
    await screenshots(page, 'console-client-rotate');
    const rotated = await submit(page, 'button:has-text("Rotate the secret")');
    assert.equal(rotated.status(), 200);
    assert.equal(rotated.headers()['cache-control'], 'no-store');
    const newSecret = ((await page.textContent('#client-secret')) ?? '').trim();
    assert.ok(newSecret.length >= 32 && newSecret !== secret);
    assert.equal((await clientCredentials(server, clientId, secret, { resource: identifier, scope: 'billing:read' })).status, 401, 'the old secret is refused');
    assert.equal((await clientCredentials(server, clientId, newSecret, { resource: identifier, scope: 'billing:read' })).status, 200, 'the new one works');
    await assertAuditedByPerson('client.secret_rotated', clientId);

    // Delete: a confirmation page naming the client, then the list with a done message.
    await page.goto(`${listUrl}/${clientId}/delete`);
    assert.match((await page.textContent('h1')) ?? '', new RegExp(`Delete ${name} \\(renamed\\)\\?`));
    await assertAccessible(page, 'console delete client');
    await screenshots(page, 'console-client-delete');
    const deleted = await submit(page, 'button:has-text("Delete this client")');
    assert.equal(deleted.status(), 303);
    await page.waitForURL(`${listUrl}?done=deleted`);
    assert.match((await page.textContent('[role="status"]')) ?? '', /Client deleted/);
    assert.equal((await clientCredentials(server, clientId, newSecret, { resource: identifier, scope: 'billing:read' })).status, 401, 'its credentials are refused');
    await assertAuditedByPerson('client.deleted', clientId);
    assert.equal((await page.goto(`${listUrl}/${clientId}`))?.status(), 404);
    await page.close();
  });

  test('the list pages with a cursor and finds clients by name prefix and by client_id; a forged cursor is a 400 page', async () => {
    const page = await owner.newPage();
    await page.goto(listUrl);
    assert.equal(await page.locator('tbody tr').count(), 50, 'a full first page');
    await page.click('a:has-text("Next page")');
    await page.waitForURL(/\/console\/clients\?cursor=/);
    assert.ok((await page.locator('tbody tr').count()) >= EXISTING - 50 + 1, 'the rest');
    assert.equal(await page.locator('a:has-text("First page")').count(), 1);

    // A name prefix: "Paging 5" is the start of Paging 50 … 54 only.
    await page.goto(listUrl);
    await page.fill('#q', 'Paging 5');
    await Promise.all([page.waitForURL(/\?q=Paging\+5/), page.press('#q', 'Enter')]);
    const names = await page.locator('tbody tr td:first-child').allTextContents();
    assert.deepEqual(names.map((text) => text.trim()), ['Paging 50', 'Paging 51', 'Paging 52', 'Paging 53', 'Paging 54']);
    assert.equal(await page.inputValue('#q'), 'Paging 5', 'the search is kept');
    await assertAccessible(page, 'console clients search');
    await screenshots(page, 'console-clients-search');

    // Paging within a search keeps the search.
    await page.goto(`${listUrl}?q=Paging`);
    assert.equal(await page.locator('tbody tr').count(), 50);
    await page.click('a:has-text("Next page")');
    await page.waitForURL(/\?q=Paging&cursor=/);
    assert.deepEqual((await page.locator('tbody tr td:first-child').allTextContents()).map((text) => text.trim()), ['Paging 50', 'Paging 51', 'Paging 52', 'Paging 53', 'Paging 54']);

    // An exact client_id typed into the same box.
    const token = await adminToken(server);
    const target = await adminCall<{ items: ClientBody[] }>(server, 'GET', '/clients?client_name=Paging%2017', undefined, token);
    const clientId = target.body.items[0]!.client_id;
    await page.goto(`${listUrl}?${new URLSearchParams({ q: clientId }).toString()}`);
    const rows = page.locator('tbody tr');
    assert.equal(await rows.count(), 1);
    assert.equal(await rows.first().getAttribute('data-client-id'), clientId);
    assert.match((await rows.first().textContent()) ?? '', /Paging 17/);

    await page.goto(`${listUrl}?q=nothing-like-this`);
    assert.match((await page.textContent('main')) ?? '', /No client’s name starts with that/);
    assert.equal((await page.goto(`${listUrl}?cursor=forged`))?.status(), 400);
    await page.close();
  });

  test('SPEC §12 in the form: a public device tool (device grant, no redirect URI) and a client that must push its requests (PAR)', async () => {
    const page = await owner.newPage();
    const stored = async (name: string) => {
      const { rows } = await server.db.query<{ metadata: Record<string, unknown> }>('SELECT metadata FROM clients WHERE client_name = $1', [name]);
      assert.equal(rows.length, 1, `${name} was created`);
      return rows[0]!.metadata;
    };

    const tool = uniqueName('Deploy CLI');
    await page.goto(`${listUrl}/new`);
    await page.fill('#client_name', tool);
    await page.uncheck('#grant_types-2');
    assert.match((await page.textContent('label[for="grant_types-4"]')) ?? '', /Device code \(command-line tools and TVs, RFC 8628\) urn:ietf:params:oauth:grant-type:device_code/);
    await page.check('#grant_types-4');
    await page.selectOption('#token_endpoint_auth_method', 'none');
    const created = await submit(page, 'button:has-text("Create client")');
    assert.ok(created.status() < 400, `created, got ${created.status()}`);
    const toolMetadata = await stored(tool);
    assert.deepEqual(toolMetadata['grant_types'], ['urn:ietf:params:oauth:grant-type:device_code']);
    assert.equal(toolMetadata['token_endpoint_auth_method'], 'none');

    const bank = uniqueName('Bank');
    await page.goto(`${listUrl}/new`);
    await page.fill('#client_name', bank);
    await page.uncheck('#grant_types-2');
    await page.check('#grant_types-0');
    await page.fill('#redirect_uris', 'https://bank.example.com/callback');
    await page.check('#require_pushed_authorization_requests');
    await submit(page, 'button:has-text("Create client")');
    assert.equal((await stored(bank))['require_pushed_authorization_requests'], true);
    await page.close();
  });

  test('a post without the CSRF token is refused (403); a gatehouse:users person is refused (403) on the clients URLs', async () => {
    const page = await owner.newPage();
    const forged = await page.request.post(listUrl, { form: { client_name: 'Forged', 'grant_type:client_credentials': 'on', token_endpoint_auth_method: 'client_secret_basic' }, maxRedirects: 0 });
    assert.equal(forged.status(), 403);
    const token = await adminToken(server);
    const forgedRows = await adminCall<{ items: ClientBody[] }>(server, 'GET', '/clients?client_name=Forged', undefined, token);
    assert.equal(forgedRows.body.items.length, 0);
    const existing = await createClient(server, { client_name: uniqueName('Kept'), allowed_resources: [] }, token);
    const forgedDelete = await page.request.post(`${listUrl}/${existing.client_id}/delete`, { form: {}, maxRedirects: 0 });
    assert.equal(forgedDelete.status(), 403);
    assert.equal((await adminCall(server, 'GET', `/clients/${existing.client_id}`, undefined, token)).status, 200, 'not deleted');
    await page.close();

    const other = await browser.newContext();
    const helpdesk = await signIn(other, 'helpdesk');
    for (const url of [listUrl, `${listUrl}/new`, `${listUrl}/${existing.client_id}`, `${listUrl}/${existing.client_id}/rotate`, `${listUrl}/${existing.client_id}/delete`]) {
      assert.equal((await helpdesk.goto(url))?.status(), 403, url);
    }
    const post = await helpdesk.request.post(`${listUrl}/${existing.client_id}/rotate`, { form: {}, maxRedirects: 0 });
    assert.equal(post.status(), 403);
    await other.close();
  });
});
