import cluster from 'node:cluster';
import { enableCompileCache } from 'node:module';
import type { Logger } from 'pino';
import { ConfigError, loadConfig, type Config } from './config.js';
import { createLogger } from './logger.js';
import { openRuntime } from './runtime.js';
import { announceGeneratedAdmin } from './management/bootstrap-client.js';

// Start-up only: configuration, database, listen, graceful shutdown; with WORKERS > 1, the
// cluster primary (src/cluster.ts) or one of its workers.

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

// Node keeps the compiled code of the modules loaded from here on (the app, oidc-provider, koa,
// PGlite: most of start-up's parsing) in a disk cache, os.tmpdir()/node-compile-cache; later
// starts skip that work. NODE_DISABLE_COMPILE_CACHE=1 turns it off; an unwritable dir is ignored.
enableCompileCache();
const config = configOrExit();
const rootLogger = createLogger(config.logLevel);
const started = performance.now();

async function failedToStart(logger: Logger, error: unknown): Promise<never> {
  logger.fatal({ err: error }, 'gatehouse failed to start');
  process.stderr.write(`gatehouse: failed to start: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exitCode = 1;
  // Flush pino before exiting.
  await new Promise((resolve) => setImmediate(resolve));
  process.exit(1);
}

/** This process serves requests: alone (WORKERS=1) or as one cluster worker. */
async function serve(logger: Logger): Promise<void> {
  try {
    // Loaded here, not at the top: a cluster primary never serves, so it need not load the app.
    const { startServer } = await import('./server.js');
    const runtime = await openRuntime(config, logger);
    announceGeneratedAdmin(runtime.bootstrap);
    const running = await startServer(runtime, { port: config.port, host: config.host, managementPort: config.managementPort });
    logger.info(
      { url: running.url, managementUrl: running.managementUrl, issuer: config.issuer, database: runtime.db.kind, startupMs: Math.round(performance.now() - started) },
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
    // SPEC §8: renewed certificates are picked up without dropping a connection.
    process.on('SIGHUP', () => {
      running.reloadTls().then(
        () => logger.info('TLS files reloaded'),
        (error: unknown) => logger.error({ err: { message: (error as Error).message } }, 'TLS reload failed: keeping the files loaded before'),
      );
    });
  } catch (error) {
    await failedToStart(logger, error);
  }
}

/**
 * The cluster primary prepares the database once, before any worker starts: migrations, signing
 * keys, server secrets and the bootstrap admin, whose generated secret is printed here, once.
 * Workers then open the same runtime under the same advisory locks and find all of it done.
 */
async function primary(logger: Logger): Promise<void> {
  try {
    const runtime = await openRuntime(config, logger);
    announceGeneratedAdmin(runtime.bootstrap);
    await runtime.db.close();
  } catch (error) {
    await failedToStart(logger, error);
  }
  const { runPrimary } = await import('./cluster.js');
  logger.info({ workers: config.workers, startupMs: Math.round(performance.now() - started) }, 'gatehouse cluster primary: database ready, starting workers');
  process.exit(await runPrimary({ workers: config.workers, shutdownTimeoutMs: config.shutdownTimeoutMs, logger }));
}

if (config.workers === 1) await serve(rootLogger);
else if (cluster.isPrimary) await primary(rootLogger.child({ pid: process.pid, role: 'primary' }));
// Every line a worker logs says which process wrote it.
else await serve(rootLogger.child({ pid: process.pid, worker: cluster.worker?.id }));
