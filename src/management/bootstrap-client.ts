import type { ClientSecretHasher } from '../crypto/client-secret.js';
import { generateClientId, generateClientSecret } from '../crypto/client-secret.js';
import type { Queryable } from '../db/database.js';
import { createClientStore, type NewClient } from '../db/clients.js';
import { createResourceServerStore } from '../db/resource-servers.js';
import { ADMIN_SCOPES, adminResourceIdentifier } from './admin-scopes.js';

export interface BootstrapResult {
  /** Set only when a client was generated now: its secret is shown this once and never stored. */
  readonly generated?: { readonly clientId: string; readonly clientSecret: string };
  readonly ensuredClientId?: string;
}

function adminClient(clientId: string, secretHash: string, issuer: string): NewClient {
  return {
    clientId,
    clientName: 'Gatehouse bootstrap admin',
    clientSecretHash: secretHash,
    metadata: {
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
      token_endpoint_auth_method: 'client_secret_basic',
      scope: ADMIN_SCOPES.join(' '),
    },
    allowedResources: [adminResourceIdentifier(issuer)],
    requireMfa: false,
  };
}

/**
 * SPEC §1: the built-in admin resource server always exists; BOOTSTRAP_ADMIN_CLIENT_* ensures
 * that client (idempotently); with neither set and no clients at all, one is generated.
 * Call under the start-up lock so two instances starting at once create one client, not two.
 */
export async function bootstrapAdmin(
  db: Queryable,
  options: { issuer: string; hasher: ClientSecretHasher; configured: { clientId: string; clientSecret: string } | undefined },
): Promise<BootstrapResult> {
  await createResourceServerStore(db).ensureBuiltIn({
    identifier: adminResourceIdentifier(options.issuer),
    name: 'Gatehouse admin API',
    scopes: ADMIN_SCOPES,
  });
  const clients = createClientStore(db);
  if (options.configured !== undefined) {
    const { clientId, clientSecret } = options.configured;
    await clients.upsert(adminClient(clientId, options.hasher.hash(clientSecret), options.issuer));
    return { ensuredClientId: clientId };
  }
  if ((await clients.count()) > 0) return {};
  const clientId = generateClientId();
  const clientSecret = generateClientSecret();
  await clients.insert(adminClient(clientId, options.hasher.hash(clientSecret), options.issuer));
  return { generated: { clientId, clientSecret } };
}

/** SPEC §1: a generated admin client is printed once, on stdout rather than through the logger. */
export function announceGeneratedAdmin(result: BootstrapResult, write: (text: string) => void = (text) => process.stdout.write(text)): void {
  const generated = result.generated;
  if (generated === undefined) return;
  write(
    `\nGatehouse created an admin client (shown only now, store the secret safely):\n` +
      `  client_id:     ${generated.clientId}\n  client_secret: ${generated.clientSecret}\n\n`,
  );
}
