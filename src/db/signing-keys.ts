import type { JsonWebKey } from 'node:crypto';
import type { Queryable } from './database.js';

export interface SigningKeyRow extends Record<string, unknown> {
  kid: string;
  alg: string;
  status: 'active' | 'retired';
  public_jwk: JsonWebKey;
  private_jwk_sealed: string;
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
    async activeAlgs(): Promise<string[]> {
      const { rows } = await db.query<{ alg: string }>("SELECT alg FROM signing_keys WHERE status = 'active'");
      return rows.map((row) => row.alg);
    },
    async insertActive(key: { kid: string; alg: string; publicJwk: JsonWebKey; privateSealed: string }): Promise<void> {
      await db.query(
        `INSERT INTO signing_keys (kid, alg, status, public_jwk, private_jwk_sealed) VALUES ($1, $2, 'active', $3, $4)`,
        [key.kid, key.alg, JSON.stringify(key.publicJwk), key.privateSealed],
      );
    },
  };
}
