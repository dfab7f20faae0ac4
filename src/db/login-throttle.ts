import { onlyRow, type Queryable } from './database.js';

export interface ThrottlePolicy {
  /** Failures allowed within the window before attempts are refused. */
  readonly threshold: number;
  readonly windowSeconds: number;
  /** Refusal after the threshold-th failure; doubles with each further failure, up to the cap. */
  readonly baseDelaySeconds: number;
  readonly maxDelaySeconds: number;
}

export interface ThrottleKey {
  readonly key: string;
  readonly policy: ThrottlePolicy;
}

/**
 * One key's share of an allowed attempt: the attempt is already counted as a failure. Timestamps
 * are PostgreSQL's own text (microseconds), so a later statement can match them exactly.
 */
export interface Reservation {
  readonly key: string;
  readonly threshold: number;
  /** Failures in the window, this attempt included. */
  readonly failures: number;
  readonly windowStart: string;
  /** The lock this attempt's count set (the threshold-th failure and past it), if any. */
  readonly lockedUntil: string | null;
  /** The key's lock before this attempt (over already, or the attempt would have been refused). */
  readonly previousLockedUntil: string | null;
  /** This attempt's count locked the key. */
  readonly locked: boolean;
}

export interface ReserveResult {
  /** Seconds until the latest lock among the keys ends; 0 when the attempt was allowed. */
  readonly lockedSeconds: number;
  /** In the order asked; empty when refused (then nothing was counted). */
  readonly reservations: readonly Reservation[];
}

/**
 * One statement that counts an attempt for every key *before* its password or code is checked
 * (SPEC §4: "an attempt is counted atomically before its password or code is checked"):
 * the keys' rows are locked in key order (FOR UPDATE), and only when none of them is locked is
 * the attempt counted for all of them, each by its own policy (a new window after the old one ran
 * out; at the threshold and past it, a lock of the base delay doubling with each further failure,
 * up to the cap). A concurrent attempt waits for the row lock and then sees this count, so N
 * concurrent guesses are allowed exactly as many tries as N sequential ones.
 *
 * The keys' rows must exist (ensureThrottleRows) for the row locks to serialise anything.
 *
 * Returns WITH-clause CTEs ending in `reserved` (one row: locked_seconds, reservations json) and
 * their parameters, numbered from `$first`, for a caller that reads something else in the same
 * round trip (src/db/users.ts, the password step).
 */
export function reservationSql(keys: readonly ThrottleKey[], first: number): { ctes: string; params: unknown[] } {
  if (keys.length === 0 || new Set(keys.map((k) => k.key)).size !== keys.length) throw new Error('reservationSql: keys must be distinct and at least one');
  const p = (i: number) => `$${first + i}`;
  const params: unknown[] = [keys.map((k) => k.key)];
  const upserts = keys.map(({ key, policy }, k) => {
    const base = params.length;
    params.push(key, policy.threshold, policy.windowSeconds, policy.baseDelaySeconds, policy.maxDelaySeconds);
    const $ = (i: number) => p(base + i - 1);
    const expired = `t.window_start < now() - make_interval(secs => ${$(3)}::int)`;
    const failures = `(CASE WHEN ${expired} THEN 1 ELSE t.failures + 1 END)`;
    return `c${k} AS (
      INSERT INTO login_throttle AS t (key, failures, window_start, locked_until, updated_at)
      SELECT ${$(1)}::text, 1, now(), CASE WHEN ${$(2)}::int <= 1 THEN now() + make_interval(secs => ${$(4)}::int) END, now()
        FROM verdict WHERE verdict.locked_seconds = 0
      ON CONFLICT (key) DO UPDATE SET
        failures = ${failures},
        window_start = CASE WHEN ${expired} THEN now() ELSE t.window_start END,
        locked_until = CASE
          WHEN ${failures} >= ${$(2)}::int
          THEN now() + make_interval(secs => LEAST(${$(5)}::int, ${$(4)}::int * power(2, ${failures} - ${$(2)}::int))::int)
          ELSE t.locked_until END,
        updated_at = now()
      RETURNING ${k} AS position, t.key, ${$(2)}::int AS threshold, t.failures, t.window_start::text AS window_start,
                CASE WHEN t.locked_until > now() THEN t.locked_until::text END AS locked_until, (t.locked_until IS NOT NULL AND t.locked_until > now()) AS locked)`;
  });
  const ctes = `current AS MATERIALIZED (
      SELECT key, locked_until FROM login_throttle WHERE key = ANY(${p(0)}::text[]) ORDER BY key FOR UPDATE
    ), verdict AS MATERIALIZED (
      SELECT coalesce(ceil(extract(epoch FROM max(locked_until) FILTER (WHERE locked_until > now()) - now()))::int, 0) AS locked_seconds FROM current
    ), ${upserts.join(', ')},
    reserved AS (
      SELECT verdict.locked_seconds,
             (SELECT coalesce(json_agg(json_build_object('key', c.key, 'threshold', c.threshold, 'failures', c.failures, 'windowStart', c.window_start,
                                                         'lockedUntil', c.locked_until, 'previousLockedUntil', prior.locked_until::text, 'locked', c.locked)
                                       ORDER BY c.position), '[]'::json)
                FROM (${keys.map((_, k) => `SELECT * FROM c${k}`).join(' UNION ALL ')}) c LEFT JOIN current prior ON prior.key = c.key) AS reservations
        FROM verdict
    )`;
  return { ctes, params };
}

/**
 * Makes sure every key has a row before reservationSql runs. Its `FOR UPDATE` serialises
 * concurrent attempts only on rows that exist: without this, a burst of first attempts for a
 * key (or for one the maintenance job just pruned) all found nothing to lock, all saw "not
 * locked", and all were counted and allowed, more than the threshold. Touching `updated_at`
 * keeps the row from being pruned before the reservation reads it.
 */
export async function ensureThrottleRows(db: Queryable, keys: readonly ThrottleKey[]): Promise<void> {
  await db.query(
    `INSERT INTO login_throttle (key, failures, window_start, updated_at)
     SELECT DISTINCT key, 0, now(), now() FROM unnest($1::text[]) AS key ORDER BY key
     ON CONFLICT (key) DO UPDATE SET updated_at = now()`,
    [keys.map((k) => k.key)],
  );
}

/** The `reserved` row of reservationSql, as the caller's statement returned it. */
export function reserveResultOf(row: { locked_seconds: number; reservations: Reservation[] }): ReserveResult {
  return { lockedSeconds: row.reservations.length > 0 ? 0 : row.locked_seconds, reservations: row.reservations };
}

/**
 * Sign-in throttle counters. Every change is one atomic statement, so several instances (and
 * concurrent requests) count correctly without locks held across requests.
 */
export function createLoginThrottleStore(db: Queryable) {
  return {
    /** Counts an attempt for every key, unless one of them is locked (see reservationSql). */
    async reserve(keys: readonly ThrottleKey[]): Promise<ReserveResult> {
      await ensureThrottleRows(db, keys);
      const { ctes, params } = reservationSql(keys, 1);
      const result = await db.query<{ locked_seconds: number; reservations: Reservation[] }>(`WITH ${ctes} SELECT * FROM reserved`, params);
      return reserveResultOf(onlyRow(result));
    },
    /**
     * Takes back reserved attempts that were not failures (a correct password, a correct code, a
     * check that never ran), in one statement. Only while the key's window is the reservation's.
     * When the count falls below the threshold no lock is left; a lock this attempt set gives way
     * to the one before it (which had ended, or the attempt would have been refused).
     */
    async release(reservations: readonly Reservation[], tx: Queryable = db): Promise<void> {
      // One key per statement, in key order: the order reservations lock rows in, so a release
      // inside a transaction never waits on a reservation that waits on it.
      for (const r of [...reservations].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0))) {
        await tx.query(
          `UPDATE login_throttle SET
             failures = failures - 1,
             locked_until = CASE
               WHEN failures - 1 < $3::int THEN NULL
               WHEN locked_until = $4::timestamptz THEN $5::timestamptz
               ELSE locked_until END,
             updated_at = now()
           WHERE key = $1 AND window_start = $2::timestamptz AND failures > 0`,
          [r.key, r.windowStart, r.threshold, r.lockedUntil, r.previousLockedUntil],
        );
      }
    },
    /** Forgets a key's failures in the reservation's window (a completed sign-in). `tx`: the sign-in's audit transaction. */
    async forget(reservation: Reservation, tx: Queryable = db): Promise<void> {
      await tx.query('DELETE FROM login_throttle WHERE key = $1 AND window_start = $2::timestamptz', [reservation.key, reservation.windowStart]);
    },
  };
}
