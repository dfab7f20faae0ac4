import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import Koa from 'koa';
import * as oauth from 'oauth4webapi';
import * as oidc from 'openid-client';
import { createVerifier, requireToken, type VerifiedToken } from '../../src/verifier/index.js';
import { adminToken, createClient, createResourceServer, type ClientBody } from '../support/admin-api.js';
import { dpopKey, dpopProof, type DpopKey } from '../support/dpop.js';
import { startTestServer, type TestServer } from '../support/server.js';

/**
 * SPEC §3 and §8 end to end: a DPoP-bound token from Gatehouse's token endpoint, obtained and
 * used by openid-client (which makes the proofs), accepted by a Koa resource server through
 * Gatehouse's verifier middleware and by an independent one (oauth4webapi's
 * validateJwtAccessToken); a stolen token is useless without the key.
 */

const ORDERS = 'https://orders.dpop-rs.example';

describe('DPoP-bound tokens at resource servers', () => {
  let server: TestServer;
  let client: ClientBody;
  let config: oidc.Configuration;
  let handle: oidc.DPoPHandle;
  let token: string;
  let resource: Server;
  let resourceUrl: string;
  let thief: DpopKey;

  before(async () => {
    server = await startTestServer();
    const admin = await adminToken(server);
    await createResourceServer(server, { identifier: ORDERS, name: 'Orders', scopes: ['orders:read'] }, admin);
    client = await createClient(server, { client_name: 'dpop rs', grant_types: ['client_credentials'], allowed_resources: [ORDERS], dpop_bound_access_tokens: true }, admin);
    config = await oidc.discovery(new URL(server.issuer), client.client_id, client.client_secret, undefined, { execute: [oidc.allowInsecureRequests] });
    handle = oidc.getDPoPHandle(config, await oidc.randomDPoPKeyPair('ES256'));
    token = (await oidc.clientCredentialsGrant(config, { resource: ORDERS, scope: 'orders:read' }, { DPoP: handle })).access_token;
    thief = await dpopKey();

    const verifier = createVerifier({ issuer: server.issuer, audience: ORDERS });
    const app = new Koa();
    app.use(requireToken(verifier, { scopes: ['orders:read'] }));
    app.use((ctx) => {
      const { claims } = ctx.state['token'] as VerifiedToken;
      ctx.body = { client_id: claims.client_id, jkt: claims.cnf?.jkt };
    });
    const callback = app.callback();
    resource = createServer((req, res) => void callback(req, res));
    await new Promise<void>((resolve) => resource.listen(0, '127.0.0.1', resolve));
    resourceUrl = `http://127.0.0.1:${(resource.address() as AddressInfo).port}/orders`;
  });
  after(async () => {
    await new Promise<void>((resolve) => (resource === undefined ? resolve() : resource.close(() => resolve())));
    await server?.close();
  });

  test("openid-client calls the Koa resource server with the DPoP scheme and a fresh proof: it gets in, every time", async () => {
    for (let i = 0; i < 3; i += 1) {
      const response = await oidc.fetchProtectedResource(config, token, new URL(resourceUrl), 'GET', undefined, undefined, { DPoP: handle });
      assert.equal(response.status, 200, await response.clone().text());
      const body = (await response.json()) as { client_id: string; jkt: string };
      assert.equal(body.client_id, client.client_id);
      assert.equal(typeof body.jkt, 'string');
    }
  });

  test('the same token, stolen: as Bearer, or with a proof by another key, it is refused', async () => {
    const asBearer = await fetch(resourceUrl, { headers: { authorization: `Bearer ${token}` } });
    assert.equal(asBearer.status, 401);
    assert.match(asBearer.headers.get('www-authenticate') ?? '', /^DPoP error="invalid_token"/);
    const withThiefProof = await fetch(resourceUrl, { headers: { authorization: `DPoP ${token}`, dpop: await dpopProof(thief, 'GET', resourceUrl, { accessToken: token }) } });
    assert.equal(withThiefProof.status, 401);
    assert.match(withThiefProof.headers.get('www-authenticate') ?? '', /^DPoP error="invalid_token"/);
  });

  test("oauth4webapi's validateJwtAccessToken (an independent resource server) accepts it with the holder's proof only", async () => {
    const issuer = new URL(server.issuer);
    const as = await oauth.processDiscoveryResponse(issuer, await oauth.discoveryRequest(issuer, { [oauth.allowInsecureRequests]: true }));
    const request = async (key: DpopKey | undefined, proofFor = token) => {
      const headers = new Headers({ authorization: `DPoP ${token}` });
      if (key !== undefined) headers.set('dpop', await dpopProof(key, 'GET', 'https://orders.dpop-rs.example/orders', { accessToken: proofFor }));
      return new Request('https://orders.dpop-rs.example/orders', { headers });
    };
    // The holder's proof, made by openid-client's key: fetch one through a request it signs.
    let captured: Request | undefined;
    config[oidc.customFetch] = (url, init) => {
      captured = new Request(url, { method: init.method, headers: init.headers });
      return Promise.resolve(new Response('{}', { status: 200, headers: { 'content-type': 'application/json' } }));
    };
    try {
      await oidc.fetchProtectedResource(config, token, new URL('https://orders.dpop-rs.example/orders'), 'GET', undefined, undefined, { DPoP: handle });
    } finally {
      delete config[oidc.customFetch];
    }
    assert.ok(captured);
    const claims = await oauth.validateJwtAccessToken(as, captured, ORDERS, { requireDPoP: true, [oauth.allowInsecureRequests]: true });
    assert.equal(claims.client_id, client.client_id);
    assert.equal(typeof (claims as { cnf?: { jkt?: string } }).cnf?.jkt, 'string');
    await assert.rejects(oauth.validateJwtAccessToken(as, await request(thief), ORDERS, { requireDPoP: true, [oauth.allowInsecureRequests]: true }));
    await assert.rejects(oauth.validateJwtAccessToken(as, await request(undefined), ORDERS, { [oauth.allowInsecureRequests]: true }));
  });
});
