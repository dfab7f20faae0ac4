import type { JsonWebKey } from 'node:crypto';
import { jsonParam, onlyRow, type Queryable } from './database.js';

export interface ResourceServerRow extends Record<string, unknown> {
  id: string;
  seq: string;
  identifier: string;
  name: string;
  scopes: string[];
  access_token_ttl: number;
  signing_alg: string;
  inner_encryption_jwk: JsonWebKey | null;
  encrypt_whole_token: boolean;
  token_format: TokenFormat;
  require_sender_constraint: boolean;
  built_in: boolean;
  created_at: Date;
  updated_at: Date;
}

/** What /token issues for a resource server: a JWT, or an opaque reference (migrations/0013). */
export type TokenFormat = 'jwt' | 'reference';

export interface ResourceServerFields {
  readonly name: string;
  readonly scopes: readonly string[];
  readonly accessTokenTtl: number;
  readonly signingAlg: string;
  readonly innerEncryptionJwk: JsonWebKey | null;
  readonly encryptWholeToken: boolean;
  readonly tokenFormat: TokenFormat;
  readonly requireSenderConstraint: boolean;
}

const COLUMNS =
  'id, seq::text AS seq, identifier, name, scopes, access_token_ttl, signing_alg, inner_encryption_jwk, encrypt_whole_token, token_format, require_sender_constraint, built_in, created_at, updated_at';

export function createResourceServerStore(db: Queryable) {
  return {
    async findByIdentifier(identifier: string): Promise<ResourceServerRow | undefined> {
      const { rows } = await db.query<ResourceServerRow>(`SELECT ${COLUMNS} FROM resource_servers WHERE identifier = $1`, [identifier]);
      return rows[0];
    },
    async findByIdentifiers(identifiers: readonly string[]): Promise<ResourceServerRow[]> {
      const { rows } = await db.query<ResourceServerRow>(`SELECT ${COLUMNS} FROM resource_servers WHERE identifier = ANY($1)`, [identifiers]);
      return rows;
    },
    async findById(id: string, options: { forUpdate?: boolean } = {}): Promise<ResourceServerRow | undefined> {
      // Ids are UUIDs; anything else cannot exist (and would be a cast error in SQL).
      if (!/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(id)) return undefined;
      const { rows } = await db.query<ResourceServerRow>(
        `SELECT ${COLUMNS} FROM resource_servers WHERE id = $1${options.forUpdate === true ? ' FOR UPDATE' : ''}`,
        [id],
      );
      return rows[0];
    },
    /** How many there are, for the console's overview (a count(*): cheap at tens of thousands of rows). */
    async count(): Promise<number> {
      const { rows } = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM resource_servers');
      return rows[0]?.n ?? 0;
    },
    async list(page: { after: string | undefined; limit: number }): Promise<ResourceServerRow[]> {
      // Qualified: a bare `seq` would name the text alias in COLUMNS and sort 10 before 9.
      const { rows } = await db.query<ResourceServerRow>(`SELECT ${COLUMNS} FROM resource_servers WHERE seq > $1::bigint ORDER BY resource_servers.seq LIMIT $2`, [
        page.after ?? '0',
        page.limit,
      ]);
      return rows;
    },
    /** Undefined when the identifier is taken. */
    async insert(identifier: string, fields: ResourceServerFields): Promise<ResourceServerRow | undefined> {
      const { rows } = await db.query<ResourceServerRow>(
        `INSERT INTO resource_servers (identifier, name, scopes, access_token_ttl, signing_alg, inner_encryption_jwk, encrypt_whole_token, token_format, require_sender_constraint)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (identifier) DO NOTHING RETURNING ${COLUMNS}`,
        [
          identifier,
          fields.name,
          fields.scopes,
          fields.accessTokenTtl,
          fields.signingAlg,
          fields.innerEncryptionJwk === null ? null : jsonParam(fields.innerEncryptionJwk),
          fields.encryptWholeToken,
          fields.tokenFormat,
          fields.requireSenderConstraint,
        ],
      );
      return rows[0];
    },
    async update(id: string, fields: ResourceServerFields): Promise<ResourceServerRow> {
      const result = await db.query<ResourceServerRow>(
        `UPDATE resource_servers SET name = $2, scopes = $3, access_token_ttl = $4, signing_alg = $5,
           inner_encryption_jwk = $6, encrypt_whole_token = $7, token_format = $8, require_sender_constraint = $9, updated_at = now()
         WHERE id = $1 RETURNING ${COLUMNS}`,
        [
          id,
          fields.name,
          fields.scopes,
          fields.accessTokenTtl,
          fields.signingAlg,
          fields.innerEncryptionJwk === null ? null : jsonParam(fields.innerEncryptionJwk),
          fields.encryptWholeToken,
          fields.tokenFormat,
          fields.requireSenderConstraint,
        ],
      );
      return onlyRow(result);
    },
    async delete(id: string): Promise<void> {
      await db.query('DELETE FROM resource_servers WHERE id = $1 AND NOT built_in', [id]);
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
