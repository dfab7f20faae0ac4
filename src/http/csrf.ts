import { createHmac } from 'node:crypto';
import { sameString } from './cookies.js';

/**
 * CSRF tokens for forms, bound to one browser-held binding: HMAC-SHA-256 of its id under a server
 * key. The hosted pages bind to the interaction (itself bound to the browser by oidc-provider's
 * signed interaction cookie), the console to its session; `purpose` keeps one's tokens from
 * passing at the other. Compared in constant time.
 */
export function createCsrf(key: Buffer, purpose: 'pages' | 'console' | 'account' = 'pages') {
  // The hosted pages' label predates `purpose`: tokens in forms already shown stay valid.
  const label = purpose === 'pages' ? 'gatehouse csrf\0' : `gatehouse ${purpose} csrf\0`;
  const tokenFor = (id: string) => createHmac('sha256', key).update(label).update(id).digest('base64url');
  return {
    tokenFor,
    verify(id: string, presented: unknown): boolean {
      if (typeof presented !== 'string' || presented.length > 100) return false;
      return sameString(tokenFor(id), presented);
    },
  };
}

export type Csrf = ReturnType<typeof createCsrf>;

