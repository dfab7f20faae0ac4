import cluster, { type Worker } from 'node:cluster';
import type { Logger } from 'pino';

/**
 * WORKERS > 1 (README "Using all cores"): this process, the primary, forks that many workers,
 * each a whole Gatehouse listening on the same port; node:cluster accepts connections in the
 * primary and hands them to the workers in turn. The primary serves nothing. It replaces a
 * worker that dies (after a back-off, so a worker that cannot start does not spin), and on
 * SIGTERM/SIGINT has every worker drain as a single process does, then resolves with the exit
 * code: 0 once all have drained, 1 if one failed to or outlived the deadline.
 *
 * If the primary itself dies, node:cluster workers exit as soon as their IPC channel closes, so
 * none is orphaned.
 */

/** A worker that served at least this long was healthy: its death starts the back-off afresh. */
const STABLE_MS = 30_000;
const FIRST_RESTART_DELAY_MS = 250;
const MAX_RESTART_DELAY_MS = 30_000;
/** On top of the workers' own SHUTDOWN_TIMEOUT_MS: closing the pool and exiting. */
const EXIT_GRACE_MS = 5_000;

/** Delay before replacing a worker, after `failures` deaths in a row of workers that were not yet stable (≥ 1). */
export function restartDelayMs(failures: number): number {
  return Math.min(MAX_RESTART_DELAY_MS, FIRST_RESTART_DELAY_MS * 2 ** Math.min(16, Math.max(0, failures - 1)));
}

export interface PrimaryOptions {
  readonly workers: number;
  readonly shutdownTimeoutMs: number;
  readonly logger: Logger;
}

export function runPrimary(options: PrimaryOptions): Promise<number> {
  const { logger } = options;
  const forkedAt = new Map<number, number>();
  const listening = new Set<number>();
  const restarts = new Set<NodeJS.Timeout>();
  let failures = 0;
  let stopping = false;
  let allListeningLogged = false;
  let exitCode = 0;

  const fork = () => {
    const worker = cluster.fork();
    forkedAt.set(worker.id, performance.now());
  };

  return new Promise<number>((resolve) => {
    const finish = () => {
      logger.info({ exitCode }, exitCode === 0 ? 'shutdown complete: every worker drained' : 'shutdown finished with errors');
      resolve(exitCode);
    };

    cluster.on('listening', (worker: Worker) => {
      listening.add(worker.id);
      if (!allListeningLogged && listening.size === options.workers) {
        allListeningLogged = true;
        const pids = Object.values(cluster.workers ?? {}).map((w) => w?.process.pid);
        logger.info({ workers: options.workers, workerPids: pids }, 'gatehouse cluster listening: every worker is serving');
      }
    });

    cluster.on('exit', (worker: Worker, code: number | null, signal: NodeJS.Signals | null) => {
      const lived = performance.now() - (forkedAt.get(worker.id) ?? 0);
      const served = listening.delete(worker.id);
      forkedAt.delete(worker.id);
      if (stopping) {
        // A worker still starting when SIGTERM came has nothing to drain: its default SIGTERM death is fine.
        const drained = code === 0 || (!served && signal === 'SIGTERM');
        if (!drained) {
          exitCode = 1;
          logger.error({ workerPid: worker.process.pid, code, signal }, 'worker did not drain cleanly');
        }
        if (forkedAt.size === 0) finish();
        return;
      }
      failures = served && lived >= STABLE_MS ? 1 : failures + 1;
      const delay = restartDelayMs(failures);
      logger.error({ workerPid: worker.process.pid, code, signal, restartInMs: delay }, 'worker exited unexpectedly: starting a replacement');
      const timer = setTimeout(() => {
        restarts.delete(timer);
        if (!stopping) fork();
      }, delay);
      restarts.add(timer);
    });

    const stop = (signal: NodeJS.Signals) => {
      if (stopping) return;
      stopping = true;
      for (const timer of restarts) clearTimeout(timer);
      restarts.clear();
      logger.info({ signal, workers: forkedAt.size }, 'shutting down: every worker drains its in-flight requests');
      const workers = Object.values(cluster.workers ?? {}).filter((worker): worker is Worker => worker !== undefined);
      // SIGTERM, not worker.disconnect(): disconnect closes the server with http.Server#close,
      // which drops idle kept-alive connections at once; the worker's own handler drains gently.
      for (const worker of workers) worker.process.kill('SIGTERM');
      if (forkedAt.size === 0) {
        finish();
        return;
      }
      setTimeout(() => {
        exitCode = 1;
        logger.error({ workers: forkedAt.size }, 'workers still running after the shutdown timeout: killing them');
        for (const worker of Object.values(cluster.workers ?? {})) worker?.process.kill('SIGKILL');
      }, options.shutdownTimeoutMs + EXIT_GRACE_MS).unref();
    };
    process.on('SIGTERM', stop);
    process.on('SIGINT', stop);
    // Each worker reloads its own TLS files (src/main.ts).
    process.on('SIGHUP', () => {
      for (const worker of Object.values(cluster.workers ?? {})) worker?.process.kill('SIGHUP');
    });

    for (let i = 0; i < options.workers; i += 1) fork();
  });
}
