import { createHash } from 'node:crypto';
import type { StaticAsset } from '../views.js';
import Router from '@koa/router';
import type { Database } from '../db/database.js';
import { migrationsCurrent, type Migration } from '../db/migrator.js';
import type { Metrics } from './metrics.js';
import { ROUTER_METHODS } from './errors.js';

const READINESS_TIMEOUT_MS = 2_000;

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error('readiness check timed out')), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

interface HealthDeps {
  readonly db: Database;
  readonly migrations: readonly Migration[];
}

/** /healthz and /readyz (SPEC §6), served on both listeners: load balancers probe the public port. */
function addHealthRoutes(router: Router, deps: HealthDeps): void {
  router.get('/healthz', function healthz(ctx) {
    ctx.set('Cache-Control', 'no-store');
    ctx.body = { status: 'ok' };
  });

  router.get('/readyz', async function readyz(ctx) {
    ctx.set('Cache-Control', 'no-store');
    let database = 'ok';
    let migrations = 'ok';
    try {
      const current = await withTimeout(migrationsCurrent(deps.db, deps.migrations), READINESS_TIMEOUT_MS);
      if (!current) migrations = 'pending';
    } catch {
      database = 'unreachable';
      migrations = 'unknown';
    }
    const ready = database === 'ok' && migrations === 'ok';
    ctx.status = ready ? 200 : 503;
    ctx.body = { status: ready ? 'ready' : 'unavailable', checks: { database, migrations } };
  });
}

/**
 * The management listener's routes (MANAGEMENT_PORT): health and /metrics. /metrics shows
 * resource servers, admin activity and lockouts, so it is never served on the public port.
 */
export function managementRoutes(deps: HealthDeps & { readonly metrics: Metrics }): Router {
  const router = new Router({ methods: [...ROUTER_METHODS] });
  addHealthRoutes(router, deps);
  router.get('/metrics', async function metrics(ctx) {
    ctx.set('Cache-Control', 'no-store');
    ctx.type = deps.metrics.registry.contentType;
    ctx.body = await deps.metrics.registry.metrics();
  });
  return router;
}

/** The public port's operational routes: health and the pages' static files (views/static). */
export function opsRoutes(deps: HealthDeps & { readonly assets: ReadonlyMap<string, StaticAsset> }): Router {
  const router = new Router({ methods: [...ROUTER_METHODS] });
  addHealthRoutes(router, deps);

  for (const [name, asset] of deps.assets) {
    const etag = `"${createHash('sha256').update(asset.body).digest('base64url').slice(0, 16)}"`;
    router.get(`/static/${name}`, function staticAsset(ctx) {
      ctx.set('Cache-Control', 'public, max-age=3600');
      ctx.set('ETag', etag);
      if (ctx.get('If-None-Match') === etag) {
        ctx.status = 304;
        return;
      }
      ctx.type = asset.type;
      ctx.body = asset.body;
    });
  }

  return router;
}
