import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import pg from 'pg';
import type { PGlite as PGliteType, Transaction as PGliteTransaction } from '@electric-sql/pglite';
import { listenPostgres, type Listener, type ListenHandlers } from './listener.js';

/**
 * One query interface over two backends: a `pg` Pool when DATABASE_URL is set, otherwise
 * embedded PGlite persisted in DATA_DIR. Every query and migration runs on both.
 */

export type Row = Record<string, unknown>;

export interface QueryResult<R extends Row> {
  readonly rows: R[];
  readonly rowCount: number;
}

export interface Queryable {
  /** One statement with $n parameters. */
  readonly query: <R extends Row = Row>(text: string, params?: readonly unknown[]) => Promise<QueryResult<R>>;
  /** A script of several statements, no parameters (migrations). */
  readonly exec: (script: string) => Promise<void>;
  /**
   * Inside a transaction: runs `fn` once the transaction has committed (never after a rollback).
   * Outside one, runs it at once.
   */
  readonly afterCommit: (fn: () => void) => void;
}

/** The single row a statement like INSERT ... RETURNING must produce. */
export function onlyRow<R>(result: QueryResult<R & Row> | { rows: R[] }): R {
  const [row] = result.rows;
  if (row === undefined) throw new Error('expected one row, got none');
  return row;
}

export interface PoolStats {
  readonly total: number;
  readonly idle: number;
  readonly waiting: number;
}

export interface Database extends Queryable {
  readonly kind: 'postgres' | 'pglite';
  /** Runs `fn` in one transaction: commits when it resolves, rolls back when it throws. */
  transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T>;
  /** Runs `fn` on one connection (session-level advisory locks need that). */
  withSession<T>(fn: (session: Queryable) => Promise<T>): Promise<T>;
  /** LISTEN on `channel` (src/db/listener.ts); `close()` ends every listener too. */
  listen(channel: string, handlers: ListenHandlers): Listener;
  poolStats(): PoolStats;
  close(): Promise<void>;
}

/** Thrown when the database cannot be reached; callers map it to 503. */
export class DatabaseUnavailableError extends Error {
  readonly code = 'database_unavailable' as const;
  readonly status = 503;

  constructor(cause: unknown) {
    super('database unavailable', { cause });
    this.name = 'DatabaseUnavailableError';
  }
}

// Connection-level failures (refused, reset, timeouts, server shutting down), as opposed to
// errors in a statement. SQLSTATE class 08 is "connection exception"; 57P0x is shutdown.
const UNAVAILABLE_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EHOSTUNREACH', '57P01', '57P02', '57P03']);

export function isUnavailable(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  if (error instanceof DatabaseUnavailableError) return true;
  const code = (error as { code?: unknown }).code;
  if (typeof code === 'string' && (UNAVAILABLE_CODES.has(code) || code.startsWith('08'))) return true;
  return /Connection terminated|timeout exceeded when trying to connect|Query read timeout|connection timeout/i.test(error.message);
}

/**
 * PostgreSQL text cannot hold U+0000, so a parameter containing it can match nothing and would
 * fail inside the database (SQLSTATE 22021). Refused before the query as a client error; so is
 * JSON for a jsonb column holding U+0000 or a lone surrogate, which jsonb refuses (22P05, 22P02).
 */
export class InvalidTextError extends Error {
  readonly code = 'invalid_text' as const;
  readonly status = 400;
  readonly expose = true;

  constructor() {
    super('input contains a NUL character or an unpaired surrogate');
    this.name = 'InvalidTextError';
  }
}

export function containsNul(value: unknown): boolean {
  return typeof value === 'string' ? value.includes('\u0000') : Array.isArray(value) && value.some(containsNul);
}

function rejectNul(params: readonly unknown[]): void {
  if (params.some(containsNul)) throw new InvalidTextError();
}

// A high surrogate not followed by a low one, or a low one not preceded by a high one.
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

/** True if `text` is not well-formed UTF-16 (String.prototype.isWellFormed is ES2024). */
export function hasLoneSurrogate(text: string): boolean {
  return LONE_SURROGATE.test(text);
}

function unstorableInJsonb(text: string): boolean {
  return text.includes('\u0000') || hasLoneSurrogate(text);
}

/** JSON text for a jsonb parameter; throws InvalidTextError if a key or string in it holds U+0000 or a lone surrogate. */
export function jsonParam(value: unknown): string {
  return JSON.stringify(value, (key: string, item: unknown) => {
    if (unstorableInJsonb(key) || (typeof item === 'string' && unstorableInJsonb(item))) throw new InvalidTextError();
    return item;
  });
}

function classify(error: unknown): never {
  throw isUnavailable(error) ? new DatabaseUnavailableError(error) : error;
}

export interface PostgresOptions {
  readonly connectionString: string;
  readonly max?: number;
  readonly connectionTimeoutMillis?: number;
  readonly statementTimeoutMillis?: number;
  readonly onPoolError?: (error: Error) => void;
}

function pgQueryable(client: pg.ClientBase | pg.Pool, afterCommit: (fn: () => void) => void = (fn) => fn()): Queryable {
  return {
    afterCommit,
    async query<R extends Row>(text: string, params: readonly unknown[] = []) {
      rejectNul(params);
      const result = await client.query<R>(text, params as unknown[]).catch(classify);
      return { rows: result.rows, rowCount: result.rowCount ?? 0 };
    },
    async exec(script: string) {
      await client.query(script).catch(classify);
    },
  };
}

export function connectPostgres(options: PostgresOptions): Database {
  const pool = new pg.Pool({
    connectionString: options.connectionString,
    max: options.max ?? 10,
    // Fail fast when the database is gone (SPEC §6) instead of queueing requests forever.
    connectionTimeoutMillis: options.connectionTimeoutMillis ?? 3_000,
    statement_timeout: options.statementTimeoutMillis ?? 10_000,
    query_timeout: (options.statementTimeoutMillis ?? 10_000) + 2_000,
    idleTimeoutMillis: 30_000,
    application_name: 'gatehouse',
  });
  // An idle client losing its connection emits here; without a listener the process would crash.
  pool.on('error', (error) => options.onPoolError?.(error));
  const direct = pgQueryable(pool);
  const listeners = new Set<Listener>();

  async function withClient<T>(fn: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    const client = await pool.connect().catch(classify);
    let broken: Error | undefined;
    try {
      return await fn(client);
    } catch (error) {
      if (isUnavailable(error)) broken = error as Error;
      throw error;
    } finally {
      // A client whose connection failed is destroyed rather than returned to the pool.
      client.release(broken);
    }
  }

  return {
    kind: 'postgres',
    query: direct.query,
    exec: direct.exec,
    afterCommit: direct.afterCommit,
    transaction(fn) {
      return withClient(async (client) => {
        const committed: (() => void)[] = [];
        const tx = pgQueryable(client, (callback) => committed.push(callback));
        await tx.exec('BEGIN');
        try {
          const result = await fn(tx);
          await tx.exec('COMMIT');
          for (const callback of committed) callback();
          return result;
        } catch (error) {
          await tx.exec('ROLLBACK').catch(() => undefined);
          throw error;
        }
      });
    },
    withSession(fn) {
      return withClient((client) => fn(pgQueryable(client)));
    },
    listen(channel, handlers) {
      const listener = listenPostgres(options.connectionString, channel, handlers);
      listeners.add(listener);
      return {
        close: () => {
          listeners.delete(listener);
          return listener.close();
        },
      };
    },
    poolStats() {
      return { total: pool.totalCount, idle: pool.idleCount, waiting: pool.waitingCount };
    },
    async close() {
      await Promise.all([...listeners].map((listener) => listener.close()));
      await pool.end();
    },
  };
}

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
