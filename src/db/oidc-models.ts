import { jsonParam, type Queryable } from './database.js';

/** Rows of oidc_models: every oidc-provider model except Client, keyed by (model, id). */

export interface StoredModel {
  readonly payload: Record<string, unknown>;
  readonly consumed: boolean;
}

interface ModelRow extends Record<string, unknown> {
  payload: Record<string, unknown>;
  consumed: boolean;
}

const LIVE = '(expires_at IS NULL OR expires_at > now())';

/** A write to oidc_models held back until its request commits (src/db/request-writes.ts). */
export type ModelWrite =
  | {
      readonly kind: 'upsert';
      readonly model: string;
      readonly id: string;
      /** The payload's JSON, checked storable (jsonParam) when the write was made. */
      readonly json: string;
      readonly payload: Record<string, unknown>;
      readonly expiresInSeconds: number | undefined;
    }
  | {
      readonly kind: 'destroy';
      readonly model: string;
      readonly id: string;
      /** The row was stored before this request: deleting nothing means another request spent it first. */
      readonly mustExist: boolean;
    };

/** The indexed columns upsert and applyWrites copy from a payload. */
function indexedColumns(payload: Record<string, unknown>) {
  const str = (key: string) => (typeof payload[key] === 'string' ? payload[key] : null);
  return { grantId: str('grantId'), clientId: str('clientId'), accountId: str('accountId'), uid: str('uid'), userCode: str('userCode') };
}

export function createOidcModelStore(db: Queryable) {
  /** `expiredToo`: also a row past its expiry that pruning has not removed yet. */
  async function findBy(column: 'id' | 'uid' | 'user_code', model: string, value: string, expiredToo = false): Promise<StoredModel | undefined> {
    const { rows } = await db.query<ModelRow>(
      `SELECT payload, consumed_at IS NOT NULL AS consumed FROM oidc_models WHERE model = $1 AND ${column} = $2${expiredToo ? '' : ` AND ${LIVE}`} LIMIT 1`,
      [model, value],
    );
    return rows[0];
  }

  return {
    async upsert(model: string, id: string, payload: Record<string, unknown>, expiresInSeconds: number | undefined): Promise<void> {
      const columns = indexedColumns(payload);
      await db.query(
        `INSERT INTO oidc_models (model, id, payload, grant_id, client_id, account_id, uid, user_code, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, CASE WHEN $9::double precision IS NULL THEN NULL ELSE now() + make_interval(secs => $9::double precision) END)
         ON CONFLICT (model, id) DO UPDATE SET
           payload = EXCLUDED.payload, grant_id = EXCLUDED.grant_id, client_id = EXCLUDED.client_id, account_id = EXCLUDED.account_id,
           uid = EXCLUDED.uid, user_code = EXCLUDED.user_code, expires_at = EXCLUDED.expires_at`,
        [model, id, jsonParam(payload), columns.grantId, columns.clientId, columns.accountId, columns.uid, columns.userCode, expiresInSeconds ?? null],
      );
    },
    /**
     * Several upserts and deletes in one statement (so one commit), each as `upsert` and `destroy`
     * would make it. At most one write per (model, id): a statement cannot change a row twice.
     * Resolves the deletes that found no row (of those marked mustExist): a concurrent request
     * deleted it and committed first (a second DELETE waits for the first's row lock, then finds
     * nothing). Then none of the upserts is made: what the request would store (a code, a
     * session) is not stored, even outside a transaction.
     */
    async applyWrites(writes: readonly ModelWrite[]): Promise<{ readonly model: string; readonly id: string }[]> {
      const upserts = writes.flatMap((w) =>
        w.kind === 'upsert' ? [{ model: w.model, id: w.id, payload: w.json, ttl: w.expiresInSeconds ?? null, ...indexedColumns(w.payload) }] : [],
      );
      const destroys = writes.filter((w) => w.kind === 'destroy');
      const spent = destroys.filter((w) => w.mustExist);
      // Each payload is already JSON text checked by jsonParam; the list around them only adds plain strings and numbers.
      const { rows } = await db.query<{ model: string; id: string }>(
        `WITH destroyed AS (
           DELETE FROM oidc_models WHERE (model, id) IN (SELECT * FROM unnest($1::text[], $2::text[])) RETURNING model, id
         ), written AS (
         INSERT INTO oidc_models (model, id, payload, grant_id, client_id, account_id, uid, user_code, expires_at)
         SELECT w.model, w.id, w.payload::jsonb, w."grantId", w."clientId", w."accountId", w.uid, w."userCode",
                CASE WHEN w.ttl IS NULL THEN NULL ELSE now() + make_interval(secs => w.ttl) END
           FROM jsonb_to_recordset($3::jsonb) AS w(model text, id text, payload text, ttl double precision, "grantId" text, "clientId" text, "accountId" text, uid text, "userCode" text)
          WHERE (SELECT count(*) FROM destroyed WHERE (destroyed.model, destroyed.id) IN (SELECT * FROM unnest($4::text[], $5::text[]))) = cardinality($4::text[])
         ON CONFLICT (model, id) DO UPDATE SET
           payload = EXCLUDED.payload, grant_id = EXCLUDED.grant_id, client_id = EXCLUDED.client_id, account_id = EXCLUDED.account_id,
           uid = EXCLUDED.uid, user_code = EXCLUDED.user_code, expires_at = EXCLUDED.expires_at
         RETURNING 1
         )
         SELECT model, id FROM destroyed`,
        [destroys.map((w) => w.model), destroys.map((w) => w.id), jsonParam(upserts), spent.map((w) => w.model), spent.map((w) => w.id)],
      );
      const deleted = new Set(rows.map((row) => `${row.model}\u0000${row.id}`));
      return spent.filter((w) => !deleted.has(`${w.model}\u0000${w.id}`)).map((w) => ({ model: w.model, id: w.id }));
    },
    /**
     * Stores a row unless a live one with that id exists; true when this call stored it. One
     * statement: of concurrent callers (on any instance) exactly one wins. An expired row not yet
     * pruned does not count.
     */
    async insertOnce(model: string, id: string, payload: Record<string, unknown>, expiresInSeconds: number): Promise<boolean> {
      const { rowCount } = await db.query(
        `INSERT INTO oidc_models (model, id, payload, expires_at) VALUES ($1, $2, $3, now() + make_interval(secs => $4::double precision))
         ON CONFLICT (model, id) DO UPDATE SET payload = EXCLUDED.payload, expires_at = EXCLUDED.expires_at, consumed_at = NULL
           WHERE oidc_models.expires_at IS NOT NULL AND oidc_models.expires_at <= now()`,
        [model, id, jsonParam(payload), expiresInSeconds],
      );
      return rowCount === 1;
    },
    find: (model: string, id: string, expiredToo = false) => findBy('id', model, id, expiredToo),
    findByUid: (model: string, uid: string) => findBy('uid', model, uid),
    findByUserCode: (model: string, userCode: string, expiredToo = false) => findBy('user_code', model, userCode, expiredToo),
    async consume(model: string, id: string): Promise<void> {
      await db.query('UPDATE oidc_models SET consumed_at = now() WHERE model = $1 AND id = $2 AND consumed_at IS NULL', [model, id]);
    },
    /** Marks a live row consumed; true for exactly one caller, however many race (and on any instance). */
    async consumeOnce(model: string, id: string): Promise<boolean> {
      const { rowCount } = await db.query(`UPDATE oidc_models SET consumed_at = now() WHERE model = $1 AND id = $2 AND consumed_at IS NULL AND ${LIVE}`, [model, id]);
      return rowCount === 1;
    },
    async destroy(model: string, id: string): Promise<void> {
      await db.query('DELETE FROM oidc_models WHERE model = $1 AND id = $2', [model, id]);
    },
    /** A disabled or deleted person's sessions, grants, codes and refresh tokens (SPEC §5). */
    async revokeByAccountId(accountId: string): Promise<number> {
      const { rowCount } = await db.query('DELETE FROM oidc_models WHERE account_id = $1', [accountId]);
      return rowCount;
    },
    /** A deleted client's grants, codes and refresh tokens go with it (SPEC §5). */
    async revokeByClientId(clientId: string): Promise<number> {
      const { rowCount } = await db.query('DELETE FROM oidc_models WHERE client_id = $1', [clientId]);
      return rowCount;
    },
    /**
     * The rows of one model issued from a grant (oidc-provider calls this per token model). Scoped
     * to the model: an Interaction in flight also carries the grant id, and must survive the
     * grant's revocation (ending a session mid-sign-in when the person switches account).
     */
    async revokeByGrantId(model: string, grantId: string): Promise<void> {
      await db.query('DELETE FROM oidc_models WHERE model = $1 AND grant_id = $2', [model, grantId]);
    },
  };
}

export type OidcModelStore = ReturnType<typeof createOidcModelStore>;
