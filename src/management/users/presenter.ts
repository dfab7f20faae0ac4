import { z } from 'zod';
import type { LinkedIdentityRow } from '../../db/identity-providers.js';
import type { PasskeyRow } from '../../db/passkeys.js';
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
    passkeys: z.int().min(0).describe('How many passkeys the person has (`GET /users/{id}/passkeys` lists them).'),
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
    passkeys: row.passkey_count,
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

/**
 * A person's passkey (SPEC §4) as the admin API shows it: what tells passkeys apart and what they
 * were used for. Not the COSE public key (nothing an operator can act on) nor the signature counter.
 */
export const passkeyResponse = z
  .object({
    id: z.string().describe('The credential id (base64url), as the browser reports it.'),
    name: z.string().describe('The name the person gave it.'),
    created_at: timestamp,
    last_used_at: timestamp.nullable().describe('The last sign-in with it; null when never used since registration.'),
    device_type: z
      .enum(['multi_device', 'single_device'])
      .describe('`multi_device`: the authenticator may sync it (a password manager’s passkey); `single_device`: bound to one authenticator.'),
    backed_up: z.boolean().describe('The authenticator reported it backed up at its last use (`amr` `swk` rather than `hwk`).'),
    transports: z.array(z.string()).describe('How the browser reached the authenticator (`internal`, `usb`, `hybrid`, …), as hints for the next sign-in.'),
  })
  .describe('A passkey (WebAuthn credential); never its public key.');

export type PasskeyResponse = z.infer<typeof passkeyResponse>;

export function presentPasskey(row: PasskeyRow): PasskeyResponse {
  return {
    id: row.credential_id,
    name: row.name,
    created_at: row.created_at.toISOString(),
    last_used_at: row.last_used_at === null ? null : row.last_used_at.toISOString(),
    device_type: row.backup_eligible ? 'multi_device' : 'single_device',
    backed_up: row.backed_up,
    transports: row.transports,
  };
}
