import { randomBytes } from 'node:crypto';
import type { Queryable } from '../db/database.js';
import { createServerSecretStore } from '../db/server-secrets.js';
import type { Envelope } from './envelope.js';

/** Names of the random server-held secrets, each 32 bytes, sealed with MASTER_KEY. */
export const SERVER_SECRETS = {
  cookieSigning: 'cookie-signing-key',
  clientSecretHmac: 'client-secret-hmac-key',
  // Wraps each whole-token-encrypted token's content key so Gatehouse can introspect it.
  tokenEscrow: 'token-escrow-key',
} as const;

export type ServerSecretName = (typeof SERVER_SECRETS)[keyof typeof SERVER_SECRETS];

/** Loads a server secret, creating it on first start; concurrent starters all get the first writer's value. */
export async function loadOrCreateServerSecret(db: Queryable, envelope: Envelope, name: ServerSecretName): Promise<Buffer> {
  const store = createServerSecretStore(db);
  const purpose = `server_secrets:${name}`;
  const existing = await store.find(name);
  if (existing !== undefined) return envelope.open(existing, purpose);
  const sealed = await store.insertIfMissing(name, envelope.seal(randomBytes(32), purpose));
  return envelope.open(sealed, purpose);
}
