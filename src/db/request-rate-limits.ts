import type { Queryable } from './database.js';

export interface WindowCount {
  /** Requests counted in the current window, this one included. */
  readonly hits: number;
  /** Whole seconds until the window ends (at least 1). */
  readonly secondsLeft: number;
}

/**
 * Fixed-window request counters in PostgreSQL, keyed by a caller-chosen string. The window is
 * aligned on the database clock (date_bin), so every instance counts into the same window.
 */
export function createRequestRateLimitStore(db: Queryable) {
  return {
    /** Counts one request for `key` in the current `windowSeconds` window: one atomic upsert. */
    async hit(key: string, windowSeconds: number): Promise<WindowCount> {
      const { rows } = await db.query<{ hits: number; seconds_left: number }>(
        `INSERT INTO request_rate_limits AS r (key, window_start, hits)
         VALUES ($1, date_bin(make_interval(secs => $2::int), now(), TIMESTAMPTZ 'epoch'), 1)
         ON CONFLICT (key) DO UPDATE
           SET hits = CASE WHEN r.window_start = EXCLUDED.window_start THEN r.hits + 1 ELSE 1 END,
               window_start = EXCLUDED.window_start
         RETURNING hits,
           greatest(1, ceil(extract(epoch FROM window_start + make_interval(secs => $2::int) - now())))::int AS seconds_left`,
        [key, windowSeconds],
      );
      const row = rows[0]!;
      return { hits: row.hits, secondsLeft: row.seconds_left };
    },
    /**
     * Gives back one hit counted in the current window, for limits that count only some outcomes
     * but must take the hit before the outcome is known (so concurrent requests cannot overrun them).
     */
    async refund(key: string, windowSeconds: number): Promise<void> {
      await db.query(
        `UPDATE request_rate_limits SET hits = hits - 1
          WHERE key = $1 AND hits > 0 AND window_start = date_bin(make_interval(secs => $2::int), now(), TIMESTAMPTZ 'epoch')`,
        [key, windowSeconds],
      );
    },
  };
}
