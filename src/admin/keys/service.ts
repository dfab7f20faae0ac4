import { z } from 'zod';
import type { Envelope } from '../../crypto/envelope.js';
import { SIGNING_ALGS, type SigningAlg } from '../../crypto/signing-keys.js';
import type { Database } from '../../db/database.js';
import { createSigningKeyStore, type SigningKeyRow } from '../../db/signing-keys.js';
import { rotateSigningKeys } from '../../oidc/keys.js';
import { recordAudit, type AuditContext } from '../audit.js';
import { decodeCursor, toPage, type Page } from '../pagination.js';

// ID tokens live an hour; the longest resource-server token lives a day (schema bound). A retired
// key stays published that long after rotation, plus a margin for clock skew.
const MAX_TOKEN_LIFETIME_SECONDS = 86_400;
const CLOCK_MARGIN_SECONDS = 300;

const timestamp = z.iso.datetime();

/** A signing key as the admin API shows it (the OpenAPI document's `SigningKey`); `presentKey` is typed by it. */
export const keyResponse = z
  .object({
    kid: z.string(),
    alg: z.enum(SIGNING_ALGS),
    status: z.enum(['active', 'retired', 'expired']).describe('active signs; retired is still published for the tokens it signed; expired is gone from the JWKS.'),
    created_at: timestamp,
    retired_at: timestamp.nullable(),
    publish_until: timestamp.nullable().describe('A retired key stays in the JWKS until then.'),
  })
  .describe('A token signing key; never its private material.');

export type KeyResponse = z.infer<typeof keyResponse>;

export function presentKey(row: SigningKeyRow & { published: boolean }): KeyResponse {
  return {
    kid: row.kid,
    alg: row.alg as SigningAlg,
    // active signs; retired is still published for tokens it signed; expired is gone from the JWKS.
    status: row.status === 'active' ? 'active' : row.published ? 'retired' : 'expired',
    created_at: row.created_at.toISOString(),
    retired_at: row.retired_at?.toISOString() ?? null,
    publish_until: row.publish_until?.toISOString() ?? null,
  };
}

export function createKeyService(deps: { db: Database; envelope: Envelope; onRotated: () => Promise<unknown> }) {
  return {
    async list(query: { limit: number; cursor?: string | undefined }): Promise<Page<KeyResponse>> {
      const before = decodeCursor(query.cursor, /^[\w-]{1,64}$/);
      const rows = await createSigningKeyStore(deps.db).listAll({ before, limit: query.limit + 1 });
      return toPage(rows, query.limit, (row) => row.kid, presentKey);
    },

    /** New active keys for `algs` (default: every algorithm); old ones stay published until their tokens expire. */
    async rotate(algs: readonly SigningAlg[] | undefined, audit: AuditContext): Promise<KeyResponse[]> {
      const chosen = algs ?? SIGNING_ALGS;
      const created = await deps.db.transaction(async (tx) => {
        const keys = await rotateSigningKeys(tx, deps.envelope, chosen, MAX_TOKEN_LIFETIME_SECONDS + CLOCK_MARGIN_SECONDS);
        for (const key of keys) {
          await recordAudit(tx, audit, { type: 'key.rotated', target: key.kid, details: { alg: key.alg } });
        }
        return keys;
      });
      // This instance signs with the new keys at once; the others within their refresh interval.
      await deps.onRotated();
      return created.map((key) => presentKey({ ...key, published: true }));
    },
  };
}
