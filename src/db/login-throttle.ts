import { onlyRow, type Queryable } from './database.js';

export interface ThrottlePolicy {
  /** Failures allowed within the window before attempts are refused. */
  readonly threshold: number;
  readonly windowSeconds: number;
  /** Refusal after the threshold-th failure; doubles with each further failure, up to the cap. */
  readonly baseDelaySeconds: number;
  readonly maxDelaySeconds: number;
}

/**
 * The throttle state of some keys as one row, for a statement that reads something else in the
 * same round trip (src/db/users.ts, the sign-in's first read): `locked_seconds`, until the latest
 * lock among the keys ends (0 when none is locked), and `counted`, whether `countedKey` has a row
 * (failures a success would clear). `keys` and `countedKey` are the caller's $n placeholders.
 */
export function throttleStateSql(keys: string, countedKey: string): string {
  return `SELECT coalesce(ceil(extract(epoch FROM max(locked_until) FILTER (WHERE locked_until > now()) - now()))::int, 0) AS locked_seconds,
                 coalesce(bool_or(key = ${countedKey}), false) AS counted
            FROM login_throttle WHERE key = ANY(${keys})`;
}

/**
 * Failure counters for sign-in throttling. Every update is one atomic statement, so several
 * instances (and concurrent requests) count correctly without locks held across requests.
 */
export function createLoginThrottleStore(db: Queryable) {
  return {
    /** Seconds until the latest lock among `keys` ends, or 0 when none is locked. */
    async lockedFor(keys: readonly string[]): Promise<number> {
      const result = await db.query<{ locked_seconds: number }>(throttleStateSql('$1', 'NULL'), [keys]);
      return onlyRow(result).locked_seconds;
    },
    /** Counts one failure for `key`; returns the failures in the window and whether it is now locked. */
    async recordFailure(key: string, policy: ThrottlePolicy): Promise<{ failures: number; locked: boolean }> {
      const result = await db.query<{ failures: number; locked: boolean }>(
        `INSERT INTO login_throttle AS t (key, failures, window_start, locked_until, updated_at)
         VALUES ($1, 1, now(), CASE WHEN $2::int <= 1 THEN now() + make_interval(secs => $4::int) END, now())
         ON CONFLICT (key) DO UPDATE SET
           failures = CASE WHEN t.window_start < now() - make_interval(secs => $3::int) THEN 1 ELSE t.failures + 1 END,
           window_start = CASE WHEN t.window_start < now() - make_interval(secs => $3::int) THEN now() ELSE t.window_start END,
           locked_until = CASE
             WHEN (CASE WHEN t.window_start < now() - make_interval(secs => $3::int) THEN 1 ELSE t.failures + 1 END) >= $2::int
             THEN now() + make_interval(secs => LEAST($5::int, $4::int * power(2, (CASE WHEN t.window_start < now() - make_interval(secs => $3::int) THEN 1 ELSE t.failures + 1 END) - $2::int))::int)
             ELSE t.locked_until END,
           updated_at = now()
         RETURNING failures, (locked_until IS NOT NULL AND locked_until > now()) AS locked`,
        [key, policy.threshold, policy.windowSeconds, policy.baseDelaySeconds, policy.maxDelaySeconds],
      );
      return onlyRow(result);
    },
    /** `tx`: the transaction of the change this reset belongs to (default: on its own). */
    async reset(key: string, tx: Queryable = db): Promise<void> {
      await tx.query('DELETE FROM login_throttle WHERE key = $1', [key]);
    },
  };
}
