import { z } from 'zod';
import type { LinkedIdentityRow } from '../../db/identity-providers.js';
import type { UserRow } from '../../db/users.js';

const timestamp = z.iso.datetime();

/** The person's identity at an upstream provider (SPEC §10): how federated sign-in finds them. */
export const userIdentityResponse = z
  .object({
    provider_id: z.uuid(),
    provider_name: z.string(),
    subject: z.string().describe('The upstream’s `sub` for this person.'),
    email: z.string().nullable().describe('The upstream’s email when it was last seen.'),
    linked_at: timestamp,
    last_login_at: timestamp.nullable(),
  })
  .describe('A link to an upstream identity provider.');

/** A person as the admin API shows them (the OpenAPI document's `User`); `presentUser` is typed by it. */
export const userResponse = z
  .object({
    id: z.uuid(),
    username: z.string().describe('As typed; sign-in and uniqueness compare it ignoring case and width.'),
    email: z.string().nullable(),
    email_verified: z.boolean(),
    name: z.string().nullable(),
    roles: z.array(z.string()),
    disabled: z.boolean(),
    mfa_required: z.boolean().describe('The person must pass a second factor at every sign-in.'),
    mfa_enrolled: z.boolean().describe('A confirmed second factor exists.'),
    created_at: timestamp,
    updated_at: timestamp,
    password_changed_at: timestamp,
    identities: z.array(userIdentityResponse).describe('Upstream identity providers the person signs in with (SPEC §10); oldest link first.'),
  })
  .describe('A person who signs in through the hosted pages; never their password or second-factor secrets.');

export type UserResponse = z.infer<typeof userResponse>;

/** A person as the admin API shows them: never the password hash, nor the normalised username (an internal key). */
export function presentUser(row: UserRow, identities: readonly LinkedIdentityRow[]): UserResponse {
  return {
    id: row.id,
    username: row.username,
    email: row.email,
    email_verified: row.email_verified,
    name: row.name,
    roles: row.roles,
    disabled: row.disabled,
    mfa_required: row.mfa_required,
    mfa_enrolled: row.mfa_enrolled,
    created_at: row.created_at.toISOString(),
    updated_at: row.updated_at.toISOString(),
    password_changed_at: row.password_changed_at.toISOString(),
    identities: identities.map((identity) => ({
      provider_id: identity.provider_id,
      provider_name: identity.provider_name,
      subject: identity.subject,
      email: identity.email,
      linked_at: identity.linked_at.toISOString(),
      last_login_at: identity.last_login_at === null ? null : identity.last_login_at.toISOString(),
    })),
  };
}
