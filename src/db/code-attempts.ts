import type { Queryable } from './database.js';

/**
 * Second-factor tries per sign-in attempt (migrations/0006). A try is taken by one atomic
 * update that refuses past the limit, before the code is checked: concurrent posts to one
 * interaction, on any instance, get no more tries than sequential ones.
 */
export function createCodeAttemptStore(db: Queryable) {
  return {
    /** A new attempt (after a correct password), alive as long as its interaction. */
    async open(attemptId: string, accountId: string, ttlSeconds: number): Promise<void> {
      await db.query('INSERT INTO sign_in_code_attempts (attempt_id, account_id, expires_at) VALUES ($1, $2, now() + make_interval(secs => $3::int))', [
        attemptId,
        accountId,
        ttlSeconds,
      ]);
    },
    /** Takes one try; returns how many the attempt has used with it, or undefined when none is left (or the attempt is unknown or expired). */
    async take(attemptId: string, accountId: string, limit: number): Promise<number | undefined> {
      const { rows } = await db.query<{ codes: number }>(
        `UPDATE sign_in_code_attempts SET codes = codes + 1
          WHERE attempt_id = $1 AND account_id = $2 AND codes < $3 AND expires_at > now() RETURNING codes`,
        [attemptId, accountId, limit],
      );
      return rows[0]?.codes;
    },
    async close(attemptId: string, tx: Queryable = db): Promise<void> {
      await tx.query('DELETE FROM sign_in_code_attempts WHERE attempt_id = $1', [attemptId]);
    },
  };
}
