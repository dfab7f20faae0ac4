import type { Envelope } from '../../crypto/envelope.js';
import { rewrapSealedValues, type RewrapReport } from '../../crypto/rewrap.js';
import type { Database } from '../../db/database.js';
import { recordAudit, type AuditContext } from '../audit.js';

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
