import type { Queryable } from './database.js';

/**
 * The pace of device-code polling (RFC 8628 §3.5, migrations/0017). A poll is recorded in one
 * upsert that also decides whether it came too soon, so concurrent polls of one code, on any
 * instance, cannot all slip through: the second of two simultaneous polls is the fast one.
 */
export function createDevicePollStore(db: Queryable) {
  return {
    /**
     * Records a poll of the code with `codeHash`; true when it came sooner than the interval the
     * code's client must keep (less `allowanceSeconds`, for network jitter), in which case the
     * interval grows by `stepSeconds`. The first poll of a code is never too soon.
     */
    async pollTooSoon(codeHash: string, options: { intervalSeconds: number; stepSeconds: number; allowanceSeconds: number; ttlSeconds: number }): Promise<boolean> {
      const { rows } = await db.query<{ too_fast: boolean }>(
        `INSERT INTO device_code_polls AS p (code_hash, polled_at, interval_seconds, expires_at)
         VALUES ($1, now(), $2, now() + make_interval(secs => $5::int))
         ON CONFLICT (code_hash) DO UPDATE SET
           too_fast = p.polled_at + make_interval(secs => p.interval_seconds - $4::double precision) > now(),
           interval_seconds = CASE WHEN p.polled_at + make_interval(secs => p.interval_seconds - $4::double precision) > now()
                                   THEN p.interval_seconds + $3 ELSE p.interval_seconds END,
           polled_at = now()
         RETURNING too_fast`,
        [codeHash, options.intervalSeconds, options.stepSeconds, options.allowanceSeconds, options.ttlSeconds],
      );
      return rows[0]?.too_fast === true;
    },
  };
}
