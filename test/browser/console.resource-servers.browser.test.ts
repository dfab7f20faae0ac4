/// <reference lib="dom" />
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { generateKeyPairSync } from 'node:crypto';
import { compactDecrypt, createLocalJWKSet, decodeJwt, jwtVerify, type JSONWebKeySet } from 'jose';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { adminCall, adminToken, clientCredentials, createClient, createResourceServer, deleteClient, uniqueName, ALL_ADMIN_SCOPES, type Page as ApiPage, type ResourceServerBody } from '../support/admin-api.js';
import { assertAccessible, chromiumMissing, launchChromium, screenshots } from '../support/browser.js';
import { firstConsoleSignIn } from '../support/console.js';
import { startTestServer, type TestServer } from '../support/server.js';

/**
 * SPEC §11, the console's resource-servers area, in Debian's Chromium: a gatehouse:resource-servers
 * person pages through the list and creates a resource server with the form; the admin API's
 * validation refuses a bad identifier and a bad scope next to their fields and keeps what was
 * typed; the created resource server is real (a client-credentials token for it verifies with
 * its identifier as `aud`), and the audit event names the person as the actor. Each resource
 * server's page edits it (the next token follows: its lifetime, its inner layer encrypted to a
 * key pasted as PEM; a private key is refused and never stored), refuses a stale form (409,
 * nothing overwritten), and deletes it behind a confirmation page, showing the service's refusal
 * for one still in use or the built-in one.
 */

const PASSWORD = 'correct horse battery staple';
/** More than one page of the console's list (50 a page), the built-in admin resource server included. */
const EXISTING = 50;
const STALE_FORM_MESSAGE = 'Someone else changed this while you were editing it. Nothing was saved: the form now shows the current values; make your change again.';

describe('the admin console: resource servers', { skip: chromiumMissing }, () => {
  let server: TestServer;
  let browser: Browser;
  let personId: string;

  const signIn = (context: BrowserContext, username: string): Promise<Page> => firstConsoleSignIn(context, server.issuer, username, PASSWORD);

  /** A new gatehouse:resource-servers person (each test signs in for the first time); their id. */
  async function newPerson(username: string): Promise<string> {
    const created = await adminCall(server, 'POST', '/users', { username, password: PASSWORD, roles: ['gatehouse:resource-servers'] }, await adminToken(server, ALL_ADMIN_SCOPES));
    assert.equal(created.status, 201, JSON.stringify(created.body));
    return created.body['id'] as string;
  }

  async function readServer(id: string): Promise<{ status: number; body: ResourceServerBody }> {
    return adminCall<ResourceServerBody>(server, 'GET', `/resource-servers/${id}`);
  }

  /** The audit events of `type` about `target`, read back through the admin API. */
  async function auditEvents(type: string, target: string): Promise<{ actor: string | null; details: Record<string, unknown> }[]> {
    const listed = await adminCall<ApiPage<{ actor: string | null; details: Record<string, unknown> }>>(
      server,
      'GET',
      `/audit-events?${new URLSearchParams({ type, target }).toString()}`,
      undefined,
      await adminToken(server, 'admin:audit'),
    );
    assert.equal(listed.status, 200, JSON.stringify(listed.body));
    return listed.body.items;
  }

  /** Submits the page's form with `button` and returns the answer to the POST. */
  async function submit(page: Page, button: string): Promise<number> {
    const [response] = await Promise.all([page.waitForResponse((r) => r.request().method() === 'POST'), page.click(`button:has-text("${button}")`)]);
    await page.waitForLoadState();
    return response.status();
  }

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
    await Promise.all([page.waitForURL(/\/console\/resource-servers\/[0-9a-f-]{36}\?done=created$/), page.click('button:has-text("Create resource server")')]);
    assert.equal(await page.textContent('.notice'), 'Resource server created.');
    assert.equal(await page.textContent('#server-identifier'), identifier);
    await Promise.all([page.waitForURL(listUrl), page.click('a:has-text("Back to resource servers")')]);

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

  test('an edit reaches the next token: the new lifetime, and the inner layer encrypted to a key pasted as PEM; a private key is refused and never stored', async () => {
    const editorId = await newPerson('api-editor');
    const identifier = `https://${uniqueName('stock')}.example.com`;
    const token = await adminToken(server);
    const created = await createResourceServer(server, { identifier, name: 'Stock API', scopes: ['stock:read'] }, token);
    const client = await createClient(server, { client_name: uniqueName('stock-client'), allowed_resources: [identifier], scope: 'stock:read' }, token);
    const inner = generateKeyPairSync('ec', { namedCurve: 'P-256' });

    const context = await browser.newContext({ bypassCSP: true });
    const page = await signIn(context, 'api-editor');
    const serverUrl = `${server.issuer}/console/resource-servers/${created.id}`;
    await page.goto(serverUrl);
    assert.equal(await page.title(), 'Stock API · Gatehouse');
    assert.equal(await page.textContent('#server-identifier'), identifier);
    assert.equal(await page.locator('input[name="identifier"]').count(), 0, 'the identifier cannot change');
    assert.equal(await page.inputValue('#access_token_ttl'), '900');
    await assertAccessible(page, 'console resource server');
    await screenshots(page, 'console-resource-server');

    // A private key is refused by its field, not echoed back, and not stored.
    await page.fill('#access_token_ttl', '120');
    await page.fill('#inner_encryption_jwk', inner.privateKey.export({ format: 'pem', type: 'pkcs8' }).toString());
    assert.equal(await submit(page, 'Save changes'), 400);
    assert.match((await page.textContent('#inner_encryption_jwk-error')) ?? '', /private key/);
    assert.equal(await page.getAttribute('#inner_encryption_jwk', 'aria-invalid'), 'true');
    assert.equal(await page.inputValue('#inner_encryption_jwk'), '', 'the private key is not sent back');
    assert.ok(!(await page.content()).includes('PRIVATE KEY-----\n'), 'nor anywhere on the page');
    assert.equal(await page.inputValue('#access_token_ttl'), '120', 'what was typed is kept');
    await assertAccessible(page, 'console resource server with errors');
    await screenshots(page, 'console-resource-server-errors');
    assert.equal((await readServer(created.id)).body.inner_encryption_jwk, null);
    assert.equal((await readServer(created.id)).body.access_token_ttl, 900, 'nothing saved');

    // So is a private JWK, the same way.
    await page.fill('#inner_encryption_jwk', JSON.stringify(inner.privateKey.export({ format: 'jwk' })));
    assert.equal(await submit(page, 'Save changes'), 400);
    assert.match((await page.textContent('#inner_encryption_jwk-error')) ?? '', /private key/);
    assert.equal(await page.inputValue('#inner_encryption_jwk'), '');
    assert.equal((await readServer(created.id)).body.inner_encryption_jwk, null);

    // A PEM that does not parse is a field error too.
    await page.fill('#inner_encryption_jwk', '-----BEGIN PUBLIC KEY-----\nnot base64\n-----END PUBLIC KEY-----');
    assert.equal(await submit(page, 'Save changes'), 400);
    assert.match((await page.textContent('#inner_encryption_jwk-error')) ?? '', /PEM public key/);

    await page.fill('#inner_encryption_jwk', inner.publicKey.export({ format: 'pem', type: 'spki' }).toString());
    assert.equal(await submit(page, 'Save changes'), 303);
    await page.waitForURL(`${serverUrl}?done=updated`);
    assert.match((await page.textContent('.notice')) ?? '', /Changes saved/);
    assert.equal(await page.inputValue('#access_token_ttl'), '120');
    assert.equal((JSON.parse(await page.inputValue('#inner_encryption_jwk')) as Record<string, unknown>)['kty'], 'EC', 'stored as a JWK');
    const stored = (await readServer(created.id)).body;
    assert.deepEqual(stored.inner_encryption_jwk, inner.publicKey.export({ format: 'jwk' }));

    // The next token follows the edit.
    const issued = await clientCredentials(server, client.client_id, client.client_secret!, { resource: identifier, scope: 'stock:read' });
    assert.equal(issued.status, 200, JSON.stringify(issued.body));
    const payload = decodeJwt(issued.body['access_token'] as string);
    assert.equal(payload.exp! - payload.iat!, 120);
    const { plaintext } = await compactDecrypt(payload['inner'] as string, inner.privateKey, { keyManagementAlgorithms: ['ECDH-ES+A256KW'], contentEncryptionAlgorithms: ['A256GCM'] });
    assert.equal((JSON.parse(new TextDecoder().decode(plaintext)) as Record<string, unknown>)['jti'], payload.jti);

    // Audited with the person as the actor, naming the fields the form sent.
    const events = await auditEvents('resource_server.updated', created.id);
    assert.equal(events.length, 1, JSON.stringify(events));
    assert.equal(events[0]!.actor, editorId);
    assert.ok((events[0]!.details['fields'] as string[]).includes('inner_encryption_jwk'));

    // The same session without the form's CSRF token changes nothing.
    const forged = await page.request.post(serverUrl, { form: { name: 'Forged', version: '*' }, maxRedirects: 0 });
    assert.equal(forged.status(), 403);
    assert.equal((await readServer(created.id)).body.name, 'Stock API');
    await context.close();
  });

  test('a stale edit form is refused (409) with the current values; nothing is overwritten', async () => {
    await newPerson('api-racer');
    const created = await createResourceServer(server, { identifier: `https://${uniqueName('race')}.example.com`, name: 'Race API', scopes: ['race:read'] }, await adminToken(server));
    const context = await browser.newContext({ bypassCSP: true });
    const page = await signIn(context, 'api-racer');
    const serverUrl = `${server.issuer}/console/resource-servers/${created.id}`;
    await page.goto(serverUrl);

    // Someone else renames it through the admin API while the form is open.
    const renamed = await adminCall(server, 'PATCH', `/resource-servers/${created.id}`, { name: 'Race API (renamed)' });
    assert.equal(renamed.status, 200, JSON.stringify(renamed.body));
    await page.fill('#access_token_ttl', '300');
    assert.equal(await submit(page, 'Save changes'), 409);
    assert.match((await page.textContent('.form-error')) ?? '', new RegExp(STALE_FORM_MESSAGE.slice(0, 40)));
    assert.equal(await page.inputValue('#name'), 'Race API (renamed)', 'the current values');
    assert.equal(await page.inputValue('#access_token_ttl'), '900');
    const after = (await readServer(created.id)).body;
    assert.equal(after.name, 'Race API (renamed)', 'the other change kept');
    assert.equal(after.access_token_ttl, 900, 'this one not saved');
    await assertAccessible(page, 'console resource server stale form');
    await screenshots(page, 'console-resource-server-stale');

    // A form without a version is stale too, never a blind overwrite.
    const csrf = await page.inputValue('input[name="csrf"] >> nth=-1');
    const blind = await page.request.post(serverUrl, { form: { csrf, name: 'Blind', scopes: 'race:read', access_token_ttl: '900', signing_alg: after.signing_alg, token_format: 'jwt' }, maxRedirects: 0 });
    assert.equal(blind.status(), 409);
    assert.equal((await readServer(created.id)).body.name, 'Race API (renamed)');

    // Made again on the current values, the change goes through.
    await page.fill('#access_token_ttl', '300');
    assert.equal(await submit(page, 'Save changes'), 303);
    assert.equal((await readServer(created.id)).body.access_token_ttl, 300);
    assert.equal((await readServer(created.id)).body.name, 'Race API (renamed)');
    await context.close();
  });

  test('delete goes through a confirmation page; the service’s refusal (in use, built in) is shown; the audit names the person', async () => {
    const removerId = await newPerson('api-remover');
    const identifier = `https://${uniqueName('legacy')}.example.com`;
    const token = await adminToken(server);
    const created = await createResourceServer(server, { identifier, name: 'Legacy API', scopes: ['legacy:read'] }, token);
    const client = await createClient(server, { client_name: uniqueName('legacy-client'), allowed_resources: [identifier], scope: 'legacy:read' }, token);
    const context = await browser.newContext({ bypassCSP: true });
    const page = await signIn(context, 'api-remover');
    const serverUrl = `${server.issuer}/console/resource-servers/${created.id}`;
    await page.goto(serverUrl);
    await Promise.all([page.waitForURL(`${serverUrl}/delete`), page.click('a:has-text("Delete this resource server")')]);
    assert.equal(await page.title(), 'Delete Legacy API? · Gatehouse');
    await assertAccessible(page, 'console delete resource server');
    await screenshots(page, 'console-resource-server-delete');

    // Still named by a client: refused, and the client to change is listed.
    assert.equal(await submit(page, 'Delete this resource server'), 409);
    assert.match((await page.textContent('.form-error')) ?? '', /Not deleted: Clients still name this resource server/);
    assert.deepEqual(await page.locator('.refusal-clients li').allTextContents(), [client.client_id]);
    assert.equal((await readServer(created.id)).status, 200);
    await assertAccessible(page, 'console delete resource server refused');
    await screenshots(page, 'console-resource-server-delete-refused');

    // Without the CSRF token: nothing deleted.
    const forged = await page.request.post(`${serverUrl}/delete`, { form: {}, maxRedirects: 0 });
    assert.equal(forged.status(), 403);

    await deleteClient(server, client.client_id, token);
    assert.equal(await submit(page, 'Delete this resource server'), 303);
    await page.waitForURL(`${server.issuer}/console/resource-servers?done=deleted`);
    assert.equal(await page.textContent('.notice'), 'Resource server deleted.');
    assert.equal((await readServer(created.id)).status, 404);
    const events = await auditEvents('resource_server.deleted', created.id);
    assert.equal(events.length, 1, JSON.stringify(events));
    assert.equal(events[0]!.actor, removerId);

    // Gone: its page is a clear 404; a made-up id too.
    assert.equal((await page.goto(serverUrl))?.status(), 404);
    assert.equal((await page.goto(`${server.issuer}/console/resource-servers/not-an-id/delete`))?.status(), 404);

    // The built-in admin resource server: read-only, and its deletion refused by the service.
    const list = await adminCall<ApiPage<ResourceServerBody>>(server, 'GET', '/resource-servers?limit=1');
    const builtIn = list.body.items[0]!;
    assert.ok(builtIn.built_in);
    await page.goto(`${server.issuer}/console/resource-servers/${builtIn.id}`);
    assert.equal(await page.locator('form button:has-text("Save changes")').count(), 0);
    assert.equal(await page.locator('a:has-text("Delete this resource server")').count(), 0);
    const csrf = await page.inputValue('input[name="csrf"] >> nth=0');
    const changed = await page.request.post(`${server.issuer}/console/resource-servers/${builtIn.id}`, { form: { csrf, version: '*', name: 'Renamed', scopes: '', access_token_ttl: '900', signing_alg: builtIn.signing_alg, token_format: 'jwt' }, maxRedirects: 0 });
    assert.equal(changed.status(), 409);
    assert.match(await changed.text(), /built-in admin API resource server cannot be changed/);
    assert.equal((await readServer(builtIn.id)).body.name, builtIn.name);
    await page.goto(`${server.issuer}/console/resource-servers/${builtIn.id}/delete`);
    assert.equal(await submit(page, 'Delete this resource server'), 409);
    assert.match((await page.textContent('.form-error')) ?? '', /built-in admin API resource server cannot be deleted/);
    assert.equal((await readServer(builtIn.id)).status, 200);
    await context.close();
  });

  test('without the resource-servers role, a resource server’s page and its deletion are refused (403)', async () => {
    const users = await adminToken(server, ALL_ADMIN_SCOPES);
    const created = await adminCall(server, 'POST', '/users', { username: 'auditor', password: PASSWORD, roles: ['gatehouse:audit'] }, users);
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const target = await createResourceServer(server, { identifier: `https://${uniqueName('guarded')}.example.com`, name: 'Guarded API', scopes: [] }, await adminToken(server));
    const context = await browser.newContext();
    const page = await signIn(context, 'auditor');
    for (const url of [`${server.issuer}/console/resource-servers/${target.id}`, `${server.issuer}/console/resource-servers/${target.id}/delete`]) {
      assert.equal((await page.goto(url))?.status(), 403, url);
    }
    const posted = await page.request.post(`${server.issuer}/console/resource-servers/${target.id}/delete`, { form: {}, maxRedirects: 0 });
    assert.equal(posted.status(), 403);
    assert.equal((await readServer(target.id)).status, 200);
    await context.close();
  });
});
