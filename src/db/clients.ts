import { onlyRow, type Queryable } from './database.js';

export interface ClientRow extends Record<string, unknown> {
  client_id: string;
  client_name: string;
  client_secret_hash: string | null;
  metadata: Record<string, unknown>;
  allowed_resources: string[];
  require_mfa: boolean;
  created_at: Date;
  updated_at: Date;
}

export interface NewClient {
  readonly clientId: string;
  readonly clientName: string;
  readonly clientSecretHash: string | null;
  readonly metadata: Record<string, unknown>;
  readonly allowedResources: readonly string[];
  readonly requireMfa: boolean;
}

const COLUMNS = 'client_id, client_name, client_secret_hash, metadata, allowed_resources, require_mfa, created_at, updated_at';

export function createClientStore(db: Queryable) {
  return {
    async find(clientId: string): Promise<ClientRow | undefined> {
      const { rows } = await db.query<ClientRow>(`SELECT ${COLUMNS} FROM clients WHERE client_id = $1`, [clientId]);
      return rows[0];
    },
    async count(): Promise<number> {
      const { rows } = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM clients');
      return rows[0]?.n ?? 0;
    },
    async insert(client: NewClient): Promise<ClientRow> {
      const result = await db.query<ClientRow>(
        `INSERT INTO clients (client_id, client_name, client_secret_hash, metadata, allowed_resources, require_mfa)
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING ${COLUMNS}`,
        [client.clientId, client.clientName, client.clientSecretHash, JSON.stringify(client.metadata), client.allowedResources, client.requireMfa],
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
        [client.clientId, client.clientName, client.clientSecretHash, JSON.stringify(client.metadata), client.allowedResources, client.requireMfa],
      );
      return onlyRow(result);
    },
  };
}

export type ClientStore = ReturnType<typeof createClientStore>;
