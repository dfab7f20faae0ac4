import type { Envelope } from '../crypto/envelope.js';
import type { ClientSecretHasher } from '../crypto/client-secret.js';
import type { Database } from '../db/database.js';
import type { PasswordHasher } from '../accounts/passwords.js';
import type { ResourceServerRegistry } from '../oidc/resource-server-registry.js';
import { createAuditEventService, type AuditEventService } from './audit-events/service.js';
import { createClientService, type ClientService } from './clients/service.js';
import { createGatewayRouteService, type GatewayRouteService } from './gateway-routes/service.js';
import { createIdentityProviderService, type IdentityProviderService } from './identity-providers/service.js';
import { createKeyService } from './keys/service.js';
import { createResourceServerService, type ResourceServerService } from './resource-servers/service.js';
import { createUserService, type UserService } from './users/service.js';

/**
 * The management services: clients, resource servers, users, keys, audit events, gateway routes
 * and identity providers. The admin API, the operator CLI and (soon) the console are front doors
 * onto these; each validates with the same schemas, records the same audit events and maps the
 * same domain errors (./errors.ts) once, in its own format.
 */
export interface ManagementServices {
  readonly clients: ClientService;
  readonly resourceServers: ResourceServerService;
  readonly keys: ReturnType<typeof createKeyService>;
  readonly users: UserService;
  readonly auditEvents: AuditEventService;
  readonly gatewayRoutes: GatewayRouteService;
  readonly identityProviders: IdentityProviderService;
}

export interface ManagementDependencies {
  readonly db: Database;
  /** Gatehouse's issuer identifier (identity providers' redirect URIs are under it). */
  readonly issuer: string;
  readonly envelope: Envelope;
  readonly clientSecrets: ClientSecretHasher;
  readonly passwords: PasswordHasher;
  readonly resourceServers: ResourceServerRegistry;
  /** oidc-provider's own validation of client metadata (the provider in service). */
  readonly validateClientMetadata: (metadata: Record<string, unknown>) => Promise<void>;
  /** Drops a client from the token path's cache on this instance at once. */
  readonly forgetClient: (clientId: string) => void;
  /** Reloads the signing keys on this instance after a rotation or revocation. */
  readonly keysChanged: () => Promise<unknown>;
  /** ALLOW_PRIVATE_JWKS_URI: client jwks_uri and identity provider issuers may be on private hosts. */
  readonly allowPrivateJwksUri: boolean;
  /** Drops this instance's gateway route table at once after a change. */
  readonly gatewayRoutesChanged: () => void;
  /** Drops this instance's cached list of enabled identity providers (the others follow the change feed). */
  readonly identityProvidersChanged: () => void;
}

export function createManagementServices(deps: ManagementDependencies): ManagementServices {
  const { db } = deps;
  return {
    clients: createClientService({
      db,
      hasher: deps.clientSecrets,
      validateWithProvider: deps.validateClientMetadata,
      forget: deps.forgetClient,
      allowPrivateJwksUri: deps.allowPrivateJwksUri,
    }),
    resourceServers: createResourceServerService({ db, registry: deps.resourceServers }),
    keys: createKeyService({ db, envelope: deps.envelope, onRotated: deps.keysChanged }),
    users: createUserService({ db, hasher: deps.passwords }),
    auditEvents: createAuditEventService({ db }),
    gatewayRoutes: createGatewayRouteService({ db, routesChanged: deps.gatewayRoutesChanged }),
    identityProviders: createIdentityProviderService({ db, envelope: deps.envelope, issuer: deps.issuer, allowPrivateIssuer: deps.allowPrivateJwksUri, providersChanged: deps.identityProvidersChanged }),
  };
}
