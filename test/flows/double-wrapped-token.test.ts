import assert from 'node:assert/strict';
import { generateKeyPairSync, type JsonWebKey, type KeyObject } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { compactDecrypt, createLocalJWKSet, decodeJwt, decodeProtectedHeader, errors as joseErrors, jwtVerify, type JSONWebKeySet } from 'jose';
import * as oidc from 'openid-client';
import { createVerifier, VerifierError, type VerifierErrorCode } from '../../src/verifier/index.js';
import { adminToken, createClient, createResourceServer, type ClientBody } from '../support/admin-api.js';
import { startTestServer, type TestServer } from '../support/server.js';

/**
 * SPEC §3's double-wrapped access token, end to end: the `inner` layer inside the signed payload
 * (readable only with the resource server's private key, bound to the token by signature and
 * `jti`), nested whole-token encryption with `cty: "JWT"`, and the shipped verifier reading all three.
 */

interface InnerKey {
  readonly kid: string;
  readonly alg: 'ECDH-ES+A256KW' | 'RSA-OAEP-256';
  readonly publicJwk: JsonWebKey;
  readonly privateKey: KeyObject;
}

function innerKey(kid: string, generate: () => { publicKey: KeyObject; privateKey: KeyObject }, alg: InnerKey['alg']): InnerKey {
  const { publicKey, privateKey } = generate();
  return { kid, alg, privateKey, publicJwk: { ...publicKey.export({ format: 'jwk' }), kid, use: 'enc', alg } };
}

const EC = 'https://ec.double-wrapped.example';
const X25519 = 'https://x25519.double-wrapped.example';
const RSA = 'https://rsa.double-wrapped.example';
const PLAIN = 'https://plain.double-wrapped.example';
const WHOLE = 'https://whole.double-wrapped.example';
const CLIENT_NAME = 'Orders worker';
const decryptOptions = { keyManagementAlgorithms: ['ECDH-ES+A256KW', 'RSA-OAEP-256'], contentEncryptionAlgorithms: ['A256GCM'] };

const keys = {
  ec: innerKey('ec-p256-1', () => generateKeyPairSync('ec', { namedCurve: 'P-256' }), 'ECDH-ES+A256KW'),
  x25519: innerKey('x25519-1', () => generateKeyPairSync('x25519'), 'ECDH-ES+A256KW'),
  rsa: innerKey('rsa-2048-1', () => generateKeyPairSync('rsa', { modulusLength: 2048 }), 'RSA-OAEP-256'),
  whole: innerKey('whole-p256-1', () => generateKeyPairSync('ec', { namedCurve: 'P-256' }), 'ECDH-ES+A256KW'),
  stranger: innerKey('ec-p256-1', () => generateKeyPairSync('ec', { namedCurve: 'P-256' }), 'ECDH-ES+A256KW'),
};

async function decryptToJson(compact: string, key: KeyObject): Promise<{ value: Record<string, unknown>; header: Record<string, unknown> }> {
  const { plaintext, protectedHeader } = await compactDecrypt(compact, key, decryptOptions);
  return { value: JSON.parse(new TextDecoder().decode(plaintext)) as Record<string, unknown>, header: protectedHeader };
}

function innerOf(token: string): string {
  const inner = decodeJwt(token)['inner'];
  assert.equal(typeof inner, 'string', 'the token has no inner layer');
  return inner as string;
}

async function rejectsWithCode(promise: Promise<unknown>, code: VerifierErrorCode): Promise<void> {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof VerifierError, String(error));
    assert.equal(error.code, code);
    return true;
  });
}

describe('the double-wrapped access token (SPEC §3)', () => {
  let server: TestServer;
  let client: ClientBody;
  let config: oidc.Configuration;
  let jwks: JSONWebKeySet;

  async function tokenFor(resource: string): Promise<string> {
    return (await oidc.clientCredentialsGrant(config, { scope: 'read', resource })).access_token;
  }

  function verifyJws(jws: string, audience: string) {
    return jwtVerify(jws, createLocalJWKSet(jwks), { issuer: server.issuer, audience, typ: 'at+jwt', algorithms: ['ES256'] });
  }

  before(async () => {
    server = await startTestServer();
    const token = await adminToken(server, 'admin:clients admin:resource-servers');
    for (const [identifier, extra] of [
      [EC, { inner_encryption_jwk: keys.ec.publicJwk }],
      [X25519, { inner_encryption_jwk: keys.x25519.publicJwk }],
      [RSA, { inner_encryption_jwk: keys.rsa.publicJwk }],
      [PLAIN, {}],
      [WHOLE, { inner_encryption_jwk: keys.whole.publicJwk, encrypt_whole_token: true }],
    ] as const) {
      await createResourceServer(server, { identifier, name: identifier, scopes: ['read'], ...extra }, token);
    }
    client = await createClient(server, { client_name: CLIENT_NAME, allowed_resources: [EC, X25519, RSA, PLAIN, WHOLE] }, token);
    config = await oidc.discovery(new URL(server.issuer), client.client_id, client.client_secret, oidc.ClientSecretBasic(client.client_secret), {
      execute: [oidc.allowInsecureRequests],
    });
    jwks = (await (await fetch(config.serverMetadata().jwks_uri!)).json()) as JSONWebKeySet;
  });
  after(() => server?.close());

  test('inner decrypts with the resource server’s private key to exactly jti, client_id and client_name', async () => {
    const token = await tokenFor(EC);
    const { payload } = await verifyJws(token, EC);
    const { value, header } = await decryptToJson(innerOf(token), keys.ec.privateKey);
    assert.deepEqual(value, { jti: payload.jti, client_id: client.client_id, client_name: CLIENT_NAME });
    assert.equal(header['alg'], 'ECDH-ES+A256KW');
    assert.equal(header['enc'], 'A256GCM');
    assert.equal(header['kid'], keys.ec.kid);
    assert.deepEqual((header['epk'] as Record<string, unknown>)['crv'], 'P-256');
  });

  test('inner does not decrypt with another key, even one with the same kid and curve', async () => {
    const inner = innerOf(await tokenFor(EC));
    await assert.rejects(compactDecrypt(inner, keys.stranger.privateKey, decryptOptions), joseErrors.JWEDecryptionFailed);
    await assert.rejects(compactDecrypt(inner, keys.whole.privateKey, decryptOptions), joseErrors.JWEDecryptionFailed);
    await assert.rejects(compactDecrypt(inner, keys.x25519.privateKey, decryptOptions));
  });

  test('each token gets its own inner layer, bound to its jti', async () => {
    const [first, second] = [await tokenFor(EC), await tokenFor(EC)];
    assert.notEqual(innerOf(first), innerOf(second));
    assert.equal((await decryptToJson(innerOf(first), keys.ec.privateKey)).value['jti'], decodeJwt(first).jti);
    assert.equal((await decryptToJson(innerOf(second), keys.ec.privateKey)).value['jti'], decodeJwt(second).jti);
    assert.notEqual(decodeJwt(first).jti, decodeJwt(second).jti);
  });

  test('swapping inner between two tokens breaks the signature', async () => {
    const [victim, donor] = [await tokenFor(EC), await tokenFor(EC)];
    const [header, , signature] = victim.split('.') as [string, string, string];
    const forgedPayload = { ...decodeJwt(victim), inner: innerOf(donor) };
    const forged = [header, Buffer.from(JSON.stringify(forgedPayload)).toString('base64url'), signature].join('.');
    await assert.rejects(verifyJws(forged, EC), joseErrors.JWSSignatureVerificationFailed);
    // The original still verifies: the failure is the swap, not the set-up.
    await verifyJws(victim, EC);
    const verifier = createVerifier({ issuer: server.issuer, audience: EC, innerKey: keys.ec.privateKey, jwksUri: config.serverMetadata().jwks_uri! });
    await rejectsWithCode(verifier.verify(forged), 'signature_invalid');
  });

  for (const [name, resource, key] of [
    ['X25519', X25519, keys.x25519],
    ['RSA', RSA, keys.rsa],
  ] as const) {
    test(`an ${name} inner key works too (${key.alg})`, async () => {
      const token = await tokenFor(resource);
      const { payload } = await verifyJws(token, resource);
      const { value, header } = await decryptToJson(innerOf(token), key.privateKey);
      assert.deepEqual(value, { jti: payload.jti, client_id: client.client_id, client_name: CLIENT_NAME });
      assert.equal(header['alg'], key.alg);
      assert.equal(header['enc'], 'A256GCM');
      assert.equal(header['kid'], key.kid);
      await assert.rejects(compactDecrypt(innerOf(token), keys.ec.privateKey, decryptOptions));
    });
  }

  test('a resource server without an inner key issues tokens without inner', async () => {
    const token = await tokenFor(PLAIN);
    const { payload } = await verifyJws(token, PLAIN);
    assert.equal('inner' in payload, false);
    assert.deepEqual(Object.keys(payload).sort(), ['aud', 'client_id', 'exp', 'iat', 'iss', 'jti', 'scope', 'sub']);
  });

  test('encrypt_whole_token: a nested JWT (RFC 7519 §5.2) with cty "JWT" around the signed token, inner included', async () => {
    const tokens = await oidc.clientCredentialsGrant(config, { scope: 'read', resource: WHOLE });
    assert.equal(tokens.token_type.toLowerCase(), 'bearer');
    const token = tokens.access_token;
    assert.equal(token.split('.').length, 5, 'a JWE compact serialization');
    const header = decodeProtectedHeader(token);
    assert.equal(header.cty, 'JWT');
    assert.equal(header.alg, 'ECDH-ES+A256KW');
    assert.equal(header.enc, 'A256GCM');
    assert.equal(header.kid, keys.whole.kid);
    assert.equal(header.crit, undefined, 'nothing a standard recipient must understand');

    const { plaintext, protectedHeader } = await compactDecrypt(token, keys.whole.privateKey, decryptOptions);
    assert.equal(protectedHeader.cty, 'JWT');
    const jws = new TextDecoder().decode(plaintext);
    assert.equal(jws.split('.').length, 3);
    const { payload, protectedHeader: jwsHeader } = await verifyJws(jws, WHOLE);
    assert.equal(jwsHeader.typ, 'at+jwt');
    assert.equal(payload.sub, client.client_id);
    const { value } = await decryptToJson(innerOf(jws), keys.whole.privateKey);
    assert.deepEqual(value, { jti: payload.jti, client_id: client.client_id, client_name: CLIENT_NAME });

    await assert.rejects(compactDecrypt(token, keys.stranger.privateKey, decryptOptions), joseErrors.JWEDecryptionFailed);
  });

  test('tokens for other resource servers stay plain JWS', async () => {
    for (const resource of [EC, X25519, RSA, PLAIN]) assert.equal((await tokenFor(resource)).split('.').length, 3, resource);
  });

  test('the shipped verifier reads a plain, an inner and a whole-encrypted token', async () => {
    const jwksUri = config.serverMetadata().jwks_uri!;

    const plain = await tokenFor(PLAIN);
    const plainResult = await createVerifier({ issuer: server.issuer, audience: PLAIN, jwksUri }).verify(plain);
    assert.equal(plainResult.claims.jti, decodeJwt(plain).jti);
    assert.equal(plainResult.claims.client_id, client.client_id);
    assert.equal(plainResult.inner, undefined);

    // Through discovery (no jwksUri), with the inner key as a private JWK object.
    const withInner = await tokenFor(EC);
    const privateJwk = keys.ec.privateKey.export({ format: 'jwk' });
    const innerResult = await createVerifier({ issuer: server.issuer, audience: EC, innerKey: privateJwk }).verify(withInner);
    assert.equal(innerResult.claims.aud, EC);
    assert.deepEqual(innerResult.inner, { jti: innerResult.claims.jti, client_id: client.client_id, client_name: CLIENT_NAME });
    // Without the key, the claims still verify and inner stays sealed.
    assert.equal((await createVerifier({ issuer: server.issuer, audience: EC, jwksUri }).verify(withInner)).inner, undefined);

    const whole = await tokenFor(WHOLE);
    const wholeVerifier = createVerifier({ issuer: server.issuer, audience: WHOLE, innerKey: keys.whole.privateKey, jwksUri });
    const wholeResult = await wholeVerifier.verify(whole);
    assert.equal(wholeResult.claims.aud, WHOLE);
    assert.equal(wholeResult.claims.sub, client.client_id);
    assert.deepEqual(wholeResult.inner, { jti: wholeResult.claims.jti, client_id: client.client_id, client_name: CLIENT_NAME });
  });

  test('the verifier refuses the wrong inner key, the wrong audience and a whole-encrypted token without a key', async () => {
    const jwksUri = config.serverMetadata().jwks_uri!;
    const withInner = await tokenFor(EC);
    await rejectsWithCode(createVerifier({ issuer: server.issuer, audience: EC, innerKey: keys.stranger.privateKey, jwksUri }).verify(withInner), 'inner_invalid');
    await rejectsWithCode(createVerifier({ issuer: server.issuer, audience: RSA, innerKey: keys.rsa.privateKey, jwksUri }).verify(withInner), 'wrong_audience');
    const whole = await tokenFor(WHOLE);
    await rejectsWithCode(createVerifier({ issuer: server.issuer, audience: WHOLE, jwksUri }).verify(whole), 'inner_invalid');
    await rejectsWithCode(createVerifier({ issuer: server.issuer, audience: WHOLE, innerKey: keys.ec.privateKey, jwksUri }).verify(whole), 'inner_invalid');
  });
});
