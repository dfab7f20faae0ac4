import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { createOidcModelStore } from '../../src/db/oidc-models.js';
import { createPasskeyStore } from '../../src/db/passkeys.js';
import { createSecondFactorStore } from '../../src/db/second-factor.js';
import { adminApi, adminToken, assertAudited, assertNotAudited, assertProblem, uniqueName, type AdminApi } from '../support/admin-api.js';
import { startTestServer, type TestServer } from '../support/server.js';

/**
 * SPEC §4/§5: an admin lists a person's passkeys and removes one. A removal ends the person's
 * sessions, grants and refresh tokens like a removed second factor, is audited as
 * `passkey.removed` with the admin client as actor, and needs the admin scopes of a person whose
 * roles open the console. The passkeys are stored rows (the browser part is
 * test/browser/passkeys.browser.test.ts); their public keys never leave the database.
 */

const PASSWORD = 'correct horse battery staple';

interface PasskeyBody {
  id: string;
  name: string;
  created_at: string;
  last_used_at: string | null;
  device_type: string;
  backed_up: boolean;
  transports: string[];
}

interface UserBody {
  id: string;
  mfa_enrolled: boolean;
  passkeys: number;
}

describe('admin API: a person’s passkeys', () => {
  let server: TestServer;
  let api: AdminApi;
  /** admin:users with admin:keys: may manage a person whose role opens the keys area. */
  let keysToo: AdminApi;
  /** Every public key stored; none may appear in a response or an audit event. */
  const publicKeys: string[] = [];

  async function createUser(roles: string[] = []): Promise<UserBody> {
    const created = await keysToo.request<UserBody>('POST', '/users', { json: { username: uniqueName('owner'), password: PASSWORD, roles } });
    assert.equal(created.status, 201, created.text);
    return created.body;
  }

  /** A stored passkey, as registration stores one; its id is base64url like a browser's. */
  async function addPasskey(userId: string, name: string, options: { synced?: boolean } = {}): Promise<string> {
    const credentialId = randomBytes(16).toString('base64url');
    const publicKey = randomBytes(77);
    publicKeys.push(publicKey.toString('base64url'), publicKey.toString('base64'), publicKey.toString('hex'));
    const synced = options.synced === true;
    assert.ok(
      await createPasskeyStore(server.db).insert({ credentialId, userId, publicKey, signCount: 3, transports: ['internal', 'hybrid'], backupEligible: synced, backedUp: synced, name }),
    );
    return credentialId;
  }

  async function modelRowsFor(accountId: string): Promise<string[]> {
    const { rows } = await server.db.query<{ model: string }>('SELECT model FROM oidc_models WHERE account_id = $1 ORDER BY model', [accountId]);
    return rows.map((row) => row.model);
  }

  async function signIn(accountId: string): Promise<void> {
    const store = createOidcModelStore(server.db);
    const grantId = `grant-${randomUUID()}`;
    await store.upsert('Session', `sid-${randomUUID()}`, { accountId, loginTs: Math.floor(Date.now() / 1000) }, 3600);
    await store.upsert('Grant', grantId, { accountId, clientId: 'some-client' }, 3600);
    await store.upsert('RefreshToken', `rt-${randomUUID()}`, { accountId, clientId: 'some-client', grantId }, 3600);
  }

  function assertNoPublicKey(text: string): void {
    assert.doesNotMatch(text, /public_key|sign_count/);
    for (const key of publicKeys) assert.ok(!text.includes(key), 'a public key in the response');
  }

  before(async () => {
    server = await startTestServer();
    api = adminApi(server, await adminToken(server, 'admin:users'));
    keysToo = adminApi(server, await adminToken(server, 'admin:users admin:keys'));
  });
  after(() => server.close());

  test('GET /users/{id}/passkeys lists them oldest first, without public keys; the person counts them', async () => {
    const user = await createUser();
    assert.equal(user.passkeys, 0);
    const empty = await api.request<{ items: PasskeyBody[] }>('GET', `/users/${user.id}/passkeys`);
    assert.equal(empty.status, 200, empty.text);
    assert.deepEqual(empty.body, { items: [] });

    const laptop = await addPasskey(user.id, 'Laptop');
    const phone = await addPasskey(user.id, 'Phone', { synced: true });
    await createPasskeyStore(server.db).recordUse(phone, 4, true);
    const listed = await api.request<{ items: PasskeyBody[] }>('GET', `/users/${user.id}/passkeys`);
    assert.equal(listed.status, 200, listed.text);
    assertNoPublicKey(listed.text);
    assert.deepEqual(
      listed.body.items.map((item) => [item.id, item.name, item.device_type, item.backed_up, item.transports, item.last_used_at === null]),
      [
        [laptop, 'Laptop', 'single_device', false, ['internal', 'hybrid'], true],
        [phone, 'Phone', 'multi_device', true, ['internal', 'hybrid'], false],
      ],
    );
    for (const item of listed.body.items) assert.deepEqual(Object.keys(item).sort(), ['backed_up', 'created_at', 'device_type', 'id', 'last_used_at', 'name', 'transports']);

    const read = await api.request<UserBody>('GET', `/users/${user.id}`);
    assert.equal(read.body.passkeys, 2);
    assert.equal(read.body.mfa_enrolled, true);
    assertNoPublicKey(read.text);
  });

  test('an unknown person is 404 for both routes, and nothing is audited', async () => {
    for (const id of [randomUUID(), 'not-a-uuid']) {
      assertProblem(await api.request('GET', `/users/${id}/passkeys`), 404, 'not-found');
      const removal = await api.request('DELETE', `/users/${id}/passkeys/abc`);
      assertProblem(removal, 404, 'not-found');
      await assertNotAudited(server, removal.requestId);
    }
  });

  test('DELETE: 204; the person’s sessions, grants and refresh tokens end, and only theirs; audited as passkey.removed; then 404', async () => {
    const user = await createUser();
    const bystander = await createUser();
    const kept = await addPasskey(user.id, 'Laptop');
    const removed = await addPasskey(user.id, 'Old phone');
    const theirs = await addPasskey(bystander.id, 'Not yours');
    await signIn(user.id);
    await signIn(bystander.id);

    // Another person's passkey is not this person's: 404, nothing changed.
    const wrongOwner = await api.request('DELETE', `/users/${user.id}/passkeys/${theirs}`);
    assertProblem(wrongOwner, 404, 'not-found');
    await assertNotAudited(server, wrongOwner.requestId);
    assert.deepEqual(await modelRowsFor(user.id), ['Grant', 'RefreshToken', 'Session']);

    const response = await api.request('DELETE', `/users/${user.id}/passkeys/${encodeURIComponent(removed)}`);
    assert.equal(response.status, 204, response.text);
    assert.equal(response.text, '');
    const audit = await assertAudited(server, response.requestId, 'passkey.removed', user.id);
    assert.deepEqual(audit.details, { credential_id: removed, name: 'Old phone', last_factor: false, revoked_artifacts: 3 });
    assertNoPublicKey(JSON.stringify(audit));
    assert.deepEqual(await modelRowsFor(user.id), []);
    assert.deepEqual(await modelRowsFor(bystander.id), ['Grant', 'RefreshToken', 'Session']);

    const listed = await api.request<{ items: PasskeyBody[] }>('GET', `/users/${user.id}/passkeys`);
    assert.deepEqual(listed.body.items.map((item) => item.id), [kept]);
    assert.equal((await api.request<UserBody>('GET', `/users/${user.id}`)).body.passkeys, 1);
    assert.equal((await api.request<{ items: PasskeyBody[] }>('GET', `/users/${bystander.id}/passkeys`)).body.items.length, 1);

    const again = await api.request('DELETE', `/users/${user.id}/passkeys/${removed}`);
    const problem = assertProblem(again, 404, 'not-found');
    assert.match(problem.detail ?? '', /no passkey with that id/);
    await assertNotAudited(server, again.requestId);
  });

  test('removing the last second factor takes the recovery codes too: not enrolled, the next sign-in enrolls again', async () => {
    const user = await createUser();
    const only = await addPasskey(user.id, 'Only one');
    await createSecondFactorStore(server.db).replaceRecoveryCodes(user.id, ['hash-1', 'hash-2']);
    const response = await api.request('DELETE', `/users/${user.id}/passkeys/${only}`);
    assert.equal(response.status, 204, response.text);
    assert.equal((await assertAudited(server, response.requestId, 'passkey.removed', user.id)).details['last_factor'], true);
    assert.equal(await createSecondFactorStore(server.db).remainingRecoveryCodes(user.id), 0);
    const read = await api.request<UserBody>('GET', `/users/${user.id}`);
    assert.deepEqual([read.body.passkeys, read.body.mfa_enrolled], [0, false]);
  });

  test('admin:users alone cannot remove a passkey of a person whose roles open more: 403, kept; with their scopes it goes', async () => {
    const keeper = await createUser(['gatehouse:keys']);
    const passkey = await addPasskey(keeper.id, 'Keeper’s key');
    const refused = await api.request('DELETE', `/users/${keeper.id}/passkeys/${passkey}`);
    assertProblem(refused, 403, 'forbidden');
    assert.match(refused.text, /admin:keys/);
    await assertNotAudited(server, refused.requestId);
    assert.equal((await api.request<UserBody>('GET', `/users/${keeper.id}`)).body.passkeys, 1);
    // Listing is reading: admin:users suffices.
    assert.equal((await api.request('GET', `/users/${keeper.id}/passkeys`)).status, 200);

    const removal = await keysToo.request('DELETE', `/users/${keeper.id}/passkeys/${passkey}`);
    assert.equal(removal.status, 204, removal.text);
  });

  test('a token without admin:users is 403 for both routes', async () => {
    const user = await createUser();
    const passkey = await addPasskey(user.id, 'Laptop');
    const other = adminApi(server, await adminToken(server, 'admin:clients admin:audit'));
    for (const [method, path] of [
      ['GET', `/users/${user.id}/passkeys`],
      ['DELETE', `/users/${user.id}/passkeys/${passkey}`],
    ] as const) {
      const response = await other.request(method, path);
      assertProblem(response, 403, 'forbidden');
      assert.match(response.headers.get('www-authenticate') ?? '', /insufficient_scope/);
      await assertNotAudited(server, response.requestId);
    }
    assert.equal((await api.request<UserBody>('GET', `/users/${user.id}`)).body.passkeys, 1);
  });
});
