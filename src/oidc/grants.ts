import type { KoaContextWithOIDC } from 'oidc-provider';
import { isFirstParty } from './clients.js';

/**
 * Consent is remembered per grant: the provider reuses the session's grant for this client and
 * only asks again for what it does not cover. A client marked `first_party` (the organisation's
 * own apps) never shows the consent page: its grant is extended to what it asked for here.
 */
export async function loadExistingGrant(ctx: KoaContextWithOIDC) {
  const { oidc } = ctx;
  const client = oidc.client;
  const session = oidc.session;
  if (client === undefined || session?.accountId === undefined) return undefined;
  const grantId = (oidc.result as { consent?: { grantId?: string } } | undefined)?.consent?.grantId ?? session.grantIdFor(client.clientId);
  const existing = grantId === undefined ? undefined : await oidc.provider.Grant.find(grantId);
  if (!isFirstParty(client)) return existing;

  const grant = existing ?? new oidc.provider.Grant({ accountId: session.accountId, clientId: client.clientId });
  const requested = oidc.requestParamScopes;
  const oidcScopes = [...oidc.requestParamOIDCScopes];
  if (oidcScopes.length > 0) grant.addOIDCScope(oidcScopes.join(' '));
  const claims = oidc.requestParamClaims;
  if (claims !== undefined && claims.size > 0) grant.addOIDCClaims([...claims]);
  for (const [indicator, server] of Object.entries(oidc.resourceServers ?? {})) {
    const scopes = [...requested].filter((scope) => server.scopes.has(scope));
    if (scopes.length > 0) grant.addResourceScope(indicator, scopes.join(' '));
  }
  await grant.save();
  return grant;
}
