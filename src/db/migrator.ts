import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import type { Database, Queryable } from './database.js';

/**
 * Plain numbered SQL files in migrations/, applied in order, each in its own transaction,
 * recorded with a SHA-256 checksum. A session-level advisory lock makes concurrent start-ups
 * queue: the first applies, the others find nothing left to do.
 */

// src/db and dist/db are both two levels below the repository root.
export const MIGRATIONS_DIR = fileURLToPath(new URL('../../migrations/', import.meta.url));

// Arbitrary constant shared by every Gatehouse process on a database.
const MIGRATION_LOCK = 7_270_411_001;

export interface Migration {
  readonly id: number;
  readonly name: string;
  readonly sql: string;
  readonly checksum: string;
}

export class MigrationError extends Error {
  readonly code: 'migration_edited' | 'migration_unknown' | 'migration_failed' | 'migration_file_invalid';

  constructor(code: MigrationError['code'], message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'MigrationError';
    this.code = code;
  }
}

const FILE_PATTERN = /^(\d{4})_([a-z0-9_]+)\.sql$/;

export async function loadMigrations(dir: string = MIGRATIONS_DIR): Promise<Migration[]> {
  const files = (await readdir(dir)).filter((file) => file.endsWith('.sql')).sort();
  const migrations: Migration[] = [];
  for (const file of files) {
    const match = FILE_PATTERN.exec(file);
    if (match === null) throw new MigrationError('migration_file_invalid', `${file}: migration files are named NNNN_name.sql`);
    const sql = await readFile(`${dir}/${file}`, 'utf8');
    const id = Number(match[1]);
    if (migrations.some((m) => m.id === id)) throw new MigrationError('migration_file_invalid', `${file}: two migrations numbered ${id}`);
    migrations.push({ id, name: file, sql, checksum: createHash('sha256').update(sql).digest('hex') });
  }
  return migrations;
}

interface AppliedRow extends Record<string, unknown> {
  id: number;
  name: string;
  checksum: string;
}

async function ensureLedger(session: Queryable): Promise<void> {
  await session.exec(`CREATE TABLE IF NOT EXISTS schema_migrations (
    id         integer     PRIMARY KEY,
    name       text        NOT NULL,
    checksum   text        NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
  )`);
}

/** The applied migrations in order, or `undefined` when the ledger does not exist yet. */
async function readLedger(db: Queryable): Promise<AppliedRow[] | undefined> {
  try {
    return (await db.query<AppliedRow>('SELECT id, name, checksum FROM schema_migrations ORDER BY id')).rows;
  } catch (error) {
    // 42P01: undefined table.
    if ((error as { code?: unknown }).code === '42P01') return undefined;
    throw error;
  }
}

/** Refuses to go on when an applied migration's file changed or is missing. */
function verifyApplied(applied: readonly AppliedRow[], migrations: readonly Migration[]): void {
  for (const row of applied) {
    const file = migrations.find((m) => m.id === row.id);
    if (file === undefined) {
      throw new MigrationError(
        'migration_unknown',
        `migration ${row.name} is applied in the database but missing from migrations/ (is this an older Gatehouse than the database?)`,
      );
    }
    if (file.checksum !== row.checksum) {
      throw new MigrationError(
        'migration_edited',
        `migration ${row.name} was edited after it was applied (checksum ${file.checksum.slice(0, 12)} != applied ${row.checksum.slice(0, 12)}); restore it and add a new migration instead`,
      );
    }
  }
}

export interface MigrationReport {
  readonly applied: readonly string[];
  readonly current: number;
}

export async function migrate(db: Database, migrations?: readonly Migration[]): Promise<MigrationReport> {
  const all = migrations ?? (await loadMigrations());
  // The usual start: everything is applied. One read verifies every checksum, without the lock
  // and the ledger DDL (one query instead of four); anything pending takes the locked path.
  const ledger = await readLedger(db);
  if (ledger !== undefined) {
    verifyApplied(ledger, all);
    if (ledger.length === all.length) return { applied: [], current: all.at(-1)?.id ?? 0 };
  }
  return db.withSession(async (session) => {
    await session.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK]);
    try {
      await ensureLedger(session);
      const { rows: applied } = await session.query<AppliedRow>('SELECT id, name, checksum FROM schema_migrations ORDER BY id');
      verifyApplied(applied, all);
      const done = new Set(applied.map((row) => row.id));
      const newlyApplied: string[] = [];
      for (const migration of all) {
        if (done.has(migration.id)) continue;
        await session.exec('BEGIN');
        try {
          await session.exec(migration.sql);
          await session.query('INSERT INTO schema_migrations (id, name, checksum) VALUES ($1, $2, $3)', [
            migration.id,
            migration.name,
            migration.checksum,
          ]);
          await session.exec('COMMIT');
        } catch (error) {
          await session.exec('ROLLBACK').catch(() => undefined);
          throw new MigrationError('migration_failed', `migration ${migration.name} failed: ${(error as Error).message}`, { cause: error });
        }
        newlyApplied.push(migration.name);
      }
      return { applied: newlyApplied, current: all.at(-1)?.id ?? 0 };
    } finally {
      await session.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK]).catch(() => undefined);
    }
  });
}

/** For /readyz: true when every known migration is applied with a matching checksum. */
export async function migrationsCurrent(db: Queryable, migrations: readonly Migration[]): Promise<boolean> {
  const rows = (await readLedger(db)) ?? [];
  if (rows.length !== migrations.length) return false;
  return migrations.every((m, i) => rows[i]?.id === m.id && rows[i]?.checksum === m.checksum);
}

/** Serialises other start-up work (key generation, bootstrap client) across processes. */
export async function withStartupLock<T>(db: Database, fn: (session: Queryable) => Promise<T>): Promise<T> {
  return db.withSession(async (session) => {
    await session.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK + 1]);
    try {
      return await fn(session);
    } finally {
      await session.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK + 1]).catch(() => undefined);
    }
  });
}
