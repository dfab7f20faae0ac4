import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import type { PGlite as PGliteType, Transaction as PGliteTransaction } from '@electric-sql/pglite';
import { rejectNul, type Database, type Queryable, type Row } from './database.js';

/**
 * The embedded backend: PGlite persisted in DATA_DIR, for `npm start` without a server. One
 * process at a time (a lock file in the data directory says which).
 */

function pgliteQueryable(db: PGliteType | PGliteTransaction, afterCommit: (fn: () => void) => void = (fn) => fn()): Queryable {
  return {
    afterCommit,
    async query<R extends Row>(text: string, params: readonly unknown[] = []) {
      rejectNul(params);
      const result = await db.query<R>(text, params as unknown[]);
      return { rows: result.rows, rowCount: result.affectedRows ?? result.rows.length };
    },
    async exec(script: string) {
      await db.exec(script);
    },
  };
}

export class DatabaseInUseError extends Error {
  readonly code = 'database_in_use' as const;

  constructor(dataDir: string, pid: number) {
    super(`the embedded database in ${dataDir} is in use by process ${pid}; stop it first, or use DATABASE_URL for several processes`);
    this.name = 'DatabaseInUseError';
  }
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * PGlite is one process per data dir, and a second process opening it would corrupt it. A lock
 * file with our pid refuses that; a lock left by a process that no longer runs is taken over.
 */
async function lockDataDir(dataDir: string): Promise<() => Promise<void>> {
  const file = `${dataDir}/gatehouse.pid`;
  for (;;) {
    try {
      await writeFile(file, String(process.pid), { flag: 'wx' });
      return () => rm(file, { force: true });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
    const holder = Number((await readFile(file, 'utf8').catch(() => '')).trim());
    if (Number.isInteger(holder) && holder > 0 && holder !== process.pid && processAlive(holder)) throw new DatabaseInUseError(dataDir, holder);
    await rm(file, { force: true });
  }
}

/**
 * PGlite's postgresql.conf keeps PostgreSQL's 128MB shared_buffers, which PGlite allocates and
 * zero-fills at every start: ~110 MB of resident memory and page faults before the first query.
 * One embedded process's working set is far smaller; 32MB leaves it room (measured: idle RSS
 * ~345 → ~250 MB, bench/startup.ts).
 */
const PGLITE_SETTINGS = ['-c', 'shared_buffers=32MB'];

/** Embedded PostgreSQL (WASM) persisted in `dataDir`; `undefined` keeps it in memory. */
export async function openPglite(dataDir: string | undefined): Promise<Database> {
  const { PGlite } = await import('@electric-sql/pglite');
  let unlock = () => Promise.resolve();
  if (dataDir !== undefined) {
    await mkdir(dataDir, { recursive: true });
    unlock = await lockDataDir(dataDir);
  }
  // PGlite compiles its WASM on V8's threads. Meanwhile the event loop has nothing pending, so
  // Node drains V8's task queue, which blocks the main thread until *every* background job is
  // done, including the optimising compiles of PostgreSQL's hot WASM functions queued as it
  // starts (0.15 s on an idle machine, over 1 s on a busy one: bench/startup.ts). A ref'd timer
  // keeps the loop alive, so start-up goes on while V8 compiles.
  const keepAlive = setInterval(() => undefined, 60_000);
  const db = await PGlite.create({ ...(dataDir === undefined ? {} : { dataDir }), startParams: [...PGlite.defaultStartParams, ...PGLITE_SETTINGS] })
    .catch(async (error: unknown) => {
      await unlock();
      throw error;
    })
    .finally(() => clearInterval(keepAlive));
  const direct = pgliteQueryable(db);
  return {
    kind: 'pglite',
    query: direct.query,
    exec: direct.exec,
    afterCommit: direct.afterCommit,
    async transaction(fn) {
      const committed: (() => void)[] = [];
      const result = await db.transaction((tx) => fn(pgliteQueryable(tx, (callback) => committed.push(callback))));
      for (const callback of committed) callback();
      return result;
    },
    // PGlite is a single connection, so the instance itself is the session.
    withSession(fn) {
      return fn(direct);
    },
    // One process, one connection: notifications cannot be missed while the instance is open.
    listen(channel, handlers) {
      const subscribed = db.listen(channel, handlers.onNotify).then((unsubscribe) => {
        handlers.onState(true);
        return unsubscribe;
      });
      return {
        async close() {
          handlers.onState(false);
          const unsubscribe = await subscribed.catch(() => undefined);
          await unsubscribe?.().catch(() => undefined);
        },
      };
    },
    poolStats() {
      return { total: 1, idle: 1, waiting: 0 };
    },
    async close() {
      await db.close();
      await unlock();
    },
  };
}
