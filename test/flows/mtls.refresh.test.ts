import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { decodeJwt } from 'jose';
import * as oidc from 'openid-client';
import { adminCall, adminToken, createResourceServer } from '../support/admin-api.js';
import { CookieClient } from '../support/cookie-client.js';
import { commandAvailable } from '../support/gateway.js';
import { createPki, type Issued, type Pki } from '../support/pki.js';
import { pkceParams, signIn } from '../support/sign-in.js';
import { startTestServer, type TestServer } from '../support/server.js';

/**
 * SPEC §8: "refresh and introspection keep the binding". A confidential client authenticating
 * with tls_client_auth signs a person in with the code flow (openid-client); its tokens, and
 * those every refresh yields, carry cnf.x5t#S256 of its certificate. Gatehouse sits behind a
 * TLS-terminating proxy here, which passes the certificate in RFC 9440's Client-Cert header:
 * the test plays the proxy (the real ones are in test/integration/mtls.proxy.test.ts).
 */

const REDIRECT = 'http://127.0.0.1:9/mtls-callback';
const ORDERS = 'https://orders.mtls-refresh.example';
const PASSWORD = 'correct horse battery staple';
const opensslAvailable = await commandAvailable('openssl', ['version']);

const thumbprint = (issued: Issued) => createHash('sha256').update(issued.certificate.raw).digest('base64url');

describe('certificate-bound tokens through the code flow and refresh', { skip: opensslAvailable ? false : 'needs openssl' }, () => {
  let pki: Pki;
  let cert: Issued;
  let other: Issued;
  let server: TestServer;
  let clientId: string;
  let tokens: oidc.TokenEndpointResponse & oidc.TokenEndpointResponseHelpers;

  /** openid-client as the client behind the proxy, which adds the certificate it presented. */
  async function configWith(presented: Issued): Promise<oidc.Configuration> {
    const config = await oidc.discovery(new URL(server.issuer), clientId, undefined, oidc.TlsClientAuth(), { execute: [oidc.allowInsecureRequests] });
    config[oidc.customFetch] = (url, init) => {
      const headers = new Headers(init.headers);
      headers.set('client-cert', `:${presented.certificate.raw.toString('base64')}:`);
      return fetch(url, { ...init, headers } as RequestInit);
    };
    return config;
  }

  before(async () => {
    pki = await createPki();
    [cert, other] = await Promise.all([pki.issue('webapp', '/O=Example/CN=web app'), pki.issue('other', '/O=Example/CN=other app')]);
    server = await startTestServer({ env: { TRUST_PROXY: 'true', CLIENT_CERT_HEADER: 'client-cert', TLS_CLIENT_CA_FILE: pki.ca.certFile } });
    const admin = await adminToken(server, 'admin:clients admin:resource-servers admin:users');
    await createResourceServer(server, { identifier: ORDERS, name: 'Orders', scopes: ['orders:read'] }, admin);
    assert.equal((await adminCall(server, 'POST', '/users', { username: 'mtls-person', password: PASSWORD }, admin)).status, 201);
    const client = await adminCall<{ client_id: string }>(
      server,
      'POST',
      '/clients',
      {
        client_name: 'mTLS web app',
        grant_types: ['authorization_code', 'refresh_token'],
        redirect_uris: [REDIRECT],
        token_endpoint_auth_method: 'tls_client_auth',
        tls_client_auth_subject_dn: 'CN=web app,O=Example',
        tls_client_certificate_bound_access_tokens: true,
        scope: 'openid offline_access orders:read',
        allowed_resources: [ORDERS],
        first_party: true,
      },
      admin,
    );
    assert.equal(client.status, 201, JSON.stringify(client.body));
    clientId = client.body.client_id;
    const config = await configWith(cert);
    const { verifier, state, nonce, params } = await pkceParams(REDIRECT, 'openid offline_access orders:read', { prompt: 'consent', resource: ORDERS });
    const { callback } = await signIn(new CookieClient(), config, server.url, params, { username: 'mtls-person', password: PASSWORD });
    tokens = await oidc.authorizationCodeGrant(config, callback, { pkceCodeVerifier: verifier, expectedState: state, expectedNonce: nonce }, { resource: ORDERS });
  });
  after(async () => {
    await server?.close();
    await pki?.close();
  });

  test('the code exchange binds the resource server token to the certificate', () => {
    assert.equal(decodeJwt(tokens.access_token).aud, ORDERS);
    assert.deepEqual(decodeJwt(tokens.access_token)['cnf'], { 'x5t#S256': thumbprint(cert) });
    assert.ok(tokens.refresh_token);
  });

  test('every refresh keeps the binding, and introspection shows it', async () => {
    const config = await configWith(cert);
    const refreshed = await oidc.refreshTokenGrant(config, tokens.refresh_token!, { resource: ORDERS, scope: 'orders:read' });
    assert.deepEqual(decodeJwt(refreshed.access_token)['cnf'], { 'x5t#S256': thumbprint(cert) });
    const again = await oidc.refreshTokenGrant(config, refreshed.refresh_token!, { resource: ORDERS, scope: 'orders:read' });
    assert.deepEqual(decodeJwt(again.access_token)['cnf'], { 'x5t#S256': thumbprint(cert) });
    const introspection = await oidc.tokenIntrospection(config, again.access_token);
    assert.equal(introspection.active, true);
    assert.equal(introspection.token_type, 'Bearer');
    assert.deepEqual(introspection.cnf, { 'x5t#S256': thumbprint(cert) });
    tokens = again;
  });

  test('the refresh token with another certificate, or none, gets nothing', async () => {
    await assert.rejects(oidc.refreshTokenGrant(await configWith(other), tokens.refresh_token!), (error: unknown) => error instanceof oidc.ResponseBodyError && error.error === 'invalid_client');
    const bare = await oidc.discovery(new URL(server.issuer), clientId, undefined, oidc.TlsClientAuth(), { execute: [oidc.allowInsecureRequests] });
    await assert.rejects(oidc.refreshTokenGrant(bare, tokens.refresh_token!), (error: unknown) => error instanceof oidc.ResponseBodyError && error.error === 'invalid_client');
  });
});
