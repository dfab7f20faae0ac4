import { errors, type Adapter, type AdapterFactory, type AdapterPayload } from 'oidc-provider';
import { containsNul, InvalidTextError, type Queryable } from '../db/database.js';
import { createClientStore } from '../db/clients.js';
import { createGatewayRouteStore } from '../db/gateway-routes.js';
import { createOidcModelStore } from '../db/oidc-models.js';
import type { RequestWrites } from '../db/request-writes.js';
import { clientMetadataFromRow } from './clients.js';
import { GATEWAY_CLIENT_ID, gatewayClientMetadata } from './gateway-client.js';
import { ACCOUNT_CLIENT_ID, accountClientMetadata } from './account-client.js';
import { CONSOLE_CLIENT_ID, consoleClientMetadata } from './console-client.js';
import type { LookupCache } from './lookup-cache.js';
import { deepFreeze } from '../lib/deep-freeze.js';

/**
 * oidc-provider's storage. All models share oidc_models keyed by (model, id), except Client,
 * which is read from the clients table the admin API owns; the provider may never write it.
 */
export class ClientWriteRefusedError extends Error {
  readonly code = 'client_write_refused' as const;

  constructor() {
    super('clients are managed through the admin API, not through oidc-provider');
    this.name = 'ClientWriteRefusedError';
  }
}

/** Client metadata as the provider reads it; frozen, because one object serves many requests. */
export type ClientMetadataCache = LookupCache<Readonly<Record<string, unknown>>>;

/**
 * A client's metadata as oidc-provider reads it, through the cache: for the provider (the
 * adapter below) and for the gateway's client checks, which need no Client instance.
 */
export function createClientMetadataSource(db: Queryable, clientCache: ClientMetadataCache, issuer: string) {
  const clients = createClientStore(db);
  const gatewayRoutes = createGatewayRouteStore(db);
  return function clientMetadata(id: string): Promise<Readonly<Record<string, unknown>> | undefined> {
    // No client id contains NUL; such input is simply unknown (not a database error).
    if (containsNul(id)) return Promise.resolve(undefined);
    return clientCache.get(id, async () => {
      // Gatehouse's own gateway client follows the browser routes (invalidated when they change).
      // The console's client (SPEC §11) follows ISSUER.
      if (id === CONSOLE_CLIENT_ID) return deepFreeze(consoleClientMetadata(issuer));
      // So is the account pages' client (SPEC §4).
      if (id === ACCOUNT_CLIENT_ID) return deepFreeze(accountClientMetadata(issuer));
      if (id === GATEWAY_CLIENT_ID) {
        const gateway = gatewayClientMetadata(await gatewayRoutes.browserHosts());
        return gateway === undefined ? undefined : deepFreeze(gateway);
      }
      const row = await clients.find(id);
      return row === undefined ? undefined : deepFreeze(clientMetadataFromRow(row));
    });
  };
}

/** A client's metadata through the cache (createClientMetadataSource): one per process, shared. */
export type ClientMetadataSource = ReturnType<typeof createClientMetadataSource>;

/**
 * `writes`: in a request that commits its writes together (src/db/request-writes.ts), upserts and
 * destroys wait for that commit; without it every call is written at once.
 */
export function createAdapterFactory(db: Queryable, clientMetadata: ClientMetadataSource, writes?: RequestWrites): AdapterFactory {
  const models = createOidcModelStore(db);

  function asPayload(stored: { payload: Record<string, unknown>; consumed: boolean } | undefined): AdapterPayload | undefined {
    if (stored === undefined) return undefined;
    return stored.consumed ? { ...stored.payload, consumed: true } : stored.payload;
  }

  class ClientAdapter implements Adapter {
    async find(id: string): Promise<AdapterPayload | undefined> {
      // Every token request authenticates its client: served from the cache (src/oidc/lookup-cache.ts).
      const metadata = await clientMetadata(id);
      // The provider annotates a client's keys (x5t#S256) in place: those get a copy of the frozen entry.
      return metadata?.['jwks'] === undefined ? metadata : structuredClone(metadata);
    }
    upsert(): Promise<never> {
      return Promise.reject(new ClientWriteRefusedError());
    }
    destroy(): Promise<never> {
      return Promise.reject(new ClientWriteRefusedError());
    }
    consume(): Promise<never> {
      return Promise.reject(new ClientWriteRefusedError());
    }
    findByUid(): Promise<undefined> {
      return Promise.resolve(undefined);
    }
    findByUserCode(): Promise<undefined> {
      return Promise.resolve(undefined);
    }
    revokeByGrantId(): Promise<void> {
      return Promise.resolve();
    }
  }

  class ModelAdapter implements Adapter {
    /**
     * RFC 8628 §3.5: an expired device code is answered `expired_token` (and its page says it
     * expired), which the provider can only tell if it gets the expired code back: it checks every
     * device code's expiry itself. Other models stay unseen once expired.
     */
    private readonly expiredToo: boolean;

    constructor(private readonly model: string) {
      this.expiredToo = model === 'DeviceCode';
    }

    async upsert(id: string, payload: AdapterPayload, expiresIn: number): Promise<void> {
      try {
        if (writes?.deferUpsert(this.model, id, payload, expiresIn) === true) return;
        await models.upsert(this.model, id, payload, expiresIn);
      } catch (error) {
        // A request parameter the provider keeps (state, nonce, login_hint...) that PostgreSQL cannot
        // store is the client's mistake: RFC 6749 invalid_request, not a server_error.
        if (error instanceof InvalidTextError) throw new errors.InvalidRequest('a parameter contains a NUL character or an unpaired surrogate');
        throw error;
      }
    }
    // Nothing stored has an id with U+0000 (text cannot hold it): such a token, code or uid is unknown.
    // Reads and immediate writes first commit what this request held back for the model (read your own writes).
    async find(id: string): Promise<AdapterPayload | undefined> {
      if (containsNul(id)) return undefined;
      await writes?.settle(this.model, id);
      return asPayload(await models.find(this.model, id, this.expiredToo));
    }
    async findByUid(uid: string): Promise<AdapterPayload | undefined> {
      if (containsNul(uid)) return undefined;
      await writes?.settle(this.model);
      return asPayload(await models.findByUid(this.model, uid));
    }
    async findByUserCode(userCode: string): Promise<AdapterPayload | undefined> {
      if (containsNul(userCode)) return undefined;
      await writes?.settle(this.model);
      return asPayload(await models.findByUserCode(this.model, userCode, this.expiredToo));
    }
    async consume(id: string): Promise<void> {
      await writes?.settle(this.model, id);
      await models.consume(this.model, id);
    }
    async destroy(id: string): Promise<void> {
      if (writes?.deferDestroy(this.model, id) === true) return;
      await models.destroy(this.model, id);
    }
    async revokeByGrantId(grantId: string): Promise<void> {
      await writes?.settle(this.model);
      await models.revokeByGrantId(this.model, grantId);
    }
  }

  const clientAdapter = new ClientAdapter();
  return (model: string) => (model === 'Client' ? clientAdapter : new ModelAdapter(model));
}
