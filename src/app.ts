import Koa from 'koa';
import { createCsrf } from './http/csrf.js';
import { interactionRoutes } from './interactions/routes.js';
import { limitPagesPerIp } from './http/page-rate-limit.js';
import { commitSignInWritesTogether } from './http/sign-in-commit.js';
import { createAdminApi } from './admin/router.js';
import { edge } from './http/edge.js';
import { handleErrors } from './http/errors.js';
import type { Metrics } from './http/metrics.js';
import { managementRoutes, opsRoutes } from './http/ops-routes.js';
import { pinRequestOriginToIssuer } from './http/issuer-origin.js';
import { securityHeaders } from './http/security-headers.js';
import { jwksRoute } from './oidc/jwks-route.js';
import { gatewayDoors } from './gateway/doors.js';
import { gatewayPolicy } from './gateway/policy-deps.js';
import { browserSignInRoutes, createBrowserSessions } from './gateway/browser/sign-in.js';
import { createSealedCookies } from './http/sealed-cookies.js';
import { accountRoutes, ACCOUNT_SESSION_SECONDS } from './account/routes.js';
import { consoleRoutes } from './console/routes.js';
import { firstPartySignIn } from './http/first-party-sign-in.js';
import { consoleModules } from './console/modules.js';
import { ACCOUNT_CLIENT_ID, ACCOUNT_PASSKEYS_PATH, ACCOUNT_PATH } from './oidc/account-client.js';
import { CONSOLE_CLIENT_ID } from './oidc/console-client.js';
import { createGatewayCodes } from './oidc/gateway-code.js';
import type { ProviderHost } from './oidc/provider-host.js';
import type { RouteTable } from './gateway/route-table.js';
import type { ResourceServerRegistry } from './oidc/resource-server-registry.js';
import type { Runtime } from './runtime.js';
import { startBackground } from './background.js';
import type { ManagementServices } from './management/index.js';
import { createServices } from './services.js';

export interface GatehouseApp {
  readonly app: Koa;
  /** What MANAGEMENT_PORT serves: /healthz, /readyz and /metrics, nothing else. */
  readonly management: Koa;
  readonly services: ManagementServices;
  readonly providers: ProviderHost;
  readonly resourceServers: ResourceServerRegistry;
  /** The gateway's cached route table (src/gateway/route-table.ts). */
  readonly gatewayRoutes: RouteTable;
  readonly metrics: Metrics;
  /** Stops background work (change feed, key refresh, pruning) and the crypto workers. */
  stop(): void;
}

/**
 * The provider's machine-to-machine endpoints: no page limit applies to them (their own per-IP and
 * per-client limits do, inside the provider) and no other router has a route at their paths.
 */
const DIRECT_PROVIDER_ROUTES = ['token', 'introspection', 'revocation', 'pushed_authorization_request', 'userinfo'] as const;

function directToProvider(providers: ProviderHost, routes: readonly string[]): Koa.Middleware {
  // The provider's routes are fixed by its configuration, the same for every provider the host builds.
  const paths = new Set(routes.map((route) => providers.current().pathFor(route, { mountPath: '' })));
  return async function directToProvider(ctx, next): Promise<void> {
    if (paths.has(ctx.path)) await providers.middleware(ctx, next);
    else await next();
  };
}

/**
 * The HTTP app: builds the services (src/services.ts), starts the background work
 * (src/background.ts), orders the middleware and mounts the front doors. Does not listen, so
 * tests can serve it on an ephemeral port.
 */
export async function createApp(runtime: Runtime): Promise<GatehouseApp> {
  const { config, logger, db } = runtime;
  // The caches ask the change feed whether notifications flow; it starts right after them.
  const changeFeed = { live: (): boolean => false };
  const services = await createServices(runtime, { isLive: () => changeFeed.live() });
  const background = startBackground(runtime, services);
  changeFeed.live = () => background.live();
  const { views, metrics, providers, resourceServers, gatewayRoutes } = services;

  const adminApi = createAdminApi({
    issuer: config.issuer,
    verifier: services.adminVerifier,
    logger,
    ...services.management,
    tokenClient: services.tokenClient,
    clientCertificate: runtime.tls.clientCertificate,
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

  const jwks = jwksRoute(db);
  // Browser sign-in on protected hosts (SPEC §7): sealed cookies any instance opens, codes redeemed in-process.
  const gatewayCookies = createSealedCookies(Buffer.from(runtime.cookieKeys[0] ?? '', 'base64url'));
  const gatewayCodes = createGatewayCodes(() => providers.current(), db);
  const gateway = gatewayDoors({
    clientCertificate: runtime.tls.clientCertificate,
    routes: gatewayRoutes,
    policy: gatewayPolicy(config.issuer, services),
    sessions: createBrowserSessions({ cookies: gatewayCookies, codes: gatewayCodes }),
    metrics,
    logger,
  });
  const gatewaySignIn = browserSignInRoutes({ issuer: config.issuer, routes: gatewayRoutes, codes: gatewayCodes, cookies: gatewayCookies, views, logger });
  // The admin console (SPEC §11): its own client, its own sealed cookies, the management services.
  const cookieSecret = Buffer.from(runtime.cookieKeys[0] ?? '', 'base64url');
  const consolePages = consoleRoutes({
    issuer: config.issuer,
    codes: createGatewayCodes(() => providers.current(), db, CONSOLE_CLIENT_ID),
    cookies: createSealedCookies(cookieSecret, 'console'),
    csrfKey: cookieSecret,
    person: async (id) => {
      const user = await services.accounts.load(undefined, id);
      return user === undefined ? undefined : { id: user.id, username: user.username, roles: user.roles, disabled: user.disabled };
    },
    management: services.management,
    views,
    logger,
    modules: consoleModules(services.management),
  });
  // The account pages (SPEC §4): a person's own passkeys, signed in as the built-in account client.
  const accountPages = accountRoutes({
    issuer: config.issuer,
    signIn: firstPartySignIn({
      issuer: config.issuer,
      clientId: ACCOUNT_CLIENT_ID,
      path: ACCOUNT_PATH,
      landing: ACCOUNT_PASSKEYS_PATH,
      cookieName: 'gatehouse-account',
      cookies: createSealedCookies(cookieSecret, 'account'),
      codes: createGatewayCodes(() => providers.current(), db, ACCOUNT_CLIENT_ID),
      maxSessionSeconds: ACCOUNT_SESSION_SECONDS,
    }),
    csrf: createCsrf(cookieSecret, 'account'),
    passkeys: services.ownPasskeys,
    person: async (id) => {
      const user = await services.accounts.load(undefined, id);
      return user === undefined ? undefined : { id: user.id, username: user.username, disabled: user.disabled };
    },
    views,
    logger,
  });
  const ops = opsRoutes({ db, migrations: runtime.migrations, assets: views.assets });
  const pages = interactionRoutes({
    issuer: config.issuer,
    providers,
    views,
    csrf: createCsrf(Buffer.from(runtime.cookieKeys[0] ?? '', 'base64url')),
    signIn: services.signIn,
    resourceServers,
    accounts: services.accounts,
    logger,
  });

  app.use(edge({ metrics, logger, hsts: config.issuer.startsWith('https://') }));
  // The endpoints services call (every token request of the fleet) go straight to the provider:
  // no other router serves them, so matching them against every router's routes first is waste.
  app.use(directToProvider(providers, DIRECT_PROVIDER_ROUTES));
  app.use(ops.routes());
  app.use(gateway.routes());
  app.use(gatewaySignIn.routes());
  app.use(ops.allowedMethods());
  app.use(jwks.routes());
  app.use(jwks.allowedMethods());
  app.use(adminApi);
  app.use(limitPagesPerIp({ db, views, limit: config.pageRateLimitPerMinute, onLimited: () => metrics.rateLimited.inc({ scope: 'page_ip' }) }));
  app.use(commitSignInWritesTogether(services.requestWrites));
  app.use(pages.routes());
  app.use(pages.allowedMethods());
  app.use(consolePages.routes());
  app.use(consolePages.allowedMethods());
  app.use(accountPages.routes());
  app.use(accountPages.allowedMethods());
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

  return {
    app,
    management,
    services: services.management,
    providers,
    resourceServers,
    gatewayRoutes,
    metrics,
    stop: () => {
      background.stop();
      void services.close();
    },
  };
}
