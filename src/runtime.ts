import path from 'node:path';
import type { Logger } from 'pino';
import type { Config } from './config.js';
import { bootstrapAdmin, type BootstrapResult } from './management/bootstrap-client.js';
import { createClientSecretHasher, type ClientSecretHasher } from './crypto/client-secret.js';
import { createEnvelope, type Envelope } from './crypto/envelope.js';
import { resolveMasterKey } from './crypto/master-key.js';
import { loadOrCreateServerSecret, SERVER_SECRETS } from './crypto/server-secrets.js';
import { usernameSkeleton } from './accounts/usernames.js';
import { connectPostgres, type Database } from './db/database.js';
import { openPglite } from './db/pglite.js';
import { loadMigrations, migrate, withStartupLock, type Migration } from './db/migrator.js';
import { createServerSecretStore } from './db/server-secrets.js';
import { createUserStore } from './db/users.js';
import { ensureSigningKeys } from './oidc/keys.js';
import { loadTlsMaterial, type TlsMaterial } from './http/tls.js';

/** Everything the app needs, prepared once at start-up and passed in (never imported as a singleton). */
export interface Runtime {
  readonly config: Config;
  readonly logger: Logger;
  readonly db: Database;
  readonly migrations: readonly Migration[];
  readonly envelope: Envelope;
  readonly clientSecrets: ClientSecretHasher;
  readonly cookieKeys: readonly string[];
  readonly tokenEscrowKey: Buffer;
  /** Keys DPoP nonces; the same at every instance (SPEC §8). */
  readonly dpopNonceSecret: Buffer;
  readonly bootstrap: BootstrapResult;
  /** TLS certificates and client-certificate CAs (SPEC §8), reloadable on SIGHUP. */
  readonly tls: TlsMaterial;
}

export function openDatabase(config: Config, logger: Logger): Promise<Database> {
  if (config.databaseUrl !== undefined) {
    return Promise.resolve(
      connectPostgres({
        connectionString: config.databaseUrl,
        onPoolError: (error) => logger.warn({ err: { message: error.message } }, 'database connection lost'),
      }),
    );
  }
  return openPglite(path.join(config.dataDir, 'pglite'));
}

export async function openRuntime(config: Config, logger: Logger, existingDb?: Database): Promise<Runtime> {
  const db = existingDb ?? (await openDatabase(config, logger));
  try {
    const migrations = await loadMigrations();
    const report = await migrate(db, migrations);
    if (report.applied.length > 0) logger.info({ applied: report.applied }, 'migrations applied');

    const masterKey = await resolveMasterKey(config.masterKey, config.dataDir, (message) => logger.warn(message));
    const envelope = createEnvelope(masterKey, config.masterKeyPrevious);

    const prepared = await withStartupLock(db, async (session) => {
      const createdKeys = await ensureSigningKeys(session, envelope);
      if (createdKeys.length > 0) logger.info({ keys: createdKeys }, 'signing keys generated');
      const secrets = createServerSecretStore(session);
      const cookieKey = await loadOrCreateServerSecret(secrets, envelope, SERVER_SECRETS.cookieSigning);
      const hmacKey = await loadOrCreateServerSecret(secrets, envelope, SERVER_SECRETS.clientSecretHmac);
      const tokenEscrowKey = await loadOrCreateServerSecret(secrets, envelope, SERVER_SECRETS.tokenEscrow);
      const dpopNonceSecret = await loadOrCreateServerSecret(secrets, envelope, SERVER_SECRETS.dpopNonce);
      const clientSecrets = createClientSecretHasher(hmacKey);
      const bootstrap = await bootstrapAdmin(session, { issuer: config.issuer, hasher: clientSecrets, configured: config.bootstrapAdmin });
      // migrations/0009: look-alike usernames are refused by a skeleton only code can compute.
      const skeletons = await createUserStore(session).fillMissingSkeletons(usernameSkeleton);
      if (skeletons.filled > 0) logger.info({ filled: skeletons.filled }, 'username skeletons filled');
      if (skeletons.lookAlikes.count > 0) {
        logger.warn(
          { count: skeletons.lookAlikes.count, user_ids: skeletons.lookAlikes.ids },
          'users whose usernames look like an older user\'s (created before look-alikes were refused): rename them',
        );
      }
      return { cookieKeys: [cookieKey.toString('base64url')], clientSecrets, tokenEscrowKey, dpopNonceSecret, bootstrap };
    });

    return {
      config,
      logger,
      db,
      migrations,
      envelope,
      tls: await loadTlsMaterial(config),
      ...prepared,
    };
  } catch (error) {
    if (existingDb === undefined) await db.close().catch(() => undefined);
    throw error;
  }
}
