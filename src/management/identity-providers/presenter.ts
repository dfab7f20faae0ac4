import { z } from 'zod';
import type { IdentityProviderRow } from '../../db/identity-providers.js';
import { SYNC_MODES } from './schema.js';

const timestamp = z.iso.datetime();

/** Where the upstream sends people back: what the operator registers there (SPEC §10). */
export function federationRedirectUri(issuer: string, id: string): string {
  return `${issuer}/federation/${id}/callback`;
}

/** An identity provider as the admin API shows it (the OpenAPI document's `IdentityProvider`): never its client secret. */
export const identityProviderResponse = z
  .object({
    id: z.uuid(),
    name: z.string(),
    issuer: z.string(),
    client_id: z.string(),
    client_secret_set: z.boolean().describe('A client secret is stored (sealed); it is never shown.'),
    scopes: z.array(z.string()),
    email_domains: z.array(z.string()),
    create_users: z.boolean(),
    link_by_verified_email: z.boolean(),
    claim_mappings: z.object({ username: z.string().optional(), email: z.string().optional(), name: z.string().optional() }),
    role_mappings: z.array(z.object({ claim: z.string(), value: z.string(), role: z.string() })),
    sync: z.enum(SYNC_MODES),
    trust_upstream_mfa: z.boolean(),
    enabled: z.boolean(),
    redirect_uri: z.string().describe('`<ISSUER>/federation/<id>/callback`: register it as a redirect URI at the upstream.'),
    created_at: timestamp,
    updated_at: timestamp,
  })
  .describe('An upstream OpenID provider people can sign in with (SPEC §10).');

export type IdentityProviderResponse = z.infer<typeof identityProviderResponse>;

export function presentIdentityProvider(row: IdentityProviderRow, issuer: string): IdentityProviderResponse {
  return {
    id: row.id,
    name: row.name,
    issuer: row.issuer,
    client_id: row.client_id,
    client_secret_set: row.client_secret_sealed !== null,
    scopes: row.scopes,
    email_domains: row.email_domains,
    create_users: row.create_users,
    link_by_verified_email: row.link_by_verified_email,
    claim_mappings: { ...row.claim_mappings },
    role_mappings: row.role_mappings.map((mapping) => ({ claim: mapping.claim, value: mapping.value, role: mapping.role })),
    sync: row.sync,
    trust_upstream_mfa: row.trust_upstream_mfa,
    enabled: row.enabled,
    redirect_uri: federationRedirectUri(issuer, row.id),
    created_at: row.created_at.toISOString(),
    updated_at: row.updated_at.toISOString(),
  };
}
