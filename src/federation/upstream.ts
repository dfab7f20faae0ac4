import * as oidc from 'openid-client';

/**
 * The upstream side of SPEC §10 with openid-client: discovery from the provider's `issuer`, the
 * code flow with PKCE, `state` and `nonce`, and the ID token's signature checked against the
 * upstream's JWKS always (openid-client's non-repudiation checks: a token over plain HTTP, or
 * relayed through anything, is not taken on the transport's word). Requests go through
 * Gatehouse's outbound fetch (timeouts, body limits, no private addresses unless allowed).
 */

export interface UpstreamProvider {
  readonly id: string;
  readonly issuer: string;
  readonly clientId: string;
  /** Opened from its envelope; undefined for a public client (PKCE only). */
  readonly clientSecret: string | undefined;
  readonly scopes: readonly string[];
  /** Changes whenever the provider is edited: a cached discovery is for one version. */
  readonly version: string;
}

/** What the callback learned: the ID token's claims, merged with userinfo's when some were missing. */
export interface UpstreamIdentity {
  readonly sub: string;
  readonly claims: Readonly<Record<string, unknown>>;
}

export interface PendingFederation {
  readonly providerId: string;
  readonly state: string;
  readonly nonce: string;
  readonly codeVerifier: string;
}

export class UpstreamError extends Error {
  override readonly name = 'UpstreamError';
}

const DISCOVERY_TTL_MS = 10 * 60_000;

export function createUpstreams(deps: { readonly fetch: (url: string, init: RequestInit) => Promise<Response>; readonly redirectUri: (providerId: string) => string }) {
  // openid-client's fetch signature, through the outbound fetch's.
  const customFetch: oidc.CustomFetch = (url, options) =>
    deps.fetch(url, { method: options.method, headers: options.headers, body: options.body as RequestInit['body'], redirect: options.redirect, signal: options.signal ?? null });
  const configs = new Map<string, { version: string; untilMs: number; config: Promise<oidc.Configuration> }>();

  function configFor(provider: UpstreamProvider): Promise<oidc.Configuration> {
    const cached = configs.get(provider.id);
    if (cached !== undefined && cached.version === provider.version && cached.untilMs > Date.now()) return cached.config;
    const issuer = new URL(provider.issuer);
    const config = oidc
      .discovery(issuer, provider.clientId, provider.clientSecret, provider.clientSecret === undefined ? oidc.None() : oidc.ClientSecretPost(provider.clientSecret), {
        [oidc.customFetch]: customFetch,
        // A development or test upstream on plain HTTP; its ID tokens are still signature-checked.
        ...(issuer.protocol === 'http:' ? { execute: [oidc.allowInsecureRequests] } : {}),
      })
      .then((configuration) => {
        configuration[oidc.customFetch] = customFetch;
        oidc.enableNonRepudiationChecks(configuration);
        return configuration;
      });
    configs.set(provider.id, { version: provider.version, untilMs: Date.now() + DISCOVERY_TTL_MS, config });
    // A failed discovery is not remembered: the next sign-in asks again.
    config.catch(() => configs.delete(provider.id));
    return config;
  }

  return {
    /** Where to send the browser, and what the callback must find again. */
    async begin(provider: UpstreamProvider, options: { loginHint?: string | undefined } = {}): Promise<{ url: URL; pending: PendingFederation }> {
      const config = await configFor(provider).catch((error: unknown) => {
        throw new UpstreamError(`discovery failed: ${(error as Error).message}`, { cause: error });
      });
      const codeVerifier = oidc.randomPKCECodeVerifier();
      const pending: PendingFederation = { providerId: provider.id, state: oidc.randomState(), nonce: oidc.randomNonce(), codeVerifier };
      const url = oidc.buildAuthorizationUrl(config, {
        redirect_uri: deps.redirectUri(provider.id),
        scope: provider.scopes.join(' '),
        code_challenge: await oidc.calculatePKCECodeChallenge(codeVerifier),
        code_challenge_method: 'S256',
        state: pending.state,
        nonce: pending.nonce,
        ...(options.loginHint === undefined ? {} : { login_hint: options.loginHint }),
      });
      return { url, pending };
    },

    /** Redeems the code from `callbackUrl`; throws UpstreamError for anything the upstream got wrong. */
    async complete(provider: UpstreamProvider, pending: PendingFederation, callbackUrl: URL, wanted: readonly string[]): Promise<UpstreamIdentity> {
      try {
        const config = await configFor(provider);
        // The redirect_uri sent with the code must be the registered one, whatever host the callback arrived on.
        const current = new URL(deps.redirectUri(provider.id));
        current.search = callbackUrl.search;
        const tokens = await oidc.authorizationCodeGrant(config, current, {
          pkceCodeVerifier: pending.codeVerifier,
          expectedState: pending.state,
          expectedNonce: pending.nonce,
          idTokenExpected: true,
        });
        const idClaims = tokens.claims();
        if (idClaims === undefined || typeof idClaims.sub !== 'string' || idClaims.sub === '') throw new UpstreamError('the ID token has no sub');
        let claims: Record<string, unknown> = { ...idClaims };
        // OIDC Core §5.3: claims the ID token left out may be at userinfo.
        if (wanted.some((name) => claims[name] === undefined) && config.serverMetadata().userinfo_endpoint !== undefined) {
          const userinfo = await oidc.fetchUserInfo(config, tokens.access_token, idClaims.sub);
          claims = { ...userinfo, ...claims };
        }
        return { sub: idClaims.sub, claims };
      } catch (error) {
        if (error instanceof UpstreamError) throw error;
        throw new UpstreamError(describe(error), { cause: error });
      }
    },
  };
}

/** A short reason for the audit log, never a token or a secret. */
function describe(error: unknown): string {
  if (error instanceof oidc.AuthorizationResponseError) return `the provider answered ${error.error}`;
  if (error instanceof oidc.ResponseBodyError) return `the token endpoint answered ${error.error}`;
  if (error instanceof Error && 'code' in error && typeof error.code === 'string') {
    const cause = error.cause instanceof Error ? ` (${error.cause.message})` : '';
    return `${error.code}: ${error.message}${cause}`.slice(0, 300);
  }
  return error instanceof Error ? error.message.slice(0, 300) : 'the provider could not be reached';
}

export type Upstreams = ReturnType<typeof createUpstreams>;
