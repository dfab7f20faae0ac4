/// <reference lib="dom" />
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { exportJWK, generateKeyPair } from 'jose';
import Provider, { type Configuration } from 'oidc-provider';
import type { Browser, BrowserContext, Page, Response } from 'playwright-core';
import { adminCall, adminToken, ALL_ADMIN_SCOPES } from '../support/admin-api.js';
import { assertAccessible, chromiumMissing, launchChromium, screenshots } from '../support/browser.js';
import { firstConsoleSignIn } from '../support/console.js';
import { startTestServer, type TestServer } from '../support/server.js';

/**
 * SPEC §10 and §11, the console's identity providers in Debian's Chromium: a
 * gatehouse:identity-providers person pages through the providers and creates one pointing at a
 * real upstream OpenID provider (a bare oidc-provider with its development login pages, on
 * 127.0.0.2, as in federation.browser.test.ts); the login page offers it and a sign-in through
 * it completes, which needs the client secret the form was given (the upstream's token endpoint
 * checks it). The secret is write-only: never on a page, sealed at rest, kept when the edit form
 * leaves it empty (the next sign-in still works). A stale edit is refused with 409 and
 * overwrites nothing; a confirmed delete takes the button off the login page. Audited with the
 * person's id as actor (read back through the admin API); no CSRF token: 403; without the role:
 * 403. axe-core and screenshots at 360 and 1280 px on every screen.
 */

const PASSWORD = 'correct horse battery staple';
/** A full first page of the console's list (50 a page), so the new provider is on the next. */
const EXISTING = 50;
// The client's redirect URI: port 8089, as Chromium refuses "unsafe" ports such as 9.
const CLIENT = 'http://127.0.0.1:8089';
const REDIRECT = `${CLIENT}/callback`;
const UPSTREAM_HOST = '127.0.0.2';
const UPSTREAM_CLIENT_ID = 'gatehouse';
const UPSTREAM_SECRET = randomBytes(24).toString('base64url');
/** The dev login page takes any login name as the account id (the sub); this one is the upstream's only person. */
const LOGIN = 'ada-7f3c';

interface AuditEvent {
  type: string;
  actor: string | null;
  target: string | null;
  details: Record<string, unknown>;
}

interface ProviderBody {
  id: string;
  name: string;
  client_secret_set: boolean;
  redirect_uri: string;
}

/** An upstream OpenID provider listening at once (its issuer names its port); its one client is registered once Gatehouse's redirect URI is known. */
interface Upstream {
  readonly issuer: string;
  readonly errors: string[];
  register(redirectUri: string): Promise<void>;
  close(): Promise<void>;
}

/** The dev-only notices a fixture upstream prints (test/support/server.ts fails a test on oidc-provider notices meant for Gatehouse). */
function withoutFixtureNotices<T>(build: () => T): T {
  const warn = console.warn;
  console.warn = (...args: unknown[]) => {
    const line = args.map(String).join(' ');
    if (!line.includes('devInteractions is enabled') && !line.includes('in-memory adapter is used')) warn(...args);
  };
  try {
    return build();
  } finally {
    console.warn = warn;
  }
}

async function startUpstream(): Promise<Upstream> {
  const http: Server = createServer((_request, response) => {
    response.writeHead(503).end('not ready');
  });
  await new Promise<void>((resolve) => http.listen(0, UPSTREAM_HOST, resolve));
  const issuer = `http://${UPSTREAM_HOST}:${(http.address() as AddressInfo).port}`;
  const errors: string[] = [];
  return {
    issuer,
    errors,
    async register(redirectUri) {
      const { privateKey } = await generateKeyPair('RS256', { extractable: true });
      const configuration: Configuration = {
        clients: [
          {
            client_id: UPSTREAM_CLIENT_ID,
            client_secret: UPSTREAM_SECRET,
            redirect_uris: [redirectUri],
            grant_types: ['authorization_code'],
            response_types: ['code'],
            // Gatehouse authenticates to upstreams with client_secret_post: a wrong or missing secret fails the sign-in.
            token_endpoint_auth_method: 'client_secret_post',
          },
        ],
        jwks: { keys: [{ ...(await exportJWK(privateKey)), kid: 'upstream-rs256', alg: 'RS256', use: 'sig' }] },
        cookies: { keys: [randomBytes(32).toString('base64url')] },
        pkce: { required: () => true },
        scopes: ['openid', 'email', 'profile'],
        claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name', 'preferred_username'] },
        features: { devInteractions: { enabled: true } },
        findAccount: (_ctx, id) =>
          id !== LOGIN ? undefined : { accountId: id, claims: () => ({ sub: id, preferred_username: 'ada.upstream', email: 'ada@corp.example', email_verified: true, name: 'Ada Upstream' }) },
        ttl: { AccessToken: 600, IdToken: 600, Interaction: 600, Session: 600, Grant: 600 },
        renderError(ctx, out) {
          ctx.type = 'text/plain';
          ctx.body = `upstream error: ${JSON.stringify(out)}`;
        },
      };
      const provider = withoutFixtureNotices(() => new Provider(issuer, configuration));
      provider.on('server_error', (_ctx, error: Error) => errors.push(error.stack ?? error.message));
      const handle = provider.callback();
      http.removeAllListeners('request');
      http.on('request', (request, response) => void handle(request, response));
    },
    close: () =>
      new Promise<void>((resolve, reject) => {
        http.closeAllConnections();
        http.close((error) => (error === undefined ? resolve() : reject(error)));
      }),
  };
}

describe('the admin console: identity providers', { skip: chromiumMissing }, () => {
  let server: TestServer;
  let browser: Browser;
  let upstream: Upstream;
  let intranet: string;
  const ids = new Map<string, string>();

  const signIn = (context: BrowserContext, username: string): Promise<Page> => firstConsoleSignIn(context, server.issuer, username, PASSWORD);

  async function audit(type: string, target: string): Promise<AuditEvent[]> {
    const query = new URLSearchParams({ type, target });
    const answer = await adminCall<{ items: AuditEvent[] }>(server, 'GET', `/audit-events?${query.toString()}`, undefined, await adminToken(server, 'admin:audit'));
    assert.equal(answer.status, 200, JSON.stringify(answer.body));
    return answer.body.items;
  }

  async function readProvider(id: string): Promise<{ status: number; body: ProviderBody }> {
    return adminCall<ProviderBody>(server, 'GET', `/identity-providers/${id}`, undefined, await adminToken(server, 'admin:identity-providers'));
  }

  function posted(page: Page, url: string): Promise<Response> {
    return page.waitForResponse((response) => response.request().method() === 'POST' && response.url() === url);
  }

  /** Gatehouse's login page for the intranet client, in a fresh browser (no session anywhere). */
  async function loginPage(): Promise<{ context: BrowserContext; page: Page; callbacks: string[] }> {
    const context = await browser.newContext();
    const callbacks: string[] = [];
    await context.route(`${CLIENT}/**`, async (route) => {
      callbacks.push(route.request().url());
      await route.fulfill({ status: 200, contentType: 'text/plain', body: 'client callback' });
    });
    const page = await context.newPage();
    page.setDefaultTimeout(15_000);
    const verifier = randomBytes(32).toString('base64url');
    const params = new URLSearchParams({
      client_id: intranet,
      response_type: 'code',
      scope: 'openid',
      redirect_uri: REDIRECT,
      state: randomBytes(16).toString('base64url'),
      nonce: randomBytes(16).toString('base64url'),
      code_challenge: createHash('sha256').update(verifier).digest('base64url'),
      code_challenge_method: 'S256',
    });
    await page.goto(`${server.issuer}/auth?${params.toString()}`);
    assert.equal(await page.title(), 'Sign in · Gatehouse');
    return { context, page, callbacks };
  }

  /** A whole trip through the provider's button and the upstream's pages, back at the client with a code. */
  async function signInThrough(name: string): Promise<void> {
    const { context, page, callbacks } = await loginPage();
    try {
      await page.getByRole('button', { name }).click();
      await page.waitForURL((at) => at.origin === upstream.issuer && at.pathname.startsWith('/interaction/'));
      await page.fill('input[name="login"]', LOGIN);
      await page.fill('input[name="password"]', 'any password: the dev login page takes any');
      await page.click('button:has-text("Sign-in")');
      await page.locator('input[name="prompt"][value="consent"]').waitFor({ state: 'attached' });
      await page.click('button:has-text("Continue")');
      await page.waitForURL((at) => at.href.startsWith(REDIRECT)).catch(async (error: unknown) => {
        assert.fail(`not back at the client: at ${page.url()} showing ${JSON.stringify((await page.textContent('body'))?.slice(0, 300))}; upstream errors ${upstream.errors.join(' | ')} (${String(error)})`);
      });
      assert.ok(new URL(callbacks.at(-1)!).searchParams.get('code'), 'the client got a code: Gatehouse redeemed the upstream’s code with the stored secret');
    } finally {
      await context.close();
    }
  }

  before(async () => {
    server = await startTestServer({ env: { ALLOW_PRIVATE_JWKS_URI: 'true' } });
    const users = await adminToken(server, ALL_ADMIN_SCOPES);
    for (const [username, roles] of [
      ['federator', ['gatehouse:identity-providers']],
      ['helpdesk', ['gatehouse:users']],
    ] as const) {
      const created = await adminCall(server, 'POST', '/users', { username, password: PASSWORD, roles: [...roles] }, users);
      assert.equal(created.status, 201, JSON.stringify(created.body));
      ids.set(username, (created.body as { id: string }).id);
    }
    const client = await adminCall<{ client_id: string }>(
      server,
      'POST',
      '/clients',
      { client_name: 'Intranet', grant_types: ['authorization_code'], redirect_uris: [REDIRECT], scope: 'openid', first_party: true },
      await adminToken(server, 'admin:clients'),
    );
    assert.equal(client.status, 201, JSON.stringify(client.body));
    intranet = client.body.client_id;
    const admin = await adminToken(server, 'admin:identity-providers');
    for (let i = 0; i < EXISTING; i += 1) {
      // Disabled: the login page stays short.
      const filler = await adminCall(server, 'POST', '/identity-providers', { name: `Filler ${i}`, issuer: `https://filler-${String(i).padStart(2, '0')}.example.com`, client_id: 'gatehouse', enabled: false }, admin);
      assert.equal(filler.status, 201, JSON.stringify(filler.body));
    }
    upstream = await startUpstream();
    browser = await launchChromium();
  });
  after(async () => {
    await browser?.close();
    await upstream?.close();
    await server?.close();
  });

  test('a gatehouse:identity-providers person creates a provider people can sign in with, edits it keeping the secret, meets a stale-form conflict, and deletes it; all audited with the person as actor', async () => {
    const person = ids.get('federator')!;
    // bypassCSP only so the test can inject axe-core; the console's own script is 'self'.
    const context = await browser.newContext({ bypassCSP: true });
    const page = await signIn(context, 'federator');
    const listUrl = `${server.issuer}/console/identity-providers`;
    await page.click('a:has-text("Identity providers")');
    await page.waitForURL(listUrl);
    assert.equal(await page.title(), 'Identity providers · Gatehouse');
    assert.equal(await page.locator('tbody tr').count(), 50, 'a full first page');
    await assertAccessible(page, 'console identity providers');
    await screenshots(page, 'console-identity-providers');

    await page.click('a:has-text("New identity provider")');
    await page.waitForURL(`${listUrl}/new`);
    assert.equal(await page.inputValue('#scopes'), 'openid email profile', 'the schema’s default scopes');
    assert.ok(await page.isChecked('#enabled'));
    await assertAccessible(page, 'console new identity provider');
    await screenshots(page, 'console-identity-provider-new');

    // Refused by the admin API's schema and by the form's own reading, each next to its field; what was typed stays, but not the secret.
    await page.fill('#name', 'Example Corp SSO');
    await page.fill('#issuer', 'ftp://login.example.com');
    await page.fill('#client_id', UPSTREAM_CLIENT_ID);
    await page.fill('#client_secret', UPSTREAM_SECRET);
    await page.fill('#scopes', 'email profile');
    await page.fill('#role_mappings', 'groups engineering');
    await page.check('#create_users');
    await page.selectOption('#sync', 'every_login');
    let [answer] = await Promise.all([posted(page, listUrl), page.click('button:has-text("Create identity provider")')]);
    assert.equal(answer.status(), 400);
    assert.equal(await page.title(), 'Error: New identity provider · Gatehouse');
    assert.equal(await page.getAttribute('#issuer', 'aria-invalid'), 'true');
    assert.match((await page.getAttribute('#issuer', 'aria-describedby')) ?? '', /issuer-error/);
    assert.match((await page.textContent('#issuer-error')) ?? '', /https/);
    assert.match((await page.textContent('#scopes-error')) ?? '', /openid/);
    assert.match((await page.textContent('#role_mappings-error')) ?? '', /line 1/);
    assert.equal(await page.locator('#name-error').count(), 0, 'no error where there is none');
    assert.equal(await page.inputValue('#issuer'), 'ftp://login.example.com');
    assert.equal(await page.inputValue('#scopes'), 'email profile');
    assert.equal(await page.inputValue('#role_mappings'), 'groups engineering');
    assert.ok(await page.isChecked('#create_users'));
    assert.equal(await page.inputValue('#sync'), 'every_login');
    assert.equal(await page.inputValue('#client_secret'), '', 'a secret is never sent back');
    assert.ok(!(await page.content()).includes(UPSTREAM_SECRET));
    await assertAccessible(page, 'console new identity provider with errors');
    await screenshots(page, 'console-identity-provider-new-errors');

    await page.fill('#issuer', upstream.issuer);
    await page.fill('#client_secret', UPSTREAM_SECRET);
    await page.fill('#scopes', 'openid email profile');
    await page.fill('#role_mappings', 'groups engineering engineer');
    await page.fill('#claim_username', 'preferred_username');
    await Promise.all([page.waitForURL((url) => url.searchParams.get('done') === 'created'), page.click('button:has-text("Create identity provider")')]);
    await page.waitForSelector('[role="status"]:has-text("Identity provider created")');
    const providerUrl = page.url().replace(/\?.*$/, '');
    const id = providerUrl.split('/').at(-1)!;
    const redirectUri = ((await page.textContent('#redirect-uri')) ?? '').trim();
    assert.equal(redirectUri, `${server.issuer}/federation/${id}/callback`);
    assert.match((await page.textContent('#secret-status')) ?? '', /Set/);
    assert.equal(await page.inputValue('#client_secret'), '');
    assert.match((await page.textContent('#client_secret-hint')) ?? '', /Leave empty to keep the current secret/);
    assert.equal(await page.inputValue('#role_mappings'), 'groups engineering engineer');
    assert.ok(!(await page.content()).includes(UPSTREAM_SECRET), 'the secret is not on the page');
    await assertAccessible(page, 'console identity provider');
    await screenshots(page, 'console-identity-provider');

    // Sealed at rest, and write-only through the admin API too.
    const { rows } = await server.db.query<{ sealed: string | null }>('SELECT client_secret_sealed AS sealed FROM identity_providers WHERE id = $1', [id]);
    const sealed = rows[0]?.sealed ?? '';
    assert.ok(sealed !== '' && !sealed.includes(UPSTREAM_SECRET), 'the stored secret is sealed');
    assert.equal(server.runtime.envelope.open(sealed, `identity_providers:${id}`).toString('utf8'), UPSTREAM_SECRET, 'it opens to what was typed');
    const stored = await readProvider(id);
    assert.equal(stored.body.client_secret_set, true);
    assert.ok(!JSON.stringify(stored.body).includes(UPSTREAM_SECRET));
    const created = await audit('identity_provider.created', id);
    assert.equal(created.length, 1, JSON.stringify(created));
    assert.equal(created[0]!.actor, person);
    assert.ok(!JSON.stringify(created).includes(UPSTREAM_SECRET));

    // Live: the login page offers it, and a sign-in through it completes (the upstream checks the secret).
    await upstream.register(redirectUri);
    await signInThrough('Example Corp SSO');

    // Edit with the secret left empty: saved, the secret kept, and the sign-in still works.
    await page.fill('#name', 'Example Corp');
    await Promise.all([page.waitForURL((url) => url.searchParams.get('done') === 'saved'), page.click('button:has-text("Save changes")')]);
    await page.waitForSelector('[role="status"]:has-text("Changes saved")');
    assert.equal(await page.inputValue('#name'), 'Example Corp');
    assert.match((await page.textContent('#secret-status')) ?? '', /Set/);
    const updated = await audit('identity_provider.updated', id);
    assert.equal(updated.length, 1, JSON.stringify(updated));
    assert.equal(updated[0]!.actor, person);
    assert.deepEqual(updated[0]!.details, { changes: { name: { from: 'Example Corp SSO', to: 'Example Corp' } } }, 'the secret untouched');
    await signInThrough('Example Corp');

    // A new secret and "remove" together: refused next to the box, nothing saved.
    await page.fill('#client_secret', 'another-secret');
    await page.check('#remove_client_secret');
    [answer] = await Promise.all([posted(page, providerUrl), page.click('button:has-text("Save changes")')]);
    assert.equal(answer.status(), 400);
    assert.match((await page.textContent('#remove_client_secret-error')) ?? '', /not both/);
    assert.equal(await page.inputValue('#client_secret'), '');
    assert.ok(!(await page.content()).includes('another-secret'));
    await page.goto(providerUrl);

    // A stale form: someone renames the provider through the admin API while the form is open.
    const changed = await adminCall<ProviderBody>(server, 'PATCH', `/identity-providers/${id}`, { name: 'Corp SSO (API)' }, await adminToken(server, 'admin:identity-providers'));
    assert.equal(changed.status, 200, JSON.stringify(changed.body));
    await page.fill('#name', 'Mine');
    await page.fill('#client_secret', 'not-saved-either');
    [answer] = await Promise.all([posted(page, providerUrl), page.click('button:has-text("Save changes")')]);
    assert.equal(answer.status(), 409);
    await page.waitForSelector('[role="alert"]:has-text("Someone else changed this while you were editing it")');
    assert.equal(await page.inputValue('#name'), 'Corp SSO (API)', 'the form shows the current values');
    assert.deepEqual((await readProvider(id)).body, changed.body, 'nothing overwritten');
    const { rows: after } = await server.db.query<{ sealed: string | null }>('SELECT client_secret_sealed AS sealed FROM identity_providers WHERE id = $1', [id]);
    assert.equal(after[0]?.sealed, sealed, 'the secret unchanged');
    await assertAccessible(page, 'console identity provider, stale form');
    await screenshots(page, 'console-identity-provider-conflict');

    // Without the session's CSRF token: refused, nothing changes.
    const forged = await page.request.post(providerUrl, { form: { name: 'Forged', issuer: upstream.issuer, client_id: 'x', scopes: 'openid', version: await page.inputValue('input[name="version"]') }, maxRedirects: 0 });
    assert.equal(forged.status(), 403);
    assert.equal((await page.request.post(`${providerUrl}/delete`, { form: {}, maxRedirects: 0 })).status(), 403);
    assert.equal((await readProvider(id)).body.name, 'Corp SSO (API)');

    // Paging: it is on the second page, reached through the cursor; First page goes back.
    await page.goto(listUrl);
    assert.equal(await page.locator(`tr[data-id="${id}"]`).count(), 0);
    await page.click('a:has-text("Next page")');
    await page.waitForURL(/\/console\/identity-providers\?cursor=/);
    assert.match((await page.locator(`tr[data-id="${id}"]`).textContent()) ?? '', /Corp SSO \(API\)[\s\S]*Set[\s\S]*Enabled/);
    await page.click('a:has-text("First page")');
    await page.waitForURL(listUrl);
    assert.equal((await page.goto(`${listUrl}?cursor=forged`))?.status(), 400);
    assert.equal((await page.goto(`${listUrl}/not-a-uuid`))?.status(), 404);

    // Delete, after a confirmation page: the button leaves the login page.
    await page.goto(providerUrl);
    await page.click('a:has-text("Delete this identity provider")');
    await page.waitForURL(`${providerUrl}/delete`);
    assert.match((await page.textContent('main')) ?? '', /keep their Gatehouse accounts/);
    await assertAccessible(page, 'console identity provider deletion');
    await screenshots(page, 'console-identity-provider-delete');
    await Promise.all([page.waitForURL((url) => url.searchParams.get('done') === 'deleted'), page.click('button:has-text("Delete this identity provider")')]);
    await page.waitForSelector('[role="status"]:has-text("Identity provider deleted")');
    assert.equal((await readProvider(id)).status, 404);
    const login = await loginPage();
    assert.equal(await login.page.getByRole('button', { name: 'Corp SSO (API)' }).count(), 0, 'no longer offered');
    await login.context.close();
    const deleted = await audit('identity_provider.deleted', id);
    assert.equal(deleted.length, 1, JSON.stringify(deleted));
    assert.equal(deleted[0]!.actor, person);
    await context.close();
  });

  test('a person without gatehouse:identity-providers gets 403 at the area’s URLs', async () => {
    const context = await browser.newContext();
    const page = await signIn(context, 'helpdesk');
    const provider = await adminCall<ProviderBody>(server, 'POST', '/identity-providers', { name: 'Other', issuer: 'https://other.example.com', client_id: 'x', enabled: false }, await adminToken(server, 'admin:identity-providers'));
    assert.equal(provider.status, 201);
    const areaUrl = `${server.issuer}/console/identity-providers`;
    for (const url of [areaUrl, `${areaUrl}/new`, `${areaUrl}/${provider.body.id}`, `${areaUrl}/${provider.body.id}/delete`]) {
      assert.equal((await page.goto(url))?.status(), 403, url);
    }
    await page.waitForSelector('h1:has-text("No access to the console")');
    for (const url of [areaUrl, `${areaUrl}/${provider.body.id}`, `${areaUrl}/${provider.body.id}/delete`]) {
      assert.equal((await context.request.post(url, { form: { csrf: 'x' }, maxRedirects: 0 })).status(), 403, url);
    }
    assert.equal((await readProvider(provider.body.id)).status, 200, 'still there');
    await context.close();
  });
});
