import { z } from 'zod';
import type { Envelope } from '../../crypto/envelope.js';
import { SIGNING_ALGS, type SigningAlg } from '../../crypto/signing-keys.js';
import type { Database } from '../../db/database.js';
import { createSigningKeyStore, type SigningKeyRow } from '../../db/signing-keys.js';
import { prepareSigningKeys, revokeSigningKey, rotateSigningKeys } from '../../oidc/keys.js';
import { recordAudit, type AuditContext } from '../../audit/audit.js';
import { decodeCursor, toPage, type Page } from '../pagination.js';
import { Conflict, NotFound } from '../errors.js';

// ID tokens live an hour; the longest resource-server token lives a day (schema bound). A retired
// key stays published that long after rotation, plus a margin for clock skew.
const MAX_TOKEN_LIFETIME_SECONDS = 86_400;
const CLOCK_MARGIN_SECONDS = 300;

const timestamp = z.iso.datetime();

export const KEY_STATUSES = ['next', 'active', 'retired', 'expired', 'revoked'] as const;

/** A signing key as the admin API shows it (the OpenAPI document's `SigningKey`); `presentKey` is typed by it. */
export const keyResponse = z
  .object({
    kid: z.string(),
    alg: z.enum(SIGNING_ALGS),
    status: z
      .enum(KEY_STATUSES)
      .describe(
        'next is published ahead of use and becomes active at the next rotation; active signs; retired is still published for the tokens it signed; expired is gone from the JWKS; revoked was taken out of the JWKS at once and its tokens are refused.',
      ),
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
    status: row.status === 'retired' && !row.published ? 'expired' : row.status,
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

    /**
     * Per algorithm (default: every one), the published next key becomes active and a fresh next
     * key is published; old active keys stay published until their tokens expire.
     */
    async rotate(algs: readonly SigningAlg[] | undefined, audit: AuditContext): Promise<KeyResponse[]> {
      const chosen = algs ?? SIGNING_ALGS;
      // Generated before the transaction, so its lock is held for SQL only.
      const ready = await prepareSigningKeys(deps.envelope, chosen);
      const activated = await deps.db.transaction(async (tx) => {
        const keys = await rotateSigningKeys(tx, deps.envelope, chosen, MAX_TOKEN_LIFETIME_SECONDS + CLOCK_MARGIN_SECONDS, ready);
        for (const key of keys) {
          await recordAudit(tx, audit, { type: 'key.rotated', target: key.kid, details: { alg: key.alg } });
        }
        return keys;
      });
      // This instance signs with the new keys at once; the others on the change notification.
      await deps.onRotated();
      return activated.map((key) => presentKey({ ...key, published: true }));
    },

    /**
     * Emergency revocation (SPEC §2, §5): the key leaves the JWKS at once and its tokens stop
     * verifying here and at introspection. A revoked key answers 409 when revoked again.
     */
    async revoke(kid: string, audit: AuditContext): Promise<KeyResponse> {
      // Every kid Gatehouse makes is base64url; anything else names no key.
      if (!/^[\w-]{1,64}$/.test(kid)) throw new NotFound('No signing key with that kid.');
      // Revoking an active or next key publishes a fresh next key: made before the transaction.
      const seen = await createSigningKeyStore(deps.db).find(kid);
      const ready = seen !== undefined && (seen.status === 'active' || seen.status === 'next') ? await prepareSigningKeys(deps.envelope, [seen.alg as SigningAlg]) : [];
      const result = await deps.db.transaction(async (tx) => {
        const outcome = await revokeSigningKey(tx, deps.envelope, kid, ready);
        if (outcome.outcome === 'revoked') {
          await recordAudit(tx, audit, {
            type: 'key.revoked',
            target: kid,
            details: { alg: outcome.key.alg, was: outcome.was, ...(outcome.activated === undefined ? {} : { activated: outcome.activated.kid }) },
          });
        }
        return outcome;
      });
      if (result.outcome === 'not_found') throw new NotFound('No signing key with that kid.');
      if (result.outcome === 'already_revoked') throw new Conflict('The key is already revoked.');
      await deps.onRotated();
      return presentKey({ ...result.key, published: false });
    },
  };
}
