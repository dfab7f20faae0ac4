import { recordAudit, type AuditContext } from '../audit/audit.js';
import type { Database } from '../db/database.js';
import { createPasskeyStore, type PasskeyRow } from '../db/passkeys.js';
import { createSecondFactorStore } from '../db/second-factor.js';
import { createUserStore } from '../db/users.js';
import { passkeyName, type PasskeyRefusal, type Passkeys } from './passkeys.js';

/**
 * A signed-in person's own passkeys (SPEC §4, the account page): list, add, rename, remove.
 * Registration is the enrollment's ceremony (./passkeys.ts) with its challenge keyed by the
 * account session instead of an interaction. Removing the last second factor of someone who
 * must use one (`mfa_required`) is refused: they would be sent to enroll again at their next
 * sign-in, with nothing to prove who they are but the password.
 */

/** A passkey as its owner sees it (the stored row; the page shows its name, kind and dates). */
export type OwnPasskey = PasskeyRow;
export type OwnPasskeyRemoval = 'removed' | 'not_found' | 'last_factor';
export type OwnPasskeyRename = 'renamed' | 'not_found' | 'empty';
export type OwnPasskeyAdded = { readonly ok: true; readonly credentialId: string } | { readonly ok: false; readonly reason: PasskeyRefusal };

export function createOwnPasskeys(deps: { readonly db: Database; readonly passkeys: Passkeys }) {
  const { db, passkeys } = deps;

  return {
    available: passkeys.available,

    list: (userId: string): Promise<PasskeyRow[]> => passkeys.list(userId),

    /** The options for registering another passkey; `challengeKey` names the ceremony (the account session). */
    registrationOptions: (challengeKey: string, user: { readonly id: string; readonly username: string }) => passkeys.registrationOptions(challengeKey, user),

    /** Checks the browser's registration against the challenge and stores it, audited as `passkey.registered`. */
    async add(challengeKey: string, userId: string, json: string, name: string, audit: AuditContext): Promise<OwnPasskeyAdded> {
      const result = await passkeys.verifyRegistration(challengeKey, userId, json, name);
      if (!result.ok) return result;
      const saved = await db.transaction(async (tx) => {
        if (!(await result.save(tx))) return false;
        await recordAudit(tx, audit, {
          type: 'passkey.registered',
          target: userId,
          details: { credential_id: result.credentialId, name: passkeyName(name) || 'Passkey', backed_up: result.backedUp },
        });
        return true;
      });
      return saved ? { ok: true, credentialId: result.credentialId } : { ok: false, reason: 'duplicate' };
    },

    async rename(userId: string, credentialId: string, name: string, audit: AuditContext): Promise<OwnPasskeyRename> {
      const cleaned = passkeyName(name);
      if (cleaned === '') return 'empty';
      return db.transaction(async (tx) => {
        const store = createPasskeyStore(tx);
        const current = await store.findForUser(userId, credentialId, { forUpdate: true });
        if (current === undefined || !(await store.rename(userId, credentialId, cleaned))) return 'not_found';
        await recordAudit(tx, audit, { type: 'passkey.renamed', target: userId, details: { credential_id: credentialId, from: current.name, to: cleaned } });
        return 'renamed';
      });
    },

    /**
     * Removes one of the person's passkeys. The person's row is locked first, so two removals at
     * once (of someone's last two factors) are decided one after the other. When it was their
     * last factor (and none is required), the recovery codes go too, as with an admin's removal.
     */
    async remove(userId: string, credentialId: string, audit: AuditContext): Promise<OwnPasskeyRemoval> {
      return db.transaction(async (tx) => {
        const user = await createUserStore(tx).findById(userId, { forUpdate: true });
        if (user === undefined) return 'not_found';
        const store = createPasskeyStore(tx);
        const passkey = await store.findForUser(userId, credentialId);
        if (passkey === undefined) return 'not_found';
        const secondFactors = createSecondFactorStore(tx);
        const otherFactors = (await store.countForUser(userId)) - 1 + ((await secondFactors.hasTotp(userId)) ? 1 : 0);
        if (otherFactors === 0 && user.mfa_required) return 'last_factor';
        await store.remove(userId, credentialId);
        if (otherFactors === 0) await secondFactors.reset(userId);
        await recordAudit(tx, audit, {
          type: 'passkey.removed',
          target: userId,
          details: { credential_id: credentialId, name: passkey.name, last_factor: otherFactors === 0, by: 'self' },
        });
        return 'removed';
      });
    },
  };
}

export type OwnPasskeys = ReturnType<typeof createOwnPasskeys>;
