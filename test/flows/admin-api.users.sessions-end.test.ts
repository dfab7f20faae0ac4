import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import * as oidc from 'openid-client';
import { adminApi, adminToken, assertAudited, type AdminApi } from '../support/admin-api.js';
import { CookieClient, formAction, hiddenField } from '../support/cookie-client.js';
import { startTestServer, type TestServer } from '../support/server.js';
import { pkceParams, startAuthorization, submitLogin } from '../support/sign-in.js';
import { totpCode } from '../support/totp.js';

/**
 * SPEC §4: "A password set by an admin, a removed second factor or a disabled user ends that
 * person's sessions, grants and refresh tokens at once." The review reset a person's password
 * (and, for another, removed the second factor) through the admin API; the browser session still
 * signed in silently and the refresh token still minted tokens.
 */

const REDIRECT = 'http://127.0.0.1:9/callback';
const PASSWORD = 'correct horse battery staple';
const NEW_PASSWORD = 'another horse, another staple';

const isRedirect = (response: Response) => response.status >= 300 && response.status < 400;

function redirectToClient(response: Response): URL {
  assert.ok(isRedirect(response), `expected a redirect to the client, got ${response.status}`);
  const location = new URL(response.headers.get('location')!);
  assert.equal(location.origin + location.pathname, REDIRECT);
  return location;
}

describe('an admin password reset or second-factor removal ends the person’s sessions and refresh tokens', () => {
  let server: TestServer;
  let api: AdminApi;
  let config: oidc.Configuration;

  async function createUser(username: string, mfaRequired: boolean): Promise<string> {
    const created = await api.request<{ id: string }>('POST', '/users', { json: { username, password: PASSWORD, mfa_required: mfaRequired } });
    assert.equal(created.status, 201, created.text);
    return created.body.id;
  }

  /** Posts the code form on `html` with `code`; follows redirects on the server. */
  async function submitCode(browser: CookieClient, html: string, code: string): Promise<Response> {
    const action = formAction(html, /\/second-factor$/);
    assert.ok(action, 'a code form');
    return browser.follow(await browser.postForm(new URL(action, server.url), { csrf: hiddenField(html, 'csrf') ?? '', code }), server.url);
  }

  /**
   * A browser signs in (enrolling TOTP on the way when the person must use it), consents, and the
   * client exchanges the code: a live session in `browser` and a refresh token.
   */
  async function signedIn(username: string, password = PASSWORD): Promise<{ browser: CookieClient; refreshToken: string }> {
    const browser = new CookieClient();
    const { verifier, state, nonce, params } = await pkceParams(REDIRECT, 'openid offline_access', { prompt: 'consent' });
    const login = await startAuthorization(browser, config, server.url, params);
    let page = await submitLogin(browser, server.url, await login.text(), { username, password });
    let html = isRedirect(page) ? '' : await page.text();
    if (/otpauth:\/\//.test(html)) {
      const uri = /href="(otpauth:\/\/totp\/[^"]+)"/.exec(html)![1]!.replaceAll('&amp;', '&');
      const shown = await submitCode(browser, html, totpCode(new URL(uri).searchParams.get('secret')!));
      assert.equal(shown.status, 200, 'the recovery codes page');
      page = await submitCode(browser, await shown.text(), '');
      html = isRedirect(page) ? '' : await page.text();
    }
    if (/Allow access/.test(html)) {
      const action = formAction(html, /\/consent$/);
      assert.ok(action, 'a consent form');
      page = await browser.follow(await browser.postForm(new URL(action, server.url), { csrf: hiddenField(html, 'csrf') ?? '' }), server.url);
    }
    const callback = redirectToClient(page);
    const tokens = await oidc.authorizationCodeGrant(config, callback, { pkceCodeVerifier: verifier, expectedState: state, expectedNonce: nonce });
    assert.ok(tokens.refresh_token, 'offline_access with consent yields a refresh token');
    return { browser, refreshToken: tokens.refresh_token };
  }

  /** prompt=none: a code when the browser's session is alive, login_required when it is not. */
  async function silentAuthorization(browser: CookieClient): Promise<string | null> {
    const { params } = await pkceParams(REDIRECT, 'openid', { prompt: 'none' });
    const location = redirectToClient(await startAuthorization(browser, config, server.url, params));
    return location.searchParams.get('error');
  }

  async function assertSignedIn(session: { browser: CookieClient; refreshToken: string }): Promise<string> {
    assert.equal(await silentAuthorization(session.browser), null, 'the session signs in silently');
    const refreshed = await oidc.refreshTokenGrant(config, session.refreshToken);
    assert.ok(refreshed.refresh_token);
    return refreshed.refresh_token;
  }

  async function assertSignedOut(browser: CookieClient, refreshToken: string): Promise<void> {
    await assert.rejects(oidc.refreshTokenGrant(config, refreshToken), (error: unknown) => error instanceof oidc.ResponseBodyError && error.error === 'invalid_grant');
    assert.equal(await silentAuthorization(browser), 'login_required', 'the session is over');
  }

  before(async () => {
    server = await startTestServer();
    api = adminApi(server, await adminToken(server, 'admin:clients admin:users admin:audit'));
    const client = await api.request<{ client_id: string; client_secret: string }>('POST', '/clients', {
      json: { client_name: 'Shop', grant_types: ['authorization_code', 'refresh_token'], redirect_uris: [REDIRECT], scope: 'openid offline_access' },
    });
    assert.equal(client.status, 201, client.text);
    config = await oidc.discovery(new URL(server.issuer), client.body.client_id, client.body.client_secret, undefined, { execute: [oidc.allowInsecureRequests] });
  });
  after(() => server?.close());

  test('PATCH password: the refresh token is invalid_grant and prompt=none needs a login again; the new password signs in', async () => {
    const id = await createUser('reset-me', false);
    const session = await signedIn('reset-me');
    const refreshToken = await assertSignedIn(session);
    const bystander = await signedIn('reset-me');

    const reset = await api.request('PATCH', `/users/${id}`, { json: { password: NEW_PASSWORD } });
    assert.equal(reset.status, 200, reset.text);
    await assertSignedOut(session.browser, refreshToken);
    await assertSignedOut(bystander.browser, bystander.refreshToken);
    const event = await assertAudited(server, reset.requestId, 'user.password_changed', id);
    assert.ok((event.details['revoked_artifacts'] as number) >= 4, `sessions, grants and refresh tokens revoked: ${JSON.stringify(event.details)}`);
    const { rows } = await server.db.query<{ n: number }>('SELECT count(*)::int AS n FROM oidc_models WHERE account_id = $1', [id]);
    assert.equal(rows[0]!.n, 0, 'nothing of the person is left in the provider’s storage');
    await assertSignedIn(await signedIn('reset-me', NEW_PASSWORD));
  });

  test('DELETE /users/{id}/mfa: the refresh token is invalid_grant and prompt=none needs a login again', async () => {
    const id = await createUser('lost-phone', true);
    const session = await signedIn('lost-phone');
    const refreshToken = await assertSignedIn(session);

    const removed = await api.request('DELETE', `/users/${id}/mfa`);
    assert.equal(removed.status, 204, removed.text);
    await assertSignedOut(session.browser, refreshToken);
    const event = await assertAudited(server, removed.requestId, 'mfa.reset', id);
    assert.ok((event.details['revoked_artifacts'] as number) >= 2, JSON.stringify(event.details));
  });

  test('another person’s session and refresh token are untouched', async () => {
    await createUser('bystander', false);
    const target = await createUser('target', false);
    const other = await signedIn('bystander');
    assert.equal((await api.request('PATCH', `/users/${target}`, { json: { password: NEW_PASSWORD } })).status, 200);
    assert.equal((await api.request('DELETE', `/users/${target}/mfa`)).status, 204);
    await assertSignedIn(other);
  });
});
