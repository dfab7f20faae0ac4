import Koa from 'koa';
import mount from 'koa-mount';
import type Provider from 'oidc-provider';
import { accessLog } from './http/access-log.js';
import { handleErrors } from './http/errors.js';
import { createMetrics, measureRequests, type Metrics } from './http/metrics.js';
import { opsRoutes } from './http/ops-routes.js';
import { requestId } from './http/request-id.js';
import { securityHeaders } from './http/security-headers.js';
import { createProvider } from './oidc/provider.js';
import type { Runtime } from './runtime.js';
import { createViews } from './views.js';

export interface GatehouseApp {
  readonly app: Koa;
  readonly provider: Provider;
  readonly metrics: Metrics;
}

/** Builds the Koa app without listening, so tests can serve it on an ephemeral port. */
export function createApp(runtime: Runtime): GatehouseApp {
  const { config, logger, db } = runtime;
  const views = createViews();
  const metrics = createMetrics(() => db.poolStats());

  const provider = createProvider({
    issuer: config.issuer,
    trustProxy: config.trustProxy,
    db,
    jwks: runtime.jwks,
    cookieKeys: runtime.cookieKeys,
    clientSecrets: runtime.clientSecrets,
    views,
    logger,
  });
  provider.on('grant.success', (ctx) => {
    const grantType = ctx.oidc.params?.['grant_type'];
    metrics.tokensIssued.inc({ grant_type: typeof grantType === 'string' ? grantType : 'unknown' });
  });

  const app = new Koa();
  // The provider is mounted, so its cookies are read through this app: same keys, same proxy trust.
  app.keys = [...runtime.cookieKeys];
  app.proxy = config.trustProxy;
  app.silent = true; // errors are logged by our own middleware, without request data

  const ops = opsRoutes({ db, migrations: runtime.migrations, metrics, stylesheet: views.stylesheet });

  app.use(requestId());
  app.use(measureRequests(metrics));
  app.use(accessLog(logger));
  app.use(securityHeaders({ hsts: config.issuer.startsWith('https://') }));
  app.use(handleErrors(logger));
  app.use(ops.routes());
  app.use(ops.allowedMethods());
  app.use(mount(provider));

  return { app, provider, metrics };
}
