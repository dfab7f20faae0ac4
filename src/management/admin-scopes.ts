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
