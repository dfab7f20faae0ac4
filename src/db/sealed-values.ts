import type { Queryable } from './database.js';

/**
 * Every column that holds a MASTER_KEY envelope (src/crypto/envelope.ts), by table, with the
 * column that names the row (its envelope purpose is `<table>:<id>`). A new sealed column
 * belongs here, so `master-key rewrap` re-seals it; test/flows/master-key.rewrap.test.ts fails
 * on any `*_sealed` or `sealed` column missing from this list.
 */
export const SEALED_COLUMNS = {
  signing_keys: { id: 'kid', sealed: 'private_jwk_sealed' },
  server_secrets: { id: 'name', sealed: 'sealed' },
  user_totp: { id: 'user_id', sealed: 'secret_sealed' },
  identity_providers: { id: 'id', sealed: 'client_secret_sealed' },
} as const;

export type SealedTable = keyof typeof SEALED_COLUMNS;

export const SEALED_TABLES = Object.keys(SEALED_COLUMNS) as SealedTable[];

// Table and column names come from the constant above only, never from input.
export function createSealedValueStore(db: Queryable) {
  return {
    /** Every sealed value of `table`, locked for the rest of the transaction. */
    async listForUpdate(table: SealedTable): Promise<{ id: string; sealed: string }[]> {
      const { id, sealed } = SEALED_COLUMNS[table];
      // A NULL column holds nothing to re-seal (an identity provider without a client secret).
      const { rows } = await db.query<{ id: string; sealed: string }>(`SELECT ${id}::text AS id, ${sealed} AS sealed FROM ${table} WHERE ${sealed} IS NOT NULL ORDER BY ${id} FOR UPDATE`);
      return rows;
    },
    async replace(table: SealedTable, rowId: string, value: string): Promise<void> {
      const { id, sealed } = SEALED_COLUMNS[table];
      await db.query(`UPDATE ${table} SET ${sealed} = $2 WHERE ${id}::text = $1`, [rowId, value]);
    },
  };
}
