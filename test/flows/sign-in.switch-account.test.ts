import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import * as oidc from 'openid-client';
import { adminCall, adminToken } from '../support/admin-api.js';
import { CookieClient, formAction, hiddenField } from '../support/cookie-client.js';
import { pkceParams, signIn, startAuthorization, submitLogin } from '../support/sign-in.js';
import { startTestServer, type TestServer } from '../support/server.js';

/**
 * Switching account in a signed-in browser (issue 13 item 13): signing in as someone else makes
 * the provider end the first person's session, which revokes their grants. The interaction in
 * flight carries the first person's grant id; revoking the grant used to delete it too, so the
 * sign-in ended in "interaction session not found" instead of continuing as the second person.
 */

const REDIRECT = 'http://127.0.0.1:9/callback';
const PASSWORD = 'correct horse battery staple';

describe('switching account in a signed-in browser', () => {
  let server: TestServer;
  let config: oidc.Configuration;

  before(async () => {
    server = await startTestServer();
    const users = await adminToken(server, 'admin:users');
    for (const username of ['first-person', 'second-person']) {
      const created = await adminCall(server, 'POST', '/users', { username, password: PASSWORD }, users);
      assert.equal(created.status, 201, JSON.stringify(created.body));
    }
    // Not first-party: consent creates a grant, and the next interaction for this client carries it.
    const client = await adminCall<{ client_id: string; client_secret: string }>(
      server,
      'POST',
      '/clients',
      { client_name: 'Switching', grant_types: ['authorization_code'], redirect_uris: [REDIRECT], scope: 'openid' },
      await adminToken(server, 'admin:clients'),
    );
    assert.equal(client.status, 201, JSON.stringify(client.body));
    config = await oidc.discovery(new URL(server.issuer), client.body.client_id, client.body.client_secret, undefined, { execute: [oidc.allowInsecureRequests] });
  });
  after(() => server?.close());

  async function subjectOf(callback: URL, verifier: string, state: string, nonce: string): Promise<string> {
    const tokens = await oidc.authorizationCodeGrant(config, callback, { pkceCodeVerifier: verifier, expectedState: state, expectedNonce: nonce });
    return tokens.claims()!.sub;
  }

  async function userId(username: string): Promise<string> {
    const { rows } = await server.db.query<{ id: string }>('SELECT id FROM users WHERE username = $1', [username]);
    return rows[0]!.id;
  }

  test('signing in as another person ends the first session and continues as the second person', async () => {
    const browser = new CookieClient();
    const first = await pkceParams(REDIRECT, 'openid');
    const firstSignIn = await signIn(browser, config, server.url, first.params, { username: 'first-person', password: PASSWORD });
    assert.equal(await subjectOf(firstSignIn.callback, first.verifier, first.state, first.nonce), await userId('first-person'));

    const second = await pkceParams(REDIRECT, 'openid', { prompt: 'login' });
    const loginPage = await startAuthorization(browser, config, server.url, second.params);
    assert.equal(loginPage.status, 200);
    const afterLogin = await submitLogin(browser, server.url, await loginPage.text(), { username: 'second-person', password: PASSWORD });

    // The provider asks the browser to end the first person's session (an auto-submitted form).
    assert.equal(afterLogin.status, 200);
    const logoutForm = await afterLogin.text();
    const confirm = formAction(logoutForm, /\/session\/end\/confirm$/);
    assert.ok(confirm, `the end-session form, got: ${logoutForm.slice(0, 300)}`);
    const ended = await browser.follow(
      await browser.postForm(new URL(confirm, server.url), { xsrf: hiddenField(logoutForm, 'xsrf') ?? '', logout: hiddenField(logoutForm, 'logout') ?? '' }),
      server.url,
    );

    // Then the same sign-in goes on: the second person consents to the client for the first time.
    const consent = await ended.text();
    assert.doesNotMatch(consent, /interaction session not found|Something went wrong/i);
    assert.equal(ended.status, 200, 'the consent page, not an error');
    assert.match(consent, /Allow access/);
    const action = formAction(consent, /\/consent$/);
    assert.ok(action);
    const back = await browser.follow(await browser.postForm(new URL(action, server.url), { csrf: hiddenField(consent, 'csrf') ?? '' }), server.url);
    assert.equal(back.status, 303);
    const callback = new URL(back.headers.get('location')!);
    assert.equal(await subjectOf(callback, second.verifier, second.state, second.nonce), await userId('second-person'));
  });
});
