import { z } from 'zod';
import { isLoopback, scopeToken, unique } from '../schema-common.js';
import { roleName } from '../users/schema.js';

export const SYNC_MODES = ['on_create', 'every_login'] as const;
export const DEFAULT_SCOPES = ['openid', 'email', 'profile'] as const;

/**
 * OpenID Connect Discovery 1.0 §3: the issuer is "a case sensitive URL using the https scheme that
 * contains scheme, host, and optionally, port number and path components and no query or fragment
 * components". Kept as given: the upstream's ID tokens must carry exactly this `iss`. Whether its
 * host may be private is the service's call (it is fetched; ALLOW_PRIVATE_JWKS_URI).
 */
const issuer = z
  .string({ error: 'must be a URL' })
  .max(2048, 'must be at most 2048 characters')
  .superRefine((value, ctx) => {
    if (!URL.canParse(value)) return ctx.addIssue({ code: 'custom', message: 'must be an absolute URL' });
    const url = new URL(value);
    if (url.search !== '' || value.includes('?') || value.includes('#')) ctx.addIssue({ code: 'custom', message: 'must have no query or fragment (OpenID Connect Discovery §3)' });
    if (url.username !== '' || url.password !== '') ctx.addIssue({ code: 'custom', message: 'must not contain credentials' });
    if (url.protocol === 'https:') return;
    if (url.protocol === 'http:' && isLoopback(url.hostname)) return;
    ctx.addIssue({ code: 'custom', message: 'must use https (http is allowed only for loopback addresses)' });
  })
  .meta({
    format: 'uri',
    description: 'The upstream’s issuer identifier (its discovery document is `<issuer>/.well-known/openid-configuration`): https, no query or fragment; compared exactly with the ID token’s `iss`.',
  });

/** RFC 6749 Appendix A.1: client_id and client_secret are VSCHAR (printable ASCII and space). */
const VSCHAR = /^[\x20-\x7E]+$/;

const clientSecret = z
  .string({ error: 'must be a string' })
  .min(1, 'must not be empty')
  .max(1024, 'must be at most 1024 characters')
  .regex(VSCHAR, 'must be printable ASCII (RFC 6749 Appendix A.2)')
  .nullable()
  .meta({ writeOnly: true, description: 'Write-only: sealed at rest and never shown (responses say `client_secret_set`). `null`: a public client (PKCE only).' });

/** A DNS label (RFC 1123): 1 to 63 letters, digits and inner hyphens. */
function isLabel(label: string): boolean {
  return /^[a-z0-9-]{1,63}$/.test(label) && !label.startsWith('-') && !label.endsWith('-');
}

const emailDomain = z
  .string({ error: 'must be a domain name' })
  .trim()
  .toLowerCase()
  .max(253, 'must be at most 253 characters')
  .refine((value) => value.includes('.') && value.split('.').every(isLabel), 'must be a domain name such as example.com (letters, digits and hyphens)');

const claimName = z.string({ error: 'must be a claim name' }).min(1, 'must not be empty').max(256, 'must be at most 256 characters');

const claimMappings = z
  .strictObject({
    username: claimName.optional().meta({ description: 'Default `preferred_username`.' }),
    email: claimName.optional().meta({ description: 'Default `email`.' }),
    name: claimName.optional().meta({ description: 'Default `name`.' }),
  })
  .meta({ description: 'Which upstream claims fill the person’s username, email and name.' });

const roleMapping = z.strictObject({
  claim: claimName,
  value: z.string({ error: 'must be a string' }).min(1, 'must not be empty').max(256, 'must be at most 256 characters'),
  role: roleName,
});

const fields = {
  name: z.string({ error: 'must be a string' }).trim().min(1, 'must not be empty').max(200, 'must be at most 200 characters').meta({ description: 'Shown on the login page.' }),
  issuer,
  client_id: z
    .string({ error: 'must be a string' })
    .min(1, 'must not be empty')
    .max(255, 'must be at most 255 characters')
    .regex(VSCHAR, 'must be printable ASCII (RFC 6749 Appendix A.1)')
    .meta({ description: 'Gatehouse’s client id at the upstream.' }),
  client_secret: clientSecret,
  scopes: z
    .array(scopeToken)
    .min(1, 'must include openid')
    .max(50, 'at most 50 scopes')
    .refine(unique, 'scopes must be unique')
    .refine((scopes) => scopes.includes('openid'), 'must include openid (OpenID Connect Core §3.1.2.1)')
    .meta({ description: 'Asked for at the upstream; must include `openid`.' }),
  email_domains: z
    .array(emailDomain)
    .max(100, 'at most 100 domains')
    .refine(unique, 'domains must be unique')
    .meta({ description: 'Lowercase domains: a `login_hint` in one of them goes straight to this provider. An enabled provider’s domains are its own.' }),
  create_users: z.boolean({ error: 'must be true or false' }).meta({ description: 'Create a person on a first sign-in that matches nobody.' }),
  link_by_verified_email: z.boolean({ error: 'must be true or false' }).meta({ description: 'Link a first sign-in to the person with the same verified email.' }),
  claim_mappings: claimMappings,
  role_mappings: z.array(roleMapping).max(100, 'at most 100 role mappings').meta({
    description: 'A person whose upstream claim `claim` is (or, for an array, contains) `value` gets `role`.',
  }),
  sync: z.enum(SYNC_MODES, { error: `must be one of ${SYNC_MODES.join(', ')}` }).meta({ description: 'When role_mappings are applied: on creation only (on_create), or on every sign-in (every_login), removing mapped roles the upstream no longer grants. The username, email and name are copied on creation.' }),
  trust_upstream_mfa: z.boolean({ error: 'must be true or false' }).meta({ description: 'An upstream `amr` proving a second factor satisfies Gatehouse’s (SPEC §10).' }),
  enabled: z.boolean({ error: 'must be true or false' }),
};

export const createIdentityProviderBody = z.strictObject({
  name: fields.name,
  issuer: fields.issuer,
  client_id: fields.client_id,
  client_secret: fields.client_secret.default(null),
  scopes: fields.scopes.default([...DEFAULT_SCOPES]),
  email_domains: fields.email_domains.default([]),
  create_users: fields.create_users.default(false),
  link_by_verified_email: fields.link_by_verified_email.default(false),
  claim_mappings: fields.claim_mappings.default({}),
  role_mappings: fields.role_mappings.default([]),
  sync: fields.sync.default('on_create'),
  trust_upstream_mfa: fields.trust_upstream_mfa.default(false),
  enabled: fields.enabled.default(true),
});

/** Partial update: given fields replace the stored ones; `client_secret` re-seals, `null` removes it. */
export const patchIdentityProviderBody = z.strictObject({
  name: fields.name.optional(),
  issuer: fields.issuer.optional(),
  client_id: fields.client_id.optional(),
  client_secret: fields.client_secret.optional(),
  scopes: fields.scopes.optional(),
  email_domains: fields.email_domains.optional(),
  create_users: fields.create_users.optional(),
  link_by_verified_email: fields.link_by_verified_email.optional(),
  claim_mappings: fields.claim_mappings.optional(),
  role_mappings: fields.role_mappings.optional(),
  sync: fields.sync.optional(),
  trust_upstream_mfa: fields.trust_upstream_mfa.optional(),
  enabled: fields.enabled.optional(),
});

export type CreateIdentityProviderBody = z.infer<typeof createIdentityProviderBody>;
export type PatchIdentityProviderBody = z.infer<typeof patchIdentityProviderBody>;
