import { errors, type Client, type KoaContextWithOIDC, type ResourceServer } from 'oidc-provider';
import type { SigningAlg } from '../crypto/signing-keys.js';
import { allowedResources, grantableScopes, OIDC_SCOPES, registeredScopes } from './clients.js';
import type { ResourceServerRegistry } from './resource-server-registry.js';

/** Whether the token this request gets will be DPoP-bound (a proof is sent) or certificate-bound. */
function senderConstrained(ctx: KoaContextWithOIDC, client: Client): boolean {
  return ctx.get('DPoP') !== '' || client.tlsClientCertificateBoundAccessTokens === true;
}

/**
 * RFC 8707 resource indicators backed by the resource_servers table. A client may only get
 * tokens for the resources in its `allowed_resources`, with scopes that resource server defines
 * (SPEC §2).
 */
export function createResourceIndicators(registry: ResourceServerRegistry) {
  return {
    enabled: true,

    // SPEC §2: "If resource is omitted and the client has exactly one allowed resource, that one is used"
    // (client credentials, and the authorization request). Exchanging a code or refresh token
    // without `resource` keeps the provider's rules: an openid grant yields the userinfo token.
    defaultResource(ctx: KoaContextWithOIDC, client: Client, oneOf?: readonly string[]) {
      if (oneOf !== undefined) return oneOf;
      const clientCredentials = ctx.oidc.params?.['grant_type'] === 'client_credentials';
      if (!clientCredentials && ctx.oidc.route !== 'authorization') return undefined;
      const allowed = allowedResources(client);
      if (allowed.length === 1) return allowed[0];
      if (clientCredentials) {
        throw new errors.InvalidTarget('resource parameter is required: this client may obtain tokens for more than one resource');
      }
      return undefined;
    },

    async getResourceServerInfo(ctx: KoaContextWithOIDC, resourceIndicator: string, client: Client): Promise<ResourceServer> {
      // RFC 8707 §2: invalid_target when the resource is unknown or the client may not use it.
      if (!allowedResources(client).includes(resourceIndicator)) {
        throw new errors.InvalidTarget('this client is not allowed to request tokens for that resource');
      }
      const entry = await registry.get(resourceIndicator);
      if (entry === undefined) throw new errors.InvalidTarget('unknown resource');
      const server = entry.row;
      // SPEC §8: such a server only gets tokens bound to a DPoP key or the client's certificate.
      // The grant itself validates the proof and binds the certificate; here it must be asked for.
      if (server.require_sender_constraint && ctx.oidc.route === 'token' && !senderConstrained(ctx, client)) {
        throw new errors.InvalidRequest(`${resourceIndicator} only accepts sender-constrained tokens: send a DPoP proof, or use a certificate-bound client`);
      }

      // A client that registered a `scope` may only get those of the server's scopes; one that
      // registered none gets no scope of the privileged admin API (src/oidc/clients.ts).
      const available = grantableScopes(registeredScopes(client), server);

      // RFC 6749 §5.2 invalid_scope: a requested scope the resource server does not offer this
      // client is refused, never silently dropped.
      const requested = typeof ctx.oidc.params?.['scope'] === 'string' ? ctx.oidc.params['scope'].split(' ').filter(Boolean) : [];
      const refused = requested.filter((s) => !available.includes(s) && !(OIDC_SCOPES as readonly string[]).includes(s));
      if (refused.length > 0) {
        throw new errors.InvalidScope(`scope not available for ${resourceIndicator}`, refused.join(' '));
      }

      return {
        scope: available.join(' '),
        audience: server.identifier,
        accessTokenTTL: server.access_token_ttl,
        // SPEC §7: a reference resource server gets an opaque token, stored here; nothing readable leaves.
        ...(server.token_format === 'reference'
          ? { accessTokenFormat: 'opaque' as const }
          : { accessTokenFormat: 'jwt' as const, jwt: { sign: { alg: server.signing_alg as SigningAlg } } }),
      };
    },

    // With `openid` granted, a code or refresh token exchanged without `resource` yields the
    // userinfo token; a client asks for its API token by naming `resource` (README: "Tokens for people").
    useGrantedResource() {
      return false;
    },
  };
}
