import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import argon2 from 'argon2';
import { createOidcModelStore } from '../../src/db/oidc-models.js';
import {
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
  type ApiResponse,
  type Page,
} from '../support/admin-api.js';
import { startTestServer, type TestServer } from '../support/server.js';

/** SPEC §4/§5 people: created and managed by admins, passwords stored as argon2id only, disabling ends sessions. */

interface UserBody {
  readonly id: string;
  readonly username: string;
  readonly email: string | null;
  readonly email_verified: boolean;
  readonly name: string | null;
  readonly roles: string[];
  readonly disabled: boolean;
  readonly mfa_required: boolean;
  readonly created_at: string;
  readonly updated_at: string;
  readonly password_changed_at: string;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const USER_FIELDS = ['created_at', 'disabled', 'email', 'email_verified', 'id', 'identities', 'mfa_enrolled', 'mfa_required', 'name', 'passkeys', 'password_changed_at', 'roles', 'updated_at', 'username'];
/**
 * SPEC §4 and OWASP's minimum: argon2id version 19, 19 MiB, two passes, one lane. The PHC string's
 * parameters are compared as a set: argon2 writes them as `m=19456,p=1,t=2`.
 */
function assertArgon2id(hash: string): void {
  const match = /^\$argon2id\$v=19\$([^$]+)\$[A-Za-z0-9+/]+\$[A-Za-z0-9+/]+$/.exec(hash);
  assert.ok(match !== null, `not an argon2id v19 PHC string: ${hash}`);
  const params = Object.fromEntries(match[1]!.split(',').map((pair) => pair.split('=')));
  assert.deepEqual(params, { m: '19456', t: '2', p: '1' });
}

/** The full-width (U+FF01..U+FF5E) form of printable ASCII, which NFKC folds back. */
function fullWidth(value: string): string {
  return value.replace(/[!-~]/g, (c) => String.fromCodePoint(c.codePointAt(0)! + 0xfee0));
}

describe('admin API: users', () => {
  let server: TestServer;
  let api: AdminApi;
  /** Every password we sent and every hash stored; none may appear in a response or an audit event. */
  const secretsSeen = new Set<string>();

  function password(): string {
    const value = `pw-${randomUUID()}`;
    secretsSeen.add(value);
    return value;
  }

  async function storedHash(id: string): Promise<string> {
    const { rows } = await server.db.query<{ password_hash: string }>('SELECT password_hash FROM users WHERE id = $1', [id]);
    assert.equal(rows.length, 1);
    secretsSeen.add(rows[0]!.password_hash);
    return rows[0]!.password_hash;
  }

  function assertNoSecrets(response: ApiResponse<unknown>): void {
    assert.ok(!/password_hash|\$argon2/.test(response.text), `response carries a hash: ${response.text}`);
    for (const secret of secretsSeen) assert.ok(!response.text.includes(secret), 'response carries a password or hash');
  }

  async function createUser(json: Record<string, unknown> = {}): Promise<UserBody> {
    const response = await api.request<UserBody>('POST', '/users', { json: { username: uniqueName('user'), password: password(), ...json } });
    assert.equal(response.status, 201, response.text);
    assertNoSecrets(response);
    return response.body;
  }

  async function assertCreateRefused(json: Record<string, unknown>, ...pointers: string[]): Promise<void> {
    const response = await api.request('POST', '/users', { json: { username: uniqueName('user'), password: password(), ...json } });
    assertInvalid(response, ...pointers);
    await assertNotAudited(server, response.requestId);
  }

  async function modelRowsFor(accountId: string): Promise<string[]> {
    const { rows } = await server.db.query<{ model: string }>('SELECT model FROM oidc_models WHERE account_id = $1 ORDER BY model', [accountId]);
    return rows.map((row) => row.model);
  }

  /** A session, a grant and a refresh token for the person, stored as the provider's adapter stores them. */
  async function signIn(accountId: string): Promise<void> {
    const store = createOidcModelStore(server.db);
    const grantId = `grant-${randomUUID()}`;
    await store.upsert('Session', `sid-${randomUUID()}`, { accountId, loginTs: Math.floor(Date.now() / 1000) }, 3600);
    await store.upsert('Grant', grantId, { accountId, clientId: 'some-client' }, 3600);
    await store.upsert('RefreshToken', `rt-${randomUUID()}`, { accountId, clientId: 'some-client', grantId }, 3600);
    assert.deepEqual(await modelRowsFor(accountId), ['Grant', 'RefreshToken', 'Session']);
  }

  before(async () => {
    server = await startTestServer();
    api = adminApi(server, await adminToken(server, 'admin:users'));
  });
  after(() => server.close());

  describe('create and read', () => {
    test('201 with a uuid id, Location and the defaults; no password or hash in the body; audited', async () => {
      const username = uniqueName('Alice');
      const secret = password();
      const response = await api.request<UserBody>('POST', '/users', {
        json: { username, password: secret, email: 'alice@example.com', email_verified: true, name: 'Alice Liddell', roles: ['admin', 'billing:read'] },
      });
      assert.equal(response.status, 201, response.text);
      const user = response.body;
      assert.match(user.id, UUID);
      assert.equal(response.headers.get('location'), `/admin/v1/users/${user.id}`);
      assert.deepEqual(Object.keys(user).sort(), USER_FIELDS);
      assert.equal(user.username, username);
      assert.equal(user.email, 'alice@example.com');
      assert.equal(user.email_verified, true);
      assert.equal(user.name, 'Alice Liddell');
      assert.deepEqual(user.roles, ['admin', 'billing:read']);
      assert.equal(user.disabled, false);
      assert.equal(user.mfa_required, false);
      for (const at of [user.created_at, user.updated_at, user.password_changed_at]) assert.ok(!Number.isNaN(Date.parse(at)));
      await storedHash(user.id);
      assertNoSecrets(response);

      const audit = await assertAudited(server, response.requestId, 'user.created', user.id);
      assert.equal(audit.details['username'], username);

      const read = await api.request<UserBody>('GET', `/users/${user.id}`);
      assert.equal(read.status, 200, read.text);
      assert.deepEqual(read.body, user);
      assertNoSecrets(read);
    });

    test('the stored password is an argon2id hash with the SPEC parameters that verifies the password', async () => {
      const secret = password();
      const user = await createUser({ password: secret });
      const hash = await storedHash(user.id);
      assertArgon2id(hash);
      assert.equal(await argon2.verify(hash, secret), true);
      assert.equal(await argon2.verify(hash, `${secret}x`), false);
    });

    test('defaults: no email, name or roles; not verified, not disabled, no MFA requirement', async () => {
      const user = await createUser();
      assert.equal(user.email, null);
      assert.equal(user.email_verified, false);
      assert.equal(user.name, null);
      assert.deepEqual(user.roles, []);
      assert.equal(user.disabled, false);
      assert.equal(user.mfa_required, false);
    });

    test('mfa_required and disabled can be set at creation', async () => {
      const user = await createUser({ mfa_required: true, disabled: true });
      assert.equal(user.mfa_required, true);
      assert.equal(user.disabled, true);
    });

    test('an unknown id is 404, whether or not it looks like a uuid', async () => {
      for (const id of [randomUUID(), 'not-a-uuid', "1' OR '1'='1"]) {
        assertProblem(await api.request('GET', `/users/${encodeURIComponent(id)}`), 404, 'not-found');
      }
    });
  });

  describe('usernames', () => {
    test('a username differing only in case or width is taken: 409 at #/username, nothing stored or audited', async () => {
      const base = uniqueName('bob');
      const first = await createUser({ username: base });
      for (const variant of [base.toUpperCase(), fullWidth(base), fullWidth(base.toUpperCase()), ` ${base} `]) {
        const response = await api.request('POST', '/users', { json: { username: variant, password: password() } });
        const problem = assertProblem(response, 409, 'conflict');
        assert.deepEqual(
          problem.errors?.map((error) => error.pointer),
          ['#/username'],
        );
        await assertNotAudited(server, response.requestId);
      }
      const { rows } = await server.db.query<{ n: number }>('SELECT count(*)::int AS n FROM users WHERE username_normalized = $1', [base.toLowerCase()]);
      assert.equal(rows[0]?.n, 1);
      assert.equal((await api.request<UserBody>('GET', `/users/${first.id}`)).body.username, base);
    });

    test('the username is shown as typed (full width included) but compared in its normalised form', async () => {
      const typed = fullWidth(uniqueName('Carol'));
      const user = await createUser({ username: typed });
      assert.equal(user.username, typed);
      const response = await api.request('POST', '/users', { json: { username: typed.normalize('NFKC').toLowerCase(), password: password() } });
      assertProblem(response, 409, 'conflict');
    });

    test('usernames must be 1 to 64 letters, digits or . _ - @ +', async () => {
      await createUser({ username: `${uniqueName('dave')}.o_k-1@example.com+x` });
      await createUser({ username: `Zoë-${randomUUID().slice(0, 8)}` });
      for (const username of ['', '   ', 'has space', 'semi;colon', 'slash/', 'x'.repeat(65), 42, null]) {
        await assertCreateRefused({ username }, '#/username');
      }
      const response = await api.request('POST', '/users', { json: { password: password() } });
      assertInvalid(response, '#/username');
    });
  });

  describe('validation', () => {
    test('passwords are 12 to 1024 characters, counted in code points', async () => {
      await assertCreateRefused({ password: 'x'.repeat(11) }, '#/password');
      await assertCreateRefused({ password: 'x'.repeat(1025) }, '#/password');
      // 11 emoji are 22 UTF-16 units but 11 characters: too short. 1024 of them are 2048 units but allowed.
      await assertCreateRefused({ password: '🔑'.repeat(11) }, '#/password');
      await createUser({ password: 'x'.repeat(12) });
      await createUser({ password: 'y'.repeat(1024) });
      await createUser({ password: '🔑'.repeat(1024) });
      await assertCreateRefused({ password: 123456789012 }, '#/password');
      const missing = await api.request('POST', '/users', { json: { username: uniqueName('user') } });
      assertInvalid(missing, '#/password');
    });

    test('email must be an address of at most 254 characters, or null', async () => {
      const address = (length: number) => `${'a'.repeat(64)}@${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(length - 197)}.com`;
      const longest = address(254);
      assert.equal(longest.length, 254);
      assert.equal(address(255).length, 255);
      for (const email of ['not-an-email', 'a@', '@example.com', 'a b@example.com', address(255), 7]) {
        await assertCreateRefused({ email }, '#/email');
      }
      assert.equal((await createUser({ email: longest })).email, longest);
      assert.equal((await createUser({ email: null })).email, null);
      assert.equal((await createUser({ email: 'ok@example.com' })).email, 'ok@example.com');
    });

    test('email_verified cannot be true without an email', async () => {
      await assertCreateRefused({ email_verified: true }, '#/email_verified');
      await assertCreateRefused({ email_verified: 'yes', email: 'a@example.com' }, '#/email_verified');
    });

    test('name is 1 to 200 characters, or null', async () => {
      for (const name of ['', '   ', 'n'.repeat(201), 3]) await assertCreateRefused({ name }, '#/name');
      assert.equal((await createUser({ name: 'n'.repeat(200) })).name, 'n'.repeat(200));
    });

    test('roles: names of letters, digits and . _ : -, unique, at most 50', async () => {
      await assertCreateRefused({ roles: ['has space'] }, '#/roles/0');
      await assertCreateRefused({ roles: ['ok', 'bad/slash'] }, '#/roles/1');
      await assertCreateRefused({ roles: [''] }, '#/roles/0');
      await assertCreateRefused({ roles: ['r'.repeat(65)] }, '#/roles/0');
      await assertCreateRefused({ roles: ['admin', 'admin'] }, '#/roles');
      await assertCreateRefused({ roles: Array.from({ length: 51 }, (_, i) => `role${i}`) }, '#/roles');
      await assertCreateRefused({ roles: 'admin' }, '#/roles');
      await assertCreateRefused({ roles: [1] }, '#/roles/0');
      const fifty = Array.from({ length: 50 }, (_, i) => `team.a_b-c:${i}`);
      assert.deepEqual((await createUser({ roles: fifty })).roles, fifty);
    });

    test('booleans must be booleans', async () => {
      await assertCreateRefused({ mfa_required: 'true' }, '#/mfa_required');
      await assertCreateRefused({ disabled: 1 }, '#/disabled');
    });

    test('unknown fields are refused, so a hash or an id cannot be smuggled in', async () => {
      await assertCreateRefused({ password_hash: '$argon2id$v=19$m=19456,t=2,p=1$AAAA$BBBB' }, '#/password_hash');
      await assertCreateRefused({ id: randomUUID() }, '#/id');
      await assertCreateRefused({ mfa_enrolled: true }, '#/mfa_enrolled');
      const user = await createUser();
      const response = await api.request('PATCH', `/users/${user.id}`, { json: { password_changed_at: new Date(0).toISOString() } });
      assertInvalid(response, '#/password_changed_at');
      await assertNotAudited(server, response.requestId);
    });

    test('a body that is not JSON is refused', async () => {
      assertProblem(await api.request('POST', '/users', { raw: '{"username":', headers: { 'Content-Type': 'application/json' } }), 400, 'malformed-body');
      assertProblem(await api.request('POST', '/users', { raw: 'username=a', headers: { 'Content-Type': 'application/x-www-form-urlencoded' } }), 415, 'unsupported-media-type');
    });
  });

  describe('listing', () => {
    test('walks every user with limit=2 via next_cursor, in a stable order without duplicates; never a hash', async () => {
      for (let i = 0; i < 3; i += 1) await createUser();
      const whole = await api.request<Page<UserBody>>('GET', '/users?limit=200');
      assert.equal(whole.status, 200, whole.text);
      assert.equal(whole.body.next_cursor, null);
      assert.ok(whole.body.items.length >= 3);
      assertNoSecrets(whole);

      const walked: UserBody[] = [];
      let cursor: string | null = null;
      do {
        const query: string = cursor === null ? '' : `&cursor=${encodeURIComponent(cursor)}`;
        const page = await api.request<Page<UserBody>>('GET', `/users?limit=2${query}`);
        assert.equal(page.status, 200, page.text);
        assert.deepEqual(Object.keys(page.body).sort(), ['items', 'next_cursor']);
        assert.ok(page.body.items.length <= 2);
        for (const item of page.body.items) assert.deepEqual(Object.keys(item).sort(), USER_FIELDS);
        walked.push(...page.body.items);
        cursor = page.body.next_cursor;
        assert.ok(walked.length <= whole.body.items.length, 'the cursor walk must end');
      } while (cursor !== null);
      assert.deepEqual(
        walked.map((user) => user.id),
        whole.body.items.map((user) => user.id),
      );
      assert.equal(new Set(walked.map((user) => user.id)).size, walked.length);
    });

    test('?username= filters by prefix, ignoring case and width, and pages within the filter', async () => {
      const prefix = uniqueName('Team');
      const ids: string[] = [];
      for (let i = 0; i < 3; i += 1) ids.push((await createUser({ username: `${prefix}.member${i}` })).id);
      await createUser({ username: `x${prefix}` });

      const first = await api.request<Page<UserBody>>('GET', `/users?username=${encodeURIComponent(prefix.toLowerCase())}&limit=2`);
      assert.equal(first.status, 200, first.text);
      assert.equal(first.body.items.length, 2);
      assert.equal(typeof first.body.next_cursor, 'string');
      const second = await api.request<Page<UserBody>>('GET', `/users?username=${encodeURIComponent(prefix.toLowerCase())}&limit=2&cursor=${encodeURIComponent(first.body.next_cursor!)}`);
      assert.equal(second.status, 200, second.text);
      assert.equal(second.body.next_cursor, null);
      assert.deepEqual([...first.body.items, ...second.body.items].map((user) => user.id), ids);

      const wide = await api.request<Page<UserBody>>('GET', `/users?username=${encodeURIComponent(fullWidth(prefix.toUpperCase()))}`);
      assert.deepEqual(wide.body.items.map((user) => user.id), ids);
      // LIKE wildcards in the filter are literal.
      assert.deepEqual((await api.request<Page<UserBody>>('GET', '/users?username=%25')).body.items, []);
      assert.deepEqual((await api.request<Page<UserBody>>('GET', '/users?username=_')).body.items, []);
    });

    test('?email= filters by prefix, ignoring case', async () => {
      const local = uniqueName('mail');
      const a = await createUser({ email: `${local}.a@example.com` });
      const b = await createUser({ email: `${local.toUpperCase()}.b@example.org` });
      await createUser({ email: `other-${local}@example.com` });
      const response = await api.request<Page<UserBody>>('GET', `/users?email=${encodeURIComponent(local)}`);
      assert.equal(response.status, 200, response.text);
      assert.deepEqual(response.body.items.map((user) => user.id), [a.id, b.id]);
      const narrower = await api.request<Page<UserBody>>('GET', `/users?email=${encodeURIComponent(`${local}.B@`)}`);
      assert.deepEqual(narrower.body.items.map((user) => user.id), [b.id]);
    });

    test('limit and cursor are validated', async () => {
      for (const limit of ['0', '201', 'abc']) assertInvalid(await api.request('GET', `/users?limit=${limit}`), '#/limit');
      for (const cursor of ['garbage', Buffer.from('{"p":"1 OR 1=1"}').toString('base64url')]) {
        assertInvalid(await api.request('GET', `/users?cursor=${encodeURIComponent(cursor)}`), '#/cursor');
      }
    });
  });

  describe('update', () => {
    test('PATCH changes the given fields, keeps the rest, and audits the changed field names', async () => {
      const user = await createUser({ email: 'before@example.com', email_verified: true, name: 'Before', roles: ['a'] });
      const hash = await storedHash(user.id);
      const response = await api.request<UserBody>('PATCH', `/users/${user.id}`, { json: { name: 'After', roles: ['a', 'b'], mfa_required: true } });
      assert.equal(response.status, 200, response.text);
      assertNoSecrets(response);
      assert.deepEqual(response.body, {
        ...user,
        name: 'After',
        roles: ['a', 'b'],
        mfa_required: true,
        updated_at: response.body.updated_at,
      });
      assert.ok(Date.parse(response.body.updated_at) > Date.parse(user.updated_at));
      assert.equal(response.body.password_changed_at, user.password_changed_at);
      assert.deepEqual((await api.request<UserBody>('GET', `/users/${user.id}`)).body, response.body);
      assert.equal(await storedHash(user.id), hash);
      const audit = await assertAudited(server, response.requestId, 'user.updated', user.id);
      assert.deepEqual(audit.details['fields'], ['mfa_required', 'name', 'roles']);
    });

    test('null clears email and name; a new email is unverified unless the request says otherwise', async () => {
      const user = await createUser({ email: 'one@example.com', email_verified: true, name: 'Someone' });
      const changed = await api.request<UserBody>('PATCH', `/users/${user.id}`, { json: { email: 'two@example.com' } });
      assert.equal(changed.status, 200, changed.text);
      assert.equal(changed.body.email, 'two@example.com');
      assert.equal(changed.body.email_verified, false);
      assert.deepEqual((await assertAudited(server, changed.requestId, 'user.updated', user.id)).details['fields'], ['email', 'email_verified']);

      const verified = await api.request<UserBody>('PATCH', `/users/${user.id}`, { json: { email: 'three@example.com', email_verified: true } });
      assert.equal(verified.body.email_verified, true);

      const cleared = await api.request<UserBody>('PATCH', `/users/${user.id}`, { json: { email: null, name: null } });
      assert.equal(cleared.status, 200, cleared.text);
      assert.equal(cleared.body.email, null);
      assert.equal(cleared.body.email_verified, false);
      assert.equal(cleared.body.name, null);

      const refused = await api.request('PATCH', `/users/${user.id}`, { json: { email_verified: true } });
      assertInvalid(refused, '#/email_verified');
      await assertNotAudited(server, refused.requestId);
    });

    test('PATCH is validated like create', async () => {
      const user = await createUser();
      for (const [json, pointer] of [
        [{ username: 'has space' }, '#/username'],
        [{ password: 'short' }, '#/password'],
        [{ email: 'nope' }, '#/email'],
        [{ name: '' }, '#/name'],
        [{ roles: ['a', 'a'] }, '#/roles'],
        [{ disabled: null }, '#/disabled'],
        [{ username: null }, '#/username'],
      ] as const) {
        const response = await api.request('PATCH', `/users/${user.id}`, { json });
        assertInvalid(response, pointer);
        await assertNotAudited(server, response.requestId);
      }
      assert.deepEqual((await api.request<UserBody>('GET', `/users/${user.id}`)).body, user);
    });

    test('a rename is re-normalised and must stay unique: 409 at #/username; a change of case alone is allowed', async () => {
      const taken = await createUser({ username: uniqueName('erin') });
      const user = await createUser({ username: uniqueName('frank') });
      const clash = await api.request('PATCH', `/users/${user.id}`, { json: { username: fullWidth(taken.username.toUpperCase()) } });
      const problem = assertProblem(clash, 409, 'conflict');
      assert.deepEqual(problem.errors?.map((error) => error.pointer), ['#/username']);
      await assertNotAudited(server, clash.requestId);

      const recased = await api.request<UserBody>('PATCH', `/users/${user.id}`, { json: { username: user.username.toUpperCase() } });
      assert.equal(recased.status, 200, recased.text);
      assert.equal(recased.body.username, user.username.toUpperCase());

      const renamed = await api.request<UserBody>('PATCH', `/users/${user.id}`, { json: { username: `${user.username}-renamed` } });
      assert.equal(renamed.status, 200, renamed.text);
      const reuse = await api.request('POST', '/users', { json: { username: user.username, password: password() } });
      assert.equal(reuse.status, 201, reuse.text);
    });

    test('PATCH password replaces the argon2id hash and password_changed_at; audited without the password', async () => {
      const oldPassword = password();
      const user = await createUser({ password: oldPassword });
      const oldHash = await storedHash(user.id);
      const newPassword = password();
      const response = await api.request<UserBody>('PATCH', `/users/${user.id}`, { json: { password: newPassword } });
      assert.equal(response.status, 200, response.text);
      assertNoSecrets(response);

      const newHash = await storedHash(user.id);
      assert.notEqual(newHash, oldHash);
      assertArgon2id(newHash);
      assert.equal(await argon2.verify(newHash, newPassword), true);
      assert.equal(await argon2.verify(newHash, oldPassword), false);
      assert.ok(Date.parse(response.body.password_changed_at) > Date.parse(user.password_changed_at));
      assert.equal((await api.request<UserBody>('GET', `/users/${user.id}`)).body.password_changed_at, response.body.password_changed_at);

      const audit = await assertAudited(server, response.requestId, 'user.password_changed', user.id);
      const text = JSON.stringify(audit);
      for (const secret of [oldPassword, newPassword, oldHash, newHash]) assert.ok(!text.includes(secret));

      // A refused password changes nothing.
      const refused = await api.request('PATCH', `/users/${user.id}`, { json: { password: 'x'.repeat(11) } });
      assertInvalid(refused, '#/password');
      assert.equal(await storedHash(user.id), newHash);
    });

    test('password with other fields: one event for each kind of change', async () => {
      const user = await createUser();
      const response = await api.request<UserBody>('PATCH', `/users/${user.id}`, { json: { password: password(), name: 'Renamed' } });
      assert.equal(response.status, 200, response.text);
      const rows = await auditRowsFor(server, response.requestId);
      assert.deepEqual(rows.map((row) => row.type), ['user.updated', 'user.password_changed']);
      assert.deepEqual(rows[0]!.details['fields'], ['name']);
      for (const row of rows) assert.equal(row.actor, server.admin.clientId);
    });

    test('PATCH on an unknown user is 404 and audits nothing', async () => {
      const response = await api.request('PATCH', `/users/${randomUUID()}`, { json: { name: 'x' } });
      assertProblem(response, 404, 'not-found');
      await assertNotAudited(server, response.requestId);
    });
  });

  describe('disabling and deleting end sessions', () => {
    test('PATCH disabled:true removes the person’s sessions, grants and refresh tokens, and only theirs', async () => {
      const user = await createUser();
      const bystander = await createUser();
      await signIn(user.id);
      await signIn(bystander.id);

      const response = await api.request<UserBody>('PATCH', `/users/${user.id}`, { json: { disabled: true } });
      assert.equal(response.status, 200, response.text);
      assert.equal(response.body.disabled, true);
      assert.deepEqual(await modelRowsFor(user.id), []);
      assert.deepEqual(await modelRowsFor(bystander.id), ['Grant', 'RefreshToken', 'Session']);
      const audit = await assertAudited(server, response.requestId, 'user.disabled', user.id);
      assert.equal(audit.details['revoked_artifacts'], 3);

      // Enabling again is an ordinary update.
      const enabled = await api.request<UserBody>('PATCH', `/users/${user.id}`, { json: { disabled: false } });
      assert.equal(enabled.body.disabled, false);
      assert.deepEqual((await assertAudited(server, enabled.requestId, 'user.updated', user.id)).details['fields'], ['disabled']);
    });

    test('a grant saved through the provider is revoked on disable too', async () => {
      const user = await createUser();
      const provider = server.running.providers.current();
      const grant = new provider.Grant({ clientId: 'some-client', accountId: user.id });
      grant.addOIDCScope('openid');
      await grant.save();
      assert.deepEqual(await modelRowsFor(user.id), ['Grant']);
      const response = await api.request('PATCH', `/users/${user.id}`, { json: { disabled: true } });
      assert.equal(response.status, 200, response.text);
      assert.equal(await provider.Grant.find(grant.jti), undefined);
    });

    test('DELETE: 204, then 404; the person’s sessions, grants and refresh tokens are gone; audited once', async () => {
      const user = await createUser();
      const bystander = await createUser();
      await signIn(user.id);
      await signIn(bystander.id);

      const response = await api.request('DELETE', `/users/${user.id}`);
      assert.equal(response.status, 204, response.text);
      assert.equal(response.text, '');
      assert.deepEqual(await modelRowsFor(user.id), []);
      assert.deepEqual(await modelRowsFor(bystander.id), ['Grant', 'RefreshToken', 'Session']);
      const { rows } = await server.db.query('SELECT 1 FROM users WHERE id = $1', [user.id]);
      assert.equal(rows.length, 0);
      const audit = await assertAudited(server, response.requestId, 'user.deleted', user.id);
      assert.equal(audit.details['revoked_artifacts'], 3);

      assertProblem(await api.request('GET', `/users/${user.id}`), 404, 'not-found');
      const again = await api.request('DELETE', `/users/${user.id}`);
      assertProblem(again, 404, 'not-found');
      await assertNotAudited(server, again.requestId);
      // The name is free again.
      const reuse = await api.request('POST', '/users', { json: { username: user.username, password: password() } });
      assert.equal(reuse.status, 201, reuse.text);
    });
  });

  describe('authorization', () => {
    test('a token without admin:users is 403 for every users route, and changes nothing', async () => {
      const user = await createUser();
      const other = adminApi(server, await adminToken(server, 'admin:clients admin:resource-servers admin:keys admin:audit'));
      for (const [method, path, json] of [
        ['GET', '/users', undefined],
        ['POST', '/users', { username: uniqueName('nope'), password: password() }],
        ['GET', `/users/${user.id}`, undefined],
        ['PATCH', `/users/${user.id}`, { disabled: true }],
        ['DELETE', `/users/${user.id}`, undefined],
      ] as const) {
        const response = await other.request(method, path, json === undefined ? {} : { json });
        assertProblem(response, 403, 'forbidden');
        assert.match(response.headers.get('www-authenticate') ?? '', /insufficient_scope/);
        await assertNotAudited(server, response.requestId);
      }
      assert.deepEqual((await api.request<UserBody>('GET', `/users/${user.id}`)).body, user);
    });

    test('no token is 401', async () => {
      assertProblem(await api.request('GET', '/users', { token: null }), 401, 'unauthorized');
      assertProblem(await api.request('POST', '/users', { token: null, json: { username: 'x', password: password() } }), 401, 'unauthorized');
    });
  });

  test('every change was audited by the admin client, and no audit event holds a password or hash', async () => {
    const { rows } = await server.db.query<{ type: string; actor: string | null }>("SELECT type, actor FROM audit_events WHERE type LIKE 'user.%'");
    assert.deepEqual(
      [...new Set(rows.map((row) => row.type))].sort(),
      ['user.created', 'user.deleted', 'user.disabled', 'user.password_changed', 'user.updated'],
    );
    for (const row of rows) assert.equal(row.actor, server.admin.clientId);
    const { rows: hashes } = await server.db.query<{ password_hash: string }>('SELECT password_hash FROM users');
    for (const { password_hash } of hashes) secretsSeen.add(password_hash);
    await assertAuditFreeOf(server, secretsSeen);
    const { rows: all } = await server.db.query('SELECT * FROM audit_events');
    for (const row of all) assert.ok(!/\$argon2|password_hash/.test(JSON.stringify(row)), JSON.stringify(row));
  });
});
