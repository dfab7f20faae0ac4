import type { Logger } from 'pino';
import { ACCOUNT_POLICY, IP_POLICY } from './accounts/throttle.js';
import type { Database } from './db/database.js';
import { createMaintenanceStore } from './db/maintenance.js';

const BATCH = 1_000;
// Enough batches per run to keep up with heavy traffic without holding the pool for long.
const MAX_BATCHES_PER_RUN = 20;

export interface MaintenanceReport {
  readonly models: number;
  readonly throttleRows: number;
}

/** One pruning pass: expired provider models and stale sign-in throttle counters, in batches. */
export async function pruneOnce(db: Database): Promise<MaintenanceReport> {
  const store = createMaintenanceStore(db);
  const windowSeconds = Math.max(ACCOUNT_POLICY.windowSeconds, IP_POLICY.windowSeconds);
  let models = 0;
  let throttleRows = 0;
  for (let i = 0; i < MAX_BATCHES_PER_RUN; i += 1) {
    const deleted = await store.pruneExpiredModels(BATCH);
    models += deleted;
    if (deleted < BATCH) break;
  }
  for (let i = 0; i < MAX_BATCHES_PER_RUN; i += 1) {
    const deleted = await store.pruneThrottleRows(windowSeconds, BATCH);
    throttleRows += deleted;
    if (deleted < BATCH) break;
  }
  return { models, throttleRows };
}

/** Runs pruneOnce every `intervalMs` (with jitter, so instances spread out); returns a stop function. */
export function startMaintenance(db: Database, logger: Logger, intervalMs = 60_000): () => void {
  let running = false;
  const timer = setInterval(
    () => {
      if (running) return;
      running = true;
      pruneOnce(db)
        .then((report) => {
          if (report.models + report.throttleRows > 0) logger.debug({ pruned: report }, 'expired rows pruned');
        })
        .catch((error: unknown) => logger.debug({ err: { message: (error as Error).message } }, 'pruning failed'))
        .finally(() => {
          running = false;
        });
    },
    intervalMs + Math.floor(Math.random() * 5_000),
  );
  timer.unref();
  return () => clearInterval(timer);
}
