import type { ClientMetadata } from 'oidc-provider';
import { createPasswordHasher, type PasswordHasher } from './accounts/passwords.js';
import { createOwnPasskeys, type OwnPasskeys } from './accounts/own-passkeys.js';
import { createPasskeys } from './accounts/passkeys.js';
import { createSecondFactor, type SecondFactor } from './accounts/second-factor.js';
import { createTotp } from './accounts/totp.js';
import { createDeviceCookies } from './sign-in/device-cookies.js';
import { createRouteTable, type RouteTable } from './gateway/route-table.js';
import { createSignIn, type SignIn } from './sign-in/index.js';
import { createManagementServices, type ManagementServices } from './management/index.js';
import { adminResourceIdentifier } from './management/admin-scopes.js';
import { createMetrics, type Metrics } from './http/metrics.js';
import { createTokenRateLimits } from './oidc/token-rate-limits.js';
import { issuerPath } from './http/issuer-origin.js';
import { createUpstreams } from './federation/upstream.js';
import { createOutboundFetch } from './oidc/outbound-fetch.js';

/** An upstream identity provider (SPEC §10) answers within this, in at most this many bytes; a failed GET is remembered this long. */
const UPSTREAM_TIMEOUT_MS = 5_000;
const UPSTREAM_MAX_BYTES = 256 * 1024;
const UPSTREAM_FAILURE_TTL_MS = 5_000;
import { createAccounts, type Accounts } from './oidc/accounts.js';
import { createClientMetadataSource, type ClientMetadataCache } from './oidc/adapter.js';
import { tokensNotBefore } from './oidc/clients.js';
import { createLookupCache, type LookupCache } from './oidc/lookup-cache.js';
import { createTokenMinter, type TokenMinter } from './oidc/minted-access-tokens.js';
import type { UserRow } from './db/users.js';
import { createProvider } from './oidc/provider.js';
import { createRequestWrites, type RequestWrites } from './db/request-writes.js';
import { createProviderHost, type ProviderHost } from './oidc/provider-host.js';
import { CACHE_TTL_MS, createResourceServerRegistry, type ResourceServerRegistry } from './oidc/resource-server-registry.js';
import type { Runtime } from './runtime.js';
import { createJweEncryptor, type JweEncryptor } from './tokens/crypto-pool.js';
import { createVerifier, type Verifier } from './verifier/index.js';
import { GATEWAY_CLIENT_ID } from './oidc/gateway-client.js';
import { createViews, type Views } from './views.js';
import { createEnabledProviders, type EnabledProviders } from './federation/enabled-providers.js';

/**
 * The composition root without HTTP: stores, registries, caches, the provider host and the
 * management services, built once from a Runtime. The HTTP app (src/app.ts) mounts front doors
 * on these; the operator CLI uses them directly, with no listener, no LISTEN connection and no
 * timers (background work is src/background.ts, started by the server only).
 */

export interface Services {
  readonly views: Views;
  readonly metrics: Metrics;
  readonly resourceServers: ResourceServerRegistry;
  readonly clientCache: ClientMetadataCache;
  /** The gateway's routes, cached like resource servers (migrations/0011 announces changes). */
  readonly gatewayRoutes: RouteTable;
  /** The enabled identity providers for the login page (cached; the change feed drops it). */
  readonly enabledProviders: EnabledProviders;
  readonly accounts: Accounts;
  /** People as the gateway reads them (roles, status), cached and dropped on each announced change (migrations/0012). */
  readonly gatewayPeople: LookupCache<UserRow>;
  readonly secondFactor: SecondFactor;
  /** The sign-in flow: attempt reservation, password and second-factor outcomes, device cookies. */
  readonly signIn: SignIn;
  /** A signed-in person's own passkeys: the account pages (src/account). */
  readonly ownPasskeys: OwnPasskeys;
  /** One argon2id hasher for the process, so its concurrency bound covers every caller. */
  readonly passwords: PasswordHasher;
  readonly providers: ProviderHost;
  /** Gatehouse's own admin API trusts tokens through the verifier resource servers use. */
  readonly adminVerifier: Verifier;
  /** The client as the token endpoint finds it (through clientCache), so both see one state. */
  readonly tokenClient: (clientId: string) => Promise<{ readonly tokensNotBefore: number } | undefined>;
  /** Mints double-wrapped tokens outside /token (the gateway's exchange, src/oidc/minted-access-tokens.ts). */
  readonly tokenMinter: TokenMinter;
  readonly management: ManagementServices;
  /** A sign-in request's writes, committed together before its response (src/db/request-writes.ts). */
  readonly requestWrites: RequestWrites;
  /** Ends the crypto workers and the password process. */
  close(): Promise<void>;
}

export interface ServicesOptions {
  /**
   * Whether the database's change notifications are known to flow (src/background.ts). Caches
   * keep nothing while this says false: the CLI, which does not listen, never caches.
   */
  readonly isLive: () => boolean;
}

export async function createServices(runtime: Runtime, options: ServicesOptions): Promise<Services> {
  const { config, logger, db } = runtime;
  const views = createViews({ assetBase: issuerPath(config.issuer) });
  const metrics = createMetrics(() => db.poolStats());
  // Clients and resource servers are cached for the token path; every committed change to them is
  // announced by the database (migrations/0005) and drops the row (src/oidc/lookup-cache.ts).
  const resourceServers = createResourceServerRegistry(db, { isLive: options.isLive });
  const gatewayRoutes = createRouteTable(db, { isLive: options.isLive });
  const enabledProviders = createEnabledProviders(db, { isLive: options.isLive });
  const clientCache: ClientMetadataCache = createLookupCache({ ttlMs: CACHE_TTL_MS, maxEntries: 10_000, isLive: options.isLive });
  const accounts = createAccounts(db);
  const requestWrites = createRequestWrites(db);
  const clientMetadata = createClientMetadataSource(db, clientCache, config.issuer);
  // Misses are kept too: a person's creation is announced as well.
  const gatewayPeople = createLookupCache<UserRow>({ ttlMs: CACHE_TTL_MS, maxEntries: 50_000, isLive: options.isLive, cacheMisses: true });
  // Created once here, not per provider: a key rotation rebuilds the provider but keeps the counts.
  const rateLimits = createTokenRateLimits(config.tokenRateLimits, (scope) => metrics.rateLimited.inc({ scope }));
  const secondFactor = createSecondFactor({
    db,
    envelope: runtime.envelope,
    // Authenticator apps show this as the issuer, next to the account name.
    totp: createTotp({ issuer: new URL(config.issuer).hostname }),
    hasher: runtime.clientSecrets,
  });
  const jweEncryptor: JweEncryptor = createJweEncryptor({
    threads: config.cryptoThreads,
    onWorkerError: (error) => logger.error({ err: { message: error.message } }, 'crypto worker failed; its work continues on the event loop'),
  });

  const providers = await createProviderHost({
    db,
    envelope: runtime.envelope,
    logger,
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
        clientMetadata,
        requestWrites,
        metrics,
        tokenEscrowKey: runtime.tokenEscrowKey,
        dpopNonceSecret: runtime.dpopNonceSecret,
        jweEncryptor,
        accounts,
        secondFactor,
        rateLimits,
        allowPrivateJwksUri: config.allowPrivateJwksUri,
        clientCertificate: runtime.tls.clientCertificate,
        acceptsClientCertificates: runtime.tls.requestsClientCertificates || config.clientCertHeader !== undefined,
      }),
  });

  // With the keys this instance holds: no HTTP round trip to itself.
  const adminVerifier = createVerifier({
    issuer: config.issuer,
    audience: adminResourceIdentifier(config.issuer),
    jwks: () => providers.publicJwks(),
  });
  const passwords = createPasswordHasher({
    onProcessError: (error) => logger.error({ err: { message: error.message } }, 'password process failed; its work continues in this process'),
  });
  // The sign-in flow the hosted pages drive (src/sign-in).
  // SPEC §4: the relying party is the issuer (none on an IP address).
  const passkeys = createPasskeys({ db, issuer: config.issuer });
  const signIn = createSignIn({
    db,
    requestWrites,
    passwords,
    secondFactor,
    passkeys,
    enabledProviders,
    // Signed with the cookie keys every instance shares; Secure under an https issuer (SPEC §1).
    deviceCookies: createDeviceCookies({
      keys: runtime.cookieKeys.map((key) => Buffer.from(key, 'base64url')),
      secure: config.issuer.startsWith('https://'),
      path: `${issuerPath(config.issuer)}/interaction`,
    }),
    counters: metrics,
    envelope: runtime.envelope,
    // SPEC §10: upstream providers are reached like client jwks_uris are (ALLOW_PRIVATE_JWKS_URI).
    upstreams: createUpstreams({
      fetch: createOutboundFetch({ allowPrivate: config.allowPrivateJwksUri, timeoutMs: UPSTREAM_TIMEOUT_MS, maxBodyBytes: UPSTREAM_MAX_BYTES, failureTtlMs: UPSTREAM_FAILURE_TTL_MS }),
      redirectUri: (providerId) => `${config.issuer}/federation/${encodeURIComponent(providerId)}/callback`,
    }),
  });
  const management = createManagementServices({
    db,
    issuer: config.issuer,
    envelope: runtime.envelope,
    clientSecrets: runtime.clientSecrets,
    passwords,
    resourceServers,
    validateClientMetadata: (metadata) => providers.current().Client.validate(metadata as ClientMetadata),
    forgetClient: (clientId) => clientCache.invalidate(clientId),
    keysChanged: () => providers.refresh(),
    allowPrivateJwksUri: config.allowPrivateJwksUri,
    identityProvidersChanged: () => enabledProviders.invalidate(),
    gatewayRoutesChanged: () => {
      gatewayRoutes.invalidate();
      clientCache.invalidate(GATEWAY_CLIENT_ID);
    },
  });

  return {
    views,
    metrics,
    resourceServers,
    clientCache,
    gatewayRoutes,
    enabledProviders,
    accounts,
    gatewayPeople,
    secondFactor,
    passwords,
    signIn,
    ownPasskeys: createOwnPasskeys({ db, passkeys }),
    providers,
    adminVerifier,
    // The cached metadata, not a provider Client: the gateway asks on every decision.
    tokenClient: async (clientId) => {
      const client = await clientMetadata(clientId);
      return client === undefined ? undefined : { tokensNotBefore: tokensNotBefore(client) ?? Number.POSITIVE_INFINITY };
    },
    tokenMinter: createTokenMinter({ current: () => providers.current(), resourceServers, encryptor: jweEncryptor, escrowKey: runtime.tokenEscrowKey }),
    management,
    requestWrites,
    close: async () => {
      await Promise.all([jweEncryptor.close(), passwords.close()]);
    },
  };
}
