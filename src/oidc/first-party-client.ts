import { randomUUID } from 'node:crypto';

/**
 * The metadata of a built-in first-party client for one of Gatehouse's own pages (the console,
 * the account pages): a code flow with PKCE whose code Gatehouse redeems in-process
 * (./gateway-code.ts), no row in the clients table, a secret no one holds, no consent asked,
 * and a second factor always (`require_mfa`).
 */
export function firstPartyClientMetadata(
  issuer: string,
  client: { readonly clientId: string; readonly clientName: string; readonly callbackPath: string; readonly postLogoutPath: string },
): Record<string, unknown> {
  const base = issuer.replace(/\/+$/, '');
  return {
    client_id: client.clientId,
    client_name: client.clientName,
    client_secret: `unusable:${randomUUID()}`,
    token_endpoint_auth_method: 'client_secret_basic',
    grant_types: ['authorization_code'],
    response_types: ['code'],
    redirect_uris: [`${base}${client.callbackPath}`],
    post_logout_redirect_uris: [`${base}${client.postLogoutPath}`],
    scope: 'openid',
    registered_scope: 'openid',
    allowed_resources: [],
    first_party: true,
    require_mfa: true,
    tokens_not_before: 0,
  };
}
