import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK } from 'jose';
import * as oidc from 'openid-client';
import { createClientStore } from '../../src/db/clients.js';
import { adminApi, adminToken, assertInvalid, createResourceServer, uniqueName, type AdminApi, type ClientBody } from '../support/admin-api.js';
import { startTestServer, type TestServer } from '../support/server.js';

/**
 * SPEC §2: "A jwks_uri is fetched with a timeout, a size limit and a cache (failures cached too),
 * never on a private address unless ALLOW_PRIVATE_JWKS_URI." The JWKS servers here are real HTTP
 * servers on loopback counting connections and requests. The admin API insists on https; clients
 * whose jwks_uri is plain http on loopback are written with the clients store directly, as the
 * property under test is the fetch, not the registration.
 */

interface JwksServer {
  readonly port: number;
  readonly counts: { connections: number; requests: Map<string, number> };
  requestsFor(path: string): number;
  close(): Promise<void>;
}

async function startJwksServer(handle: (req: IncomingMessage, res: ServerResponse) => void): Promise<JwksServer> {
  const counts = { connections: 0, requests: new Map<string, number>() };
  const server: Server = createServer((req, res) => {
    counts.requests.set(req.url ?? '', (counts.requests.get(req.url ?? '') ?? 0) + 1);
    handle(req, res);
  });
  server.on('connection', () => {
    counts.connections += 1;
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    counts,
    requestsFor: (path) => counts.requests.get(path) ?? 0,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

interface Key {
  readonly kid: string;
  readonly privateKey: CryptoKey;
  readonly publicJwk: JWK;
}

async function signingKey(): Promise<Key> {
  const kid = `worker-${randomUUID()}`;
  const { privateKey, publicKey } = await generateKeyPair('ES256');
  return { kid, privateKey, publicJwk: { ...(await exportJWK(publicKey)), kid, alg: 'ES256', use: 'sig' } };
}

/** A private_key_jwt client with this jwks_uri, written straight to the clients table. */
async function insertKeyedClient(server: TestServer, jwksUri: string, resource: string): Promise<string> {
  const clientId = uniqueName('keyed');
  await createClientStore(server.db).insert({
    clientId,
    clientName: clientId,
    clientSecretHash: null,
    metadata: {
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
      token_endpoint_auth_method: 'private_key_jwt',
      post_logout_redirect_uris: [],
      scope: 'orders:read',
      jwks_uri: jwksUri,
    },
    allowedResources: [resource],
    requireMfa: false,
  });
  return clientId;
}

/** RFC 7523 client assertion + client-credentials request; returns status and body. */
async function tokenWithAssertion(server: TestServer, clientId: string, key: Key, resource: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const assertion = await new SignJWT({})
    .setProtectedHeader({ alg: 'ES256', kid: key.kid })
    .setIssuer(clientId)
    .setSubject(clientId)
    .setAudience(server.issuer)
    .setJti(randomUUID())
    .setIssuedAt()
    .setExpirationTime('1m')
    .sign(key.privateKey);
  const response = await fetch(`${server.url}/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({
      grant_type: 'client_credentials',
      client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
      client_assertion: assertion,
      scope: 'orders:read',
      resource,
    }),
  });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

describe('client jwks_uri: no private addresses (ALLOW_PRIVATE_JWKS_URI off, the default)', () => {
  let server: TestServer;
  let api: AdminApi;
  let resource: string;
  let key: Key;

  before(async () => {
    server = await startTestServer();
    const token = await adminToken(server, 'admin:clients admin:resource-servers');
    api = adminApi(server, token);
    resource = `https://${uniqueName('orders')}.example.com`;
    await createResourceServer(server, { identifier: resource, name: 'Orders', scopes: ['orders:read'] }, token);
    key = await signingKey();
  });
  after(() => server?.close());

  test('registration refuses a jwks_uri on a loopback, private, link-local, ULA, multicast or unspecified host (400, field jwks_uri)', async () => {
    const refused = [
      'https://127.0.0.1:8443/jwks',
      'https://127.1.2.3/jwks',
      'https://0x7f.1/jwks', // WHATWG URL spells this 127.0.0.1
      'https://localhost/jwks',
      'https://keys.localhost/jwks',
      'https://[::1]/jwks',
      'https://[::ffff:127.0.0.1]/jwks',
      'https://[::ffff:10.0.0.1]/jwks',
      'https://10.20.30.40/jwks',
      'https://172.16.0.1/jwks',
      'https://192.168.1.1/jwks',
      'https://169.254.169.254/latest/meta-data',
      'https://100.64.0.1/jwks',
      'https://0.0.0.0/jwks',
      'https://[::]/jwks',
      'https://224.0.0.1/jwks',
      'https://[ff02::1]/jwks',
      'https://[fe80::1]/jwks',
      'https://[fd12:3456::1]/jwks',
    ];
    for (const jwksUri of refused) {
      const response = await api.request('POST', '/clients', {
        json: { client_name: uniqueName('ssrf'), grant_types: ['client_credentials'], token_endpoint_auth_method: 'private_key_jwt', jwks_uri: jwksUri, allowed_resources: [resource] },
      });
      assert.equal(response.status, 400, `${jwksUri}: ${response.text}`);
      assertInvalid(response, '#/jwks_uri');
    }

    // A public name is accepted (nothing is fetched at registration) and cannot be patched to a private one.
    const created = await api.request<ClientBody>('POST', '/clients', {
      json: { client_name: uniqueName('ok'), grant_types: ['client_credentials'], token_endpoint_auth_method: 'private_key_jwt', jwks_uri: 'https://keys.example.com/jwks', allowed_resources: [resource] },
    });
    assert.equal(created.status, 201, created.text);
    const patched = await api.request('PATCH', `/clients/${created.body.client_id}`, { json: { jwks_uri: 'https://127.0.0.1/jwks' } });
    assertInvalid(patched, '#/jwks_uri');
  });

  test('a jwks_uri whose name resolves to loopback is never dialled: invalid_client and zero connections', async () => {
    const jwks = await startJwksServer((_req, res) => res.end(JSON.stringify({ keys: [key.publicJwk] })));
    try {
      // `localhost` is a name: the fetch finds it is loopback only by resolving it.
      const byName = await insertKeyedClient(server, `http://localhost:${jwks.port}/jwks`, resource);
      const byAddress = await insertKeyedClient(server, `http://127.0.0.1:${jwks.port}/jwks`, resource);
      for (const clientId of [byName, byAddress]) {
        const answer = await tokenWithAssertion(server, clientId, key, resource);
        assert.equal(answer.status, 401, JSON.stringify(answer.body));
        assert.equal(answer.body['error'], 'invalid_client');
      }
      assert.equal(jwks.counts.connections, 0, 'the loopback JWKS server was connected to');
    } finally {
      await jwks.close();
    }
  });
});

describe('client jwks_uri: fetch limits (ALLOW_PRIVATE_JWKS_URI=true, loopback allowed)', () => {
  let server: TestServer;
  let api: AdminApi;
  let resource: string;
  let key: Key;
  let jwks: JwksServer;

  before(async () => {
    server = await startTestServer({ env: { ALLOW_PRIVATE_JWKS_URI: 'true' } });
    const token = await adminToken(server, 'admin:clients admin:resource-servers');
    api = adminApi(server, token);
    resource = `https://${uniqueName('orders')}.example.com`;
    await createResourceServer(server, { identifier: resource, name: 'Orders', scopes: ['orders:read'] }, token);
    key = await signingKey();
    const body = JSON.stringify({ keys: [key.publicJwk] });
    jwks = await startJwksServer((req, res) => {
      switch (req.url) {
        case '/jwks':
          res.writeHead(200, { 'content-type': 'application/json' });
          return res.end(body);
        case '/huge':
          // A valid key set, padded past the size limit: without a limit it would verify.
          res.writeHead(200, { 'content-type': 'application/json' });
          return res.end(JSON.stringify({ keys: [key.publicJwk], padding: 'x'.repeat(1024 * 1024) }));
        case '/slow':
          // Headers never come; the fetch must give up on its own.
          return;
        case '/not-json':
          res.writeHead(200, { 'content-type': 'application/json' });
          return res.end('{"keys": [');
        case '/reset':
          return req.socket.destroy();
        default:
          res.writeHead(404);
          return res.end();
      }
    });
  });
  after(async () => {
    await jwks?.close();
    await server?.close();
  });

  test('a real private_key_jwt client-credentials flow works against a loopback jwks_uri; registration accepts it', async () => {
    const registered = await api.request('POST', '/clients', {
      json: { client_name: uniqueName('dev'), grant_types: ['client_credentials'], token_endpoint_auth_method: 'private_key_jwt', jwks_uri: `https://127.0.0.1:${jwks.port}/jwks`, allowed_resources: [resource] },
    });
    assert.equal(registered.status, 201, registered.text);

    const clientId = await insertKeyedClient(server, `http://127.0.0.1:${jwks.port}/jwks`, resource);
    const config = await oidc.discovery(new URL(server.issuer), clientId, undefined, oidc.PrivateKeyJwt({ key: key.privateKey, kid: key.kid }), {
      execute: [oidc.allowInsecureRequests],
    });
    const tokens = await oidc.clientCredentialsGrant(config, { scope: 'orders:read', resource });
    assert.equal(typeof tokens.access_token, 'string');
    assert.equal(jwks.requestsFor('/jwks'), 1);
    // The key set is cached: a second token costs no fetch.
    await oidc.clientCredentialsGrant(config, { scope: 'orders:read', resource });
    assert.equal(jwks.requestsFor('/jwks'), 1);
  });

  test('a jwks_uri answering with a body over the size limit is refused (invalid_client)', async () => {
    const clientId = await insertKeyedClient(server, `http://127.0.0.1:${jwks.port}/huge`, resource);
    const answer = await tokenWithAssertion(server, clientId, key, resource);
    assert.equal(answer.status, 401, JSON.stringify(answer.body));
    assert.equal(answer.body['error'], 'invalid_client');
    assert.equal(jwks.requestsFor('/huge'), 1, 'the JWKS was fetched (and refused for its size)');
  });

  test('a jwks_uri that never answers fails within the timeout (invalid_client, a few seconds)', async () => {
    const clientId = await insertKeyedClient(server, `http://127.0.0.1:${jwks.port}/slow`, resource);
    const started = performance.now();
    const answer = await tokenWithAssertion(server, clientId, key, resource);
    const elapsed = performance.now() - started;
    assert.equal(answer.status, 401, JSON.stringify(answer.body));
    assert.equal(answer.body['error'], 'invalid_client');
    assert.equal(jwks.requestsFor('/slow'), 1, 'the JWKS was asked for');
    assert.ok(elapsed < 6_000, `took ${Math.round(elapsed)} ms`);
  });

  for (const path of ['/not-json', '/reset']) {
    test(`a failing jwks_uri (${path}) is fetched once for a burst of 20 parallel token requests and the requests after it`, async () => {
      const clientId = await insertKeyedClient(server, `http://127.0.0.1:${jwks.port}${path}`, resource);
      const burst = await Promise.all(Array.from({ length: 20 }, () => tokenWithAssertion(server, clientId, key, resource)));
      for (const answer of burst) assert.equal(answer.body['error'], 'invalid_client', JSON.stringify(answer.body));
      for (let i = 0; i < 5; i += 1) {
        assert.equal((await tokenWithAssertion(server, clientId, key, resource)).body['error'], 'invalid_client');
      }
      assert.equal(jwks.requestsFor(path), 1, `fetched ${jwks.requestsFor(path)} times`);
    });
  }
});
