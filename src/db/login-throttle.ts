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

const LOCKED = '(locked_until IS NOT NULL AND locked_until > now()) AS locked';

/**
 * Counts one failure for a key: a new window after the old one ran out; at the threshold and past
 * it, a lock of the base delay doubling with each further failure, up to the cap. `$` names the
 * statement's placeholders for 1 key, 2 threshold, 3 window, 4 base delay, 5 cap (seconds).
 */
function failureUpsertSql($: (i: number) => string): string {
  const expired = `t.window_start < now() - make_interval(secs => ${$(3)}::int)`;
  const failures = `(CASE WHEN ${expired} THEN 1 ELSE t.failures + 1 END)`;
  return `INSERT INTO login_throttle AS t (key, failures, window_start, locked_until, updated_at)
         VALUES (${$(1)}, 1, now(), CASE WHEN ${$(2)}::int <= 1 THEN now() + make_interval(secs => ${$(4)}::int) END, now())
         ON CONFLICT (key) DO UPDATE SET
           failures = ${failures},
           window_start = CASE WHEN ${expired} THEN now() ELSE t.window_start END,
           locked_until = CASE
             WHEN ${failures} >= ${$(2)}::int
             THEN now() + make_interval(secs => LEAST(${$(5)}::int, ${$(4)}::int * power(2, ${failures} - ${$(2)}::int))::int)
             ELSE t.locked_until END,
           updated_at = now()`;
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
    /**
     * Counts one failure for each key (distinct keys), each by its own policy, in one statement;
     * returns, in order, the failures in the window and whether the key is now locked.
     */
    async recordFailures(entries: readonly { readonly key: string; readonly policy: ThrottlePolicy }[]): Promise<{ failures: number; locked: boolean }[]> {
      if (new Set(entries.map((entry) => entry.key)).size !== entries.length) throw new Error('recordFailures: keys must be distinct');
      if (entries.length === 0) return [];
      // One atomic upsert per key, as data-modifying CTEs of one statement.
      const counted = entries.map((_, k) => `c${k} AS (${failureUpsertSql((i) => `$${k * 5 + i}`)} RETURNING ${k} AS position, failures, ${LOCKED})`);
      const { rows } = await db.query<{ position: number; failures: number; locked: boolean }>(
        `WITH ${counted.join(', ')} ${entries.map((_, k) => `SELECT * FROM c${k}`).join(' UNION ALL ')}`,
        entries.flatMap(({ key, policy }) => [key, policy.threshold, policy.windowSeconds, policy.baseDelaySeconds, policy.maxDelaySeconds]),
      );
      if (rows.length !== entries.length) throw new Error(`recordFailures: expected ${entries.length} rows, got ${rows.length}`);
      return rows.sort((a, b) => a.position - b.position).map(({ failures, locked }) => ({ failures, locked }));
    },
    /** `tx`: the transaction of the change this reset belongs to (default: on its own). */
    async reset(key: string, tx: Queryable = db): Promise<void> {
      await tx.query('DELETE FROM login_throttle WHERE key = $1', [key]);
    },
  };
}
