import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import { after, before, beforeEach, describe, test } from 'node:test';
import argon2 from 'argon2';
import * as oidc from 'openid-client';
import { adminCall, adminToken } from '../support/admin-api.js';
import { CookieClient, formAction, hiddenField } from '../support/cookie-client.js';
import { pkceParams, signIn, startAuthorization } from '../support/sign-in.js';
import { startTestServer, type TestServer } from '../support/server.js';

/**
 * Threats against the hosted sign-in (SPEC §2, §4, §5): password guessing, account enumeration,
 * cross-site form posts, open redirects, stale sessions of disabled people, and hostile form
 * input. Time is moved by rewriting login_throttle rows, never by waiting.
 */

const ORDERS = 'https://orders.sign-in-security.example';
const REDIRECT = 'http://127.0.0.1:9/callback';
const LOGOUT_REDIRECT = 'http://127.0.0.1:9/bye';
const EVIL = 'https://evil.example/steal';
const PASSWORD = 'correct horse battery staple';
const WRONG = 'not the password at all';
const GENERIC = 'Sign-in failed. Check your username and password. After several failed attempts, wait a few minutes before trying again.';

interface Client {
  client_id: string;
  client_secret: string;
}

interface Fixture {
  readonly normal: Client;
  readonly firstParty: Client;
  readonly normalConfig: oidc.Configuration;
  readonly firstPartyConfig: oidc.Configuration;
}

/** A resource server, a client that asks for consent and a first-party one, all with the same redirects. */
async function setUp(server: TestServer): Promise<Fixture> {
  const rs = await adminCall(server, 'POST', '/resource-servers', { identifier: ORDERS, name: 'Orders', scopes: ['orders:read'] });
  assert.equal(rs.status, 201, JSON.stringify(rs.body));
  const client = async (name: string, firstParty: boolean) => {
    const created = await adminCall<Client>(server, 'POST', '/clients', {
      client_name: name,
      grant_types: ['authorization_code', 'refresh_token'],
      redirect_uris: [REDIRECT],
      post_logout_redirect_uris: [LOGOUT_REDIRECT],
      allowed_resources: [ORDERS],
      scope: 'openid profile email offline_access orders:read',
      first_party: firstParty,
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    return created.body;
  };
  const normal = await client('Shop', false);
  const firstParty = await client('Intranet', true);
  const discover = (c: Client) => oidc.discovery(new URL(server.issuer), c.client_id, c.client_secret, undefined, { execute: [oidc.allowInsecureRequests] });
  return { normal, firstParty, normalConfig: await discover(normal), firstPartyConfig: await discover(firstParty) };
}

async function createUser(server: TestServer, username: string): Promise<string> {
  const created = await adminCall<{ id: string }>(server, 'POST', '/users', { username, password: PASSWORD }, await adminToken(server, 'admin:users'));
  assert.equal(created.status, 201, JSON.stringify(created.body));
  return created.body.id;
}

/** The IP counter would otherwise add up across tests (every request comes from 127.0.0.1). */
async function forgetAddresses(server: TestServer): Promise<void> {
  await server.db.query("DELETE FROM login_throttle WHERE key LIKE 'ip:%'");
}

interface LoginPage {
  readonly html: string;
  readonly action: URL;
  readonly csrf: string;
}

function readLoginPage(html: string, base: string): LoginPage {
  const action = formAction(html, /\/login$/);
  const csrf = hiddenField(html, 'csrf');
  assert.ok(action !== undefined && csrf !== undefined, `a login form with a CSRF token: ${html}`);
  return { html, action: new URL(action, base), csrf };
}

/** Starts an authorization request in `browser` at `baseUrl` and returns its login page. */
async function openLogin(browser: CookieClient, config: oidc.Configuration, baseUrl: string, extra: Record<string, string> = {}): Promise<LoginPage> {
  const { params } = await pkceParams(REDIRECT, 'openid', extra);
  const url = oidc.buildAuthorizationUrl(config, params);
  // A second instance shares the issuer; send the request to its own address instead, and the
  // pages' redirects and forms (all on the issuer) too.
  browser.routeTo(config.serverMetadata().issuer, baseUrl);
  const target = new URL(url.pathname + url.search, baseUrl);
  const page = await browser.follow(await browser.get(target), baseUrl);
  assert.equal(page.status, 200);
  return readLoginPage(await page.text(), baseUrl);
}

function postLogin(browser: CookieClient, login: LoginPage, username: string, password: string): Promise<Response> {
  return browser.postForm(login.action, { csrf: login.csrf, username, password });
}

/** The text of the page's alert, where the hosted pages put every error. */
function alertOf(html: string): string | undefined {
  return /role="alert">([^<]*)</.exec(html)?.[1];
}

/** The seconds left on an account's lock, computed by the database clock. */
async function lockSeconds(server: TestServer, username: string): Promise<number> {
  const { rows } = await server.db.query<{ seconds: number }>(
    'SELECT extract(epoch FROM locked_until - now())::float8 AS seconds FROM login_throttle WHERE key = $1',
    [`account:${username}`],
  );
  assert.equal(rows.length, 1, `a throttle row for ${username}`);
  return rows[0]!.seconds;
}

function assertRedirectToClient(response: Response): URL {
  assert.ok(response.status >= 300 && response.status < 400, `expected a redirect, got ${response.status}`);
  const location = new URL(response.headers.get('location')!);
  assert.equal(location.origin + location.pathname, REDIRECT);
  return location;
}

/** An HTML error page that sends the browser nowhere. */
async function assertErrorPage(response: Response, status: number): Promise<string> {
  assert.equal(response.status, status);
  assert.equal(response.headers.get('location'), null, 'no redirect');
  assert.match(response.headers.get('content-type') ?? '', /^text\/html/);
  return response.text();
}

describe('brute force: an account locks after five failed passwords, whether it exists or not', () => {
  let server: TestServer;
  let fixture: Fixture;
  let victimId: string;

  before(async () => {
    server = await startTestServer();
    fixture = await setUp(server);
    victimId = await createUser(server, 'Victim');
  });
  after(() => server.close());
  beforeEach(() => forgetAddresses(server));

  test('the right password is refused while locked, exactly as for an unknown username, and the lock grows', async () => {
    const browser = new CookieClient();
    const login = await openLogin(browser, fixture.firstPartyConfig, server.url);

    /** Five wrong passwords, then the right one: statuses, and each page with the username masked. */
    const attack = async (username: string) => {
      const statuses: number[] = [];
      const pages: string[] = [];
      let last: Response | undefined;
      for (const password of [WRONG, WRONG, WRONG, WRONG, WRONG, PASSWORD]) {
        last = await postLogin(browser, login, username, password);
        assert.equal(last.headers.get('location'), null, 'no redirect, no code');
        statuses.push(last.status);
        pages.push((await last.text()).replaceAll(username, '<username>'));
      }
      return { statuses, pages, retryAfter: last!.headers.get('retry-after') };
    };

    const real = await attack('victim');
    assert.deepEqual(real.statuses, [401, 401, 401, 401, 401, 429]);
    assert.equal(alertOf(real.pages[0]!), GENERIC);
    assert.equal(alertOf(real.pages[5]!), GENERIC, 'the lock says nothing a wrong password does not');
    assert.equal(real.pages[5], real.pages[0], 'the refused page is the wrong-password page');
    assert.ok(real.retryAfter !== null && /^\d+$/.test(real.retryAfter), `Retry-After: ${real.retryAfter}`);
    assert.ok(Number(real.retryAfter) > 0 && Number(real.retryAfter) <= 30);

    const locked = await server.db.query<{ target: string }>("SELECT target FROM audit_events WHERE type = 'login.locked' AND target = $1", [victimId]);
    assert.equal(locked.rows.length, 1, 'one login.locked event for the account');

    const unknown = await attack('no-such-person');
    assert.deepEqual(unknown.statuses, real.statuses, 'an unknown username is throttled the same way');
    assert.deepEqual(unknown.pages, real.pages, 'and its pages are identical');
    assert.ok(unknown.retryAfter !== null && Number(unknown.retryAfter) > 0 && Number(unknown.retryAfter) <= 30);
    const unknownLocked = await server.db.query("SELECT 1 FROM audit_events WHERE type = 'login.locked' AND target = 'unknown'");
    assert.equal(unknownLocked.rows.length, 1);

    // Growing delay: once the first lock has run out, the next failure in the window locks for longer.
    const first = await lockSeconds(server, 'victim');
    assert.ok(first > 25 && first <= 30, `first lock ${first} s`);
    await server.db.query("UPDATE login_throttle SET locked_until = now() - interval '1 second' WHERE key = 'account:victim'");
    assert.equal((await postLogin(browser, login, 'victim', WRONG)).status, 401);
    const second = await lockSeconds(server, 'victim');
    assert.ok(second > first, `second lock ${second} s is longer than the first ${first} s`);
    assert.equal((await postLogin(browser, login, 'Victim', PASSWORD)).status, 429, 'the username is normalised for the lock');

    // After the lock, the right password signs in and clears the account's counter...
    await server.db.query("UPDATE login_throttle SET locked_until = now() - interval '1 second' WHERE key = 'account:victim'");
    assert.ok((await lockSeconds(server, 'victim')) < 0);
    const success = await browser.follow(await postLogin(browser, login, 'victim', PASSWORD), server.url);
    assert.ok(assertRedirectToClient(success).searchParams.get('code'));
    const cleared = await server.db.query("SELECT 1 FROM login_throttle WHERE key = 'account:victim'");
    assert.equal(cleared.rows.length, 0, 'the counter is gone');

    // ...so one more failure is just one failure again, not a lock.
    const fresh = new CookieClient();
    const page = await openLogin(fresh, fixture.firstPartyConfig, server.url);
    assert.equal((await postLogin(fresh, page, 'victim', WRONG)).status, 401);
    const row = await server.db.query<{ failures: number; locked_until: Date | null }>("SELECT failures, locked_until FROM login_throttle WHERE key = 'account:victim'");
    assert.deepEqual(row.rows, [{ failures: 1, locked_until: null }]);
    assert.ok(assertRedirectToClient(await fresh.follow(await postLogin(fresh, page, 'victim', PASSWORD), server.url)).searchParams.get('code'));
  });

  test('an unknown username costs an argon2 verify, like a wrong password', async () => {
    await createUser(server, 'timed');
    const browser = new CookieClient();
    const login = await openLogin(browser, fixture.firstPartyConfig, server.url);
    const timed = async (username: string) => {
      const started = performance.now();
      const response = await postLogin(browser, login, username, WRONG);
      await response.text();
      assert.equal(response.status, 401);
      return performance.now() - started;
    };
    // A loose lower bound: argon2id m=19456 t=2 takes ~25 ms; a skipped verify takes ~1 ms.
    const unknown = await timed('nobody-at-all');
    const known = await timed('timed');
    assert.ok(unknown >= 10, `unknown user answered in ${unknown.toFixed(1)} ms`);
    assert.ok(known >= 10, `wrong password answered in ${known.toFixed(1)} ms`);
  });
});

describe('brute force across two instances on one database', { skip: process.env['TEST_DATABASE_URL'] || process.env['DATABASE_URL'] ? false : 'needs PostgreSQL (TEST_DATABASE_URL)' }, () => {
  let one: TestServer;
  let two: TestServer;
  let fixture: Fixture;

  before(async () => {
    one = await startTestServer();
    // Instances behind one load balancer share the issuer, the database and MASTER_KEY.
    two = await startTestServer({ database: one.database, env: { MASTER_KEY: one.masterKey, ISSUER: one.issuer } });
    fixture = await setUp(one);
    await createUser(one, 'shared');
  });
  after(async () => {
    await two?.close();
    await one?.close();
  });

  test('failures counted by one instance lock the account on the other', async () => {
    await forgetAddresses(one);
    const browserOne = new CookieClient();
    const loginOne = await openLogin(browserOne, fixture.firstPartyConfig, one.url);
    for (let i = 0; i < 5; i += 1) assert.equal((await postLogin(browserOne, loginOne, 'shared', WRONG)).status, 401);

    const browserTwo = new CookieClient();
    const loginTwo = await openLogin(browserTwo, fixture.firstPartyConfig, two.url);
    const refused = await postLogin(browserTwo, loginTwo, 'shared', PASSWORD);
    assert.equal(refused.status, 429);
    assert.equal(refused.headers.get('location'), null);
    assert.ok(Number(refused.headers.get('retry-after')) > 0);
    assert.equal(alertOf(await refused.text()), GENERIC);
  });
});

describe('account state at sign-in: disabled people and outdated password hashes', () => {
  let server: TestServer;
  let fixture: Fixture;

  before(async () => {
    server = await startTestServer();
    fixture = await setUp(server);
  });
  after(() => server.close());
  beforeEach(() => forgetAddresses(server));

  test('a disabled person cannot sign in, and their refresh token stops working', async () => {
    const id = await createUser(server, 'leaver');
    const { verifier, state, nonce, params } = await pkceParams(REDIRECT, 'openid offline_access', { prompt: 'consent' });
    const signedIn = new CookieClient();
    const { callback } = await signIn(signedIn, fixture.normalConfig, server.url, params, { username: 'leaver', password: PASSWORD });
    const tokens = await oidc.authorizationCodeGrant(fixture.normalConfig, callback, { pkceCodeVerifier: verifier, expectedState: state, expectedNonce: nonce });
    assert.ok(tokens.refresh_token, 'offline_access with prompt=consent yields a refresh token');

    const patched = await adminCall<{ disabled: boolean }>(server, 'PATCH', `/users/${id}`, { disabled: true }, await adminToken(server, 'admin:users'));
    assert.equal(patched.status, 200);
    assert.equal(patched.body.disabled, true);

    const browser = new CookieClient();
    const login = await openLogin(browser, fixture.normalConfig, server.url);
    const refused = await postLogin(browser, login, 'leaver', PASSWORD);
    assert.equal(refused.status, 401);
    assert.equal(refused.headers.get('location'), null);
    assert.equal(alertOf(await refused.text()), GENERIC, 'the same message as a wrong password');

    await assert.rejects(oidc.refreshTokenGrant(fixture.normalConfig, tokens.refresh_token), (error: unknown) => error instanceof oidc.ResponseBodyError && error.error === 'invalid_grant');

    // The session from before is over too: a silent authorization needs a login again.
    const silent = await pkceParams(REDIRECT, 'openid', { prompt: 'none' });
    const location = assertRedirectToClient(await startAuthorization(signedIn, fixture.normalConfig, server.url, silent.params));
    assert.equal(location.searchParams.get('error'), 'login_required');
  });

  test('a password hashed with weaker parameters is rehashed at the next successful sign-in', async () => {
    const id = await createUser(server, 'oldtimer');
    const weak = await argon2.hash(PASSWORD, { type: argon2.argon2id, memoryCost: 8192, timeCost: 1, parallelism: 1 });
    await server.db.query('UPDATE users SET password_hash = $1 WHERE id = $2', [weak, id]);
    const phcParams = (hash: string): Record<string, string> => {
      const match = /^\$argon2id\$v=19\$([^$]+)\$/.exec(hash);
      assert.ok(match !== null, `an argon2id PHC string: ${hash}`);
      return Object.fromEntries(match[1]!.split(',').map((pair) => pair.split('=') as [string, string]));
    };
    assert.deepEqual(phcParams(weak), { m: '8192', t: '1', p: '1' });

    const browser = new CookieClient();
    const login = await openLogin(browser, fixture.firstPartyConfig, server.url);
    assertRedirectToClient(await browser.follow(await postLogin(browser, login, 'oldtimer', PASSWORD), server.url));

    const { rows } = await server.db.query<{ password_hash: string }>('SELECT password_hash FROM users WHERE id = $1', [id]);
    const stored = rows[0]!.password_hash;
    assert.notEqual(stored, weak);
    assert.deepEqual(phcParams(stored), { m: '19456', t: '2', p: '1' });
    assert.equal(await argon2.verify(stored, PASSWORD), true, 'the new hash is of the same password');
  });
});

describe('redirects: consent per grant, first-party clients, open redirects and logout', () => {
  let server: TestServer;
  let fixture: Fixture;

  before(async () => {
    server = await startTestServer();
    fixture = await setUp(server);
    await createUser(server, 'roamer');
  });
  after(() => server.close());
  beforeEach(() => forgetAddresses(server));

  const ROAMER = { username: 'roamer', password: PASSWORD };

  test('a first-party client goes from login straight to its redirect with a code', async () => {
    const { verifier, state, nonce, params } = await pkceParams(REDIRECT, 'openid profile orders:read');
    const { callback, pages } = await signIn(new CookieClient(), fixture.firstPartyConfig, server.url, params, ROAMER);
    assert.equal(pages.length, 1, 'only the login page');
    assert.match(pages[0]!, /name="password"/);
    assert.doesNotMatch(pages[0]!, /Allow access/);
    const tokens = await oidc.authorizationCodeGrant(
      fixture.firstPartyConfig,
      callback,
      { pkceCodeVerifier: verifier, expectedState: state, expectedNonce: nonce },
      { resource: ORDERS },
    );
    assert.ok(tokens.claims()?.sub);
    const payload = JSON.parse(Buffer.from(tokens.access_token.split('.')[1]!, 'base64url').toString()) as Record<string, unknown>;
    assert.equal(payload['aud'], ORDERS, "the client's one resource");
    assert.equal(payload['scope'], 'orders:read');
  });

  test('a normal client asks for consent once; the next authorization for the same scopes does not ask again', async () => {
    const browser = new CookieClient();
    const first = await pkceParams(REDIRECT, 'openid profile orders:read');
    const shown = await signIn(browser, fixture.normalConfig, server.url, first.params, ROAMER);
    assert.equal(shown.pages.length, 2, 'login, then consent');
    assert.match(shown.pages[1]!, /Allow access/);
    assert.ok(shown.callback.searchParams.get('code'));

    const second = await pkceParams(REDIRECT, 'openid profile orders:read');
    const response = await startAuthorization(browser, fixture.normalConfig, server.url, second.params);
    const callback = assertRedirectToClient(response);
    assert.equal(callback.searchParams.get('error'), null);
    const tokens = await oidc.authorizationCodeGrant(fixture.normalConfig, callback, {
      pkceCodeVerifier: second.verifier,
      expectedState: second.state,
      expectedNonce: second.nonce,
    });
    assert.ok(tokens.access_token);

    // A scope the grant does not cover brings the consent page back.
    const wider = await pkceParams(REDIRECT, 'openid profile email orders:read');
    const asked = await startAuthorization(browser, fixture.normalConfig, server.url, wider.params);
    assert.equal(asked.status, 200);
    const html = await asked.text();
    assert.match(html, /Allow access/);
    assert.match(html, /See your email address/);
    assert.doesNotMatch(html, /See your name and username/, 'only what is missing is asked');
  });

  test('an unregistered redirect_uri gets an error page, never a redirect to it', async () => {
    const browser = new CookieClient();
    for (const extra of [{}, { prompt: 'none' }] as Record<string, string>[]) {
      const { params } = await pkceParams(EVIL, 'openid', extra);
      const response = await browser.get(oidc.buildAuthorizationUrl(fixture.normalConfig, params));
      const html = await assertErrorPage(response, 400);
      assert.match(html, /redirect_uri/);
      assert.doesNotMatch(html, /<form/);
    }
  });

  test('logout redirects only to a registered post_logout_redirect_uri, and ends the session', async () => {
    const browser = new CookieClient();
    const { verifier, state, nonce, params } = await pkceParams(REDIRECT, 'openid');
    const { callback } = await signIn(browser, fixture.firstPartyConfig, server.url, params, ROAMER);
    const tokens = await oidc.authorizationCodeGrant(fixture.firstPartyConfig, callback, { pkceCodeVerifier: verifier, expectedState: state, expectedNonce: nonce });
    const idToken = tokens.id_token!;
    assert.ok(idToken);

    // As a browser navigates: asking for HTML, so protocol errors come back as a page.
    const endSession = (query: Record<string, string>) =>
      browser.request(`${server.url}/session/end?${new URLSearchParams(query)}`, { headers: { accept: 'text/html,application/xhtml+xml,*/*;q=0.8' } });
    await assertErrorPage(await endSession({ client_id: fixture.firstParty.client_id, post_logout_redirect_uri: EVIL }), 400);
    await assertErrorPage(await endSession({ id_token_hint: idToken, post_logout_redirect_uri: EVIL }), 400);
    // Registered for the other client only: still not this one's.
    await assertErrorPage(await endSession({ client_id: fixture.normal.client_id, id_token_hint: idToken, post_logout_redirect_uri: LOGOUT_REDIRECT }), 400);

    const ask = await endSession({ id_token_hint: idToken, post_logout_redirect_uri: LOGOUT_REDIRECT, state: 'bye-state' });
    assert.equal(ask.status, 200);
    const html = await ask.text();
    assert.match(html, /Sign out\?/);
    assert.match(html, /id="op\.logoutForm"/);
    const action = formAction(html, /session\/end/);
    const xsrf = hiddenField(html, 'xsrf');
    assert.ok(action !== undefined && xsrf !== undefined, 'the logout form and its xsrf token');

    const confirmed = await browser.postForm(new URL(action, server.url), { xsrf, logout: 'yes' });
    assert.ok(confirmed.status >= 300 && confirmed.status < 400, `expected a redirect, got ${confirmed.status}`);
    const location = new URL(confirmed.headers.get('location')!);
    assert.equal(location.origin + location.pathname, LOGOUT_REDIRECT);
    assert.equal(location.searchParams.get('state'), 'bye-state');

    const silent = await pkceParams(REDIRECT, 'openid', { prompt: 'none' });
    const again = assertRedirectToClient(await startAuthorization(browser, fixture.firstPartyConfig, server.url, silent.params));
    assert.equal(again.searchParams.get('error'), 'login_required');
    assert.equal(again.searchParams.get('code'), null);
  });
});

describe('hosted forms: CSRF and hostile input', () => {
  let server: TestServer;
  let fixture: Fixture;

  before(async () => {
    server = await startTestServer();
    fixture = await setUp(server);
    await createUser(server, 'formal');
  });
  after(() => server.close());
  beforeEach(() => forgetAddresses(server));

  test('login, consent and abort need the CSRF token of their own interaction', async () => {
    const browser = new CookieClient();
    const login = await openLogin(browser, fixture.normalConfig, server.url);

    const missing = await browser.postForm(login.action, { username: 'formal', password: PASSWORD });
    await assertErrorPage(missing, 403);

    // The attacker's own, valid token for another interaction.
    const attacker = new CookieClient();
    const theirs = await openLogin(attacker, fixture.normalConfig, server.url);
    assert.notEqual(theirs.csrf, login.csrf);
    await assertErrorPage(await browser.postForm(login.action, { csrf: theirs.csrf, username: 'formal', password: PASSWORD }), 403);

    // The login still works with the right token, and leads to the consent page.
    const consent = await browser.follow(await postLogin(browser, login, 'formal', PASSWORD), server.url);
    assert.equal(consent.status, 200);
    const html = await consent.text();
    assert.match(html, /Allow access/);
    const consentAction = new URL(formAction(html, /\/consent$/)!, server.url);
    await assertErrorPage(await browser.postForm(consentAction, {}), 403);
    await assertErrorPage(await browser.postForm(consentAction, { csrf: theirs.csrf }), 403);

    // Cancelling with the right token goes back to the client with access_denied.
    const abortAction = new URL(formAction(html, /\/abort$/)!, server.url);
    const aborted = await browser.follow(await browser.postForm(abortAction, { csrf: hiddenField(html, 'csrf')! }), server.url);
    const location = assertRedirectToClient(aborted);
    assert.equal(location.searchParams.get('error'), 'access_denied');
    assert.equal(location.searchParams.get('code'), null);
  });

  test('oversized, mistyped and duplicated forms are refused with 4xx', async () => {
    const browser = new CookieClient();
    const login = await openLogin(browser, fixture.normalConfig, server.url);
    const post = (body: string, type = 'application/x-www-form-urlencoded') =>
      browser.request(login.action, { method: 'POST', headers: { 'content-type': type }, body });

    const big = new URLSearchParams({ csrf: login.csrf, username: 'formal', password: 'x'.repeat(20 * 1024) }).toString();
    await assertErrorPage(await post(big), 413);
    await assertErrorPage(await post(JSON.stringify({ csrf: login.csrf, username: 'formal', password: PASSWORD }), 'application/json'), 415);
    const twice = `${new URLSearchParams({ csrf: login.csrf, username: 'formal', password: PASSWORD })}&password=${encodeURIComponent(WRONG)}`;
    await assertErrorPage(await post(twice), 400);

    // None of that consumed the interaction: the person can still sign in.
    const consent = await browser.follow(await postLogin(browser, login, 'formal', PASSWORD), server.url);
    assert.equal(consent.status, 200);
    assert.match(await consent.text(), /Allow access/);
  });

  test('odd unicode in the username gets a generic 400 or 401 page, never a 5xx', async () => {
    const browser = new CookieClient();
    const login = await openLogin(browser, fixture.normalConfig, server.url);
    const EMPTY = 'Enter your username and password.';
    const cases: [username: string, status: 400 | 401, message: string][] = [
      // No username can hold U+0000 (PostgreSQL text cannot): refused as a malformed entry.
      ['for\u0000mal', 400, EMPTY],
      ['\u0000', 400, EMPTY],
      ['\u3000\u00A0', 400, EMPTY],
      ['\u202Eformal\u200F', 401, GENERIC],
      ['\u200E\u200F\u202A\u202B\u202C\u202D\u2066\u2067\u2068\u2069', 401, GENERIC],
      ['😀'.repeat(300), 401, GENERIC],
      // Cut at 256 UTF-16 units, which splits the last emoji into a lone surrogate.
      [`${'😀'.repeat(127)}a😀`, 401, GENERIC],
      ['\uD800formal', 401, GENERIC],
      ['ＦＯＲＭＡＬ\u0301', 401, GENERIC],
    ];
    for (const [username, status, message] of cases) {
      for (const password of [WRONG, PASSWORD, 'pass\u0000word']) {
        const response = await postLogin(browser, login, username, password);
        const html = await response.text();
        assert.equal(response.status, status, `${JSON.stringify(username)} / ${JSON.stringify(password)} → ${response.status}: ${alertOf(html)}`);
        assert.equal(response.headers.get('location'), null);
        assert.equal(alertOf(html), message);
      }
    }
  });
});
