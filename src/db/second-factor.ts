import type { Queryable } from './database.js';

export interface TotpRow extends Record<string, unknown> {
  user_id: string;
  secret_sealed: string;
  confirmed_at: Date | null;
  last_time_step: string | null;
}

export function createSecondFactorStore(db: Queryable) {
  return {
    async findTotp(userId: string): Promise<TotpRow | undefined> {
      const { rows } = await db.query<TotpRow>(
        'SELECT user_id, secret_sealed, confirmed_at, last_time_step::text AS last_time_step FROM user_totp WHERE user_id = $1',
        [userId],
      );
      return rows[0];
    },
    /** A confirmed TOTP factor or a passkey (migrations/0016). */
    async isEnrolled(userId: string): Promise<boolean> {
      const { rows } = await db.query(
        'SELECT 1 FROM user_totp WHERE user_id = $1 AND confirmed_at IS NOT NULL UNION ALL SELECT 1 FROM user_passkeys WHERE user_id = $1 LIMIT 1',
        [userId],
      );
      return rows.length > 0;
    },
    async hasTotp(userId: string): Promise<boolean> {
      const { rows } = await db.query('SELECT 1 FROM user_totp WHERE user_id = $1 AND confirmed_at IS NOT NULL', [userId]);
      return rows.length > 0;
    },
    async enrolledAmong(userIds: readonly string[]): Promise<Set<string>> {
      const { rows } = await db.query<{ user_id: string }>(
        'SELECT user_id FROM user_totp WHERE user_id = ANY($1) AND confirmed_at IS NOT NULL UNION SELECT user_id FROM user_passkeys WHERE user_id = ANY($1)',
        [userIds],
      );
      return new Set(rows.map((row) => row.user_id));
    },
    /** A new, unconfirmed secret; replaces an earlier unconfirmed one, never a confirmed one. */
    async savePendingTotp(userId: string, sealed: string): Promise<boolean> {
      const { rowCount } = await db.query(
        `INSERT INTO user_totp (user_id, secret_sealed) VALUES ($1, $2)
         ON CONFLICT (user_id) DO UPDATE SET secret_sealed = EXCLUDED.secret_sealed, created_at = now(), last_time_step = NULL
         WHERE user_totp.confirmed_at IS NULL`,
        [userId, sealed],
      );
      return rowCount > 0;
    },
    /**
     * Accepts time step `step` for the user at most once: true only for the one caller that moved
     * last_time_step forward. `confirm` also activates a pending factor.
     */
    async acceptTimeStep(userId: string, step: number, options: { confirm: boolean }): Promise<boolean> {
      const { rowCount } = await db.query(
        `UPDATE user_totp SET last_time_step = $2${options.confirm ? ', confirmed_at = COALESCE(confirmed_at, now())' : ''}
          WHERE user_id = $1 AND (last_time_step IS NULL OR last_time_step < $2)
            AND ${options.confirm ? 'TRUE' : 'confirmed_at IS NOT NULL'}`,
        [userId, step],
      );
      return rowCount > 0;
    },
    async replaceRecoveryCodes(userId: string, hashes: readonly string[]): Promise<void> {
      await db.query('DELETE FROM user_recovery_codes WHERE user_id = $1', [userId]);
      await db.query('INSERT INTO user_recovery_codes (user_id, code_hash) SELECT $1, unnest($2::text[])', [userId, hashes]);
    },
    /** Marks a recovery code used; true only for the one caller that used it. */
    async useRecoveryCode(userId: string, hash: string): Promise<boolean> {
      const { rowCount } = await db.query(
        'UPDATE user_recovery_codes SET used_at = now() WHERE user_id = $1 AND code_hash = $2 AND used_at IS NULL',
        [userId, hash],
      );
      return rowCount > 0;
    },
    async remainingRecoveryCodes(userId: string): Promise<number> {
      const { rows } = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM user_recovery_codes WHERE user_id = $1 AND used_at IS NULL', [userId]);
      return rows[0]?.n ?? 0;
    },
    /** Removes every factor (TOTP, passkeys) and the recovery codes; true when there was something to remove. */
    async reset(userId: string): Promise<boolean> {
      const totp = await db.query('DELETE FROM user_totp WHERE user_id = $1', [userId]);
      const passkeys = await db.query('DELETE FROM user_passkeys WHERE user_id = $1', [userId]);
      const codes = await db.query('DELETE FROM user_recovery_codes WHERE user_id = $1', [userId]);
      return totp.rowCount + passkeys.rowCount + codes.rowCount > 0;
    },
  };
}
