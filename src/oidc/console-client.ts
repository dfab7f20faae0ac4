import { firstPartyClientMetadata } from './first-party-client.js';

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
  return firstPartyClientMetadata(issuer, { clientId: CONSOLE_CLIENT_ID, clientName: 'Gatehouse console', callbackPath: CONSOLE_CALLBACK_PATH, postLogoutPath: CONSOLE_PATH });
}
