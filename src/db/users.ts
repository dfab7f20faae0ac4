import { onlyRow, type Queryable } from './database.js';
import { ensureThrottleRows, reservationSql, reserveResultOf, type Reservation, type ReserveResult, type ThrottleKey } from './login-throttle.js';

export interface UserRow extends Record<string, unknown> {
  id: string;
  seq: string;
  username: string;
  username_normalized: string;
  /** Null only for a row created before migrations/0009 whose look-alike an older row holds (see fillMissingSkeletons). */
  username_skeleton: string | null;
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
  /** Whether a confirmed second factor exists (user_totp, or a passkey in user_passkeys). */
  mfa_enrolled: boolean;
  /** How many passkeys they have (user_passkeys). */
  passkey_count: number;
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
  'id, seq::text AS seq, username, username_normalized, username_skeleton, email, email_verified, name, roles, password_hash, disabled, mfa_required, created_at, updated_at, password_changed_at, ' +
  '(EXISTS (SELECT 1 FROM user_totp t WHERE t.user_id = users.id AND t.confirmed_at IS NOT NULL) OR EXISTS (SELECT 1 FROM user_passkeys p WHERE p.user_id = users.id)) AS mfa_enrolled, ' +
  // One index probe (user_passkeys_user_id_idx) a row: cheap enough for every read of a person.
  '(SELECT count(*)::int FROM user_passkeys p WHERE p.user_id = users.id) AS passkey_count';

/** The unique index a refused write hit: the normalised name, or the look-alike skeleton. */
export type UsernameConstraint = 'username' | 'skeleton';

/** SQLSTATE 23505 on one of the two username indexes, else undefined. */
export function usernameConstraintViolated(error: unknown): UsernameConstraint | undefined {
  const { code, constraint } = (error ?? {}) as { code?: unknown; constraint?: unknown };
  if (code !== '23505') return undefined;
  return constraint === 'users_username_skeleton_key' ? 'skeleton' : 'username';
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

function likePrefix(value: string): string {
  return `${value.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
}

/** The profile columns insert and update write, in the order both statements name them. */
function profileParams(fields: UserFields, usernameSkeleton: string | null): unknown[] {
  return [
    fields.username,
    fields.usernameNormalized,
    usernameSkeleton,
    fields.email,
    fields.emailVerified,
    fields.name,
    fields.roles,
    fields.disabled,
    fields.mfaRequired,
  ];
}

export function createUserStore(db: Queryable) {
  return {
    async findById(id: string, options: { forUpdate?: boolean } = {}): Promise<UserRow | undefined> {
      if (!UUID.test(id)) return undefined;
      const { rows } = await db.query<UserRow>(`SELECT ${COLUMNS} FROM users WHERE id = $1${options.forUpdate === true ? ' FOR UPDATE' : ''}`, [id]);
      return rows[0];
    },
    /** People whose email is `email` (compared case-insensitively), for linking by verified email (SPEC §10). */
    async findByEmail(email: string, options: { forUpdate?: boolean } = {}): Promise<UserRow[]> {
      const { rows } = await db.query<UserRow>(`SELECT ${COLUMNS} FROM users WHERE lower(email) = lower($1) ORDER BY seq LIMIT 2${options.forUpdate === true ? ' FOR UPDATE' : ''}`, [email]);
      return rows;
    },
    async findByUsername(normalized: string): Promise<UserRow | undefined> {
      const { rows } = await db.query<UserRow>(`SELECT ${COLUMNS} FROM users WHERE username_normalized = $1`, [normalized]);
      return rows[0];
    },
    /**
     * The password step (after ensureThrottleRows), in one round trip: the attempt is reserved for
     * `throttle` (see reservationSql: counted before the password is checked, or refused while a
     * key is locked) and the person's row is read, if any. The row is read even when the attempt
     * is refused; the answer then does not depend on it.
     */
    async findForSignIn(normalized: string, throttle: readonly ThrottleKey[]): Promise<{ user: UserRow | undefined } & ReserveResult> {
      await ensureThrottleRows(db, throttle);
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
    /**
     * Whether another user (not `exceptId`) has this normalised username, or a look-alike (the same
     * usernameSkeleton): 'username' first when both. One round trip over the two unique indexes.
     */
    async findUsernameConflict(normalized: string, skeleton: string, exceptId?: string): Promise<UsernameConstraint | undefined> {
      const { rows } = await db.query<{ same_name: boolean }>(
        `SELECT username_normalized = $1 AS same_name FROM users
          WHERE (username_normalized = $1 OR username_skeleton = $2) AND id IS DISTINCT FROM $3::uuid
          ORDER BY same_name DESC LIMIT 1`,
        [normalized, skeleton, exceptId ?? null],
      );
      const row = rows[0];
      if (row === undefined) return undefined;
      return row.same_name ? 'username' : 'skeleton';
    },
    /** How many there are, for the console's overview (a count(*): cheap at tens of thousands of rows). */
    async count(): Promise<number> {
      const { rows } = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM users');
      return rows[0]?.n ?? 0;
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
    /**
     * `usernameSkeleton` is usernameSkeleton(username) from src/accounts (NULL: filled at the next start).
     * Undefined when the username or a look-alike is taken: no conflict target, so the unique index
     * on the normalised name and the one on the skeleton both answer (a concurrent insert waits for
     * the other's commit, then does nothing).
     */
    async insert(fields: UserFields, passwordHash: string, usernameSkeleton: string | null = null): Promise<UserRow | undefined> {
      const { rows } = await db.query<UserRow>(
        `INSERT INTO users (username, username_normalized, username_skeleton, email, email_verified, name, roles, disabled, mfa_required, password_hash)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT DO NOTHING RETURNING ${COLUMNS}`,
        [...profileParams(fields, usernameSkeleton), passwordHash],
      );
      return rows[0];
    },
    /** Throws SQLSTATE 23505 (see usernameConstraintViolated) when the new username or a look-alike is taken. */
    async update(id: string, fields: UserFields, usernameSkeleton: string | null): Promise<UserRow> {
      const result = await db.query<UserRow>(
        `UPDATE users SET username = $2, username_normalized = $3, username_skeleton = $4, email = $5, email_verified = $6, name = $7, roles = $8,
           disabled = $9, mfa_required = $10, updated_at = now()
         WHERE id = $1 RETURNING ${COLUMNS}`,
        [id, ...profileParams(fields, usernameSkeleton)],
      );
      return onlyRow(result);
    },
    /**
     * Gives rows without a skeleton (created before migrations/0009, or by an older instance during a
     * rolling upgrade) theirs, oldest first, in batches. A row whose skeleton an older row holds keeps
     * NULL, so the older account keeps the name and the upgrade never fails on existing look-alikes;
     * those rows are returned (ids only, for the start-up log). `skeletonOf` is usernameSkeleton from
     * src/accounts. Not inside a transaction: a concurrent create can fail one batch's statement.
     */
    async fillMissingSkeletons(
      skeletonOf: (username: string) => string,
      batchSize = 1000,
    ): Promise<{ filled: number; lookAlikes: { count: number; ids: string[] } }> {
      let filled = 0;
      let after = '0';
      for (;;) {
        const { rows } = await db.query<{ id: string; seq: string; username: string }>(
          'SELECT id, seq::text AS seq, username FROM users WHERE username_skeleton IS NULL AND seq > $1::bigint ORDER BY seq LIMIT $2',
          [after, batchSize],
        );
        if (rows.length === 0) break;
        after = rows.at(-1)!.seq;
        // Within a batch too the oldest keeps the skeleton: one statement would not see its own rows.
        const oldest = new Map<string, string>();
        for (const row of rows) {
          const skeleton = skeletonOf(row.username);
          if (!oldest.has(skeleton)) oldest.set(skeleton, row.id);
        }
        const fill = (ids: readonly string[], skeletons: readonly string[]) =>
          db.query(
            `UPDATE users SET username_skeleton = v.skeleton FROM unnest($1::uuid[], $2::text[]) AS v(id, skeleton)
              WHERE users.id = v.id AND users.username_skeleton IS NULL
                AND NOT EXISTS (SELECT 1 FROM users other WHERE other.username_skeleton = v.skeleton)`,
            [ids, skeletons],
          );
        try {
          filled += (await fill([...oldest.values()], [...oldest.keys()])).rowCount;
        } catch (error) {
          if (usernameConstraintViolated(error) !== 'skeleton') throw error;
          // A user created meanwhile took one of these skeletons: row by row, so only that row stays NULL.
          for (const [skeleton, id] of oldest) {
            filled += await fill([id], [skeleton]).then(
              (result) => result.rowCount,
              (rowError: unknown) => {
                if (usernameConstraintViolated(rowError) === 'skeleton') return 0;
                throw rowError;
              },
            );
          }
        }
      }
      const { rows } = await db.query<{ id: string; count: number }>(
        'SELECT id, count(*) OVER ()::int AS count FROM users WHERE username_skeleton IS NULL ORDER BY seq LIMIT 20',
      );
      return { filled, lookAlikes: { count: rows[0]?.count ?? 0, ids: rows.map((row) => row.id) } };
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
