import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { compactDecrypt, exportJWK, generateKeyPair, type CryptoKey as JoseKey } from 'jose';
import * as oidc from 'openid-client';
import { adminCall, adminToken, decodeJwt } from '../support/admin-api.js';
import { freezeClock, type FrozenClock } from '../support/clock.js';
import { CookieClient, formAction, hiddenField } from '../support/cookie-client.js';
import { postgresUrl } from '../support/database.js';
import { startTestServer, type TestServer } from '../support/server.js';
import { pkceParams, submitLogin } from '../support/sign-in.js';
import { totpCode } from '../support/totp.js';

/**
 * When a second factor is required (SPEC §4: the user's `mfa_required`, the client's
 * `require_mfa`, `acr_values=urn:gatehouse:acr:mfa`, and always once enrolled), what a request
 * for it gets when it cannot be met (OIDC Core §3.1.2.6), and the threats against the code step:
 * replay across instances, drift, guessing, recovery-code reuse, secrets in the audit log.
 * `Date` is frozen for the process (the server runs in it); tests move it a 30 s step at a time.
 */

const REDIRECT = 'http://127.0.0.1:9/callback';
const ORDERS = 'https://orders.mfa-policy.example';
const PASSWORD = 'correct horse battery staple';
const ACR_MFA = 'urn:gatehouse:acr:mfa';
const ACR_PWD = 'urn:gatehouse:acr:pwd';
const ENROLL_PAGE = /Set up two-step verification/;
const CODE_PAGE = /<h1>Two-step verification<\/h1>/;
const ADMIN_SCOPES = 'admin:clients admin:resource-servers admin:users admin:audit';

interface Client {
  client_id: string;
  client_secret: string;
}

interface Authorization {
  readonly verifier: string;
  readonly state: string;
  readonly nonce: string;
}

interface Enrollment {
  readonly secret: string;
  readonly recoveryCodes: string[];
}

const isRedirect = (response: Response) => response.status >= 300 && response.status < 400;

describe('second factor: when it is required, step-up, and attacks on the code step', () => {
  let clock: FrozenClock;
  let server: TestServer;
  let token: string;
  let innerKey: JoseKey;
  let plain: oidc.Configuration;
  let strict: oidc.Configuration;
  /** Every TOTP code and secret the tests typed, to look for in the audit log. */
  const typedCodes = new Set<string>();
  const secrets = new Set<string>();
  const recoveryCodes = new Set<string>();

  const createUser = async (username: string, mfaRequired = false): Promise<string> => {
    const created = await adminCall<{ id: string }>(server, 'POST', '/users', { username, password: PASSWORD, mfa_required: mfaRequired }, token);
    assert.equal(created.status, 201, JSON.stringify(created.body));
    return created.body.id;
  };

  const code = (secret: string, stepOffset = 0): string => {
    const value = totpCode(secret, clock.now(), stepOffset);
    typedCodes.add(value);
    return value;
  };

  /** Starts an authorization request on `base` (an instance's URL); returns the first page or the redirect to the client. */
  async function authorize(browser: CookieClient, config: oidc.Configuration, extra: Record<string, string> = {}, base = server.url) {
    const auth = await pkceParams(REDIRECT, 'openid profile', extra);
    const url = oidc.buildAuthorizationUrl(config, auth.params);
    const onInstance = new URL(`${url.pathname}${url.search}`, base);
    // The pages' redirects and forms are on the shared issuer: this browser reaches it at `base`.
    browser.routeTo(server.issuer, base);
    return { auth: auth as Authorization, page: await browser.follow(await browser.get(onInstance), base) };
  }

  /** Authorization request, then the password; returns the page after the password step. */
  async function passwordStep(browser: CookieClient, config: oidc.Configuration, username: string, extra: Record<string, string> = {}, base = server.url) {
    const { auth, page } = await authorize(browser, config, extra, base);
    assert.equal(page.status, 200);
    const html = await page.text();
    assert.match(html, /name="password"/, 'the login page');
    const next = await submitLogin(browser, base, html, { username, password: PASSWORD });
    return { auth, page: next, html: isRedirect(next) ? '' : await next.text() };
  }

  /** Posts `value` in the code form on `html`; follows redirects on `base`. */
  async function submitCode(browser: CookieClient, html: string, value: string, base = server.url): Promise<Response> {
    const action = formAction(html, /\/second-factor$/);
    assert.ok(action, 'a code form');
    return browser.follow(await browser.postForm(new URL(action, base), { csrf: hiddenField(html, 'csrf') ?? '', code: value }), base);
  }

  /** Follows a finished interaction (wherever the provider sends it) to the client's callback. */
  async function callbackOf(browser: CookieClient, response: Response): Promise<URL> {
    let current = response;
    for (let hop = 0; hop < 5 && isRedirect(current); hop += 1) {
      const location = new URL(current.headers.get('location')!, current.url || server.url);
      if (location.href.startsWith(REDIRECT)) return location;
      current = await browser.follow(await browser.get(location), location.origin);
    }
    assert.fail(`expected a redirect to the client, got ${current.status}: ${await current.text()}`);
  }

  async function idToken(config: oidc.Configuration, callback: URL, auth: Authorization, resource?: string) {
    const tokens = await oidc.authorizationCodeGrant(
      config,
      callback,
      { pkceCodeVerifier: auth.verifier, expectedState: auth.state, expectedNonce: auth.nonce },
      resource === undefined ? undefined : { resource },
    );
    return { claims: tokens.claims()!, accessToken: tokens.access_token };
  }

  /** Completes the enrollment page on `html`: the secret from the otpauth link, a code for now, the recovery codes, continue. */
  async function enroll(browser: CookieClient, html: string, base = server.url): Promise<Enrollment & { response: Response }> {
    assert.match(html, ENROLL_PAGE);
    const uri = /href="(otpauth:\/\/totp\/[^"]+)"/.exec(html)?.[1]?.replaceAll('&amp;', '&');
    assert.ok(uri, 'the otpauth URI as a link');
    const secret = new URL(uri).searchParams.get('secret')!;
    secrets.add(secret);
    const shown = await submitCode(browser, html, code(secret), base);
    assert.equal(shown.status, 200);
    const codesPage = await shown.text();
    const codes = [...codesPage.matchAll(/<li><code>([A-Z0-9-]+)<\/code><\/li>/g)].map((m) => m[1]!);
    assert.equal(codes.length, 10);
    for (const c of codes) recoveryCodes.add(c);
    return { secret, recoveryCodes: codes, response: await submitCode(browser, codesPage, '', base) };
  }

  async function enrolled(userId: string): Promise<boolean> {
    const user = await adminCall<{ mfa_enrolled: boolean }>(server, 'GET', `/users/${userId}`, undefined, token);
    assert.equal(user.status, 200);
    return user.body.mfa_enrolled;
  }

  before(async () => {
    clock = freezeClock();
    server = await startTestServer();
    token = await adminToken(server, ADMIN_SCOPES);
    const pair = await generateKeyPair('ECDH-ES+A256KW', { crv: 'P-256' });
    innerKey = pair.privateKey;
    const rs = await adminCall(server, 'POST', '/resource-servers', { identifier: ORDERS, name: 'Orders', scopes: ['orders:read'], inner_encryption_jwk: await exportJWK(pair.publicKey) }, token);
    assert.equal(rs.status, 201, JSON.stringify(rs.body));
    const client = async (name: string, requireMfa: boolean) => {
      const created = await adminCall<Client>(
        server,
        'POST',
        '/clients',
        { client_name: name, grant_types: ['authorization_code'], redirect_uris: [REDIRECT], allowed_resources: [ORDERS], first_party: true, require_mfa: requireMfa },
        token,
      );
      assert.equal(created.status, 201, JSON.stringify(created.body));
      return oidc.discovery(new URL(server.issuer), created.body.client_id, created.body.client_secret, undefined, { execute: [oidc.allowInsecureRequests] });
    };
    plain = await client('Wiki', false);
    strict = await client('Payroll', true);
  });
  after(async () => {
    await server?.close();
    clock?.restore();
  });

  describe('a user without mfa_required', () => {
    let userId: string;
    let enrollment: Enrollment;
    before(async () => {
      userId = await createUser('casual');
    });

    test('not enrolled, signing in to a client that does not ask for it: the password is enough (acr pwd, amr pwd)', async () => {
      const browser = new CookieClient();
      const { auth, page } = await passwordStep(browser, plain, 'casual');
      const { claims } = await idToken(plain, await callbackOf(browser, page), auth);
      assert.equal(claims['acr'], ACR_PWD);
      assert.deepEqual(claims['amr'], ['pwd']);
    });

    test('a client with require_mfa makes the same user enroll; cancelling leaves nothing active', async () => {
      const browser = new CookieClient();
      const { html } = await passwordStep(browser, strict, 'casual');
      assert.match(html, ENROLL_PAGE);
      const action = formAction(html, /\/abort$/);
      assert.ok(action);
      const cancelled = await callbackOf(browser, await browser.follow(await browser.postForm(new URL(action, server.url), { csrf: hiddenField(html, 'csrf') ?? '' }), server.url));
      assert.equal(cancelled.searchParams.get('error'), 'access_denied');
      assert.equal(cancelled.searchParams.get('code'), null);
      assert.equal(await enrolled(userId), false);
    });

    test('acr_values=urn:gatehouse:acr:mfa makes the same user enroll; ID token and inner layer say mfa and otp', async () => {
      const browser = new CookieClient();
      const { auth, html } = await passwordStep(browser, plain, 'casual', { acr_values: ACR_MFA, scope: 'openid orders:read', resource: ORDERS });
      const done = await enroll(browser, html);
      enrollment = done;
      const { claims, accessToken } = await idToken(plain, await callbackOf(browser, done.response), auth, ORDERS);
      assert.equal(claims['acr'], ACR_MFA);
      assert.deepEqual(claims['amr'], ['pwd', 'otp']);
      const { payload } = decodeJwt(accessToken);
      assert.equal(payload['acr'], ACR_MFA);
      const inner = JSON.parse(new TextDecoder().decode((await compactDecrypt(payload['inner'] as string, innerKey)).plaintext)) as Record<string, unknown>;
      assert.deepEqual(inner['amr'], ['pwd', 'otp']);
      assert.equal(await enrolled(userId), true);
    });

    test('once enrolled, every sign-in asks for a code, even for a client that does not require one', async () => {
      clock.advanceSteps();
      const browser = new CookieClient();
      const { auth, html } = await passwordStep(browser, plain, 'casual');
      assert.match(html, CODE_PAGE);
      const { claims } = await idToken(plain, await callbackOf(browser, await submitCode(browser, html, code(enrollment.secret))), auth);
      assert.equal(claims['acr'], ACR_MFA);
      assert.deepEqual(claims['amr'], ['pwd', 'otp']);
    });

    test('one step of clock drift either way is accepted, two are refused; an older step than the last accepted one is a replay', async () => {
      clock.advanceSteps(3);
      let browser = new CookieClient();
      let { html } = await passwordStep(browser, plain, 'casual');
      const inWindow = [-1, 0, 1].map((offset) => totpCode(enrollment.secret, clock.now(), offset));
      for (const offset of [2, -2]) {
        assert.ok(!inWindow.includes(totpCode(enrollment.secret, clock.now(), offset)), 'no chance collision with a code inside the window');
        const refused = await submitCode(browser, html, code(enrollment.secret, offset));
        assert.equal(refused.status, 401, `a code ${offset} steps away is refused`);
        html = await refused.text();
      }
      assert.ok(isRedirect(await submitCode(browser, html, code(enrollment.secret, -1))), 'one step behind is accepted');

      browser = new CookieClient();
      ({ html } = await passwordStep(browser, plain, 'casual'));
      assert.ok(isRedirect(await submitCode(browser, html, code(enrollment.secret, 1))), 'one step ahead is accepted');

      browser = new CookieClient();
      ({ html } = await passwordStep(browser, plain, 'casual'));
      for (const offset of [1, 0, -1]) {
        const replay = await submitCode(browser, html, code(enrollment.secret, offset));
        assert.equal(replay.status, 401, `step ${offset}: not after the last accepted step, so refused`);
        html = await replay.text();
      }
    });

    test('each recovery code works once; the code page says how many remain when few do', async () => {
      const codes = enrollment.recoveryCodes;
      for (const [i, recovery] of codes.entries()) {
        const browser = new CookieClient();
        const { auth, html } = await passwordStep(browser, plain, 'casual');
        const remaining = codes.length - i;
        const notice = /You have (\d+) recovery codes? left/.exec(html);
        if (remaining > 3) assert.equal(notice, null, `no notice with ${remaining} left`);
        else {
          assert.equal(notice?.[1], String(remaining), `the notice with ${remaining} left`);
          assert.match(html, new RegExp(`You have ${remaining} recovery ${remaining === 1 ? 'code' : 'codes'} left`));
        }
        // Every other one typed as people do: lower case, without the dash.
        const typed = i % 2 === 0 ? recovery : recovery.toLowerCase().replace('-', '');
        const result = await submitCode(browser, html, typed);
        assert.ok(isRedirect(result), `recovery code ${i} signs in`);
        if (i === 0) {
          const { claims } = await idToken(plain, await callbackOf(browser, result), auth);
          assert.equal(claims['acr'], ACR_MFA);
          assert.deepEqual(claims['amr'], ['pwd', 'otp']);
        }
      }
      const browser = new CookieClient();
      const { html } = await passwordStep(browser, plain, 'casual');
      assert.match(html, /You have 0 recovery codes left/);
      const reused = await submitCode(browser, html, codes[0]!);
      assert.equal(reused.status, 401, 'a used recovery code is refused');
      const { rows } = await server.db.query<{ remaining: number }>(
        "SELECT (details->>'remaining')::int AS remaining FROM audit_events WHERE type = 'mfa.recovery_code_used' AND target = $1 ORDER BY id",
        [userId],
      );
      assert.deepEqual(
        rows.map((r) => r.remaining),
        [9, 8, 7, 6, 5, 4, 3, 2, 1, 0],
      );
    });

    test('an admin reset removes the factor: this user signs in with a password alone again', async () => {
      const reset = await adminCall(server, 'DELETE', `/users/${userId}/mfa`, undefined, token);
      assert.equal(reset.status, 204);
      assert.equal(await enrolled(userId), false);
      const browser = new CookieClient();
      const { auth, page } = await passwordStep(browser, plain, 'casual');
      const { claims } = await idToken(plain, await callbackOf(browser, page), auth);
      assert.equal(claims['acr'], ACR_PWD);
    });
  });

  describe('step-up of a password-only session', () => {
    let browser: CookieClient;
    before(async () => {
      await createUser('stepper');
      browser = new CookieClient();
      const { page } = await passwordStep(browser, plain, 'stepper');
      assert.ok(isRedirect(page), 'signed in with a password only');
    });

    test('prompt=none with acr_values=mfa is answered login_required (OIDC Core §3.1.2.6), never a weaker acr', async () => {
      const { auth, page } = await authorize(browser, plain, { prompt: 'none', acr_values: ACR_MFA });
      const callback = await callbackOf(browser, page);
      assert.equal(callback.searchParams.get('error'), 'login_required');
      assert.equal(callback.searchParams.get('code'), null);
      assert.equal(callback.searchParams.get('state'), auth.state);
      assert.equal(callback.searchParams.get('iss'), server.issuer);
    });

    test('the same session without prompt=none goes back through the password and the code; the ID token acr is mfa', async () => {
      const { auth, page } = await authorize(browser, plain, { acr_values: ACR_MFA });
      assert.equal(page.status, 200);
      const login = await page.text();
      assert.match(login, /name="password"/, 'the password again');
      const after = await submitLogin(browser, server.url, login, { username: 'stepper', password: PASSWORD });
      const done = await enroll(browser, await after.text());
      const { claims } = await idToken(plain, await callbackOf(browser, done.response), auth);
      assert.equal(claims['acr'], ACR_MFA);
      assert.deepEqual(claims['amr'], ['pwd', 'otp']);

      // The session now holds the second factor: prompt=none with the same request succeeds silently.
      const silent = await authorize(browser, plain, { prompt: 'none', acr_values: ACR_MFA });
      const callback = await callbackOf(browser, silent.page);
      assert.ok(callback.searchParams.get('code'));
      assert.equal((await idToken(plain, callback, silent.auth)).claims['acr'], ACR_MFA);
    });
  });

  describe('guessing codes', () => {
    let userId: string;
    let secret: string;
    before(async () => {
      userId = await createUser('guarded', true);
      const browser = new CookieClient();
      const { html } = await passwordStep(browser, plain, 'guarded');
      ({ secret } = await enroll(browser, html));
      await server.db.query("DELETE FROM login_throttle WHERE key LIKE 'ip:%'");
    });

    test('five wrong codes end the attempt, a reload does not reset the count, and the right code is then refused', async () => {
      clock.advanceSteps();
      const browser = new CookieClient();
      const { html: first } = await passwordStep(browser, plain, 'guarded');
      const action = new URL(formAction(first, /\/second-factor$/)!, server.url);
      const csrf = hiddenField(first, 'csrf')!;
      const valid = new Set([-1, 0, 1].map((offset) => totpCode(secret, clock.now(), offset)));
      const wrongCodes = Array.from({ length: 8 }, (_, i) => String(100001 + i)).filter((c) => !valid.has(c));
      let html = first;
      for (let i = 1; i <= 5; i += 1) {
        const wrong = await submitCode(browser, html, wrongCodes[i - 1]!);
        assert.equal(wrong.status, 401);
        html = await wrong.text();
        if (i === 3) {
          const reload = await browser.get(new URL(action.pathname.replace(/\/second-factor$/, ''), server.url));
          assert.equal(reload.status, 200);
          html = await reload.text();
          assert.match(html, CODE_PAGE);
        }
      }
      assert.match(html, /Too many wrong codes/);
      assert.match(html, /name="password"/, 'back to the password');
      const late = await browser.follow(await browser.postForm(action, { csrf, code: code(secret) }), server.url);
      assert.equal(late.status, 400, 'the ended attempt takes no more codes');
      assert.doesNotMatch(await late.text(), /Save your recovery codes|callback/);
      const { rows } = await server.db.query<{ failures: number }>(
        "SELECT (details->>'failures')::int AS failures FROM audit_events WHERE type = 'mfa.failure' AND target = $1 ORDER BY id",
        [userId],
      );
      assert.deepEqual(
        rows.map((r) => r.failures),
        [1, 2, 3, 4, 5],
      );
    });

    test('wrong codes count toward the account lockout across attempts: a correct password does not wipe them', async () => {
      await createUser('prober', true);
      const enrolling = new CookieClient();
      const { secret: proberSecret } = await enroll(enrolling, (await passwordStep(enrolling, plain, 'prober')).html);
      clock.advanceSteps();
      const valid = new Set([-1, 0, 1].map((offset) => totpCode(proberSecret, clock.now(), offset)));
      const wrongCodes = Array.from({ length: 8 }, (_, i) => String(200001 + i)).filter((c) => !valid.has(c));
      // Four guesses, one short of ending the attempt; then a fresh attempt with the right password.
      let browser = new CookieClient();
      let { html } = await passwordStep(browser, plain, 'prober');
      for (const wrong of wrongCodes.slice(0, 4)) {
        const refused = await submitCode(browser, html, wrong);
        assert.equal(refused.status, 401);
        html = await refused.text();
      }
      browser = new CookieClient();
      ({ html } = await passwordStep(browser, plain, 'prober'));
      assert.match(html, CODE_PAGE, 'not locked yet: four failures');
      assert.equal((await submitCode(browser, html, wrongCodes[4]!)).status, 401);
      // Five failures for the account within the window: locked, whatever the password.
      browser = new CookieClient();
      const { page } = await passwordStep(browser, plain, 'prober');
      assert.equal(page.status, 429, 'the fifth wrong code locked the account');
      assert.ok(Number(page.headers.get('retry-after')) > 0);
    });

    test('once the account is locked, a code page opened before the lock checks no code, not even the right one', async () => {
      await createUser('opener', true);
      const enrolling = new CookieClient();
      const { secret: openerSecret } = await enroll(enrolling, (await passwordStep(enrolling, plain, 'opener')).html);
      clock.advanceSteps();
      const valid = new Set([-1, 0, 1].map((offset) => totpCode(openerSecret, clock.now(), offset)));
      const wrongCodes = Array.from({ length: 8 }, (_, i) => String(300001 + i)).filter((c) => !valid.has(c));
      // Two attempts past the password before any failure: the attacker's way around "five per attempt".
      const spare = new CookieClient();
      const { html: spareHtml } = await passwordStep(spare, plain, 'opener');
      const guessing = new CookieClient();
      let { html } = await passwordStep(guessing, plain, 'opener');
      for (const wrong of wrongCodes.slice(0, 5)) html = await (await submitCode(guessing, html, wrong)).text();
      assert.match(html, /Too many wrong codes/);
      const refused = await submitCode(spare, spareHtml, code(openerSecret));
      assert.equal(refused.status, 429, 'locked: the code is not checked');
      assert.ok(Number(refused.headers.get('retry-after')) > 0);
      const page = await refused.text();
      assert.match(page, CODE_PAGE);
      assert.match(page, /Too many failed attempts/);
      // The code was not consumed: no time step was accepted for it.
      const { rows } = await server.db.query<{ step: string }>(
        'SELECT last_time_step::text AS step FROM user_totp WHERE user_id = (SELECT id FROM users WHERE username = $1)',
        ['opener'],
      );
      assert.ok(Number(rows[0]!.step) < Math.floor(clock.now() / 30_000), 'the refused code did not use up its time step');
    });
  });

  describe('a code replayed on two instances at once', { skip: postgresUrl === undefined ? 'needs PostgreSQL (TEST_DATABASE_URL): two instances cannot share a PGlite database' : false }, () => {
    let two: TestServer;
    let secret: string;
    before(async () => {
      // Instances behind one load balancer share the issuer, the database and MASTER_KEY.
      two = await startTestServer({ database: server.database, env: { MASTER_KEY: server.masterKey, ISSUER: server.issuer } });
      await createUser('twice', true);
      const browser = new CookieClient();
      const { html } = await passwordStep(browser, plain, 'twice');
      ({ secret } = await enroll(browser, html));
    });
    after(() => two?.close());

    test('the same valid code on both instances, concurrently, for two sign-ins of the same user: exactly one succeeds', async () => {
      clock.advanceSteps();
      const sessions = await Promise.all(
        [server.url, two.url].map(async (base) => {
          const browser = new CookieClient();
          const { auth, html } = await passwordStep(browser, plain, 'twice', {}, base);
          assert.match(html, CODE_PAGE);
          return { base, browser, auth, html };
        }),
      );
      const value = code(secret);
      const results = await Promise.all(sessions.map(({ browser, html, base }) => submitCode(browser, html, value, base)));
      const statuses = results.map((r) => r.status);
      assert.equal(results.filter(isRedirect).length, 1, `one success, got ${statuses.join(', ')}`);
      assert.equal(results.filter((r) => r.status === 401).length, 1, `one refusal, got ${statuses.join(', ')}`);
      const winner = results.findIndex(isRedirect);
      const { claims } = await idToken(plain, await callbackOf(sessions[winner]!.browser, results[winner]!), sessions[winner]!.auth);
      assert.equal(claims['acr'], ACR_MFA);
    });
  });

  describe('audit', () => {
    test('enrollment, recovery-code use, reset and failures are recorded, without any secret or code', async () => {
      const { rows } = await server.db.query<Record<string, unknown>>('SELECT * FROM audit_events ORDER BY id');
      const types = new Set(rows.map((row) => row['type']));
      for (const type of ['mfa.enrolled', 'mfa.recovery_code_used', 'mfa.reset', 'mfa.failure']) assert.ok(types.has(type), `${type} recorded`);
      assert.ok(secrets.size >= 3 && recoveryCodes.size >= 30 && typedCodes.size >= 5);
      for (const row of rows) {
        const type = String(row['type']);
        const text = JSON.stringify(row);
        for (const secret of secrets) assert.ok(!text.includes(secret), `${type} holds a TOTP secret`);
        for (const recovery of recoveryCodes) {
          assert.ok(!text.includes(recovery) && !text.includes(recovery.replace('-', '')), `${type} holds a recovery code`);
        }
        // Six digits could occur by chance in an id or timestamp; what was typed must not be in the details.
        const details = JSON.stringify(row['details']);
        for (const typed of typedCodes) assert.ok(!details.includes(typed), `${type} holds a code typed at sign-in`);
      }
    });
  });
});
