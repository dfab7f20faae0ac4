import { ACR_MFA } from '../oidc/accounts.js';
import type { Services } from '../services.js';
import { BoundedCache } from '../lib/bounded-cache.js';
import { createVerifier, type Verifier } from '../verifier/index.js';
import type { GatewayPolicyDeps } from './decide.js';

/**
 * What the gateway policy needs, from this instance's services: tokens verified in-process with
 * the keys this instance holds (the verifier resource servers use; no HTTP round trip to itself),
 * and the person from Gatehouse's own users table (it cannot read the inner layer).
 */
export function gatewayPolicy(issuer: string, services: Pick<Services, 'providers' | 'accounts'>): GatewayPolicyDeps {
  // One verifier per resource server a route names (a bounded, small set).
  const verifiers = new BoundedCache<string, Verifier>(1_000);
  const verifierFor = (audience: string): Verifier => {
    let verifier = verifiers.get(audience);
    if (verifier === undefined) {
      verifier = createVerifier({ issuer, audience, jwks: () => services.providers.publicJwks() });
      verifiers.set(audience, verifier);
    }
    return verifier;
  };
  return {
    async verify(token, audience) {
      const { claims } = await verifierFor(audience).verify(token);
      return { sub: claims.sub, client_id: claims.client_id, scope: claims.scope, acr: typeof claims['acr'] === 'string' ? claims['acr'] : undefined };
    },
    async person(sub) {
      const user = await services.accounts.load(undefined, sub);
      return user === undefined || user.disabled ? undefined : user;
    },
    mfaAcr: ACR_MFA,
  };
}
