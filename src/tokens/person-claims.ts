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

/**
 * How the person signed in, for tokens Gatehouse mints without a code or refresh token to read it
 * from: the gateway's exchanged tokens (src/oidc/minted-access-tokens.ts, outside a provider
 * request) and RFC 8693 token exchange (src/oidc/token-exchange.ts, from the subject token). The
 * minter attaches it to the token object; an attached one wins.
 */
const mintedSignIns = new WeakMap<object, Authentication>();

export function attachSignIn(token: object, signIn: Authentication): void {
  mintedSignIns.set(token, signIn);
}

/** The code or refresh token being exchanged carries how the person signed in. */
function authentication(ctx: KoaContextWithOIDC | undefined, token: object): Authentication | undefined {
  const attached = mintedSignIns.get(token);
  if (attached !== undefined || ctx === undefined) return attached;
  const entities = ctx.oidc.entities as { AuthorizationCode?: Authentication; RefreshToken?: Authentication };
  return entities.AuthorizationCode ?? entities.RefreshToken;
}

/** For `extraTokenClaims`: the public person claims. */
export function publicPersonClaims(ctx: KoaContextWithOIDC | undefined, token: PersonToken): Record<string, unknown> | undefined {
  if (token.accountId === undefined) return undefined;
  const signIn = authentication(ctx, token);
  return signIn === undefined ? undefined : { auth_time: signIn.authTime, acr: signIn.acr };
}

/** For the inner layer: who the person is (decrypted only by trusted resource servers). */
/** A person as the claims need them (src/db/users.ts rows are one). */
export interface Person {
  readonly id: string;
  readonly username: string;
  readonly email: string | null;
  readonly email_verified: boolean;
  readonly name: string | null;
  readonly roles: readonly string[];
}

/**
 * The one mapping of a person to OpenID claims (OIDC Core §5.1), shared by the ID token and
 * userinfo (src/oidc/accounts.ts) and the inner layer: absent values are left out, and
 * `email_verified` only accompanies an email.
 */
export function personClaims(user: Person): { sub: string; preferred_username: string; name?: string; email?: string; email_verified?: boolean } {
  return {
    sub: user.id,
    preferred_username: user.username,
    ...(user.name === null ? {} : { name: user.name }),
    ...(user.email === null ? {} : { email: user.email, email_verified: user.email_verified }),
  };
}

/** What the inner layer needs of a person: their row, read once per request. */
export interface PersonLookup {
  load(ctx: KoaContextWithOIDC | undefined, id: string): Promise<Person | undefined>;
}

export function innerPersonClaims(accounts: PersonLookup) {
  return async function personInner(ctx: KoaContextWithOIDC | undefined, token: PersonToken): Promise<Record<string, unknown> | undefined> {
    if (token.accountId === undefined) return undefined;
    const user = await accounts.load(ctx, token.accountId);
    if (user === undefined) return undefined;
    const auth = authentication(ctx, token);
    return {
      ...personClaims(user),
      roles: user.roles,
      amr: auth?.amr,
      sid: token.sid ?? auth?.sid ?? auth?.sessionUid,
    };
  };
}
