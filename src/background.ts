import { subscribeToChanges } from './db/change-feed.js';
import { startMaintenance } from './maintenance.js';
import { GATEWAY_CLIENT_ID } from './oidc/gateway-client.js';
import type { Runtime } from './runtime.js';
import type { Services } from './services.js';

/**
 * What a serving instance does besides answering requests: it listens to the database's change
 * notifications (keeping the client and resource-server caches honest and picking up key
 * changes at once), polls the signing keys as a fallback, and prunes expired rows. The CLI
 * never starts this.
 */
export interface Background {
  /** Whether change notifications are known to flow; caches serve nothing while false. */
  live(): boolean;
  stop(): void;
}

export function startBackground(runtime: Runtime, services: Services): Background {
  const { config, logger, db } = runtime;
  const { clientCache, resourceServers, gatewayRoutes, gatewayPeople, enabledProviders, providers } = services;

  const refreshKeys = (): void => {
    providers.refresh().catch((error: unknown) => logger.debug({ err: { message: (error as Error).message } }, 'key refresh failed'));
  };

  // migrations/0005, 0008, 0011, 0012 and 0018: every committed change to a client, resource server, signing key, gateway route, person or identity provider
  // is announced. While the listener is (re)connecting, announcements may have been missed:
  // everything cached is dropped and the keys are reloaded once it is back.
  const changes = subscribeToChanges(db, {
    onChange(kind, key) {
      if (kind === 'client') clientCache.invalidate(key);
      else if (kind === 'resource_server') resourceServers.invalidate(key);
      else if (kind === 'gateway_route') {
        gatewayRoutes.invalidate();
        // The gateway's own client's redirect URIs follow the browser routes.
        clientCache.invalidate(GATEWAY_CLIENT_ID);
      } else if (kind === 'user') gatewayPeople.invalidate(key);
      else if (kind === 'identity_provider') enabledProviders.invalidate();
      else refreshKeys();
    },
    onState() {
      clientCache.clear();
      resourceServers.invalidate();
      gatewayRoutes.invalidate();
      gatewayPeople.clear();
      enabledProviders.invalidate();
      refreshKeys();
    },
  });

  // A retired key expiring is not announced, and an announcement can be lost: poll as well.
  const keyPoll = setInterval(refreshKeys, config.keyRefreshIntervalMs);
  keyPoll.unref();

  const stopMaintenance = startMaintenance(db, logger, { auditRetentionDays: config.auditRetentionDays });

  return {
    live: () => changes.live(),
    stop() {
      clearInterval(keyPoll);
      stopMaintenance();
      // Ends the LISTEN connection; closing the database would too.
      void changes.close();
    },
  };
}
