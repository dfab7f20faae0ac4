import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { connectPostgres, type Database } from '../../src/db/database.js';
import { openPglite } from '../../src/db/pglite.js';

/**
 * Each test gets its own database: a uniquely named PostgreSQL database when
 * TEST_DATABASE_URL (or DATABASE_URL) points at a server, otherwise PGlite in a temp dir.
 * Tests read the environment here, not through src/config.ts, to choose where to run.
 */
export const postgresUrl: string | undefined = process.env['TEST_DATABASE_URL'] || process.env['DATABASE_URL'] || undefined;

export type Backend = 'postgres' | 'pglite';

/** Backends to run backend-specific tests on: PGlite always, PostgreSQL when configured. */
export const backends: readonly Backend[] = postgresUrl === undefined ? ['pglite'] : ['pglite', 'postgres'];

/** The default backend for tests that don't care which. */
export const defaultBackend: Backend = postgresUrl === undefined ? 'pglite' : 'postgres';

export interface TestDatabase {
  readonly backend: Backend;
  /** Connection URL of the PostgreSQL database (undefined on PGlite). */
  readonly url: string | undefined;
  /** Directory a PGlite-backed server uses as DATA_DIR (also holds the dev master key). */
  readonly dataDir: string;
  /** A fresh connection to the database, for the test's own queries. */
  connect(): Promise<Database>;
  /** Drops the database and removes the data dir. */
  drop(): Promise<void>;
}

function withDatabase(url: string, name: string): string {
  const parsed = new URL(url);
  parsed.pathname = `/${name}`;
  return parsed.toString();
}

export async function createTestDatabase(backend: Backend = defaultBackend): Promise<TestDatabase> {
  const dataDir = await mkdtemp(path.join(tmpdir(), 'gatehouse-test-'));
  if (backend === 'pglite') {
    return {
      backend,
      url: undefined,
      dataDir,
      connect: () => openPglite(path.join(dataDir, 'pglite')),
      drop: () => rm(dataDir, { recursive: true, force: true }),
    };
  }
  if (postgresUrl === undefined) throw new Error('PostgreSQL tests need TEST_DATABASE_URL or DATABASE_URL');
  const name = `gatehouse_test_${Date.now().toString(36)}_${randomBytes(4).toString('hex')}`;
  const admin = new pg.Client({ connectionString: postgresUrl });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${name}`);
  } finally {
    await admin.end();
  }
  const url = withDatabase(postgresUrl, name);
  return {
    backend,
    url,
    dataDir,
    connect: () => Promise.resolve(connectPostgres({ connectionString: url, max: 4 })),
    async drop() {
      const client = new pg.Client({ connectionString: postgresUrl });
      await client.connect();
      try {
        await client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      } finally {
        await client.end();
      }
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}
