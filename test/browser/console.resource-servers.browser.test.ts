/// <reference lib="dom" />
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { createLocalJWKSet, jwtVerify, type JSONWebKeySet } from 'jose';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { adminCall, adminToken, clientCredentials, createClient, createResourceServer, uniqueName, ALL_ADMIN_SCOPES } from '../support/admin-api.js';
import { assertAccessible, chromiumMissing, launchChromium, screenshots } from '../support/browser.js';
import { firstConsoleSignIn } from '../support/console.js';
import { startTestServer, type TestServer } from '../support/server.js';

/**
 * SPEC §11, the console's resource-servers area, in Debian's Chromium: a gatehouse:resource-servers
 * person pages through the list and creates a resource server with the form; the admin API's
 * validation refuses a bad identifier and a bad scope next to their fields and keeps what was
 * typed; the created resource server is real (a client-credentials token for it verifies with
 * its identifier as `aud`), and the audit event names the person as the actor.
 */

const PASSWORD = 'correct horse battery staple';
/** More than one page of the console's list (50 a page), the built-in admin resource server included. */
const EXISTING = 50;

describe('the admin console: resource servers', { skip: chromiumMissing }, () => {
  let server: TestServer;
  let browser: Browser;
  let personId: string;

  const signIn = (context: BrowserContext, username: string): Promise<Page> => firstConsoleSignIn(context, server.issuer, username, PASSWORD);

  before(async () => {
    server = await startTestServer();
    const users = await adminToken(server, ALL_ADMIN_SCOPES);
    const created = await adminCall(server, 'POST', '/users', { username: 'api-owner', password: PASSWORD, roles: ['gatehouse:resource-servers'] }, users);
    assert.equal(created.status, 201, JSON.stringify(created.body));
    personId = created.body['id'] as string;
    const token = await adminToken(server);
    for (let i = 0; i < EXISTING; i += 1) {
      await createResourceServer(server, { identifier: `https://existing-${String(i).padStart(2, '0')}.example.com`, name: `Existing ${i}`, scopes: ['read'] }, token);
    }
    browser = await launchChromium();
  });
  after(async () => {
    await browser?.close();
    await server?.close();
  });

  test('a gatehouse:resource-servers person creates one through the form; errors sit by their fields; its tokens work; the audit names the person', async () => {
    // bypassCSP only so the test can inject axe-core; the pages themselves run no script.
    const context = await browser.newContext({ bypassCSP: true });
    const page = await signIn(context, 'api-owner');
    const listUrl = `${server.issuer}/console/resource-servers`;

    await page.click('a:has-text("Resource servers")');
    await page.waitForURL(listUrl);
    assert.equal(await page.title(), 'Resource servers · Gatehouse');
    assert.equal(await page.locator('tbody tr').count(), 50, 'a full first page');
    assert.match((await page.locator('tbody').textContent()) ?? '', new RegExp(`${server.issuer}/admin`), 'the built-in admin resource server first');
    await assertAccessible(page, 'console resource servers');
    await screenshots(page, 'console-resource-servers');

    await page.click('a:has-text("New resource server")');
    await page.waitForURL(`${listUrl}/new`);
    await assertAccessible(page, 'console new resource server');
    await screenshots(page, 'console-resource-server-new');

    // A bad identifier and a bad scope: refused by the admin API's schema, each next to its field.
    const identifier = `https://${uniqueName('orders')}.example.com`;
    await page.fill('#identifier', 'not a uri');
    await page.fill('#name', 'Orders API');
    await page.fill('#scopes', 'orders:read orders"write');
    await page.fill('#access_token_ttl', '600');
    await page.selectOption('#signing_alg', 'EdDSA');
    await page.check('#require_sender_constraint');
    const [refused] = await Promise.all([
      page.waitForResponse((response) => response.request().method() === 'POST' && response.url() === listUrl),
      page.click('button:has-text("Create resource server")'),
    ]);
    assert.equal(refused.status(), 400);
    await page.waitForSelector('#identifier-error');
    assert.equal(await page.title(), 'Error: New resource server · Gatehouse');
    assert.equal(await page.getAttribute('#identifier', 'aria-invalid'), 'true');
    assert.match((await page.getAttribute('#identifier', 'aria-describedby')) ?? '', /identifier-error/);
    assert.ok(((await page.textContent('#identifier-error')) ?? '').length > 0);
    assert.match((await page.textContent('#scopes-error')) ?? '', /orders"write/, 'the scope at #/scopes/1 is named by its field');
    assert.equal(await page.locator('#name-error').count(), 0, 'no error where there is none');
    // What was typed is kept.
    assert.equal(await page.inputValue('#identifier'), 'not a uri');
    assert.equal(await page.inputValue('#name'), 'Orders API');
    assert.equal(await page.inputValue('#scopes'), 'orders:read orders"write');
    assert.equal(await page.inputValue('#access_token_ttl'), '600');
    assert.equal(await page.inputValue('#signing_alg'), 'EdDSA');
    assert.ok(await page.isChecked('#require_sender_constraint'));
    await assertAccessible(page, 'console new resource server with errors');
    await screenshots(page, 'console-resource-server-new-errors');

    await page.fill('#identifier', identifier);
    await page.fill('#scopes', 'orders:read orders:write');
    await page.uncheck('#require_sender_constraint');
    await Promise.all([page.waitForURL(listUrl), page.click('button:has-text("Create resource server")')]);

    // Oldest first: the new one is on the next page, reached through the cursor link.
    assert.ok(!((await page.locator('tbody').textContent()) ?? '').includes(identifier));
    await page.click('a:has-text("Next page")');
    await page.waitForURL(/\/console\/resource-servers\?cursor=/);
    const row = page.locator('tbody tr', { hasText: identifier });
    assert.equal(await row.count(), 1);
    assert.match((await row.textContent()) ?? '', /Orders API[\s\S]*orders:read orders:write[\s\S]*JWT[\s\S]*Optional/);
    assert.equal(await page.locator('a:has-text("First page")').count(), 1);
    assert.equal(await page.locator('a:has-text("Next page")').count(), 0, 'the last page');

    // The same session's cookie without the form's CSRF token changes nothing.
    const forged = await page.request.post(listUrl, { form: { identifier: 'https://forged.example.com', name: 'Forged' }, maxRedirects: 0 });
    assert.equal(forged.status(), 403);
    await context.close();

    // It is a real resource server: a client-credentials token for it is signed and addressed to it.
    const client = await createClient(server, { client_name: uniqueName('orders-client'), allowed_resources: [identifier], scope: 'orders:read' }, await adminToken(server));
    const issued = await clientCredentials(server, client.client_id, client.client_secret!, { resource: identifier, scope: 'orders:read' });
    assert.equal(issued.status, 200, JSON.stringify(issued.body));
    const jwks = (await (await fetch(`${server.issuer}/jwks`)).json()) as JSONWebKeySet;
    const { payload, protectedHeader } = await jwtVerify(issued.body['access_token'] as string, createLocalJWKSet(jwks), { issuer: server.issuer, audience: identifier, typ: 'at+jwt' });
    assert.equal(protectedHeader.alg, 'EdDSA', 'the signing algorithm chosen in the form');
    assert.equal(payload['scope'], 'orders:read');

    // Audited with the person, not a client, as the actor.
    const { rows } = await server.db.query<{ actor: string | null; target: string | null }>(
      "SELECT actor, target FROM audit_events WHERE type = 'resource_server.created' AND details->>'identifier' = $1",
      [identifier],
    );
    assert.equal(rows.length, 1, JSON.stringify(rows));
    assert.equal(rows[0]!.actor, personId);
    const forgedRows = await server.db.query("SELECT 1 FROM resource_servers WHERE identifier = 'https://forged.example.com'");
    assert.equal(forgedRows.rows.length, 0);
  });

  test('a person without the resource-servers area is refused (403); without a console session the area sends the browser to sign in', async () => {
    const users = await adminToken(server, ALL_ADMIN_SCOPES);
    const created = await adminCall(server, 'POST', '/users', { username: 'key-keeper', password: PASSWORD, roles: ['gatehouse:keys'] }, users);
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const context = await browser.newContext();
    const page = await signIn(context, 'key-keeper');
    const response = await page.goto(`${server.issuer}/console/resource-servers/new`);
    assert.equal(response?.status(), 403);
    await context.close();

    const other = await browser.newContext();
    const owner = await other.newPage();
    await owner.goto(`${server.issuer}/console/resource-servers`);
    // Not signed in to the console: sent to sign in, never handled.
    assert.ok(owner.url().startsWith(`${server.issuer}/interaction/`));
    await other.close();
  });
});
