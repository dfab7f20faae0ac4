import type { ResourceServerRow } from '../../db/resource-servers.js';

export function presentResourceServer(row: ResourceServerRow) {
  return {
    id: row.id,
    identifier: row.identifier,
    name: row.name,
    scopes: row.scopes,
    access_token_ttl: row.access_token_ttl,
    signing_alg: row.signing_alg,
    inner_encryption_jwk: row.inner_encryption_jwk,
    encrypt_whole_token: row.encrypt_whole_token,
    built_in: row.built_in,
    created_at: row.created_at.toISOString(),
    updated_at: row.updated_at.toISOString(),
  };
}

export type ResourceServerResponse = ReturnType<typeof presentResourceServer>;
