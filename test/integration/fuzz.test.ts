import assert from 'node:assert/strict';
import { generateKeyPairSync, type JsonWebKey } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import fc from 'fast-check';
import * as oidc from 'openid-client';
import { normalizeUsername, USERNAME_PATTERN } from '../../src/accounts/usernames.js';
import { clientDefinition } from '../../src/management/clients/schema.js';
import { createResourceServerBody } from '../../src/management/resource-servers/schema.js';
import { patchUserBody } from '../../src/management/users/schema.js';
import { adminCall, adminToken, clientCredentials, createClient, createResourceServer, type ClientBody } from '../support/admin-api.js';
import { CookieClient, formAction, hiddenField } from '../support/cookie-client.js';
import {
  chunked,
  component,
  contentType,
  edited,
  exchange,
  FORM,
  hasLoneSurrogate,
  headerSafe,
  hostileText,
  jsonish,
  longText,
  METHODS,
  mostly,
  oddText,
  pairs,
  percentEncode,
  query,
  rawForUrl,
  strangeBody,
  utf8,
  withQuery,
  type Answer,
  type Body,
  type HostileRequest,
} from '../support/hostile-input.js';
import { pkceParams, signIn, startAuthorization } from '../support/sign-in.js';
import { startTestServer, type TestServer } from '../support/server.js';

/**
 * Hostile input (SPEC §2, §5, §6): property-based fuzzing of the token, introspection, revocation,
 * authorization, logout, userinfo, interaction and admin endpoints with malformed, oversized,
 * wrongly typed and duplicated parameters, wrong content types, bodies past every size limit,
 * unicode oddities (NUL, lone surrogates, bidi marks, 100 KB strings), percent-encoded garbage
 * and forged Authorization headers. Every answer must be a 4xx at worst (the database is up, so
 * not even a 503), within 10 s; afterwards the server is healthy, still issues tokens, and every
 * stored client, resource server and user is one the admin API's own validation would accept.
 *
 * A fixed seed runs with the suite; `npm run fuzz` is the long run (FUZZ_RUNS=5000), and
 * FUZZ_SEED replays another seed.
 */

const SEED = Number(process.env['FUZZ_SEED'] ?? 20261123);
const RUNS = Number(process.env['FUZZ_RUNS'] ?? 1500);
const REQUEST_TIMEOUT_MS = 10_000;

const API = 'https://api.fuzz.example';
const OTHER_API = 'https://other.fuzz.example';
const REDIRECT = 'http://127.0.0.1:9/callback';
const LOGOUT_REDIRECT = 'http://127.0.0.1:9/bye';
const USERNAME = 'fuzzy';
const PASSWORD = 'correct horse battery staple';
const ALL_ADMIN_SCOPES = 'admin:clients admin:resource-servers admin:users admin:keys admin:audit';
/** Stands for a fresh admin API token, resolved when the request is sent (tokens expire in a long run). */
const ADMIN_BEARER = 'Bearer <admin token>';
/** RFC 7636 Appendix B's verifier and its S256 challenge. */
const CODE_VERIFIER = 'dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk';
const CODE_CHALLENGE = 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM';

/** What the generators draw real values from. */
interface Fixture {
  readonly client: ClientBody & { client_secret: string };
  /** Ids the admin API fuzzing may change or delete (the fixture above stays intact). */
  readonly victims: { readonly clientId: string; readonly resourceServerId: string; readonly userId: string };
  /** A client-credentials token for API: the wrong audience for /me and the admin API. */
  readonly apiToken: string;
  /** From a real sign-in: a userinfo token, a refresh token and an ID token. */
  readonly userinfoToken: string;
  readonly refreshToken: string;
  readonly idToken: string;
  /** Cookies of a browser that signed in (an SSO session) and of one stopped at the login page. */
  readonly sessionCookies: string;
  readonly interaction: { readonly uid: string; readonly csrf: string; readonly cookies: string };
  /** Real public keys, for bodies that should get past validation: one to sign with, one to encrypt to. */
  readonly signingJwk: JsonWebKey;
  readonly encryptionJwk: JsonWebKey;
}

function cookieHeader(browser: CookieClient): string {
  return [...browser.cookies].map(([name, value]) => `${name}=${value}`).join('; ');
}

async function setUpFixture(server: TestServer): Promise<Fixture> {
  const admin = await adminToken(server, ALL_ADMIN_SCOPES);
  await createResourceServer(server, { identifier: API, name: 'Fuzz API', scopes: ['read', 'write'] }, admin);
  await createResourceServer(server, { identifier: OTHER_API, name: 'Other API', scopes: ['other'] }, admin);
  const created = await adminCall<ClientBody & { client_secret: string }>(
    server,
    'POST',
    '/clients',
    {
      client_name: 'Fuzz client',
      grant_types: ['authorization_code', 'refresh_token', 'client_credentials'],
      redirect_uris: [REDIRECT],
      post_logout_redirect_uris: [LOGOUT_REDIRECT],
      allowed_resources: [API, OTHER_API],
      scope: 'openid profile email offline_access read write other',
      first_party: true,
    },
    admin,
  );
  assert.equal(created.status, 201, JSON.stringify(created.body));
  const client = created.body;
  const user = await adminCall<{ id: string }>(server, 'POST', '/users', { username: USERNAME, password: PASSWORD, email: 'fuzzy@example.com' }, admin);
  assert.equal(user.status, 201, JSON.stringify(user.body));

  const victimRs = await createResourceServer(server, { identifier: 'https://victim.fuzz.example', name: 'Victim', scopes: ['v'] }, admin);
  const victimClient = await createClient(server, { client_name: 'Victim', allowed_resources: ['https://victim.fuzz.example'] }, admin);
  const victimUser = await adminCall<{ id: string }>(server, 'POST', '/users', { username: 'victim', password: PASSWORD }, admin);
  assert.equal(victimUser.status, 201);

  const token = await clientCredentials(server, client.client_id, client.client_secret, { resource: API, scope: 'read' });
  assert.equal(token.status, 200, JSON.stringify(token.body));

  // A real sign-in, for a userinfo token, a refresh token, an ID token and an SSO session.
  const config = await oidc.discovery(new URL(server.issuer), client.client_id, client.client_secret, undefined, { execute: [oidc.allowInsecureRequests] });
  const signedIn = new CookieClient();
  const auth = await pkceParams(REDIRECT, 'openid profile email offline_access', { prompt: 'consent' });
  const { callback } = await signIn(signedIn, config, server.url, auth.params, { username: USERNAME, password: PASSWORD });
  const tokens = await oidc.authorizationCodeGrant(config, callback, { pkceCodeVerifier: auth.verifier, expectedState: auth.state, expectedNonce: auth.nonce });
  assert.ok(tokens.refresh_token !== undefined && tokens.id_token !== undefined);

  // A sign-in left at the login page: its interaction uid, CSRF token and cookies.
  const pending = new CookieClient();
  const page = await startAuthorization(pending, config, server.url, (await pkceParams(REDIRECT, 'openid')).params);
  const html = await page.text();
  const action = formAction(html, /\/login$/);
  const csrf = hiddenField(html, 'csrf');
  assert.ok(action !== undefined && csrf !== undefined, 'a login page');
  const uid = /\/interaction\/([^/]+)\/login$/.exec(action)?.[1];
  assert.ok(uid !== undefined);

  return {
    client,
    victims: { clientId: victimClient.client_id, resourceServerId: victimRs.id, userId: victimUser.body.id },
    apiToken: token.body['access_token'] as string,
    userinfoToken: tokens.access_token,
    refreshToken: tokens.refresh_token,
    idToken: tokens.id_token,
    sessionCookies: cookieHeader(signedIn),
    interaction: { uid, csrf, cookies: cookieHeader(pending) },
    signingJwk: { ...generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ format: 'jwk' }), alg: 'ES256', use: 'sig' },
    encryptionJwk: { ...generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ format: 'jwk' }), use: 'enc' },
  };
}

// ---------------------------------------------------------------------------------------------
// Requests (the hostile values themselves are in test/support/hostile-input.ts)

/** Parameters the provider's endpoints read, so generated forms and queries use real names. */
const OAUTH_PARAMS = [
  'grant_type',
  'client_id',
  'client_secret',
  'scope',
  'resource',
  'code',
  'refresh_token',
  'token',
  'token_type_hint',
  'redirect_uri',
  'code_verifier',
  'code_challenge',
  'code_challenge_method',
  'response_type',
  'response_mode',
  'state',
  'nonce',
  'prompt',
  'max_age',
  'login_hint',
  'id_token_hint',
  'post_logout_redirect_uri',
  'logout_hint',
  'acr_values',
  'claims',
  'request',
  'request_uri',
  'client_assertion',
  'client_assertion_type',
  'ui_locales',
  'xsrf',
  'logout',
];

function basic(id: string, secret: string): string {
  // RFC 6749 §2.3.1: form-urlencoded, then Basic.
  return `Basic ${Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString('base64')}`;
}

/** Authorization header values: none, garbage, and real credentials used where they do not belong. */
function authorizations(fixture: Fixture): fc.Arbitrary<string | null> {
  const { client } = fixture;
  const rawBasic = (id: string, secret: string) => `Basic ${Buffer.from(`${id}:${secret}`).toString('base64')}`;
  return fc.oneof(
    fc.constant(null),
    fc.constant(basic(client.client_id, client.client_secret)),
    oddText.map((secret) => rawBasic(client.client_id, secret)),
    fc.tuple(oddText, oddText).map(([id, secret]) => rawBasic(id, secret)),
    fc.tuple(oddText, oddText).map(([id, secret]) => rawBasic(percentEncode(id), rawForUrl(secret))),
    oddText.map((garbage) => `Basic ${headerSafe(garbage)}`),
    oddText.map((garbage) => `Bearer ${headerSafe(garbage)}`),
    fc.constantFrom(`Bearer ${fixture.apiToken}`, `Bearer ${fixture.userinfoToken}`, `Bearer ${fixture.idToken}`, ADMIN_BEARER, `bearer ${fixture.userinfoToken}`),
    oddText.map(headerSafe),
  );
}

/** A few more headers the server reads: cookies, origin (CORS), request id, If-Match, proxies. */
function extraHeaders(known: readonly string[]): fc.Arbitrary<Record<string, string>> {
  return fc.dictionary(
    fc.constantFrom('accept', 'origin', 'cookie', 'x-request-id', 'if-match', 'if-none-match', 'x-forwarded-for', 'x-forwarded-proto', 'accept-language', 'content-encoding'),
    fc.oneof(
      { weight: 20, arbitrary: oddText.map(headerSafe) },
      { weight: 20, arbitrary: fc.constantFrom(...known, 'http://127.0.0.1:9', 'null', 'gzip', 'application/json', 'text/html') },
      { weight: 1, arbitrary: longText.map(headerSafe) },
    ),
    { maxKeys: 2 },
  );
}

function assemble(parts: {
  method: string;
  path: string;
  contentType: string | null;
  authorization: string | null;
  cookie?: string | null;
  extra: Record<string, string>;
  body: Body | null;
  chunked: boolean;
}): HostileRequest {
  const headers: Record<string, string> = { ...parts.extra };
  if (parts.cookie !== undefined && parts.cookie !== null) headers['cookie'] = parts.cookie;
  if (parts.contentType !== null) headers['content-type'] = parts.contentType;
  if (parts.authorization !== null) headers['authorization'] = parts.authorization;
  return { method: parts.method, path: parts.path, headers, body: parts.body, chunked: parts.chunked };
}

interface Endpoint {
  readonly method: string;
  readonly path: string;
  /** Where the parameters go. */
  readonly in: 'query' | 'body';
  /** A valid request's parameters, which the fuzzer edits. */
  readonly params: readonly (readonly [string, string])[];
  readonly authorization: string | null;
}

/** The provider's endpoints: token, introspection, revocation, authorization, logout, userinfo, discovery. */
function protocolRequests(fixture: Fixture): fc.Arbitrary<HostileRequest> {
  const { client } = fixture;
  const clientAuth = basic(client.client_id, client.client_secret);
  const realValues = [
    client.client_id,
    client.client_secret,
    API,
    OTHER_API,
    REDIRECT,
    LOGOUT_REDIRECT,
    fixture.apiToken,
    fixture.userinfoToken,
    fixture.refreshToken,
    fixture.idToken,
    'client_credentials',
    'authorization_code',
    'refresh_token',
    'urn:ietf:params:oauth:grant-type:device_code',
    'access_token',
    'openid',
    'openid offline_access read',
    'read write other',
    'code',
    'code id_token',
    'S256',
    'plain',
    'none',
    'login consent',
    'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
    'eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.',
    '{"userinfo":{"email":null}}',
    'urn:gatehouse:acr:mfa',
    USERNAME,
  ];
  const real = fc.constantFrom(...realValues);
  const values = fc.oneof({ weight: 3, arbitrary: hostileText }, { weight: 2, arbitrary: real });
  // Long values in a URL only meet Node's 431; query() adds one now and then.
  const shortValues = fc.oneof({ weight: 3, arbitrary: oddText }, { weight: 2, arbitrary: real });
  const authorize: Endpoint['params'] = [
    ['client_id', client.client_id],
    ['redirect_uri', REDIRECT],
    ['response_type', 'code'],
    ['scope', 'openid'],
    ['code_challenge', CODE_CHALLENGE],
    ['code_challenge_method', 'S256'],
    ['state', 'fuzz-state'],
    ['nonce', 'fuzz-nonce'],
  ];
  const endpoints: Endpoint[] = [
    { method: 'POST', path: '/token', in: 'body', authorization: clientAuth, params: [['grant_type', 'client_credentials'], ['resource', API], ['scope', 'read']] },
    { method: 'POST', path: '/token', in: 'body', authorization: clientAuth, params: [['grant_type', 'refresh_token'], ['refresh_token', fixture.refreshToken]] },
    {
      method: 'POST',
      path: '/token',
      in: 'body',
      authorization: clientAuth,
      params: [['grant_type', 'authorization_code'], ['code', 'not-a-code'], ['redirect_uri', REDIRECT], ['code_verifier', CODE_VERIFIER]],
    },
    {
      method: 'POST',
      path: '/token',
      in: 'body',
      authorization: null,
      params: [['grant_type', 'client_credentials'], ['client_id', client.client_id], ['client_secret', client.client_secret], ['resource', API]],
    },
    { method: 'POST', path: '/token/introspection', in: 'body', authorization: clientAuth, params: [['token', fixture.apiToken]] },
    { method: 'POST', path: '/token/introspection', in: 'body', authorization: clientAuth, params: [['token', fixture.userinfoToken], ['token_type_hint', 'access_token']] },
    { method: 'POST', path: '/token/revocation', in: 'body', authorization: clientAuth, params: [['token', fixture.apiToken], ['token_type_hint', 'access_token']] },
    { method: 'GET', path: '/auth', in: 'query', authorization: null, params: authorize },
    { method: 'POST', path: '/auth', in: 'body', authorization: null, params: authorize },
    { method: 'GET', path: '/session/end', in: 'query', authorization: null, params: [['id_token_hint', fixture.idToken], ['post_logout_redirect_uri', LOGOUT_REDIRECT], ['state', 's']] },
    { method: 'POST', path: '/session/end/confirm', in: 'body', authorization: null, params: [['xsrf', 'not-the-xsrf'], ['logout', 'yes']] },
    { method: 'GET', path: '/me', in: 'query', authorization: `Bearer ${fixture.userinfoToken}`, params: [] },
    { method: 'POST', path: '/me', in: 'body', authorization: `Bearer ${fixture.userinfoToken}`, params: [] },
    { method: 'GET', path: '/jwks', in: 'query', authorization: null, params: [] },
    { method: 'GET', path: '/.well-known/openid-configuration', in: 'query', authorization: null, params: [] },
  ];
  return fc.constantFrom(...endpoints).chain((endpoint) => {
    const inBody = endpoint.in === 'body';
    const paramValues = inBody ? values : shortValues;
    const params = fc.oneof({ weight: 3, arbitrary: edited(endpoint.params, OAUTH_PARAMS, paramValues) }, { weight: 1, arbitrary: pairs(OAUTH_PARAMS, paramValues) });
    return fc
      .record({
        method: mostly(endpoint.method, fc.constantFrom(...METHODS), 6),
        search: inBody ? query(OAUTH_PARAMS, shortValues) : params,
        body: inBody ? fc.oneof({ weight: 4, arbitrary: params.map(utf8) }, { weight: 1, arbitrary: strangeBody }) : mostly<Body | null>(null, strangeBody),
        contentType: inBody ? mostly<string | null>(FORM, contentType, 3) : contentType,
        authorization: mostly(endpoint.authorization, authorizations(fixture), 2),
        cookie: fc.constantFrom(null, fixture.sessionCookies, fixture.interaction.cookies),
        extra: extraHeaders([fixture.sessionCookies]),
        chunked,
      })
      .map((r) => assemble({ ...r, path: withQuery(endpoint.path, r.search) }));
  });
}

/** The hosted pages, with the pending sign-in's real uid, cookies and CSRF token, or garbage. */
function interactionRequests(fixture: Fixture): fc.Arbitrary<HostileRequest> {
  const { interaction } = fixture;
  const names = ['csrf', 'username', 'password', 'code'];
  const real = fc.constantFrom(interaction.csrf, USERNAME, '123456', 'ABCD-EFGH-IJKL');
  const values = fc.oneof({ weight: 3, arbitrary: hostileText }, { weight: 1, arbitrary: real });
  const shortValues = fc.oneof({ weight: 3, arbitrary: oddText }, { weight: 1, arbitrary: real });
  const steps: readonly { readonly step: string; readonly form: readonly (readonly [string, string])[] }[] = [
    { step: '', form: [] },
    { step: '/login', form: [['csrf', interaction.csrf], ['username', USERNAME], ['password', 'not the password']] },
    { step: '/second-factor', form: [['csrf', interaction.csrf], ['code', '123456']] },
    { step: '/consent', form: [['csrf', interaction.csrf]] },
    // A real CSRF token here would end the pending sign-in for the rest of the run.
    { step: '/abort', form: [['csrf', 'not-the-csrf-token']] },
  ];
  return fc.constantFrom(...steps).chain(({ step, form }) =>
    fc
      .record({
        method: mostly(step === '' ? 'GET' : 'POST', fc.constantFrom(...METHODS), 5),
        uid: mostly(interaction.uid, component(oddText), 3),
        step: mostly(step, component(oddText).map((s) => `/${s}`), 8),
        search: mostly('', pairs(names, shortValues), 5),
        body: fc.oneof({ weight: 4, arbitrary: edited(form, names, values).map(utf8) }, { weight: 1, arbitrary: strangeBody }),
        contentType: mostly<string | null>(FORM, contentType, 3),
        cookie: fc.constantFrom(interaction.cookies, interaction.cookies, fixture.sessionCookies, null),
        extra: extraHeaders([interaction.cookies]),
        chunked,
      })
      .map((r) => assemble({ ...r, authorization: null, path: withQuery(`/interaction/${r.uid}${r.step}`, r.search) })),
  );
}

type AdminArea = 'clients' | 'resource-servers' | 'users' | 'keys' | 'audit-events' | 'other';

/** The admin routes; `weight` favours the ones that write, `methods` repeats the likelier method. */
const ADMIN_ROUTES: readonly { readonly path: string; readonly area: AdminArea; readonly methods: readonly string[]; readonly weight: number }[] = [
  { path: '/clients', area: 'clients', methods: ['POST', 'POST', 'POST', 'GET'], weight: 6 },
  { path: '/clients/{id}', area: 'clients', methods: ['PATCH', 'PATCH', 'GET', 'DELETE'], weight: 4 },
  { path: '/clients/{id}/secret', area: 'clients', methods: ['POST'], weight: 1 },
  { path: '/resource-servers', area: 'resource-servers', methods: ['POST', 'POST', 'POST', 'GET'], weight: 6 },
  { path: '/resource-servers/{id}', area: 'resource-servers', methods: ['PATCH', 'PATCH', 'GET', 'DELETE'], weight: 4 },
  { path: '/users', area: 'users', methods: ['POST', 'POST', 'POST', 'GET'], weight: 5 },
  { path: '/users/{id}', area: 'users', methods: ['PATCH', 'PATCH', 'GET', 'DELETE'], weight: 3 },
  { path: '/users/{id}/mfa', area: 'users', methods: ['DELETE'], weight: 1 },
  { path: '/keys', area: 'keys', methods: ['GET'], weight: 1 },
  { path: '/keys/rotate', area: 'keys', methods: ['POST'], weight: 1 },
  { path: '/keys/{id}/revoke', area: 'keys', methods: ['POST'], weight: 1 },
  { path: '/audit-events', area: 'audit-events', methods: ['GET'], weight: 2 },
  { path: '/openapi.json', area: 'other', methods: ['GET'], weight: 1 },
  { path: '', area: 'other', methods: ['GET'], weight: 1 },
  { path: '/{id}', area: 'other', methods: ['GET', 'POST'], weight: 1 },
];

const ADMIN_QUERY = ['limit', 'cursor', 'client_name', 'username', 'email', 'type', 'since', 'actor', 'target'];

/** Stands for the id the last successful create in that area returned (resolved when sent). */
const LAST_CREATED = '{last-created}';

/** A URI near `base`: itself, with odd text appended, odd text alone, or any web URL. */
function uriNear(base: string): fc.Arbitrary<string> {
  return fc.oneof(
    fc.constant(base),
    oddText.map((s) => `${base}/${s}`),
    oddText.map((s) => `${base}?q=${s}`),
    oddText,
    fc.webUrl({ withQueryParameters: true, withFragments: true }),
  );
}

/** A JWK: a real public key, one with a member changed, or any object. */
function jwkNear(jwk: JsonWebKey): fc.Arbitrary<unknown> {
  return fc.oneof(
    fc.constant(jwk),
    fc.tuple(fc.constantFrom('kty', 'crv', 'x', 'y', 'kid', 'use', 'alg', 'd', 'ext'), fc.oneof(oddText, jsonish)).map(([member, value]) => ({ ...jwk, [member]: value })),
    fc.dictionary(oddText, jsonish, { maxKeys: 4 }),
  );
}

interface AdminShape {
  /** Valid bodies for the area's create (and, field by field, update). */
  readonly valid: fc.Arbitrary<Record<string, unknown>>;
  /** For each field, values of the right type but odd content. */
  readonly fields: Record<string, fc.Arbitrary<unknown>>;
}

function adminShapes(fixture: Fixture): Record<AdminArea, AdminShape> {
  const list = <T>(item: fc.Arbitrary<T>) => fc.array(item, { maxLength: 4 });
  const grants = ['authorization_code', 'refresh_token', 'client_credentials'];
  return {
    clients: {
      valid: fc.constantFrom<Record<string, unknown>>(
        { client_name: 'Fuzzed service', grant_types: ['client_credentials'], allowed_resources: [API], scope: 'read' },
        {
          client_name: 'Fuzzed app',
          grant_types: ['authorization_code', 'refresh_token'],
          redirect_uris: ['https://app.fuzz.example/cb', 'http://127.0.0.1:9/cb'],
          post_logout_redirect_uris: ['https://app.fuzz.example/bye'],
          allowed_resources: [API, OTHER_API],
          scope: 'openid offline_access read other',
          require_mfa: true,
          first_party: false,
        },
        { client_name: 'Fuzzed keys', grant_types: ['client_credentials'], token_endpoint_auth_method: 'private_key_jwt', jwks: { keys: [fixture.signingJwk] }, allowed_resources: [API] },
        { client_name: 'Fuzzed public', grant_types: ['authorization_code'], token_endpoint_auth_method: 'none', redirect_uris: ['http://127.0.0.1:9/cb'] },
      ),
      fields: {
        client_name: hostileText,
        grant_types: fc.oneof(fc.subarray(grants), list(fc.constantFrom(...grants, 'implicit', 'password', ''))),
        redirect_uris: list(fc.oneof(uriNear('https://app.fuzz.example'), uriNear('http://127.0.0.1:9'))),
        post_logout_redirect_uris: list(uriNear('https://app.fuzz.example')),
        response_types: fc.constantFrom([], ['code'], ['token'], ['code', 'code']),
        token_endpoint_auth_method: fc.constantFrom('client_secret_basic', 'client_secret_post', 'private_key_jwt', 'none', 'client_secret_jwt', 'tls_client_auth'),
        scope: fc.oneof(fc.constantFrom('read', 'openid read', 'openid offline_access', 'write other', 'read read', ''), oddText),
        jwks: fc.record({ keys: list(jwkNear(fixture.signingJwk)) }),
        jwks_uri: uriNear('https://keys.fuzz.example'),
        allowed_resources: list(fc.oneof(fc.constantFrom(API, OTHER_API), uriNear(API))),
        require_mfa: fc.boolean(),
        first_party: fc.boolean(),
      },
    },
    'resource-servers': {
      valid: fc.oneof(
        fc.nat({ max: 10_000 }).map((n) => ({ identifier: `https://rs${n}.fuzz.example`, name: 'Fuzzed API', scopes: ['read'] })),
        fc.nat({ max: 10_000 }).map((n) => ({
          identifier: `https://rs${n}.fuzz.example/api`,
          name: 'Fuzzed encrypted API',
          scopes: ['read', 'write'],
          access_token_ttl: 600,
          signing_alg: 'PS256',
          inner_encryption_jwk: fixture.encryptionJwk,
          encrypt_whole_token: true,
        })),
      ),
      fields: {
        identifier: uriNear('https://rs.fuzz.example'),
        name: hostileText,
        scopes: list(fc.oneof(fc.constantFrom('read', 'write', 'openid', 'a:b'), oddText)),
        access_token_ttl: fc.oneof(fc.integer(), fc.double(), fc.constantFrom(60, 86_400, 59, 86_401, 1e308, -1)),
        signing_alg: fc.constantFrom('ES256', 'EdDSA', 'PS256', 'RS256', 'HS256', 'none', 'es256'),
        inner_encryption_jwk: fc.oneof(fc.constant(null), jwkNear(fixture.encryptionJwk)),
        encrypt_whole_token: fc.boolean(),
      },
    },
    users: {
      valid: fc.oneof(
        fc.stringMatching(/^[a-z][a-z0-9]{2,12}$/).map((username) => ({ username, password: PASSWORD })),
        fc.stringMatching(/^[a-z][a-z0-9]{2,12}$/).map((username) => ({
          username,
          password: PASSWORD,
          email: `${username}@example.com`,
          email_verified: true,
          name: 'Fuzzy Person',
          roles: ['reader'],
          mfa_required: false,
          disabled: false,
        })),
      ),
      fields: {
        username: fc.oneof(oddText, oddText.map((s) => `u${s}`), fc.string({ unit: 'binary', minLength: 1, maxLength: 70 })),
        password: fc.oneof(hostileText, oddText.map((s) => `${PASSWORD}${s}`)),
        email: fc.oneof(fc.emailAddress(), oddText, oddText.map((s) => `${s}@example.com`), fc.constant(null)),
        email_verified: fc.boolean(),
        name: fc.oneof(hostileText, fc.constant(null)),
        roles: list(fc.oneof(fc.constantFrom('admin', 'a.b:c-d'), oddText)),
        mfa_required: fc.boolean(),
        disabled: fc.boolean(),
      },
    },
    keys: {
      valid: fc.constantFrom({}, { algs: ['ES256'] }, { algs: ['EdDSA', 'ES256'] }),
      fields: { algs: fc.oneof(fc.subarray(['ES256', 'EdDSA', 'PS256', 'RS256']), list(oddText)) },
    },
    'audit-events': { valid: fc.constant({}), fields: {} },
    other: { valid: fc.constant({}), fields: {} },
  };
}

type FieldEdit = { readonly field: string; readonly value: unknown } | { readonly drop: string };

/** A valid body with up to two fields changed: mostly odd but well-typed values, sometimes wrongly typed, unknown or dropped. */
function adminObject(shape: AdminShape): fc.Arbitrary<Record<string, unknown>> {
  const names = Object.keys(shape.fields);
  const unknownField = fc.tuple(oddText, jsonish).map(([field, value]): FieldEdit => ({ field, value }));
  const edit: fc.Arbitrary<FieldEdit> =
    names.length === 0
      ? unknownField
      : fc.oneof(
          { weight: 6, arbitrary: fc.oneof(...Object.entries(shape.fields).map(([field, value]) => value.map((v): FieldEdit => ({ field, value: v })))) },
          { weight: 1, arbitrary: fc.tuple(fc.constantFrom(...names), jsonish).map(([field, value]): FieldEdit => ({ field, value })) },
          { weight: 1, arbitrary: unknownField },
          { weight: 1, arbitrary: fc.constantFrom(...names).map((drop): FieldEdit => ({ drop })) },
        );
  return fc.tuple(shape.valid, fc.array(edit, { maxLength: 2 })).map(([valid, changes]) => {
    const body: Record<string, unknown> = { ...valid };
    for (const change of changes) {
      if ('drop' in change) delete body[change.drop];
      // defineProperty, so a field named __proto__ is a field and not the prototype.
      else Object.defineProperty(body, change.field, { value: change.value, enumerable: true, writable: true, configurable: true });
    }
    return body;
  });
}

const DEEP = '"{deep}"';

function adminBody(shape: AdminShape): fc.Arbitrary<Body | null> {
  const json = (value: unknown) => utf8(JSON.stringify(value) ?? 'null');
  const fields = Object.keys(shape.fields);
  return fc.oneof(
    { weight: 10, arbitrary: adminObject(shape).map(json) },
    { weight: 1, arbitrary: jsonish.map(json) },
    // A valid body with one field nested thousands deep (as text: building it would overflow the stack here too).
    {
      weight: 1,
      arbitrary: fc
        .tuple(shape.valid, fc.constantFrom(...fields, 'unknown_field'), fc.integer({ min: 100, max: 30_000 }), fc.boolean())
        .map(([valid, field, depth, objects]) => {
          const nested = objects ? `${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}` : `${'['.repeat(depth)}1${']'.repeat(depth)}`;
          return utf8(JSON.stringify({ ...valid, [field]: '{deep}' }).replace(DEEP, nested));
        }),
    },
    // Thousands of array items, under or over the 64 KB limit.
    {
      weight: 1,
      arbitrary: fc
        .tuple(shape.valid, fc.constantFrom(...fields, 'unknown_field'), fc.integer({ min: 100, max: 20_000 }))
        .map(([valid, field, count]) => json({ ...valid, [field]: Array.from({ length: count }, (_, i) => `https://a.example/${i}`) })),
    },
    { weight: 1, arbitrary: pairs(fields.length > 0 ? fields : ['x'], hostileText).map(utf8) },
    { weight: 1, arbitrary: strangeBody },
  );
}

function adminRequests(fixture: Fixture): fc.Arbitrary<HostileRequest> {
  const { victims } = fixture;
  const shapes = adminShapes(fixture);
  const id = fc.oneof(
    { weight: 2, arbitrary: fc.constant(LAST_CREATED) },
    { weight: 1, arbitrary: fc.constantFrom(victims.clientId, victims.resourceServerId, victims.userId) },
    { weight: 1, arbitrary: fc.uuid() },
    { weight: 2, arbitrary: component(oddText) },
  );
  const route = fc.oneof(...ADMIN_ROUTES.map((r) => ({ weight: r.weight, arbitrary: fc.constant(r) })));
  return route.chain((route) =>
    fc
      .record({
        method: fc.oneof({ weight: 6, arbitrary: fc.constantFrom(...route.methods) }, { weight: 1, arbitrary: fc.constantFrom(...METHODS) }),
        id,
        search: query(ADMIN_QUERY, oddText),
        contentType: mostly<string | null>('application/json', contentType, 4),
        authorization: mostly<string | null>(ADMIN_BEARER, authorizations(fixture), 6),
        extra: extraHeaders(['"0"', '*']),
        body: fc.oneof({ weight: 1, arbitrary: fc.constant<Body | null>(null) }, { weight: 6, arbitrary: adminBody(shapes[route.area]) }),
        chunked,
      })
      .map((r) => assemble({ ...r, path: withQuery(`/admin/v1${route.path.replace('{id}', r.id)}`, r.search) })),
  );
}

/** Paths nobody routes, or routes with broken escapes: `/admin/v1/%E0%A4%A`, `/interaction/../..`. */
function strayRequests(fixture: Fixture): fc.Arbitrary<HostileRequest> {
  const segment = fc.oneof(
    fc.constantFrom('admin', 'v1', 'clients', 'interaction', 'token', 'auth', 'session', 'end', 'me', '.well-known', 'static', 'metrics', '..', '.', '', '%2e%2e', '%2F'),
    component(oddText),
  );
  return fc
    .record({
      method: fc.constantFrom(...METHODS),
      segments: fc.array(segment, { minLength: 1, maxLength: 5 }),
      search: query(OAUTH_PARAMS, oddText),
      contentType,
      authorization: authorizations(fixture),
      extra: extraHeaders([fixture.sessionCookies]),
      body: strangeBody,
      chunked,
    })
    .map((r) => assemble({ ...r, path: withQuery(`/${r.segments.join('/')}`, r.search) }));
}

/**
 * Requests the fuzzer (or a look at what it found) once answered with a 5xx or stored altered
 * input. They run first on every run, whatever the seed.
 */
function regressions(fixture: Fixture): HostileRequest[] {
  const { client } = fixture;
  const json = { 'content-type': 'application/json', authorization: ADMIN_BEARER };
  const adminPost = (path: string, body: unknown): HostileRequest => ({ method: 'POST', path: `/admin/v1${path}`, headers: json, body: utf8(JSON.stringify(body)), chunked: false });
  const authorize = new URLSearchParams({ client_id: client.client_id, redirect_uri: REDIRECT, response_type: 'code', scope: 'openid', code_challenge: CODE_CHALLENGE, code_challenge_method: 'S256' });
  return [
    // @koa/router answered 501 Not Implemented for methods it does not list.
    { method: 'PROPFIND', path: '/admin/v1/openapi.json', headers: json, body: null, chunked: false },
    { method: 'TRACE', path: '/token', headers: { 'content-type': FORM, authorization: 'Basic Og==' }, body: utf8(''), chunked: false },
    // U+0000 in a parameter the provider stores (interaction, session) failed in jsonb: 500.
    { method: 'GET', path: `/auth?${authorize}&state=%00`, headers: {}, body: null, chunked: false },
    { method: 'GET', path: `/session/end?post_logout_redirect_uri=${encodeURIComponent(LOGOUT_REDIRECT)}&state=%00`, headers: {}, body: null, chunked: true },
    // U+0000 in a token looked up by the provider: 500 {"error":"input contains a NUL character"}.
    {
      method: 'POST',
      path: '/token/revocation',
      headers: { 'content-type': FORM, authorization: basic(client.client_id, client.client_secret) },
      body: utf8('token=%00&token_type_hint=access_token'),
      chunked: true,
    },
    // U+0000 in client metadata or a JWK, both jsonb: 500.
    adminPost('/clients', { client_name: 'Fuzzed service', grant_types: ['client_credentials'], allowed_resources: [API], scope: 'read', jwks_uri: 'https://keys.fuzz.example?q=\u0000' }),
    adminPost('/resource-servers', { identifier: 'https://nul.fuzz.example', name: 'NUL', inner_encryption_jwk: { ...fixture.encryptionJwk, kid: '\u0000' } }),
    // A lone surrogate was stored as U+FFFD (text) or failed (jsonb).
    adminPost('/resource-servers', { identifier: 'https://lone.fuzz.example', name: 'oAV,Lt~wV\ud800,9' }),
    adminPost('/users', { username: 'lone', password: `${PASSWORD}\udc00` }),
    {
      method: 'PATCH',
      path: `/admin/v1/clients/${fixture.victims.clientId}`,
      headers: json,
      body: utf8(JSON.stringify({ client_name: '\ud83d' })),
      chunked: false,
    },
  ];
}

// ---------------------------------------------------------------------------------------------
// Sending

const CREATED_PATH = /^\/admin\/v1\/(clients|resource-servers|users)(?:\?|$)/;
const ITEM_PATH = /^\/admin\/v1\/(clients|resource-servers|users)\//;

/** Sends hostile requests (see `exchange`), filling in a current admin token and the id of the last resource created. */
class Sender {
  private adminToken: string | undefined;
  private adminTokenAt = 0;
  private readonly lastCreated = new Map<string, string>();

  constructor(private readonly server: TestServer) {}

  /** A token with every admin scope, renewed well before its 15 minutes run out. */
  private async bearer(): Promise<string> {
    if (this.adminToken === undefined || Date.now() - this.adminTokenAt > 5 * 60_000) {
      this.adminToken = await adminToken(this.server, ALL_ADMIN_SCOPES);
      this.adminTokenAt = Date.now();
    }
    return `Bearer ${this.adminToken}`;
  }

  async send(request: HostileRequest): Promise<Answer> {
    const headers: Record<string, string> = { ...request.headers };
    if (headers['authorization'] === ADMIN_BEARER) headers['authorization'] = await this.bearer();
    const area = ITEM_PATH.exec(request.path)?.[1];
    const path = request.path.replace(LAST_CREATED, encodeURIComponent((area === undefined ? undefined : this.lastCreated.get(area)) ?? 'none'));
    const body = request.body === null ? undefined : Buffer.from(request.body.text, request.body.encoding);
    const answer = await exchange(new URL(this.server.url).port, { method: request.method, path, headers, body, chunked: request.chunked }, REQUEST_TIMEOUT_MS);
    const created = CREATED_PATH.exec(path)?.[1];
    if (answer.status === 201 && created !== undefined) {
      const body = JSON.parse(answer.text) as { id?: string; client_id?: string };
      this.lastCreated.set(created, body.client_id ?? body.id ?? 'none');
    }
    return answer;
  }
}

const STORING_PATH = /^\/admin\/v1\/(clients|resource-servers|users)(\/[^/?]*)?(\?|$)/;

/** A create or update the admin API accepted although its JSON held a lone surrogate, which no database column can keep as sent. */
function acceptedLoneSurrogate(request: HostileRequest, answer: Answer): boolean {
  if (!STORING_PATH.test(request.path) || !['POST', 'PATCH', 'PUT'].includes(request.method) || answer.status >= 300) return false;
  if (request.body === null || request.body.encoding !== 'utf8') return false;
  try {
    return hasLoneSurrogate(JSON.parse(request.body.text));
  } catch {
    return false;
  }
}

/** Which part of the server a request aimed at, for the tally of answers. */
function targetOf(request: HostileRequest): string {
  const path = request.path.split('?')[0] ?? '';
  if (path.startsWith('/admin/v1')) return 'admin';
  if (path.startsWith('/interaction/')) return 'pages';
  return /^\/(token|auth|session|me|jwks|\.well-known)(\/|$)/.test(path) ? 'oauth' : 'other';
}

function describeRequest(request: HostileRequest, answer: Answer): string {
  return `${request.method} ${request.path.slice(0, 300)} → ${answer.status}: ${answer.text.slice(0, 500)}`;
}

/** Log lines at level error (50) or above: a 5xx, or a failure swallowed on the way. */
function errorLines(server: TestServer, from: number): string[] {
  return server.logs.lines.slice(from).filter((line) => {
    try {
      return (JSON.parse(line) as { level?: number }).level! >= 50;
    } catch {
      return false;
    }
  });
}

// ---------------------------------------------------------------------------------------------

describe('hostile input: fuzzed requests never get a 5xx, a hang or a partial write', () => {
  let server: TestServer;
  let fixture: Fixture;

  before(async () => {
    server = await startTestServer();
    fixture = await setUpFixture(server);
  });
  after(() => server.close());

  test(`every endpoint answers hostile requests with < 500 in time (seed ${SEED}, ${RUNS} runs)`, async (t) => {
    const sender = new Sender(server);
    const logStart = server.logs.lines.length;
    const started = performance.now();
    let sent = 0;
    const tally = new Map<string, number>();
    const hostileRequest = fc.oneof(
      { weight: 3, arbitrary: protocolRequests(fixture) },
      { weight: 2, arbitrary: interactionRequests(fixture) },
      { weight: 3, arbitrary: adminRequests(fixture) },
      { weight: 1, arbitrary: strayRequests(fixture) },
    );
    await fc.assert(
      fc.asyncProperty(hostileRequest, async (request) => {
        const answer = await sender.send(request);
        sent += 1;
        const key = `${targetOf(request)} ${answer.status}`;
        tally.set(key, (tally.get(key) ?? 0) + 1);
        // The database is up, so not even 503 is acceptable here (SPEC §6 reserves it for outages).
        assert.ok(answer.status >= 100 && answer.status < 500, describeRequest(request, answer));
        // Bad input is refused, not stored altered: PostgreSQL would keep U+FFFD instead, or fail.
        assert.ok(!acceptedLoneSurrogate(request, answer), `accepted a lone surrogate: ${describeRequest(request, answer)}`);
      }),
      { seed: SEED, numRuns: RUNS, includeErrorInReport: true, examples: regressions(fixture).map((request) => [request]) },
    );
    const seconds = (performance.now() - started) / 1000;
    t.diagnostic(`${sent} requests (seed ${SEED}) in ${seconds.toFixed(1)} s`);
    t.diagnostic([...tally].sort().map(([key, count]) => `${key}: ${count}`).join(', '));
    assert.deepEqual(errorLines(server, logStart), [], 'no error was logged while fuzzing');
  });

  test('afterwards the server is healthy and still issues tokens', async () => {
    for (const path of ['/healthz', '/readyz']) {
      const response = await fetch(`${server.url}${path}`, { signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) });
      assert.equal(response.status, 200, path);
    }
    const token = await clientCredentials(server, fixture.client.client_id, fixture.client.client_secret, { resource: API, scope: 'read' });
    assert.equal(token.status, 200, JSON.stringify(token.body));
    assert.equal(typeof token.body['access_token'], 'string');
  });

  test('afterwards every stored client, resource server and user is valid and audited (no partial write)', async (t) => {
    const audited = async (type: string) =>
      new Set((await server.db.query<{ target: string }>('SELECT target FROM audit_events WHERE type = $1', [type])).rows.map((row) => row.target));
    /** Every create the audit trail records happened: its row is there, or its deletion is recorded too. */
    const assertCreatesHappened = async (area: string, stored: ReadonlySet<string>) => {
      const deleted = await audited(`${area}.deleted`);
      for (const id of await audited(`${area}.created`)) assert.ok(stored.has(id) || deleted.has(id), `${area}.created ${id} audited, but no such row`);
    };

    const servers = await server.db.query<Record<string, unknown> & { id: string; identifier: string; built_in: boolean }>(
      'SELECT id, identifier, name, scopes, access_token_ttl, signing_alg, inner_encryption_jwk, encrypt_whole_token, built_in FROM resource_servers',
    );
    const createdServers = await audited('resource_server.created');
    for (const { id, built_in: builtIn, ...row } of servers.rows) {
      const parsed = createResourceServerBody.safeParse(row);
      assert.ok(parsed.success, `resource server ${JSON.stringify(row)}: ${JSON.stringify(parsed.error?.issues)}`);
      assert.ok(builtIn || createdServers.has(id), `resource server ${id} has no audit event`);
    }
    await assertCreatesHappened('resource_server', new Set(servers.rows.map((row) => row.id)));
    const identifiers = new Set(servers.rows.map((row) => row.identifier));

    const clients = await server.db.query<{
      client_id: string;
      client_name: string;
      metadata: Record<string, unknown>;
      allowed_resources: string[];
      require_mfa: boolean;
      first_party: boolean;
    }>('SELECT client_id, client_name, metadata, allowed_resources, require_mfa, first_party FROM clients');
    const createdClients = await audited('client.created');
    for (const row of clients.rows) {
      const stored = { client_name: row.client_name, ...row.metadata, allowed_resources: row.allowed_resources, require_mfa: row.require_mfa, first_party: row.first_party };
      const parsed = clientDefinition.safeParse(stored);
      assert.ok(parsed.success, `client ${JSON.stringify(stored)}: ${JSON.stringify(parsed.error?.issues)}`);
      for (const resource of row.allowed_resources) assert.ok(identifiers.has(resource), `client ${row.client_id} names an unknown resource ${resource}`);
      assert.ok(row.client_id === server.admin.clientId || createdClients.has(row.client_id), `client ${row.client_id} has no audit event`);
    }
    await assertCreatesHappened('client', new Set(clients.rows.map((row) => row.client_id)));

    const users = await server.db.query<Record<string, unknown> & { id: string; username: string; username_normalized: string }>(
      'SELECT id, username, username_normalized, email, email_verified, name, roles, mfa_required, disabled FROM users',
    );
    const createdUsers = await audited('user.created');
    for (const { id, username_normalized: normalized, ...row } of users.rows) {
      const parsed = patchUserBody.safeParse(row);
      assert.ok(parsed.success, `user ${JSON.stringify(row)}: ${JSON.stringify(parsed.error?.issues)}`);
      assert.equal(normalized, normalizeUsername(row.username));
      assert.match(normalized, USERNAME_PATTERN);
      assert.ok(createdUsers.has(id), `user ${id} has no audit event`);
    }
    await assertCreatesHappened('user', new Set(users.rows.map((row) => row.id)));
    t.diagnostic(`checked ${clients.rows.length} clients, ${servers.rows.length} resource servers, ${users.rows.length} users`);
  });
});
