import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import * as oidc from 'openid-client';
import { startTestServer, type TestServer } from '../support/server.js';

/** SPEC §2's client authentication methods, the tls_* ones from §8. */
const SPEC_AUTH_METHODS = ['client_secret_basic', 'client_secret_post', 'private_key_jwt', 'tls_client_auth', 'self_signed_tls_client_auth', 'none'];
const IMPLEMENTED_AUTH_METHODS = [...SPEC_AUTH_METHODS].sort();

/** Every string in a JSON value that is an http(s) URL, with the member it sits in. */
function urlsIn(value: unknown, path = ''): { path: string; url: string }[] {
  if (typeof value === 'string') return /^https?:\/\//i.test(value) ? [{ path, url: value }] : [];
  if (Array.isArray(value)) return value.flatMap((item, index) => urlsIn(item, `${path}[${index}]`));
  if (value !== null && typeof value === 'object') return Object.entries(value).flatMap(([key, item]) => urlsIn(item, path === '' ? key : `${path}.${key}`));
  return [];
}

async function fetchJson(url: string): Promise<{ status: number; contentType: string; body: Record<string, unknown> }> {
  const response = await fetch(url);
  return { status: response.status, contentType: response.headers.get('content-type') ?? '', body: (await response.json()) as Record<string, unknown> };
}

describe('discovery through a real OpenID client', () => {
  let server: TestServer;
  let metadata: oidc.ServerMetadata;
  /** The document as served at the issuer's OpenID Connect well-known path, parsed by nobody else. */
  let document: Record<string, unknown>;

  before(async () => {
    server = await startTestServer();
    const config = await oidc.discovery(new URL(server.issuer), server.admin.clientId, server.admin.clientSecret, undefined, {
      execute: [oidc.allowInsecureRequests],
    });
    metadata = config.serverMetadata();
    const served = await fetchJson(`${server.issuer}/.well-known/openid-configuration`);
    assert.equal(served.status, 200);
    document = served.body;
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
    assert.deepEqual([...(metadata.grant_types_supported ?? [])].sort(), [
      'authorization_code',
      'client_credentials',
      'refresh_token',
      'urn:ietf:params:oauth:grant-type:device_code',
      'urn:ietf:params:oauth:grant-type:token-exchange',
    ]);
    assert.deepEqual(metadata.response_types_supported, ['code']);
    assert.deepEqual(metadata.code_challenge_methods_supported, ['S256']);
    assert.deepEqual([...(metadata.token_endpoint_auth_methods_supported ?? [])].sort(), [
      'client_secret_basic',
      'client_secret_post',
      'none',
      'private_key_jwt',
      'self_signed_tls_client_auth',
      'tls_client_auth',
    ]);
    // SPEC §8: DPoP proofs with asymmetric algorithms only (RFC 9449 §4.2).
    assert.deepEqual([...(metadata.dpop_signing_alg_values_supported ?? [])].sort(), ['ES256', 'EdDSA', 'Ed25519', 'PS256', 'RS256'].sort());
    assert.equal(metadata.tls_client_certificate_bound_access_tokens, true);
    // RFC 8705 §5: no aliases while no client certificate can reach this instance (no CA, no header).
    assert.equal(metadata.mtls_endpoint_aliases, undefined);
    // SPEC §12: pushed authorization requests (RFC 9126), test/flows/par.test.ts.
    assert.equal(metadata.pushed_authorization_request_endpoint, `${server.issuer}/request`);
    // SPEC §12: the device grant (RFC 8628), test/flows/device-grant.test.ts.
    assert.equal(metadata.device_authorization_endpoint, `${server.issuer}/device/auth`);
    assert.equal(metadata.registration_endpoint, undefined);
  });

  test('the OAuth authorization server metadata (RFC 8414) path agrees', async () => {
    // RFC 8414 §3: the metadata is at the issuer with /.well-known/oauth-authorization-server
    // inserted; §5 lets OpenID providers serve it at openid-configuration too. Both must say the same.
    const rfc8414 = await fetchJson(`${server.issuer}/.well-known/oauth-authorization-server`);
    assert.equal(rfc8414.status, 200);
    assert.match(rfc8414.contentType, /^application\/json\b/);
    assert.deepEqual(rfc8414.body, document);
    const openid = await fetchJson(`${server.issuer}/.well-known/openid-configuration`);
    assert.match(openid.contentType, /^application\/json\b/);
    assert.deepEqual(openid.body, document);
  });

  test('issuer is identical to ISSUER, the URL the well-known path was appended to (RFC 8414 §3.3, OIDC Discovery §4.3)', () => {
    assert.equal(document['issuer'], server.issuer);
    const issuer = new URL(String(document['issuer']));
    // RFC 8414 §2: no query or fragment.
    assert.equal(issuer.search, '');
    assert.equal(issuer.hash, '');
  });

  test('has every member OpenID Connect Discovery §3 and RFC 8414 §2 require', () => {
    for (const member of ['authorization_endpoint', 'token_endpoint', 'jwks_uri']) {
      assert.equal(typeof document[member], 'string', member);
      assert.doesNotThrow(() => new URL(String(document[member])), member);
    }
    for (const member of ['response_types_supported', 'subject_types_supported', 'id_token_signing_alg_values_supported']) {
      const values = document[member];
      assert.ok(Array.isArray(values) && values.length > 0 && values.every((value) => typeof value === 'string'), `${member}: ${JSON.stringify(values)}`);
    }
    const subjectTypes = document['subject_types_supported'] as string[];
    assert.ok(subjectTypes.every((type) => type === 'public' || type === 'pairwise'), subjectTypes.join());
    const idTokenAlgs = document['id_token_signing_alg_values_supported'] as string[];
    // OIDC Discovery §3: RS256 MUST be included; `none` would be unsigned ID tokens.
    assert.ok(idTokenAlgs.includes('RS256'), idTokenAlgs.join());
    assert.ok(!idTokenAlgs.includes('none'), idTokenAlgs.join());
  });

  test('token_endpoint_auth_methods_supported is the SPEC §2 methods implemented today, with their signing algorithms', () => {
    const methods = document['token_endpoint_auth_methods_supported'] as string[];
    assert.ok(
      methods.every((method) => SPEC_AUTH_METHODS.includes(method)),
      `outside SPEC §2: ${methods.filter((m) => !SPEC_AUTH_METHODS.includes(m)).join()}`,
    );
    assert.deepEqual([...methods].sort(), IMPLEMENTED_AUTH_METHODS);
    // RFC 8414 §2: present when private_key_jwt is, and never `none`.
    const algs = document['token_endpoint_auth_signing_alg_values_supported'];
    assert.ok(Array.isArray(algs) && algs.length > 0, JSON.stringify(algs));
    assert.ok(!(algs as string[]).includes('none'));
  });

  test('PKCE is S256 only; no implicit or hybrid response type, no implicit grant (SPEC §2, RFC 9700 §2.1.2)', () => {
    assert.deepEqual(document['code_challenge_methods_supported'], ['S256']);
    const responseTypes = document['response_types_supported'] as string[];
    // Any response type carrying `token` or `id_token` returns tokens from the authorization endpoint.
    for (const type of responseTypes) {
      const parts = type.split(' ');
      assert.ok(!parts.includes('token') && !parts.includes('id_token'), `implicit or hybrid response type advertised: ${type}`);
    }
    assert.ok(!(document['grant_types_supported'] as string[]).includes('implicit'));
  });

  test('every URL in the document starts with the issuer (SPEC §1)', () => {
    const urls = urlsIn(document);
    // authorization, token, jwks, userinfo, introspection, revocation, end-session at least.
    assert.ok(urls.length >= 7, JSON.stringify(urls));
    const elsewhere = urls.filter(({ url }) => url !== server.issuer && !url.startsWith(`${server.issuer}/`));
    assert.deepEqual(elsewhere, []);
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
