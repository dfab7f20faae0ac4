import type { Logger } from 'pino';
import { ACCOUNT_POLICY, IP_POLICY } from './sign-in/throttle.js';
import type { Database } from './db/database.js';
import { createMaintenanceStore } from './db/maintenance.js';
import { PAGE_RATE_WINDOW_SECONDS } from './http/page-rate-limit.js';
import { USER_CODE_GUESS_WINDOW_SECONDS } from './oidc/device-flow.js';

const BATCH = 1_000;
// Enough batches per run to keep up with heavy traffic without holding the pool for long.
const MAX_BATCHES_PER_RUN = 20;

export interface MaintenanceReport {
  readonly models: number;
  readonly throttleRows: number;
  readonly auditEvents: number;
  readonly codeAttempts: number;
  readonly passkeyChallenges: number;
  readonly requestRateLimits: number;
  readonly devicePolls: number;
}

/** Deletes in batches until a batch comes back short (or the per-run cap is reached). */
async function inBatches(deleteBatch: (batch: number) => Promise<number>): Promise<number> {
  let total = 0;
  for (let i = 0; i < MAX_BATCHES_PER_RUN; i += 1) {
    const deleted = await deleteBatch(BATCH);
    total += deleted;
    if (deleted < BATCH) break;
  }
  return total;
}

/** One pruning pass: expired provider models, stale sign-in throttle counters, code attempts and passkey challenges, old audit events. */
export async function pruneOnce(db: Database, options: { auditRetentionDays: number }): Promise<MaintenanceReport> {
  const store = createMaintenanceStore(db);
  const windowSeconds = Math.max(ACCOUNT_POLICY.windowSeconds, IP_POLICY.windowSeconds);
  return {
    models: await inBatches((batch) => store.pruneExpiredModels(batch)),
    throttleRows: await inBatches((batch) => store.pruneThrottleRows(windowSeconds, batch)),
    auditEvents: await inBatches((batch) => store.pruneAuditEvents(options.auditRetentionDays, batch)),
    codeAttempts: await inBatches((batch) => store.pruneCodeAttempts(batch)),
    passkeyChallenges: await inBatches((batch) => store.prunePasskeyChallenges(batch)),
    // The longest window counted in request_rate_limits: a shorter one would reset the longer counters.
    requestRateLimits: await inBatches((batch) => store.pruneRequestRateLimits(Math.max(PAGE_RATE_WINDOW_SECONDS, USER_CODE_GUESS_WINDOW_SECONDS), batch)),
    devicePolls: await inBatches((batch) => store.pruneDevicePolls(batch)),
  };
}

/** Runs pruneOnce every `intervalMs` (with jitter, so instances spread out); returns a stop function. */
export function startMaintenance(db: Database, logger: Logger, options: { auditRetentionDays: number; intervalMs?: number }): () => void {
  let running = false;
  const timer = setInterval(
    () => {
      if (running) return;
      running = true;
      pruneOnce(db, options)
        .then((report) => {
          if (report.models + report.throttleRows + report.auditEvents + report.codeAttempts + report.passkeyChallenges + report.requestRateLimits + report.devicePolls > 0) logger.debug({ pruned: report }, 'expired rows pruned');
        })
        .catch((error: unknown) => logger.debug({ err: { message: (error as Error).message } }, 'pruning failed'))
        .finally(() => {
          running = false;
        });
    },
    (options.intervalMs ?? 60_000) + Math.floor(Math.random() * 5_000),
  );
  timer.unref();
  return () => clearInterval(timer);
}
