/// <reference lib="dom" />
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import * as oidc from 'openid-client';
import type { Browser, BrowserContext, CDPSession, Page } from 'playwright-core';
import { adminCall, adminToken } from '../support/admin-api.js';
import { assertAccessible, chromiumMissing, launchChromium, screenshots } from '../support/browser.js';
import { freePort, startTestServer, type TestServer } from '../support/server.js';

/**
 * Passkeys on the hosted pages (SPEC §4) in Debian's Chromium with a CDP virtual authenticator
 * (ctap2, internal, resident keys, user verification): registration during enrollment, a passkey
 * as the second factor and alone, and the refusals (no user verification, a cloned authenticator
 * whose counter went backwards, another origin or RP ID). The ID tokens come through a real
 * relying party (openid-client, code + PKCE + nonce). Debian's python3-fido2 verifies one
 * registration independently. The issuer is http://localhost:<port>: WebAuthn needs a domain as
 * RP ID (not an IP address) and a secure context (https, or localhost).
 */

const REDIRECT = 'http://127.0.0.1:8089/callback';
const PASSWORD = 'correct horse battery staple';
const PYTHON = '/usr/bin/python3';
const FIDO2_CHECK = fileURLToPath(new URL('../support/fido2_verify_registration.py', import.meta.url));
const fido2Missing = spawnSync(PYTHON, ['-c', 'import fido2'], { stdio: 'ignore' }).status === 0 ? false : 'python3-fido2 not installed for /usr/bin/python3';
const browserBundle = await readFile(new URL('../dist/bundle/index.umd.min.js', `file://${createRequire(import.meta.url).resolve('@simplewebauthn/browser')}`), 'utf8');

interface VirtualCredential {
  credentialId: string;
  isResidentCredential: boolean;
  rpId?: string;
  privateKey: string;
  userHandle?: string;
  signCount: number;
}

interface Authenticator {
  readonly cdp: CDPSession;
  readonly id: string;
  credentials(): Promise<VirtualCredential[]>;
}

/** A virtual platform authenticator for this tab (they are per tab), optionally holding `credentials`. */
async function addAuthenticator(page: Page, credentials: readonly VirtualCredential[] = [], options: { synced?: boolean } = {}): Promise<Authenticator> {
  const cdp = await page.context().newCDPSession(page);
  await cdp.send('WebAuthn.enable');
  const { authenticatorId } = await cdp.send('WebAuthn.addVirtualAuthenticator', {
    options: {
      protocol: 'ctap2',
      transport: 'internal',
      hasResidentKey: true,
      hasUserVerification: true,
      isUserVerified: true,
      automaticPresenceSimulation: true,
      // A synced passkey (a password manager's): backup eligible and backed up.
      ...(options.synced === true ? { defaultBackupEligibility: true, defaultBackupState: true } : {}),
    },
  });
  for (const credential of credentials) await cdp.send('WebAuthn.addCredential', { authenticatorId, credential });
  return {
    cdp,
    id: authenticatorId,
    credentials: async () => (await cdp.send('WebAuthn.getCredentials', { authenticatorId })).credentials,
  };
}

/**
 * A browser without conditional mediation (the login page then offers only the button). Chromium's
 * virtual authenticator answers a conditional request at once, as if the person had picked the
 * passkey from the username field's suggestions, so tests of the button (or of the password) turn it off.
 */
async function withoutConditionalUi(context: BrowserContext): Promise<void> {
  await context.addInitScript(() => {
    PublicKeyCredential.isConditionalMediationAvailable = () => Promise.resolve(false);
  });
}

describe('passkeys on the hosted pages in headless Chromium', { skip: chromiumMissing }, () => {
  let server: TestServer;
  let browser: Browser;
  let config: oidc.Configuration;
  let userId: string;
  /** The credential registered in the first test, as the virtual authenticator holds it. */
  let registered: VirtualCredential;
  /** What the first test captured for the independent check. */
  let registration: { challenge: string; response: unknown } | undefined;
  let onCallback: ((url: URL) => void) | undefined;
  const nextCallback = () => new Promise<URL>((resolve) => (onCallback = resolve));

  async function newContext(): Promise<BrowserContext> {
    // bypassCSP only so the test can inject axe-core; the pages load their own scripts under script-src 'self'.
    const context = await browser.newContext({ bypassCSP: true });
    await context.route('http://127.0.0.1:8089/**', async (route) => {
      onCallback?.(new URL(route.request().url()));
      await route.fulfill({ status: 200, contentType: 'text/plain', body: 'client callback' });
    });
    return context;
  }

  /** Opens an authorization request (code + PKCE + nonce); `tokens` exchanges the code the callback receives. */
  async function authorize(page: Page) {
    const verifier = oidc.randomPKCECodeVerifier();
    const state = oidc.randomState();
    const nonce = oidc.randomNonce();
    const url = oidc.buildAuthorizationUrl(config, {
      redirect_uri: REDIRECT,
      scope: 'openid profile',
      code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
      code_challenge_method: 'S256',
      state,
      nonce,
    });
    const callback = nextCallback();
    await page.goto(url.href);
    await page.waitForSelector('h1');
    return {
      async tokens() {
        const reached = await callback;
        const tokens = await oidc.authorizationCodeGrant(config, reached, { pkceCodeVerifier: verifier, expectedState: state, expectedNonce: nonce });
        return tokens.claims()!;
      },
    };
  }

  async function passwordStep(page: Page) {
    await page.fill('#username', 'erin');
    await page.fill('#password', PASSWORD);
    await page.press('#password', 'Enter');
    await page.waitForURL(/\/interaction\//);
  }

  const auditEvents = async (type: string) =>
    (await server.db.query<{ target: string; outcome: string; details: Record<string, unknown> }>('SELECT target, outcome, details FROM audit_events WHERE type = $1 ORDER BY id', [type])).rows;

  before(async () => {
    const port = await freePort();
    server = await startTestServer({ env: { PORT: String(port), ISSUER: `http://localhost:${port}` } });
    const token = await adminToken(server, 'admin:clients admin:users');
    const client = await adminCall<{ client_id: string; client_secret: string }>(
      server,
      'POST',
      '/clients',
      { client_name: 'Shop', grant_types: ['authorization_code'], redirect_uris: [REDIRECT], scope: 'openid profile', first_party: true },
      token,
    );
    assert.equal(client.status, 201, JSON.stringify(client.body));
    const user = await adminCall<{ id: string }>(server, 'POST', '/users', { username: 'erin', password: PASSWORD, mfa_required: true }, token);
    assert.equal(user.status, 201, JSON.stringify(user.body));
    userId = user.body.id;
    for (const username of ['frank', 'gina']) {
      const other = await adminCall(server, 'POST', '/users', { username, password: PASSWORD, mfa_required: true }, token);
      assert.equal(other.status, 201, JSON.stringify(other.body));
    }
    config = await oidc.discovery(new URL(server.issuer), client.body.client_id, client.body.client_secret, undefined, { execute: [oidc.allowInsecureRequests] });
    browser = await launchChromium();
  });
  after(async () => {
    await browser?.close();
    await server?.close();
  });

  test('enrollment offers a passkey or an authenticator app; a passkey is created, recovery codes follow, the ID token says hwk and mfa', async () => {
    const context = await newContext();
    const page = await context.newPage();
    const authenticator = await addAuthenticator(page);
    const flow = await authorize(page);
    await passwordStep(page);
    await page.waitForSelector('h1:has-text("Set up two-step verification")');
    // The page loads the passkey script under script-src 'self' (and nothing inline).
    const csp = (await page.request.get(page.url())).headers()['content-security-policy'] ?? '';
    assert.match(csp, /script-src 'self'/);
    assert.match(csp, /connect-src 'self'/);
    await page.waitForSelector('h2:has-text("Use a passkey")', { state: 'visible' });
    assert.ok(await page.locator('h2:has-text("Use an authenticator app")').isVisible(), 'the app remains a choice');
    await assertAccessible(page, 'enrollment page with the passkey choice');
    await screenshots(page, 'enroll-passkey');

    await page.fill('#passkey-name', 'Test laptop');
    // The options as the script received them (read before the page navigates on).
    let captured: unknown;
    await page.route('**/passkey/options', async (route) => {
      const response = await route.fetch();
      captured = await response.json();
      await route.fulfill({ response });
    });
    const posted = page.waitForRequest((r) => r.url().endsWith('/passkey/register') && r.method() === 'POST');
    await page.click('button:has-text("Create a passkey")');
    const form = new URLSearchParams((await posted).postData() ?? '');
    const optionsJson = captured as { challenge: string; rp: { id: string }; authenticatorSelection: Record<string, string>; pubKeyCredParams: { alg: number }[] };
    assert.equal(optionsJson.rp.id, 'localhost');
    assert.equal(optionsJson.authenticatorSelection['residentKey'], 'required');
    assert.equal(optionsJson.authenticatorSelection['userVerification'], 'required');
    assert.deepEqual(optionsJson.pubKeyCredParams.map((p) => p.alg), [-8, -7, -257]);
    registration = { challenge: optionsJson.challenge, response: JSON.parse(form.get('response') ?? 'null') };

    await page.waitForSelector('h1:has-text("Save your recovery codes")');
    assert.equal((await page.locator('.recovery-codes code').allTextContents()).length, 10);
    const rows = (await server.db.query<{ credential_id: string; name: string; sign_count: number; backed_up: boolean }>('SELECT credential_id, name, sign_count::int AS sign_count, backed_up FROM user_passkeys WHERE user_id = $1', [userId])).rows;
    assert.equal(rows.length, 1);
    assert.equal(rows[0]?.name, 'Test laptop');
    const held = await authenticator.credentials();
    assert.equal(held.length, 1);
    registered = held[0]!;
    assert.equal(registered.isResidentCredential, true, 'a discoverable credential');
    assert.equal(Buffer.from(registered.credentialId, 'base64').toString('base64url'), rows[0]?.credential_id);
    const enrolled = await auditEvents('mfa.enrolled');
    assert.equal(enrolled.at(-1)?.details['factor'], 'passkey');

    await page.click('button:has-text("I have saved them")');
    const claims = await flow.tokens();
    assert.deepEqual(claims['amr'], ['pwd', 'hwk', 'user']);
    assert.equal(claims['acr'], 'urn:gatehouse:acr:mfa');
    await context.close();
  });

  test('a synced passkey (backed up) is swk: the ID token says pwd, swk, user', async () => {
    const context = await newContext();
    const page = await context.newPage();
    await addAuthenticator(page, [], { synced: true });
    const flow = await authorize(page);
    await page.fill('#username', 'gina');
    await page.fill('#password', PASSWORD);
    await page.press('#password', 'Enter');
    await page.waitForSelector('button:has-text("Create a passkey")', { state: 'visible' });
    await page.click('button:has-text("Create a passkey")');
    await page.waitForSelector('h1:has-text("Save your recovery codes")');
    const row = (await server.db.query<{ backup_eligible: boolean; backed_up: boolean; name: string }>("SELECT p.backup_eligible, p.backed_up, p.name FROM user_passkeys p JOIN users u ON u.id = p.user_id WHERE u.username = 'gina'")).rows[0];
    assert.deepEqual(row, { backup_eligible: true, backed_up: true, name: 'Passkey' });
    await page.click('button:has-text("I have saved them")');
    const claims = await flow.tokens();
    assert.deepEqual(claims['amr'], ['pwd', 'swk', 'user']);
    assert.equal(claims['acr'], 'urn:gatehouse:acr:mfa');
    await context.close();
  });

  test('an independent relying party (python3-fido2) verifies the registration Chromium made against Gatehouse\'s challenge', { skip: fido2Missing }, () => {
    assert.ok(registration, 'the enrollment test captured a registration');
    const run = (origin: string) => {
      const result = spawnSync(PYTHON, [FIDO2_CHECK], { input: JSON.stringify({ rp_id: 'localhost', origin, ...registration }), encoding: 'utf8' });
      assert.equal(result.status, 0, result.stderr);
      return JSON.parse(result.stdout) as { ok: boolean; credential_id?: string; alg?: number; user_verified?: boolean; error?: string };
    };
    const verified = run(new URL(server.issuer).origin);
    assert.equal(verified.ok, true, verified.error);
    assert.equal(verified.credential_id, Buffer.from(registered.credentialId, 'base64').toString('base64url'));
    assert.equal(verified.alg, -8, 'Chromium\'s virtual authenticator chose EdDSA');
    assert.equal(verified.user_verified, true);
    // Not vacuous: the same check refuses another origin.
    assert.equal(run('https://evil.example').ok, false);
  });

  test('second factor: after the password, "Use a passkey"; the ID token says pwd, hwk, user and acr mfa', async () => {
    const context = await newContext();
    const page = await context.newPage();
    const flow = await authorize(page);
    await passwordStep(page);
    // Added now: on the login page, the browser would have offered the passkey in the username field.
    const authenticator = await addAuthenticator(page, [registered]);
    await page.waitForSelector('h1:has-text("Two-step verification")');
    await page.waitForSelector('button:has-text("Use a passkey")', { state: 'visible' });
    assert.ok(await page.locator('#code').isVisible(), 'codes are still accepted');
    await assertAccessible(page, 'second-factor page with a passkey');
    await screenshots(page, 'second-factor-passkey');
    await page.click('button:has-text("Use a passkey")');
    const claims = await flow.tokens();
    assert.deepEqual(claims['amr'], ['pwd', 'hwk', 'user']);
    assert.equal(claims['acr'], 'urn:gatehouse:acr:mfa');
    const success = (await auditEvents('login.success')).filter((e) => e.details['second_factor'] === 'passkey');
    assert.equal(success.length, 1);
    // The next test's authenticator holds the credential with its counter as it is now.
    registered = (await authenticator.credentials())[0]!;
    await context.close();
  });

  test('conditional UI: the browser offers the passkey in the username field and signs in without username or password', async () => {
    const context = await newContext();
    const page = await context.newPage();
    const authenticator = await addAuthenticator(page, [registered]);
    const flow = await authorize(page);
    // The virtual authenticator picks the offered passkey at once: nothing is typed or clicked.
    const failuresBefore = (await auditEvents('login.failure')).length;
    const claims = await flow.tokens();
    assert.equal((await auditEvents('login.failure')).length, failuresBefore, 'signed in at the first answer');
    assert.deepEqual(claims['amr'], ['hwk', 'user']);
    assert.equal(claims['acr'], 'urn:gatehouse:acr:mfa');
    assert.equal(claims.sub, userId);
    registered = (await authenticator.credentials())[0]!;
    await context.close();
  });

  test('"Sign in with a passkey": no username, no password; the ID token says hwk, user and acr mfa', async () => {
    const context = await newContext();
    await withoutConditionalUi(context);
    const page = await context.newPage();
    const authenticator = await addAuthenticator(page, [registered]);
    const flow = await authorize(page);
    await page.waitForSelector('h1:has-text("Sign in")');
    // Conditional UI where the browser has it: the username field asks for passkey suggestions.
    assert.equal(await page.getAttribute('#username', 'autocomplete'), 'username webauthn');
    await page.waitForSelector('button:has-text("Sign in with a passkey")', { state: 'visible' });
    await assertAccessible(page, 'login page with passkeys');
    await screenshots(page, 'login-passkey');
    await page.click('button:has-text("Sign in with a passkey")');
    const claims = await flow.tokens();
    assert.deepEqual(claims['amr'], ['hwk', 'user']);
    assert.equal(claims['acr'], 'urn:gatehouse:acr:mfa');
    assert.equal(claims.sub, userId);
    registered = (await authenticator.credentials())[0]!;
    await context.close();
  });

  test('user verification off: the password-less sign-in is refused, by the browser and by Gatehouse', async () => {
    const context = await newContext();
    await withoutConditionalUi(context);
    const page = await context.newPage();
    const authenticator = await addAuthenticator(page, [registered]);
    await authenticator.cdp.send('WebAuthn.setUserVerified', { authenticatorId: authenticator.id, isUserVerified: false });
    await authorize(page);
    await page.waitForSelector('button:has-text("Sign in with a passkey")', { state: 'visible' });
    await page.click('button:has-text("Sign in with a passkey")');
    // The options require user verification: Chromium refuses the ceremony itself.
    await page.waitForSelector('#passkey-error:not([hidden])');
    assert.match(page.url(), /\/interaction\//);

    // An assertion made without user verification (as a hostile page would ask for it) is refused by Gatehouse.
    const before = (await auditEvents('login.failure')).length;
    await page.evaluate(async () => {
      const form = document.querySelector<HTMLFormElement>('form[data-passkey="sign_in"]')!;
      const body = new URLSearchParams({ csrf: (form.elements.namedItem('csrf') as HTMLInputElement).value, ceremony: 'sign_in' });
      const options = (await (await fetch(form.getAttribute('data-options')!, { method: 'POST', body })).json()) as Record<string, unknown>;
      const webauthn = (window as unknown as { SimpleWebAuthnBrowser: { startAuthentication(o: unknown): Promise<unknown> } }).SimpleWebAuthnBrowser;
      const answer = await webauthn.startAuthentication({ optionsJSON: { ...options, userVerification: 'discouraged' } });
      (form.elements.namedItem('response') as HTMLInputElement).value = JSON.stringify(answer);
      HTMLFormElement.prototype.submit.call(form);
    });
    await page.waitForSelector('[role="alert"]:has-text("Sign-in with a passkey failed")');
    const failures = await auditEvents('login.failure');
    assert.equal(failures.length, before + 1);
    assert.equal(failures.at(-1)?.details['reason'], 'invalid');
    registered = (await authenticator.credentials())[0]!;
    await context.close();
  });

  test('a cloned authenticator whose counter is lower than the stored one is refused and audited', async () => {
    const stored = (await server.db.query<{ sign_count: number }>('SELECT sign_count::int AS sign_count FROM user_passkeys WHERE user_id = $1', [userId])).rows[0]!;
    assert.ok(stored.sign_count >= 2, `the passkey has been used (counter ${stored.sign_count})`);
    const context = await newContext();
    await withoutConditionalUi(context);
    const page = await context.newPage();
    await addAuthenticator(page, [{ ...registered, signCount: 0 }]);
    await authorize(page);
    await page.waitForSelector('button:has-text("Sign in with a passkey")', { state: 'visible' });
    await page.click('button:has-text("Sign in with a passkey")');
    await page.waitForSelector('[role="alert"]:has-text("Sign-in with a passkey failed")');
    const regressed = await auditEvents('passkey.counter_regressed');
    assert.equal(regressed.length, 1);
    assert.equal(regressed[0]?.target, userId);
    assert.equal(regressed[0]?.outcome, 'failure');
    assert.equal(regressed[0]?.details['stored_counter'], stored.sign_count);
    assert.ok((regressed[0]?.details['received_counter'] as number) <= stored.sign_count);
    const after = (await server.db.query<{ sign_count: number }>('SELECT sign_count::int AS sign_count FROM user_passkeys WHERE user_id = $1', [userId])).rows[0]!;
    assert.equal(after.sign_count, stored.sign_count, 'the stored counter did not move');
    await context.close();
  });

  test('another origin: its assertion (same RP ID) and a registration for another RP ID are refused', async () => {
    const context = await newContext();
    // Pages at other origins, served by the test: http://localhost:<other port> shares the RP ID
    // "localhost" but not the origin; https://evil.example is another RP ID altogether.
    const otherOrigin = `http://localhost:${await freePort()}`;
    for (const origin of [otherOrigin, 'https://evil.example']) {
      await context.route(`${origin}/**`, (route) => route.fulfill({ status: 200, contentType: 'text/html', body: '<!DOCTYPE html><title>elsewhere</title><p>elsewhere</p>' }));
    }
    const page = await context.newPage();
    await authorize(page);
    const elsewhere = await context.newPage();
    await addAuthenticator(elsewhere, [registered]);
    await elsewhere.goto(`${otherOrigin}/`);
    await elsewhere.addScriptTag({ content: browserBundle });
    const fetchOptions = (ceremony: string) =>
      page.evaluate(async (c) => {
        const form = document.querySelector<HTMLFormElement>('form[data-passkey]')!;
        const body = new URLSearchParams({ csrf: (form.elements.namedItem('csrf') as HTMLInputElement).value, ceremony: c });
        return (await (await fetch(form.getAttribute('data-options')!, { method: 'POST', body })).json()) as Record<string, unknown>;
      }, ceremony);
    const postAnswer = (answer: unknown) =>
      page.evaluate((json) => {
        const form = document.querySelector<HTMLFormElement>('form[data-passkey]')!;
        (form.elements.namedItem('response') as HTMLInputElement).value = json;
        HTMLFormElement.prototype.submit.call(form);
      }, JSON.stringify(answer));

    // 1. Gatehouse's sign-in challenge, signed by the right passkey on another origin.
    await page.waitForSelector('button:has-text("Sign in with a passkey")', { state: 'visible' });
    const signInOptions = await fetchOptions('sign_in');
    const assertion = await elsewhere.evaluate(async (optionsJSON) => {
      const webauthn = (window as unknown as { SimpleWebAuthnBrowser: { startAuthentication(o: unknown): Promise<unknown> } }).SimpleWebAuthnBrowser;
      return webauthn.startAuthentication({ optionsJSON });
    }, signInOptions);
    const before = (await auditEvents('login.failure')).length;
    await postAnswer(assertion);
    await page.waitForSelector('[role="alert"]:has-text("Sign-in with a passkey failed")');
    const failures = await auditEvents('login.failure');
    assert.equal(failures.length, before + 1);
    assert.equal(failures.at(-1)?.details['reason'], 'invalid', 'refused for its origin, not for want of a challenge');

    // 2. Enrollment for frank: a passkey created on https://evil.example (its RP ID) for Gatehouse's challenge.
    await page.fill('#username', 'frank');
    await page.fill('#password', PASSWORD);
    await page.press('#password', 'Enter');
    await page.waitForSelector('h1:has-text("Set up two-step verification")');
    await page.waitForSelector('button:has-text("Create a passkey")', { state: 'visible' });
    const registerOptions = await fetchOptions('register');
    const evil = await context.newPage();
    await addAuthenticator(evil);
    await evil.goto('https://evil.example/');
    await evil.addScriptTag({ content: browserBundle });
    const created = await evil.evaluate(async (optionsJSON) => {
      const webauthn = (window as unknown as { SimpleWebAuthnBrowser: { startRegistration(o: unknown): Promise<unknown> } }).SimpleWebAuthnBrowser;
      return webauthn.startRegistration({ optionsJSON: { ...optionsJSON, rp: { id: 'evil.example', name: 'evil' } } });
    }, registerOptions);
    await postAnswer(created);
    await page.waitForSelector('[role="alert"]:has-text("The passkey could not be added")');
    const frank = await server.db.query("SELECT 1 FROM user_passkeys p JOIN users u ON u.id = p.user_id WHERE u.username = 'frank'");
    assert.equal(frank.rows.length, 0, 'no passkey was stored for frank');
    await context.close();
  });

  test('a challenge is single use: the same answer posted twice at once signs in once', async () => {
    const context = await newContext();
    await withoutConditionalUi(context);
    const page = await context.newPage();
    await addAuthenticator(page, [registered]);
    await authorize(page);
    await page.waitForSelector('button:has-text("Sign in with a passkey")', { state: 'visible' });
    // The browser's post is held back; the test sends its body twice, in parallel, with the page's cookies.
    let held: { url: string; body: string } | undefined;
    let release: () => void = () => undefined;
    const captured = new Promise<void>((resolve) => (release = resolve));
    await page.route('**/passkey/sign-in', async (route) => {
      held = { url: route.request().url(), body: route.request().postData() ?? '' };
      await route.abort();
      release();
    });
    await page.click('button:has-text("Sign in with a passkey")');
    await captured;
    const form = Object.fromEntries(new URLSearchParams(held!.body));
    const answers = await Promise.all([0, 1].map(() => page.request.post(held!.url, { form, maxRedirects: 0 })));
    assert.deepEqual(answers.map((a) => a.status()).sort(), [303, 401], 'one sign-in, one refusal');
    const failures = await auditEvents('login.failure');
    assert.equal(failures.at(-1)?.details['reason'], 'no_challenge');
    await context.close();
  });
});
