import { ACR_MFA } from '../oidc/accounts.js';
import type { Services } from '../services.js';
import { BoundedCache } from '../lib/bounded-cache.js';
import { createVerifier, type Verifier } from '../verifier/index.js';
import { createSenderBindingChecker, type DpopReplayStore } from '../verifier/sender-binding.js';
import type { GatewayPolicyDeps } from './decide.js';
import { createReferenceTokens, isReferenceTokenShape } from '../oidc/reference-tokens.js';
import { createUpstreamTokens } from './upstream-token.js';

/**
 * How long a verified token is remembered for the exact token string (never past its `exp`, and
 * only while the key that verified it is still published: src/verifier). A token seen again then
 * costs a map lookup, not a signature check: the gateway sees the same tokens over and over.
 */
const VERIFIED_TOKEN_SECONDS = 60;

/**
 * What the gateway policy needs, from this instance's services: tokens verified in-process with
 * the keys this instance holds (the verifier resource servers use; no HTTP round trip to itself),
 * the token's client still standing behind it, and the person from Gatehouse's own users table
 * (it cannot read the inner layer), through a cache every announced change empties.
 */
export function gatewayPolicy(issuer: string, services: Pick<Services, 'providers' | 'accounts' | 'gatewayPeople' | 'tokenClient' | 'tokenMinter'>): GatewayPolicyDeps {
  const references = createReferenceTokens(() => services.providers.current());
  // SPEC §2: a DPoP proof's jti is accepted once, across instances: the gateway claims it in the
  // database as the token endpoint does (ReplayDetection, src/oidc/model-extensions.ts).
  const replayStore: DpopReplayStore = {
    firstUse: (key, expiresAtSeconds) => services.providers.current().ReplayDetection.unique('gateway-dpop', key, expiresAtSeconds),
  };
  // Reference tokens are looked up, not verified: their binding is checked on its own.
  const referenceBinding = createSenderBindingChecker({ clockTolerance: 5, requireSenderConstraint: false, dpop: { replayStore } });
  // One verifier per resource server a route names (a bounded, small set).
  const verifiers = new BoundedCache<string, Verifier>(1_000);
  const verifierFor = (audience: string): Verifier => {
    let verifier = verifiers.get(audience);
    if (verifier === undefined) {
      verifier = createVerifier({ issuer, audience, jwks: () => services.providers.publicJwks(), cacheMaxAgeSeconds: VERIFIED_TOKEN_SECONDS, dpop: { replayStore } });
      verifiers.set(audience, verifier);
    }
    return verifier;
  };
  async function referenceClaims(token: string, audience: string) {
    const found = await references.find(token);
    if (found === undefined || !found.aud.includes(audience)) throw new Error('no such reference token for this audience');
    return found;
  }

  return {
    async verify(token, audience, presented) {
      // SPEC §7: a reference token (no dots, unlike a JWS or JWE) is looked up; a JWT verified.
      // Either way what a bound token is bound to must come with it (SPEC §8).
      let claims;
      if (isReferenceTokenShape(token)) {
        claims = await referenceClaims(token, audience);
        await referenceBinding.check(token, claims, presented);
      } else {
        claims = (await verifierFor(audience).verify(token, presented)).claims;
      }
      // As introspection answers (src/oidc/jwt-introspection.ts): a deleted client's tokens, and
      // those from before its credentials last changed, no longer pass. Served from the client cache.
      const client = await services.tokenClient(claims.client_id);
      if (client === undefined || claims.iat < client.tokensNotBefore) throw new Error('the token’s client no longer stands behind it');
      return {
        sub: claims.sub,
        client_id: claims.client_id,
        scope: claims.scope,
        acr: typeof claims.acr === 'string' ? claims.acr : undefined,
        auth_time: typeof claims.auth_time === 'number' ? claims.auth_time : undefined,
        exp: claims.exp,
      };
    },
    upstreamToken: createUpstreamTokens({ mint: (request) => services.tokenMinter.mint(request) }),
    async person(sub) {
      const user = await services.gatewayPeople.get(sub, () => services.accounts.load(undefined, sub));
      return user === undefined || user.disabled ? undefined : user;
    },
    mfaAcr: ACR_MFA,
  };
}
