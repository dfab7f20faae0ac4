import type { UserRow } from '../../db/users.js';

/** A person as the admin API shows them: never the password hash, nor the normalised username (an internal key). */
export function presentUser(row: UserRow) {
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
  };
}

export type UserResponse = ReturnType<typeof presentUser>;
