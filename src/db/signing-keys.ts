import type { JsonWebKey } from 'node:crypto';
import { onlyRow, type Queryable } from './database.js';

/**
 * next: published, not yet signing (the next rotation makes it active); active: signs; retired:
 * published until `publish_until` for the tokens it signed; revoked: gone from the JWKS at once.
 */
export type SigningKeyStatus = 'next' | 'active' | 'retired' | 'revoked';

export interface SigningKeyRow extends Record<string, unknown> {
  kid: string;
  alg: string;
  status: SigningKeyStatus;
  public_jwk: JsonWebKey;
  private_jwk_sealed?: string;
  created_at: Date;
  retired_at: Date | null;
  publish_until: Date | null;
  revoked_at: Date | null;
}

export interface NewSigningKey {
  readonly kid: string;
  readonly alg: string;
  readonly publicJwk: JsonWebKey;
  readonly privateSealed: string;
}

// Arbitrary constant (beside the migrator's): serialises every change to the key set.
const KEY_CHANGE_LOCK = 7_270_411_101;

const COLUMNS = 'kid, alg, status, public_jwk, created_at, retired_at, publish_until, revoked_at';
// What the JWKS publishes. A retired key with no publish_until predates that column: kept.
const PUBLISHED = "(status IN ('next', 'active') OR (status = 'retired' AND (publish_until IS NULL OR publish_until > now())))";
// What the provider holds: everything published except next keys, which must not sign yet.
const SIGNING = "(status = 'active' OR (status = 'retired' AND (publish_until IS NULL OR publish_until > now())))";

export function createSigningKeyStore(db: Queryable) {
  return {
    /**
     * Takes the key-change lock until the transaction ends, so rotations and revocations on any
     * instance run one after another and each sees the previous one's result. Call in a transaction.
     */
    async lockChanges(): Promise<void> {
      await db.query('SELECT pg_advisory_xact_lock($1)', [KEY_CHANGE_LOCK]);
    },
    /** Keys the JWKS publishes: active and next keys, and retired ones until their tokens expire. */
    async listPublished(): Promise<SigningKeyRow[]> {
      const { rows } = await db.query<SigningKeyRow>(
        `SELECT ${COLUMNS} FROM signing_keys WHERE ${PUBLISHED}
          ORDER BY (status = 'active') DESC, created_at DESC, kid`,
      );
      return rows;
    },
    /** Keys the provider holds, with their private halves: active first, then retired ones still published. */
    async listSigning(): Promise<SigningKeyRow[]> {
      const { rows } = await db.query<SigningKeyRow>(
        `SELECT ${COLUMNS}, private_jwk_sealed FROM signing_keys WHERE ${SIGNING}
          ORDER BY (status = 'active') DESC, created_at DESC, kid`,
      );
      return rows;
    },
    /** Every key, newest first, with whether it is still published (for the admin API). */
    async listAll(page: { before: string | undefined; limit: number }): Promise<(SigningKeyRow & { published: boolean })[]> {
      const { rows } = await db.query<SigningKeyRow & { published: boolean }>(
        `SELECT ${COLUMNS}, ${PUBLISHED} AS published
           FROM signing_keys
          WHERE $1::text IS NULL OR (created_at, kid) < (SELECT created_at, kid FROM signing_keys WHERE kid = $1)
          ORDER BY created_at DESC, kid DESC LIMIT $2`,
        [page.before ?? null, page.limit],
      );
      return rows;
    },
    /** Changes whenever the published key set or its signers change; cheap enough to poll. */
    async fingerprint(): Promise<string> {
      const { rows } = await db.query<{ fingerprint: string | null }>(
        `SELECT string_agg(kid || ':' || status, ',' ORDER BY kid) AS fingerprint FROM signing_keys WHERE ${PUBLISHED}`,
      );
      return rows[0]?.fingerprint ?? '';
    },
    async find(kid: string): Promise<SigningKeyRow | undefined> {
      const { rows } = await db.query<SigningKeyRow>(`SELECT ${COLUMNS} FROM signing_keys WHERE kid = $1`, [kid]);
      return rows[0];
    },
    /** One key, locked for the rest of the transaction. */
    async findForUpdate(kid: string): Promise<SigningKeyRow | undefined> {
      const { rows } = await db.query<SigningKeyRow>(`SELECT ${COLUMNS} FROM signing_keys WHERE kid = $1 FOR UPDATE`, [kid]);
      return rows[0];
    },
    /** Retires the active key of `alg`, kept published for `publishForSeconds`. Call in a transaction. */
    async retireActive(alg: string, publishForSeconds: number): Promise<void> {
      await db.query(
        `UPDATE signing_keys SET status = 'retired', retired_at = now(), publish_until = now() + make_interval(secs => $2::double precision)
          WHERE alg = $1 AND status = 'active'`,
        [alg, publishForSeconds],
      );
    },
    /** Makes the next key of `alg` active; undefined when there is none. */
    async promoteNext(alg: string): Promise<SigningKeyRow | undefined> {
      const { rows } = await db.query<SigningKeyRow>(
        `UPDATE signing_keys SET status = 'active' WHERE alg = $1 AND status = 'next' RETURNING ${COLUMNS}`,
        [alg],
      );
      return rows[0];
    },
    async revoke(kid: string): Promise<SigningKeyRow> {
      const result = await db.query<SigningKeyRow>(
        `UPDATE signing_keys SET status = 'revoked', revoked_at = now(), retired_at = coalesce(retired_at, now()), publish_until = NULL
          WHERE kid = $1 RETURNING ${COLUMNS}`,
        [kid],
      );
      return onlyRow(result);
    },
    async statusesByAlg(): Promise<{ alg: string; status: SigningKeyStatus }[]> {
      const { rows } = await db.query<{ alg: string; status: SigningKeyStatus }>(
        "SELECT alg, status FROM signing_keys WHERE status IN ('active', 'next')",
      );
      return rows;
    },
    async insert(key: NewSigningKey, status: 'active' | 'next'): Promise<SigningKeyRow> {
      const result = await db.query<SigningKeyRow>(
        `INSERT INTO signing_keys (kid, alg, status, public_jwk, private_jwk_sealed) VALUES ($1, $2, $3, $4, $5)
         RETURNING ${COLUMNS}`,
        [key.kid, key.alg, status, JSON.stringify(key.publicJwk), key.privateSealed],
      );
      return onlyRow(result);
    },
  };
}
