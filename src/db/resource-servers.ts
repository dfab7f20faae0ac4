import type { JsonWebKey } from 'node:crypto';
import { onlyRow, type Queryable } from './database.js';

export interface ResourceServerRow extends Record<string, unknown> {
  id: string;
  identifier: string;
  name: string;
  scopes: string[];
  access_token_ttl: number;
  signing_alg: string;
  inner_encryption_jwk: JsonWebKey | null;
  encrypt_whole_token: boolean;
  built_in: boolean;
  created_at: Date;
  updated_at: Date;
}

const COLUMNS =
  'id, identifier, name, scopes, access_token_ttl, signing_alg, inner_encryption_jwk, encrypt_whole_token, built_in, created_at, updated_at';

export function createResourceServerStore(db: Queryable) {
  return {
    async findByIdentifier(identifier: string): Promise<ResourceServerRow | undefined> {
      const { rows } = await db.query<ResourceServerRow>(`SELECT ${COLUMNS} FROM resource_servers WHERE identifier = $1`, [identifier]);
      return rows[0];
    },
    /** The built-in admin API resource server: created once, its scopes kept current. */
    async ensureBuiltIn(server: { identifier: string; name: string; scopes: readonly string[] }): Promise<ResourceServerRow> {
      const result = await db.query<ResourceServerRow>(
        `INSERT INTO resource_servers (identifier, name, scopes, built_in) VALUES ($1, $2, $3, true)
         ON CONFLICT (identifier) DO UPDATE SET scopes = EXCLUDED.scopes, built_in = true, updated_at = now()
         RETURNING ${COLUMNS}`,
        [server.identifier, server.name, server.scopes],
      );
      return onlyRow(result);
    },
  };
}

export type ResourceServerStore = ReturnType<typeof createResourceServerStore>;
