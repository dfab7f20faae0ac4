import type { KoaContextWithOIDC } from 'oidc-provider';

/**
 * Claims of access tokens issued to a person (SPEC §3). Public: `auth_time` and `acr` only;
 * everything personal goes to the encrypted inner layer.
 */

interface PersonToken {
  readonly accountId?: string | undefined;
  readonly sid?: string | undefined;
}

interface Authentication {
  readonly authTime?: number;
  readonly acr?: string;
  readonly amr?: string[];
  readonly sid?: string;
  /** The sign-in session's stable id (oidc-provider only fills `sid` for logout-aware clients). */
  readonly sessionUid?: string;
}

/** The code or refresh token being exchanged carries how the person signed in. */
function authentication(ctx: KoaContextWithOIDC): Authentication | undefined {
  const entities = ctx.oidc.entities as { AuthorizationCode?: Authentication; RefreshToken?: Authentication };
  return entities.AuthorizationCode ?? entities.RefreshToken;
}

/** For `extraTokenClaims`: the public person claims. */
export function publicPersonClaims(ctx: KoaContextWithOIDC, token: PersonToken): Record<string, unknown> | undefined {
  if (token.accountId === undefined) return undefined;
  const signIn = authentication(ctx);
  return signIn === undefined ? undefined : { auth_time: signIn.authTime, acr: signIn.acr };
}

/** For the inner layer: who the person is (decrypted only by trusted resource servers). */
/** What the inner layer needs of a person: their row, read once per request. */
export interface PersonLookup {
  load(ctx: KoaContextWithOIDC, id: string): Promise<
    { id: string; username: string; email: string | null; email_verified: boolean; name: string | null; roles: readonly string[] } | undefined
  >;
}

export function innerPersonClaims(accounts: PersonLookup) {
  return async function personInner(ctx: KoaContextWithOIDC, token: PersonToken): Promise<Record<string, unknown> | undefined> {
    if (token.accountId === undefined) return undefined;
    const user = await accounts.load(ctx, token.accountId);
    if (user === undefined) return undefined;
    const auth = authentication(ctx);
    return {
      sub: user.id,
      preferred_username: user.username,
      email: user.email ?? undefined,
      email_verified: user.email === null ? undefined : user.email_verified,
      name: user.name ?? undefined,
      roles: user.roles,
      amr: auth?.amr,
      sid: token.sid ?? auth?.sid ?? auth?.sessionUid,
    };
  };
}
