import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { adminCall, adminToken, decodeJwt, type AuditRow } from '../support/admin-api.js';
import { CookieClient, formAction, hiddenField } from '../support/cookie-client.js';
import { submitLogin } from '../support/sign-in.js';
import { startTestServer, waitFor, type TestServer } from '../support/server.js';

const DEVICE_GRANT = 'urn:ietf:params:oauth:grant-type:device_code';
const PASSWORD = 'correct horse battery staple';
const ALICE = { username: 'alice', password: PASSWORD };
const USER_CODE = /^[BCDFGHJKLMNPQRSTVWXZ]{4}-[BCDFGHJKLMNPQRSTVWXZ]{4}$/;
/** SPEC §12: the documented per-IP limit on wrong user codes (src/oidc/device-flow.ts). */
const GUESS_LIMIT = 10;

interface DeviceAuthorization {
  device_code: string;
  user_code: string;
  verification_uri: string;
  verification_uri_complete: string;
  expires_in: number;
  interval: number;
}

interface TokenAnswer {
  status: number;
  body: Record<string, unknown>;
}

/** A user code no device was given: the right shape, from the same alphabet. */
function wrongCode(seed: number): string {
  const alphabet = 'BCDFGHJKLMNPQRSTVWXZ';
  const letters = Array.from({ length: 8 }, (_, i) => alphabet[(seed * 7 + i * 3) % alphabet.length]).join('');
  return `${letters.slice(0, 4)}-${letters.slice(4)}`;
}

describe('device authorization grant (RFC 8628, SPEC §12)', () => {
  let server: TestServer;
  let deviceEndpoint: string;
  let tokenEndpoint: string;
  let cli: { client_id: string };
  let userId: string;

  /** RFC 8628 §3.1, as a device would send it: a public client names itself. */
  async function authorize(clientId = cli.client_id, scope = 'openid profile offline_access', headers: Record<string, string> = {}): Promise<{ status: number; body: DeviceAuthorization & Record<string, unknown>; requestId: string }> {
    const response = await fetch(deviceEndpoint, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', 'user-agent': 'deploy-cli/2.1 (linux)', ...headers },
      body: new URLSearchParams({ client_id: clientId, scope }),
    });
    return { status: response.status, body: (await response.json()) as DeviceAuthorization & Record<string, unknown>, requestId: response.headers.get('x-request-id') ?? '' };
  }

  /** RFC 8628 §3.4: one poll of the token endpoint. */
  async function poll(deviceCode: string, clientId = cli.client_id): Promise<TokenAnswer> {
    const response = await fetch(tokenEndpoint, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: DEVICE_GRANT, device_code: deviceCode, client_id: clientId }),
    });
    return { status: response.status, body: (await response.json()) as Record<string, unknown> };
  }

  async function refresh(refreshToken: string): Promise<TokenAnswer> {
    const response = await fetch(tokenEndpoint, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: refreshToken, client_id: cli.client_id }),
    });
    return { status: response.status, body: (await response.json()) as Record<string, unknown> };
  }

  /** A device code the person has confirmed, signed in for and consented to. */
  async function approvedDevice(): Promise<DeviceAuthorization> {
    const { body: device } = await authorize();
    const browser = new CookieClient();
    const confirmation = await enterCode(browser, device.user_code);
    assert.match(await signInAndConsent(browser, await answerConfirmation(browser, confirmation.html, 'confirm')), /Device connected/);
    return device;
  }

  /** Opens <ISSUER>/device and submits `userCode`; returns the page that answers. */
  async function enterCode(browser: CookieClient, userCode: string, headers: Record<string, string> = {}): Promise<{ status: number; html: string; headers: Headers }> {
    const form = await browser.request(`${server.issuer}/device`, { headers });
    assert.equal(form.status, 200);
    const html = await form.text();
    const action = formAction(html, /\/device$/);
    assert.ok(action, 'the code entry form');
    const answer = await browser.request(new URL(action, server.url), {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
      body: new URLSearchParams({ xsrf: hiddenField(html, 'xsrf') ?? '', user_code: userCode }),
    });
    return { status: answer.status, html: await answer.text(), headers: answer.headers };
  }

  /** Presses one of the confirmation page's two buttons; follows the redirects on the issuer's origin. */
  async function answerConfirmation(browser: CookieClient, confirmation: string, button: 'confirm' | 'abort'): Promise<Response> {
    const action = formAction(confirmation, /\/device$/);
    assert.ok(action, 'the confirmation form');
    const posted = await browser.postForm(new URL(action, server.url), {
      xsrf: hiddenField(confirmation, 'xsrf') ?? '',
      user_code: hiddenField(confirmation, 'user_code') ?? '',
      [button]: 'yes',
    });
    return browser.follow(posted, server.url);
  }

  /** Login, then consent (if asked): the person's whole part after confirming. Returns the last page. */
  async function signInAndConsent(browser: CookieClient, login: Response): Promise<string> {
    let html = await login.text();
    assert.match(html, /name="password"/, 'the login page');
    let page = await submitLogin(browser, server.url, html, ALICE);
    html = await page.text();
    if (html.includes('Allow access')) {
      const action = formAction(html, /\/consent$/);
      assert.ok(action, 'a consent form');
      page = await browser.follow(await browser.postForm(new URL(action, server.url), { csrf: hiddenField(html, 'csrf') ?? '' }), server.url);
      html = await page.text();
    }
    assert.equal(page.status, 200);
    return html;
  }

  async function auditOfType(type: string, since: string): Promise<AuditRow[]> {
    const { rows } = await server.db.query<AuditRow>(
      'SELECT id::text AS id, type, actor, target, client_ip, request_id, outcome, details FROM audit_events WHERE type = $1 AND id > $2::bigint ORDER BY id',
      [type, since],
    );
    return rows;
  }

  async function lastAuditId(): Promise<string> {
    const { rows } = await server.db.query<{ id: string }>('SELECT coalesce(max(id), 0)::text AS id FROM audit_events');
    return rows[0]!.id;
  }

  before(async () => {
    // TRUST_PROXY: the guess-limit test speaks for several client addresses with X-Forwarded-For.
    server = await startTestServer({ env: { TRUST_PROXY: 'true' } });
    const token = await adminToken(server, 'admin:clients admin:users');
    const created = await adminCall<{ client_id: string; client_secret?: string; grant_types: string[]; response_types: string[]; token_endpoint_auth_method: string }>(
      server,
      'POST',
      '/clients',
      { client_name: 'Deploy CLI', grant_types: [DEVICE_GRANT, 'refresh_token'], token_endpoint_auth_method: 'none', scope: 'openid profile offline_access' },
      token,
    );
    assert.equal(created.status, 201, JSON.stringify(created.body));
    assert.deepEqual(created.body.grant_types, [DEVICE_GRANT, 'refresh_token']);
    assert.deepEqual(created.body.response_types, []);
    assert.equal(created.body.token_endpoint_auth_method, 'none');
    assert.equal(created.body.client_secret, undefined, 'a public device client gets no secret');
    cli = created.body;
    const user = await adminCall<{ id: string }>(server, 'POST', '/users', { username: 'alice', password: PASSWORD }, token);
    assert.equal(user.status, 201, JSON.stringify(user.body));
    userId = user.body.id;
    const discovery = (await (await fetch(`${server.issuer}/.well-known/openid-configuration`)).json()) as Record<string, unknown>;
    deviceEndpoint = String(discovery['device_authorization_endpoint']);
    tokenEndpoint = String(discovery['token_endpoint']);
  });
  after(() => server.close());

  test('discovery advertises the device authorization endpoint and the grant', async () => {
    const discovery = (await (await fetch(`${server.issuer}/.well-known/openid-configuration`)).json()) as Record<string, unknown>;
    assert.equal(discovery['device_authorization_endpoint'], `${server.issuer}/device/auth`);
    assert.ok((discovery['grant_types_supported'] as string[]).includes(DEVICE_GRANT));
  });

  test('the admin API: refresh_token goes with the device grant, not with client_credentials alone; unknown grants are refused', async () => {
    const alone = await adminCall(server, 'POST', '/clients', { grant_types: ['client_credentials', 'refresh_token'] });
    assert.equal(alone.status, 400);
    assert.match(JSON.stringify(alone.body), /refresh_token needs authorization_code or urn:ietf:params:oauth:grant-type:device_code/);
    const confidential = await adminCall<{ client_secret?: string }>(server, 'POST', '/clients', { client_name: 'TV app', grant_types: [DEVICE_GRANT] });
    assert.equal(confidential.status, 201, JSON.stringify(confidential.body));
    assert.equal(typeof confidential.body.client_secret, 'string', 'a confidential device client authenticates as any other');
  });

  test('a client without the device grant cannot start one', async () => {
    const shop = await adminCall<{ client_id: string }>(server, 'POST', '/clients', {
      grant_types: ['authorization_code'],
      redirect_uris: ['http://127.0.0.1:9/cb'],
      token_endpoint_auth_method: 'none',
    });
    assert.equal(shop.status, 201, JSON.stringify(shop.body));
    const refused = await authorize(shop.body.client_id, 'openid');
    assert.equal(refused.status, 400);
    assert.equal(refused.body['error'], 'unauthorized_client');
  });

  test('the device authorization response (RFC 8628 §3.2), pending polls, and slow_down for polling too fast', async () => {
    const { status, body } = await authorize();
    assert.equal(status, 200, JSON.stringify(body));
    assert.match(body.user_code, USER_CODE);
    assert.equal(body.verification_uri, `${server.issuer}/device`);
    assert.equal(body.verification_uri_complete, `${server.issuer}/device?user_code=${encodeURIComponent(body.user_code)}`);
    assert.equal(body.expires_in, 600);
    assert.equal(body.interval, 5);
    assert.ok(body.device_code.length >= 32);

    assert.deepEqual((await poll(body.device_code)).body['error'], 'authorization_pending');
    // At once again: RFC 8628 §3.5 slow_down, and the interval it must keep has grown.
    const fast = await poll(body.device_code);
    assert.equal(fast.status, 400);
    assert.equal(fast.body['error'], 'slow_down');
    // Two at once are no better than two in a row: one of them is too fast.
    const both = await Promise.all([poll(body.device_code), poll(body.device_code)]);
    assert.deepEqual(both.map((answer) => answer.body['error']), ['slow_down', 'slow_down']);
    const { rows } = await server.db.query<{ interval_seconds: number }>('SELECT interval_seconds FROM device_code_polls');
    assert.deepEqual(rows.map((row) => row.interval_seconds), [20], 'three polls too soon: 5 s + 3 × 5 s');
    // Somebody else's client cannot poll this code.
    const other = await adminCall<{ client_id: string }>(server, 'POST', '/clients', { grant_types: [DEVICE_GRANT], token_endpoint_auth_method: 'none' });
    const stranger = await poll(body.device_code, other.body.client_id);
    assert.equal(stranger.body['error'], 'invalid_grant');
  });

  test('a person enters the code, sees the client and the device, signs in and consents; the device gets tokens once', async () => {
    const since = await lastAuditId();
    const { body: device, requestId } = await authorize(undefined, undefined, { 'x-forwarded-for': '198.51.100.23' });
    const browser = new CookieClient();
    const confirmation = await enterCode(browser, device.user_code.toLowerCase().replace('-', ' '));
    assert.equal(confirmation.status, 200);
    // RFC 8628 §5.4: which client, which code, and where the request came from.
    assert.match(confirmation.html, /<strong>Deploy CLI<\/strong> wants to sign in on a device/);
    assert.match(confirmation.html, new RegExp(`id="confirm-user-code">${device.user_code}<`));
    assert.match(confirmation.html, /id="device-address">198\.51\.100\.23</);
    assert.match(confirmation.html, /id="device-agent">deploy-cli\/2\.1 \(linux\)</);
    assert.match(confirmation.html, /id="device-asked">less than a minute ago</);
    assert.doesNotMatch(confirmation.html, /<script|style=|onfocus/, 'no inline script or style');
    assert.equal(confirmation.headers.get('cache-control'), 'no-store');

    const login = await answerConfirmation(browser, confirmation.html, 'confirm');
    assert.match(login.url, /\/interaction\//);
    const done = await signInAndConsent(browser, login);
    assert.match(done, /Device connected/);
    assert.match(done, /You are signed in to Deploy CLI on your device/);

    const answer = await poll(device.device_code);
    assert.equal(answer.status, 200, JSON.stringify(answer.body));
    const tokens = answer.body;
    assert.equal(tokens['token_type'], 'Bearer');
    assert.equal(typeof tokens['refresh_token'], 'string', 'offline_access gives the tool a refresh token');
    assert.equal(decodeJwt(String(tokens['id_token'])).payload['sub'], userId);
    // The refresh token works with the public client.
    const refreshed = await refresh(String(tokens['refresh_token']));
    assert.equal(refreshed.status, 200, JSON.stringify(refreshed.body));

    const requested = await waitFor(async () => (await auditOfType('device_code.requested', since)).find((row) => row.request_id === requestId));
    assert.equal(requested.actor, cli.client_id);
    assert.equal(requested['client_ip'], '198.51.100.23');
    const approved = await waitFor(async () => (await auditOfType('device_code.approved', since))[0]);
    assert.equal(approved.actor, userId);
    assert.equal(approved.target, cli.client_id);
    assert.equal(approved.details['device_ip'], '198.51.100.23');
    const redeemed = await waitFor(async () => (await auditOfType('device_code.redeemed', since))[0]);
    assert.equal(redeemed.actor, cli.client_id);
    assert.equal(redeemed.details['account_id'], userId);
    const { rows } = await server.db.query('SELECT * FROM audit_events WHERE id > $1::bigint', [since]);
    assert.ok(!JSON.stringify(rows).includes(device.device_code) && !JSON.stringify(rows).includes(device.user_code), 'no code in the audit trail');
    // SPEC §6: nor in the logs (the access log drops query strings, where verification_uri_complete carries the user code).
    const logs = server.logs.text;
    assert.ok(logs.includes('/device'), 'the device pages were logged');
    for (const secret of [device.device_code, device.user_code, device.user_code.replace('-', ''), String(tokens['refresh_token'])]) assert.ok(!logs.includes(secret), 'no code or token in the logs');
  });

  test('polls of an approved code at once: never more than one gets tokens; the spent code presented again revokes them', async () => {
    const since = await lastAuditId();
    const device = await approvedDevice();
    const answers = await Promise.all(Array.from({ length: 5 }, () => poll(device.device_code)));
    const granted = answers.filter((answer) => answer.status === 200);
    // Never two. One, when the five find the code before any of them spends it; none, when a
    // later poll (a busy machine staggers them) sees it spent and, as a reuse, revokes the grant
    // the first one is still issuing from.
    assert.ok(granted.length <= 1, JSON.stringify(answers));
    for (const refused of answers.filter((answer) => answer.status !== 200)) assert.equal(refused.body['error'], 'invalid_grant');
    // RFC 6749 §4.1.2, as for authorization codes: a reused code revokes what it gave.
    assert.equal((await poll(device.device_code)).body['error'], 'invalid_grant');
    if (granted[0] !== undefined) assert.equal((await refresh(String(granted[0].body['refresh_token']))).body['error'], 'invalid_grant');
    const reuse = await waitFor(async () => (await auditOfType('token.reuse_detected', since))[0]);
    assert.equal(reuse.details['grant_type'], DEVICE_GRANT);
  });

  test('denying at the confirmation page: the device gets access_denied, and the denial is audited', async () => {
    const since = await lastAuditId();
    const { body: device } = await authorize();
    const browser = new CookieClient();
    const confirmation = await enterCode(browser, device.user_code);
    const denied = await answerConfirmation(browser, confirmation.html, 'abort');
    assert.equal(denied.status, 200);
    assert.match(await denied.text(), /You denied access: the device is not signed in/);
    const answer = await poll(device.device_code);
    assert.equal(answer.status, 400);
    assert.equal(answer.body['error'], 'access_denied');
    const row = await waitFor(async () => (await auditOfType('device_code.denied', since))[0]);
    assert.equal(row.target, cli.client_id);
    assert.equal(row.outcome, 'failure');
    // The code is answered: entering it again says so.
    assert.match((await enterCode(new CookieClient(), device.user_code)).html, /That code was already used/);
  });

  test('cancelling at the login page denies the device too', async () => {
    const { body: device } = await authorize();
    const browser = new CookieClient();
    const confirmation = await enterCode(browser, device.user_code);
    const login = await answerConfirmation(browser, confirmation.html, 'confirm');
    const html = await login.text();
    const abort = formAction(html, /\/abort$/);
    assert.ok(abort, 'the cancel form');
    const cancelled = await browser.follow(await browser.postForm(new URL(abort, server.url), { csrf: hiddenField(html, 'csrf') ?? '' }), server.url);
    assert.match(await cancelled.text(), /You denied access/);
    assert.equal((await poll(device.device_code)).body['error'], 'access_denied');
  });

  test('two people confirming one code at once: one goes on to sign in, the other is told it was used', async () => {
    const { body: device } = await authorize();
    const browsers = [new CookieClient(), new CookieClient()];
    const confirmations = await Promise.all(browsers.map((browser) => enterCode(browser, device.user_code)));
    const answers = await Promise.all(browsers.map((browser, i) => answerConfirmation(browser, confirmations[i]!.html, 'confirm')));
    const pages = await Promise.all(answers.map(async (answer) => ({ url: answer.url, html: await answer.text() })));
    const signingIn = pages.filter((page) => page.html.includes('name="password"'));
    assert.equal(signingIn.length, 1, JSON.stringify(pages.map((page) => page.url)));
    assert.ok(pages.some((page) => page.html.includes('That code was already used')));
  });

  test('wrong codes are limited per client IP: concurrent guesses get no more, another address is not affected', async () => {
    const since = await lastAuditId();
    const { body: device } = await authorize();
    const attacker = { 'x-forwarded-for': '203.0.113.66' };
    // A wrong code, then the right one: found codes do not count.
    assert.match((await enterCode(new CookieClient(), wrongCode(1), attacker)).html, /That code is not right/);
    assert.equal((await enterCode(new CookieClient(), device.user_code, attacker)).status, 200);
    // Many at once: no more than the limit are looked up.
    const answers = await Promise.all(Array.from({ length: 3 * GUESS_LIMIT }, (_, i) => enterCode(new CookieClient(), wrongCode(i + 2), attacker)));
    const looked = answers.filter((answer) => answer.status === 200);
    assert.equal(looked.length, GUESS_LIMIT - 1, 'one wrong code was already counted');
    for (const answer of looked) assert.match(answer.html, /That code is not right/);
    const limited = answers.filter((answer) => answer.status === 429);
    assert.equal(limited.length, 2 * GUESS_LIMIT + 1);
    assert.match(limited[0]!.html, /Too many wrong codes came from your network/);
    assert.ok(Number(limited[0]!.headers.get('retry-after')) > 0);
    // Even the right code waits now, from that address; from another it works.
    assert.equal((await enterCode(new CookieClient(), device.user_code, attacker)).status, 429);
    const elsewhere = await enterCode(new CookieClient(), device.user_code, { 'x-forwarded-for': '203.0.113.67' });
    assert.equal(elsewhere.status, 200);
    assert.match(elsewhere.html, /Is this your device\?/);
    // Audited once for the address, however many requests it refused.
    const rows = await waitFor(async () => {
      const found = await auditOfType('device_code.guesses_limited', since);
      return found.length > 0 ? found : undefined;
    });
    assert.equal(rows.length, 1);
    assert.equal(rows[0]!.target, '203.0.113.66');
    const metrics = await (await fetch(`${server.managementUrl}/metrics`)).text();
    assert.match(metrics, /gatehouse_rate_limited_total\{scope="user_code_ip"\} 2[2-9]/);
  });

  test('an expired code: the page says so and the device gets expired_token', async () => {
    const { body: device } = await authorize();
    // Ten minutes are not waited for: the stored code's expiry (its payload's exp, which the
    // provider checks, and the row's) is moved into the past.
    const { rowCount } = await server.db.query(
      `UPDATE oidc_models SET expires_at = now() - interval '1 second', payload = jsonb_set(payload, '{exp}', to_jsonb(floor(extract(epoch FROM now()))::bigint - 1))
        WHERE model = 'DeviceCode' AND user_code = $1`,
      [device.user_code.replace('-', '')],
    );
    assert.equal(rowCount, 1);
    assert.match((await enterCode(new CookieClient(), device.user_code)).html, /That code has expired/);
    const answer = await poll(device.device_code);
    assert.equal(answer.status, 400);
    assert.equal(answer.body['error'], 'expired_token');
  });
});

describe('device grant across two instances behind one issuer: the pace and the guess limit are shared', () => {
  let one: TestServer;
  let two: TestServer;
  let clientId: string;

  /** A browser whose requests for the issuer reach `instance`, entering `userCode` as `ip`. */
  async function enterCodeAt(instance: TestServer, userCode: string, ip: string): Promise<number> {
    const browser = new CookieClient();
    browser.routeTo(one.issuer, instance.url);
    const form = await browser.request(`${one.issuer}/device`, { headers: { 'x-forwarded-for': ip } });
    const html = await form.text();
    const answer = await browser.request(`${one.issuer}/device`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', 'x-forwarded-for': ip },
      body: new URLSearchParams({ xsrf: hiddenField(html, 'xsrf') ?? '', user_code: userCode }),
    });
    await answer.body?.cancel();
    return answer.status;
  }

  async function pollAt(instance: TestServer, deviceCode: string): Promise<string> {
    const response = await fetch(`${instance.url}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: DEVICE_GRANT, device_code: deviceCode, client_id: clientId }),
    });
    return ((await response.json()) as { error?: string }).error ?? 'tokens';
  }

  before(async () => {
    one = await startTestServer({ env: { TRUST_PROXY: 'true' } });
    two = await startTestServer({ database: one.database, env: { MASTER_KEY: one.masterKey, ISSUER: one.issuer, TRUST_PROXY: 'true' } });
    const created = await adminCall<{ client_id: string }>(one, 'POST', '/clients', { grant_types: [DEVICE_GRANT], token_endpoint_auth_method: 'none' }, await adminToken(one, 'admin:clients'));
    assert.equal(created.status, 201, JSON.stringify(created.body));
    clientId = created.body.client_id;
  });
  after(async () => {
    await two?.close();
    await one?.close();
  });

  test('a poll at one instance, then at the other at once: slow_down', async () => {
    const response = await fetch(`${one.url}/device/auth`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ client_id: clientId, scope: 'openid' }),
    });
    const { device_code: deviceCode } = (await response.json()) as DeviceAuthorization;
    assert.equal(await pollAt(one, deviceCode), 'authorization_pending');
    assert.equal(await pollAt(two, deviceCode), 'slow_down');
  });

  test('wrong codes sent to both instances at once: no more than the limit are looked up in all', async () => {
    const attacker = '192.0.2.45';
    const statuses = await Promise.all(Array.from({ length: 2 * GUESS_LIMIT }, (_, i) => enterCodeAt(i % 2 === 0 ? one : two, wrongCode(i + 100), attacker)));
    assert.equal(statuses.filter((status) => status === 200).length, GUESS_LIMIT, JSON.stringify(statuses));
    assert.equal(statuses.filter((status) => status === 429).length, GUESS_LIMIT);
  });
});
