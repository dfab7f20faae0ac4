/// <reference lib="dom" />
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Browser, BrowserContext, Page, Response } from 'playwright-core';
import { adminCall, adminToken, clientCredentials, createClient, createResourceServer, uniqueName, type ClientBody, ALL_ADMIN_SCOPES } from '../support/admin-api.js';
import { assertAccessible, chromiumMissing, launchChromium, screenshots } from '../support/browser.js';
import { firstConsoleSignIn } from '../support/console.js';
import { startTestServer, waitFor, type TestServer } from '../support/server.js';

/**
 * SPEC §7 and §11, the console's gateway routes in Debian's Chromium: a gatehouse:gateway person
 * pages through the routes, creates one with the form (the admin API's schema and the service's
 * checks refuse bad input next to the fields, keeping what was typed), and the gateway's
 * forward-auth door applies it at once; an edit changes what it requires, a stale edit is
 * refused with 409 and overwrites nothing, and after a confirmed delete the route no longer
 * applies. Audited with the person's id as actor (read back through the admin API); no CSRF
 * token: 403; without the role: 403. axe-core and screenshots at 360 and 1280 px on every screen.
 */

const PASSWORD = 'correct horse battery staple';
/** A full first page of the console's list (50 a page), so the new route is on the next. */
const EXISTING = 50;

interface AuditEvent {
  type: string;
  actor: string | null;
  target: string | null;
  details: Record<string, unknown>;
}

interface RouteBody {
  id: string;
  host: string;
  path_prefix: string;
  required_scopes: string[];
  updated_at: string;
}

describe('the admin console: gateway routes', { skip: chromiumMissing }, () => {
  let server: TestServer;
  let browser: Browser;
  let shop: ClientBody;
  const ids = new Map<string, string>();
  const resource = `https://${uniqueName('orders')}.example.com`;
  const host = `${uniqueName('shop')}.example.com`;

  const signIn = (context: BrowserContext, username: string): Promise<Page> => firstConsoleSignIn(context, server.issuer, username, PASSWORD);

  async function token(scope: string): Promise<string> {
    const issued = await clientCredentials(server, shop.client_id, shop.client_secret!, { scope, resource });
    assert.equal(issued.status, 200, JSON.stringify(issued.body));
    return issued.body['access_token'] as string;
  }

  /** SPEC §7's forward-auth door, asked as Caddy or Traefik ask it about an original request. */
  async function forwardAuth(method: string, uri: string, bearer?: string): Promise<globalThis.Response> {
    return fetch(`${server.url}/gateway/forward-auth`, {
      headers: { 'x-forwarded-method': method, 'x-forwarded-proto': 'https', 'x-forwarded-host': host, 'x-forwarded-uri': uri, ...(bearer === undefined ? {} : { authorization: `Bearer ${bearer}` }) },
    });
  }

  /** Polls the door until it answers `status` (the route table reloads on a change; no sleeps). */
  async function decided(method: string, uri: string, bearer: string | undefined, status: number): Promise<globalThis.Response> {
    let last = 0;
    return waitFor(async () => {
      const response = await forwardAuth(method, uri, bearer);
      last = response.status;
      return response.status === status ? response : undefined;
    }, 10_000).catch(() => assert.fail(`forward-auth ${method} ${uri}: expected ${status}, last ${last}`));
  }

  async function audit(type: string, target: string): Promise<AuditEvent[]> {
    const query = new URLSearchParams({ type, target });
    const answer = await adminCall<{ items: AuditEvent[] }>(server, 'GET', `/audit-events?${query.toString()}`, undefined, await adminToken(server, 'admin:audit'));
    assert.equal(answer.status, 200, JSON.stringify(answer.body));
    return answer.body.items;
  }

  function posted(page: Page, url: string): Promise<Response> {
    return page.waitForResponse((response) => response.request().method() === 'POST' && response.url() === url);
  }

  before(async () => {
    server = await startTestServer();
    const users = await adminToken(server, ALL_ADMIN_SCOPES);
    for (const [username, roles] of [
      ['gatekeeper', ['gatehouse:gateway']],
      ['helpdesk', ['gatehouse:users']],
    ] as const) {
      const created = await adminCall(server, 'POST', '/users', { username, password: PASSWORD, roles: [...roles] }, users);
      assert.equal(created.status, 201, JSON.stringify(created.body));
      ids.set(username, (created.body as { id: string }).id);
    }
    const admin = await adminToken(server, 'admin:clients admin:resource-servers admin:gateway');
    await createResourceServer(server, { identifier: resource, name: 'Orders', scopes: ['orders:read', 'orders:write'] }, admin);
    shop = await createClient(server, { client_name: uniqueName('shop'), allowed_resources: [resource], scope: 'orders:read orders:write' }, admin);
    for (let i = 0; i < EXISTING; i += 1) {
      const filler = await adminCall(server, 'POST', '/gateway-routes', { host: `filler-${String(i).padStart(2, '0')}.example.com`, path_prefix: '/', anonymous: true }, admin);
      assert.equal(filler.status, 201, JSON.stringify(filler.body));
    }
    browser = await launchChromium();
  });
  after(async () => {
    await browser?.close();
    await server?.close();
  });

  test('a gatehouse:gateway person creates a route the gateway applies at once, edits it, meets a stale-form conflict, and deletes it; all audited with the person as actor', async () => {
    const person = ids.get('gatekeeper')!;
    const reader = await token('orders:read');
    const writer = await token('orders:write');
    // Before: the host is unknown to the gateway, so denied.
    assert.equal((await forwardAuth('GET', '/orders/42', reader)).status, 403);

    // bypassCSP only so the test can inject axe-core; the console's own script is 'self'.
    const context = await browser.newContext({ bypassCSP: true });
    const page = await signIn(context, 'gatekeeper');
    const listUrl = `${server.issuer}/console/gateway`;
    await page.click('a:has-text("Gateway routes")');
    await page.waitForURL(listUrl);
    assert.equal(await page.title(), 'Gateway routes · Gatehouse');
    assert.equal(await page.locator('tbody tr').count(), 50, 'a full first page');
    assert.equal(await page.getAttribute('nav[aria-label="Console areas"] a:has-text("Gateway routes")', 'aria-current'), 'page');
    await assertAccessible(page, 'console gateway routes');
    await screenshots(page, 'console-gateway');

    await page.click('a:has-text("New gateway route")');
    await page.waitForURL(`${listUrl}/new`);
    assert.equal(await page.title(), 'New gateway route · Gatehouse');
    await assertAccessible(page, 'console new gateway route');
    await screenshots(page, 'console-gateway-new');

    // The admin API's schema refuses a bad host and a path without "/", each next to its field; what was typed stays.
    await page.fill('#host', 'not a host!');
    await page.fill('#path_prefix', 'orders');
    await page.check('#method-GET');
    await page.fill('#resource_server', resource);
    await page.fill('#required_scopes', 'orders:read');
    await page.selectOption('#identity_headers', 'trusted');
    let [answer] = await Promise.all([posted(page, listUrl), page.click('button:has-text("Create gateway route")')]);
    assert.equal(answer.status(), 400);
    assert.equal(await page.title(), 'Error: New gateway route · Gatehouse');
    assert.equal(await page.getAttribute('#host', 'aria-invalid'), 'true');
    assert.match((await page.getAttribute('#host', 'aria-describedby')) ?? '', /host-error/);
    assert.match((await page.textContent('#host-error')) ?? '', /host name/);
    assert.match((await page.textContent('#path_prefix-error')) ?? '', /must start with "\/"/);
    assert.equal(await page.locator('#required_scopes-error').count(), 0, 'no error where there is none');
    assert.equal(await page.inputValue('#host'), 'not a host!');
    assert.equal(await page.inputValue('#path_prefix'), 'orders');
    assert.equal(await page.inputValue('#resource_server'), resource);
    assert.ok(await page.isChecked('#method-GET'));
    assert.ok(!(await page.isChecked('#method-POST')));
    assert.equal(await page.inputValue('#identity_headers'), 'trusted');
    await assertAccessible(page, 'console new gateway route with errors');
    await screenshots(page, 'console-gateway-new-errors');

    // The service's own check: a scope the resource server does not have, named next to its field.
    await page.fill('#host', host);
    await page.fill('#path_prefix', '/orders');
    await page.fill('#required_scopes', 'orders:read orders:nope');
    [answer] = await Promise.all([posted(page, listUrl), page.click('button:has-text("Create gateway route")')]);
    assert.equal(answer.status(), 400);
    assert.match((await page.textContent('#required_scopes-error')) ?? '', /orders:nope.*not a scope of/);

    await page.fill('#required_scopes', 'orders:read');
    await Promise.all([page.waitForURL((url) => url.searchParams.get('done') === 'created'), page.click('button:has-text("Create gateway route")')]);
    await page.waitForSelector('[role="status"]:has-text("Gateway route created")');
    const routeUrl = page.url().replace(/\?.*$/, '');
    const id = routeUrl.split('/').at(-1)!;
    assert.equal(await page.title(), 'Gateway route · Gatehouse');
    const stored = await adminCall<RouteBody>(server, 'GET', `/gateway-routes/${id}`, undefined, await adminToken(server, 'admin:gateway'));
    assert.equal(stored.status, 200);
    assert.equal(stored.body.host, host);
    assert.equal(await page.inputValue('input[name="version"]'), (await fetchEtag(id)) ?? '', 'the form carries the admin API’s ETag');
    await assertAccessible(page, 'console gateway route');
    await screenshots(page, 'console-gateway-route');

    // Live: the door now matches the host and path, with the scope the route requires.
    const allowed = await decided('GET', '/orders/42', reader, 200);
    assert.equal(allowed.headers.get('x-gatehouse-scope'), 'orders:read');
    assert.equal(allowed.headers.get('x-gatehouse-client-id'), shop.client_id);
    const lacking = await forwardAuth('GET', '/orders/42', writer);
    assert.equal(lacking.status, 403);
    assert.match(lacking.headers.get('www-authenticate') ?? '', /insufficient_scope/);
    assert.equal((await forwardAuth('POST', '/orders/42', reader)).status, 403, 'only GET is routed');
    assert.equal((await forwardAuth('GET', '/orders/42')).status, 401, 'no token');
    const created = await audit('gateway_route.created', id);
    assert.equal(created.length, 1, JSON.stringify(created));
    assert.equal(created[0]!.actor, person);

    // Edit: the route now requires orders:write, and the gateway follows.
    assert.equal(await page.inputValue('#required_scopes'), 'orders:read');
    await page.fill('#required_scopes', 'orders:write');
    await Promise.all([page.waitForURL((url) => url.searchParams.get('done') === 'saved'), page.click('button:has-text("Save changes")')]);
    await page.waitForSelector('[role="status"]:has-text("Changes saved")');
    assert.equal(await page.inputValue('#required_scopes'), 'orders:write');
    await decided('GET', '/orders/42', reader, 403);
    assert.equal((await forwardAuth('GET', '/orders/42', writer)).status, 200);
    const updated = await audit('gateway_route.updated', id);
    assert.equal(updated.length, 1, JSON.stringify(updated));
    assert.equal(updated[0]!.actor, person);
    assert.deepEqual(updated[0]!.details['changes'], { required_scopes: { from: ['orders:read'], to: ['orders:write'] } });

    // A stale form: someone changes the route through the admin API while the form is open.
    const before = await adminCall<RouteBody>(server, 'PATCH', `/gateway-routes/${id}`, { required_scopes: ['orders:read', 'orders:write'] }, await adminToken(server, 'admin:gateway'));
    assert.equal(before.status, 200, JSON.stringify(before.body));
    await page.fill('#path_prefix', '/orders/v2');
    [answer] = await Promise.all([posted(page, routeUrl), page.click('button:has-text("Save changes")')]);
    assert.equal(answer.status(), 409);
    await page.waitForSelector('[role="alert"]:has-text("Someone else changed this while you were editing it")');
    assert.equal(await page.inputValue('#path_prefix'), '/orders', 'the form shows the current values');
    assert.equal(await page.inputValue('#required_scopes'), 'orders:read orders:write');
    const after = await adminCall<RouteBody>(server, 'GET', `/gateway-routes/${id}`, undefined, await adminToken(server, 'admin:gateway'));
    assert.deepEqual(after.body, before.body, 'nothing overwritten');
    assert.equal((await audit('gateway_route.updated', id)).filter((event) => event.actor === person).length, 1, 'no second update by the person');
    await assertAccessible(page, 'console gateway route, stale form');
    await screenshots(page, 'console-gateway-route-conflict');

    // Without the session's CSRF token: refused, nothing changes.
    const forged = await page.request.post(routeUrl, { form: { host, path_prefix: '/forged', version: await page.inputValue('input[name="version"]') }, maxRedirects: 0 });
    assert.equal(forged.status(), 403);
    const forgedDelete = await page.request.post(`${routeUrl}/delete`, { form: {}, maxRedirects: 0 });
    assert.equal(forgedDelete.status(), 403);
    assert.equal((await adminCall<RouteBody>(server, 'GET', `/gateway-routes/${id}`, undefined, await adminToken(server, 'admin:gateway'))).body.path_prefix, '/orders');

    // Paging: the route is on the second page, reached through the cursor; First page goes back.
    await page.goto(listUrl);
    assert.equal(await page.locator(`tr[data-id="${id}"]`).count(), 0);
    await page.click('a:has-text("Next page")');
    await page.waitForURL(/\/console\/gateway\?cursor=/);
    assert.match((await page.locator(`tr[data-id="${id}"]`).textContent()) ?? '', new RegExp(`${host.replaceAll('.', '\\.')}/orders[\\s\\S]*GET[\\s\\S]*orders:read orders:write`));
    assert.equal(await page.locator('a:has-text("Next page")').count(), 0, 'the last page');
    await page.click('a:has-text("First page")');
    await page.waitForURL(listUrl);
    const badCursor = await page.goto(`${listUrl}?cursor=forged`);
    assert.equal(badCursor?.status(), 400);
    assert.equal((await page.goto(`${listUrl}/not-a-uuid`))?.status(), 404);
    assert.equal((await page.goto(`${listUrl}/00000000-0000-4000-8000-000000000000`))?.status(), 404);

    // Delete, after a confirmation page; the gateway stops applying the route.
    await page.goto(routeUrl);
    await page.click('a:has-text("Delete this gateway route")');
    await page.waitForURL(`${routeUrl}/delete`);
    assert.match((await page.textContent('main')) ?? '', /next most specific route, or denied/);
    await assertAccessible(page, 'console gateway route deletion');
    await screenshots(page, 'console-gateway-route-delete');
    await Promise.all([page.waitForURL((url) => url.searchParams.get('done') === 'deleted'), page.click('button:has-text("Delete this gateway route")')]);
    await page.waitForSelector('[role="status"]:has-text("Gateway route deleted")');
    await assertAccessible(page, 'console gateway routes after a deletion');
    await decided('GET', '/orders/42', writer, 403);
    assert.equal((await adminCall(server, 'GET', `/gateway-routes/${id}`, undefined, await adminToken(server, 'admin:gateway'))).status, 404);
    const deleted = await audit('gateway_route.deleted', id);
    assert.equal(deleted.length, 1, JSON.stringify(deleted));
    assert.equal(deleted[0]!.actor, person);

    // The done message is a fixed set: anything else in the query shows nothing.
    await page.goto(`${listUrl}?done=${encodeURIComponent('<b>x</b>')}`);
    assert.equal(await page.locator('[role="status"]').count(), 0);
    await context.close();
  });

  test('a person without gatehouse:gateway gets 403 at the gateway area’s URLs', async () => {
    const context = await browser.newContext();
    const page = await signIn(context, 'helpdesk');
    const route = await adminCall<RouteBody>(server, 'POST', '/gateway-routes', { host: `${uniqueName('other')}.example.com`, path_prefix: '/', anonymous: true }, await adminToken(server, 'admin:gateway'));
    assert.equal(route.status, 201);
    const areaUrl = `${server.issuer}/console/gateway`;
    for (const url of [areaUrl, `${areaUrl}/new`, `${areaUrl}/${route.body.id}`, `${areaUrl}/${route.body.id}/delete`]) {
      assert.equal((await page.goto(url))?.status(), 403, url);
    }
    await page.waitForSelector('h1:has-text("No access to the console")');
    for (const url of [areaUrl, `${areaUrl}/${route.body.id}`, `${areaUrl}/${route.body.id}/delete`]) {
      assert.equal((await context.request.post(url, { form: { csrf: 'x' }, maxRedirects: 0 })).status(), 403, url);
    }
    assert.equal((await adminCall(server, 'GET', `/gateway-routes/${route.body.id}`, undefined, await adminToken(server, 'admin:gateway'))).status, 200, 'still there');
    await context.close();
  });

  async function fetchEtag(id: string): Promise<string | null> {
    const response = await fetch(`${server.url}/admin/v1/gateway-routes/${id}`, { headers: { authorization: `Bearer ${await adminToken(server, 'admin:gateway')}` } });
    return response.headers.get('etag');
  }
});
