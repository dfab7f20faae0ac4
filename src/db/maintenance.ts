import type { Queryable } from './database.js';

/**
 * Pruning of expired rows (SPEC §6). Each statement deletes one bounded batch; rows another
 * instance is deleting at the same moment are skipped (FOR UPDATE SKIP LOCKED), so several
 * instances can prune concurrently without waiting on each other.
 */
export function createMaintenanceStore(db: Queryable) {
  /** One batch of the rows of `table` (keyed by `key`) whose `expires_at` has passed, oldest first. */
  async function deleteExpired(table: 'sign_in_code_attempts' | 'passkey_challenges' | 'device_code_polls', key: readonly string[], batch: number): Promise<number> {
    const columns = key.join(', ');
    const { rowCount } = await db.query(
      `DELETE FROM ${table} t USING (
         SELECT ${columns} FROM ${table} WHERE expires_at < now() ORDER BY expires_at LIMIT $1 FOR UPDATE SKIP LOCKED
       ) expired
       WHERE ${key.map((column) => `t.${column} = expired.${column}`).join(' AND ')}`,
      [batch],
    );
    return rowCount;
  }

  return {
    /** Expired oidc-provider models (sessions, interactions, codes, grants, refresh tokens). */
    async pruneExpiredModels(batch: number): Promise<number> {
      const { rowCount } = await db.query(
        `DELETE FROM oidc_models o USING (
           SELECT model, id FROM oidc_models WHERE expires_at < now() ORDER BY expires_at LIMIT $1 FOR UPDATE SKIP LOCKED
         ) expired
         WHERE o.model = expired.model AND o.id = expired.id`,
        [batch],
      );
      return rowCount;
    },
    /** Audit events past the retention period (the only way audit rows are ever deleted). */
    async pruneAuditEvents(retentionDays: number, batch: number): Promise<number> {
      const { rowCount } = await db.query(
        `DELETE FROM audit_events a USING (
           SELECT id FROM audit_events WHERE occurred_at < now() - make_interval(days => $1::int)
            ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED
         ) old
         WHERE a.id = old.id`,
        [retentionDays, batch],
      );
      return rowCount;
    },
    /** Throttle counters whose window has passed and which hold no lock. */
    async pruneThrottleRows(windowSeconds: number, batch: number): Promise<number> {
      const { rowCount } = await db.query(
        `DELETE FROM login_throttle t USING (
           SELECT key FROM login_throttle
            WHERE updated_at < now() - make_interval(secs => $1::int) AND (locked_until IS NULL OR locked_until < now())
            LIMIT $2 FOR UPDATE SKIP LOCKED
         ) stale
         WHERE t.key = stale.key`,
        [windowSeconds, batch],
      );
      return rowCount;
    },
    /** Second-factor attempts whose interaction has expired. */
    pruneCodeAttempts: (batch: number) => deleteExpired('sign_in_code_attempts', ['attempt_id'], batch),
    /** Passkey challenges never answered (migrations/0016). */
    prunePasskeyChallenges: (batch: number) => deleteExpired('passkey_challenges', ['interaction_uid', 'ceremony'], batch),
    /** Poll pacing of device codes that have expired (migrations/0017). */
    pruneDevicePolls: (batch: number) => deleteExpired('device_code_polls', ['code_hash'], batch),
    /** Request rate-limit counters whose window ended more than `windowSeconds` ago. */
    async pruneRequestRateLimits(windowSeconds: number, batch: number): Promise<number> {
      const { rowCount } = await db.query(
        `DELETE FROM request_rate_limits r USING (
           SELECT key FROM request_rate_limits
            WHERE window_start < now() - make_interval(secs => 2 * $1::int)
            LIMIT $2 FOR UPDATE SKIP LOCKED
         ) stale
         WHERE r.key = stale.key`,
        [windowSeconds, batch],
      );
      return rowCount;
    },
  };
}
