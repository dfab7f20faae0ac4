import type Provider from 'oidc-provider';
import type { SigningAlg } from '../crypto/signing-keys.js';
import type { JweEncryptor } from '../tokens/crypto-pool.js';
import { attachSignIn } from '../tokens/person-claims.js';
import type { ResourceServerRegistry } from './resource-server-registry.js';

/**
 * Access tokens Gatehouse mints for itself, outside a token request: the gateway's
 * `upstream_token: "exchange"` (SPEC §7) hands the upstream a double-wrapped token for its own
 * resource server. Minted through oidc-provider's own models, so the very code that shapes
 * /token's JWTs (claims, `inner` to the server's key, signing key and alg) shapes these; the
 * whole-token layer, which /token adds around the response, is added here.
 */
export interface MintRequest {
  readonly sub: string;
  readonly clientId: string;
  /** The original token's scopes; only those the target resource server defines are kept. */
  readonly scope: string | undefined;
  readonly resource: string;
  /** Epoch seconds. */
  readonly exp: number;
  readonly acr?: string | undefined;
  readonly authTime?: number | undefined;
}

export interface MintedToken {
  readonly value: string;
  readonly exp: number;
}

export interface TokenMinter {
  /** Undefined when the resource server or the client no longer exists. */
  mint(request: MintRequest): Promise<MintedToken | undefined>;
}

export function createTokenMinter(deps: {
  readonly current: () => Provider;
  readonly resourceServers: ResourceServerRegistry;
  readonly encryptor: JweEncryptor;
  readonly escrowKey: Buffer;
}): TokenMinter {
  return {
    async mint(request) {
      const provider = deps.current();
      const entry = await deps.resourceServers.get(request.resource);
      const client = await provider.Client.find(request.clientId);
      const now = Math.floor(Date.now() / 1000);
      if (entry === undefined || client === undefined || request.exp <= now) return undefined;
      const server = entry.row;
      const offered = new Set(server.scopes);
      const scope = (request.scope ?? '').split(' ').filter((s) => offered.has(s)).join(' ') || undefined;
      const isPerson = request.sub !== request.clientId;
      // A JWT access token is not stored, and neither carries nor consults a grant: the model's
      // grantId and gty fields only name where this one came from.
      const token = isPerson
        ? new provider.AccessToken({ client, accountId: request.sub, scope, grantId: 'gateway-exchange', gty: 'gateway_exchange' })
        : new provider.ClientCredentials({ client, scope });
      // Always a JWT, whatever /token gives this server: the upstream verifies it offline.
      token.resourceServer = new provider.ResourceServer(server.identifier, {
        audience: server.identifier,
        scope: server.scopes.join(' '),
        accessTokenTTL: request.exp - now,
        accessTokenFormat: 'jwt',
        jwt: { sign: { alg: server.signing_alg as SigningAlg } },
      });
      (token as { expiresIn?: number }).expiresIn = request.exp - now;
      if (isPerson) attachSignIn(token, { ...(request.acr === undefined ? {} : { acr: request.acr }), ...(request.authTime === undefined ? {} : { authTime: request.authTime }) });
      let value = await token.save();
      if (server.encrypt_whole_token && entry.recipient !== undefined) {
        value = await deps.encryptor.encrypt(entry.recipient, value, { extraHeader: { cty: 'JWT' }, escrowKey: deps.escrowKey });
      }
      return { value, exp: now + (token as { expiration: number }).expiration };
    },
  };
}
