import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';

/**
 * AES-256-GCM envelope for secrets at rest (private signing keys, cookie keys, TOTP secrets).
 *
 * Format: `ge1.<master key id>.<iv>.<ciphertext>.<tag>` (base64url parts). The key id names
 * which MASTER_KEY sealed the value, so a key ring can hold the old key while values are
 * re-sealed under a new one. `purpose` is bound as additional authenticated data so a
 * ciphertext copied from one row or column to another fails to open.
 */
const PREFIX = 'ge1';

export class EnvelopeError extends Error {
  readonly code: 'envelope_malformed' | 'envelope_unknown_key' | 'envelope_tampered';

  constructor(code: EnvelopeError['code'], message: string) {
    super(message);
    this.name = 'EnvelopeError';
    this.code = code;
  }
}

export function masterKeyId(key: Buffer): string {
  return createHash('sha256').update('gatehouse master key id\0').update(key).digest('base64url').slice(0, 11);
}

/** The id of the master key that sealed `sealed`, or undefined when it is not an envelope. */
export function sealedKeyId(sealed: string): string | undefined {
  const parts = sealed.split('.');
  return parts.length === 5 && parts[0] === PREFIX ? parts[1] : undefined;
}

export interface Envelope {
  readonly keyId: string;
  seal(plaintext: Buffer | string, purpose: string): string;
  open(sealed: string, purpose: string): Buffer;
}

/** `current` seals; `previous` keys can still open values sealed before a MASTER_KEY rotation. */
export function createEnvelope(current: Buffer, previous: readonly Buffer[] = []): Envelope {
  for (const key of [current, ...previous]) {
    if (key.length !== 32) throw new RangeError('a master key must be 32 bytes');
  }
  const ring = new Map<string, Buffer>([current, ...previous].map((key) => [masterKeyId(key), key]));
  const keyId = masterKeyId(current);

  return {
    keyId,
    seal(plaintext, purpose) {
      const iv = randomBytes(12);
      const cipher = createCipheriv('aes-256-gcm', current, iv);
      cipher.setAAD(Buffer.from(purpose, 'utf8'));
      const ciphertext = Buffer.concat([cipher.update(plaintext), cipher.final()]);
      return [PREFIX, keyId, iv.toString('base64url'), ciphertext.toString('base64url'), cipher.getAuthTag().toString('base64url')].join('.');
    },
    open(sealed, purpose) {
      const parts = sealed.split('.');
      if (parts.length !== 5 || parts[0] !== PREFIX) throw new EnvelopeError('envelope_malformed', 'not a Gatehouse envelope');
      const [, id, iv, ciphertext, tag] = parts as [string, string, string, string, string];
      const key = ring.get(id);
      if (key === undefined) {
        throw new EnvelopeError('envelope_unknown_key', `sealed with master key ${id}, which is not configured (MASTER_KEY changed?)`);
      }
      try {
        const decipher = createDecipheriv('aes-256-gcm', key, Buffer.from(iv, 'base64url'));
        decipher.setAAD(Buffer.from(purpose, 'utf8'));
        decipher.setAuthTag(Buffer.from(tag, 'base64url'));
        return Buffer.concat([decipher.update(Buffer.from(ciphertext, 'base64url')), decipher.final()]);
      } catch {
        throw new EnvelopeError('envelope_tampered', 'envelope failed authentication');
      }
    },
  };
}
