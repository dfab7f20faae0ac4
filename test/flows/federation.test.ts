import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { createServer as createNetServer, type AddressInfo, type Socket } from 'node:net';
import { after, before, beforeEach, describe, mock, test } from 'node:test';
import { OAuth2Server } from 'oauth2-mock-server';
import * as oidc from 'openid-client';
import { createIdentityProviderStore, createUserIdentityStore, type IdentityProviderFields } from '../../src/db/identity-providers.js';
import { adminCall, adminToken } from '../support/admin-api.js';
import { CookieClient, formAction, hiddenField } from '../support/cookie-client.js';
import { postgresUrl } from '../support/database.js';
import { pkceParams, startAuthorization } from '../support/sign-in.js';
import { freePort, startTestServer, type TestServer } from '../support/server.js';

/**
 * SPEC §10 against an upstream no one on the team wrote (oauth2-mock-server): the login page's
 * button, the code flow with PKCE, state and nonce, the ID token's signature checked; a person
 * created, then found again by (provider, sub); roles mapped and kept in sync; linking by
 * verified email only; a local second factor unless the upstream proved one and is trusted;
 * wrong answers from the upstream end on an error page, never a 500; the callback may land on
 * another instance.
 */

const REDIRECT = 'http://127.0.0.1:9/fed-callback';
const CLIENT_SECRET = 'upstream-client-secret-for-gatehouse';

interface Upstream {
  readonly server: OAuth2Server;
  /** Claims the next tokens carry (merged over the mock's defaults: sub "johndoe", amr ["pwd"]). */
  claims: Record<string, unknown>;
  /** The kid of every ID token the mock signed (an ID token carries the nonce). */
  readonly idTokenKids: string[];
}

async function startUpstream(): Promise<Upstream> {
  const server = new OAuth2Server();
  // RS256, as Entra ID, Okta, Google and Keycloak sign ID tokens (and OIDC's default).
  await server.issuer.keys.generate('RS256');
  await server.start(0, '127.0.0.1');
  const upstream: Upstream = { server, claims: {}, idTokenKids: [] };
  server.service.on('beforeTokenSigning', (token: { header: { kid?: string }; payload: Record<string, unknown> }) => {
    Object.assign(token.payload, upstream.claims);
    if (token.payload['nonce'] !== undefined && token.header.kid !== undefined) upstream.idTokenKids.push(token.header.kid);
  });
  // Userinfo speaks for the same person (OIDC Core §5.3.2: its sub must be the ID token's).
  server.service.on('beforeUserinfo', (answer: { body: Record<string, unknown> }) => {
    const { iss: _iss, aud: _aud, nonce: _nonce, ...claims } = upstream.claims;
    Object.assign(answer.body, claims);
  });
  return upstream;
}

describe('sign-in through an upstream OpenID provider', () => {
  let upstream: Upstream;
  let server: TestServer;
  let config: oidc.Configuration;
  let admin: string;

  async function addProvider(fields: Partial<IdentityProviderFields> & { issuer?: string } = {}): Promise<string> {
    const id = randomUUID();
    await createIdentityProviderStore(server.db).insert(id, {
      name: 'Corp SSO',
      issuer: upstream.server.issuer.url!,
      clientId: 'gatehouse',
      clientSecretSealed: server.runtime.envelope.seal(CLIENT_SECRET, `identity_providers:${id}`),
      scopes: ['openid', 'email', 'profile'],
      emailDomains: [],
      createUsers: true,
      linkByVerifiedEmail: false,
      claimMappings: {},
      roleMappings: [{ claim: 'groups', value: 'engineering', role: 'engineer' }, { claim: 'groups', value: 'admins', role: 'ops' }],
      sync: 'every_login',
      trustUpstreamMfa: false,
      enabled: true,
      ...fields,
    });
    return id;
  }

  /** The browser's whole trip: login page, the provider's button, the upstream, the callback. */
  async function federate(browser: CookieClient, providerId: string, extra: Record<string, string> = {}, base = server.url) {
    const { verifier, state, nonce, params } = await pkceParams(REDIRECT, 'openid', extra);
    const login = await startAuthorization(browser, config, base, params);
    const html = await login.text();
    assert.equal(login.status, 200, html.slice(0, 300));
    const action = formAction(html, /\/federate$/);
    assert.ok(action, 'the login page has the provider buttons');
    const left = await browser.postForm(new URL(action, base), { csrf: hiddenField(html, 'csrf') ?? '', provider: providerId });
    assert.equal(left.status, 303, await left.clone().text());
    const atUpstream = await browser.get(left.headers.get('location') ?? '');
    assert.equal(atUpstream.status, 302);
    const callback = new URL(atUpstream.headers.get('location')!);
    const back = await browser.get(new URL(`${callback.pathname}${callback.search}`, base));
    return { back, finished: await browser.follow(back, base), verifier, state, nonce };
  }

  async function tokensFrom(finished: Response, verifier: string, state: string, nonce: string) {
    const location = finished.headers.get('location');
    if (!location?.startsWith(REDIRECT)) {
      const { rows } = await server.db.query<{ details: unknown }>("SELECT details FROM audit_events WHERE type = 'login.failure' ORDER BY occurred_at DESC LIMIT 1");
      assert.fail(`back at the client, got ${finished.status}: ${JSON.stringify(rows[0]?.details)}`);
    }
    return oidc.authorizationCodeGrant(config, new URL(location), { pkceCodeVerifier: verifier, expectedState: state, expectedNonce: nonce });
  }

  async function userNamed(username: string) {
    const { rows } = await server.db.query<{ id: string; roles: string[]; email: string | null }>('SELECT id, roles, email FROM users WHERE username = $1', [username]);
    return rows[0];
  }

  before(async () => {
    upstream = await startUpstream();
    server = await startTestServer({ env: { ALLOW_PRIVATE_JWKS_URI: 'true' } });
    admin = await adminToken(server, 'admin:clients admin:users');
    const client = await adminCall<{ client_id: string; client_secret: string }>(
      server,
      'POST',
      '/clients',
      { client_name: 'Intranet', grant_types: ['authorization_code'], redirect_uris: [REDIRECT], scope: 'openid', first_party: true },
      admin,
    );
    assert.equal(client.status, 201, JSON.stringify(client.body));
    config = await oidc.discovery(new URL(server.issuer), client.body.client_id, client.body.client_secret, undefined, { execute: [oidc.allowInsecureRequests] });
  });
  beforeEach(() => {
    upstream.claims = {};
  });
  after(async () => {
    await server?.close();
    await upstream?.server.stop();
  });

  test('first sign-in creates the person with mapped claims and roles; the next finds the same one; a role removed upstream goes', async () => {
    const providerId = await addProvider();
    upstream.claims = { sub: 'upstream-ada', preferred_username: 'ada.fed', email: 'ada@corp.example', email_verified: true, name: 'Ada L', groups: ['engineering', 'admins'] };
    const first = await federate(new CookieClient(), providerId);
    const tokens = await tokensFrom(first.finished, first.verifier, first.state, first.nonce);
    const ada = await userNamed('ada.fed');
    assert.ok(ada, 'created');
    assert.deepEqual(ada.roles, ['engineer', 'ops']);
    assert.equal(ada.email, 'ada@corp.example');
    const claims = tokens.claims()!;
    assert.equal(claims.sub, ada.id);
    assert.ok((claims['amr'] as string[]).includes('fed'), JSON.stringify(claims['amr']));
    assert.equal((await createUserIdentityStore(server.db).find(providerId, 'upstream-ada'))?.user_id, ada.id);

    // Again, with one group gone upstream and a role given by an administrator meanwhile.
    await server.db.query("UPDATE users SET roles = array_append(roles, 'auditor') WHERE id = $1", [ada.id]);
    upstream.claims = { ...upstream.claims, groups: ['engineering'] };
    const second = await federate(new CookieClient(), providerId);
    assert.equal((await tokensFrom(second.finished, second.verifier, second.state, second.nonce)).claims()!.sub, ada.id);
    assert.deepEqual((await userNamed('ada.fed'))!.roles, ['auditor', 'engineer']);
    const { rows } = await server.db.query<{ n: number }>("SELECT count(*)::int AS n FROM audit_events WHERE type = 'login.success' AND target = $1 AND details->>'method' = 'federated'", [ada.id]);
    assert.equal(rows[0]!.n, 2);
  });

  test('the upstream adds a signing key: an ID token it signs verifies too (its JWKS is read again for the new kid)', async () => {
    const providerId = await addProvider({ name: 'Rotating SSO' });
    upstream.claims = { sub: 'upstream-rotor', preferred_username: 'rotor.fed' };
    const first = await federate(new CookieClient(), providerId);
    await tokensFrom(first.finished, first.verifier, first.state, first.nonce);
    const added = await upstream.server.issuer.keys.generate('RS256');
    upstream.idTokenKids.length = 0;
    // openid-client reads a JWKS again for an unknown kid once its copy is a minute old (so a
    // flood of forged kids cannot make it fetch per request): the clock moves past that.
    mock.timers.enable({ apis: ['Date'], now: Date.now() + 61_000 });
    try {
      // The mock signs with its keys in turn: within a few sign-ins the new one signs an ID token.
      for (let i = 0; i < 4 && !upstream.idTokenKids.includes(added.kid); i += 1) {
        const next = await federate(new CookieClient(), providerId);
        await tokensFrom(next.finished, next.verifier, next.state, next.nonce);
      }
    } finally {
      mock.timers.reset();
    }
    assert.ok(upstream.idTokenKids.includes(added.kid), `an ID token signed by the new key: ${upstream.idTokenKids.join(', ')}`);
  });

  test('linking by email only when the upstream says it is verified and the provider allows it; otherwise a clear page', async () => {
    const created = await adminCall<{ id: string }>(server, 'POST', '/users', { username: 'grace.local', password: 'correct horse battery staple', email: 'grace@corp.example' }, admin);
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const linking = await addProvider({ name: 'Linking SSO', createUsers: false, linkByVerifiedEmail: true });
    upstream.claims = { sub: 'upstream-grace', email: 'grace@corp.example', email_verified: false };
    const unverified = await federate(new CookieClient(), linking);
    assert.equal(unverified.finished.status, 403);
    assert.match(await unverified.finished.text(), /no account for you here yet/);

    upstream.claims = { sub: 'upstream-grace', email: 'Grace@Corp.example', email_verified: true };
    const verified = await federate(new CookieClient(), linking);
    assert.equal((await tokensFrom(verified.finished, verified.verifier, verified.state, verified.nonce)).claims()!.sub, created.body.id);
  });

  test('an upstream that answers wrongly (another issuer, a wrong nonce, another audience) ends on an error page and in the audit log', async () => {
    const providerId = await addProvider({ name: 'Flaky SSO' });
    for (const claims of [{ iss: 'http://evil.example' }, { nonce: 'not-the-nonce' }, { aud: 'someone-else' }]) {
      upstream.claims = { sub: 'upstream-mallory', ...claims };
      const { back } = await federate(new CookieClient(), providerId);
      assert.equal(back.status, 403, JSON.stringify(claims));
      assert.match(await back.text(), /did not succeed/);
    }
    const { rows } = await server.db.query<{ n: number }>("SELECT count(*)::int AS n FROM audit_events WHERE type = 'login.failure' AND details->>'provider_id' = $1", [providerId]);
    assert.equal(rows[0]!.n, 3);
    assert.equal(await userNamed('johndoe'), undefined);
  });

  test('an upstream that is down gives an error page, never a 500', async () => {
    const down = await addProvider({ name: 'Down SSO', issuer: `http://127.0.0.1:${await freePort()}` });
    const browser = new CookieClient();
    const { params } = await pkceParams(REDIRECT, 'openid');
    const html = await (await startAuthorization(browser, config, server.url, params)).text();
    const answer = await browser.postForm(new URL(formAction(html, /\/federate$/)!, server.url), { csrf: hiddenField(html, 'csrf') ?? '', provider: down });
    assert.equal(answer.status, 502);
    assert.match(await answer.text(), /could not be reached/);
    const { rows } = await server.db.query<{ n: number }>("SELECT count(*)::int AS n FROM audit_events WHERE type = 'login.failure' AND details->>'provider_id' = $1", [down]);
    assert.equal(rows[0]!.n, 1, 'audited');
  });

  test('an upstream that accepts connections and never answers gives the error page after the outbound timeout, never a hang or a 500', async () => {
    // A listener that takes the connection and says nothing (a hung upstream).
    const sockets: Socket[] = [];
    const silent = createNetServer((socket) => void sockets.push(socket));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    try {
      const slow = await addProvider({ name: 'Slow SSO', issuer: `http://127.0.0.1:${(silent.address() as AddressInfo).port}` });
      const browser = new CookieClient();
      const { params } = await pkceParams(REDIRECT, 'openid');
      const html = await (await startAuthorization(browser, config, server.url, params)).text();
      const started = Date.now();
      const answer = await browser.postForm(new URL(formAction(html, /\/federate$/)!, server.url), { csrf: hiddenField(html, 'csrf') ?? '', provider: slow });
      assert.equal(answer.status, 502);
      assert.ok(Date.now() - started < 15_000, 'bounded by the outbound timeout');
    } finally {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => silent.close(() => resolve()));
    }
  });

  test('a callback without the browser that left for it, or with a changed state, signs nobody in', async () => {
    const providerId = await addProvider({ name: 'State SSO' });
    const browser = new CookieClient();
    const { params } = await pkceParams(REDIRECT, 'openid');
    const html = await (await startAuthorization(browser, config, server.url, params)).text();
    const left = await browser.postForm(new URL(formAction(html, /\/federate$/)!, server.url), { csrf: hiddenField(html, 'csrf') ?? '', provider: providerId });
    const callback = new URL((await browser.get(left.headers.get('location')!)).headers.get('location')!);
    const stranger = await new CookieClient().get(new URL(`${callback.pathname}${callback.search}`, server.url));
    assert.equal(stranger.status, 400);
    const { rows } = await server.db.query<{ reason: string }>("SELECT details->>'reason' AS reason FROM audit_events WHERE type = 'login.failure' AND details->>'provider_id' = $1", [providerId]);
    assert.deepEqual(rows.map((row) => row.reason), ['the callback came to another browser than the one that left']);
    callback.searchParams.set('state', `${callback.searchParams.get('state')}x`);
    assert.equal((await browser.get(new URL(`${callback.pathname}${callback.search}`, server.url))).status, 400);
  });

  test('a login_hint in a mapped email domain goes straight to its provider', async () => {
    const providerId = await addProvider({ name: 'Domain SSO', emailDomains: ['hinted.example'] });
    const { params } = await pkceParams(REDIRECT, 'openid', { login_hint: 'eve@hinted.example' });
    const first = await startAuthorization(new CookieClient(), config, server.url, params);
    assert.equal(first.status, 303);
    const location = new URL(first.headers.get('location')!);
    assert.equal(location.origin, new URL(upstream.server.issuer.url!).origin);
    assert.equal(location.searchParams.get('login_hint'), 'eve@hinted.example');
    assert.ok(location.searchParams.get('state')?.includes('.'));
    assert.ok(providerId);
  });

  test('a person who must use a second factor still gets the local one, unless the upstream proved one and is trusted for it', async () => {
    const plain = await addProvider({ name: 'MFA SSO', sync: 'on_create' });
    upstream.claims = { sub: 'upstream-mfa-user', preferred_username: 'mfa.fed', amr: ['pwd', 'otp'] };
    const first = await federate(new CookieClient(), plain);
    await tokensFrom(first.finished, first.verifier, first.state, first.nonce);
    const person = await userNamed('mfa.fed');
    assert.equal((await adminCall(server, 'PATCH', `/users/${person!.id}`, { mfa_required: true }, admin)).status, 200);

    const asked = await federate(new CookieClient(), plain);
    assert.equal(asked.finished.status, 200);
    assert.match(await asked.finished.text(), /otpauth:\/\/|Two-step verification/, 'the local second factor (enrollment) is asked for');

    const trusted = await addProvider({ name: 'Trusted MFA SSO', sync: 'on_create', trustUpstreamMfa: true, createUsers: false });
    await createUserIdentityStore(server.db).link({ providerId: trusted, subject: 'upstream-mfa-user', userId: person!.id, email: null, mappedRoles: [] });
    const proved = await federate(new CookieClient(), trusted);
    const claims = (await tokensFrom(proved.finished, proved.verifier, proved.state, proved.nonce)).claims()!;
    assert.equal(claims['acr'], 'urn:gatehouse:acr:mfa');
    assert.deepEqual(claims['amr'], ['fed', 'mfa']);

    upstream.claims = { sub: 'upstream-mfa-user', amr: ['pwd'] };
    const notProved = await federate(new CookieClient(), trusted);
    assert.equal(notProved.finished.status, 200, 'amr ["pwd"] never satisfies the second factor');
    assert.match(await notProved.finished.text(), /otpauth:\/\/|Two-step verification/);
  });

  describe('two instances', { skip: postgresUrl === undefined ? 'needs PostgreSQL' : false }, () => {
    let two: TestServer;
    before(async () => {
      two = await startTestServer({ database: server.database, env: { MASTER_KEY: server.masterKey, ISSUER: server.issuer, ALLOW_PRIVATE_JWKS_URI: 'true' } });
    });
    after(() => two?.close());

    test('the callback lands on the other instance and the sign-in completes there', async () => {
      const providerId = await addProvider({ name: 'Balanced SSO' });
      upstream.claims = { sub: 'upstream-linus', preferred_username: 'linus.fed' };
      const browser = new CookieClient();
      const { verifier, state, nonce, params } = await pkceParams(REDIRECT, 'openid');
      const html = await (await startAuthorization(browser, config, server.url, params)).text();
      const left = await browser.postForm(new URL(formAction(html, /\/federate$/)!, server.url), { csrf: hiddenField(html, 'csrf') ?? '', provider: providerId });
      const callback = new URL((await browser.get(left.headers.get('location') ?? '')).headers.get('location') ?? '');
      browser.routeTo(server.issuer, two.url);
      const back = await browser.get(new URL(`${callback.pathname}${callback.search}`, two.url));
      const finished = await browser.follow(back, two.url);
      const location = finished.headers.get('location');
      assert.ok(location?.startsWith(REDIRECT), `${finished.status} ${location}`);
      const tokens = await oidc.authorizationCodeGrant(config, new URL(location ?? ''), { pkceCodeVerifier: verifier, expectedState: state, expectedNonce: nonce });
      assert.equal(tokens.claims()!.sub, (await userNamed('linus.fed'))!.id);
    });
  });
});
