import { errors, type KoaContextWithOIDC, type Client, type ResourceServer } from 'oidc-provider';
import type { Queryable } from '../db/database.js';
import { createResourceServerStore } from '../db/resource-servers.js';
import type { SigningAlg } from '../crypto/signing-keys.js';
import { allowedResources, registeredScopes } from './clients.js';

/**
 * RFC 8707 resource indicators backed by the resource_servers table. A client may only get
 * tokens for the resources in its `allowed_resources` (SPEC §2).
 */

export function createResourceIndicators(db: Queryable) {
  const resourceServers = createResourceServerStore(db);

  return {
    enabled: true,

    // SPEC §2: "If resource is omitted and the client has exactly one allowed resource, that one is used."
    defaultResource(ctx: KoaContextWithOIDC, client: Client, oneOf?: readonly string[]) {
      if (oneOf !== undefined) return oneOf;
      const allowed = allowedResources(client);
      if (allowed.length === 1) return allowed[0];
      if (ctx.oidc.params?.['grant_type'] === 'client_credentials') {
        throw new errors.InvalidTarget('resource parameter is required: this client may obtain tokens for more than one resource');
      }
      return undefined;
    },

    async getResourceServerInfo(_ctx: KoaContextWithOIDC, resourceIndicator: string, client: Client): Promise<ResourceServer> {
      // RFC 8707 §2: invalid_target when the resource is unknown or the client may not use it.
      if (!allowedResources(client).includes(resourceIndicator)) {
        throw new errors.InvalidTarget('this client is not allowed to request tokens for that resource');
      }
      const server = await resourceServers.findByIdentifier(resourceIndicator);
      if (server === undefined) throw new errors.InvalidTarget('unknown resource');
      // A client that registered a `scope` may only get those of the server's scopes.
      const clientScopes = registeredScopes(client);
      const scopes = clientScopes === undefined ? server.scopes : server.scopes.filter((s) => clientScopes.includes(s));
      return {
        scope: scopes.join(' '),
        audience: server.identifier,
        accessTokenTTL: server.access_token_ttl,
        accessTokenFormat: 'jwt',
        jwt: { sign: { alg: server.signing_alg as SigningAlg } },
      };
    },

    // A code or refresh token that names one granted resource yields a token for it without repeating `resource`.
    useGrantedResource() {
      return true;
    },
  };
}
