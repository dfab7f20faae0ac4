import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { decodeJwt } from 'jose';
import * as oidc from 'openid-client';
import { adminToken, createClient, createResourceServer, introspectToken, type ClientBody } from '../support/admin-api.js';
import { postgresUrl } from '../support/database.js';
import { dpopClientCredentials, dpopKey, dpopProof, type DpopKey } from '../support/dpop.js';
import { startTestServer, type TestServer } from '../support/server.js';

/**
 * SPEC §8 DPoP (RFC 9449) at the token endpoint: a real client (openid-client) and hand-made
 * proofs. Nonces are required and come from a secret every instance shares; a proof's jti is
 * accepted once across instances; tokens carry cnf.jkt and token_type DPoP; a client with
 * dpop_bound_access_tokens needs a proof; a resource server with require_sender_constraint gets
 * no plain token.
 */

const ORDERS = 'https://orders.dpop.example';
const STRICT = 'https://strict.dpop.example';

interface TokenAnswer {
  readonly status: number;
  readonly body: Record<string, unknown>;
  readonly nonce: string | null;
}

describe('DPoP at the token endpoint', () => {
  let server: TestServer;
  let plain: ClientBody;
  let bound: ClientBody;
  let key: DpopKey;
  let tokenUrl: string;

  /** A client-credentials request with HTTP Basic and, when given, a DPoP header. */
  async function requestToken(base: string, client: ClientBody, proof: string | undefined, params: Record<string, string> = {}): Promise<TokenAnswer> {
    const response = await fetch(`${base}/token`, {
      method: 'POST',
      headers: {
        authorization: `Basic ${Buffer.from(`${client.client_id}:${client.client_secret}`).toString('base64')}`,
        'content-type': 'application/x-www-form-urlencoded',
        ...(proof === undefined ? {} : { dpop: proof }),
      },
      body: new URLSearchParams({ grant_type: 'client_credentials', resource: ORDERS, scope: 'orders:read', ...params }),
    });
    return { status: response.status, body: (await response.json()) as Record<string, unknown>, nonce: response.headers.get('dpop-nonce') };
  }

  /** A server nonce, from the challenge a proof without one gets (RFC 9449 §8). */
  async function freshNonce(base = server.url): Promise<string> {
    const answer = await requestToken(base, plain, await dpopProof(key, 'POST', tokenUrl));
    assert.equal(answer.status, 400);
    assert.equal(answer.body['error'], 'use_dpop_nonce');
    assert.ok(answer.nonce);
    return answer.nonce;
  }

  before(async () => {
    server = await startTestServer();
    tokenUrl = `${server.issuer}/token`;
    const admin = await adminToken(server);
    await createResourceServer(server, { identifier: ORDERS, name: 'Orders', scopes: ['orders:read'] }, admin);
    await createResourceServer(server, { identifier: STRICT, name: 'Strict', scopes: ['strict:read'], require_sender_constraint: true }, admin);
    plain = await createClient(server, { client_name: 'plain', grant_types: ['client_credentials'], allowed_resources: [ORDERS, STRICT] }, admin);
    bound = await createClient(server, { client_name: 'bound', grant_types: ['client_credentials'], allowed_resources: [ORDERS], dpop_bound_access_tokens: true }, admin);
    key = await dpopKey();
  });
  after(async () => {
    await server?.close();
  });

  test('discovery advertises the asymmetric proof algorithms, and nothing symmetric', async () => {
    const metadata = (await (await fetch(`${server.issuer}/.well-known/openid-configuration`)).json()) as Record<string, unknown>;
    const algs = metadata['dpop_signing_alg_values_supported'] as string[];
    assert.ok(algs.includes('ES256') && algs.includes('EdDSA'), String(algs));
    assert.ok(algs.every((alg) => !alg.startsWith('HS') && alg !== 'none'), String(algs));
  });

  test('openid-client gets a DPoP-bound token: it answers the nonce challenge, token_type DPoP, cnf.jkt its key', async () => {
    const config = await oidc.discovery(new URL(server.issuer), plain.client_id, plain.client_secret, undefined, { execute: [oidc.allowInsecureRequests] });
    const pair = await crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign', 'verify']);
    const handle = oidc.getDPoPHandle(config, pair);
    const tokens = await oidc.clientCredentialsGrant(config, { resource: ORDERS, scope: 'orders:read' }, { DPoP: handle });
    assert.equal(tokens.token_type.toLowerCase(), 'dpop');
    const claims = decodeJwt(tokens.access_token);
    const jwk = await crypto.subtle.exportKey('jwk', pair.publicKey);
    const { calculateJwkThumbprint } = await import('jose');
    assert.deepEqual(claims['cnf'], { jkt: await calculateJwkThumbprint(jwk as Parameters<typeof calculateJwkThumbprint>[0]) });
  });

  test('a proof without a nonce is challenged (use_dpop_nonce, DPoP-Nonce); with it the token is bound to the key', async () => {
    const nonce = await freshNonce();
    const answer = await requestToken(server.url, plain, await dpopProof(key, 'POST', tokenUrl, { nonce }));
    assert.equal(answer.status, 200, JSON.stringify(answer.body));
    assert.equal(answer.body['token_type'], 'DPoP');
    const token = answer.body['access_token'] as string;
    assert.deepEqual(decodeJwt(token)['cnf'], { jkt: key.thumbprint });

    // RFC 7662 via SPEC §2: introspection keeps the binding and says what kind of token it is.
    const introspection = await introspectToken(server, { client_id: plain.client_id, client_secret: plain.client_secret ?? '' }, token);
    assert.equal(introspection.body['active'], true);
    assert.equal(introspection.body['token_type'], 'DPoP');
    assert.deepEqual(introspection.body['cnf'], { jkt: key.thumbprint });
  });

  test('a plain request still gets a Bearer token without cnf', async () => {
    const answer = await requestToken(server.url, plain, undefined);
    assert.equal(answer.status, 200, JSON.stringify(answer.body));
    assert.equal(answer.body['token_type'], 'Bearer');
    assert.equal(decodeJwt(answer.body['access_token'] as string)['cnf'], undefined);
  });

  test('a replayed proof is refused as invalid_dpop_proof, even with a fresh nonce around it', async () => {
    const nonce = await freshNonce();
    const proof = await dpopProof(key, 'POST', tokenUrl, { nonce });
    assert.equal((await requestToken(server.url, plain, proof)).status, 200);
    const again = await requestToken(server.url, plain, proof);
    assert.equal(again.status, 400);
    assert.equal(again.body['error'], 'invalid_dpop_proof');
  });

  test('wrong htu, wrong htm, a symmetric or unsigned alg, a wrong typ or a forged nonce are refused', async () => {
    const nonce = await freshNonce();
    const cases: [string, Promise<string>][] = [
      ['htu of another endpoint', dpopProof(key, 'POST', `${server.issuer}/token/introspection`, { nonce })],
      ['htu of another origin', dpopProof(key, 'POST', 'https://evil.example/token', { nonce })],
      ['htm GET', dpopProof(key, 'GET', tokenUrl, { nonce })],
      ['typ JWT', dpopProof(key, 'POST', tokenUrl, { nonce, typ: 'JWT' })],
    ];
    for (const [label, proof] of cases) {
      const answer = await requestToken(server.url, plain, await proof);
      assert.equal(answer.status, 400, label);
      assert.equal(answer.body['error'], 'invalid_dpop_proof', `${label}: ${JSON.stringify(answer.body)}`);
    }
    // HS256 with a key only the client knows binds nothing (RFC 9449 §4.2: asymmetric only).
    const header = Buffer.from(JSON.stringify({ alg: 'HS256', typ: 'dpop+jwt', jwk: { kty: 'oct', k: 'c2VjcmV0' } })).toString('base64url');
    const payload = Buffer.from(JSON.stringify({ htm: 'POST', htu: tokenUrl, jti: 'x', iat: Math.floor(Date.now() / 1000), nonce })).toString('base64url');
    const hs = await requestToken(server.url, plain, `${header}.${payload}.c2lnbmF0dXJl`);
    assert.equal(hs.body['error'], 'invalid_dpop_proof');
    const forged = await requestToken(server.url, plain, await dpopProof(key, 'POST', tokenUrl, { nonce: `${nonce.slice(0, -4)}AAAA` }));
    assert.equal(forged.body['error'], 'use_dpop_nonce');
  });

  test('dpop_bound_access_tokens: no proof, no token', async () => {
    const without = await requestToken(server.url, bound, undefined);
    assert.equal(without.status, 400);
    assert.equal(without.body['error'], 'invalid_grant');
    const nonce = await freshNonce();
    const withProof = await requestToken(server.url, bound, await dpopProof(key, 'POST', tokenUrl, { nonce }));
    assert.equal(withProof.status, 200, JSON.stringify(withProof.body));
    assert.equal(withProof.body['token_type'], 'DPoP');
  });

  test('require_sender_constraint: a plain request is invalid_request, a DPoP one gets its token', async () => {
    const params = { resource: STRICT, scope: 'strict:read' };
    const refused = await requestToken(server.url, plain, undefined, params);
    assert.equal(refused.status, 400);
    assert.equal(refused.body['error'], 'invalid_request');
    assert.match(String(refused.body['error_description']), /sender-constrained/);
    const nonce = await freshNonce();
    const granted = await requestToken(server.url, plain, await dpopProof(key, 'POST', tokenUrl, { nonce }), params);
    assert.equal(granted.status, 200, JSON.stringify(granted.body));
    assert.deepEqual(decodeJwt(granted.body['access_token'] as string)['cnf'], { jkt: key.thumbprint });
  });

  test('the admin API takes a DPoP-bound admin token with its proof, and refuses it as Bearer', async () => {
    const admin = { client_id: server.admin.clientId, client_secret: server.admin.clientSecret };
    const issued = await dpopClientCredentials(server, admin, key, { resource: `${server.issuer}/admin`, scope: 'admin:clients' });
    assert.equal(issued.status, 200, JSON.stringify(issued.body));
    const token = issued.body['access_token'] as string;
    const url = `${server.issuer}/admin/v1/clients?limit=1`;
    const listed = await fetch(url, { headers: { authorization: `DPoP ${token}`, dpop: await dpopProof(key, 'GET', url, { accessToken: token }) } });
    assert.equal(listed.status, 200, await listed.clone().text());
    const asBearer = await fetch(url, { headers: { authorization: `Bearer ${token}` } });
    assert.equal(asBearer.status, 401);
    assert.match(asBearer.headers.get('www-authenticate') ?? '', /^DPoP error="invalid_token"/);
    assert.match(asBearer.headers.get('content-type') ?? '', /^application\/problem\+json/);
  });

  describe('two instances', { skip: postgresUrl === undefined ? 'needs PostgreSQL: two instances cannot share a PGlite database' : false }, () => {
    let two: TestServer;
    before(async () => {
      two = await startTestServer({ database: server.database, env: { MASTER_KEY: server.masterKey, ISSUER: server.issuer } });
    });
    after(async () => {
      await two?.close();
    });

    test('a nonce one instance handed out is good at the other', async () => {
      const nonce = await freshNonce(server.url);
      const answer = await requestToken(two.url, plain, await dpopProof(key, 'POST', tokenUrl, { nonce }));
      assert.equal(answer.status, 200, JSON.stringify(answer.body));
      assert.equal(answer.body['token_type'], 'DPoP');
    });

    test('20 parallel copies of one proof across both instances: exactly one token', async () => {
      const nonce = await freshNonce(two.url);
      const proof = await dpopProof(key, 'POST', tokenUrl, { nonce });
      const answers = await Promise.all(Array.from({ length: 20 }, (_, i) => requestToken(i % 2 === 0 ? server.url : two.url, plain, proof)));
      const granted = answers.filter((answer) => answer.status === 200);
      assert.equal(granted.length, 1, JSON.stringify(answers.map((answer) => [answer.status, answer.body['error']])));
      assert.ok(answers.every((answer) => answer.status === 200 || answer.body['error'] === 'invalid_dpop_proof'));
    });
  });
});
