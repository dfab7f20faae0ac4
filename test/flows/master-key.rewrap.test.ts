import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { loadConfig } from '../../src/config.js';
import { createEnvelope, masterKeyId, sealedKeyId } from '../../src/crypto/envelope.js';
import type { Database } from '../../src/db/database.js';
import { SEALED_COLUMNS } from '../../src/db/sealed-values.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';
import { spawnGatehouse } from '../support/process.js';

const newKey = () => randomBytes(32).toString('base64url');
const TOTP_SECRET = 'JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP';
const UPSTREAM_SECRET = 'upstream-client-secret-of-corp-sso';

describe('MASTER_KEY_PREVIOUS: values sealed with an earlier master key still open', () => {
  test('a value sealed under key A opens with MASTER_KEY=B, MASTER_KEY_PREVIOUS=A (among others), not with B alone', () => {
    const [a, b, c] = [newKey(), newKey(), newKey()];
    const sealed = createEnvelope(Buffer.from(a, 'base64url')).seal('secret', 'user_totp:x');
    const config = loadConfig({ MASTER_KEY: b, MASTER_KEY_PREVIOUS: ` ${c} , ${a}` });
    const envelope = createEnvelope(config.masterKey!, config.masterKeyPrevious);
    assert.equal(envelope.open(sealed, 'user_totp:x').toString(), 'secret');
    // New values are sealed with MASTER_KEY only.
    assert.equal(sealedKeyId(envelope.seal('x', 'p')), masterKeyId(Buffer.from(b, 'base64url')));
    assert.throws(() => createEnvelope(loadConfig({ MASTER_KEY: b }).masterKey!).open(sealed, 'user_totp:x'), /not configured/);
  });

  test('each previous key is validated like MASTER_KEY, and never echoed', () => {
    const a = newKey();
    for (const bad of [`${a},short`, 'short', `${a},,${a}`]) {
      assert.throws(
        () => loadConfig({ MASTER_KEY: newKey(), MASTER_KEY_PREVIOUS: bad }),
        (error: Error) => /^MASTER_KEY_PREVIOUS must be a comma-separated list of keys, each must be 32 bytes/.test(error.message) && !error.message.includes(a),
      );
    }
  });
});

describe('gatehouse master-key rewrap (real CLI processes)', () => {
  let database: TestDatabase;
  const keyA = newKey();
  const keyB = newKey();
  const base = () => ({ DATA_DIR: database.dataDir, LOG_LEVEL: 'warn', ...(database.url === undefined ? {} : { DATABASE_URL: database.url }) });

  async function cli(env: Record<string, string>, ...args: string[]) {
    const run = spawnGatehouse({ ...base(), ...env }, 'cli', args);
    const code = await run.exited;
    return { code, ...run.output };
  }

  // Opened only between CLI runs: the embedded database admits one process at a time.
  async function withDb<T>(fn: (db: Database) => Promise<T>): Promise<T> {
    const db = await database.connect();
    try {
      return await fn(db);
    } finally {
      await db.close();
    }
  }

  async function sealedKeyIds(): Promise<string[]> {
    return withDb(async (db) => {
      const ids: string[] = [];
      for (const [table, { sealed }] of Object.entries(SEALED_COLUMNS)) {
        // A NULL holds nothing sealed (an identity provider without a client secret).
        const { rows } = await db.query<{ v: string }>(`SELECT ${sealed} AS v FROM ${table} WHERE ${sealed} IS NOT NULL`);
        ids.push(...rows.map((row) => sealedKeyId(row.v) ?? 'not an envelope'));
      }
      return ids;
    });
  }

  async function createUser(username: string): Promise<string> {
    const created = await cli({ MASTER_KEY: keyA, GATEHOUSE_PASSWORD: 'correct horse battery staple' }, 'users', 'create', '--username', username, '--json');
    assert.equal(created.code, 0, created.stderr);
    return (JSON.parse(created.stdout) as { id: string }).id;
  }

  async function sealTotp(userId: string, key: string): Promise<void> {
    const sealed = createEnvelope(Buffer.from(key, 'base64url')).seal(TOTP_SECRET, `user_totp:${userId}`);
    await withDb((db) => db.query('INSERT INTO user_totp (user_id, secret_sealed) VALUES ($1, $2)', [userId, sealed]).then(() => undefined));
  }

  async function createIdentityProvider(): Promise<string> {
    const created = await cli(
      { MASTER_KEY: keyA, GATEHOUSE_CLIENT_SECRET: UPSTREAM_SECRET },
      'identity-providers',
      'create',
      '--name',
      'Corp SSO',
      '--issuer',
      'https://login.corp.test',
      '--client-id',
      'gatehouse',
      '--json',
    );
    assert.equal(created.code, 0, created.stderr);
    return (JSON.parse(created.stdout) as { id: string }).id;
  }

  let alice: string;
  let provider: string;
  let total: number;

  before(async () => {
    database = await createTestDatabase();
    // Everything is sealed with key A: signing keys, server secrets, alice's TOTP secret and an
    // upstream identity provider's client secret.
    alice = await createUser('alice');
    await sealTotp(alice, keyA);
    provider = await createIdentityProvider();
    const ids = await sealedKeyIds();
    total = ids.length;
    assert.equal(total, 14, '8 signing keys, 4 server secrets (cookies, client-secret HMAC, token escrow, DPoP nonces), 1 TOTP secret, 1 identity provider secret');
    assert.deepEqual(new Set(ids), new Set([masterKeyId(Buffer.from(keyA, 'base64url'))]));
  });
  after(() => database?.drop());

  test('every column that holds an envelope is one rewrap re-seals', async () => {
    const { rows } = await withDb((db) =>
      db.query<{ table_name: string; column_name: string }>(
        "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = current_schema() AND column_name LIKE '%sealed%' ORDER BY 1, 2",
      ),
    );
    const known = Object.entries(SEALED_COLUMNS).map(([table, { sealed }]) => `${table}.${sealed}`);
    assert.deepEqual(rows.map((row) => `${row.table_name}.${row.column_name}`).sort(), known.sort());
  });

  test('with MASTER_KEY=B alone the old values do not open, and the CLI says which variable to set', async () => {
    const run = await cli({ MASTER_KEY: keyB }, 'keys', 'list');
    assert.equal(run.code, 1);
    assert.match(run.stderr, /^gatehouse: sealed with master key [\w-]+, which is not configured .*MASTER_KEY_PREVIOUS/m);
    assert.doesNotMatch(run.stderr, /\n\s+at /);
  });

  test('a value no configured key opens makes rewrap fail and change nothing (one transaction)', async () => {
    const bob = await createUser('bob');
    await sealTotp(bob, newKey());
    const before = await sealedKeyIds();
    const run = await cli({ MASTER_KEY: keyB, MASTER_KEY_PREVIOUS: keyA }, 'master-key', 'rewrap');
    assert.equal(run.code, 1, run.stdout);
    assert.match(run.stderr, /MASTER_KEY_PREVIOUS/);
    assert.deepEqual(await sealedKeyIds(), before);
    await withDb((db) => db.query('DELETE FROM users WHERE id = $1', [bob]));
  });

  test('MASTER_KEY=B with MASTER_KEY_PREVIOUS=A serves; rewrap re-seals every value with B and prints how many; then B alone opens everything', async () => {
    const serving = await cli({ MASTER_KEY: keyB, MASTER_KEY_PREVIOUS: keyA }, 'keys', 'list');
    assert.equal(serving.code, 0, serving.stderr);

    const rewrap = await cli({ MASTER_KEY: keyB, MASTER_KEY_PREVIOUS: keyA }, 'master-key', 'rewrap');
    assert.equal(rewrap.code, 0, rewrap.stderr);
    const idB = masterKeyId(Buffer.from(keyB, 'base64url'));
    assert.match(rewrap.stdout, new RegExp(`^re-sealed ${total} values with master key ${idB} \\(signing_keys 8, server_secrets 4, user_totp 1, identity_providers 1\\); 0 were sealed with it already\\n$`));
    assert.deepEqual(new Set(await sealedKeyIds()), new Set([idB]));

    // The previous key can go: B alone opens the signing keys and server secrets (the CLI builds the app) ...
    const alone = await cli({ MASTER_KEY: keyB }, 'keys', 'list', '--json');
    assert.equal(alone.code, 0, alone.stderr);
    // ... and the TOTP secret, bound to its row as before.
    const sealed = await withDb(async (db) => (await db.query<{ secret_sealed: string }>('SELECT secret_sealed FROM user_totp WHERE user_id = $1', [alice])).rows[0]!.secret_sealed);
    assert.equal(createEnvelope(Buffer.from(keyB, 'base64url')).open(sealed, `user_totp:${alice}`).toString(), TOTP_SECRET);
    const upstream = await withDb(
      async (db) => (await db.query<{ s: string }>('SELECT client_secret_sealed AS s FROM identity_providers WHERE id = $1', [provider])).rows[0]!.s,
    );
    assert.equal(createEnvelope(Buffer.from(keyB, 'base64url')).open(upstream, `identity_providers:${provider}`).toString(), UPSTREAM_SECRET);

    // Again: nothing left to re-seal.
    const again = await cli({ MASTER_KEY: keyB }, 'master-key', 'rewrap', '--json');
    assert.equal(again.code, 0, again.stderr);
    assert.deepEqual(JSON.parse(again.stdout), { key_id: idB, resealed: 0, unchanged: total, by_table: { signing_keys: 0, server_secrets: 0, user_totp: 0, identity_providers: 0 } });

    // Audited with the counts, never a value.
    const events = await withDb(async (db) => (await db.query<{ actor: string; target: string; details: Record<string, unknown> }>("SELECT actor, target, details FROM audit_events WHERE type = 'master_key.rewrapped' ORDER BY id")).rows);
    assert.deepEqual(
      events.map((event) => [event.actor, event.target, event.details['resealed']]),
      [
        ['cli', idB, total],
        ['cli', idB, 0],
      ],
    );
  });
});
