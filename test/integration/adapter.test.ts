import { randomUUID } from 'node:crypto';
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type { AdapterFactory, AdapterPayload } from 'oidc-provider';
import { createClientStore } from '../../src/db/clients.js';
import type { Database } from '../../src/db/database.js';
import { migrate } from '../../src/db/migrator.js';
import { ClientWriteRefusedError, createAdapterFactory, createClientMetadataSource } from '../../src/oidc/adapter.js';
import { createLookupCache } from '../../src/oidc/lookup-cache.js';
import { backends, createTestDatabase, type TestDatabase } from '../support/database.js';

/**
 * oidc-provider's storage contract, checked against the real database: every model but Client
 * lives in oidc_models keyed by (model, id); Client is read from the clients table and never written.
 */

const HOUR = 3600;

interface ModelRow extends Record<string, unknown> {
  payload_type: string;
  payload: Record<string, unknown>;
  grant_id: string | null;
  uid: string | null;
  user_code: string | null;
  expires_at: Date | null;
  consumed_at: Date | null;
}

/** A fresh id per call, so tests never see each other's rows in the shared database. */
function newId(prefix: string): string {
  return `${prefix}-${randomUUID()}`;
}

/** Payloads shaped as oidc-provider 9 writes them for each model. */
const payloads = {
  Session(uid: string): AdapterPayload {
    const jti = newId('sess');
    return {
      jti,
      kind: 'Session',
      uid,
      accountId: 'account-1',
      loginTs: 1_700_000_000,
      iat: 1_700_000_000,
      exp: 1_700_086_400,
      authorizations: { 'client-1': { sid: newId('sid'), grantId: newId('grant'), persistsLogout: false } },
    };
  },
  AccessToken(grantId: string): AdapterPayload {
    return {
      jti: newId('at'),
      kind: 'AccessToken',
      iat: 1_700_000_000,
      exp: 1_700_000_900,
      accountId: 'account-1',
      clientId: 'client-1',
      grantId,
      gty: 'authorization_code',
      scope: 'openid api:read',
      aud: 'https://api.example.test',
      sessionUid: 'session-uid',
      expiresWithSession: true,
    };
  },
  AuthorizationCode(grantId: string): AdapterPayload {
    return {
      jti: newId('code'),
      kind: 'AuthorizationCode',
      iat: 1_700_000_000,
      exp: 1_700_000_060,
      accountId: 'account-1',
      clientId: 'client-1',
      grantId,
      authTime: 1_699_999_990,
      redirectUri: 'https://app.example.test/callback',
      scope: 'openid offline_access',
      codeChallenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM',
      codeChallengeMethod: 'S256',
      nonce: 'n-0S6_WzA2Mj',
      resource: 'https://api.example.test',
    };
  },
  RefreshToken(grantId: string): AdapterPayload {
    return {
      jti: newId('rt'),
      kind: 'RefreshToken',
      iat: 1_700_000_000,
      exp: 1_701_209_600,
      accountId: 'account-1',
      clientId: 'client-1',
      grantId,
      gty: 'authorization_code',
      iiat: 1_700_000_000,
      rotations: 0,
      scope: 'openid offline_access',
      resource: 'https://api.example.test',
    };
  },
  Grant(): AdapterPayload {
    // oidc-provider's Grant is identified by its jti and carries no grantId of its own.
    return {
      jti: newId('grant'),
      kind: 'Grant',
      iat: 1_700_000_000,
      exp: 1_701_209_600,
      accountId: 'account-1',
      clientId: 'client-1',
      openid: { scope: 'openid offline_access', claims: ['sub'] },
      resources: { 'https://api.example.test': 'api:read' },
    };
  },
  Interaction(): AdapterPayload {
    return {
      jti: newId('int'),
      kind: 'Interaction',
      iat: 1_700_000_000,
      exp: 1_700_003_600,
      returnTo: 'http://127.0.0.1/auth/abc',
      prompt: { name: 'login', reasons: ['no_session'], details: {} },
      params: { client_id: 'client-1', redirect_uri: 'https://app.example.test/callback', scope: 'openid', response_type: 'code' },
      cid: newId('cid'),
    };
  },
  ClientCredentials(): AdapterPayload {
    return {
      jti: newId('cc'),
      kind: 'ClientCredentials',
      iat: 1_700_000_000,
      exp: 1_700_000_900,
      clientId: 'service-1',
      scope: 'api:read',
      aud: 'https://api.example.test',
    };
  },
  DeviceCode(userCode: string): AdapterPayload {
    return {
      jti: newId('dc'),
      kind: 'DeviceCode',
      iat: 1_700_000_000,
      exp: 1_700_000_600,
      clientId: 'tv-1',
      userCode,
      params: { client_id: 'tv-1', scope: 'openid' },
      deviceInfo: { ip: '127.0.0.1', ua: 'test' },
    };
  },
};

for (const backend of backends) {
  describe(`oidc-provider adapter on ${backend}`, () => {
    let database: TestDatabase;
    let db: Database;
    // The test's own connection for raw SQL: a separate pool on PostgreSQL. PGlite is a single
    // connection that cannot be opened twice, so there it is the same instance.
    let raw: Database;
    let adapterFor: AdapterFactory;

    before(async () => {
      database = await createTestDatabase(backend);
      db = await database.connect();
      await migrate(db);
      raw = backend === 'postgres' ? await database.connect() : db;
      // No caching here (never live): these tests are about what is stored.
      adapterFor = createAdapterFactory(db, createClientMetadataSource(db, createLookupCache({ ttlMs: 0, maxEntries: 0, isLive: () => false }), 'http://127.0.0.1:9'));
    });

    after(async () => {
      if (raw !== undefined && raw !== db) await raw.close();
      await db?.close();
      await database?.drop();
    });

    async function rowOf(model: string, id: string): Promise<ModelRow | undefined> {
      const { rows } = await raw.query<ModelRow>(
        `SELECT pg_typeof(payload)::text AS payload_type, payload, grant_id, uid, user_code, expires_at, consumed_at
         FROM oidc_models WHERE model = $1 AND id = $2`,
        [model, id],
      );
      return rows[0];
    }

    async function expireNow(model: string, id: string): Promise<void> {
      const { rowCount } = await raw.query(`UPDATE oidc_models SET expires_at = now() - interval '1 second' WHERE model = $1 AND id = $2`, [model, id]);
      assert.equal(rowCount, 1);
    }

    describe('upsert then find returns the payload as written', () => {
      const cases: ReadonlyArray<[string, () => AdapterPayload]> = [
        ['Session', () => payloads.Session(newId('uid'))],
        ['AccessToken', () => payloads.AccessToken(newId('grant'))],
        ['AuthorizationCode', () => payloads.AuthorizationCode(newId('grant'))],
        ['RefreshToken', () => payloads.RefreshToken(newId('grant'))],
        ['Grant', () => payloads.Grant()],
        ['Interaction', () => payloads.Interaction()],
        ['ClientCredentials', () => payloads.ClientCredentials()],
        ['DeviceCode', () => payloads.DeviceCode(newId('WDJB-MJHT'))],
      ];
      for (const [model, make] of cases) {
        test(model, async () => {
          const adapter = adapterFor(model);
          const payload = make();
          const id = payload.jti!;
          await adapter.upsert(id, payload, HOUR);
          assert.deepEqual(await adapter.find(id), payload);
        });
      }
    });

    test('rows are plain PostgreSQL: jsonb payload, lookup columns filled, expiry from expiresIn', async () => {
      const grantId = newId('grant');
      const token = payloads.RefreshToken(grantId);
      await adapterFor('RefreshToken').upsert(token.jti!, token, HOUR);
      const tokenRow = await rowOf('RefreshToken', token.jti!);
      assert.ok(tokenRow);
      assert.equal(tokenRow.payload_type, 'jsonb');
      assert.deepEqual(tokenRow.payload, token);
      assert.equal(tokenRow.grant_id, grantId);
      assert.equal(tokenRow.uid, null);
      assert.equal(tokenRow.consumed_at, null);
      assert.ok(tokenRow.expires_at instanceof Date);

      // Compared inside the database so the test does not depend on the two clocks agreeing.
      const { rows } = await raw.query<{ ok: boolean }>(
        `SELECT expires_at BETWEEN now() + interval '3500 seconds' AND now() + interval '3600 seconds' AS ok
         FROM oidc_models WHERE model = 'RefreshToken' AND id = $1`,
        [token.jti],
      );
      assert.equal(rows[0]?.ok, true);

      const uid = newId('uid');
      const session = payloads.Session(uid);
      await adapterFor('Session').upsert(session.jti!, session, HOUR);
      const sessionRow = await rowOf('Session', session.jti!);
      assert.ok(sessionRow);
      assert.equal(sessionRow.payload_type, 'jsonb');
      assert.equal(sessionRow.uid, uid);
      assert.equal(sessionRow.grant_id, null);

      const userCode = newId('BCDF-GHJK');
      const device = payloads.DeviceCode(userCode);
      await adapterFor('DeviceCode').upsert(device.jti!, device, 600);
      assert.equal((await rowOf('DeviceCode', device.jti!))?.user_code, userCode);

      // jsonb is queryable, not an opaque string.
      const { rows: byPath } = await raw.query<{ client_id: string }>(
        `SELECT payload->>'clientId' AS client_id FROM oidc_models WHERE model = 'RefreshToken' AND payload->>'grantId' = $1`,
        [grantId],
      );
      assert.deepEqual(byPath, [{ client_id: 'client-1' }]);
    });

    test('an upsert without expiresIn never expires', async () => {
      const grant = payloads.Grant();
      await adapterFor('Grant').upsert(grant.jti!, grant);
      assert.equal((await rowOf('Grant', grant.jti!))?.expires_at, null);
      assert.deepEqual(await adapterFor('Grant').find(grant.jti!), grant);
    });

    test('models are keyed by (model, id): the same id in another model is another row', async () => {
      const id = newId('shared');
      const access = { ...payloads.AccessToken(newId('grant')), jti: id };
      const refresh = { ...payloads.RefreshToken(newId('grant')), jti: id };
      await adapterFor('AccessToken').upsert(id, access, HOUR);
      assert.equal(await adapterFor('RefreshToken').find(id), undefined);
      await adapterFor('RefreshToken').upsert(id, refresh, HOUR);
      assert.deepEqual(await adapterFor('AccessToken').find(id), access);
      assert.deepEqual(await adapterFor('RefreshToken').find(id), refresh);

      await adapterFor('AccessToken').destroy(id);
      assert.equal(await adapterFor('AccessToken').find(id), undefined);
      assert.deepEqual(await adapterFor('RefreshToken').find(id), refresh);
    });

    test('find of an unknown id is undefined', async () => {
      assert.equal(await adapterFor('AccessToken').find(newId('missing')), undefined);
      assert.equal(await adapterFor('Session').findByUid(newId('missing')), undefined);
      assert.equal(await adapterFor('DeviceCode').findByUserCode(newId('missing')), undefined);
    });

    test('findByUid finds a Session by its uid, only within that model', async () => {
      const uid = newId('uid');
      const session = payloads.Session(uid);
      await adapterFor('Session').upsert(session.jti!, session, HOUR);
      assert.deepEqual(await adapterFor('Session').findByUid(uid), session);
      assert.equal(await adapterFor('Interaction').findByUid(uid), undefined);
    });

    test('findByUserCode finds a DeviceCode by its user code, only within that model', async () => {
      const userCode = newId('WDJB-MJHT');
      const device = payloads.DeviceCode(userCode);
      await adapterFor('DeviceCode').upsert(device.jti!, device, 600);
      assert.deepEqual(await adapterFor('DeviceCode').findByUserCode(userCode), device);
      assert.equal(await adapterFor('BackchannelAuthenticationRequest').findByUserCode(userCode), undefined);
    });

    test('consume marks the model consumed on later finds, once', async () => {
      const adapter = adapterFor('AuthorizationCode');
      const code = payloads.AuthorizationCode(newId('grant'));
      const id = code.jti!;
      await adapter.upsert(id, code, 60);
      assert.equal((await adapter.find(id))?.consumed, undefined);

      await adapter.consume(id);
      assert.deepEqual(await adapter.find(id), { ...code, consumed: true });
      const first = (await rowOf('AuthorizationCode', id))?.consumed_at;
      assert.ok(first instanceof Date);

      // A second consume (a replayed code) changes nothing: the first use stays on record.
      await adapter.consume(id);
      assert.deepEqual(await adapter.find(id), { ...code, consumed: true });
      assert.deepEqual((await rowOf('AuthorizationCode', id))?.consumed_at, first);

      // The payload itself is untouched; consumption lives in its own column.
      assert.deepEqual((await rowOf('AuthorizationCode', id))?.payload, code);
    });

    test('consumed shows on findByUid and findByUserCode too', async () => {
      const uid = newId('uid');
      const session = payloads.Session(uid);
      await adapterFor('Session').upsert(session.jti!, session, HOUR);
      await adapterFor('Session').consume(session.jti!);
      assert.equal((await adapterFor('Session').findByUid(uid))?.consumed, true);

      const userCode = newId('WDJB-MJHT');
      const device = payloads.DeviceCode(userCode);
      await adapterFor('DeviceCode').upsert(device.jti!, device, 600);
      await adapterFor('DeviceCode').consume(device.jti!);
      assert.equal((await adapterFor('DeviceCode').findByUserCode(userCode))?.consumed, true);
    });

    test('consume and destroy of an unknown id do nothing', async () => {
      // A known row of the same model, consumed state and all, must come through untouched.
      const kept = payloads.RefreshToken(newId('grant'));
      await adapterFor('RefreshToken').upsert(kept.jti!, kept, HOUR);
      const snapshot = () =>
        raw.query<{ model: string; id: string; payload: unknown; consumed_at: Date | null; expires_at: Date | null }>(
          'SELECT model, id, payload, consumed_at, expires_at FROM oidc_models ORDER BY model, id',
        );
      const before = (await snapshot()).rows;
      assert.ok(before.some((row) => row.id === kept.jti));

      const missing = newId('missing');
      const adapter = adapterFor('RefreshToken');
      // They resolve (no error for the provider to turn into server_error) ...
      assert.equal(await adapter.consume(missing), undefined);
      assert.equal(await adapter.destroy(missing), undefined);
      // ... create no row for the unknown id (consume is not an upsert) ...
      assert.equal(await rowOf('RefreshToken', missing), undefined);
      assert.equal(await adapter.find(missing), undefined);
      // ... and change no other row.
      assert.deepEqual((await snapshot()).rows, before);
      assert.deepEqual(await adapter.find(kept.jti!), kept);
    });

    test('destroy removes the row', async () => {
      const adapter = adapterFor('Interaction');
      const interaction = payloads.Interaction();
      const id = interaction.jti!;
      await adapter.upsert(id, interaction, HOUR);
      await adapter.destroy(id);
      assert.equal(await adapter.find(id), undefined);
      assert.equal(await rowOf('Interaction', id), undefined);
    });

    test("revokeByGrantId removes every token of that grant and leaves other grants' rows", async () => {
      const grant = payloads.Grant();
      const grantId = grant.jti!;
      const other = payloads.Grant();
      const otherId = other.jti!;
      await adapterFor('Grant').upsert(grantId, grant, HOUR);
      await adapterFor('Grant').upsert(otherId, other, HOUR);

      const ofGrant = [
        ['AccessToken', payloads.AccessToken(grantId)],
        ['AuthorizationCode', payloads.AuthorizationCode(grantId)],
        ['RefreshToken', payloads.RefreshToken(grantId)],
        ['RefreshToken', payloads.RefreshToken(grantId)],
      ] as const;
      const ofOther = [
        ['AccessToken', payloads.AccessToken(otherId)],
        ['AuthorizationCode', payloads.AuthorizationCode(otherId)],
        ['RefreshToken', payloads.RefreshToken(otherId)],
      ] as const;
      const unrelated = payloads.ClientCredentials();
      for (const [model, payload] of [...ofGrant, ...ofOther]) await adapterFor(model).upsert(payload.jti!, payload, HOUR);
      await adapterFor('ClientCredentials').upsert(unrelated.jti!, unrelated, HOUR);
      // One consumed token must go too: a replayed code revokes everything issued from it.
      await adapterFor('AuthorizationCode').consume(ofGrant[1][1].jti!);

      // An interaction in flight for the grant (a sign-in that switches account ends the session).
      const interaction = { ...payloads.Interaction(), grantId };
      await adapterFor('Interaction').upsert(interaction.jti!, interaction, HOUR);

      // oidc-provider calls this on each token model (lib/helpers/revoke.js); each clears its own rows.
      for (const model of ['AccessToken', 'AuthorizationCode', 'RefreshToken']) await adapterFor(model).revokeByGrantId(grantId);

      for (const [model, payload] of ofGrant) {
        assert.equal(await adapterFor(model).find(payload.jti!), undefined, `${model} of the revoked grant is gone`);
      }
      const { rows } = await raw.query<{ model: string }>('SELECT model FROM oidc_models WHERE grant_id = $1', [grantId]);
      assert.deepEqual(rows.map((row) => row.model), ['Interaction'], 'only the interaction in flight is left');
      assert.deepEqual(await adapterFor('Interaction').find(interaction.jti!), interaction);

      for (const [model, payload] of ofOther) {
        assert.deepEqual(await adapterFor(model).find(payload.jti!), payload, `${model} of another grant stays`);
      }
      assert.deepEqual(await adapterFor('ClientCredentials').find(unrelated.jti!), unrelated);
      assert.deepEqual(await adapterFor('Grant').find(otherId), other);

      // The Grant row itself is not among its tokens: oidc-provider destroys it separately, and
      // only when revokeGrantPolicy says so (revoking an access token keeps the grant).
      assert.deepEqual(await adapterFor('Grant').find(grantId), grant);
      await adapterFor('Grant').destroy(grantId);
      assert.equal(await adapterFor('Grant').find(grantId), undefined);
    });

    test('a row whose expires_at has passed is not found by any lookup, except a device code', async () => {
      const uid = newId('uid');
      const session = payloads.Session(uid);
      await adapterFor('Session').upsert(session.jti!, session, 1);
      assert.deepEqual(await adapterFor('Session').find(session.jti!), session);
      await expireNow('Session', session.jti!);
      assert.equal(await adapterFor('Session').find(session.jti!), undefined);
      assert.equal(await adapterFor('Session').findByUid(uid), undefined);

      const userCode = newId('WDJB-MJHT');
      const device = payloads.DeviceCode(userCode);
      await adapterFor('DeviceCode').upsert(device.jti!, device, 1);
      await expireNow('DeviceCode', device.jti!);
      // RFC 8628 §3.5: the provider checks a device code's expiry itself, to answer expired_token
      // (and to say so on the code page), so the adapter returns it until pruning removes it.
      assert.deepEqual(await adapterFor('DeviceCode').find(device.jti!), device);
      assert.deepEqual(await adapterFor('DeviceCode').findByUserCode(userCode), device);
      await raw.query("DELETE FROM oidc_models WHERE model = 'DeviceCode' AND id = $1", [device.jti!]);
      assert.equal(await adapterFor('DeviceCode').findByUserCode(userCode), undefined);
    });

    test('an upsert with a zero or negative expiresIn is already expired', async () => {
      for (const expiresIn of [0, -1]) {
        const token = payloads.AccessToken(newId('grant'));
        await adapterFor('AccessToken').upsert(token.jti!, token, expiresIn);
        assert.equal(await adapterFor('AccessToken').find(token.jti!), undefined, `expiresIn ${expiresIn}`);
      }
    });

    test('upsert overwrites the payload, the lookup columns and the expiry', async () => {
      const adapter = adapterFor('Session');
      const oldUid = newId('uid');
      const original = payloads.Session(oldUid);
      const id = original.jti!;
      await adapter.upsert(id, original, -1);
      assert.equal(await adapter.find(id), undefined);

      const newUid = newId('uid');
      const replaced = { ...payloads.Session(newUid), jti: id, accountId: 'account-2' };
      await adapter.upsert(id, replaced, HOUR);
      assert.deepEqual(await adapter.find(id), replaced);
      assert.equal(await adapter.findByUid(oldUid), undefined);
      assert.deepEqual(await adapter.findByUid(newUid), replaced);
      assert.equal((await rowOf('Session', id))?.uid, newUid);

      // A token moved to another grant is revoked with the new grant, not the old one.
      const oldGrant = newId('grant');
      const newGrant = newId('grant');
      const token = payloads.RefreshToken(oldGrant);
      await adapterFor('RefreshToken').upsert(token.jti!, token, HOUR);
      const moved = { ...token, grantId: newGrant, rotations: 1 };
      await adapterFor('RefreshToken').upsert(token.jti!, moved, HOUR);
      assert.equal((await rowOf('RefreshToken', token.jti!))?.grant_id, newGrant);
      await adapterFor('RefreshToken').revokeByGrantId(oldGrant);
      assert.deepEqual(await adapterFor('RefreshToken').find(token.jti!), moved);
      await adapterFor('RefreshToken').revokeByGrantId(newGrant);
      assert.equal(await adapterFor('RefreshToken').find(token.jti!), undefined);

      // A lookup key dropped from the payload is cleared from its column.
      const userCode = newId('WDJB-MJHT');
      const device = payloads.DeviceCode(userCode);
      await adapterFor('DeviceCode').upsert(device.jti!, device, 600);
      const withoutCode: AdapterPayload = { ...device };
      delete withoutCode.userCode;
      await adapterFor('DeviceCode').upsert(device.jti!, withoutCode, 600);
      assert.equal((await rowOf('DeviceCode', device.jti!))?.user_code, null);
      assert.equal(await adapterFor('DeviceCode').findByUserCode(userCode), undefined);
    });

    describe('Client', () => {
      const secretHash = 'hmac-sha256:4a1f0c2b9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a';

      test('find reads the clients row as client metadata', async () => {
        const clientId = newId('client');
        const row = await createClientStore(db).insert({
          clientId,
          clientName: 'Orders app',
          clientSecretHash: secretHash,
          metadata: {
            redirect_uris: ['https://orders.example.test/callback'],
            grant_types: ['authorization_code', 'refresh_token'],
            response_types: ['code'],
            token_endpoint_auth_method: 'client_secret_basic',
            scope: 'openid offline_access orders:read orders:write',
          },
          allowedResources: ['https://orders-api.example.test'],
          requireMfa: true,
        });

        const metadata = await adapterFor('Client').find(clientId);
        assert.ok(metadata);
        assert.equal(metadata.client_id, clientId);
        assert.equal(metadata.client_name, 'Orders app');
        // The stored hash, never a plaintext secret: compareClientSecret checks against it.
        assert.equal(metadata.client_secret, secretHash);
        assert.deepEqual(metadata.allowed_resources, ['https://orders-api.example.test']);
        assert.equal(metadata.require_mfa, true);
        assert.equal(metadata.scope, 'openid offline_access');
        assert.equal(metadata['registered_scope'], 'openid offline_access orders:read orders:write');
        assert.deepEqual(metadata.redirect_uris, ['https://orders.example.test/callback']);
        assert.deepEqual(metadata.grant_types, ['authorization_code', 'refresh_token']);
        assert.equal(metadata.token_endpoint_auth_method, 'client_secret_basic');
        assert.equal(metadata.client_id_issued_at, Math.floor(row.created_at.getTime() / 1000));
      });

      test('a public client with only resource scopes carries no secret and no OIDC scope', async () => {
        const clientId = newId('client');
        await createClientStore(db).insert({
          clientId,
          clientName: 'Service',
          clientSecretHash: null,
          metadata: { redirect_uris: [], grant_types: ['client_credentials'], response_types: [], scope: 'orders:read' },
          allowedResources: [],
          requireMfa: false,
        });
        const metadata = await adapterFor('Client').find(clientId);
        assert.ok(metadata);
        assert.equal('client_secret' in metadata, false);
        assert.equal('scope' in metadata, false);
        assert.equal(metadata['registered_scope'], 'orders:read');
        assert.deepEqual(metadata.allowed_resources, []);
        assert.equal(metadata.require_mfa, false);
      });

      test('an unknown client id is undefined', async () => {
        assert.equal(await adapterFor('Client').find(newId('client')), undefined);
      });

      test('Client is never stored in oidc_models', async () => {
        const { rows } = await raw.query<{ n: number }>(`SELECT count(*)::int AS n FROM oidc_models WHERE model = 'Client'`);
        assert.equal(rows[0]?.n, 0);
      });

      test('upsert, destroy and consume are refused and leave the clients row alone', async () => {
        const clientId = newId('client');
        await createClientStore(db).insert({
          clientId,
          clientName: 'Kept',
          clientSecretHash: secretHash,
          metadata: { redirect_uris: ['https://kept.example.test/cb'], scope: 'openid' },
          allowedResources: [],
          requireMfa: false,
        });
        const adapter = adapterFor('Client');
        await assert.rejects(adapter.upsert(clientId, { client_id: clientId, client_name: 'Hijacked' }, HOUR), ClientWriteRefusedError);
        await assert.rejects(adapter.destroy(clientId), ClientWriteRefusedError);
        await assert.rejects(adapter.consume(clientId), ClientWriteRefusedError);
        await assert.rejects(adapter.upsert(newId('client'), { client_id: 'new' }, HOUR), { code: 'client_write_refused' });

        const stored = await createClientStore(raw).find(clientId);
        assert.equal(stored?.client_name, 'Kept');
        assert.equal((await adapter.find(clientId))?.client_name, 'Kept');
        const { rows } = await raw.query<{ n: number }>(`SELECT count(*)::int AS n FROM oidc_models WHERE model = 'Client'`);
        assert.equal(rows[0]?.n, 0);
      });
    });
  });
}
