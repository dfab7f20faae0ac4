/** Admin API scopes (SPEC §5); each reads and writes its area. */
export const ADMIN_SCOPES = [
  'admin:clients',
  'admin:resource-servers',
  'admin:users',
  'admin:keys',
  'admin:audit',
  'admin:gateway',
  'admin:identity-providers',
] as const;
export type AdminScope = (typeof ADMIN_SCOPES)[number];

/** The built-in resource server that guards the admin API. */
export function adminResourceIdentifier(issuer: string): string {
  return `${issuer}/admin`;
}

/**
 * SPEC §11: the roles that open the console and the admin scopes each stands for there;
 * `gatehouse:admin` opens every area. A person holding these is as strong as a token with the
 * scopes, so granting or managing such a person needs them too (./users, ./identity-providers).
 */
export const CONSOLE_ROLE_SCOPES: Readonly<Record<string, readonly AdminScope[]>> = {
  'gatehouse:admin': ADMIN_SCOPES,
  'gatehouse:clients': ['admin:clients'],
  'gatehouse:resource-servers': ['admin:resource-servers'],
  'gatehouse:users': ['admin:users'],
  'gatehouse:keys': ['admin:keys'],
  'gatehouse:audit': ['admin:audit'],
  'gatehouse:gateway': ['admin:gateway'],
  'gatehouse:identity-providers': ['admin:identity-providers'],
};

/** The admin scopes these roles open in the console (none for other roles). */
export function adminScopesOpenedBy(roles: Iterable<string>): AdminScope[] {
  const scopes = new Set<AdminScope>();
  for (const role of roles) for (const scope of Object.hasOwn(CONSOLE_ROLE_SCOPES, role) ? CONSOLE_ROLE_SCOPES[role]! : []) scopes.add(scope);
  return [...scopes];
}
