import Koa from 'koa';
import type { ClientMetadata } from 'oidc-provider';
import { createPasswordHasher } from './accounts/passwords.js';
import { createLoginThrottle } from './accounts/throttle.js';
import { createDeviceCookies } from './accounts/device-cookies.js';
import { createSecondFactor } from './accounts/second-factor.js';
import { createTotp } from './accounts/totp.js';
import { createCsrf } from './interactions/csrf.js';
import { interactionRoutes } from './interactions/routes.js';
import { limitPagesPerIp } from './http/page-rate-limit.js';
import { createAccounts } from './oidc/accounts.js';
import { createClientService } from './admin/clients/service.js';
import { createKeyService } from './admin/keys/service.js';
import { createResourceServerService } from './admin/resource-servers/service.js';
import { createAdminApi, type AdminApiDeps } from './admin/router.js';
import { adminResourceIdentifier } from './admin/scopes.js';
import { createUserService } from './admin/users/service.js';
import { createAuditEventService } from './admin/audit-events/service.js';
import { accessLog } from './http/access-log.js';
import { handleErrors } from './http/errors.js';
import { createMetrics, measureRequests, type Metrics } from './http/metrics.js';
import { managementRoutes, opsRoutes } from './http/ops-routes.js';
import { issuerPath, pinRequestOriginToIssuer } from './http/issuer-origin.js';
import { createTokenRateLimits } from './http/rate-limit.js';
import { requestId } from './http/request-id.js';
import { securityHeaders } from './http/security-headers.js';
import { createProvider } from './oidc/provider.js';
import { createProviderHost, type ProviderHost } from './oidc/provider-host.js';
import { createResourceServerRegistry, CACHE_TTL_MS, type ResourceServerRegistry } from './oidc/resource-server-registry.js';
import type { ClientMetadataCache } from './oidc/adapter.js';
import { createLookupCache } from './oidc/lookup-cache.js';
import { tokensNotBefore } from './oidc/clients.js';
import { subscribeToChanges } from './db/change-feed.js';
import { createJweEncryptor } from './tokens/crypto-pool.js';
import type { Runtime } from './runtime.js';
import { startMaintenance } from './maintenance.js';
import { createVerifier } from './verifier/index.js';
import { createViews } from './views.js';

export type AdminServices = Omit<AdminApiDeps, 'issuer' | 'verifier' | 'logger' | 'tokenClient'>;

export interface GatehouseApp {
  readonly app: Koa;
  /** What MANAGEMENT_PORT serves: /healthz, /readyz and /metrics, nothing else. */
  readonly management: Koa;
  readonly services: AdminServices;
  readonly providers: ProviderHost;
  readonly resourceServers: ResourceServerRegistry;
  readonly metrics: Metrics;
  /** Stops background work (key refresh, pruning). */
  stop(): void;
}

/** Builds the Koa app without listening, so tests can serve it on an ephemeral port. */
export async function createApp(runtime: Runtime): Promise<GatehouseApp> {
  const { config, logger, db } = runtime;
  const views = createViews();
  const metrics = createMetrics(() => db.poolStats());
  // Clients and resource servers are cached for the token path, and every committed change to
  // them is announced by the database (migrations/0005): the caches drop the row on the
  // announcement, and stop caching while announcements might be lost (src/oidc/lookup-cache.ts).
  const isLive = () => changes.live();
  const resourceServers = createResourceServerRegistry(db, { isLive });
  const clientCache: ClientMetadataCache = createLookupCache({ ttlMs: CACHE_TTL_MS, maxEntries: 10_000, isLive });
  // A change to the signing keys (a rotation or revocation on any instance) rebuilds the provider
  // here at once; the provider host's polling stays as the fallback while notifications are down.
  let refreshKeys = (): void => undefined;
  const changes = subscribeToChanges(db, {
    onChange(kind, key) {
      if (kind === 'client') clientCache.invalidate(key);
      else if (kind === 'resource_server') resourceServers.invalidate(key);
      else refreshKeys();
    },
    onState() {
      clientCache.clear();
      resourceServers.invalidate();
      refreshKeys();
    },
  });
  const accounts = createAccounts(db);
  // Created once here, not per provider: a key rotation rebuilds the provider but keeps the counts.
  const rateLimits = createTokenRateLimits(config.tokenRateLimits, (scope) => metrics.rateLimited.inc({ scope }));
  const secondFactor = createSecondFactor({
    db,
    envelope: runtime.envelope,
    // Authenticator apps show this as the issuer, next to the account name.
    totp: createTotp({ issuer: new URL(config.issuer).hostname }),
    hasher: runtime.clientSecrets,
  });

  const jweEncryptor = createJweEncryptor({
    threads: config.cryptoThreads,
    onWorkerError: (error) => logger.error({ err: { message: error.message } }, 'crypto worker failed; its work continues on the event loop'),
  });

  const providers = await createProviderHost({
    db,
    envelope: runtime.envelope,
    logger,
    intervalMs: config.keyRefreshIntervalMs,
    advertisedPath: issuerPath(config.issuer),
    build: (jwks) =>
      createProvider({
        issuer: config.issuer,
        trustProxy: config.trustProxy,
        db,
        jwks,
        cookieKeys: runtime.cookieKeys,
        clientSecrets: runtime.clientSecrets,
        views,
        logger,
        resourceServers,
        clientCache,
        metrics,
        tokenEscrowKey: runtime.tokenEscrowKey,
        jweEncryptor,
        accounts,
        secondFactor,
        rateLimits,
        allowPrivateJwksUri: config.allowPrivateJwksUri,
      }),
  });

  refreshKeys = () => {
    providers.refresh().catch((error: unknown) => logger.debug({ err: { message: (error as Error).message } }, 'key refresh failed'));
  };

  // Gatehouse's own admin API trusts tokens through the same verifier resource servers use,
  // with the keys this instance holds (no HTTP round trip to itself).
  const adminVerifier = createVerifier({
    issuer: config.issuer,
    audience: adminResourceIdentifier(config.issuer),
    jwks: () => providers.publicJwks(),
  });
  // One argon2id hasher for the process, so its concurrency bound covers every caller.
  const passwordHasher = await createPasswordHasher();
  // The admin services: the admin API and the operator CLI both use these (one code path).
  const services: AdminServices = {
    clients: createClientService({
      db,
      hasher: runtime.clientSecrets,
      validateWithProvider: (metadata) => providers.current().Client.validate(metadata as ClientMetadata),
      forget: (clientId) => clientCache.invalidate(clientId),
      allowPrivateJwksUri: config.allowPrivateJwksUri,
    }),
    resourceServers: createResourceServerService({ db, registry: resourceServers }),
    keys: createKeyService({ db, envelope: runtime.envelope, onRotated: () => providers.refresh() }),
    users: createUserService({ db, hasher: passwordHasher }),
    auditEvents: createAuditEventService({ db }),
  };
  const adminApi = createAdminApi({
    issuer: config.issuer,
    verifier: adminVerifier,
    logger,
    ...services,
    // The client as the token endpoint finds it (through clientCache), so both see one state.
    tokenClient: async (clientId) => {
      const client = await providers.current().Client.find(clientId);
      return client === undefined ? undefined : { tokensNotBefore: tokensNotBefore(client) ?? Number.POSITIVE_INFINITY };
    },
  });

  const app = new Koa();
  // The provider is mounted, so its cookies are read through this app: same keys, same proxy trust.
  app.keys = [...runtime.cookieKeys];
  app.proxy = config.trustProxy;
  // With TRUST_PROXY, only the address the nearest proxy saw counts: a client cannot choose its
  // own address (and dodge throttling) by sending X-Forwarded-For itself.
  app.maxIpsCount = 1;
  // SPEC §1: URLs, redirects and cookie security follow ISSUER, never the request's Host or
  // X-Forwarded-Proto; with an https issuer every cookie is Secure, even on a plain-HTTP hop.
  pinRequestOriginToIssuer(app, config.issuer);
  app.silent = true; // errors are logged by our own middleware, without request data

  const ops = opsRoutes({ db, migrations: runtime.migrations, stylesheet: views.stylesheet });
  const pages = interactionRoutes({
    issuer: config.issuer,
    providers,
    db,
    views,
    passwords: passwordHasher,
    throttle: createLoginThrottle(db),
    csrf: createCsrf(Buffer.from(runtime.cookieKeys[0] ?? '', 'base64url')),
    // Signed with the cookie keys every instance shares; Secure under an https issuer (SPEC §1).
    deviceCookies: createDeviceCookies({
      keys: runtime.cookieKeys.map((key) => Buffer.from(key, 'base64url')),
      secure: config.issuer.startsWith('https://'),
      path: `${issuerPath(config.issuer)}/interaction`,
    }),
    secondFactor,
    resourceServers,
    metrics,
    logger,
  });

  app.use(requestId());
  app.use(measureRequests(metrics));
  app.use(accessLog(logger));
  app.use(securityHeaders({ hsts: config.issuer.startsWith('https://') }));
  app.use(handleErrors(logger));
  app.use(ops.routes());
  app.use(ops.allowedMethods());
  app.use(adminApi);
  app.use(limitPagesPerIp({ db, views, limit: config.pageRateLimitPerMinute, onLimited: () => metrics.rateLimited.inc({ scope: 'page_ip' }) }));
  app.use(pages.routes());
  app.use(pages.allowedMethods());
  app.use(providers.middleware);

  // Scrapes and probes are not counted in the request metrics or logged: they would drown the
  // traffic they measure. Anything but these three paths is 404.
  const management = new Koa();
  management.silent = true;
  const managed = managementRoutes({ db, migrations: runtime.migrations, metrics });
  management.use(securityHeaders({ hsts: false }));
  management.use(handleErrors(logger));
  management.use(managed.routes());
  management.use(managed.allowedMethods());

  const stopMaintenance = startMaintenance(db, logger, { auditRetentionDays: config.auditRetentionDays });

  return {
    app,
    management,
    services,
    providers,
    resourceServers,
    metrics,
    stop: () => {
      providers.stop();
      stopMaintenance();
      // Ends the LISTEN connection; closing the database would too.
      void changes.close();
      void jweEncryptor.close();
    },
  };
}
