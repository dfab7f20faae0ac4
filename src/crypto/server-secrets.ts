import { randomBytes } from 'node:crypto';
import type { Envelope } from './envelope.js';

/** Names of the random server-held secrets, each 32 bytes, sealed with MASTER_KEY. */
export const SERVER_SECRETS = {
  cookieSigning: 'cookie-signing-key',
  clientSecretHmac: 'client-secret-hmac-key',
  // Wraps each whole-token-encrypted token's content key so Gatehouse can introspect it.
  tokenEscrow: 'token-escrow-key',
  // Keys DPoP nonces (RFC 9449 §8), so a nonce one instance hands out is good at every other.
  dpopNonce: 'dpop-nonce-key',
} as const;

export type ServerSecretName = (typeof SERVER_SECRETS)[keyof typeof SERVER_SECRETS];

/** Where sealed server secrets are kept (src/db/server-secrets.ts). */
export interface ServerSecretStore {
  find(name: string): Promise<string | undefined>;
  /** Stores `sealed` unless a value exists; returns the stored value either way. */
  insertIfMissing(name: string, sealed: string): Promise<string>;
}

/** Loads a server secret, creating it on first start; concurrent starters all get the first writer's value. */
export async function loadOrCreateServerSecret(store: ServerSecretStore, envelope: Envelope, name: ServerSecretName): Promise<Buffer> {
  const purpose = `server_secrets:${name}`;
  const existing = await store.find(name);
  if (existing !== undefined) return envelope.open(existing, purpose);
  const sealed = await store.insertIfMissing(name, envelope.seal(randomBytes(32), purpose));
  return envelope.open(sealed, purpose);
}
