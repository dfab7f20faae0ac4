import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import * as oidc from 'openid-client';
import { startTestServer, type TestServer } from '../support/server.js';

describe('discovery through a real OpenID client', () => {
  let server: TestServer;
  let metadata: oidc.ServerMetadata;

  before(async () => {
    server = await startTestServer();
    const config = await oidc.discovery(new URL(server.issuer), server.admin.clientId, server.admin.clientSecret, undefined, {
      execute: [oidc.allowInsecureRequests],
    });
    metadata = config.serverMetadata();
  });
  after(() => server.close());

  test('the issuer is the configured one and endpoints sit under it', () => {
    assert.equal(metadata.issuer, server.issuer);
    for (const endpoint of [
      metadata.authorization_endpoint,
      metadata.token_endpoint,
      metadata.jwks_uri,
      metadata.userinfo_endpoint,
      metadata.introspection_endpoint,
      metadata.revocation_endpoint,
      metadata.end_session_endpoint,
    ]) {
      assert.ok(endpoint?.startsWith(`${server.issuer}/`), String(endpoint));
    }
  });

  test('advertises exactly what SPEC §2 supports', () => {
    assert.deepEqual([...(metadata.grant_types_supported ?? [])].sort(), ['authorization_code', 'client_credentials', 'refresh_token']);
    assert.deepEqual(metadata.response_types_supported, ['code']);
    assert.deepEqual(metadata.code_challenge_methods_supported, ['S256']);
    assert.deepEqual([...(metadata.token_endpoint_auth_methods_supported ?? [])].sort(), [
      'client_secret_basic',
      'client_secret_post',
      'none',
      'private_key_jwt',
    ]);
    assert.equal(metadata.dpop_signing_alg_values_supported, undefined);
    assert.equal(metadata.pushed_authorization_request_endpoint, undefined);
    assert.equal(metadata.registration_endpoint, undefined);
  });

  test('the OAuth authorization server metadata (RFC 8414) path agrees', async () => {
    const response = await fetch(`${server.url}/.well-known/openid-configuration`);
    assert.equal(response.status, 200);
    assert.match(response.headers.get('content-type') ?? '', /application\/json/);
  });
});

describe('client credentials with the bootstrap admin client', () => {
  let server: TestServer;
  let config: oidc.Configuration;

  before(async () => {
    server = await startTestServer();
    config = await oidc.discovery(new URL(server.issuer), server.admin.clientId, server.admin.clientSecret, undefined, {
      execute: [oidc.allowInsecureRequests],
    });
  });
  after(() => server.close());

  test('issues an at+jwt for the admin resource with the requested scopes', async () => {
    const tokens = await oidc.clientCredentialsGrant(config, { scope: 'admin:clients admin:keys' });
    assert.equal(tokens.token_type.toLowerCase(), 'bearer');
    assert.equal(tokens.scope, 'admin:clients admin:keys');
    const [header, payload] = tokens.access_token.split('.').slice(0, 2).map((part) => JSON.parse(Buffer.from(part, 'base64url').toString()) as Record<string, unknown>);
    assert.equal(header!['typ'], 'at+jwt');
    assert.equal(header!['alg'], 'ES256');
    assert.equal(payload!['aud'], `${server.issuer}/admin`);
    assert.equal(payload!['iss'], server.issuer);
    assert.equal(payload!['client_id'], server.admin.clientId);
    assert.equal(payload!['sub'], server.admin.clientId);
  });

  test('a wrong secret is invalid_client', async () => {
    const wrong = await oidc.discovery(new URL(server.issuer), server.admin.clientId, `${server.admin.clientSecret}x`, undefined, {
      execute: [oidc.allowInsecureRequests],
    });
    await assert.rejects(oidc.clientCredentialsGrant(wrong, { scope: 'admin:clients' }), (error: unknown) => {
      assert.ok(error instanceof oidc.ResponseBodyError);
      assert.equal(error.error, 'invalid_client');
      assert.equal(error.status, 401);
      return true;
    });
  });

  test('a resource the client may not use is invalid_target (RFC 8707)', async () => {
    await assert.rejects(oidc.clientCredentialsGrant(config, { resource: 'https://elsewhere.example' }), (error: unknown) => {
      assert.ok(error instanceof oidc.ResponseBodyError);
      assert.equal(error.error, 'invalid_target');
      return true;
    });
  });

  test('the bootstrap client is stored with a hash, never the secret', async () => {
    const { rows } = await server.db.query<{ client_secret_hash: string }>('SELECT client_secret_hash FROM clients WHERE client_id = $1', [
      server.admin.clientId,
    ]);
    assert.equal(rows.length, 1);
    assert.match(rows[0]!.client_secret_hash, /^hmac-sha256\$/);
    assert.ok(!rows[0]!.client_secret_hash.includes(server.admin.clientSecret));
  });
});
