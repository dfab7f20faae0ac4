import { onlyRow, type Queryable } from './database.js';
import { reservationSql, reserveResultOf, type Reservation, type ReserveResult, type ThrottleKey } from './login-throttle.js';

export interface UserRow extends Record<string, unknown> {
  id: string;
  seq: string;
  username: string;
  username_normalized: string;
  email: string | null;
  email_verified: boolean;
  name: string | null;
  roles: string[];
  password_hash: string;
  disabled: boolean;
  mfa_required: boolean;
  created_at: Date;
  updated_at: Date;
  password_changed_at: Date;
  /** Whether a confirmed second factor exists (user_totp). */
  mfa_enrolled: boolean;
}

export interface UserFields {
  readonly username: string;
  readonly usernameNormalized: string;
  readonly email: string | null;
  readonly emailVerified: boolean;
  readonly name: string | null;
  readonly roles: readonly string[];
  readonly disabled: boolean;
  readonly mfaRequired: boolean;
}

const COLUMNS =
  'id, seq::text AS seq, username, username_normalized, email, email_verified, name, roles, password_hash, disabled, mfa_required, created_at, updated_at, password_changed_at, ' +
  'EXISTS (SELECT 1 FROM user_totp t WHERE t.user_id = users.id AND t.confirmed_at IS NOT NULL) AS mfa_enrolled';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

function likePrefix(value: string): string {
  return `${value.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
}

export function createUserStore(db: Queryable) {
  return {
    async findById(id: string, options: { forUpdate?: boolean } = {}): Promise<UserRow | undefined> {
      if (!UUID.test(id)) return undefined;
      const { rows } = await db.query<UserRow>(`SELECT ${COLUMNS} FROM users WHERE id = $1${options.forUpdate === true ? ' FOR UPDATE' : ''}`, [id]);
      return rows[0];
    },
    async findByUsername(normalized: string): Promise<UserRow | undefined> {
      const { rows } = await db.query<UserRow>(`SELECT ${COLUMNS} FROM users WHERE username_normalized = $1`, [normalized]);
      return rows[0];
    },
    /**
     * The password step's first statement, in one round trip: the attempt is reserved for
     * `throttle` (see reservationSql: counted before the password is checked, or refused while a
     * key is locked) and the person's row is read, if any. The row is read even when the attempt
     * is refused; the answer then does not depend on it.
     */
    async findForSignIn(normalized: string, throttle: readonly ThrottleKey[]): Promise<{ user: UserRow | undefined } & ReserveResult> {
      const { ctes, params } = reservationSql(throttle, 2);
      const result = await db.query<Partial<UserRow> & { locked_seconds: number; reservations: Reservation[] }>(
        `WITH ${ctes}
         SELECT ${COLUMNS}, reserved.locked_seconds, reserved.reservations
           FROM reserved LEFT JOIN users ON users.username_normalized = $1`,
        [normalized, ...params],
      );
      const { locked_seconds, reservations, ...row } = onlyRow(result);
      return { user: typeof row.id === 'string' ? (row as UserRow) : undefined, ...reserveResultOf({ locked_seconds, reservations }) };
    },
    async list(page: { after: string | undefined; limit: number; usernamePrefix?: string | undefined; emailPrefix?: string | undefined }): Promise<UserRow[]> {
      const params: unknown[] = [page.after ?? '0', page.limit];
      const filters: string[] = [];
      if (page.usernamePrefix !== undefined) {
        params.push(likePrefix(page.usernamePrefix));
        filters.push(`username_normalized LIKE $${params.length}`);
      }
      if (page.emailPrefix !== undefined) {
        params.push(likePrefix(page.emailPrefix.toLowerCase()));
        filters.push(`lower(email) LIKE $${params.length}`);
      }
      // Qualified: a bare `seq` would name the text alias in COLUMNS and sort 10 before 9.
      const { rows } = await db.query<UserRow>(
        `SELECT ${COLUMNS} FROM users WHERE seq > $1::bigint ${filters.map((f) => `AND ${f}`).join(' ')} ORDER BY users.seq LIMIT $2`,
        params,
      );
      return rows;
    },
    /** Undefined when the username is taken. */
    async insert(fields: UserFields, passwordHash: string): Promise<UserRow | undefined> {
      const { rows } = await db.query<UserRow>(
        `INSERT INTO users (username, username_normalized, email, email_verified, name, roles, password_hash, disabled, mfa_required)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (username_normalized) DO NOTHING RETURNING ${COLUMNS}`,
        [fields.username, fields.usernameNormalized, fields.email, fields.emailVerified, fields.name, fields.roles, passwordHash, fields.disabled, fields.mfaRequired],
      );
      return rows[0];
    },
    async update(id: string, fields: UserFields): Promise<UserRow> {
      const result = await db.query<UserRow>(
        `UPDATE users SET username = $2, username_normalized = $3, email = $4, email_verified = $5, name = $6, roles = $7,
           disabled = $8, mfa_required = $9, updated_at = now()
         WHERE id = $1 RETURNING ${COLUMNS}`,
        [id, fields.username, fields.usernameNormalized, fields.email, fields.emailVerified, fields.name, fields.roles, fields.disabled, fields.mfaRequired],
      );
      return onlyRow(result);
    },
    async setPasswordHash(id: string, passwordHash: string, options: { changed: boolean }): Promise<void> {
      await db.query(
        `UPDATE users SET password_hash = $2${options.changed ? ', password_changed_at = now(), updated_at = now()' : ''} WHERE id = $1`,
        [id, passwordHash],
      );
    },
    async delete(id: string): Promise<boolean> {
      if (!UUID.test(id)) return false;
      const { rowCount } = await db.query('DELETE FROM users WHERE id = $1', [id]);
      return rowCount > 0;
    },
  };
}

export type UserStore = ReturnType<typeof createUserStore>;
