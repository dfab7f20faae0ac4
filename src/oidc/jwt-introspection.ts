import { createLocalJWKSet, jwtVerify, type JSONWebKeySet, type JWTPayload } from 'jose';
import type { Middleware } from 'koa';
import type { KoaContextWithOIDC } from 'oidc-provider';
import type { Queryable } from '../db/database.js';
import { createClientStore } from '../db/clients.js';
import { SIGNING_ALGS } from '../crypto/signing-keys.js';
import { openEscrowed } from '../tokens/jwe.js';
import { allowedResources } from './clients.js';

/**
 * RFC 7662 introspection for JWT access tokens. oidc-provider only introspects tokens it stored;
 * for a JWT it answers `400 unsupported_token_type` (after authenticating the caller). This
 * middleware runs around the introspection route and answers for any structured token instead:
 *
 * - the signature must verify against Gatehouse's published keys, with our issuer and `at+jwt`;
 * - the token must not have expired, and its client must still exist (a deleted client's tokens
 *   are inactive at once, even though resource servers verifying offline cannot know that);
 * - whole-token encrypted tokens are opened with the escrowed content key (src/tokens/jwe.ts);
 * - only the token's own client, or a client allowed for the token's resource server, learns
 *   anything (RFC 7662 §4: the server decides who may introspect what).
 *
 * Stored (reference, SPEC §7) tokens are the provider's to introspect; only their `sub` is filled in.
 */
export interface OwnTokenKeys {
  readonly issuer: string;
  readonly publicJwks: () => JSONWebKeySet;
  readonly escrowKey: Buffer;
}

/**
 * Opens one of Gatehouse's own JWT access tokens with this instance's keys: a JWS, or a whole-token
 * JWE through its escrowed content key. The payload when the signature, issuer, `typ` and `exp`
 * hold and it names one `client_id` and one `aud`; undefined for anything else. Introspection and
 * token exchange (./token-exchange.ts) both start here.
 */
export function ownAccessTokenVerifier(deps: OwnTokenKeys): (token: string) => Promise<JWTPayload | undefined> {
  let seenKeys: JSONWebKeySet | undefined;
  let keySet: ReturnType<typeof createLocalJWKSet> | undefined;
  const keys = () => {
    const current = deps.publicJwks();
    if (current !== seenKeys || keySet === undefined) {
      seenKeys = current;
      keySet = createLocalJWKSet(current);
    }
    return keySet;
  };
  return async (token) => {
    const parts = token.split('.').length;
    let jws = token;
    if (parts === 5) {
      const opened = openEscrowed(token, deps.escrowKey);
      if (opened === undefined) return undefined;
      jws = opened.toString('utf8');
    } else if (parts !== 3) {
      return undefined;
    }
    const { payload } = await jwtVerify(jws, keys(), { issuer: deps.issuer, typ: 'at+jwt', algorithms: [...SIGNING_ALGS] }).catch(() => ({
      payload: undefined,
    }));
    if (payload === undefined || typeof payload.client_id !== 'string' || typeof payload.aud !== 'string') return undefined;
    return payload;
  };
}

export function introspectJwtAccessTokens(deps: OwnTokenKeys & { readonly db: Queryable }): Middleware {
  const clients = createClientStore(deps.db);
  const verifyOwn = ownAccessTokenVerifier(deps);

  async function introspect(token: string, callerId: string, callerResources: readonly string[]): Promise<Record<string, unknown> | undefined> {
    const payload = await verifyOwn(token);
    if (payload === undefined || typeof payload.client_id !== 'string' || typeof payload.aud !== 'string') return undefined;
    if (payload.client_id !== callerId && !callerResources.includes(payload.aud)) return undefined;
    if ((await clients.find(payload.client_id)) === undefined) return undefined;
    return {
      active: true,
      iss: payload.iss,
      sub: payload.sub,
      aud: payload.aud,
      exp: payload.exp,
      iat: payload.iat,
      jti: payload.jti,
      client_id: payload.client_id,
      scope: payload['scope'],
      auth_time: payload['auth_time'],
      acr: payload['acr'],
      // SPEC §2, RFC 8693 §4.1: who acted, for an exchanged token (nested for a chain).
      ...(payload['act'] === undefined ? {} : { act: payload['act'] }),
      // RFC 8705 §3.2 / RFC 9449 §6.2: the binding travels with the answer, and names the token type.
      ...(payload['cnf'] === undefined ? {} : { cnf: payload['cnf'] }),
      token_type: (payload['cnf'] as { jkt?: unknown } | undefined)?.jkt === undefined ? 'Bearer' : 'DPoP',
    };
  }

  return async function introspectJwt(ctx, next) {
    await next();
    const oidc = (ctx as unknown as KoaContextWithOIDC).oidc as KoaContextWithOIDC['oidc'] | undefined;
    if (oidc?.route !== 'introspection') return;
    const body = ctx.body as { active?: unknown; error?: unknown; sub?: unknown; client_id?: unknown } | undefined;
    // A stored (reference) client-credentials token: the provider leaves `sub` out; a JWT for the
    // same grant carries sub = client_id (RFC 9068 §2.2), and so does its introspection here.
    if (ctx.status === 200 && body?.active === true && body.sub === undefined && typeof body.client_id === 'string') body.sub = body.client_id;
    const structured = ctx.status === 400 && body?.error === 'unsupported_token_type';
    if (!structured && !(ctx.status === 200 && body?.active === false)) return;
    const token = oidc.params?.['token'];
    const caller = oidc.client;
    if (typeof token !== 'string' || caller === undefined) return;
    // RFC 7662 §2.2: anything we cannot vouch for is simply inactive.
    ctx.status = 200;
    ctx.body = (await introspect(token, caller.clientId, allowedResources(caller))) ?? { active: false };
  };
}
