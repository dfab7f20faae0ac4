import pg from 'pg';
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

/** Refuses parameters PostgreSQL text cannot hold, before they reach either backend. */
export function rejectNul(params: readonly unknown[]): void {
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
