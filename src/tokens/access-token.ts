import type { Middleware } from 'koa';
import type { KoaContextWithOIDC } from 'oidc-provider';
import type { JweEncryptor } from './crypto-pool.js';
import type { JweRecipient } from './jwe.js';

/**
 * The double-wrapped access token (SPEC §3), in the two places oidc-provider lets us in:
 *
 * 1. `innerLayer` runs as `formats.customizers.jwt`, before the provider signs: it adds `inner`,
 *    a compact JWE to the resource server's key, so the signature covers it and it cannot be
 *    swapped between tokens.
 * 2. `encryptWholeTokens` runs around the token endpoint: for resource servers with
 *    `encrypt_whole_token`, it encrypts the signed JWT into a nested JWT with `cty: "JWT"`
 *    (RFC 7519 §5.2). The provider's own nested encryption writes `cty: "at+jwt"`, which
 *    common verifiers do not treat as a nested JWT.
 */

interface TokenLike {
  readonly resourceServer?: { identifier(): string } | undefined;
  readonly client?: { readonly clientId: string; readonly clientName?: string | undefined } | undefined;
  readonly clientId?: string;
  readonly accountId?: string | undefined;
  readonly sid?: string | undefined;
}

interface JwtStructure {
  header?: Record<string, unknown> | undefined;
  payload: Record<string, unknown>;
}

/** Extra inner-layer claims for tokens issued to a person (src/tokens/person-claims.ts). */
export type PersonClaims = (ctx: KoaContextWithOIDC | undefined, token: TokenLike) => Promise<Record<string, unknown> | undefined>;

/** Set by the customizer when the token being issued must be encrypted whole. */
const WHOLE_TOKEN_RECIPIENT = 'gatehouseWholeTokenRecipient';

/**
 * What the inner layer needs of a resource server: the key its inner layer is encrypted to (if
 * any) and whether the whole token is encrypted too. src/oidc/resource-server-registry.ts is one.
 */
export interface InnerRecipients {
  get(identifier: string): Promise<{ readonly recipient: JweRecipient | undefined; readonly row: { readonly encrypt_whole_token: boolean } } | undefined>;
}

export function innerLayer(registry: InnerRecipients, encryptor: JweEncryptor, personClaims?: PersonClaims) {
  // `ctx` is undefined for tokens minted outside a provider request (src/oidc/minted-access-tokens.ts),
  // which encrypt whole tokens themselves.
  return async function addInnerLayer(ctx: KoaContextWithOIDC | undefined, token: TokenLike, jwt: JwtStructure): Promise<void> {
    const identifier = token.resourceServer?.identifier();
    if (identifier === undefined) return;
    const entry = await registry.get(identifier);
    if (entry?.recipient === undefined) return;
    const inner = {
      jti: jwt.payload['jti'],
      client_id: jwt.payload['client_id'],
      client_name: token.client?.clientName ?? jwt.payload['client_id'],
      ...(personClaims === undefined ? undefined : await personClaims(ctx, token)),
    };
    jwt.payload['inner'] = await encryptor.encrypt(entry.recipient, JSON.stringify(inner));
    // Tells encryptWholeTokens, later in this request, to wrap the signed token for this server.
    if (entry.row.encrypt_whole_token && ctx !== undefined) (ctx.state as Record<string, unknown>)[WHOLE_TOKEN_RECIPIENT] = entry.recipient;
  };
}

export function encryptWholeTokens(escrowKey: Buffer, encryptor: JweEncryptor): Middleware {
  return async function encryptWholeToken(ctx, next) {
    await next();
    const recipient = (ctx.state as Record<string, unknown>)[WHOLE_TOKEN_RECIPIENT] as JweRecipient | undefined;
    if (recipient === undefined || ctx.status !== 200) return;
    const body = ctx.body as { access_token?: unknown } | undefined;
    const jws = body?.access_token;
    if (typeof jws !== 'string' || jws.split('.').length !== 3) return;
    (body as { access_token: string }).access_token = await encryptor.encrypt(recipient, jws, { extraHeader: { cty: 'JWT' }, escrowKey });
  };
}
