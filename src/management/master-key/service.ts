import { sealedKeyId, type Envelope } from '../../crypto/envelope.js';
import type { Database, Queryable } from '../../db/database.js';
import { createSealedValueStore, SEALED_TABLES, type SealedTable } from '../../db/sealed-values.js';
import { recordAudit, type AuditContext } from '../../audit/audit.js';

export interface RewrapReport {
  /** The id of MASTER_KEY, which now seals every value. */
  readonly keyId: string;
  /** Values re-sealed with MASTER_KEY (they were sealed with a previous key). */
  readonly resealed: number;
  /** Values already sealed with MASTER_KEY, left as they were. */
  readonly unchanged: number;
  readonly byTable: Readonly<Record<SealedTable, number>>;
}

/**
 * MASTER_KEY rotation: opens every sealed value in the database (with MASTER_KEY or one of
 * MASTER_KEY_PREVIOUS) and seals it again with MASTER_KEY, in one transaction, so either every
 * value moves or none does. Afterwards MASTER_KEY_PREVIOUS can be dropped. `within` runs in the
 * same transaction (the audit event).
 */
async function rewrapSealedValues(db: Database, envelope: Envelope, within: (tx: Queryable, report: RewrapReport) => Promise<void>): Promise<RewrapReport> {
  return db.transaction(async (tx) => {
    const store = createSealedValueStore(tx);
    const byTable = {} as Record<SealedTable, number>;
    let resealed = 0;
    let unchanged = 0;
    for (const table of SEALED_TABLES) {
      byTable[table] = 0;
      for (const row of await store.listForUpdate(table)) {
        if (sealedKeyId(row.sealed) === envelope.keyId) {
          unchanged += 1;
          continue;
        }
        const purpose = `${table}:${row.id}`;
        await store.replace(table, row.id, envelope.seal(envelope.open(row.sealed, purpose), purpose));
        byTable[table] += 1;
        resealed += 1;
      }
    }
    const report = { keyId: envelope.keyId, resealed, unchanged, byTable };
    await within(tx, report);
    return report;
  });
}

/** MASTER_KEY rotation (SPEC §1): the operator CLI's door to it (`gatehouse master-key rewrap`). */
export function createMasterKeyService(deps: { db: Database; envelope: Envelope }) {
  return {
    /** Re-seals every sealed value with MASTER_KEY, in one transaction, audited with the counts (never a value). */
    rewrap(audit: AuditContext): Promise<RewrapReport> {
      return rewrapSealedValues(deps.db, deps.envelope, (tx, report) =>
        recordAudit(tx, audit, {
          type: 'master_key.rewrapped',
          target: report.keyId,
          details: { resealed: report.resealed, unchanged: report.unchanged, by_table: report.byTable },
        }),
      );
    },
  };
}

export type MasterKeyService = ReturnType<typeof createMasterKeyService>;
