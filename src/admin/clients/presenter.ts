import type { ClientRow } from '../../db/clients.js';

/** A client as the admin API shows it: RFC 7591 metadata, never the secret or its hash. */
export function presentClient(row: ClientRow) {
  const m = row.metadata;
  return {
    client_id: row.client_id,
    client_id_issued_at: Math.floor(row.created_at.getTime() / 1000),
    client_name: row.client_name,
    grant_types: m['grant_types'] as string[],
    response_types: m['response_types'] as string[],
    redirect_uris: m['redirect_uris'] as string[],
    token_endpoint_auth_method: m['token_endpoint_auth_method'] as string,
    ...(typeof m['scope'] === 'string' ? { scope: m['scope'] } : {}),
    ...(m['jwks'] === undefined ? {} : { jwks: m['jwks'] as { keys: unknown[] } }),
    ...(typeof m['jwks_uri'] === 'string' ? { jwks_uri: m['jwks_uri'] } : {}),
    post_logout_redirect_uris: (m['post_logout_redirect_uris'] as string[] | undefined) ?? [],
    allowed_resources: row.allowed_resources,
    require_mfa: row.require_mfa,
    first_party: row.first_party,
    created_at: row.created_at.toISOString(),
    updated_at: row.updated_at.toISOString(),
  };
}

export type ClientResponse = ReturnType<typeof presentClient>;

/** The one response that carries a secret: create, rotation, or a switch to a secret method. */
export function withSecret(client: ClientResponse, secret: string | undefined) {
  // RFC 7591 §3.2.1: client_secret_expires_at is required with a secret; 0 means it does not expire.
  return secret === undefined ? client : { ...client, client_secret: secret, client_secret_expires_at: 0 };
}
