import { createPublicKey, type JsonWebKey } from 'node:crypto';
import Provider, { type CanBePromise, type Configuration, type KoaContextWithOIDC, type TokenEndpointGrantContext, type UnknownObject } from 'oidc-provider';
import type { Logger } from 'pino';
import type { ClientSecretHasher } from '../crypto/client-secret.js';
import { SIGNING_ALGS } from '../crypto/signing-keys.js';
import { isUnavailable, type Database } from '../db/database.js';
import type { RequestWrites } from '../db/request-writes.js';
import type { Views } from '../views.js';
import { createAdapterFactory, type ClientMetadataSource } from './adapter.js';
import { allowedResources, EXTRA_CLIENT_METADATA, OIDC_SCOPES } from './clients.js';
import { createResourceIndicators } from './resource-indicators.js';
import type { ResourceServerRegistry } from './resource-server-registry.js';
import { encryptWholeTokens, innerLayer } from '../tokens/access-token.js';
import type { JweEncryptor } from '../tokens/crypto-pool.js';
import { introspectJwtAccessTokens, ownAccessTokenVerifier } from './jwt-introspection.js';
import { actorClaim, registerTokenExchange, subjectAudiences } from './token-exchange.js';
import { ACR_MFA, ACR_PASSWORD, CLAIMS_BY_SCOPE, type Accounts } from './accounts.js';
import { interactionPolicyWithSecondFactor } from './second-factor-check.js';
import { extendModels } from './model-extensions.js';
import { certificateSubjectMatches } from './certificate-subject.js';
import type { ClientCertificateSource } from '../http/client-certificate.js';
import { observeProvider } from './provider-events.js';
import type { SecondFactor } from '../accounts/second-factor.js';
import { loadExistingGrant } from './grants.js';
import { innerPersonClaims, publicPersonClaims } from '../tokens/person-claims.js';
import type { Metrics } from '../http/metrics.js';
import { createOutboundFetch } from './outbound-fetch.js';
import { limitGrantPerClient, limitPerIp, type TokenRateLimits } from './token-rate-limits.js';
import { issuerPath, pinRequestOriginToIssuer } from '../http/issuer-origin.js';
import { createDeviceFlow, DEVICE_CODE_TTL_SECONDS } from './device-flow.js';
import { DEVICE_CODE_GRANT } from '../management/clients/schema.js';
// The one list of DPoP proof algorithms: what /token accepts is what resource servers check.
import { DPOP_ALGS } from '../verifier/sender-binding.js';

/**
 * The one `new Provider(...)` (docs/architecture.md). Every option that differs from oidc-provider's
 * default says why. Anything Gatehouse adds to the provider happens in this file.
 */

export interface ProviderDependencies {
  readonly issuer: string;
  readonly trustProxy: boolean;
  readonly db: Database;
  readonly jwks: { keys: JsonWebKey[] };
  readonly cookieKeys: readonly string[];
  readonly clientSecrets: ClientSecretHasher;
  readonly views: Views;
  readonly logger: Logger;
  readonly resourceServers: ResourceServerRegistry;
  /** Client metadata through the process's client cache (emptied by change notifications, app.ts), shared by every provider it builds. */
  readonly clientMetadata: ClientMetadataSource;
  /** The adapter's writes wait for the sign-in request's one commit (src/db/request-writes.ts). */
  readonly requestWrites: RequestWrites;
  readonly metrics: Metrics;
  /** Wraps whole-token encrypted tokens' content keys so introspection can open them. */
  readonly tokenEscrowKey: Buffer;
  /** Keys DPoP nonces; sealed in the database and the same at every instance (SPEC §8). */
  readonly dpopNonceSecret: Buffer;
  /** Builds the inner layer and whole-token JWEs, off the event loop (src/tokens/crypto-pool.ts). */
  readonly jweEncryptor: JweEncryptor;
  readonly accounts: Accounts;
  readonly secondFactor: SecondFactor;
  /** Shared by every provider this process builds, so a key rotation does not reset them. */
  readonly rateLimits: TokenRateLimits;
  /** ALLOW_PRIVATE_JWKS_URI: client jwks_uri may be on loopback or private addresses. */
  readonly allowPrivateJwksUri: boolean;
  /** The request's client certificate, from the TLS connection or a trusted proxy (SPEC §8). */
  readonly clientCertificate: ClientCertificateSource;
  /** Client certificates can reach the provider (TLS_CLIENT_CA_FILE or CLIENT_CERT_HEADER). */
  readonly acceptsClientCertificates: boolean;
}

/** The public halves of the provider's signing keys, for verifying our own JWTs in-process. */
function publicHalves(jwks: { keys: JsonWebKey[] }): { keys: JsonWebKey[] } {
  return {
    keys: jwks.keys.map((jwk) => {
      const { kid, alg, use } = jwk as JsonWebKey & { kid?: string; alg?: string; use?: string };
      return { ...createPublicKey({ key: jwk, format: 'jwk' }).export({ format: 'jwk' }), kid, alg, use };
    }),
  };
}

/** The resource servers a stored token is for: an access token's audience, a refresh token's resources. */
function tokenResources(token: { aud?: unknown; resource?: unknown }): string[] {
  const values = [token.aud, token.resource].flat();
  return values.filter((value): value is string => typeof value === 'string');
}

/** The endpoints the per-IP limit guards: every one of them authenticates a client. */
const IP_LIMITED_ROUTES = ['token', 'introspection', 'revocation', 'pushed_authorization_request', 'device_authorization'] as const;

const ALGS = [...SIGNING_ALGS];
/** SPEC §2: a client's jwks_uri is fetched with a timeout, a size limit and a cache, failures too. */
const JWKS_FETCH_TIMEOUT_MS = 2_500;
const JWKS_MAX_BYTES = 64 * 1024;
const JWKS_FAILURE_TTL_MS = 30_000;
const DEFAULT_ACCESS_TOKEN_TTL = 900;

/** What oidc-provider says when a DPoP proof's jti was seen before (helpers/validate_dpop.js). */
const DPOP_REPLAY_DETAIL = 'DPoP proof JWT Replay detected';
/** What oidc-provider says when a client uses a grant type it did not register (actions/token.js). */
const GRANT_NOT_ALLOWED_DESCRIPTION = 'requested grant type is not allowed for this client';

/** The endpoints a client authenticates at, which RFC 8705 §5 lets discovery alias for mTLS. */
const MTLS_ALIASED_ENDPOINTS = [
  'token_endpoint',
  'revocation_endpoint',
  'introspection_endpoint',
  'userinfo_endpoint',
  'pushed_authorization_request_endpoint',
  'device_authorization_endpoint',
] as const;

async function advertiseMtlsEndpointAliases(ctx: KoaContextWithOIDC, next: () => Promise<void>): Promise<void> {
  await next();
  if (ctx.oidc?.route !== 'discovery' || ctx.status !== 200 || typeof ctx.body !== 'object' || ctx.body === null) return;
  const metadata = ctx.body as Record<string, unknown>;
  const aliases = Object.fromEntries(MTLS_ALIASED_ENDPOINTS.flatMap((name) => (typeof metadata[name] === 'string' ? [[name, metadata[name]]] : [])));
  metadata['mtls_endpoint_aliases'] = aliases;
}

export function createProvider(deps: ProviderDependencies): Provider {
  const resourceIndicators = createResourceIndicators(deps.resourceServers);
  const deviceFlow = createDeviceFlow({ db: deps.db, views: deps.views, logger: deps.logger, metrics: deps.metrics });
  const configuration: Configuration = {
    // Storage in PostgreSQL/PGlite; clients come from the admin API's table.
    adapter: createAdapterFactory(deps.db, deps.clientMetadata, deps.requestWrites),
    // No static clients: one source of truth for clients is the clients table.
    clients: [],
    jwks: deps.jwks,
    // SPEC §2: jwks_uri fetches refuse non-public addresses before connecting (in DNS lookup, so a
    // rebinding name cannot slip through), time out, cap the body and remember failures.
    fetch: createOutboundFetch({
      allowPrivate: deps.allowPrivateJwksUri,
      timeoutMs: JWKS_FETCH_TIMEOUT_MS,
      maxBodyBytes: JWKS_MAX_BYTES,
      failureTtlMs: JWKS_FAILURE_TTL_MS,
    }),
    // The provider's default jwks_uri limit is none; the fetch above already enforces this one.
    fetchResponseBodyLimits: { jwks_uri: JWKS_MAX_BYTES },
    cookies: {
      // Signed cookies; keys are random, sealed with MASTER_KEY and shared by every instance.
      keys: [...deps.cookieKeys],
      // The session cookie is for ISSUER's path only, not every app behind the same proxy host.
      // (Not in `short`: the provider spreads those after each interaction cookie's own path.)
      long: { httpOnly: true, sameSite: 'lax', path: issuerPath(deps.issuer) || '/' },
      short: { httpOnly: true, sameSite: 'lax' },
    },
    features: {
      // Every page a person sees is Gatehouse's own (SPEC §2).
      devInteractions: { enabled: false },
      // Services get tokens with the client-credentials grant (SPEC §2).
      clientCredentials: { enabled: true },
      // RFC 7662 and RFC 7009 (SPEC §2).
      introspection: {
        enabled: true,
        // SPEC §2, RFC 7662 §4: only the token's own client, or a confidential client allowed for
        // the token's resource server (the service it was minted for), learns that it is active.
        // JWT access tokens get the same rule in src/oidc/jwt-introspection.ts.
        allowedPolicy: (_ctx, client, token) =>
          token.clientId === client.clientId || (client.clientAuthMethod !== 'none' && tokenResources(token).some((resource) => allowedResources(client).includes(resource))),
      },
      // SPEC §8, RFC 8705: client authentication with a certificate and certificate-bound tokens.
      // The certificate comes from src/http/client-certificate.ts; subjects compare as RFC 4514
      // DNs or SANs (./certificate-subject.ts).
      mTLS: {
        enabled: true,
        certificateBoundAccessTokens: true,
        tlsClientAuth: true,
        selfSignedTlsClientAuth: true,
        getCertificate: (ctx) => deps.clientCertificate(ctx.req)?.certificate,
        certificateAuthorized: (ctx) => deps.clientCertificate(ctx.req)?.chainVerified === true,
        certificateSubjectMatches(ctx, property, expected) {
          const presented = deps.clientCertificate(ctx.req);
          return presented !== undefined && certificateSubjectMatches(presented.certificate, property, expected);
        },
      },
      revocation: {
        enabled: true,
        // RFC 7009 §2.1: a client may only revoke tokens that were issued to it.
        allowedPolicy: (_ctx, client, token) => token.clientId === client.clientId,
      },
      // RP-initiated logout (SPEC §2) with Gatehouse's own pages. The provider only redirects to a
      // post_logout_redirect_uri the client registered.
      rpInitiatedLogout: {
        enabled: true,
        logoutSource(ctx, form) {
          ctx.type = 'html';
          ctx.body = deps.views.render('logout', {
            title: 'Sign out',
            form,
            clientName: ctx.oidc.client?.clientName ?? ctx.oidc.client?.clientId,
          });
        },
        postLogoutSuccessSource(ctx) {
          ctx.type = 'html';
          ctx.body = deps.views.render('logged-out', { title: 'Signed out', clientName: ctx.oidc.client?.clientName ?? ctx.oidc.client?.clientId });
        },
      },
      // RFC 8707 from the resource_servers table; every access token is for one resource server.
      resourceIndicators,
      // SPEC §8, RFC 9449: DPoP at the token endpoint (and userinfo). Nonces are keyed by a secret
      // every instance shares, so one instance's nonce is good at all of them; a proof must carry
      // one (RFC 9449 §8), which bounds a stolen proof's life to the nonce's. Proof jti replay is
      // refused through ReplayDetection, atomic across instances (./model-extensions.ts).
      dPoP: {
        enabled: true,
        nonceSecret: deps.dpopNonceSecret,
        requireNonce: () => true,
        allowReplay: false,
      },
      // SPEC §12, RFC 9126: the PAR endpoint (discovery's pushed_authorization_request_endpoint).
      // Pushing is required only of clients registered with require_pushed_authorization_requests;
      // a pushed request may not bring a redirect_uri the client did not register (RFC 9126 §2.4
      // allows it, but then a stolen client secret could send codes anywhere).
      pushedAuthorizationRequests: {
        enabled: true,
        requirePushedAuthorizationRequests: false,
        allowUnregisteredRedirectUris: false,
      },
      // SPEC §12, RFC 8628: the device grant, with Gatehouse's own pages at <ISSUER>/device, the
      // per-IP user-code guess limit, slow_down and its audit events (./device-flow.ts).
      deviceFlow: deviceFlow.feature,
    },
    // The OpenID scopes; resource-server scopes come from the database per request.
    scopes: [...OIDC_SCOPES],
    // Standard claims by scope (OIDC Core §5.4), from the users table.
    claims: CLAIMS_BY_SCOPE,
    // SPEC §4: what a sign-in achieved; a request may ask for the second factor by acr_values.
    acrValues: [ACR_PASSWORD, ACR_MFA],
    // SPEC §3: person tokens carry auth_time and acr publicly; the rest goes to the inner layer.
    // SPEC §9: an exchanged token says who acted (`act`, ./token-exchange.ts).
    extraTokenClaims: (ctx, token) => {
      const person = publicPersonClaims(ctx, token as { accountId?: string });
      const actor = actorClaim(token);
      return person === undefined && actor === undefined ? undefined : { ...person, ...actor };
    },
    // SPEC §2: refresh tokens rotate on every use; reusing a rotated one revokes the grant.
    rotateRefreshToken: true,
    // Consent is remembered per grant; first-party clients skip it (src/oidc/grants.ts).
    loadExistingGrant,
    // Browser-based clients may call the token endpoint only from their own redirect origins.
    clientBasedCORS(_ctx, origin, client) {
      return client.redirectUris?.some((uri) => new URL(uri).origin === origin) ?? false;
    },
    // SPEC §2 and §8: these six, and not client_secret_jwt (it would need the plaintext secret).
    clientAuthMethods: ['client_secret_basic', 'client_secret_post', 'private_key_jwt', 'tls_client_auth', 'self_signed_tls_client_auth', 'none'],
    // Authorization code only (SPEC §2, RFC 9700 §2.1.2): no implicit or hybrid responses.
    responseTypes: ['code'],
    clientDefaults: {
      grant_types: ['authorization_code'],
      response_types: ['code'],
      // The keystore is EC-first; RS256 (the spec default) would work, ES256 is smaller and faster.
      id_token_signed_response_alg: 'ES256',
      token_endpoint_auth_method: 'client_secret_basic',
    },
    // Only the algorithms Gatehouse holds keys for; no HS* (secrets are stored hashed).
    enabledJWA: {
      idTokenSigningAlgValues: ALGS,
      userinfoSigningAlgValues: ALGS,
      introspectionSigningAlgValues: ALGS,
      authorizationSigningAlgValues: ALGS,
      clientAuthSigningAlgValues: ALGS,
      requestObjectSigningAlgValues: ALGS,
      // RFC 9449 proofs: asymmetric only (§4.2); the same family Gatehouse signs with.
      dPoPSigningAlgValues: [...DPOP_ALGS],
    },
    extraClientMetadata: {
      properties: [...EXTRA_CLIENT_METADATA],
      validator(_ctx, key, value) {
        if (key === 'allowed_resources' && value !== undefined && !(Array.isArray(value) && value.every((v) => typeof v === 'string'))) {
          throw new TypeError('allowed_resources must be an array of strings');
        }
        if (key === 'require_mfa' && value !== undefined && typeof value !== 'boolean') {
          throw new TypeError('require_mfa must be a boolean');
        }
        if (key === 'registered_scope' && value !== undefined && typeof value !== 'string') {
          throw new TypeError('registered_scope must be a string');
        }
        if (key === 'token_exchange' && value !== undefined && subjectAudiences({ token_exchange: value }) === undefined) {
          throw new TypeError('token_exchange must be an object with subject_audiences');
        }
      },
    },
    ttl: {
      // Tokens for a resource server live as long as it says (SPEC §5 access_token_ttl, default 900 s);
      // the userinfo token, which has no resource server, lives as long.
      AccessToken: (_ctx, token) => token.resourceServer?.accessTokenTTL ?? DEFAULT_ACCESS_TOKEN_TTL,
      ClientCredentials: (_ctx, token) => token.resourceServer?.accessTokenTTL ?? DEFAULT_ACCESS_TOKEN_TTL,
      // Short enough that a stolen code is useless, long enough for a slow redirect.
      AuthorizationCode: 60,
      // RFC 8628 §3.2 (./device-flow.ts): long enough to find a laptop and sign in there.
      DeviceCode: DEVICE_CODE_TTL_SECONDS,
      IdToken: 3600,
      // A person gets 30 minutes to finish signing in (password, second factor, consent).
      Interaction: 1800,
      // Single sign-on lasts a working day; sessions are not meant to outlive it.
      Session: 12 * 3600,
      // Refresh tokens rotate on use (SPEC §2); an unused one lapses after 14 days, and the grant with it.
      RefreshToken: 14 * 24 * 3600,
      Grant: 14 * 24 * 3600,
    },
    formats: {
      // The double-wrapped token's inner layer is added here, before the provider signs (SPEC §3).
      customizers: { jwt: innerLayer(deps.resourceServers, deps.jweEncryptor, innerPersonClaims(deps.accounts)) },
    },
    interactions: {
      // Hosted pages live under /interaction (src/interactions); absolute, from ISSUER (SPEC §1).
      url: (_ctx, interaction) => `${deps.issuer}/interaction/${interaction.uid}`,
      // The default prompts plus the second-factor check (src/oidc/second-factor-check.ts).
      policy: interactionPolicyWithSecondFactor({ accounts: deps.accounts, secondFactor: deps.secondFactor }),
    },
    // People from the users table; disabled or deleted ones are not found (src/oidc/accounts.ts).
    findAccount: (ctx, sub) => deps.accounts.findAccount(ctx, sub),
    // The default page has inline style and prints internals; ours is escaped and CSP-clean.
    renderError(ctx, out, error) {
      const unavailable = isUnavailable(error);
      ctx.type = 'html';
      ctx.body = deps.views.render('error', {
        title: unavailable ? 'Temporarily unavailable' : 'Something went wrong',
        message: unavailable
          ? 'Sign-in is temporarily unavailable. Please try again in a moment.'
          : (out.error_description ?? 'The request could not be completed.'),
        requestId: ctx.state.requestId,
      });
    },
  };

  // The per-client limit must run after client authentication and before the grant does any
  // work; the provider has no hook there, but it registers every built-in grant type through
  // registerGrantType during construction, so each handler is wrapped on its way in.
  // test/integration/rate-limit.test.ts fails if a release stops doing that.
  class RateLimitedProvider extends Provider {
    override registerGrantType<Params extends object = UnknownObject>(
      name: string,
      handler: (ctx: TokenEndpointGrantContext<Params>) => CanBePromise<void>,
      params?: string | readonly string[] | ReadonlySet<string>,
      duplicates?: string | readonly string[] | ReadonlySet<string>,
    ): void {
      // RFC 8628 §3.5: device-code polls are paced inside the per-client limit (after authentication).
      const paced = name === DEVICE_CODE_GRANT ? deviceFlow.paceDevicePolls(handler) : handler;
      super.registerGrantType(name, limitGrantPerClient(deps.rateLimits, paced), params, duplicates);
    }
  }

  const provider = new RateLimitedProvider(deps.issuer, configuration);
  // The provider builds contexts of its own too (its cookie jar, interactionDetails): the same
  // proxy trust for client addresses, and the same origin, ISSUER's, as the app it is mounted in.
  provider.proxy = deps.trustProxy;
  pinRequestOriginToIssuer(provider, deps.issuer);

  // Where oidc-provider's models do not do what SPEC asks (src/oidc/model-extensions.ts).
  extendModels(provider, { db: deps.db, clientSecrets: deps.clientSecrets, clientMetadata: deps.clientMetadata });
  // Metrics, audit and logs from the provider's events (src/oidc/provider-events.ts).
  observeProvider(provider, { db: deps.db, logger: deps.logger, metrics: deps.metrics });

  // Per-IP limits first, before the provider reads a body or looks up a client. Paths are the
  // router's own (mountPath ''), as the provider is mounted at the root of the app.
  provider.use(limitPerIp(deps.rateLimits, new Set(IP_LIMITED_ROUTES.map((route) => provider.pathFor(route, { mountPath: '' })))));

  // SPEC §12: the device pages' guess limit and audits, and the poll interval (./device-flow.ts).
  provider.use(
    deviceFlow.middleware({
      deviceAuthorization: provider.pathFor('device_authorization', { mountPath: '' }),
      codeVerification: provider.pathFor('code_verification', { mountPath: '' }),
    }),
  );
  provider.on('grant.success', deviceFlow.onGrantSuccess);

  // SPEC §6: when the database is gone, protocol endpoints answer 503 temporarily_unavailable
  // (RFC 6749 §4.1.2.1) instead of the provider's generic 500 server_error.
  provider.use(async function databaseOutageAs503(ctx, next) {
    await next();
    if (ctx.status !== 500 || ctx.state.databaseUnavailable !== true) return;
    ctx.status = 503;
    ctx.set('Retry-After', '5');
    if (ctx.response.is('json')) {
      ctx.body = { error: 'temporarily_unavailable', error_description: 'the service is temporarily unavailable, retry shortly' };
    }
  });

  // Two token endpoint answers get the RFC's error code instead of oidc-provider's (which names
  // the reason only in its error event, so the event marks the request and the answer is
  // rewritten); test/flows/dpop.test.ts and token-exchange.test.ts fail if an upgrade changes them:
  // - RFC 9449 §4.3 (check 12) and §5: a replayed DPoP proof is invalid_dpop_proof, not invalid_grant;
  // - RFC 6749 §5.2: a grant type the client is not registered for is unauthorized_client, not invalid_request
  //   (at the device authorization endpoint too).
  const RFC_ERRORS = {
    dpopReplay: { error: 'invalid_dpop_proof', error_description: 'DPoP proof was already used' },
    grantNotAllowed: { error: 'unauthorized_client', error_description: 'this client is not registered for this grant type' },
  } as const;
  provider.on('grant.error', (ctx: KoaContextWithOIDC, error: { error_detail?: unknown; error_description?: unknown }) => {
    if (error.error_detail === DPOP_REPLAY_DETAIL) ctx.state['rfcError'] = RFC_ERRORS.dpopReplay;
    else if (error.error_description === GRANT_NOT_ALLOWED_DESCRIPTION) ctx.state['rfcError'] = RFC_ERRORS.grantNotAllowed;
  });
  // RFC 8628 §3.2 answers with RFC 6749 §5.2's codes too: a client not registered for the device grant is unauthorized_client.
  provider.on('device_authorization.error', (ctx: KoaContextWithOIDC, error: { error_description?: unknown }) => {
    if (error.error_description === `${DEVICE_CODE_GRANT} is not allowed for this client`) ctx.state['rfcError'] = RFC_ERRORS.grantNotAllowed;
  });
  provider.use(async function answerWithRfcErrorCodes(ctx, next) {
    await next();
    const rewritten = ctx.state['rfcError'] as (typeof RFC_ERRORS)[keyof typeof RFC_ERRORS] | undefined;
    if (rewritten !== undefined && ctx.status === 400 && ctx.response.is('json')) ctx.body = { ...rewritten };
  });

  // RFC 8705 §5: clients doing mutual TLS use these; Gatehouse asks for the certificate on its one
  // listener, so each alias is the endpoint itself. Only when a certificate can reach it at all.
  if (deps.acceptsClientCertificates) provider.use(advertiseMtlsEndpointAliases);

  // SPEC §9: RFC 8693 token exchange, through registerGrantType (so the per-client limit wraps it too).
  const publicJwks = publicHalves(deps.jwks);
  const verifyOwnToken = ownAccessTokenVerifier({ issuer: deps.issuer, publicJwks: () => publicJwks, escrowKey: deps.tokenEscrowKey });
  registerTokenExchange(provider, {
    db: deps.db,
    logger: deps.logger,
    accounts: deps.accounts,
    verifyOwnToken,
    resourceServerInfo: (ctx, resource, client) => resourceIndicators.getResourceServerInfo(ctx, resource, client),
  });

  // SPEC §3 encrypt_whole_token: nested JWT with cty "JWT" (see src/tokens/access-token.ts).
  provider.use(encryptWholeTokens(deps.tokenEscrowKey, deps.jweEncryptor));
  // RFC 7662 for Gatehouse's JWT access tokens, which the provider does not store.
  provider.use(introspectJwtAccessTokens({ issuer: deps.issuer, db: deps.db, publicJwks: () => publicJwks, escrowKey: deps.tokenEscrowKey }));

  return provider;
}
