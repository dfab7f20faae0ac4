import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { randomIdentifier } from './random-id.js';

/**
 * Client secrets are 256 random bits, so a keyed fast hash is the right tool (SPEC §2):
 * an attacker holding the database but not the server's HMAC key learns nothing, and the
 * token endpoint is not throttled by a password hash. argon2id is for people's passwords.
 */
const FORMAT = 'hmac-sha256';

export function generateClientSecret(): string {
  return randomBytes(32).toString('base64url');
}

export function generateClientId(): string {
  return randomIdentifier(16);
}

export interface ClientSecretHasher {
  hash(secret: string): string;
  /** Constant-time comparison of a presented secret with a stored hash. */
  verify(secret: string, stored: string): boolean;
}

export function createClientSecretHasher(hmacKey: Buffer): ClientSecretHasher {
  const digest = (secret: string) => createHmac('sha256', hmacKey).update(secret, 'utf8').digest();
  return {
    hash(secret) {
      return `${FORMAT}$${digest(secret).toString('base64url')}`;
    },
    verify(secret, stored) {
      const [format, encoded] = stored.split('$');
      if (format !== FORMAT || encoded === undefined) return false;
      const expected = Buffer.from(encoded, 'base64url');
      const actual = digest(secret);
      return expected.length === actual.length && timingSafeEqual(expected, actual);
    },
  };
}
