import { firstPartyClientMetadata } from './first-party-client.js';

/**
 * The account pages' own client (SPEC §4: "a small account page a signed-in person reaches from
 * the login flow"): `<ISSUER>/account` signs the person in through Gatehouse itself with a code
 * flow and PKCE, redeemed in-process (./gateway-code.ts), exactly as the console does
 * (./console-client.ts). No row in the clients table, a secret no one holds, and a second factor
 * always (`require_mfa`): whoever adds or removes a passkey has passed one, and a person without
 * one enrolls first (a passkey or an authenticator app, with recovery codes).
 */
export const ACCOUNT_CLIENT_ID = 'gatehouse-account';

export const ACCOUNT_PATH = '/account';
export const ACCOUNT_CALLBACK_PATH = `${ACCOUNT_PATH}/callback`;
/** Where the login page's "Manage your passkeys" link goes. */
export const ACCOUNT_PASSKEYS_PATH = `${ACCOUNT_PATH}/passkeys`;

export function accountClientMetadata(issuer: string): Record<string, unknown> {
  return firstPartyClientMetadata(issuer, { clientId: ACCOUNT_CLIENT_ID, clientName: 'Your Gatehouse account', callbackPath: ACCOUNT_CALLBACK_PATH, postLogoutPath: ACCOUNT_PASSKEYS_PATH });
}
