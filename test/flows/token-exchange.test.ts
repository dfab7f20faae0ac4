import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { compactDecrypt, createLocalJWKSet, decodeJwt, exportJWK, generateKeyPair, jwtVerify, SignJWT, type CryptoKey, type JSONWebKeySet } from 'jose';
import * as oidc from 'openid-client';
import { adminCall, adminToken, createResourceServer, introspectToken } from '../support/admin-api.js';
import { freezeClock, type FrozenClock } from '../support/clock.js';
import { CookieClient } from '../support/cookie-client.js';
import { dpopKey, dpopProof } from '../support/dpop.js';
import { pkceParams, signIn } from '../support/sign-in.js';
import { startTestServer, type TestServer } from '../support/server.js';

/**
 * SPEC §9, RFC 8693: a person signs in to the web app, whose token for the orders service the
 * orders service exchanges for one to payments, which exchanges that for one to the ledger:
 * sub kept, aud the next hop, act naming who acted (nested), scopes only narrowing, exp never
 * past the subject's, no refresh token, the inner layer for the next hop's key only. Through
 * openid-client's genericGrantRequest; the refusals with the RFC's error codes.
 */

const GRANT = 'urn:ietf:params:oauth:grant-type:token-exchange';
const ACCESS_TOKEN = 'urn:ietf:params:oauth:token-type:access_token';
const ORDERS = 'https://orders.exchange.example';
const PAYMENTS = 'https://payments.exchange.example';
const LEDGER = 'https://ledger.exchange.example';
const REDIRECT = 'http://127.0.0.1:9/web-callback';
const PASSWORD = 'correct horse battery staple';
const insecure = { execute: [oidc.allowInsecureRequests] };

interface Service {
  readonly client_id: string;
  readonly client_secret: string;
  config: oidc.Configuration;
}

describe('token exchange (RFC 8693): delegation across tiers', () => {
  let clock: FrozenClock;
  let server: TestServer;
  let admin: string;
  let jwks: JSONWebKeySet;
  let userId: string;
  const innerKeys: Record<string, CryptoKey> = {};
  let orders: Service;
  let payments: Service;
  let stranger: Service;
  /** The person's token for the orders service, from a real sign-in. */
  let personToken: string;

  async function service(name: string, body: Record<string, unknown>): Promise<Service> {
    const created = await adminCall<{ client_id: string; client_secret: string }>(server, 'POST', '/clients', { client_name: name, ...body }, admin);
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const config = await oidc.discovery(new URL(server.issuer), created.body.client_id, created.body.client_secret, undefined, insecure);
    return { ...created.body, config };
  }

  const exchange = (caller: Service, subjectToken: string, params: Record<string, string> = {}, options?: oidc.DPoPOptions) =>
    oidc.genericGrantRequest(caller.config, GRANT, { subject_token: subjectToken, subject_token_type: ACCESS_TOKEN, ...params }, options);

  async function refused(promise: Promise<unknown>, error: string): Promise<void> {
    const thrown = await promise.then(
      () => assert.fail(`expected ${error}, got a token`),
      (reason: unknown) => reason,
    );
    assert.ok(thrown instanceof oidc.ResponseBodyError, String(thrown));
    assert.equal(thrown.error, error, thrown.error_description);
  }

  const verified = async (token: string, audience: string) => (await jwtVerify(token, createLocalJWKSet(jwks), { issuer: server.issuer, audience, typ: 'at+jwt' })).payload;
  const innerOf = async (payload: Record<string, unknown>, audience: string) =>
    JSON.parse(new TextDecoder().decode((await compactDecrypt(String(payload['inner']), innerKeys[audience]!)).plaintext)) as Record<string, unknown>;

  before(async () => {
    clock = freezeClock();
    server = await startTestServer();
    admin = await adminToken(server, 'admin:clients admin:resource-servers admin:users');
    for (const [identifier, scopes] of [
      [ORDERS, ['orders:read', 'payments:charge', 'ledger:write']],
      [PAYMENTS, ['payments:charge', 'payments:refund', 'ledger:write']],
      [LEDGER, ['ledger:write', 'ledger:read']],
    ] as const) {
      const keys = await generateKeyPair('ECDH-ES+A256KW', { crv: 'P-256' });
      innerKeys[identifier] = keys.privateKey;
      await createResourceServer(server, { identifier, name: identifier, scopes: [...scopes], access_token_ttl: 600, inner_encryption_jwk: await exportJWK(keys.publicKey) }, admin);
    }
    const user = await adminCall<{ id: string }>(server, 'POST', '/users', { username: 'grace', password: PASSWORD, email: 'grace@example.com' }, admin);
    assert.equal(user.status, 201, JSON.stringify(user.body));
    userId = user.body.id;

    const web = await service('web app', {
      grant_types: ['authorization_code'],
      redirect_uris: [REDIRECT],
      scope: 'openid orders:read payments:charge ledger:write',
      allowed_resources: [ORDERS],
      first_party: true,
    });
    orders = await service('orders service', { grant_types: [GRANT], token_exchange: { subject_audiences: [ORDERS] }, allowed_resources: [PAYMENTS] });
    payments = await service('payments service', { grant_types: [GRANT], token_exchange: { subject_audiences: [PAYMENTS] }, allowed_resources: [LEDGER] });
    stranger = await service('stranger', { grant_types: [GRANT], token_exchange: { subject_audiences: [LEDGER] }, allowed_resources: [PAYMENTS] });

    const { verifier, state, nonce, params } = await pkceParams(REDIRECT, 'openid orders:read payments:charge ledger:write', { resource: ORDERS });
    const { callback } = await signIn(new CookieClient(), web.config, server.url, params, { username: 'grace', password: PASSWORD });
    personToken = (await oidc.authorizationCodeGrant(web.config, callback, { pkceCodeVerifier: verifier, expectedState: state, expectedNonce: nonce }, { resource: ORDERS })).access_token;
    jwks = (await (await fetch(`${server.issuer}/jwks`)).json()) as JSONWebKeySet;
  });
  after(async () => {
    await server?.close();
    clock?.restore();
  });

  test('the admin API takes token_exchange with the grant only, naming existing resource servers, never for a public client', async () => {
    const base = { client_name: 'x', allowed_resources: [PAYMENTS] };
    const cases: [Record<string, unknown>, string][] = [
      [{ ...base, grant_types: ['client_credentials'], token_exchange: { subject_audiences: [ORDERS] } }, '#/token_exchange'],
      [{ ...base, grant_types: [GRANT] }, '#/token_exchange'],
      [{ ...base, grant_types: [GRANT], token_exchange: { subject_audiences: ['https://nowhere.exchange.example'] } }, '#/token_exchange/subject_audiences/0'],
      [{ ...base, grant_types: [GRANT], token_exchange: { subject_audiences: [] } }, '#/token_exchange/subject_audiences'],
      [{ ...base, grant_types: [GRANT], token_exchange: { subject_audiences: [ORDERS], extra: true } }, '#/token_exchange/extra'],
      [{ ...base, grant_types: [GRANT], token_exchange: { subject_audiences: [ORDERS] }, token_endpoint_auth_method: 'none' }, '#/token_endpoint_auth_method'],
    ];
    for (const [body, pointer] of cases) {
      const response = await adminCall<{ errors?: { pointer: string }[] }>(server, 'POST', '/clients', body, admin);
      assert.equal(response.status, 400, JSON.stringify(body));
      assert.ok(response.body.errors?.some((error) => error.pointer === pointer), `${pointer}: ${JSON.stringify(response.body)}`);
    }
    const shown = await adminCall<{ token_exchange?: unknown; grant_types: string[] }>(server, 'GET', `/clients/${orders.client_id}`, undefined, admin);
    assert.deepEqual(shown.body.token_exchange, { subject_audiences: [ORDERS] });
    assert.deepEqual(shown.body.grant_types, [GRANT]);
  });

  test('discovery advertises the grant', async () => {
    const metadata = (await (await fetch(`${server.issuer}/.well-known/openid-configuration`)).json()) as { grant_types_supported: string[] };
    assert.ok(metadata.grant_types_supported.includes(GRANT));
  });

  test('orders exchanges the person’s token for payments: sub kept, aud payments, act orders, narrower scope, no later exp, no refresh token', async () => {
    const subject = decodeJwt(personToken);
    const response = await exchange(orders, personToken, { resource: PAYMENTS, scope: 'payments:charge' });
    assert.equal(response.issued_token_type, ACCESS_TOKEN);
    assert.equal(response.token_type.toLowerCase(), 'bearer');
    assert.equal(response.refresh_token, undefined);
    assert.equal(response.scope, 'payments:charge');
    const claims = await verified(response.access_token, PAYMENTS);
    assert.equal(claims.sub, userId);
    assert.equal(claims['client_id'], orders.client_id);
    assert.deepEqual(claims['act'], { sub: orders.client_id });
    assert.equal(claims['scope'], 'payments:charge');
    assert.ok(claims.exp! <= subject.exp!, 'never past the subject token');
    assert.equal(claims['acr'], subject['acr']);
    // The inner layer is for payments' key, with the person's claims from Gatehouse's tables.
    const inner = await innerOf(claims, PAYMENTS);
    assert.equal(inner['jti'], claims.jti);
    assert.equal(inner['preferred_username'], 'grace');
    assert.equal(inner['email'], 'grace@example.com');
    await assert.rejects(compactDecrypt(String(claims['inner']), innerKeys[ORDERS]!), 'not readable with the orders key');
    // Without scope: everything the subject, the target and the client allow.
    const wide = await exchange(orders, personToken, { resource: PAYMENTS });
    assert.equal(wide.scope, 'payments:charge ledger:write');
  });

  test('introspection shows act to the token’s client', async () => {
    const { access_token } = await exchange(orders, personToken, { resource: PAYMENTS, scope: 'payments:charge' });
    const answer = await introspectToken(server, orders, access_token);
    assert.equal(answer.body['active'], true);
    assert.deepEqual(answer.body['act'], { sub: orders.client_id });
  });

  test('a target with reference tokens gets an opaque token whose introspection shows sub, client_id and act', async () => {
    const reference = 'https://reference.exchange.example';
    await createResourceServer(server, { identifier: reference, name: 'reference', scopes: ['payments:charge'], token_format: 'reference' }, admin);
    const caller = await service('reference caller', { grant_types: [GRANT], token_exchange: { subject_audiences: [ORDERS] }, allowed_resources: [reference] });
    const exchanged = await exchange(caller, personToken, { resource: reference });
    assert.doesNotMatch(exchanged.access_token, /\./, 'opaque');
    const answer = await introspectToken(server, caller, exchanged.access_token);
    assert.equal(answer.body['active'], true);
    assert.equal(answer.body['sub'], userId);
    assert.equal(answer.body['client_id'], caller.client_id);
    assert.deepEqual(answer.body['act'], { sub: caller.client_id });
    assert.equal(answer.body['token_type'], 'Bearer');
  });

  test('a chain of three hops: payments exchanges the exchanged token for the ledger; act nests, scopes keep narrowing', async () => {
    const toPayments = await exchange(orders, personToken, { resource: PAYMENTS, scope: 'payments:charge ledger:write' });
    const toLedger = await exchange(payments, toPayments.access_token, { resource: LEDGER });
    const claims = await verified(toLedger.access_token, LEDGER);
    assert.equal(claims.sub, userId);
    assert.equal(claims['client_id'], payments.client_id);
    assert.deepEqual(claims['act'], { sub: payments.client_id, act: { sub: orders.client_id } });
    assert.equal(claims['scope'], 'ledger:write', 'payments:charge is not a ledger scope; ledger:read was never granted');
    assert.equal((await innerOf(claims, LEDGER))['preferred_username'], 'grace');
  });

  test('the audit log records each exchange with subject, actor chain and target', async () => {
    const toPayments = await exchange(orders, personToken, { resource: PAYMENTS, scope: 'payments:charge' });
    await exchange(payments, toPayments.access_token, { resource: LEDGER });
    const { rows } = await server.db.query<{ actor: string; target: string; details: Record<string, unknown> }>(
      "SELECT actor, target, details FROM audit_events WHERE type = 'token.exchanged' AND target = $1 ORDER BY occurred_at DESC LIMIT 1",
      [LEDGER],
    );
    assert.equal(rows[0]?.actor, payments.client_id);
    assert.equal(rows[0]?.details['subject'], userId);
    assert.deepEqual(rows[0]?.details['actor_chain'], [payments.client_id, orders.client_id]);
  });

  test('/metrics counts exchanges by target resource server', async () => {
    await exchange(orders, personToken, { resource: PAYMENTS });
    const text = await (await fetch(`${server.managementUrl}/metrics`)).text();
    const line = text.split('\n').find((l) => l.startsWith('gatehouse_tokens_issued_total{') && l.includes(`grant_type="${GRANT}"`) && l.includes(`resource_server="${PAYMENTS}"`));
    assert.ok(line, 'a sample for the exchange grant and the payments audience');
    assert.ok(Number(line.split(' ').at(-1)) >= 1);
  });

  test('scope escalation, a foreign audience and a re-exchange without the right are refused', async () => {
    await refused(exchange(orders, personToken, { resource: PAYMENTS, scope: 'payments:refund' }), 'invalid_scope');
    await refused(exchange(orders, personToken, { resource: PAYMENTS, scope: 'payments:charge orders:read' }), 'invalid_scope');
    await refused(exchange(stranger, personToken, { resource: PAYMENTS }), 'invalid_grant');
    const toPayments = await exchange(orders, personToken, { resource: PAYMENTS });
    // orders may exchange orders tokens only, not the payments token it was handed back.
    await refused(exchange(orders, toPayments.access_token, { resource: PAYMENTS }), 'invalid_grant');
    await refused(exchange(orders, personToken, { resource: LEDGER }), 'invalid_target');
    // RFC 6749 §5.2: a client not registered for the grant.
    const plain = await service('no exchange', { grant_types: ['client_credentials'], allowed_resources: [PAYMENTS] });
    await refused(exchange(plain, personToken, { resource: PAYMENTS }), 'unauthorized_client');
  });

  test('a foreign or malformed subject token, and a wrong subject_token_type, are refused', async () => {
    const { privateKey } = await generateKeyPair('ES256');
    const foreign = await new SignJWT({ client_id: orders.client_id, scope: 'payments:charge' })
      .setProtectedHeader({ alg: 'ES256', typ: 'at+jwt', kid: String(jwks.keys[0]?.kid) })
      .setIssuer(server.issuer)
      .setSubject(userId)
      .setAudience(ORDERS)
      .setIssuedAt()
      .setExpirationTime('5m')
      .sign(privateKey);
    await refused(exchange(orders, foreign, { resource: PAYMENTS }), 'invalid_grant');
    await refused(exchange(orders, 'not-a-token', { resource: PAYMENTS }), 'invalid_grant');
    await refused(exchange(orders, personToken, { resource: PAYMENTS, subject_token_type: 'urn:ietf:params:oauth:token-type:id_token' }), 'invalid_request');
  });

  test('a disabled person, or a deleted client in the chain, ends every exchange of their tokens', async () => {
    assert.equal((await adminCall(server, 'PATCH', `/users/${userId}`, { disabled: true }, admin)).status, 200);
    await refused(exchange(orders, personToken, { resource: PAYMENTS }), 'invalid_grant');
    assert.equal((await adminCall(server, 'PATCH', `/users/${userId}`, { disabled: false }, admin)).status, 200);

    const middle = await service('short-lived middle', { grant_types: [GRANT], token_exchange: { subject_audiences: [ORDERS] }, allowed_resources: [PAYMENTS] });
    const viaMiddle = await exchange(middle, personToken, { resource: PAYMENTS });
    assert.equal((await exchange(payments, viaMiddle.access_token, { resource: LEDGER })).issued_token_type, ACCESS_TOKEN);
    assert.equal((await adminCall(server, 'DELETE', `/clients/${middle.client_id}`, undefined, admin)).status, 204);
    await refused(exchange(payments, viaMiddle.access_token, { resource: LEDGER }), 'invalid_grant');
  });

  test('with a DPoP proof the new token is bound to the caller’s own key', async () => {
    const key = await dpopKey();
    // The nonce challenge first, as a DPoP client does (RFC 9449 §8).
    const body = new URLSearchParams({ grant_type: GRANT, subject_token: personToken, subject_token_type: ACCESS_TOKEN, resource: PAYMENTS });
    const auth = `Basic ${Buffer.from(`${orders.client_id}:${orders.client_secret}`).toString('base64')}`;
    const post = async (nonce?: string) =>
      fetch(`${server.url}/token`, {
        method: 'POST',
        headers: { authorization: auth, 'content-type': 'application/x-www-form-urlencoded', dpop: await dpopProof(key, 'POST', `${server.issuer}/token`, nonce === undefined ? {} : { nonce }) },
        body,
      });
    const challenge = await post();
    assert.equal(challenge.status, 400);
    const answer = await post(challenge.headers.get('dpop-nonce') ?? '');
    assert.equal(answer.status, 200, await answer.clone().text());
    const json = (await answer.json()) as { access_token: string; token_type: string };
    assert.equal(json.token_type, 'DPoP');
    assert.deepEqual(decodeJwt(json.access_token)['cnf'], { jkt: key.thumbprint });
  });

  test('an expired subject token is refused', async () => {
    const subject = decodeJwt(personToken);
    clock.advanceSteps(Math.ceil((subject.exp! - Date.now() / 1000) / 30) + 1);
    await refused(exchange(orders, personToken, { resource: PAYMENTS }), 'invalid_grant');
  });
});
