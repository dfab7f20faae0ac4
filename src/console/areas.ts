/**
 * SPEC §11: the console's areas and the role that opens each; `gatehouse:admin` opens all.
 */
export const ADMIN_ROLE = 'gatehouse:admin';

/** Each area is the admin API's scope of the same name, for a person (`scope`: what its changes may grant). */
export const CONSOLE_AREAS = [
  { id: 'clients', title: 'Clients', role: 'gatehouse:clients', scope: 'admin:clients' },
  { id: 'resource-servers', title: 'Resource servers', role: 'gatehouse:resource-servers', scope: 'admin:resource-servers' },
  { id: 'users', title: 'Users', role: 'gatehouse:users', scope: 'admin:users' },
  { id: 'keys', title: 'Signing keys', role: 'gatehouse:keys', scope: 'admin:keys' },
  { id: 'audit', title: 'Audit events', role: 'gatehouse:audit', scope: 'admin:audit' },
  { id: 'gateway', title: 'Gateway routes', role: 'gatehouse:gateway', scope: 'admin:gateway' },
  { id: 'identity-providers', title: 'Identity providers', role: 'gatehouse:identity-providers', scope: 'admin:identity-providers' },
] as const;

export type ConsoleArea = (typeof CONSOLE_AREAS)[number];

/** The areas a person with these roles may open, in the console's order. */
export function areasFor(roles: readonly string[]): ConsoleArea[] {
  if (roles.includes(ADMIN_ROLE)) return [...CONSOLE_AREAS];
  return CONSOLE_AREAS.filter((area) => roles.includes(area.role));
}
