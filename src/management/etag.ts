import { createHash } from 'node:crypto';
import { PreconditionFailed } from './errors.js';

/**
 * Optimistic concurrency for PATCH (RFC 9110 §13.1.1): the ETag is a hash of the resource as the
 * API shows it, so any change by anyone changes it. A PATCH whose If-Match names an older
 * version gets 412 and changes nothing, so two admins cannot silently overwrite each other.
 */
export function etagOf(representation: unknown): string {
  return `"${createHash('sha256').update(JSON.stringify(representation)).digest('base64url').slice(0, 22)}"`;
}

/** Throws 412 unless `ifMatch` (absent, `*`, or a list of strong ETags) matches `current`. */
export function checkIfMatch(ifMatch: string | undefined, current: unknown): void {
  if (ifMatch === undefined || ifMatch.trim() === '' || ifMatch.trim() === '*') return;
  const etag = etagOf(current);
  // If-Match uses the strong comparison: weak validators (W/"...") never match.
  const candidates = ifMatch.split(',').map((value) => value.trim());
  if (!candidates.includes(etag)) {
    throw new PreconditionFailed('The resource changed since you read it (If-Match does not match its ETag). Read it again and retry.');
  }
}
