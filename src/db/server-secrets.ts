import { onlyRow, type Queryable } from './database.js';

/** Sealed server-held secrets (cookie keys, HMAC keys); sealing happens above this layer. */
export function createServerSecretStore(db: Queryable) {
  return {
    async find(name: string): Promise<string | undefined> {
      const { rows } = await db.query<{ sealed: string }>('SELECT sealed FROM server_secrets WHERE name = $1', [name]);
      return rows[0]?.sealed;
    },
    /** Inserts unless present; returns the stored value either way (the first writer wins). */
    async insertIfMissing(name: string, sealed: string): Promise<string> {
      await db.query('INSERT INTO server_secrets (name, sealed) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING', [name, sealed]);
      const { rows } = await db.query<{ sealed: string }>('SELECT sealed FROM server_secrets WHERE name = $1', [name]);
      return onlyRow({ rows }).sealed;
    },
  };
}
