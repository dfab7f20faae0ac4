import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { after, before, describe, test } from 'node:test';
import { decodeJwt, exportJWK, generateKeyPair, type JWK } from 'jose';
import * as oidc from 'openid-client';
import { adminCall, adminToken, createResourceServer } from '../support/admin-api.js';
import { CookieClient } from '../support/cookie-client.js';
import { commandAvailable } from '../support/gateway.js';
import { pkceParams, signIn } from '../support/sign-in.js';
import { startTestServer, type TestServer } from '../support/server.js';

/**
 * SPEC §9 token exchange (RFC 8693) with a client that shares no code with Gatehouse, jose or
 * openid-client: Debian's python3 with python3-requests (discovery, the exchange with
 * client_secret_basic) and python3-jwcrypto (the signature against the JWKS, the inner JWE with
 * the target's key and with another resource server's). A person signs in to the web app for the
 * orders service; the orders service, in Python, exchanges that token for one to payments. The
 * script (test/fixtures/token_exchange_client.py) only reports what it saw; the assertions are
 * here. Debian's interpreter is named by path and run isolated (-I), as in
 * dpop.python-client.test.ts.
 */

const run = promisify(execFile);
const PYTHON = '/usr/bin/python3';
const SCRIPT = fileURLToPath(new URL('../fixtures/token_exchange_client.py', import.meta.url));
const GRANT = 'urn:ietf:params:oauth:grant-type:token-exchange';
const ACCESS_TOKEN = 'urn:ietf:params:oauth:token-type:access_token';
const ORDERS = 'https://orders.exchange-python.example';
const PAYMENTS = 'https://payments.exchange-python.example';
const REDIRECT = 'http://127.0.0.1:9/web-callback';
const PASSWORD = 'correct horse battery staple';
/** Shorter than the subject token's, so that "short" and "no later than the subject" differ. */
const ORDERS_TTL = 3600;
const PAYMENTS_TTL = 300;
const insecure = { execute: [oidc.allowInsecureRequests] };

const pythonAvailable = await commandAvailable(PYTHON, ['-I', '-c', 'import jwcrypto, requests']);

/** What a refused request got. */
interface Refusal {
  readonly status: number;
  readonly error: string | null;
  readonly issued_token: boolean;
}

/** The script's report (see token_exchange_client.py). */
interface Report {
  readonly token_endpoint: string;
  readonly jwks_uri: string;
  readonly grant_advertised: boolean;
  readonly exchange: {
    readonly status: number;
    readonly cache_control: string | null;
    readonly error: string | null;
    readonly issued_token_type: string | null;
    readonly token_type: string | null;
    readonly refresh_token_present: boolean;
    readonly expires_in: number | null;
    readonly scope: string | null;
    readonly access_token?: {
      readonly typ: string;
      readonly alg: string;
      readonly signature_verified: boolean;
      readonly iss: string;
      readonly sub: string;
      readonly aud: string | string[];
      readonly client_id: string;
      readonly act: unknown;
      readonly exp: number;
      readonly iat: number;
      readonly jti: string;
      readonly scope: string;
    };
    readonly inner?: {
      readonly alg: string;
      readonly enc: string;
      readonly kid: string | null;
      readonly parts: number;
      readonly decrypts_with_target_key: boolean;
      readonly decrypts_with_wrong_key: boolean;
      readonly sub?: string;
      readonly client_id?: string;
      readonly preferred_username?: string;
      readonly email?: string;
      readonly jti?: string;
      readonly jti_matches_outer?: boolean;
    } | null;
  };
  readonly escalation: Refusal;
  readonly disallowed_audience?: Refusal;
}

/** An inner-layer key pair as the resource server holds it: the private JWK, with a kid. */
async function innerKey(kid: string): Promise<{ publicJwk: JWK; privateJwk: JWK }> {
  const { publicKey, privateKey } = await generateKeyPair('ECDH-ES+A256KW', { crv: 'P-256', extractable: true });
  return { publicJwk: { ...(await exportJWK(publicKey)), kid }, privateJwk: { ...(await exportJWK(privateKey)), kid } };
}

describe('token exchange with an independent Python client (requests, jwcrypto)', { skip: pythonAvailable ? false : `needs ${PYTHON} with python3-jwcrypto and python3-requests (.ci/run installs them)` }, () => {
  let server: TestServer;
  let userId: string;
  let orders: { client_id: string; client_secret: string };
  /** The person's token for the orders service, from a real sign-in. */
  let subjectToken: string;
  let report: Report;
  let keyDir: string | undefined;

  before(async () => {
    server = await startTestServer();
    const admin = await adminToken(server, 'admin:clients admin:resource-servers admin:users');
    const ordersKey = await innerKey('orders-inner-1');
    const paymentsKey = await innerKey('payments-inner-1');
    await createResourceServer(server, { identifier: ORDERS, name: 'Orders', scopes: ['orders:read', 'payments:charge'], access_token_ttl: ORDERS_TTL, inner_encryption_jwk: ordersKey.publicJwk }, admin);
    await createResourceServer(server, { identifier: PAYMENTS, name: 'Payments', scopes: ['payments:charge', 'payments:refund'], access_token_ttl: PAYMENTS_TTL, inner_encryption_jwk: paymentsKey.publicJwk }, admin);
    const user = await adminCall<{ id: string }>(server, 'POST', '/users', { username: 'ada', password: PASSWORD, email: 'ada@example.com' }, admin);
    assert.equal(user.status, 201, JSON.stringify(user.body));
    userId = user.body.id;

    const client = async (body: Record<string, unknown>) => {
      const created = await adminCall<{ client_id: string; client_secret: string }>(server, 'POST', '/clients', body, admin);
      assert.equal(created.status, 201, JSON.stringify(created.body));
      return created.body;
    };
    const web = await client({ client_name: 'web app', grant_types: ['authorization_code'], redirect_uris: [REDIRECT], scope: 'openid orders:read payments:charge', allowed_resources: [ORDERS], first_party: true });
    orders = await client({ client_name: 'orders service (python)', grant_types: [GRANT], token_exchange: { subject_audiences: [ORDERS] }, allowed_resources: [PAYMENTS] });

    const config = await oidc.discovery(new URL(server.issuer), web.client_id, web.client_secret, undefined, insecure);
    const { verifier, state, nonce, params } = await pkceParams(REDIRECT, 'openid orders:read payments:charge', { resource: ORDERS });
    const { callback } = await signIn(new CookieClient(), config, server.url, params, { username: 'ada', password: PASSWORD });
    subjectToken = (await oidc.authorizationCodeGrant(config, callback, { pkceCodeVerifier: verifier, expectedState: state, expectedNonce: nonce }, { resource: ORDERS })).access_token;

    // The target's key as a file only its owner reads (the script's --target-jwk-file), the other in the environment.
    keyDir = await mkdtemp(join(tmpdir(), 'gatehouse-exchange-'));
    const targetKeyFile = join(keyDir, 'payments-inner.jwk.json');
    await writeFile(targetKeyFile, JSON.stringify(paymentsKey.privateJwk), { mode: 0o600 });
    const args = ['-I', '-B', SCRIPT, '--issuer', server.issuer, '--client-id', orders.client_id, '--resource', PAYMENTS, '--scope', 'payments:charge', '--escalation-scope', 'payments:refund', '--target-jwk-file', targetKeyFile];
    const { stdout } = await run(PYTHON, args, {
      // Only what the script needs; the secret, the subject token and the keys stay off its command line.
      env: {
        PATH: '/usr/bin:/bin',
        LANG: 'C.UTF-8',
        GATEHOUSE_CLIENT_SECRET: orders.client_secret,
        GATEHOUSE_SUBJECT_TOKEN: subjectToken,
        GATEHOUSE_WRONG_JWK: JSON.stringify(ordersKey.privateJwk),
      },
      timeout: 30_000,
    });
    report = JSON.parse(stdout) as Report;
  });
  after(async () => {
    await server?.close();
    if (keyDir !== undefined) await rm(keyDir, { recursive: true, force: true });
  });

  test('it finds the token endpoint and the JWKS through discovery, which advertises the grant', () => {
    assert.equal(report.token_endpoint, `${server.issuer}/token`);
    assert.equal(report.jwks_uri, `${server.issuer}/jwks`);
    assert.equal(report.grant_advertised, true);
  });

  test('the response: 200, not to be stored, issued_token_type access_token, Bearer, no refresh token, a short expires_in, the narrower scope', () => {
    const { exchange } = report;
    assert.equal(exchange.status, 200, JSON.stringify(exchange));
    assert.match(exchange.cache_control ?? '', /\bno-store\b/);
    assert.equal(exchange.issued_token_type, ACCESS_TOKEN);
    assert.equal(exchange.token_type, 'Bearer');
    assert.equal(exchange.refresh_token_present, false);
    assert.equal(typeof exchange.expires_in, 'number');
    assert.ok(exchange.expires_in! > 0 && exchange.expires_in! <= PAYMENTS_TTL, String(exchange.expires_in));
    assert.equal(exchange.scope, 'payments:charge');
  });

  test('the token verifies with jwcrypto against the JWKS as at+jwt: sub the person, aud payments, client_id and act.sub the caller', () => {
    const token = report.exchange.access_token;
    assert.ok(token, 'an access token');
    assert.equal(token.typ, 'at+jwt');
    assert.equal(token.signature_verified, true);
    assert.equal(token.iss, server.issuer);
    assert.equal(token.sub, userId);
    assert.equal(token.aud, PAYMENTS);
    assert.equal(token.client_id, orders.client_id);
    assert.deepEqual(token.act, { sub: orders.client_id });
    assert.equal(token.scope, 'payments:charge');
  });

  test('exp is no later than the subject token’s and within the target’s access_token_ttl', () => {
    const token = report.exchange.access_token!;
    const subject = decodeJwt(subjectToken);
    assert.ok(token.exp <= subject.exp!, `${token.exp} > subject ${subject.exp}`);
    assert.ok(token.exp - token.iat <= PAYMENTS_TTL, `lifetime ${token.exp - token.iat}`);
    assert.ok(token.exp > token.iat);
  });

  test('the inner layer is ECDH-ES+A256KW / A256GCM to the payments key: it opens with that key only, jti equal to the outer', () => {
    const inner = report.exchange.inner;
    assert.ok(inner, 'an inner layer');
    assert.equal(inner.parts, 5, 'a compact JWE');
    assert.equal(inner.alg, 'ECDH-ES+A256KW');
    assert.equal(inner.enc, 'A256GCM');
    assert.equal(inner.kid, 'payments-inner-1');
    assert.equal(inner.decrypts_with_target_key, true);
    assert.equal(inner.decrypts_with_wrong_key, false, 'the orders key must not open the payments layer');
    assert.equal(inner.jti, report.exchange.access_token!.jti);
    assert.equal(inner.jti_matches_outer, true);
    assert.equal(inner.preferred_username, 'ada');
    assert.equal(inner.email, 'ada@example.com');
    assert.equal(inner.sub, userId);
    assert.equal(inner.client_id, orders.client_id);
  });

  test('a scope the subject token lacks is refused as invalid_scope', () => {
    assert.deepEqual(report.escalation, { status: 400, error: 'invalid_scope', issued_token: false });
  });

  test('a subject token for an audience the caller may not exchange (its own payments token) is refused as invalid_grant', () => {
    assert.deepEqual(report.disallowed_audience, { status: 400, error: 'invalid_grant', issued_token: false });
  });
});
