import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { z } from 'zod';

/**
 * OWASP "device cookies" (SPEC §4): after a completed sign-in the browser gets a signed cookie
 * naming the account (an HMAC tag of the normalised username, never the name itself) and a random
 * nonce. A later attempt for that account that carries it is throttled under `device:<nonce>`
 * instead of the account key, so failures from elsewhere do not lock that browser out.
 *
 * One cookie holds the entries of the last few accounts signed in from the browser; it is signed
 * as a whole with HMAC-SHA-256 under the server's cookie key (shared by every instance; the first
 * key signs, any verifies). A cookie that fails to verify or parse counts as no cookie.
 */
export const DEVICE_COOKIE = 'gatehouse.device';
const MAX_ENTRIES = 5;
const MAX_AGE_SECONDS = 365 * 24 * 60 * 60;
const LABEL = 'gatehouse device cookie\0';

// [account tag, nonce, issued at (seconds)]: all 22-character base64url (128 bits).
const B64_128 = z.string().regex(/^[A-Za-z0-9_-]{22}$/);
const Entries = z.array(z.tuple([B64_128, B64_128, z.number().int().nonnegative()])).max(MAX_ENTRIES);
type Entry = z.infer<typeof Entries>[number];

export interface DeviceCookies {
  /** The nonce of `cookie`'s entry for the account, when the cookie is genuine and the entry is not too old. */
  nonceFor(cookie: string | undefined, normalizedUsername: string): string | undefined;
  /** A new cookie value: a fresh entry for the account first, the other accounts' entries kept. */
  issue(cookie: string | undefined, normalizedUsername: string): { readonly value: string; readonly nonce: string };
  /** The Set-Cookie header for `value`. */
  header(value: string): string;
}

export function createDeviceCookies(options: {
  readonly keys: readonly Buffer[];
  readonly secure: boolean;
  /** Where the sign-in pages are, as the browser sees them (ISSUER's path + /interaction). */
  readonly path?: string;
}): DeviceCookies {
  const [signingKey] = options.keys;
  if (signingKey === undefined || signingKey.length < 32) throw new Error('device cookies need a key of at least 32 bytes');
  const mac = (key: Buffer, payload: string) => createHmac('sha256', key).update(LABEL).update(payload).digest();
  // Tags are made with the key that signs the cookie, so a cookie signed before a key rotation still finds its entries.
  const tagOf = (key: Buffer, normalizedUsername: string) => createHmac('sha256', key).update('gatehouse device account\0').update(normalizedUsername).digest().subarray(0, 16).toString('base64url');
  const now = () => Math.floor(Date.now() / 1000);

  /** The cookie's live entries and the key that signed it; nothing when it does not verify or parse. */
  function entriesOf(cookie: string | undefined): { entries: Entry[]; key: Buffer } | undefined {
    if (cookie === undefined || cookie.length > 1024) return undefined;
    const [payload, signature, extra] = cookie.split('.');
    if (payload === undefined || signature === undefined || extra !== undefined) return undefined;
    const presented = Buffer.from(signature, 'base64url');
    const key = options.keys.find((candidate) => {
      const expected = mac(candidate, payload);
      return expected.length === presented.length && timingSafeEqual(expected, presented);
    });
    if (key === undefined) return undefined;
    try {
      const parsed = Entries.safeParse(JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')));
      return parsed.success ? { entries: parsed.data.filter(([, , issuedAt]) => now() - issuedAt < MAX_AGE_SECONDS), key } : undefined;
    } catch {
      return undefined;
    }
  }

  return {
    nonceFor(cookie, normalizedUsername) {
      const found = entriesOf(cookie);
      if (found === undefined) return undefined;
      const tag = tagOf(found.key, normalizedUsername);
      return found.entries.find(([entryTag]) => entryTag === tag)?.[1];
    },
    issue(cookie, normalizedUsername) {
      const tag = tagOf(signingKey, normalizedUsername);
      // Other accounts' entries are kept while their tags are under the signing key (not across a rotation).
      const found = entriesOf(cookie);
      const others = found?.key === signingKey ? found.entries.filter(([entryTag]) => entryTag !== tag) : [];
      const nonce = randomBytes(16).toString('base64url');
      const fresh: Entry = [tag, nonce, now()];
      const entries: Entry[] = [fresh, ...others].slice(0, MAX_ENTRIES);
      const payload = Buffer.from(JSON.stringify(entries)).toString('base64url');
      return { value: `${payload}.${mac(signingKey, payload).toString('base64url')}`, nonce };
    },
    header(value) {
      // Only the sign-in pages read it; Lax keeps it off cross-site subrequests and posts.
      const expires = new Date(Date.now() + MAX_AGE_SECONDS * 1000).toUTCString();
      return `${DEVICE_COOKIE}=${value}; Path=${options.path ?? '/interaction'}; Max-Age=${MAX_AGE_SECONDS}; Expires=${expires}; HttpOnly; SameSite=Lax${options.secure ? '; Secure' : ''}`;
    },
  };
}
