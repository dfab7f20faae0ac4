import type { Queryable } from './database.js';

/** A registered passkey (migrations/0016). */
export interface PasskeyRow extends Record<string, unknown> {
  credential_id: string;
  user_id: string;
  public_key: Buffer;
  /** bigint in the table; counters are 32-bit unsigned (WebAuthn §6.1), so a number is exact. */
  sign_count: number;
  transports: string[];
  backup_eligible: boolean;
  backed_up: boolean;
  name: string;
  created_at: Date;
  last_used_at: Date | null;
}

export type PasskeyCeremony = 'register' | 'second_factor' | 'sign_in';

export interface NewPasskey {
  readonly credentialId: string;
  readonly userId: string;
  readonly publicKey: Uint8Array;
  readonly signCount: number;
  readonly transports: readonly string[];
  readonly backupEligible: boolean;
  readonly backedUp: boolean;
  readonly name: string;
}

const COLUMNS = 'credential_id, user_id, public_key, sign_count::int AS sign_count, transports, backup_eligible, backed_up, name, created_at, last_used_at';

export function createPasskeyStore(db: Queryable) {
  return {
    async find(credentialId: string): Promise<PasskeyRow | undefined> {
      const { rows } = await db.query<PasskeyRow>(`SELECT ${COLUMNS} FROM user_passkeys WHERE credential_id = $1`, [credentialId]);
      return rows[0];
    },
    async listForUser(userId: string): Promise<PasskeyRow[]> {
      const { rows } = await db.query<PasskeyRow>(`SELECT ${COLUMNS} FROM user_passkeys WHERE user_id = $1 ORDER BY created_at, credential_id`, [userId]);
      return rows;
    },
    async hasAny(userId: string): Promise<boolean> {
      const { rows } = await db.query('SELECT 1 FROM user_passkeys WHERE user_id = $1 LIMIT 1', [userId]);
      return rows.length > 0;
    },
    /** The person's passkey with this credential id (another person's is not found). */
    async findForUser(userId: string, credentialId: string, options: { forUpdate?: boolean } = {}): Promise<PasskeyRow | undefined> {
      const { rows } = await db.query<PasskeyRow>(
        `SELECT ${COLUMNS} FROM user_passkeys WHERE user_id = $1 AND credential_id = $2${options.forUpdate === true ? ' FOR UPDATE' : ''}`,
        [userId, credentialId],
      );
      return rows[0];
    },
    /** How many passkeys the person has. */
    async countForUser(userId: string): Promise<number> {
      const { rows } = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM user_passkeys WHERE user_id = $1', [userId]);
      return rows[0]?.n ?? 0;
    },
    /** Removes the person's passkey; the removed row, or undefined when they have none with this id. */
    async remove(userId: string, credentialId: string): Promise<PasskeyRow | undefined> {
      const { rows } = await db.query<PasskeyRow>(`DELETE FROM user_passkeys WHERE user_id = $1 AND credential_id = $2 RETURNING ${COLUMNS}`, [userId, credentialId]);
      return rows[0];
    },
    /** Gives the person's passkey a new name; false when they have none with this id. */
    async rename(userId: string, credentialId: string, name: string): Promise<boolean> {
      const { rowCount } = await db.query('UPDATE user_passkeys SET name = $3 WHERE user_id = $1 AND credential_id = $2', [userId, credentialId, name]);
      return rowCount > 0;
    },
    /** False when the credential id is registered already (to anyone). */
    async insert(passkey: NewPasskey): Promise<boolean> {
      const { rowCount } = await db.query(
        `INSERT INTO user_passkeys (credential_id, user_id, public_key, sign_count, transports, backup_eligible, backed_up, name)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (credential_id) DO NOTHING`,
        [passkey.credentialId, passkey.userId, Buffer.from(passkey.publicKey), passkey.signCount, passkey.transports, passkey.backupEligible, passkey.backedUp, passkey.name],
      );
      return rowCount > 0;
    },
    /**
     * Records a verified assertion. The counter only moves forward, in one statement: of two
     * assertions with the same counter only one is accepted (WebAuthn §6.1.1). Authenticators
     * without a counter always send 0, and 0 stays accepted while the stored one is 0.
     */
    async recordUse(credentialId: string, signCount: number, backedUp: boolean): Promise<boolean> {
      const { rowCount } = await db.query(
        `UPDATE user_passkeys SET sign_count = $2, backed_up = $3, last_used_at = now()
          WHERE credential_id = $1 AND (sign_count < $2 OR (sign_count = 0 AND $2 = 0))`,
        [credentialId, signCount, backedUp],
      );
      return rowCount > 0;
    },
    /** A new challenge for this interaction and ceremony, replacing an earlier one. */
    async saveChallenge(interactionUid: string, ceremony: PasskeyCeremony, challenge: string, userId: string | null, ttlSeconds: number): Promise<void> {
      await db.query(
        `INSERT INTO passkey_challenges (interaction_uid, ceremony, challenge, user_id, expires_at)
         VALUES ($1, $2, $3, $4, now() + make_interval(secs => $5::int))
         ON CONFLICT (interaction_uid, ceremony) DO UPDATE SET challenge = EXCLUDED.challenge, user_id = EXCLUDED.user_id, expires_at = EXCLUDED.expires_at`,
        [interactionUid, ceremony, challenge, userId, ttlSeconds],
      );
    },
    /**
     * Takes the challenge (single use: whoever deletes it has it); undefined when there is none or
     * it has expired (it is deleted either way).
     */
    async takeChallenge(interactionUid: string, ceremony: PasskeyCeremony): Promise<{ challenge: string; userId: string | null } | undefined> {
      const { rows } = await db.query<{ challenge: string; user_id: string | null; fresh: boolean }>(
        'DELETE FROM passkey_challenges WHERE interaction_uid = $1 AND ceremony = $2 RETURNING challenge, user_id, expires_at > now() AS fresh',
        [interactionUid, ceremony],
      );
      const row = rows[0];
      return row?.fresh === true ? { challenge: row.challenge, userId: row.user_id } : undefined;
    },
  };
}
