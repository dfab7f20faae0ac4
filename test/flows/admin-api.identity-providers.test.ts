import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { createUserIdentityStore } from '../../src/db/identity-providers.js';
import {
  allPages,
  adminApi,
  adminToken,
  assertAudited,
  assertAuditFreeOf,
  assertInvalid,
  assertNotAudited,
  assertProblem,
  auditRowsFor,
  uniqueName,
  type AdminApi,
  type Page,
} from '../support/admin-api.js';
import { startTestServer, type TestServer } from '../support/server.js';

/** SPEC §10 upstream identity providers: `/admin/v1/identity-providers`, scope `admin:identity-providers`. */

interface IdentityProviderBody {
  id: string;
  name: string;
  issuer: string;
  client_id: string;
  client_secret_set: boolean;
  scopes: string[];
  email_domains: string[];
  create_users: boolean;
  link_by_verified_email: boolean;
  claim_mappings: Record<string, string>;
  role_mappings: { claim: string; value: string; role: string }[];
  sync: string;
  trust_upstream_mfa: boolean;
  enabled: boolean;
  redirect_uri: string;
  created_at: string;
  updated_at: string;
}

interface UserBody {
  id: string;
  identities: { provider_id: string; provider_name: string; subject: string; email: string | null; linked_at: string; last_login_at: string | null }[];
}

const FIELDS = [
  'claim_mappings',
  'client_id',
  'client_secret_set',
  'create_users',
  'created_at',
  'email_domains',
  'enabled',
  'id',
  'issuer',
  'link_by_verified_email',
  'name',
  'redirect_uri',
  'role_mappings',
  'scopes',
  'sync',
  'trust_upstream_mfa',
  'updated_at',
];

describe('admin API: identity providers', () => {
  let server: TestServer;
  let api: AdminApi;
  /** Every client secret a test sent: none may show up in a response or an audit event. */
  const secrets: string[] = [];

  function secret(): string {
    const value = `upstream-secret-${randomUUID()}`;
    secrets.push(value);
    return value;
  }

  function domain(): string {
    return `${uniqueName('corp')}.example.com`;
  }

  function assertNoSecret(text: string): void {
    for (const value of secrets) assert.ok(!text.includes(value), `a client secret in ${text}`);
    assert.doesNotMatch(text, /client_secret_sealed|"client_secret"/);
  }

  async function sealedOf(id: string): Promise<string | null> {
    const { rows } = await server.db.query<{ client_secret_sealed: string | null }>('SELECT client_secret_sealed FROM identity_providers WHERE id = $1', [id]);
    assert.equal(rows.length, 1);
    return rows[0]!.client_secret_sealed;
  }

  async function createProvider(json: Record<string, unknown> = {}): Promise<IdentityProviderBody> {
    const response = await api.request<IdentityProviderBody>('POST', '/identity-providers', {
      json: { name: 'Corp SSO', issuer: `https://${domain()}`, client_id: 'gatehouse', ...json },
    });
    assert.equal(response.status, 201, response.text);
    assertNoSecret(response.text);
    return response.body;
  }

  async function assertCreateRefused(json: Record<string, unknown>, ...pointers: string[]) {
    const response = await api.request('POST', '/identity-providers', { json: { name: 'Corp SSO', issuer: 'https://login.example.com', client_id: 'gatehouse', ...json } });
    assertInvalid(response, ...pointers);
    await assertNotAudited(server, response.requestId);
  }

  before(async () => {
    server = await startTestServer();
    api = adminApi(server, await adminToken(server, 'admin:identity-providers admin:users'));
  });
  after(() => server.close());

  test('create: 201 with Location, the defaults and redirect_uri; the secret is sealed at rest and never shown; audited without it', async () => {
    const clientSecret = secret();
    const issuer = `https://${domain()}/realms/staff`;
    const response = await api.request<IdentityProviderBody>('POST', '/identity-providers', {
      json: { name: 'Staff SSO', issuer, client_id: 'gatehouse-staff', client_secret: clientSecret },
    });
    assert.equal(response.status, 201, response.text);
    assertNoSecret(response.text);
    const provider = response.body;
    assert.equal(response.headers.get('location'), `/admin/v1/identity-providers/${provider.id}`);
    assert.deepEqual(Object.keys(provider).sort(), FIELDS);
    assert.equal(provider.issuer, issuer);
    assert.equal(provider.client_secret_set, true);
    assert.deepEqual(provider.scopes, ['openid', 'email', 'profile']);
    assert.deepEqual(provider.email_domains, []);
    assert.equal(provider.create_users, false);
    assert.equal(provider.link_by_verified_email, false);
    assert.deepEqual(provider.claim_mappings, {});
    assert.deepEqual(provider.role_mappings, []);
    assert.equal(provider.sync, 'on_create');
    assert.equal(provider.trust_upstream_mfa, false);
    assert.equal(provider.enabled, true);
    assert.equal(provider.redirect_uri, `${server.issuer}/federation/${provider.id}/callback`);

    const sealed = await sealedOf(provider.id);
    assert.ok(sealed !== null && !sealed.includes(clientSecret));
    assert.equal(server.runtime.envelope.open(sealed, `identity_providers:${provider.id}`).toString('utf8'), clientSecret);
    // Bound to this row: under another row's purpose it does not open.
    assert.throws(() => server.runtime.envelope.open(sealed, `identity_providers:${randomUUID()}`));

    const row = await assertAudited(server, response.requestId, 'identity_provider.created', provider.id);
    assert.equal(row.details['issuer'], issuer);
    assert.equal(row.details['client_secret_set'], true);

    const read = await api.request<IdentityProviderBody>('GET', `/identity-providers/${provider.id}`);
    assert.equal(read.status, 200);
    assert.deepEqual(read.body, provider);
    assert.ok(read.headers.get('etag'));
    assertNoSecret(read.text);
  });

  test('every field as given: mappings, domains lowercased, a public client without a secret', async () => {
    const corp = domain();
    const provider = await createProvider({
      scopes: ['openid', 'email', 'groups'],
      email_domains: [corp.toUpperCase()],
      create_users: true,
      link_by_verified_email: true,
      claim_mappings: { username: 'upn', email: 'mail', name: 'displayName' },
      role_mappings: [{ claim: 'groups', value: 'billing-admins', role: 'billing:admin' }],
      sync: 'every_login',
      trust_upstream_mfa: true,
      enabled: false,
    });
    assert.equal(provider.client_secret_set, false);
    assert.equal(await sealedOf(provider.id), null);
    assert.deepEqual(provider.email_domains, [corp]);
    assert.deepEqual(provider.claim_mappings, { username: 'upn', email: 'mail', name: 'displayName' });
    assert.deepEqual(provider.role_mappings, [{ claim: 'groups', value: 'billing-admins', role: 'billing:admin' }]);
    assert.deepEqual([provider.sync, provider.create_users, provider.link_by_verified_email, provider.trust_upstream_mfa, provider.enabled], ['every_login', true, true, true, false]);
  });

  describe('validation: 400 with field pointers, nothing stored or audited', () => {
    test('shape of each field', async () => {
      await assertCreateRefused({ name: '' }, '#/name');
      await assertCreateRefused({ issuer: 'login.example.com' }, '#/issuer');
      await assertCreateRefused({ issuer: 'http://login.example.com' }, '#/issuer');
      await assertCreateRefused({ issuer: 'https://login.example.com/?tenant=1' }, '#/issuer');
      await assertCreateRefused({ issuer: 'https://login.example.com/#x' }, '#/issuer');
      await assertCreateRefused({ issuer: 'https://user:pass@login.example.com' }, '#/issuer');
      await assertCreateRefused({ client_id: '' }, '#/client_id');
      await assertCreateRefused({ client_secret: '' }, '#/client_secret');
      await assertCreateRefused({ scopes: ['email', 'profile'] }, '#/scopes');
      await assertCreateRefused({ scopes: ['openid', 'openid'] }, '#/scopes');
      await assertCreateRefused({ scopes: ['openid', 'two words'] }, '#/scopes/1');
      await assertCreateRefused({ email_domains: ['not a domain'] }, '#/email_domains/0');
      await assertCreateRefused({ email_domains: ['localhost'] }, '#/email_domains/0');
      await assertCreateRefused({ email_domains: ['example.com', 'EXAMPLE.com'] }, '#/email_domains');
      await assertCreateRefused({ claim_mappings: { groups: 'roles' } }, '#/claim_mappings/groups');
      await assertCreateRefused({ claim_mappings: { username: '' } }, '#/claim_mappings/username');
      await assertCreateRefused({ role_mappings: [{ claim: 'groups', value: 'admins', role: 'not a role' }] }, '#/role_mappings/0/role');
      await assertCreateRefused({ role_mappings: [{ claim: 'groups', value: 'admins' }] }, '#/role_mappings/0/role');
      await assertCreateRefused({ sync: 'always' }, '#/sync');
      await assertCreateRefused({ trust_upstream_mfa: 'yes' }, '#/trust_upstream_mfa');
      await assertCreateRefused({ client_secret_set: true }, '#/client_secret_set');
    });

    test('Gatehouse fetches the issuer: a loopback or private host is refused (ALLOW_PRIVATE_JWKS_URI allows it)', async () => {
      await assertCreateRefused({ issuer: 'http://127.0.0.1:8080' }, '#/issuer');
      await assertCreateRefused({ issuer: 'http://localhost:8080/realms/x' }, '#/issuer');
      await assertCreateRefused({ issuer: 'https://10.1.2.3' }, '#/issuer');
      await assertCreateRefused({ issuer: 'https://[fd00::1]' }, '#/issuer');

      const development = await startTestServer({ database: server.database, env: { MASTER_KEY: server.masterKey, ISSUER: server.issuer, ALLOW_PRIVATE_JWKS_URI: 'true' } });
      try {
        const local = adminApi(development, await adminToken(development, 'admin:identity-providers'));
        const created = await local.request<IdentityProviderBody>('POST', '/identity-providers', { json: { name: 'Local', issuer: 'http://127.0.0.1:8080/realms/dev', client_id: 'x' } });
        assert.equal(created.status, 201, created.text);
      } finally {
        await development.close();
      }
    });

    test('an email domain of another enabled provider: 409 pointing at it; a disabled provider may share it', async () => {
      const corp = domain();
      const first = await createProvider({ email_domains: [corp] });
      const clash = await api.request('POST', '/identity-providers', { json: { name: 'Other', issuer: `https://${domain()}`, client_id: 'x', email_domains: ['other.example', corp] } });
      const problem = assertProblem(clash, 409, 'conflict');
      assert.deepEqual(problem.errors?.map((error) => error.pointer), ['#/email_domains/1']);
      await assertNotAudited(server, clash.requestId);
      const disabled = await createProvider({ email_domains: [corp], enabled: false });
      const enabling = await api.request('PATCH', `/identity-providers/${disabled.id}`, { json: { enabled: true } });
      assertProblem(enabling, 409, 'conflict');
      // The first one keeps its own domains through an update.
      assert.equal((await api.request('PATCH', `/identity-providers/${first.id}`, { json: { name: 'Renamed' } })).status, 200);
    });
  });

  test('update: changes audited old and new; a new secret re-seals, null removes it, neither shown; a stale If-Match is 412', async () => {
    const provider = await createProvider({ client_secret: secret() });
    const read = await api.request<IdentityProviderBody>('GET', `/identity-providers/${provider.id}`);
    const etag = read.headers.get('etag')!;
    const sealedBefore = await sealedOf(provider.id);

    const replacement = secret();
    const updated = await api.request<IdentityProviderBody>('PATCH', `/identity-providers/${provider.id}`, {
      json: { client_secret: replacement, scopes: ['openid', 'email'], trust_upstream_mfa: true },
      headers: { 'If-Match': etag },
    });
    assert.equal(updated.status, 200, updated.text);
    assertNoSecret(updated.text);
    assert.deepEqual(updated.body.scopes, ['openid', 'email']);
    assert.equal(updated.body.client_secret_set, true);
    const sealed = await sealedOf(provider.id);
    assert.ok(sealed !== null && sealed !== sealedBefore);
    assert.equal(server.runtime.envelope.open(sealed, `identity_providers:${provider.id}`).toString('utf8'), replacement);
    const row = await assertAudited(server, updated.requestId, 'identity_provider.updated', provider.id);
    assert.deepEqual(row.details, {
      changes: { scopes: { from: ['openid', 'email', 'profile'], to: ['openid', 'email'] }, trust_upstream_mfa: { from: false, to: true } },
      client_secret: 'replaced',
    });

    const stale = await api.request('PATCH', `/identity-providers/${provider.id}`, { json: { enabled: false }, headers: { 'If-Match': etag } });
    assertProblem(stale, 412, 'precondition-failed');
    await assertNotAudited(server, stale.requestId);

    const removed = await api.request<IdentityProviderBody>('PATCH', `/identity-providers/${provider.id}`, { json: { client_secret: null } });
    assert.equal(removed.status, 200, removed.text);
    assert.equal(removed.body.client_secret_set, false);
    assert.equal(await sealedOf(provider.id), null);
    assert.deepEqual((await assertAudited(server, removed.requestId, 'identity_provider.updated', provider.id)).details, { changes: {}, client_secret: 'removed' });

    // Checked as a whole: the merged issuer is refused like a created one.
    const invalid = await api.request('PATCH', `/identity-providers/${provider.id}`, { json: { issuer: 'https://192.168.0.1' } });
    assertInvalid(invalid, '#/issuer');
    await assertNotAudited(server, invalid.requestId);
    assertProblem(await api.request('PATCH', `/identity-providers/${randomUUID()}`, { json: {} }), 404, 'not-found');
  });

  test('list pages oldest first and shows no secret; delete is audited and then 404', async () => {
    const a = await createProvider({ client_secret: secret() });
    const b = await createProvider();
    const ids = (await allPages<IdentityProviderBody>(api, '/identity-providers', 2, (page) => assertNoSecret(page.text))).map((item) => item.id);
    assert.ok(ids.indexOf(a.id) >= 0 && ids.indexOf(a.id) < ids.indexOf(b.id));
    assert.equal(new Set(ids).size, ids.length);

    const deleted = await api.request('DELETE', `/identity-providers/${a.id}`);
    assert.equal(deleted.status, 204);
    assert.equal((await assertAudited(server, deleted.requestId, 'identity_provider.deleted', a.id)).details['name'], a.name);
    assertProblem(await api.request('GET', `/identity-providers/${a.id}`), 404, 'not-found');
    assertProblem(await api.request('DELETE', `/identity-providers/${a.id}`), 404, 'not-found');
    assertProblem(await api.request('GET', '/identity-providers/not-a-uuid'), 404, 'not-found');
  });

  test('a person lists their identities; unlinking one is audited, then 404; deleting the provider unlinks the rest', async () => {
    const provider = await createProvider({ name: 'Corp' });
    const other = await createProvider({ name: 'Partner' });
    const created = await api.request<UserBody>('POST', '/users', { json: { username: uniqueName('fed'), password: 'correct horse battery staple' } });
    assert.equal(created.status, 201, created.text);
    const user = created.body;
    assert.deepEqual(user.identities, []);

    const identities = createUserIdentityStore(server.db);
    assert.ok(await identities.link({ providerId: provider.id, subject: 'upstream-sub-1', userId: user.id, email: 'ada@corp.example', mappedRoles: [] }));
    assert.ok(await identities.link({ providerId: other.id, subject: 'partner-sub-9', userId: user.id, email: null, mappedRoles: [] }));

    const read = await api.request<UserBody>('GET', `/users/${user.id}`);
    assert.equal(read.status, 200, read.text);
    assert.deepEqual(
      read.body.identities.map(({ provider_id, provider_name, subject, email }) => ({ provider_id, provider_name, subject, email })),
      [
        { provider_id: provider.id, provider_name: 'Corp', subject: 'upstream-sub-1', email: 'ada@corp.example' },
        { provider_id: other.id, provider_name: 'Partner', subject: 'partner-sub-9', email: null },
      ],
    );
    for (const identity of read.body.identities) {
      assert.ok(!Number.isNaN(Date.parse(identity.linked_at)));
      assert.ok(identity.last_login_at !== null);
    }
    const listed = await api.request<Page<UserBody>>('GET', '/users?limit=200');
    assert.deepEqual(listed.body.items.find((item) => item.id === user.id)?.identities, read.body.identities);

    // The ETag covers the identities: a PATCH with the one read still applies.
    const patched = await api.request('PATCH', `/users/${user.id}`, { json: { name: 'Ada' }, headers: { 'If-Match': read.headers.get('etag')! } });
    assert.equal(patched.status, 200, patched.text);

    const unlinked = await api.request('DELETE', `/users/${user.id}/identities/${provider.id}`);
    assert.equal(unlinked.status, 204, unlinked.text);
    const row = await assertAudited(server, unlinked.requestId, 'user.identity_unlinked', user.id);
    assert.deepEqual(row.details, { provider_id: provider.id, provider_name: 'Corp', subject: 'upstream-sub-1' });
    assert.deepEqual(
      (await api.request<UserBody>('GET', `/users/${user.id}`)).body.identities.map((identity) => identity.provider_id),
      [other.id],
    );
    assertProblem(await api.request('DELETE', `/users/${user.id}/identities/${provider.id}`), 404, 'not-found');
    assertProblem(await api.request('DELETE', `/users/${randomUUID()}/identities/${other.id}`), 404, 'not-found');
    assertProblem(await api.request('DELETE', `/users/${user.id}/identities/not-a-uuid`), 404, 'not-found');

    assert.equal((await api.request('DELETE', `/identity-providers/${other.id}`)).status, 204);
    assert.deepEqual((await api.request<UserBody>('GET', `/users/${user.id}`)).body.identities, []);

    // Unlinking is admin:users' business, not admin:identity-providers'.
    const providersOnly = await adminToken(server, 'admin:identity-providers');
    assert.equal((await api.request('DELETE', `/users/${user.id}/identities/${provider.id}`, { token: providersOnly })).status, 403);
  });

  test('403 without admin:identity-providers, 401 without a token; nothing written', async () => {
    const other = await adminToken(server, 'admin:users admin:clients');
    const denied = await api.request('POST', '/identity-providers', { token: other, json: { name: 'X', issuer: 'https://login.example.com', client_id: 'x', client_secret: secret() } });
    assert.equal(denied.status, 403, denied.text);
    assert.match(denied.headers.get('www-authenticate') ?? '', /insufficient_scope/);
    for (const [method, path] of [
      ['GET', '/identity-providers'],
      ['GET', `/identity-providers/${randomUUID()}`],
      ['PATCH', `/identity-providers/${randomUUID()}`],
      ['DELETE', `/identity-providers/${randomUUID()}`],
    ] as const) {
      assert.equal((await api.request(method, path, { token: other, ...(method === 'PATCH' ? { json: {} } : {}) })).status, 403, `${method} ${path}`);
    }
    assert.equal((await api.request('GET', '/identity-providers', { token: null })).status, 401);
    assert.deepEqual(await auditRowsFor(server, denied.requestId), []);
  });

  test('no audit event anywhere holds a client secret', async () => {
    assert.ok(secrets.length >= 4);
    await assertAuditFreeOf(server, secrets);
  });
});
