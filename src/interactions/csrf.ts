import { createHmac, timingSafeEqual } from 'node:crypto';

/**
 * CSRF tokens for the hosted pages' forms, bound to one interaction: HMAC-SHA-256 of the
 * interaction uid under a server key. The interaction itself is bound to the browser by
 * oidc-provider's signed interaction cookie, so a token is useless in any other browser or
 * interaction. Compared in constant time.
 */
export function createCsrf(key: Buffer) {
  const tokenFor = (uid: string) => createHmac('sha256', key).update('gatehouse csrf\0').update(uid).digest('base64url');
  return {
    tokenFor,
    verify(uid: string, presented: unknown): boolean {
      if (typeof presented !== 'string' || presented.length > 100) return false;
      const expected = Buffer.from(tokenFor(uid));
      const actual = Buffer.from(presented);
      return expected.length === actual.length && timingSafeEqual(expected, actual);
    },
  };
}

export type Csrf = ReturnType<typeof createCsrf>;
