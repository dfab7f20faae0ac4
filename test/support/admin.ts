import assert from 'node:assert/strict';
import type { JsonWebKey } from 'node:crypto';
import type { TestServer } from './server.js';

/** Setting up resource servers and clients through the admin API (SPEC §5), as an operator would. */

type Server = Pick<TestServer, 'url' | 'issuer' | 'admin'>;

export interface CreatedResourceServer {
  readonly id: string;
  readonly identifier: string;
  readonly scopes: string[];
  readonly access_token_ttl: number;
  readonly signing_alg: string;
  readonly encrypt_whole_token: boolean;
}

export interface CreatedClient {
  readonly client_id: string;
  readonly client_name: string;
  /** Present for the secret-based authentication methods; shown once. */
  readonly client_secret?: string;
  readonly allowed_resources: string[];
}

export interface ResourceServerInput {
  readonly identifier: string;
  readonly name: string;
  readonly scopes: string[];
  readonly access_token_ttl?: number;
  readonly signing_alg?: 'ES256' | 'EdDSA' | 'PS256' | 'RS256';
  readonly inner_encryption_jwk?: JsonWebKey;
  readonly encrypt_whole_token?: boolean;
}

export interface ClientInput {
  readonly client_name: string;
  readonly allowed_resources: string[];
  readonly grant_types?: string[];
  readonly token_endpoint_auth_method?: 'client_secret_basic' | 'client_secret_post' | 'private_key_jwt';
  readonly jwks?: { keys: JsonWebKey[] };
  readonly scope?: string;
}

/** An admin API token from the bootstrap admin client, for `<issuer>/admin`, with these scopes. */
export async function adminToken(server: Server, scopes = 'admin:clients admin:resource-servers'): Promise<string> {
  const response = await fetch(`${server.url}/token`, {
    method: 'POST',
    headers: {
      authorization: `Basic ${Buffer.from(`${encodeURIComponent(server.admin.clientId)}:${encodeURIComponent(server.admin.clientSecret)}`).toString('base64')}`,
      'content-type': 'application/x-www-form-urlencoded',
    },
    body: new URLSearchParams({ grant_type: 'client_credentials', resource: `${server.issuer}/admin`, scope: scopes }),
  });
  const body = (await response.json()) as { access_token?: string };
  assert.equal(response.status, 200, `admin token: ${JSON.stringify(body)}`);
  assert.equal(typeof body.access_token, 'string');
  return body.access_token!;
}

async function adminRequest<T>(server: Server, method: string, path: string, expected: number, body?: unknown, token?: string): Promise<T> {
  const response = await fetch(`${server.url}/admin/v1${path}`, {
    method,
    headers: {
      authorization: `Bearer ${token ?? (await adminToken(server))}`,
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await response.text();
  assert.equal(response.status, expected, `${method} ${path}: ${response.status} ${text}`);
  return (text === '' ? undefined : JSON.parse(text)) as T;
}

export function createResourceServer(server: Server, body: ResourceServerInput, token?: string): Promise<CreatedResourceServer> {
  return adminRequest<CreatedResourceServer>(server, 'POST', '/resource-servers', 201, body, token);
}

/** A client-credentials client (by default `client_secret_basic`). */
export async function createClient(server: Server, body: ClientInput, token?: string): Promise<CreatedClient> {
  const client = await adminRequest<CreatedClient>(server, 'POST', '/clients', 201, { grant_types: ['client_credentials'], ...body }, token);
  if (body.token_endpoint_auth_method !== 'private_key_jwt') assert.equal(typeof client.client_secret, 'string', 'a secret-based client is shown its secret');
  return client;
}

export async function deleteClient(server: Server, clientId: string, token?: string): Promise<void> {
  await adminRequest<undefined>(server, 'DELETE', `/clients/${encodeURIComponent(clientId)}`, 204, undefined, token);
}
