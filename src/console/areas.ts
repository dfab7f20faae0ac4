/**
 * SPEC §11: the console's areas and the role that opens each; `gatehouse:admin` opens all.
 */
export const ADMIN_ROLE = 'gatehouse:admin';

export const CONSOLE_AREAS = [
  { id: 'clients', title: 'Clients', role: 'gatehouse:clients' },
  { id: 'resource-servers', title: 'Resource servers', role: 'gatehouse:resource-servers' },
  { id: 'users', title: 'Users', role: 'gatehouse:users' },
  { id: 'keys', title: 'Signing keys', role: 'gatehouse:keys' },
  { id: 'audit', title: 'Audit events', role: 'gatehouse:audit' },
  { id: 'gateway', title: 'Gateway routes', role: 'gatehouse:gateway' },
  { id: 'identity-providers', title: 'Identity providers', role: 'gatehouse:identity-providers' },
] as const;

export type ConsoleArea = (typeof CONSOLE_AREAS)[number];

/** The areas a person with these roles may open, in the console's order. */
export function areasFor(roles: readonly string[]): ConsoleArea[] {
  if (roles.includes(ADMIN_ROLE)) return [...CONSOLE_AREAS];
  return CONSOLE_AREAS.filter((area) => roles.includes(area.role));
}
