import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, test, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import type { Database, Queryable } from '../../src/db/database.js';
import { MIGRATIONS_DIR, MigrationError, loadMigrations, migrate, migrationsCurrent, type Migration } from '../../src/db/migrator.js';
import { backends, createTestDatabase, type TestDatabase } from '../support/database.js';
import { spawnGatehouse, type GatehouseProcess } from '../support/process.js';
import { waitFor } from '../support/server.js';

/**
 * The migrator against a real database: the ledger, refusing edited or unknown migrations,
 * all-or-nothing migrations, and concurrent start-ups queueing on the advisory lock.
 */

interface LedgerRow extends Record<string, unknown> {
  id: number;
  name: string;
  checksum: string;
}

async function ledger(db: Queryable): Promise<LedgerRow[]> {
  const { rows } = await db.query<LedgerRow>('SELECT id, name, checksum FROM schema_migrations ORDER BY id');
  return rows;
}

async function tableExists(db: Queryable, name: string): Promise<boolean> {
  const { rows } = await db.query<{ exists: boolean }>('SELECT to_regclass($1) IS NOT NULL AS exists', [name]);
  return rows[0]?.exists === true;
}

function expectedLedger(migrations: readonly Migration[]): LedgerRow[] {
  return migrations.map((m) => ({ id: m.id, name: m.name, checksum: m.checksum }));
}

/** Temp copies of migrations/ that a test may add to or edit. */
const tempDirs: string[] = [];

async function copyOfMigrations(extraFiles: Record<string, string> = {}): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), 'gatehouse-migrations-'));
  tempDirs.push(dir);
  await cp(MIGRATIONS_DIR, dir, { recursive: true });
  for (const [name, sql] of Object.entries(extraFiles)) await writeFile(path.join(dir, name), sql);
  return dir;
}

after(async () => {
  await Promise.all(tempDirs.map((dir) => rm(dir, { recursive: true, force: true })));
});

let shipped: Migration[];
let latest: number;
before(async () => {
  shipped = await loadMigrations();
  assert.ok(shipped.length > 0);
  latest = shipped.at(-1)!.id;
});

/** A file name numbered after the last shipped migration, as the next release would add. */
function nextFile(name: string): string {
  return `${String(latest + 1).padStart(4, '0')}_${name}.sql`;
}

for (const backend of backends) {
  describe(`migrations on ${backend}`, () => {
    let database: TestDatabase;
    let db: Database;

    before(async () => {
      database = await createTestDatabase(backend);
      db = await database.connect();
    });

    after(async () => {
      await db?.close();
      await database?.drop();
    });

    // One database per backend (PGlite is slow to open), emptied before each test so that
    // every test starts from a database nothing was ever applied to.
    beforeEach(async () => {
      await db.exec('DROP SCHEMA public CASCADE; CREATE SCHEMA public;');
    });

    test('migrate applies everything once; a second run applies nothing', async () => {
      const first = await migrate(db, shipped);
      assert.deepEqual(first.applied, shipped.map((m) => m.name));
      assert.equal(first.current, latest);

      const second = await migrate(db, shipped);
      assert.deepEqual(second.applied, []);
      assert.equal(second.current, latest);

      // One ledger row per file, with the file's SHA-256.
      assert.deepEqual(await ledger(db), expectedLedger(shipped));
      for (const row of await ledger(db)) assert.match(row.checksum, /^[0-9a-f]{64}$/);
      assert.equal(await tableExists(db, 'oidc_models'), true);
      assert.equal(await tableExists(db, 'clients'), true);
    });

    test('migrationsCurrent is false before migrating (no ledger yet) and true after', async () => {
      assert.equal(await tableExists(db, 'schema_migrations'), false);
      assert.equal(await migrationsCurrent(db, shipped), false);
      await migrate(db, shipped);
      assert.equal(await migrationsCurrent(db, shipped), true);
    });

    test('migrationsCurrent is false while a newer migration is pending', async () => {
      await migrate(db, shipped);
      const dir = await copyOfMigrations({ [nextFile('pending')]: 'CREATE TABLE pending_feature (id integer);' });
      const withPending = await loadMigrations(dir);
      assert.equal(await migrationsCurrent(db, withPending), false);
      await migrate(db, withPending);
      assert.equal(await migrationsCurrent(db, withPending), true);
    });

    test('an applied migration edited afterwards stops migrate with migration_edited, naming the file', async () => {
      const dir = await copyOfMigrations();
      const original = await loadMigrations(dir);
      await migrate(db, original);

      const file = path.join(dir, shipped[0]!.name);
      await writeFile(file, `${await readFile(file, 'utf8')}\nCREATE TABLE sneaked_in (id integer);\n`);
      // A new migration alongside must not be applied either: the check comes first.
      await writeFile(path.join(dir, nextFile('next')), 'CREATE TABLE next_feature (id integer);');
      const edited = await loadMigrations(dir);

      await assert.rejects(migrate(db, edited), (error: unknown) => {
        assert.ok(error instanceof MigrationError);
        assert.equal(error.code, 'migration_edited');
        assert.ok(error.message.includes(shipped[0]!.name), error.message);
        return true;
      });
      assert.equal(await migrationsCurrent(db, edited), false);
      assert.deepEqual(await ledger(db), expectedLedger(original));
      assert.equal(await tableExists(db, 'sneaked_in'), false);
      assert.equal(await tableExists(db, 'next_feature'), false);
    });

    test('an applied migration missing from the directory stops migrate with migration_unknown', async () => {
      const fromNewer = nextFile('from_newer_release');
      const dir = await copyOfMigrations({ [fromNewer]: 'CREATE TABLE newer_feature (id integer);' });
      const newer = await loadMigrations(dir);
      await migrate(db, newer);

      await assert.rejects(migrate(db, shipped), (error: unknown) => {
        assert.ok(error instanceof MigrationError);
        assert.equal(error.code, 'migration_unknown');
        assert.ok(error.message.includes(fromNewer), error.message);
        return true;
      });
      assert.deepEqual(await ledger(db), expectedLedger(newer));
    });

    test('a failing migration rolls back whole: no partial schema, no ledger row, and the lock is released', async () => {
      const broken = [
        'CREATE TABLE half_done (id integer PRIMARY KEY);',
        'INSERT INTO half_done VALUES (1);',
        'ALTER TABLE clients ADD COLUMN half_done_column text;',
        'CREATE TABLE never_done (id integer REFERENCES no_such_table (id));',
      ].join('\n');
      const brokenFile = nextFile('broken');
      const dir = await copyOfMigrations({ [brokenFile]: broken });
      const migrations = await loadMigrations(dir);

      await assert.rejects(migrate(db, migrations), (error: unknown) => {
        assert.ok(error instanceof MigrationError);
        assert.equal(error.code, 'migration_failed');
        assert.ok(error.message.includes(brokenFile), error.message);
        assert.ok(error.cause instanceof Error);
        return true;
      });

      // The shipped migrations were committed each on their own; the broken one left nothing behind.
      assert.deepEqual(await ledger(db), expectedLedger(shipped));
      assert.equal(await tableExists(db, 'half_done'), false);
      const { rows } = await db.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM information_schema.columns WHERE table_name = 'clients' AND column_name = 'half_done_column'`,
      );
      assert.equal(rows[0]?.n, 0);

      // The connection is usable and the advisory lock free: the fixed file applies.
      await writeFile(path.join(dir, brokenFile), 'CREATE TABLE half_done (id integer PRIMARY KEY);');
      const fixed = await loadMigrations(dir);
      assert.deepEqual((await migrate(db, fixed)).applied, [brokenFile]);
      assert.equal(await tableExists(db, 'half_done'), true);
    });

    test('a migration commits together with its ledger row: a failed ledger insert undoes the migration', async () => {
      // The script itself succeeds, but its constraint makes recording it in the ledger fail.
      const sabotage = ['CREATE TABLE side_effect (id integer);', `ALTER TABLE schema_migrations ADD CONSTRAINT only_shipped CHECK (id <= ${latest});`].join('\n');
      const dir = await copyOfMigrations({ [nextFile('sabotage')]: sabotage });

      await assert.rejects(migrate(db, await loadMigrations(dir)), { name: 'MigrationError', code: 'migration_failed' });
      assert.equal(await tableExists(db, 'side_effect'), false);
      assert.deepEqual(await ledger(db), expectedLedger(shipped));
      const { rows } = await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM pg_constraint WHERE conname = 'only_shipped'`);
      assert.equal(rows[0]?.n, 0);
    });
  });
}

describe('concurrent migrations on postgres', { skip: !backends.includes('postgres') && 'needs TEST_DATABASE_URL' }, () => {
  /**
   * Holds the first migrator inside its critical section: an uncommitted CREATE TABLE of the
   * ledger makes the lock holder's `CREATE TABLE IF NOT EXISTS schema_migrations` wait. Once the
   * other migrator is seen queueing on the advisory lock, the blocker rolls back and both go on.
   * That way the test proves real contention instead of hoping the two runs overlap.
   */
  async function whileHeldInsideLock<T>(database: TestDatabase, start: () => Promise<T>): Promise<T> {
    const observer = await database.connect();
    try {
      return await observer.withSession(async (blocker) => {
        await blocker.exec('BEGIN');
        await blocker.exec('CREATE TABLE schema_migrations (id integer)');
        const started = start();
        // Observed by the caller once the lock is let go; until then a failure must not go unhandled.
        void started.catch(() => undefined);
        try {
          await waitFor(async () => {
            const { rows } = await observer.query<{ granted: boolean; n: number }>(
              `SELECT granted, count(*)::int AS n FROM pg_locks
               WHERE locktype = 'advisory' AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
               GROUP BY granted`,
            );
            const held = rows.find((r) => r.granted)?.n ?? 0;
            const queued = rows.find((r) => !r.granted)?.n ?? 0;
            return held === 1 && queued === 1;
          }, 30_000);
        } finally {
          await blocker.exec('ROLLBACK');
        }
        return started;
      });
    } finally {
      await observer.close();
    }
  }

  test('two connections migrating a fresh database at once: both resolve, exactly one applies', async () => {
    const database = await createTestDatabase('postgres');
    const a = await database.connect();
    const b = await database.connect();
    try {
      const reports = await whileHeldInsideLock(database, () => Promise.all([migrate(a, shipped), migrate(b, shipped)]));
      const appliers = reports.filter((r) => r.applied.length > 0);
      assert.equal(appliers.length, 1);
      assert.deepEqual(appliers[0]!.applied, shipped.map((m) => m.name));
      assert.ok(reports.every((r) => r.current === latest));
      assert.deepEqual(await ledger(a), expectedLedger(shipped));
      assert.equal(await migrationsCurrent(b, shipped), true);
    } finally {
      await a.close();
      await b.close();
      await database.drop();
    }
  });

  test('two `gatehouse migrate` processes started together both exit 0 and apply each migration once', async () => {
    const database = await createTestDatabase('postgres');
    const env = { DATABASE_URL: database.url!, LOG_LEVEL: 'warn' };
    const processes: GatehouseProcess[] = [];
    try {
      await whileHeldInsideLock(database, () => {
        processes.push(spawnGatehouse(env, 'cli', ['migrate']), spawnGatehouse(env, 'cli', ['migrate']));
        return Promise.resolve();
      });
      const codes = await Promise.all(processes.map((p) => p.exited));
      assert.deepEqual(codes, [0, 0], processes.map((p) => p.output.stderr).join('\n'));
      const outputs = processes.map((p) => p.output.stdout).sort();
      assert.equal(outputs[0], `applied ${shipped.map((m) => m.name).join(', ')}; database is at migration ${latest}\n`);
      assert.equal(outputs[1], `database is current (migration ${latest})\n`);

      const db = await database.connect();
      try {
        assert.deepEqual(await ledger(db), expectedLedger(shipped));
      } finally {
        await db.close();
      }
    } finally {
      for (const p of processes) p.kill();
      await database.drop();
    }
  });
});
