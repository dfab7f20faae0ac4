import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, test } from 'node:test';
import { exportJWK, generateKeyPair } from 'jose';
import * as oidc from 'openid-client';
import { adminCall, adminToken, type AdminServer, type ClientBody } from '../support/admin-api.js';
import { CookieClient, formAction, hiddenField } from '../support/cookie-client.js';
import { createTestDatabase, defaultBackend, type TestDatabase } from '../support/database.js';
import { spawnGatehouse, waitUntilReady, type GatehouseProcess } from '../support/process.js';
import { freePort, waitFor } from '../support/server.js';
import { pkceParams, startAuthorization, submitLogin } from '../support/sign-in.js';
import { totpCode } from '../support/totp.js';

/**
 * SPEC §6: "never a password, secret, code, token or private key" in the logs, for every flow
 * and at LOG_LEVEL=trace: client credentials (Basic and POST), admin creation and rotation of a
 * client secret, a user's password, a sign-in with TOTP enrollment and a later one with a
 * recovery code, the code exchange, refresh, introspection, userinfo, revocation and logout.
 * Every secret the flows saw is collected and searched for in every line the process wrote.
 * (logs.test.ts covers the request line format and client credentials alone.)
 */

const REDIRECT = 'http://127.0.0.1:9/callback';
const LOGOUT_REDIRECT = 'http://127.0.0.1:9/bye';
const ORDERS = 'https://orders.logs.example';
const FORM = { 'content-type': 'application/x-www-form-urlencoded' };

const admin = { clientId: 'all-flows-admin', clientSecret: randomBytes(32).toString('base64url') };
const masterKey = randomBytes(32).toString('base64url');
const password = `pw-${randomBytes(12).toString('base64url')}`;
const newPassword = `pw-${randomBytes(12).toString('base64url')}`;
const wrongPassword = `pw-${randomBytes(12).toString('base64url')}`;

let database: TestDatabase;
let gatehouse: GatehouseProcess;
let server: AdminServer;

/** Every secret the flows handled, by what it is. */
const secrets = new Map<string, string>();
/** Six-digit TOTP codes: searched for as whole numbers, not inside longer digit runs. */
const codes = new Set<string>();
const flowsRun: string[] = [];
let authorizationCodes = 0;

function remember(what: string, value: string | undefined): void {
  assert.ok(value !== undefined && value.length > 0, `${what} was seen`);
  secrets.set(what, value);
  // A JWS or JWE is also searched for by its parts, in case one is logged alone.
  const parts = value.split('.');
  if (parts.length === 3 || parts.length === 5) {
    parts.forEach((part, i) => {
      if (part.length >= 16 && !(i === 0 && parts.length === 3)) secrets.set(`${what} (part ${i + 1})`, part);
    });
  }
}

function rememberTokens(what: string, tokens: oidc.TokenEndpointResponse): void {
  remember(`${what}: access token`, tokens.access_token);
  // The double-wrapped token's inner layer is a JWE of its own inside the payload.
  const payload = tokens.access_token.split('.')[1];
  const inner = payload === undefined ? undefined : (JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as { inner?: unknown }).inner;
  if (typeof inner === 'string') remember(`${what}: inner layer`, inner);
  if (tokens.refresh_token !== undefined) remember(`${what}: refresh token`, tokens.refresh_token);
  if (tokens.id_token !== undefined) remember(`${what}: ID token`, tokens.id_token);
}

/**
 * The session id (`_session`) and every cookie signature are bearer secrets. The interaction
 * cookies hold the interaction's uid, which is in the page's URL by design (oidc-provider binds
 * the two), so their values are not.
 */
function rememberCookies(what: string, browser: CookieClient): void {
  for (const [name, value] of browser.cookies) {
    if (/^_interaction(_resume)?$/.test(name)) continue;
    if (value.length >= 16) remember(`${what}: cookie ${name}`, value);
  }
}

function basic(clientId: string, secret: string): string {
  return `Basic ${Buffer.from(`${encodeURIComponent(clientId)}:${encodeURIComponent(secret)}`).toString('base64')}`;
}

async function token(body: Record<string, string>, authorization?: string): Promise<Record<string, unknown> & { status: number }> {
  const response = await fetch(`${server.url}/token`, {
    method: 'POST',
    headers: { ...FORM, ...(authorization === undefined ? {} : { authorization }) },
    body: new URLSearchParams(body).toString(),
  });
  return { status: response.status, ...((await response.json()) as Record<string, unknown>) };
}

/** Posts the code form on `html` and follows redirects on the server's origin. */
async function submitCode(browser: CookieClient, html: string, code: string): Promise<Response> {
  const action = formAction(html, /\/second-factor$/);
  assert.ok(action, `a code form in ${html}`);
  return browser.follow(await browser.postForm(new URL(action, server.url), { csrf: hiddenField(html, 'csrf') ?? '', code }), server.url);
}

/** From a page after the second factor: through consent if asked, to the client's callback. */
async function toCallback(browser: CookieClient, response: Response): Promise<URL> {
  let current = response;
  if (current.status === 200) {
    const html = await current.text();
    assert.match(html, /Allow access/, 'the consent page');
    current = await browser.follow(await browser.postForm(new URL(formAction(html, /\/consent$/)!, server.url), { csrf: hiddenField(html, 'csrf') ?? '' }), server.url);
  }
  assert.ok(current.status >= 300 && current.status < 400, `a redirect to the client, got ${current.status}`);
  const callback = new URL(current.headers.get('location')!);
  assert.equal(`${callback.origin}${callback.pathname}`, REDIRECT);
  remember(`authorization code ${(authorizationCodes += 1)}`, callback.searchParams.get('code') ?? undefined);
  return callback;
}

before(async () => {
  database = await createTestDatabase(defaultBackend);
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  server = { url, issuer: url, admin };
  gatehouse = spawnGatehouse({
    NODE_ENV: 'test',
    PORT: String(port),
    HOST: '127.0.0.1',
    ISSUER: url,
    DATA_DIR: database.dataDir,
    MASTER_KEY: masterKey,
    BOOTSTRAP_ADMIN_CLIENT_ID: admin.clientId,
    BOOTSTRAP_ADMIN_CLIENT_SECRET: admin.clientSecret,
    LOG_LEVEL: 'trace',
    ...(database.url === undefined ? {} : { DATABASE_URL: database.url }),
  });
  await waitUntilReady(url);
  remember('MASTER_KEY', masterKey);
  remember('admin client secret', admin.clientSecret);
  remember('password', password);
  remember('new password', newPassword);
  remember('wrong password', wrongPassword);

  // Admin API: a resource server, clients with secrets, a secret rotation, a user with a password.
  const bearer = await adminToken(server, 'admin:clients admin:resource-servers admin:users');
  remember('admin access token', bearer);
  const inner = await generateKeyPair('ECDH-ES+A256KW', { crv: 'P-256' });
  assert.equal((await adminCall(server, 'POST', '/resource-servers', { identifier: ORDERS, name: 'Orders', scopes: ['orders:read'], inner_encryption_jwk: await exportJWK(inner.publicKey) }, bearer)).status, 201);
  const createClient = async (body: Record<string, unknown>) => {
    const created = await adminCall<ClientBody>(server, 'POST', '/clients', { allowed_resources: [ORDERS], ...body }, bearer);
    assert.equal(created.status, 201, JSON.stringify(created.body));
    remember(`client secret of ${String(body['client_name'])}`, created.body.client_secret);
    return { id: created.body.client_id, secret: created.body.client_secret! };
  };
  const basicClient = await createClient({ client_name: 'basic', grant_types: ['client_credentials'], scope: 'orders:read' });
  const postClient = await createClient({ client_name: 'post', grant_types: ['client_credentials'], scope: 'orders:read', token_endpoint_auth_method: 'client_secret_post' });
  const app = await createClient({
    client_name: 'app',
    grant_types: ['authorization_code', 'refresh_token'],
    redirect_uris: [REDIRECT],
    post_logout_redirect_uris: [LOGOUT_REDIRECT],
    scope: 'openid profile offline_access orders:read',
  });
  const rotated = await adminCall<{ client_secret: string }>(server, 'POST', `/clients/${basicClient.id}/secret`, undefined, bearer);
  assert.equal(rotated.status, 200, JSON.stringify(rotated.body));
  remember('rotated client secret', rotated.body.client_secret);
  basicClient.secret = rotated.body.client_secret;
  const user = await adminCall<{ id: string }>(server, 'POST', '/users', { username: 'logged-user', password, mfa_required: true, email: 'logged@example.com' }, bearer);
  assert.equal(user.status, 201, JSON.stringify(user.body));
  flowsRun.push('admin: create clients, rotate a secret, create a user');

  // Client credentials: Basic, then POST, then a wrong secret.
  const viaBasic = await token({ grant_type: 'client_credentials', resource: ORDERS, scope: 'orders:read' }, basic(basicClient.id, basicClient.secret));
  assert.equal(viaBasic.status, 200, JSON.stringify(viaBasic));
  remember('client credentials (Basic) access token', viaBasic['access_token'] as string);
  const viaPost = await token({ grant_type: 'client_credentials', resource: ORDERS, scope: 'orders:read', client_id: postClient.id, client_secret: postClient.secret });
  assert.equal(viaPost.status, 200, JSON.stringify(viaPost));
  remember('client credentials (POST) access token', viaPost['access_token'] as string);
  const wrongSecret = randomBytes(32).toString('base64url');
  remember('wrong client secret', wrongSecret);
  assert.equal((await token({ grant_type: 'client_credentials', client_id: postClient.id, client_secret: wrongSecret })).status, 401);
  flowsRun.push('client credentials: Basic, POST, wrong secret');

  const config = await oidc.discovery(new URL(server.issuer), app.id, app.secret, undefined, { execute: [oidc.allowInsecureRequests] });

  // Sign-in one: a wrong password, then the right one, TOTP enrollment, recovery codes, consent.
  const browser = new CookieClient();
  const first = await pkceParams(REDIRECT, 'openid profile offline_access', { prompt: 'consent' });
  remember('PKCE verifier 1', first.verifier);
  const loginPage = await startAuthorization(browser, config, server.url, first.params);
  const loginHtml = await loginPage.text();
  const refused = await submitLogin(browser, server.url, loginHtml, { username: 'logged-user', password: wrongPassword });
  assert.equal(refused.status, 401);
  const enrollPage = await submitLogin(browser, server.url, await refused.text(), { username: 'logged-user', password });
  const enrollHtml = await enrollPage.text();
  const uri = /href="(otpauth:\/\/totp\/[^"]+)"/.exec(enrollHtml)?.[1]?.replaceAll('&amp;', '&');
  assert.ok(uri, 'the otpauth URI');
  remember('otpauth URI', uri);
  const totpSecret = new URL(uri).searchParams.get('secret') ?? undefined;
  remember('TOTP secret', totpSecret);
  const code = totpCode(totpSecret!);
  codes.add(code);
  const codesPage = await submitCode(browser, enrollHtml, code);
  assert.equal(codesPage.status, 200);
  const codesHtml = await codesPage.text();
  const recoveryCodes = [...codesHtml.matchAll(/<li><code>([A-Z0-9-]+)<\/code><\/li>/g)].map((m) => m[1]!);
  assert.equal(recoveryCodes.length, 10);
  recoveryCodes.forEach((value, i) => remember(`recovery code ${i + 1}`, value));
  rememberCookies('sign-in 1', browser);
  const callback = await toCallback(browser, await submitCode(browser, codesHtml, ''));
  const tokens = await oidc.authorizationCodeGrant(config, callback, { pkceCodeVerifier: first.verifier, expectedState: first.state, expectedNonce: first.nonce });
  rememberTokens('code exchange 1', tokens);
  assert.ok(tokens.refresh_token && tokens.id_token, 'refresh and ID tokens');
  rememberCookies('after sign-in 1', browser);
  flowsRun.push('sign-in: wrong password, TOTP enrollment, recovery codes, consent, code exchange');

  // The admin changes the password; sign-in two uses it and a recovery code (lower case).
  const changed = await adminCall(server, 'PATCH', `/users/${user.body.id}`, { password: newPassword }, bearer);
  assert.equal(changed.status, 200, JSON.stringify(changed.body));
  const second = new CookieClient();
  // prompt=consent: the password change ended sign-in one's grant, so offline_access is asked again.
  const again = await pkceParams(REDIRECT, 'openid offline_access', { prompt: 'consent' });
  remember('PKCE verifier 2', again.verifier);
  const codePage = await submitLogin(second, server.url, await (await startAuthorization(second, config, server.url, again.params)).text(), { username: 'logged-user', password: newPassword });
  const codeHtml = await codePage.text();
  assert.match(codeHtml, /Two-step verification/);
  // A wrong code first (typed codes are secret whether right or not), then a recovery code.
  const wrongCode = String((Number(totpCode(totpSecret!)) + 500_000) % 1_000_000).padStart(6, '0');
  codes.add(wrongCode);
  const retry = await submitCode(second, codeHtml, wrongCode);
  assert.equal(retry.status, 401);
  remember('recovery code as typed', recoveryCodes[3]!.toLowerCase());
  const callback2 = await toCallback(second, await submitCode(second, await retry.text(), recoveryCodes[3]!.toLowerCase()));
  const tokens2 = await oidc.authorizationCodeGrant(config, callback2, { pkceCodeVerifier: again.verifier, expectedState: again.state, expectedNonce: again.nonce });
  rememberTokens('code exchange 2', tokens2);
  rememberCookies('sign-in 2', second);
  flowsRun.push('sign-in: new password, wrong code, recovery code, code exchange');

  // Refresh (for the API's double-wrapped token), userinfo, introspection, revocation: with sign-in
  // two's tokens, since the password change ended sign-in one's session and tokens (SPEC §4).
  assert.ok(tokens2.refresh_token && tokens2.id_token, 'refresh and ID tokens after the new password');
  const refreshed = await oidc.refreshTokenGrant(config, tokens2.refresh_token, { resource: ORDERS });
  rememberTokens('refresh', refreshed);
  await oidc.fetchUserInfo(config, tokens2.access_token, user.body.id);
  for (const value of [refreshed.access_token, refreshed.refresh_token!]) {
    const introspected = await fetch(`${server.url}/token/introspection`, { method: 'POST', headers: { ...FORM, authorization: basic(app.id, app.secret) }, body: new URLSearchParams({ token: value }).toString() });
    assert.equal(introspected.status, 200);
    assert.equal(((await introspected.json()) as { active: boolean }).active, true);
  }
  const revoked = await fetch(`${server.url}/token/revocation`, { method: 'POST', headers: { ...FORM, authorization: basic(app.id, app.secret) }, body: new URLSearchParams({ token: refreshed.refresh_token! }).toString() });
  assert.equal(revoked.status, 200);
  flowsRun.push('refresh, userinfo, introspection, revocation');

  // Logout with the ID token in the query (RP-initiated logout), confirmed on the page.
  const ask = await second.request(
    `${server.url}/session/end?${new URLSearchParams({ id_token_hint: tokens2.id_token, post_logout_redirect_uri: LOGOUT_REDIRECT })}`,
    { headers: { accept: 'text/html' } },
  );
  assert.equal(ask.status, 200);
  const logoutHtml = await ask.text();
  const xsrf = hiddenField(logoutHtml, 'xsrf');
  remember('logout xsrf', xsrf);
  const confirmed = await second.postForm(new URL(formAction(logoutHtml, /session\/end/)!, server.url), { xsrf: xsrf!, logout: 'yes' });
  assert.ok(confirmed.status >= 300 && confirmed.status < 400, `the logout redirects, got ${confirmed.status}`);
  flowsRun.push('logout');

  // Each request's line is written once its response is sent: wait for the last one.
  const last = await fetch(`${server.url}/healthz`, { headers: { 'x-request-id': 'all-flows-last' } });
  assert.equal(last.status, 200);
  await waitFor(() => gatehouse.output.stdout.includes('"reqId":"all-flows-last"'), 5_000, 20);
});

after(async () => {
  if (gatehouse !== undefined && gatehouse.child.exitCode === null && gatehouse.child.signalCode === null) {
    gatehouse.kill('SIGTERM');
    await gatehouse.exited;
  }
  await database?.drop();
});

function outputLines(): string[] {
  return `${gatehouse.output.stdout}\n${gatehouse.output.stderr}`.split('\n').filter((line) => line !== '');
}

test('every flow ran at LOG_LEVEL=trace, each request with its line', () => {
  assert.equal(flowsRun.length, 6, flowsRun.join('; '));
  const lines = outputLines();
  for (const path of ['/token', '/token/introspection', '/token/revocation', '/me', '/session/end', '/admin/v1/clients', '/admin/v1/users']) {
    assert.ok(lines.some((line) => line.includes(`"path":"${path}`)), `a request line for ${path}`);
  }
  assert.ok(lines.some((line) => /"path":"\/interaction\/[^"]+\/second-factor"/.test(line)), 'a request line for the code step');
});

test('no password, secret, TOTP secret or code, recovery code, token, code or cookie appears in any line', () => {
  assert.ok(secrets.size >= 40, `collected ${secrets.size} secrets`);
  for (const line of outputLines()) {
    for (const [what, value] of secrets) assert.ok(!line.includes(value), `${what} appears in: ${line}`);
    for (const code of codes) assert.doesNotMatch(line, new RegExp(`(?<![0-9])${code}(?![0-9])`), `a TOTP code appears in: ${line}`);
  }
});

test('no private key material appears in any line', () => {
  for (const line of outputLines()) {
    assert.ok(!line.includes('"d":"'), `a private JWK member in: ${line}`);
    assert.ok(!line.includes('PRIVATE KEY'), `a PEM private key in: ${line}`);
  }
});
