import { createHash } from 'node:crypto';
import type { GatewayRouteRow } from '../db/gateway-routes.js';
import { BoundedCache } from '../lib/bounded-cache.js';
import type { MintRequest, MintedToken } from '../oidc/minted-access-tokens.js';
import type { GatewayToken } from './decide.js';

/**
 * SPEC §7 `upstream_token: "exchange"`: the upstream gets a double-wrapped token for its own
 * resource server (`upstream_resource_server`, default the route's), with the caller's `sub`,
 * `client_id` and scopes, `exp` at most 60 s away and never past the original's. Remembered per
 * original credential and route, so a client calling again within the minute costs no signing
 * and no encryption; handed out only while it has a few seconds left, so an upstream never gets
 * a token about to expire.
 */
export const EXCHANGED_TOKEN_SECONDS = 60;
/** A remembered token is not handed out with less than this left. */
const MIN_REMAINING_SECONDS = 10;

export function createUpstreamTokens(deps: { readonly mint: (request: MintRequest) => Promise<MintedToken | undefined>; readonly now?: () => number; readonly maxEntries?: number }) {
  const now = deps.now ?? Date.now;
  const remembered = new BoundedCache<string, MintedToken>(deps.maxEntries ?? 10_000);

  return async function upstreamToken(key: string, token: GatewayToken, route: GatewayRouteRow): Promise<string | undefined> {
    const resource = route.upstream_resource_server ?? route.resource_server;
    if (resource === null) return undefined;
    // The credential itself is never kept as a key (a heap dump shows no tokens).
    const cacheKey = `${createHash('sha256').update(key).digest('base64url')}:${route.id}:${route.updated_at.getTime()}`;
    const seconds = Math.floor(now() / 1000);
    const hit = remembered.get(cacheKey);
    if (hit !== undefined && hit.exp - seconds >= MIN_REMAINING_SECONDS) return hit.value;
    const exp = Math.min(seconds + EXCHANGED_TOKEN_SECONDS, token.exp);
    if (exp <= seconds) return undefined;
    const minted = await deps.mint({ sub: token.sub, clientId: token.client_id, scope: token.scope, resource, exp, acr: token.acr, authTime: token.auth_time });
    if (minted !== undefined) remembered.set(cacheKey, minted);
    return minted?.value;
  };
}
