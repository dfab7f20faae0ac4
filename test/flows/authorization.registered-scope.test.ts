import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import * as oidc from 'openid-client';
import { adminCall, adminToken } from '../support/admin-api.js';
import { CookieClient } from '../support/cookie-client.js';
import { pkceParams } from '../support/sign-in.js';
import { startTestServer, type TestServer } from '../support/server.js';

/**
 * A client's registered `scope` bounds the OpenID scopes it may ask people for, too (issue 13
 * item 1, "does a scope anywhere else widen what a client gets?"). oidc-provider only knows the
 * OpenID part of a registered scope; a client that registered resource scopes alone used to
 * carry none there, which the provider reads as "no restriction": it could ask for `email`,
 * `profile` and `offline_access` it never registered.
 */

const REDIRECT = 'http://127.0.0.1:9/callback';
const ORDERS = 'https://orders.registered-scope.example';

describe('the registered scope bounds OpenID scopes at the authorization endpoint', () => {
  let server: TestServer;

  async function configFor(scope: string | undefined): Promise<oidc.Configuration> {
    const body: Record<string, unknown> = {
      client_name: `Scoped ${scope ?? 'unrestricted'}`,
      grant_types: ['authorization_code', 'refresh_token'],
      redirect_uris: [REDIRECT],
      allowed_resources: [ORDERS],
    };
    if (scope !== undefined) body['scope'] = scope;
    const created = await adminCall<{ client_id: string; client_secret: string }>(server, 'POST', '/clients', body, await adminToken(server, 'admin:clients'));
    assert.equal(created.status, 201, JSON.stringify(created.body));
    return oidc.discovery(new URL(server.issuer), created.body.client_id, created.body.client_secret, undefined, { execute: [oidc.allowInsecureRequests] });
  }

  /** Where /auth sends the browser for `scope`: the login page (200) or an error back to the client. */
  async function authorize(config: oidc.Configuration, scope: string): Promise<{ status: number; error: string | null }> {
    const { params } = await pkceParams(REDIRECT, scope);
    const browser = new CookieClient();
    const page = await browser.follow(await browser.get(oidc.buildAuthorizationUrl(config, params)), server.url);
    await page.text();
    const location = page.headers.get('location');
    return { status: page.status, error: location === null ? null : new URL(location).searchParams.get('error') };
  }

  before(async () => {
    server = await startTestServer();
    const created = await adminCall(server, 'POST', '/resource-servers', { identifier: ORDERS, name: 'Orders', scopes: ['orders:read'] }, await adminToken(server, 'admin:resource-servers'));
    assert.equal(created.status, 201);
  });
  after(() => server?.close());

  test('a client that registered only resource scopes cannot ask for openid, email, profile or offline_access', async () => {
    const config = await configFor('orders:read');
    for (const scope of ['openid', 'openid email', 'openid profile orders:read', 'openid offline_access']) {
      assert.deepEqual(await authorize(config, scope), { status: 303, error: 'invalid_scope' }, scope);
    }
  });

  test('a client that registered some OpenID scopes may ask for those and no others', async () => {
    const config = await configFor('openid orders:read');
    assert.equal((await authorize(config, 'openid orders:read')).status, 200, 'the login page');
    assert.deepEqual(await authorize(config, 'openid email'), { status: 303, error: 'invalid_scope' });
  });

  test('a client without a registered scope is not restricted (SPEC §2)', async () => {
    const config = await configFor(undefined);
    assert.equal((await authorize(config, 'openid email profile orders:read')).status, 200, 'the login page');
  });
});
