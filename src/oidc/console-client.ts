import { randomUUID } from 'node:crypto';

/**
 * The admin console's own client (SPEC §11): `<ISSUER>/console` signs people in through
 * Gatehouse itself with a code flow and PKCE, and redeems the code in-process
 * (./gateway-code.ts). Like the gateway's client it is no row in the clients table and has a
 * secret no one holds; unlike it, it always asks for a second factor (`require_mfa`).
 */
export const CONSOLE_CLIENT_ID = 'gatehouse-console';

export const CONSOLE_PATH = '/console';
export const CONSOLE_CALLBACK_PATH = `${CONSOLE_PATH}/callback`;

export function consoleClientMetadata(issuer: string): Record<string, unknown> {
  const base = issuer.replace(/\/+$/, '');
  return {
    client_id: CONSOLE_CLIENT_ID,
    client_name: 'Gatehouse console',
    client_secret: `unusable:${randomUUID()}`,
    token_endpoint_auth_method: 'client_secret_basic',
    grant_types: ['authorization_code'],
    response_types: ['code'],
    redirect_uris: [`${base}${CONSOLE_CALLBACK_PATH}`],
    post_logout_redirect_uris: [`${base}${CONSOLE_PATH}`],
    scope: 'openid',
    registered_scope: 'openid',
    allowed_resources: [],
    first_party: true,
    require_mfa: true,
    tokens_not_before: 0,
  };
}
