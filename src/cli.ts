import { ConfigError, loadConfig } from './config.js';
import { createLogger } from './logger.js';
import { migrate } from './db/migrator.js';
import { openDatabase } from './runtime.js';

// The operator CLI (`npx gatehouse <command>`): same configuration as the server.

const USAGE = `usage: gatehouse <command>

commands:
  migrate   apply pending database migrations and exit
  help      show this text

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

async function main(argv: readonly string[]): Promise<number> {
  const [command] = argv;
  switch (command) {
    case 'migrate':
      return runMigrate();
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
