import { z } from 'zod';
import type { ClientRow } from '../../db/clients.js';
import { AUTH_METHODS, GRANT_TYPES, TLS_SUBJECT_FIELDS } from './schema.js';

const timestamp = z.iso.datetime();

/** A client as the admin API shows it (the OpenAPI document's `Client`); `presentClient` is typed by it. */
export const clientResponse = z
  .object({
    client_id: z.string(),
    client_id_issued_at: z.number().int().describe('When the client_id was issued, in seconds since the epoch (RFC 7591 §3.2.1).'),
    client_name: z.string(),
    grant_types: z.array(z.enum(GRANT_TYPES)),
    response_types: z.array(z.enum(['code'])),
    redirect_uris: z.array(z.string()),
    token_endpoint_auth_method: z.enum(AUTH_METHODS),
    scope: z.string().optional().describe('The scopes the client may ask for, space-separated.'),
    jwks: z.object({ keys: z.array(z.record(z.string(), z.unknown())) }).optional().describe('Public keys for private_key_jwt.'),
    jwks_uri: z.url().optional(),
    post_logout_redirect_uris: z.array(z.string()),
    allowed_resources: z.array(z.string()).describe('Identifiers of the resource servers the client may get tokens for.'),
    require_mfa: z.boolean().describe('People signing in through this client must pass a second factor.'),
    first_party: z.boolean().describe('The organisation’s own app: consent is not asked.'),
    tls_client_auth_subject_dn: z.string().optional(),
    tls_client_auth_san_dns: z.string().optional(),
    tls_client_auth_san_uri: z.string().optional(),
    tls_client_auth_san_ip: z.string().optional(),
    tls_client_auth_san_email: z.string().optional(),
    tls_client_certificate_bound_access_tokens: z.boolean().describe('RFC 8705 §3: tokens are bound to the client certificate (cnf.x5t#S256).'),
    token_exchange: z
      .object({ subject_audiences: z.array(z.string()) })
      .optional()
      .describe('SPEC §9: the resource servers whose tokens this client may exchange (RFC 8693).'),
    dpop_bound_access_tokens: z.boolean().describe('RFC 9449 §5.2: token requests must carry a DPoP proof; tokens are bound to its key (cnf.jkt).'),
    require_pushed_authorization_requests: z.boolean().describe('RFC 9126 §6: authorization requests must come through the PAR endpoint.'),
    created_at: timestamp,
    updated_at: timestamp,
  })
  .describe('A client: RFC 7591 metadata plus Gatehouse’s own fields, never its secret.');

export type ClientResponse = z.infer<typeof clientResponse>;

/** Create, and an update that switches to a secret-based method: the secret is shown this once. */
export const clientWithSecretResponse = clientResponse
  .extend({
    client_secret: z.string().optional().describe('Present for client_secret_basic and client_secret_post; shown only in this response.'),
    client_secret_expires_at: z.literal(0).optional().describe('Present with client_secret; 0: it does not expire (RFC 7591 §3.2.1).'),
  })
  .describe('A client, with its secret when one was issued by this request.');

export type ClientWithSecretResponse = z.infer<typeof clientWithSecretResponse>;

/** `POST /clients/{client_id}/secret`. */
export const clientSecretResponse = z
  .object({
    client_id: z.string(),
    client_secret: z.string().describe('The new secret, shown only in this response; the old one no longer works.'),
    client_secret_expires_at: z.literal(0).describe('0: the secret does not expire (RFC 7591 §3.2.1).'),
  })
  .describe('A newly issued client secret.');

export type ClientSecretResponse = z.infer<typeof clientSecretResponse>;

/** A client as the admin API shows it: RFC 7591 metadata, never the secret or its hash. */
export function presentClient(row: ClientRow): ClientResponse {
  const m = row.metadata;
  return {
    client_id: row.client_id,
    client_id_issued_at: Math.floor(row.created_at.getTime() / 1000),
    client_name: row.client_name,
    grant_types: m['grant_types'] as ClientResponse['grant_types'],
    response_types: m['response_types'] as ClientResponse['response_types'],
    redirect_uris: m['redirect_uris'] as string[],
    token_endpoint_auth_method: m['token_endpoint_auth_method'] as ClientResponse['token_endpoint_auth_method'],
    ...(typeof m['scope'] === 'string' ? { scope: m['scope'] } : {}),
    ...(m['jwks'] === undefined ? {} : { jwks: m['jwks'] as NonNullable<ClientResponse['jwks']> }),
    ...(typeof m['jwks_uri'] === 'string' ? { jwks_uri: m['jwks_uri'] } : {}),
    post_logout_redirect_uris: (m['post_logout_redirect_uris'] as string[] | undefined) ?? [],
    allowed_resources: row.allowed_resources,
    require_mfa: row.require_mfa,
    first_party: row.first_party,
    ...Object.fromEntries(TLS_SUBJECT_FIELDS.flatMap((field) => (typeof m[field] === 'string' ? [[field, m[field]]] : []))),
    tls_client_certificate_bound_access_tokens: m['tls_client_certificate_bound_access_tokens'] === true,
    dpop_bound_access_tokens: m['dpop_bound_access_tokens'] === true,
    require_pushed_authorization_requests: m['require_pushed_authorization_requests'] === true,
    ...(m['token_exchange'] === undefined ? {} : { token_exchange: m['token_exchange'] as { subject_audiences: string[] } }),
    created_at: row.created_at.toISOString(),
    updated_at: row.updated_at.toISOString(),
  };
}

/** The one response that carries a secret: create, rotation, or a switch to a secret method. */
export function withSecret(client: ClientResponse, secret: string | undefined): ClientWithSecretResponse {
  // RFC 7591 §3.2.1: client_secret_expires_at is required with a secret; 0 means it does not expire.
  return secret === undefined ? client : { ...client, client_secret: secret, client_secret_expires_at: 0 };
}
