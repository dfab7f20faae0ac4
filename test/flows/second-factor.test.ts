import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { compactDecrypt, exportJWK, generateKeyPair, type CryptoKey as JoseKey } from 'jose';
import * as oidc from 'openid-client';
import { adminCall, adminToken } from '../support/admin-api.js';
import { CookieClient, formAction, hiddenField } from '../support/cookie-client.js';
import { startTestServer, type TestServer } from '../support/server.js';
import { pkceParams, startAuthorization, submitLogin } from '../support/sign-in.js';
import { totpCode } from '../support/totp.js';

const REDIRECT = 'http://127.0.0.1:9/callback';
const ORDERS = 'https://orders.mfa.example';
const PASSWORD = 'correct horse battery staple';

describe('second factor: enrollment during sign-in, codes, recovery codes, amr/acr', () => {
  let server: TestServer;
  let config: oidc.Configuration;
  let innerKey: JoseKey;
  let userId: string;
  let secret: string;
  let recoveryCodes: string[];

  async function submitCode(browser: CookieClient, html: string, code: string): Promise<Response> {
    const action = formAction(html, /\/second-factor$/);
    assert.ok(action, 'a code form');
    return browser.follow(await browser.postForm(new URL(action, server.url), { csrf: hiddenField(html, 'csrf') ?? '', code }), server.url);
  }

  async function passwordStep(browser: CookieClient, extra: Record<string, string> = {}) {
    const auth = await pkceParams(REDIRECT, 'openid profile', { resource: ORDERS, ...extra });
    const login = await startAuthorization(browser, config, server.url, auth.params);
    const page = await submitLogin(browser, server.url, await login.text(), { username: 'mfa-user', password: PASSWORD });
    return { auth, page };
  }

  before(async () => {
    server = await startTestServer();
    const pair = await generateKeyPair('ECDH-ES+A256KW', { crv: 'P-256' });
    innerKey = pair.privateKey;
    assert.equal((await adminCall(server, 'POST', '/resource-servers', { identifier: ORDERS, name: 'Orders', scopes: ['orders:read'], inner_encryption_jwk: await exportJWK(pair.publicKey) })).status, 201);
    const client = await adminCall<{ client_id: string; client_secret: string }>(server, 'POST', '/clients', {
      client_name: 'Vault',
      grant_types: ['authorization_code', 'refresh_token'],
      redirect_uris: [REDIRECT],
      allowed_resources: [ORDERS],
      first_party: true,
    });
    assert.equal(client.status, 201);
    const user = await adminCall<{ id: string }>(server, 'POST', '/users', { username: 'mfa-user', password: PASSWORD, mfa_required: true }, await adminToken(server, 'admin:users'));
    assert.equal(user.status, 201);
    userId = user.body.id;
    config = await oidc.discovery(new URL(server.issuer), client.body.client_id, client.body.client_secret, undefined, { execute: [oidc.allowInsecureRequests] });
  });
  after(() => server.close());

  test('a user who must use a second factor enrolls right after the password step', async () => {
    const browser = new CookieClient();
    const { auth, page } = await passwordStep(browser);
    assert.equal(page.status, 200);
    const html = await page.text();
    assert.match(html, /Set up two-step verification/);
    assert.match(html, /<svg/);
    const uri = /href="(otpauth:\/\/totp\/[^"]+)"/.exec(html)?.[1]?.replaceAll('&amp;', '&');
    assert.ok(uri, 'the otpauth URI as a link');
    secret = new URL(uri).searchParams.get('secret')!;
    assert.equal(secret.length, 32, '160-bit secret in base32');
    // A wrong code does not activate the factor.
    const wrong = await submitCode(browser, html, '000000' === totpCode(secret) ? '111111' : '000000');
    assert.equal(wrong.status, 401);
    const retry = await wrong.text();
    // The right code (from an independent RFC 6238 implementation) activates it and shows recovery codes once.
    const confirmed = await submitCode(browser, retry, totpCode(secret));
    assert.equal(confirmed.status, 200);
    const codesPage = await confirmed.text();
    recoveryCodes = [...codesPage.matchAll(/<li><code>([A-Z0-9-]+)<\/code><\/li>/g)].map((m) => m[1]!);
    assert.equal(recoveryCodes.length, 10);
    const done = await submitCode(browser, codesPage, '');
    assert.ok(done.status >= 300 && done.status < 400);
    const callback = new URL(done.headers.get('location')!);
    const tokens = await oidc.authorizationCodeGrant(config, callback, { pkceCodeVerifier: auth.verifier, expectedState: auth.state, expectedNonce: auth.nonce });
    const claims = tokens.claims()!;
    assert.equal(claims['acr'], 'urn:gatehouse:acr:mfa');
    assert.deepEqual(claims['amr'], ['pwd', 'otp']);
    const stored = await server.db.query<{ secret_sealed: string }>('SELECT secret_sealed FROM user_totp WHERE user_id = $1', [userId]);
    assert.ok(!stored.rows[0]!.secret_sealed.includes(secret), 'the secret is sealed at rest');
    const user = await adminCall<{ mfa_enrolled: boolean }>(server, 'GET', `/users/${userId}`, undefined, await adminToken(server, 'admin:users'));
    assert.equal(user.body.mfa_enrolled, true);
  });

  test('signing in again asks for a fresh code; a replayed code is refused; the next step is accepted', async () => {
    const browser = new CookieClient();
    const { auth, page } = await passwordStep(browser);
    const html = await page.text();
    assert.match(html, /Two-step verification/);
    // The code accepted at enrollment belongs to a time step already used: replay refused.
    const { rows } = await server.db.query<{ step: string }>('SELECT last_time_step::text AS step FROM user_totp WHERE user_id = $1', [userId]);
    const usedStepMs = Number(rows[0]!.step) * 30_000;
    const replay = await submitCode(browser, html, totpCode(secret, usedStepMs));
    assert.equal(replay.status, 401);
    const next = await replay.text();
    const accepted = await submitCode(browser, next, totpCode(secret, Date.now(), 1));
    assert.ok(accepted.status >= 300 && accepted.status < 400, `a code for the next step (within ±1) is accepted, got ${accepted.status}`);
    const tokens = await oidc.authorizationCodeGrant(config, new URL(accepted.headers.get('location')!), {
      pkceCodeVerifier: auth.verifier,
      expectedState: auth.state,
      expectedNonce: auth.nonce,
    });
    assert.equal(tokens.claims()!['acr'], 'urn:gatehouse:acr:mfa');
    assert.deepEqual(tokens.claims()!['amr'], ['pwd', 'otp']);
  });

  test('a recovery code works once, in the code field', async () => {
    for (const attempt of [0, 1]) {
      const browser = new CookieClient();
      const { page } = await passwordStep(browser);
      const result = await submitCode(browser, await page.text(), recoveryCodes[0]!.toLowerCase());
      if (attempt === 0) assert.ok(result.status >= 300 && result.status < 400, 'first use signs in');
      else assert.equal(result.status, 401, 'second use is refused');
    }
    const { rows } = await server.db.query("SELECT 1 FROM audit_events WHERE type = 'mfa.recovery_code_used' AND target = $1", [userId]);
    assert.equal(rows.length, 1);
  });

  test('five wrong codes end the sign-in attempt', async () => {
    const browser = new CookieClient();
    const { page } = await passwordStep(browser);
    let html = await page.text();
    let response: Response | undefined;
    for (let i = 0; i < 5; i += 1) {
      response = await submitCode(browser, html, '12345' + String(i));
      html = await response.text();
    }
    assert.equal(response!.status, 401);
    assert.match(html, /name="password"/, 'back to the password step');
    assert.match(html, /Too many wrong codes/);
    await server.db.query("DELETE FROM login_throttle WHERE key LIKE 'account:%'");
  });

  test('an admin reset removes the factor; the next sign-in enrolls again', async () => {
    const reset = await adminCall(server, 'DELETE', `/users/${userId}/mfa`, undefined, await adminToken(server, 'admin:users'));
    assert.equal(reset.status, 204);
    const browser = new CookieClient();
    const { page } = await passwordStep(browser);
    assert.match(await page.text(), /Set up two-step verification/);
    const { rows } = await server.db.query("SELECT 1 FROM audit_events WHERE type = 'mfa.reset' AND target = $1", [userId]);
    assert.equal(rows.length, 1);
  });

  test('inner layer carries amr with otp', async () => {
    // Fresh enrollment for the reset user, then a token for the API straight from the code exchange.
    const browser = new CookieClient();
    const { auth, page } = await passwordStep(browser, { scope: 'openid orders:read' });
    const html = await page.text();
    const uri = /href="(otpauth:\/\/totp\/[^"]+)"/.exec(html)![1]!.replaceAll('&amp;', '&');
    secret = new URL(uri).searchParams.get('secret')!;
    const codes = await submitCode(browser, html, totpCode(secret));
    const done = await submitCode(browser, await codes.text(), '');
    const tokens = await oidc.authorizationCodeGrant(
      config,
      new URL(done.headers.get('location')!),
      { pkceCodeVerifier: auth.verifier, expectedState: auth.state, expectedNonce: auth.nonce },
      { resource: ORDERS },
    );
    const payload = JSON.parse(Buffer.from(tokens.access_token.split('.')[1]!, 'base64url').toString()) as Record<string, unknown>;
    assert.equal(payload['aud'], ORDERS);
    assert.equal(payload['acr'], 'urn:gatehouse:acr:mfa');
    const inner = JSON.parse(new TextDecoder().decode((await compactDecrypt(payload['inner'] as string, innerKey)).plaintext)) as Record<string, unknown>;
    assert.deepEqual(inner['amr'], ['pwd', 'otp']);
  });
});
