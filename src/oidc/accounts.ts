import type { Account, KoaContextWithOIDC } from 'oidc-provider';
import type { Queryable } from '../db/database.js';
import { createUserStore, type UserRow } from '../db/users.js';
import { personClaims } from '../tokens/person-claims.js';

/** SPEC §4: the acr for a password-only sign-in, and for one with a second factor. */
export const ACR_PASSWORD = 'urn:gatehouse:acr:pwd';
export const ACR_MFA = 'urn:gatehouse:acr:mfa';

/** Standard claims by scope (OIDC Core §5.4); `sub` is the user's stable opaque id. */
export const CLAIMS_BY_SCOPE = {
  sid: null,
  // How the person signed in (OIDC Core §2, RFC 8176) always goes into the ID token.
  openid: ['sub', 'acr', 'amr', 'auth_time'],
  profile: ['name', 'preferred_username', 'updated_at'],
  email: ['email', 'email_verified'],
};

export function standardClaims(user: UserRow): Record<string, unknown> {
  return { ...personClaims(user), updated_at: Math.floor(user.updated_at.getTime() / 1000) };
}

/** Finds people for oidc-provider; a disabled or deleted person is not found, so no token is issued. */
export function createAccounts(db: Queryable) {
  const users = createUserStore(db);
  // One lookup per request even when the provider asks several times (ID token, userinfo, inner layer).
  const perRequest = new WeakMap<object, Map<string, Promise<UserRow | undefined>>>();

  function load(ctx: KoaContextWithOIDC | undefined, id: string): Promise<UserRow | undefined> {
    if (ctx === undefined) return users.findById(id);
    let cache = perRequest.get(ctx);
    if (cache === undefined) {
      cache = new Map();
      perRequest.set(ctx, cache);
    }
    let user = cache.get(id);
    if (user === undefined) {
      user = users.findById(id);
      cache.set(id, user);
    }
    return user;
  }

  return {
    load,
    async findAccount(ctx: KoaContextWithOIDC, sub: string): Promise<Account | undefined> {
      const user = await load(ctx, sub);
      if (user === undefined || user.disabled) return undefined;
      return {
        accountId: user.id,
        claims: () => standardClaims(user) as { sub: string },
      };
    },
  };
}

export type Accounts = ReturnType<typeof createAccounts>;
