import { generateSecret, generateURI, verifySync } from 'otplib';

/**
 * RFC 6238 TOTP as SPEC §4 fixes it: SHA-1, 6 digits, 30 s steps, one step of drift either way,
 * 160-bit secrets. `now` is injectable so tests freeze the clock instead of sleeping.
 */
export const TOTP_PERIOD_SECONDS = 30;
export const TOTP_DIGITS = 6;
const SECRET_BYTES = 20; // 160 bits (RFC 4226 §4 recommends at least 160)

export interface TotpCheck {
  readonly ok: boolean;
  /** The matched RFC 6238 time step (for replay refusal). */
  readonly timeStep?: number;
}

export function createTotp(options: { issuer: string; now?: () => number }) {
  const now = options.now ?? Date.now;
  return {
    /** A fresh base32 secret. */
    newSecret: (): string => generateSecret({ length: SECRET_BYTES }),
    /** The otpauth:// URI an authenticator app imports (Key Uri Format). */
    uri: (secret: string, account: string): string =>
      generateURI({ issuer: options.issuer, label: account, secret, algorithm: 'sha1', digits: TOTP_DIGITS, period: TOTP_PERIOD_SECONDS }),
    /** Checks `code` within ±1 step; otplib throws on malformed input, so the shape is checked first. */
    check(secret: string, code: string): TotpCheck {
      if (!/^\d{6}$/.test(code)) return { ok: false };
      const result = verifySync({
        secret,
        token: code,
        algorithm: 'sha1',
        digits: TOTP_DIGITS,
        period: TOTP_PERIOD_SECONDS,
        epoch: Math.floor(now() / 1000),
        epochTolerance: TOTP_PERIOD_SECONDS,
      });
      return result.valid ? { ok: true, timeStep: (result as { timeStep: number }).timeStep } : { ok: false };
    },
  };
}

export type Totp = ReturnType<typeof createTotp>;
