import { jsonParam, onlyRow, type Queryable } from './database.js';

export interface ClientRow extends Record<string, unknown> {
  client_id: string;
  seq: string;
  client_name: string;
  client_secret_hash: string | null;
  metadata: Record<string, unknown>;
  allowed_resources: string[];
  require_mfa: boolean;
  first_party: boolean;
  created_at: Date;
  updated_at: Date;
  /** When the secret hash or key set last changed (migrations/0007); null if never since creation. */
  credentials_changed_at: Date | null;
}

export interface NewClient {
  readonly clientId: string;
  readonly clientName: string;
  readonly clientSecretHash: string | null;
  readonly metadata: Record<string, unknown>;
  readonly allowedResources: readonly string[];
  readonly requireMfa: boolean;
  /** The organisation's own app: consent is not asked (src/oidc/grants.ts). */
  readonly firstParty?: boolean;
}

export type ClientChanges = Partial<Omit<NewClient, 'clientId'>>;

const COLUMNS =
  'client_id, seq::text AS seq, client_name, client_secret_hash, metadata, allowed_resources, require_mfa, first_party, created_at, updated_at, credentials_changed_at';

export function createClientStore(db: Queryable) {
  return {
    async find(clientId: string): Promise<ClientRow | undefined> {
      const { rows } = await db.query<ClientRow>(`SELECT ${COLUMNS} FROM clients WHERE client_id = $1`, [clientId]);
      return rows[0];
    },
    /** Row-locks the client for a read-modify-write in a transaction. */
    async findForUpdate(clientId: string): Promise<ClientRow | undefined> {
      const { rows } = await db.query<ClientRow>(`SELECT ${COLUMNS} FROM clients WHERE client_id = $1 FOR UPDATE`, [clientId]);
      return rows[0];
    },
    async count(): Promise<number> {
      const { rows } = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM clients');
      return rows[0]?.n ?? 0;
    },
    /** Keyset page in creation order; `after` is the last row's seq. */
    async list(page: { after: string | undefined; limit: number; namePrefix?: string | undefined }): Promise<ClientRow[]> {
      const params: unknown[] = [page.after ?? '0', page.limit];
      let nameFilter = '';
      if (page.namePrefix !== undefined) {
        params.push(`${page.namePrefix.replace(/[\\%_]/g, (c) => `\\${c}`)}%`);
        nameFilter = `AND client_name LIKE $${params.length}`;
      }
      // Qualified: a bare `seq` would name the text alias in COLUMNS and sort 10 before 9.
      const { rows } = await db.query<ClientRow>(
        `SELECT ${COLUMNS} FROM clients WHERE seq > $1::bigint ${nameFilter} ORDER BY clients.seq LIMIT $2`,
        params,
      );
      return rows;
    },
    async insert(client: NewClient): Promise<ClientRow> {
      const result = await db.query<ClientRow>(
        `INSERT INTO clients (client_id, client_name, client_secret_hash, metadata, allowed_resources, require_mfa, first_party)
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING ${COLUMNS}`,
        [
          client.clientId,
          client.clientName,
          client.clientSecretHash,
          jsonParam(client.metadata),
          client.allowedResources,
          client.requireMfa,
          client.firstParty ?? false,
        ],
      );
      return onlyRow(result);
    },
    /** Insert, or bring an existing row to exactly this definition (idempotent bootstrap). */
    async upsert(client: NewClient): Promise<ClientRow> {
      const result = await db.query<ClientRow>(
        `INSERT INTO clients (client_id, client_name, client_secret_hash, metadata, allowed_resources, require_mfa)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (client_id) DO UPDATE SET
           client_name = EXCLUDED.client_name, client_secret_hash = EXCLUDED.client_secret_hash,
           metadata = EXCLUDED.metadata, allowed_resources = EXCLUDED.allowed_resources,
           require_mfa = EXCLUDED.require_mfa, updated_at = now()
         RETURNING ${COLUMNS}`,
        [client.clientId, client.clientName, client.clientSecretHash, jsonParam(client.metadata), client.allowedResources, client.requireMfa],
      );
      return onlyRow(result);
    },
    async update(clientId: string, changes: ClientChanges): Promise<ClientRow | undefined> {
      const { rows } = await db.query<ClientRow>(
        `UPDATE clients SET
           client_name = COALESCE($2, client_name),
           client_secret_hash = CASE WHEN $3::boolean THEN $4 ELSE client_secret_hash END,
           metadata = COALESCE($5, metadata),
           allowed_resources = COALESCE($6, allowed_resources),
           require_mfa = COALESCE($7, require_mfa),
           first_party = COALESCE($8, first_party),
           updated_at = now()
         WHERE client_id = $1 RETURNING ${COLUMNS}`,
        [
          clientId,
          changes.clientName ?? null,
          changes.clientSecretHash !== undefined,
          changes.clientSecretHash ?? null,
          changes.metadata === undefined ? null : jsonParam(changes.metadata),
          changes.allowedResources ?? null,
          changes.requireMfa ?? null,
          changes.firstParty ?? null,
        ],
      );
      return rows[0];
    },
    async delete(clientId: string): Promise<boolean> {
      const { rowCount } = await db.query('DELETE FROM clients WHERE client_id = $1', [clientId]);
      return rowCount > 0;
    },
    /** Client ids whose allowed_resources name this resource server. */
    async referencing(resourceIdentifier: string): Promise<string[]> {
      const { rows } = await db.query<{ client_id: string }>('SELECT client_id FROM clients WHERE $1 = ANY(allowed_resources) ORDER BY seq', [
        resourceIdentifier,
      ]);
      return rows.map((row) => row.client_id);
    },
  };
}

export type ClientStore = ReturnType<typeof createClientStore>;
