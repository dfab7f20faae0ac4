import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import type { ManagementServices } from '../management/index.js';
import type { MasterKeyService } from '../management/master-key/service.js';
import { OPERATOR, type AdminContext } from '../audit/audit.js';
import { loadConfig, type Config } from '../config.js';
import type { Database } from '../db/database.js';
import { createLogger } from '../logger.js';
import type { Output } from './command.js';

// The services and the database drivers are loaded only by commands that use them, so that help
// and usage errors answer at once.

/** What a command that changes or reads Gatehouse's data gets: the admin API's own services. */
export interface CliServices {
  readonly config: Config;
  readonly services: ManagementServices;
  /** MASTER_KEY rotation, which only the CLI offers. */
  readonly masterKey: MasterKeyService;
  /**
   * Changes are audited with actor `cli` and one request id per invocation, to group its events.
   * The operator holds every privilege: whoever runs the CLI holds the database and MASTER_KEY.
   */
  readonly audit: AdminContext;
}

/** Quieter than the server by default, and on stderr: stdout carries the command's result. */
function cliLogger(config: Config): Logger {
  return createLogger(config.logLevel === 'info' ? 'warn' : config.logLevel, process.stderr);
}

/** Opens the database only (no migrations, keys or bootstrap): for `migrate`. */
export async function withDatabase<T>(fn: (db: Database) => Promise<T>): Promise<T> {
  const config = loadConfig();
  const { openDatabase } = await import('../runtime.js');
  const db = await openDatabase(config, cliLogger(config));
  try {
    return await fn(db);
  } finally {
    await db.close();
  }
}

/**
 * Prepares the runtime exactly as the server does (migrations, keys, bootstrap admin), builds the
 * services the admin API uses (no HTTP app, no listener, no LISTEN connection, no timers), and
 * hands them to `fn`.
 */
export async function withServices<T>(output: Output, fn: (cli: CliServices) => Promise<T>): Promise<T> {
  const config = loadConfig();
  const logger = cliLogger(config);
  const [{ openRuntime }, { createServices }, { announceGeneratedAdmin }, { createMasterKeyService }] = await Promise.all([
    import('../runtime.js'),
    import('../services.js'),
    import('../management/bootstrap-client.js'),
    import('../management/master-key/service.js'),
  ]);
  const runtime = await openRuntime(config, logger);
  try {
    // On an empty database the CLI may be the first to start: its generated admin client is shown
    // here, once (on stderr under --json, so stdout stays one JSON document).
    announceGeneratedAdmin(runtime.bootstrap, (text) => (output.json ? output.err(text) : output.out(text)));
    // Without the change feed nothing is cached: every read sees the database.
    const services = await createServices(runtime, { isLive: () => false });
    try {
      const masterKey = createMasterKeyService({ db: runtime.db, envelope: runtime.envelope });
      return await fn({ config, services: services.management, masterKey, audit: { actor: 'cli', clientIp: null, requestId: randomUUID(), logger, privileges: OPERATOR } });
    } finally {
      await services.close();
    }
  } finally {
    await runtime.db.close();
  }
}
