import { randomBytes } from 'node:crypto';

/**
 * `bytes` random bytes as base64url, never with a leading '-': operators pass these identifiers
 * (client ids, key ids) as CLI arguments, where a leading '-' reads as an option.
 */
export function randomIdentifier(bytes: number): string {
  for (;;) {
    const id = randomBytes(bytes).toString('base64url');
    if (!id.startsWith('-')) return id;
  }
}
