import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import * as oidc from 'openid-client';
import { adminCall, adminToken, introspectToken } from '../support/admin-api.js';
import { CookieClient } from '../support/cookie-client.js';
import { pkceParams, signIn } from '../support/sign-in.js';
import { startTestServer, type TestServer } from '../support/server.js';

/**
 * SPEC §2: introspection answers `active: true` only to the token's own client or to a client
 * allowed for the token's resource server. The review found that any confidential client could
 * introspect other clients' refresh tokens and opaque access tokens (issue 13 item 7); JWT access
 * tokens already had the rule (test/flows/introspection.test.ts).
 */

const REDIRECT = 'http://127.0.0.1:9/callback';
const PASSWORD = 'correct horse battery staple';
const ORDERS = 'https://orders.foreign-introspection.example';
const OTHER = 'https://other.foreign-introspection.example';

interface Client {
  client_id: string;
  client_secret: string;
}

describe('introspection of refresh tokens and opaque access tokens by other clients', () => {
  let server: TestServer;
  let plain: Client;
  let ordersApp: Client;
  let ordersService: Client;
  let stranger: Client;

  async function introspect(caller: Client, token: string): Promise<Record<string, unknown>> {
    const { status, body } = await introspectToken(server, caller, token);
    assert.equal(status, 200);
    return body;
  }

  async function makeClient(body: Record<string, unknown>): Promise<Client> {
    const created = await adminCall<Client>(server, 'POST', '/clients', body, await adminToken(server, 'admin:clients'));
    assert.equal(created.status, 201, JSON.stringify(created.body));
    return created.body;
  }

  /** A person signs in to `client`; the tokens its code buys (with `resource`, if given). */
  async function personTokens(client: Client, scope: string, resource?: string): Promise<{ access: string; refresh: string }> {
    const config = await oidc.discovery(new URL(server.issuer), client.client_id, client.client_secret, undefined, { execute: [oidc.allowInsecureRequests] });
    const extra: Record<string, string> = resource === undefined ? {} : { resource };
    const { verifier, state, nonce, params } = await pkceParams(REDIRECT, scope, { prompt: 'consent', ...extra });
    const { callback } = await signIn(new CookieClient(), config, server.url, params, { username: 'reader', password: PASSWORD });
    const tokens = await oidc.authorizationCodeGrant(config, callback, { pkceCodeVerifier: verifier, expectedState: state, expectedNonce: nonce }, extra);
    assert.ok(tokens.refresh_token, 'offline_access with consent yields a refresh token');
    return { access: tokens.access_token, refresh: tokens.refresh_token };
  }

  before(async () => {
    server = await startTestServer();
    const token = await adminToken(server, 'admin:resource-servers admin:users');
    for (const identifier of [ORDERS, OTHER]) {
      assert.equal((await adminCall(server, 'POST', '/resource-servers', { identifier, name: identifier, scopes: ['read'] }, token)).status, 201);
    }
    assert.equal((await adminCall(server, 'POST', '/users', { username: 'reader', password: PASSWORD }, token)).status, 201);
    const code = { grant_types: ['authorization_code', 'refresh_token'], redirect_uris: [REDIRECT] };
    plain = await makeClient({ client_name: 'Plain app', ...code, scope: 'openid offline_access' });
    ordersApp = await makeClient({ client_name: 'Orders app', ...code, scope: 'openid offline_access read', allowed_resources: [ORDERS] });
    ordersService = await makeClient({ client_name: 'Orders service', grant_types: ['client_credentials'], allowed_resources: [ORDERS] });
    stranger = await makeClient({ client_name: 'Stranger', grant_types: ['client_credentials'], allowed_resources: [OTHER] });
  });
  after(() => server?.close());

  test("a refresh token and an opaque (userinfo) access token: active to their own client, inactive to another confidential client", async () => {
    const { access, refresh } = await personTokens(plain, 'openid offline_access');
    assert.notEqual(access.split('.').length, 3, 'without a resource the access token is the opaque userinfo token');
    assert.equal((await introspect(plain, refresh))['active'], true);
    assert.equal((await introspect(plain, access))['active'], true);
    for (const caller of [stranger, ordersService, ordersApp]) {
      assert.deepEqual(await introspect(caller, refresh), { active: false }, `refresh token to ${caller.client_id}`);
      assert.deepEqual(await introspect(caller, access), { active: false }, `access token to ${caller.client_id}`);
    }
  });

  test("a refresh token for a resource server: active to a client allowed for that server, inactive to others", async () => {
    const { refresh } = await personTokens(ordersApp, 'openid offline_access read', ORDERS);
    assert.equal((await introspect(ordersApp, refresh))['active'], true);
    assert.equal((await introspect(ordersService, refresh))['active'], true, 'a client allowed for the orders server');
    assert.deepEqual(await introspect(stranger, refresh), { active: false });
    assert.deepEqual(await introspect(plain, refresh), { active: false });
  });
});
