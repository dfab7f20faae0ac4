import { z } from 'zod';
import { SIGNING_ALGS, type SigningAlg } from '../../crypto/signing-keys.js';
import type { ResourceServerRow } from '../../db/resource-servers.js';

const timestamp = z.iso.datetime();

/** A resource server as the admin API shows it (the OpenAPI document's `ResourceServer`); `presentResourceServer` is typed by it. */
export const resourceServerResponse = z
  .object({
    id: z.uuid(),
    identifier: z.string().describe('The absolute URI clients name as `resource` (RFC 8707); it cannot change.'),
    name: z.string(),
    scopes: z.array(z.string()),
    access_token_ttl: z.number().int().describe('Access token lifetime in seconds.'),
    signing_alg: z.enum(SIGNING_ALGS),
    inner_encryption_jwk: z.record(z.string(), z.unknown()).nullable().describe('The public JWK the inner layer is encrypted to, or null.'),
    encrypt_whole_token: z.boolean(),
    token_format: z.enum(['jwt', 'reference']).describe('What /token issues: a JWT, or an opaque reference token that only introspection and the gateway accept.'),
    require_sender_constraint: z.boolean().describe('SPEC §8: only DPoP- or certificate-bound tokens are issued for it; a plain token request is refused with invalid_request.'),
    built_in: z.boolean().describe('The admin API’s own resource server, which cannot be changed or deleted.'),
    created_at: timestamp,
    updated_at: timestamp,
  })
  .describe('A resource server (an API that accepts Gatehouse access tokens).');

export type ResourceServerResponse = z.infer<typeof resourceServerResponse>;

export function presentResourceServer(row: ResourceServerRow): ResourceServerResponse {
  return {
    id: row.id,
    identifier: row.identifier,
    name: row.name,
    scopes: row.scopes,
    access_token_ttl: row.access_token_ttl,
    signing_alg: row.signing_alg as SigningAlg,
    inner_encryption_jwk: row.inner_encryption_jwk,
    encrypt_whole_token: row.encrypt_whole_token,
    token_format: row.token_format,
    require_sender_constraint: row.require_sender_constraint,
    built_in: row.built_in,
    created_at: row.created_at.toISOString(),
    updated_at: row.updated_at.toISOString(),
  };
}
