import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { compactDecrypt, createRemoteJWKSet, decodeJwt, exportJWK, generateKeyPair, jwtVerify, type CryptoKey } from 'jose';
import { adminCall, adminToken, clientCredentials, createClient, createResourceServer } from './admin-api.js';
import { dpopClientCredentials, dpopKey, dpopProof, type DpopKey } from './dpop.js';
import { freePort, startTestServer, type TestServer } from './server.js';

/** What a gateway test set up: the protected site, tokens, and what its echo upstream saw. */
export interface GatewayUnderTest {
  readonly site: string;
  readonly clientId: string;
  /** A client-credentials token for the routes' resource server (or another one the client may use). */
  readonly token: (scope: string, resource?: string) => Promise<string>;
  /** The same, bound to `key` with DPoP (SPEC §8). */
  readonly dpopToken: (scope: string, key: DpopKey, resource?: string) => Promise<string>;
  /** The issuer, and the resource servers the exchange and reference routes name. */
  readonly issuer: string;
  readonly ledger: { readonly identifier: string; readonly innerKey: CryptoKey };
  readonly reference: string;
  readonly reached: { method: string; url: string; headers: Record<string, string | string[] | undefined> }[];
}

/**
 * SPEC §7's behaviour through a real gateway, the same for every door: with a route for GET
 * /orders (orders:read) and POST /orders (orders:write) on the site's host.
 */
export function gatewayBehaviourTests(env: () => GatewayUnderTest): void {
  test('a token with the route scope reaches the upstream with identity headers; a client-sent X-Gatehouse-* never does', async () => {
    env().reached.length = 0;
    const response = await fetch(`${env().site}/orders/42?x=1`, {
      headers: { authorization: `Bearer ${await env().token('orders:read')}`, 'x-gatehouse-subject': 'admin', 'x-gatehouse-roles': 'gatehouse:admin' },
    });
    assert.equal(response.status, 200);
    assert.equal(await response.text(), 'upstream');
    assert.equal(env().reached.length, 1);
    const { headers } = env().reached[0]!;
    assert.equal(headers['x-gatehouse-subject'], env().clientId);
    assert.equal(headers['x-gatehouse-client-id'], env().clientId);
    assert.equal(headers['x-gatehouse-scope'], 'orders:read');
    assert.equal(headers['x-gatehouse-roles'] ?? '', '', 'the client-sent roles header was overwritten');
  });

  test('no token: 401 with a Bearer challenge, and the upstream is not reached', async () => {
    env().reached.length = 0;
    const response = await fetch(`${env().site}/orders/42`);
    assert.equal(response.status, 401);
    assert.equal(response.headers.get('www-authenticate'), 'Bearer');
    const bad = await fetch(`${env().site}/orders/42`, { headers: { authorization: 'Bearer not-a-token' } });
    assert.equal(bad.status, 401);
    assert.match(bad.headers.get('www-authenticate') ?? '', /error="invalid_token"/);
    assert.equal(env().reached.length, 0);
  });

  test('a POST is checked as a POST: orders:read is not enough, orders:write is', async () => {
    env().reached.length = 0;
    const refused = await fetch(`${env().site}/orders`, { method: 'POST', headers: { authorization: `Bearer ${await env().token('orders:read')}` }, body: 'x' });
    assert.equal(refused.status, 403);
    assert.match(refused.headers.get('www-authenticate') ?? '', /error="insufficient_scope".*scope="orders:write"/);
    assert.equal(env().reached.length, 0);
    const allowed = await fetch(`${env().site}/orders`, { method: 'POST', headers: { authorization: `Bearer ${await env().token('orders:write')}` }, body: 'x' });
    assert.equal(allowed.status, 200);
    assert.equal(env().reached.at(-1)?.method, 'POST');
  });

  test('a pass route hands the upstream the caller’s own token, untouched', async () => {
    env().reached.length = 0;
    const token = await env().token('orders:read');
    assert.equal((await fetch(`${env().site}/orders/1`, { headers: { authorization: `Bearer ${token}` } })).status, 200);
    assert.equal(env().reached.at(-1)?.headers['authorization'], `Bearer ${token}`);
  });

  test('exchange: the upstream gets a short-lived double-wrapped token for its own resource server, inner layer to its key; remembered per token and route', async () => {
    const { ledger, issuer } = env();
    env().reached.length = 0;
    const original = await env().token('orders:read orders:write');
    const response = await fetch(`${env().site}/ledger/entries`, { headers: { authorization: `Bearer ${original}` } });
    assert.equal(response.status, 200);
    const forwarded = String(env().reached.at(-1)?.headers['authorization'] ?? '');
    assert.match(forwarded, /^Bearer [\w-]+\.[\w-]+\.[\w-]+$/);
    const exchanged = forwarded.slice('Bearer '.length);
    assert.notEqual(exchanged, original);
    // An independent check: jose against Gatehouse's published keys, for the upstream's audience.
    const { payload, protectedHeader } = await jwtVerify(exchanged, createRemoteJWKSet(new URL(`${issuer}/jwks`)), { issuer, audience: ledger.identifier, typ: 'at+jwt' });
    const originalClaims = decodeJwt(original);
    assert.equal(protectedHeader.typ, 'at+jwt');
    assert.equal(payload.sub, originalClaims.sub);
    assert.equal(payload['client_id'], originalClaims['client_id']);
    assert.equal(payload['scope'], 'orders:read', 'only the scopes the upstream resource server defines');
    const now = Math.floor(Date.now() / 1000);
    assert.ok(payload.exp! <= now + 60 && payload.exp! <= originalClaims.exp!, `exp ${payload.exp} within 60 s and not past the original's`);
    const inner = JSON.parse(new TextDecoder().decode((await compactDecrypt(String(payload['inner']), ledger.innerKey)).plaintext)) as Record<string, unknown>;
    assert.equal(inner['jti'], payload.jti);
    assert.equal(inner['client_id'], env().clientId);
    // The same caller again: the same exchanged token, not a new one per request.
    assert.equal((await fetch(`${env().site}/ledger/entries`, { headers: { authorization: `Bearer ${original}` } })).status, 200);
    assert.equal(env().reached.at(-1)?.headers['authorization'], forwarded);
  });

  test('reference tokens: opaque from /token, accepted by the gateway, swapped for a JWT on exchange routes; a made-up one is a 401', async () => {
    const { reference, ledger, issuer } = env();
    env().reached.length = 0;
    const opaque = await env().token('orders:read', reference);
    assert.doesNotMatch(opaque, /\./, 'nothing readable leaves');
    assert.equal((await fetch(`${env().site}/reference/1`, { headers: { authorization: `Bearer ${opaque}` } })).status, 200);
    assert.equal(env().reached.at(-1)?.headers['authorization'], `Bearer ${opaque}`);
    assert.equal(env().reached.at(-1)?.headers['x-gatehouse-client-id'], env().clientId);
    assert.equal((await fetch(`${env().site}/reference-exchange/1`, { headers: { authorization: `Bearer ${opaque}` } })).status, 200);
    const swapped = String(env().reached.at(-1)?.headers['authorization']).slice('Bearer '.length);
    const { payload } = await jwtVerify(swapped, createRemoteJWKSet(new URL(`${issuer}/jwks`)), { issuer, audience: ledger.identifier });
    assert.equal(payload['client_id'], env().clientId);
    const count = env().reached.length;
    assert.equal((await fetch(`${env().site}/reference/1`, { headers: { authorization: `Bearer ${'A'.repeat(43)}` } })).status, 401);
    // A reference token for another audience is no credential here either.
    assert.equal((await fetch(`${env().site}/orders/1`, { headers: { authorization: `Bearer ${opaque}` } })).status, 401);
    assert.equal(env().reached.length, count);
  });

  test('DPoP-bound tokens (SPEC §8): with the DPoP scheme and a proof for the original request they pass; as Bearer, replayed, for another URL or key they are refused with a DPoP challenge', async () => {
    env().reached.length = 0;
    const [key, thief] = await Promise.all([dpopKey(), dpopKey()]);
    const token = await env().dpopToken('orders:read', key);
    const url = `${env().site}/orders/7?page=2`;
    const proof = await dpopProof(key, 'GET', url, { accessToken: token });
    const allowed = await fetch(url, { headers: { authorization: `DPoP ${token}`, dpop: proof } });
    assert.equal(allowed.status, 200);
    assert.equal(env().reached.at(-1)?.headers['authorization'], `DPoP ${token}`);
    assert.equal(env().reached.at(-1)?.headers['x-gatehouse-client-id'], env().clientId);
    const count = env().reached.length;
    const refusals: [string, Record<string, string>, RegExp][] = [
      ['replayed', { authorization: `DPoP ${token}`, dpop: proof }, /^DPoP error="invalid_dpop_proof".*algs="/],
      ['as Bearer', { authorization: `Bearer ${token}` }, /^DPoP error="invalid_token"/],
      ['no proof', { authorization: `DPoP ${token}` }, /^DPoP error="invalid_dpop_proof"/],
      ['another URL', { authorization: `DPoP ${token}`, dpop: await dpopProof(key, 'GET', `${env().site}/orders/8`, { accessToken: token }) }, /^DPoP error="invalid_dpop_proof"/],
      ['another method', { authorization: `DPoP ${token}`, dpop: await dpopProof(key, 'POST', url, { accessToken: token }) }, /^DPoP error="invalid_dpop_proof"/],
      ['another key', { authorization: `DPoP ${token}`, dpop: await dpopProof(thief, 'GET', url, { accessToken: token }) }, /^DPoP error="invalid_token"/],
    ];
    for (const [label, headers, challenge] of refusals) {
      const response = await fetch(url, { headers });
      assert.equal(response.status, 401, label);
      assert.match(response.headers.get('www-authenticate') ?? '', challenge, label);
    }
    // A DPoP-bound reference token is held to its key the same way.
    const opaque = await env().dpopToken('orders:read', key, env().reference);
    const referenceUrl = `${env().site}/reference/1`;
    assert.equal((await fetch(referenceUrl, { headers: { authorization: `DPoP ${opaque}`, dpop: await dpopProof(key, 'GET', referenceUrl, { accessToken: opaque }) } })).status, 200);
    assert.equal((await fetch(referenceUrl, { headers: { authorization: `DPoP ${opaque}`, dpop: await dpopProof(thief, 'GET', referenceUrl, { accessToken: opaque }) } })).status, 401);
    assert.equal((await fetch(referenceUrl, { headers: { authorization: `Bearer ${opaque}` } })).status, 401);
    assert.equal(env().reached.length, count + 1);
  });

  test('a path no route covers is denied, and a prefix matches whole segments only', async () => {
    env().reached.length = 0;
    const bearer = { authorization: `Bearer ${await env().token('orders:read')}` };
    assert.equal((await fetch(`${env().site}/billing`, { headers: bearer })).status, 403);
    assert.equal((await fetch(`${env().site}/ordersx`, { headers: bearer })).status, 403);
    assert.equal(env().reached.length, 0);
  });
}

/** Whether `command args` runs here (a gateway the test drives, from Debian). */
export function commandAvailable(command: string, args: readonly string[]): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = spawn(command, [...args], { stdio: 'ignore' });
    probe.on('error', () => resolve(false));
    probe.on('exit', (code) => resolve(code === 0));
  });
}

export interface GatewayScenario extends GatewayUnderTest {
  readonly server: TestServer;
  /** The port the gateway must listen on (the routes are for 127.0.0.1:<port>). */
  readonly port: number;
  /** host:port of the echo upstream. */
  readonly upstream: string;
  /** The resource server the routes name. */
  readonly resource: string;
  close(): Promise<void>;
}

/**
 * A Gatehouse with a resource server, a client and the two routes gatewayBehaviourTests expects,
 * plus an echo upstream that records what reaches it. The gateway itself is the test's to start.
 */
export async function startGatewayScenario(resource: string): Promise<GatewayScenario> {
  const ledgerIdentifier = `${resource}/ledger`;
  const reference = `${resource}/reference`;
  const ledgerKeys = await generateKeyPair('ECDH-ES+A256KW', { crv: 'P-256' });
  const server = await startTestServer();
  const reached: GatewayUnderTest['reached'] = [];
  const upstream = createServer((req, res) => {
    reached.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers });
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end('upstream');
  });
  upstream.listen(0, '127.0.0.1');
  await once(upstream, 'listening');
  const port = await freePort();

  const admin = await adminToken(server, 'admin:clients admin:resource-servers admin:gateway');
  await createResourceServer(server, { identifier: resource, name: 'Orders', scopes: ['orders:read', 'orders:write'] }, admin);
  // The upstream of the exchange routes: its own audience, an inner layer only it can read.
  await createResourceServer(server, { identifier: ledgerIdentifier, name: 'Ledger', scopes: ['orders:read', 'ledger:read'], inner_encryption_jwk: await exportJWK(ledgerKeys.publicKey) }, admin);
  await createResourceServer(server, { identifier: reference, name: 'Orders (reference tokens)', scopes: ['orders:read'], token_format: 'reference' }, admin);
  const shop = await createClient(server, { client_name: 'Shop', allowed_resources: [resource, reference] }, admin);
  const host = `127.0.0.1:${port}`;
  for (const body of [
    { host, path_prefix: '/orders', methods: ['GET'], resource_server: resource, required_scopes: ['orders:read'] },
    { host, path_prefix: '/orders', methods: ['POST'], resource_server: resource, required_scopes: ['orders:write'] },
    { host, path_prefix: '/ledger', resource_server: resource, required_scopes: ['orders:read'], upstream_token: 'exchange', upstream_resource_server: ledgerIdentifier },
    { host, path_prefix: '/reference', resource_server: reference, required_scopes: ['orders:read'] },
    { host, path_prefix: '/reference-exchange', resource_server: reference, required_scopes: ['orders:read'], upstream_token: 'exchange', upstream_resource_server: ledgerIdentifier },
  ]) {
    const created = await adminCall(server, 'POST', '/gateway-routes', body, admin);
    assert.equal(created.status, 201, JSON.stringify(created.body));
  }
  return {
    server,
    port,
    site: `http://127.0.0.1:${port}`,
    upstream: `127.0.0.1:${(upstream.address() as AddressInfo).port}`,
    resource,
    clientId: shop.client_id,
    issuer: server.issuer,
    ledger: { identifier: ledgerIdentifier, innerKey: ledgerKeys.privateKey },
    reference,
    reached,
    token: async (scope, audience = resource) => {
      const { status, body } = await clientCredentials(server, shop.client_id, shop.client_secret!, { scope, resource: audience });
      assert.equal(status, 200, JSON.stringify(body));
      return body['access_token'] as string;
    },
    dpopToken: async (scope, key, audience = resource) => {
      const { status, body } = await dpopClientCredentials(server, shop, key, { scope, resource: audience });
      assert.equal(status, 200, JSON.stringify(body));
      assert.equal(body['token_type'], 'DPoP');
      return body['access_token'] as string;
    },
    async close() {
      upstream.close();
      await server.close();
    },
  };
}
