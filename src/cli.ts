import { ConfigError, loadConfig } from './config.js';
import { createLogger } from './logger.js';
import { migrate } from './db/migrator.js';
import { openDatabase, openRuntime } from './runtime.js';
import { createKeyService } from './admin/keys/service.js';
import { announceGeneratedAdmin } from './admin/bootstrap-client.js';
import { SIGNING_ALGS, type SigningAlg } from './crypto/signing-keys.js';

// The operator CLI (`npx gatehouse <command>`): same configuration as the server.

const USAGE = `usage: gatehouse <command>

commands:
  migrate                 apply pending database migrations and exit
  keys list               list signing keys (kid, alg, status)
  keys rotate [ALG ...]   new signing keys (default: every algorithm); running servers pick them up
  help                    show this text

Configuration comes from the same environment variables as the server (see README).`;

async function runMigrate(): Promise<number> {
  const config = loadConfig();
  const logger = createLogger(config.logLevel === 'info' ? 'warn' : config.logLevel);
  const db = await openDatabase(config, logger);
  try {
    const report = await migrate(db);
    process.stdout.write(
      report.applied.length === 0
        ? `database is current (migration ${report.current})\n`
        : `applied ${report.applied.join(', ')}; database is at migration ${report.current}\n`,
    );
    return 0;
  } finally {
    await db.close();
  }
}

/** Operator actions run as the CLI, with the same services as the admin API. */
const CLI_AUDIT = { actor: 'cli', clientIp: null, requestId: null };

async function runKeys(args: readonly string[]): Promise<number> {
  const [action, ...rest] = args;
  if (action !== 'list' && action !== 'rotate') {
    process.stderr.write(`gatehouse: keys needs "list" or "rotate"\n\n${USAGE}\n`);
    return 2;
  }
  const unknown = rest.filter((alg) => !(SIGNING_ALGS as readonly string[]).includes(alg));
  if (unknown.length > 0) {
    process.stderr.write(`gatehouse: unknown algorithm ${unknown.join(', ')} (one of ${SIGNING_ALGS.join(', ')})\n`);
    return 2;
  }
  const config = loadConfig();
  const runtime = await openRuntime(config, createLogger(config.logLevel === 'info' ? 'warn' : config.logLevel));
  // On an empty database the CLI may be first to start: its generated admin client is shown here.
  announceGeneratedAdmin(runtime.bootstrap);
  try {
    const keys = createKeyService({ db: runtime.db, envelope: runtime.envelope, onRotated: () => Promise.resolve() });
    const rows =
      action === 'list'
        ? (await keys.list({ limit: 200 })).items
        : await keys.rotate(rest.length === 0 ? undefined : (rest as SigningAlg[]), CLI_AUDIT);
    for (const key of rows) process.stdout.write(`${key.kid}\t${key.alg}\t${key.status}\t${key.created_at}\n`);
    return 0;
  } finally {
    await runtime.db.close();
  }
}

async function main(argv: readonly string[]): Promise<number> {
  const [command] = argv;
  switch (command) {
    case 'migrate':
      return runMigrate();
    case 'keys':
      return runKeys(argv.slice(1));
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      process.stdout.write(`${USAGE}\n`);
      return command === undefined ? 2 : 0;
    default:
      process.stderr.write(`gatehouse: unknown command "${command}"\n\n${USAGE}\n`);
      return 2;
  }
}

try {
  process.exitCode = await main(process.argv.slice(2));
} catch (error) {
  const lines = error instanceof ConfigError ? error.problems.map((p) => `invalid configuration: ${p}`) : [(error as Error).message];
  for (const line of lines) process.stderr.write(`gatehouse: ${line}\n`);
  process.exitCode = 1;
}
