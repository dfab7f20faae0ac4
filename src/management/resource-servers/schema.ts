import { z } from 'zod';
import { DEFAULT_SIGNING_ALG, SIGNING_ALGS } from '../../crypto/signing-keys.js';
import { OIDC_SCOPES } from '../../oidc/clients.js';
import { importRecipient } from '../../tokens/jwe.js';
import { absoluteUri, jwkObject, scopeToken, unique } from '../schema-common.js';

/** SPEC §7: `reference` resource servers get opaque tokens from /token; only introspection and the gateway accept them. */
export const TOKEN_FORMATS = ['jwt', 'reference'] as const;

const scopes = z
  .array(scopeToken)
  .max(200, 'at most 200 scopes')
  .refine(unique, 'scopes must be unique')
  .refine((values) => !values.some((s) => (OIDC_SCOPES as readonly string[]).includes(s)), `OpenID scopes (${OIDC_SCOPES.join(', ')}) belong to Gatehouse, not to a resource server`);

const innerEncryptionJwk = jwkObject.nullable().superRefine((jwk, ctx) => {
  if (jwk === null) return;
  try {
    importRecipient(jwk);
  } catch (error) {
    ctx.addIssue({ code: 'custom', message: (error as Error).message });
  }
});

const fields = {
  name: z.string().trim().min(1, 'must not be empty').max(200, 'must be at most 200 characters'),
  scopes,
  access_token_ttl: z.number({ error: 'must be a number of seconds' }).int('must be whole seconds').min(60, 'must be at least 60').max(86_400, 'must be at most 86400'),
  signing_alg: z.enum(SIGNING_ALGS, { error: `must be one of ${SIGNING_ALGS.join(', ')}` }),
  inner_encryption_jwk: innerEncryptionJwk,
  encrypt_whole_token: z.boolean({ error: 'must be true or false' }),
  token_format: z.enum(TOKEN_FORMATS, { error: `must be one of ${TOKEN_FORMATS.join(', ')}` }),
  require_sender_constraint: z.boolean({ error: 'must be true or false' }),
};

function wholeTokenNeedsKey(value: { encrypt_whole_token?: boolean | undefined; inner_encryption_jwk?: unknown }, ctx: z.RefinementCtx) {
  if (value.encrypt_whole_token === true && (value.inner_encryption_jwk === null || value.inner_encryption_jwk === undefined)) {
    ctx.addIssue({ code: 'custom', path: ['encrypt_whole_token'], message: 'needs an inner_encryption_jwk to encrypt to' });
  }
}

export const createResourceServerBody = z
  .strictObject({
    identifier: absoluteUri,
    name: fields.name,
    scopes: fields.scopes.default([]),
    access_token_ttl: fields.access_token_ttl.default(900),
    signing_alg: fields.signing_alg.default(DEFAULT_SIGNING_ALG),
    inner_encryption_jwk: fields.inner_encryption_jwk.default(null),
    encrypt_whole_token: fields.encrypt_whole_token.default(false),
    token_format: fields.token_format.default('jwt'),
    require_sender_constraint: fields.require_sender_constraint.default(false),
  })
  .superRefine(wholeTokenNeedsKey);

/** Partial update; `identifier` is immutable because clients name resource servers by it. */
export const patchResourceServerBody = z.strictObject({
  name: fields.name.optional(),
  scopes: fields.scopes.optional(),
  access_token_ttl: fields.access_token_ttl.optional(),
  signing_alg: fields.signing_alg.optional(),
  inner_encryption_jwk: fields.inner_encryption_jwk.optional(),
  encrypt_whole_token: fields.encrypt_whole_token.optional(),
  token_format: fields.token_format.optional(),
  require_sender_constraint: fields.require_sender_constraint.optional(),
});

export type CreateResourceServerBody = z.infer<typeof createResourceServerBody>;
export type PatchResourceServerBody = z.infer<typeof patchResourceServerBody>;
