import type { ManagementServices } from '../management/index.js';
import { auditArea } from './areas/audit.js';
import { clientsArea } from './areas/clients.js';
import { gatewayRoutesArea } from './areas/gateway-routes.js';
import { identityProvidersArea } from './areas/identity-providers.js';
import { keysArea } from './areas/keys.js';
import { resourceServersArea } from './areas/resource-servers.js';
import { usersArea } from './areas/users.js';
import type { ConsoleAreaModule } from './routes.js';

/** The console areas that have pages (./areas/*.ts), in the overview's order, on the management services. */
export function consoleModules(management: ManagementServices): ConsoleAreaModule[] {
  return [
    clientsArea(management),
    resourceServersArea(management),
    usersArea(management),
    keysArea(management.keys),
    auditArea({ auditEvents: management.auditEvents }),
    gatewayRoutesArea(management),
    identityProvidersArea(management),
  ];
}
