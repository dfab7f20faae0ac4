import type { ManagementServices } from '../management/index.js';
import { auditArea } from './areas/audit.js';
import { clientsArea } from './areas/clients.js';
import { keysArea } from './areas/keys.js';
import { resourceServersArea } from './areas/resource-servers.js';
import type { ConsoleAreaModule } from './routes.js';

/** The console areas that have pages (./areas/*.ts), in the overview's order, on the management services. */
export function consoleModules(management: ManagementServices): ConsoleAreaModule[] {
  return [clientsArea(management), resourceServersArea(management), keysArea(management.keys), auditArea({ auditEvents: management.auditEvents })];
}
