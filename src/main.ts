import { ConfigError, loadConfig, type Config } from './config.js';
import { createLogger } from './logger.js';
import { openRuntime } from './runtime.js';
import { announceGeneratedAdmin } from './admin/bootstrap-client.js';
import { startServer } from './server.js';

// Start-up only: configuration, database, listen, graceful shutdown.

function configOrExit(): Config {
  try {
    return loadConfig();
  } catch (error) {
    if (error instanceof ConfigError) {
      for (const problem of error.problems) process.stderr.write(`gatehouse: invalid configuration: ${problem}\n`);
      process.exit(1);
    }
    throw error;
  }
}

const config = configOrExit();
const logger = createLogger(config.logLevel);
const started = performance.now();

try {
  const runtime = await openRuntime(config, logger);
  announceGeneratedAdmin(runtime.bootstrap);
  const running = await startServer(runtime, { port: config.port, host: config.host });
  logger.info(
    { url: running.url, issuer: config.issuer, database: runtime.db.kind, startupMs: Math.round(performance.now() - started) },
    'gatehouse listening',
  );

  let stopping = false;
  const stop = (signal: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'shutting down: draining in-flight requests');
    running.close().then(
      () => {
        logger.info('shutdown complete');
        process.exit(0);
      },
      (error: unknown) => {
        logger.error({ err: error }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
} catch (error) {
  logger.fatal({ err: error }, 'gatehouse failed to start');
  process.stderr.write(`gatehouse: failed to start: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exitCode = 1;
  // Flush pino before exiting.
  await new Promise((resolve) => setImmediate(resolve));
  process.exit(1);
}
