import { z } from 'zod';
import { pageQuery } from '../pagination.js';
import { PASSWORD_MAX_LENGTH, PASSWORD_MIN_LENGTH } from '../../accounts/passwords.js';
import { mixesScripts, normalizeUsername, USERNAME_PATTERN } from '../../accounts/usernames.js';
import { unique } from '../schema-common.js';

/** Lengths a person would count: code points, so an emoji or a CJK extension letter is one character. */
function codePoints(value: string): number {
  return [...value].length;
}

const USERNAME_MAX_LENGTH = 64;
const ROLE_PATTERN = /^[A-Za-z0-9._:-]{1,64}$/;

/** A role as a person holds it (the `roles` claim); identity providers' role mappings name them too. */
export const roleName = z.string({ error: 'must be a string' }).regex(ROLE_PATTERN, 'a role is 1 to 64 letters, digits or . _ : -');

/** What the person types is kept for display; uniqueness and sign-in compare normalizeUsername(). */
const username = z
  .string({ error: 'must be a string' })
  .trim()
  .refine((value) => codePoints(value) <= USERNAME_MAX_LENGTH, `must be at most ${USERNAME_MAX_LENGTH} characters`)
  .refine((value) => USERNAME_PATTERN.test(normalizeUsername(value)), 'must be 1 to 64 letters, digits or . _ - @ +')
  // SPEC §4: refused "when they mix scripts" ("pаypal" with a Cyrillic а). Checked on a name that passed
  // the pattern, so one message says what is wrong.
  .refine(
    (value) => !USERNAME_PATTERN.test(normalizeUsername(value)) || !mixesScripts(value),
    'must be written in one script (digits and . _ - @ + go with any; Latin may join Han with Hiragana and Katakana, Bopomofo or Hangul)',
  )
  .meta({
    description:
      '1 to 64 letters, digits or . _ - @ +, in one script (UTS #39 "highly restrictive"); unique ignoring case and width, and refused when it looks like an existing username (UTS #39 confusables).',
  });

// Not trimmed or normalised: every character the person chose is part of the secret.
const password = z.string({ error: 'must be a string' }).superRefine((value, ctx) => {
  const length = codePoints(value);
  if (length < PASSWORD_MIN_LENGTH) ctx.addIssue({ code: 'custom', message: `must be at least ${PASSWORD_MIN_LENGTH} characters` });
  else if (length > PASSWORD_MAX_LENGTH) ctx.addIssue({ code: 'custom', message: `must be at most ${PASSWORD_MAX_LENGTH} characters` });
}).meta({ minLength: PASSWORD_MIN_LENGTH, maxLength: PASSWORD_MAX_LENGTH, writeOnly: true, description: 'Stored as an argon2id hash; never shown.' });

const fields = {
  username,
  password,
  // RFC 5321 §4.5.3.1.3: a path is at most 256 octets including the angle brackets, so 254 for the address.
  email: z.email({ error: 'must be an email address' }).max(254, 'must be at most 254 characters').nullable(),
  email_verified: z.boolean({ error: 'must be true or false' }),
  name: z.string({ error: 'must be a string' }).trim().min(1, 'must not be empty').max(200, 'must be at most 200 characters').nullable(),
  roles: z
    .array(roleName)
    .max(50, 'at most 50 roles')
    .refine(unique, 'must not repeat a role'),
  mfa_required: z.boolean({ error: 'must be true or false' }),
  disabled: z.boolean({ error: 'must be true or false' }),
};

/** OIDC Core §5.1: email_verified speaks about the email claim; with no address there is nothing verified. */
function verifiedNeedsEmail(value: { email?: string | null | undefined; email_verified?: boolean | undefined }, ctx: z.RefinementCtx) {
  if (value.email_verified === true && value.email === null) {
    ctx.addIssue({ code: 'custom', path: ['email_verified'], message: 'cannot be true without an email' });
  }
}

export const createUserBody = z
  .strictObject({
    username: fields.username,
    password: fields.password,
    email: fields.email.default(null),
    email_verified: fields.email_verified.default(false),
    name: fields.name.default(null),
    roles: fields.roles.default([]),
    mfa_required: fields.mfa_required.default(false),
    disabled: fields.disabled.default(false),
  })
  .superRefine(verifiedNeedsEmail);

/** Partial update: given fields replace the stored ones; `null` clears email or name; `password` sets a new one. */
export const patchUserBody = z.strictObject({
  username: fields.username.optional(),
  password: fields.password.optional(),
  email: fields.email.optional(),
  email_verified: fields.email_verified.optional(),
  name: fields.name.optional(),
  roles: fields.roles.optional(),
  mfa_required: fields.mfa_required.optional(),
  disabled: fields.disabled.optional(),
});

export type CreateUserBody = z.infer<typeof createUserBody>;
export type PatchUserBody = z.infer<typeof patchUserBody>;

/** `GET /admin/v1/users` filters. */
export const userListQuery = z.object({
  ...pageQuery,
  username: z.string().max(256).describe('Only people whose username starts with this (compared ignoring case and width).').optional(),
  email: z.string().max(254).describe('Only people whose email starts with this (ignoring case).').optional(),
});
