import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import * as oidc from 'openid-client';
import { adminCall, adminToken } from '../support/admin-api.js';
import { CookieClient, formAction, hiddenField } from '../support/cookie-client.js';
import { postgresUrl } from '../support/database.js';
import { pkceParams, submitLogin } from '../support/sign-in.js';
import { startTestServer, type TestServer } from '../support/server.js';
import { totpCode } from '../support/totp.js';

/**
 * Five wrong codes end the sign-in attempt (SPEC §4), however they arrive: each post takes one of
 * the attempt's tries in the database before its code is checked, so wrong codes posted at once
 * to one interaction, on one instance or two, have at most five of them checked (one mfa.failure
 * each); the rest are refused unchecked, and the attempt is over: the right code no longer signs in.
 */

const REDIRECT = 'http://127.0.0.1:9/callback';
const PASSWORD = 'correct horse battery staple';
const TRIES = 5;
const POSTS = 60;

const isRedirect = (response: Response) => response.status >= 300 && response.status < 400;

interface CodeForm {
  readonly browser: CookieClient;
  readonly html: string;
  readonly path: string;
  readonly csrf: string;
}

describe('concurrent second-factor codes', () => {
  let server: TestServer;
  let two: TestServer | undefined;
  let config: oidc.Configuration;

  async function passwordStep(username: string, base = server.url): Promise<CodeForm> {
    const browser = new CookieClient();
    const { params } = await pkceParams(REDIRECT, 'openid');
    const url = oidc.buildAuthorizationUrl(config, params);
    const login = await browser.follow(await browser.get(new URL(url.pathname + url.search, base)), base);
    const page = await submitLogin(browser, base, await login.text(), { username, password: PASSWORD });
    assert.equal(page.status, 200);
    const html = await page.text();
    const action = formAction(html, /\/second-factor$/);
    const csrf = hiddenField(html, 'csrf');
    assert.ok(action !== undefined && csrf !== undefined, 'a code form with its CSRF token');
    return { browser, html, path: action, csrf };
  }

  async function postCode(form: CodeForm, code: string, base = server.url): Promise<{ status: number; html: string; response: Response }> {
    const response = await form.browser.postForm(new URL(form.path, base), { csrf: form.csrf, code });
    return { status: response.status, html: isRedirect(response) ? '' : await response.text(), response };
  }

  /** A user with TOTP enrolled (through the enrollment page); returns the secret. */
  async function enrolledUser(username: string): Promise<{ userId: string; secret: string }> {
    const user = await adminCall<{ id: string }>(server, 'POST', '/users', { username, password: PASSWORD, mfa_required: true }, await adminToken(server, 'admin:users'));
    assert.equal(user.status, 201, JSON.stringify(user.body));
    const form = await passwordStep(username);
    const uri = /href="(otpauth:\/\/totp\/[^"]+)"/.exec(form.html)?.[1]?.replaceAll('&amp;', '&');
    assert.ok(uri, 'the enrollment page');
    const secret = new URL(uri).searchParams.get('secret')!;
    const shown = await postCode(form, totpCode(secret));
    assert.equal(shown.status, 200, 'recovery codes shown');
    assert.ok(isRedirect((await postCode(form, '')).response), 'enrollment completes the sign-in');
    return { userId: user.body.id, secret };
  }

  /** Six-digit codes that are wrong at any time step near now. */
  function wrongCodes(secret: string, count: number): string[] {
    const near = new Set([-2, -1, 0, 1, 2].map((offset) => totpCode(secret, Date.now(), offset)));
    return Array.from({ length: count + near.size }, (_, i) => String(100000 + i * 7919).slice(-6)).filter((c) => !near.has(c)).slice(0, count);
  }

  async function checkedCodes(userId: string): Promise<number> {
    const { rows } = await server.db.query<{ n: number }>("SELECT count(*)::int AS n FROM audit_events WHERE type = 'mfa.failure' AND target = $1", [userId]);
    return rows[0]!.n;
  }

  async function flood(username: string, userId: string, secret: string, bases: readonly string[]) {
    await server.db.query("DELETE FROM login_throttle WHERE key LIKE 'ip:%'");
    const form = await passwordStep(username, bases[0]);
    const before = await checkedCodes(userId);
    const results = await Promise.all(wrongCodes(secret, POSTS).map((code, i) => postCode(form, code, bases[i % bases.length])));
    const checked = (await checkedCodes(userId)) - before;
    const statuses = results.map((r) => r.status);
    assert.ok(checked >= 1 && checked <= TRIES, `${checked} of ${POSTS} codes checked`);
    assert.ok(results.every((r) => !isRedirect(r.response)), 'no wrong code signs in');
    assert.ok(statuses.every((s) => s === 400 || s === 401 || s === 429), `statuses ${JSON.stringify(statuses)}`);
    // Refused unchecked: told the attempt is over (the login page again), or, once the interaction
    // has forgotten the attempt, that this step is not available (400).
    const ended = results.filter((r) => r.status === 400 || /Too many wrong codes/.test(r.html)).length;
    assert.ok(ended >= POSTS - TRIES, `${ended} posts told the attempt is over`);
    const { rows } = await server.db.query<{ codes: number }>('SELECT codes FROM sign_in_code_attempts WHERE account_id = $1', [userId]);
    assert.deepEqual(rows.map((r) => r.codes), [TRIES], 'the attempt used exactly its five tries');

    // The attempt is over: the right code (for the next step, so not a replay) is refused too.
    const late = await postCode(form, totpCode(secret, Date.now(), 1), bases[0]);
    assert.ok(!isRedirect(late.response), `the right code after the flood does not sign in (${late.status})`);
    assert.ok(late.status === 400 || late.status === 401, `status ${late.status}`);
    return checked;
  }

  before(async () => {
    server = await startTestServer();
    if (postgresUrl !== undefined) two = await startTestServer({ database: server.database, env: { MASTER_KEY: server.masterKey, ISSUER: server.issuer } });
    const client = await adminCall<{ client_id: string; client_secret: string }>(
      server,
      'POST',
      '/clients',
      { client_name: 'Coded', grant_types: ['authorization_code'], redirect_uris: [REDIRECT], scope: 'openid', first_party: true },
      await adminToken(server, 'admin:clients'),
    );
    assert.equal(client.status, 201);
    config = await oidc.discovery(new URL(server.issuer), client.body.client_id, client.body.client_secret, undefined, { execute: [oidc.allowInsecureRequests] });
  });
  after(async () => {
    await two?.close();
    await server?.close();
  });

  test(`${POSTS} wrong codes posted at once to one sign-in attempt: at most ${TRIES} are checked, and the attempt ends`, async () => {
    const { userId, secret } = await enrolledUser('coder');
    await flood('coder', userId, secret, [server.url]);
  });

  test(`${POSTS} wrong codes for one attempt split over two instances: at most ${TRIES} checked between them`, { skip: postgresUrl === undefined ? 'needs PostgreSQL (TEST_DATABASE_URL)' : false }, async () => {
    const { userId, secret } = await enrolledUser('coder-two');
    await flood('coder-two', userId, secret, [server.url, two!.url]);
  });
});
