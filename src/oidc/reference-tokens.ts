import type Provider from 'oidc-provider';

/**
 * Reference (opaque) access tokens, SPEC §7: a resource server with `token_format: "reference"`
 * gets random strings from /token, stored by the adapter. The gateway accepts them by looking
 * them up in-process, with the checks the provider's own introspection makes (valid, not
 * expired, its grant still standing), so no HTTP round trip to itself.
 */
export interface ReferenceToken {
  readonly sub: string;
  readonly client_id: string;
  readonly aud: readonly string[];
  readonly scope: string | undefined;
  readonly iat: number;
  readonly exp: number;
  readonly acr: string | undefined;
  readonly auth_time: number | undefined;
  /** The DPoP key or client certificate the token is bound to (SPEC §8), as a JWT's `cnf` says it. */
  readonly cnf: { jkt?: string; 'x5t#S256'?: string } | undefined;
}

/** Opaque token values are base64url (oidc-provider's nanoid); anything else is not looked up. */
const OPAQUE = /^[A-Za-z0-9_-]{20,256}$/;

interface StoredToken {
  readonly isValid: boolean;
  readonly clientId?: string;
  readonly accountId?: string;
  readonly grantId?: string;
  readonly aud?: string | string[];
  readonly scope?: string;
  readonly iat?: number;
  readonly exp?: number;
  readonly extra?: Record<string, unknown>;
  readonly jkt?: string;
  readonly 'x5t#S256'?: string;
}

function confirmation(stored: StoredToken): ReferenceToken['cnf'] {
  if (stored.jkt !== undefined) return { jkt: stored.jkt };
  if (stored['x5t#S256'] !== undefined) return { 'x5t#S256': stored['x5t#S256'] };
  return undefined;
}

export function isReferenceTokenShape(value: string): boolean {
  return OPAQUE.test(value);
}

export function createReferenceTokens(current: () => Provider) {
  return {
    async find(value: string): Promise<ReferenceToken | undefined> {
      if (!OPAQUE.test(value)) return undefined;
      const provider = current();
      // A person's token is an AccessToken, a service's a ClientCredentials token.
      const stored = ((await provider.AccessToken.find(value).catch(() => undefined)) ?? (await provider.ClientCredentials.find(value).catch(() => undefined))) as
        | StoredToken
        | undefined;
      if (stored === undefined || !stored.isValid || stored.clientId === undefined || stored.exp === undefined || stored.iat === undefined) return undefined;
      if (stored.grantId !== undefined) {
        const grant = await provider.Grant.find(stored.grantId);
        if (grant === undefined || grant.clientId !== stored.clientId || grant.accountId !== stored.accountId) return undefined;
      }
      const aud = stored.aud === undefined ? [] : Array.isArray(stored.aud) ? stored.aud : [stored.aud];
      const extra = stored.extra ?? {};
      return {
        sub: stored.accountId ?? stored.clientId,
        client_id: stored.clientId,
        aud,
        scope: stored.scope,
        iat: stored.iat,
        exp: stored.exp,
        acr: typeof extra['acr'] === 'string' ? extra['acr'] : undefined,
        auth_time: typeof extra['auth_time'] === 'number' ? extra['auth_time'] : undefined,
        cnf: confirmation(stored),
      };
    },
  };
}

export type ReferenceTokens = ReturnType<typeof createReferenceTokens>;
