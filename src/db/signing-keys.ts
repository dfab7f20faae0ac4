import type { JsonWebKey } from 'node:crypto';
import { onlyRow, type Queryable } from './database.js';

export interface SigningKeyRow extends Record<string, unknown> {
  kid: string;
  alg: string;
  status: 'active' | 'retired';
  public_jwk: JsonWebKey;
  private_jwk_sealed?: string;
  created_at: Date;
  retired_at: Date | null;
  publish_until: Date | null;
}

export function createSigningKeyStore(db: Queryable) {
  return {
    /** Keys still to be published: every active key, and retired ones until their tokens expire. */
    async listPublished(): Promise<SigningKeyRow[]> {
      const { rows } = await db.query<SigningKeyRow>(
        `SELECT kid, alg, status, public_jwk, private_jwk_sealed, created_at, retired_at, publish_until
           FROM signing_keys
          WHERE status = 'active' OR publish_until IS NULL OR publish_until > now()
          ORDER BY (status = 'active') DESC, created_at DESC, kid`,
      );
      return rows;
    },
    /** Every key, newest first, with whether it is still published (for the admin API). */
    async listAll(page: { before: string | undefined; limit: number }): Promise<(SigningKeyRow & { published: boolean })[]> {
      const { rows } = await db.query<SigningKeyRow & { published: boolean }>(
        `SELECT kid, alg, status, public_jwk, created_at, retired_at, publish_until,
                (status = 'active' OR publish_until IS NULL OR publish_until > now()) AS published
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
        `SELECT string_agg(kid || ':' || status, ',' ORDER BY kid) AS fingerprint FROM signing_keys
          WHERE status = 'active' OR publish_until IS NULL OR publish_until > now()`,
      );
      return rows[0]?.fingerprint ?? '';
    },
    /** Retires the active key of `alg`, kept published for `publishForSeconds`. Call in a transaction. */
    async retireActive(alg: string, publishForSeconds: number): Promise<void> {
      await db.query(
        `UPDATE signing_keys SET status = 'retired', retired_at = now(), publish_until = now() + make_interval(secs => $2::double precision)
          WHERE alg = $1 AND status = 'active'`,
        [alg, publishForSeconds],
      );
    },
    async activeAlgs(): Promise<string[]> {
      const { rows } = await db.query<{ alg: string }>("SELECT alg FROM signing_keys WHERE status = 'active'");
      return rows.map((row) => row.alg);
    },
    async insertActive(key: { kid: string; alg: string; publicJwk: JsonWebKey; privateSealed: string }): Promise<SigningKeyRow> {
      const result = await db.query<SigningKeyRow>(
        `INSERT INTO signing_keys (kid, alg, status, public_jwk, private_jwk_sealed) VALUES ($1, $2, 'active', $3, $4)
         RETURNING kid, alg, status, public_jwk, created_at, retired_at, publish_until`,
        [key.kid, key.alg, JSON.stringify(key.publicJwk), key.privateSealed],
      );
      return onlyRow(result);
    },
  };
}
