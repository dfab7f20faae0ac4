import { randomInt } from 'node:crypto';
import { recordAudit, type AuditContext } from '../audit/audit.js';
import type { ClientSecretHasher } from '../crypto/client-secret.js';
import type { Envelope } from '../crypto/envelope.js';
import type { Database, Queryable } from '../db/database.js';
import { createSecondFactorStore } from '../db/second-factor.js';
import type { Totp } from './totp.js';

/**
 * The TOTP second factor and its recovery codes (SPEC §4). Secrets are sealed with MASTER_KEY;
 * a code is accepted at most once (atomic time-step update); recovery codes are single use and
 * stored as keyed hashes (they are random, so a keyed fast hash is right, as for client secrets).
 */
export const RECOVERY_CODE_COUNT = 10;
/** Below this many unused recovery codes the sign-in page says how many remain. */
export const FEW_RECOVERY_CODES = 3;
// Crockford-style alphabet: no 0/O, 1/I/L confusion when copied from paper.
const ALPHABET = 'ABCDEFGHJKMNPQRSTVWXYZ23456789';

const purpose = (userId: string) => `user_totp:${userId}`;

export function normalizeRecoveryCode(input: string): string {
  return input.toUpperCase().replace(/[\s-]/g, '');
}

function newRecoveryCode(): string {
  const chars = Array.from({ length: 10 }, () => ALPHABET[randomInt(ALPHABET.length)]).join('');
  return `${chars.slice(0, 5)}-${chars.slice(5)}`;
}

export type SecondFactorResult =
  | { readonly ok: true; readonly method: 'totp' }
  | { readonly ok: true; readonly method: 'recovery'; readonly remaining: number }
  | { readonly ok: false };

export function createSecondFactor(deps: { db: Database; envelope: Envelope; totp: Totp; hasher: ClientSecretHasher }) {
  const { db, envelope, totp, hasher } = deps;
  const store = createSecondFactorStore(db);
  const secretOf = (userId: string, sealed: string) => envelope.open(sealed, purpose(userId)).toString('utf8');

  /** Ten new recovery codes replace the old ones, in the enrollment's transaction; shown once. */
  async function issueRecoveryCodes(tx: Queryable, userId: string): Promise<string[]> {
    const codes = Array.from({ length: RECOVERY_CODE_COUNT }, newRecoveryCode);
    await createSecondFactorStore(tx).replaceRecoveryCodes(userId, codes.map((c) => hasher.hash(normalizeRecoveryCode(c))));
    return codes;
  }

  return {
    /** A confirmed TOTP factor or a passkey. */
    isEnrolled: (userId: string) => store.isEnrolled(userId),
    hasTotp: (userId: string) => store.hasTotp(userId),
    issueRecoveryCodes,
    remainingRecoveryCodes: (userId: string) => store.remainingRecoveryCodes(userId),

    /** The pending secret for enrollment (a new one unless one is already pending) and its URI. */
    async enrollment(userId: string, account: string): Promise<{ secret: string; uri: string } | undefined> {
      const existing = await store.findTotp(userId);
      if (existing?.confirmed_at != null) return undefined;
      let secret: string;
      if (existing === undefined) {
        secret = totp.newSecret();
        if (!(await store.savePendingTotp(userId, envelope.seal(secret, purpose(userId))))) return undefined;
      } else {
        secret = secretOf(userId, existing.secret_sealed);
      }
      return { secret, uri: totp.uri(secret, account) };
    },

    /** Activates the pending factor with one correct code; returns the recovery codes, shown once. */
    async confirmEnrollment(userId: string, code: string, audit: AuditContext): Promise<string[] | undefined> {
      const pending = await store.findTotp(userId);
      if (pending === undefined || pending.confirmed_at !== null) return undefined;
      const check = totp.check(secretOf(userId, pending.secret_sealed), code.trim());
      if (!check.ok || check.timeStep === undefined) return undefined;
      return db.transaction(async (tx) => {
        if (!(await createSecondFactorStore(tx).acceptTimeStep(userId, check.timeStep!, { confirm: true }))) return undefined;
        const codes = await issueRecoveryCodes(tx, userId);
        await recordAudit(tx, audit, { type: 'mfa.enrolled', target: userId, details: { factor: 'totp', recovery_codes: RECOVERY_CODE_COUNT } });
        return codes;
      });
    },

    /** Checks a TOTP code or a recovery code from the `code` field. */
    async verify(userId: string, input: string, audit: AuditContext): Promise<SecondFactorResult> {
      const code = input.trim();
      if (/^\d{6}$/.test(code)) {
        const factor = await store.findTotp(userId);
        if (factor?.confirmed_at == null) return { ok: false };
        const check = totp.check(secretOf(userId, factor.secret_sealed), code);
        if (!check.ok || check.timeStep === undefined) return { ok: false };
        // Replay refusal: only the first use of a time step (on any instance) succeeds.
        return (await store.acceptTimeStep(userId, check.timeStep, { confirm: false })) ? { ok: true, method: 'totp' } : { ok: false };
      }
      const normalized = normalizeRecoveryCode(code);
      if (!/^[A-Z0-9]{10}$/.test(normalized)) return { ok: false };
      return db.transaction(async (tx) => {
        const txStore = createSecondFactorStore(tx);
        if (!(await txStore.useRecoveryCode(userId, hasher.hash(normalized)))) return { ok: false } as const;
        const remaining = await txStore.remainingRecoveryCodes(userId);
        await recordAudit(tx, audit, { type: 'mfa.recovery_code_used', target: userId, details: { remaining } });
        return { ok: true, method: 'recovery', remaining } as const;
      });
    },
  };
}

export type SecondFactor = ReturnType<typeof createSecondFactor>;
