import assert from 'node:assert/strict';
import { randomUUID, type JsonWebKey } from 'node:crypto';
import { ADMIN_SCOPES } from '../../src/management/admin-scopes.js';
import { assertMatchesContract } from './openapi-contract.js';
import type { TestServer } from './server.js';

/**
 * Helpers for tests that drive the admin API (SPEC §5) over HTTP, as an operator's script would:
 * `adminApi` for tests about the API itself (request ids, Cache-Control, problems, audit),
 * `adminCall` and `createResourceServer`/`createClient`/`deleteClient` for tests that only need it for setup.
 */

/** What the admin helpers need of a test server. */
export type AdminServer = Pick<TestServer, 'url' | 'issuer' | 'admin'>;

export const PROBLEM_TYPE = 'application/problem+json';

/** The scopes `adminToken` asks for unless told otherwise (`admin:users` and `admin:audit` are asked for explicitly). */
export const DEFAULT_ADMIN_SCOPE = 'admin:clients admin:resource-servers admin:keys';

/** Every admin scope: what creating a person with any console role takes (SPEC §11). */
export const ALL_ADMIN_SCOPES = ADMIN_SCOPES.join(' ');

export interface FieldError {
  readonly pointer: string;
  readonly detail: string;
}

export interface Problem {
  readonly type: string;
  readonly title: string;
  readonly status: number;
  readonly detail: string;
  readonly errors?: FieldError[];
  readonly request_id?: string;
  readonly [extra: string]: unknown;
}

export interface Page<T> {
  readonly items: T[];
  readonly next_cursor: string | null;
}

export interface ClientBody {
  readonly client_id: string;
  readonly client_id_issued_at: number;
  readonly client_name: string;
  readonly grant_types: string[];
  readonly response_types: string[];
  readonly redirect_uris: string[];
  readonly token_endpoint_auth_method: string;
  readonly scope?: string;
  readonly jwks?: { keys: unknown[] };
  readonly post_logout_redirect_uris: string[];
  readonly allowed_resources: string[];
  readonly require_mfa: boolean;
  /** Present for the secret-based authentication methods; shown once. */
  readonly client_secret?: string;
  readonly client_secret_expires_at?: number;
  readonly created_at: string;
  readonly updated_at: string;
}

export interface ResourceServerBody {
  readonly id: string;
  readonly identifier: string;
  readonly name: string;
  readonly scopes: string[];
  readonly access_token_ttl: number;
  readonly signing_alg: string;
  readonly inner_encryption_jwk: Record<string, unknown> | null;
  readonly encrypt_whole_token: boolean;
  readonly built_in: boolean;
  readonly created_at: string;
  readonly updated_at: string;
}

export interface KeyBody {
  readonly kid: string;
  readonly alg: string;
  readonly status: 'next' | 'active' | 'retired' | 'expired' | 'revoked';
  readonly created_at: string;
  readonly retired_at: string | null;
  readonly publish_until: string | null;
}

export interface ResourceServerInput {
  readonly identifier: string;
  readonly name: string;
  readonly scopes: string[];
  readonly access_token_ttl?: number;
  readonly signing_alg?: 'ES256' | 'EdDSA' | 'PS256' | 'RS256';
  readonly inner_encryption_jwk?: JsonWebKey;
  readonly encrypt_whole_token?: boolean;
  readonly token_format?: 'jwt' | 'reference';
  readonly require_sender_constraint?: boolean;
}

export interface ClientInput {
  readonly client_name: string;
  readonly allowed_resources: string[];
  readonly grant_types?: string[];
  readonly token_endpoint_auth_method?: 'client_secret_basic' | 'client_secret_post' | 'private_key_jwt';
  readonly jwks?: { keys: JsonWebKey[] };
  readonly scope?: string;
  readonly dpop_bound_access_tokens?: boolean;
}

export interface ApiResponse<T> {
  readonly status: number;
  readonly headers: Headers;
  readonly text: string;
  readonly body: T;
  /** The X-Request-Id this request was sent with. */
  readonly requestId: string;
}

export interface RequestOptions {
  /** Sent as JSON with `Content-Type: application/json`. */
  readonly json?: unknown;
  /** Sent as is (with the headers given). */
  readonly raw?: string;
  readonly headers?: Record<string, string>;
  /** Overrides the API's bearer token; `null` sends no Authorization header. */
  readonly token?: string | null;
}

export interface AdminApi {
  request<T = unknown>(method: string, path: string, options?: RequestOptions): Promise<ApiResponse<T>>;
}

export interface TokenResponse {
  readonly status: number;
  readonly body: Record<string, unknown>;
}

/** A client-credentials token request with HTTP Basic authentication (RFC 6749 §4.4, §2.3.1). */
export async function clientCredentials(server: Pick<TestServer, 'url'>, clientId: string, secret: string, params: Record<string, string> = {}): Promise<TokenResponse> {
  // RFC 6749 §2.3.1: the credentials are form-urlencoded before Basic encoding.
  const basic = Buffer.from(`${encodeURIComponent(clientId)}:${encodeURIComponent(secret)}`).toString('base64');
  const response = await fetch(`${server.url}/token`, {
    method: 'POST',
    headers: { Authorization: `Basic ${basic}`, 'Content-Type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'client_credentials', ...params }).toString(),
  });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

/** RFC 7662 introspection of `token` by `caller` (HTTP Basic); the status and the JSON answer. */
export async function introspectToken(server: Pick<TestServer, 'url'>, caller: { client_id: string; client_secret: string }, token: string): Promise<TokenResponse> {
  const response = await fetch(`${server.url}/token/introspection`, {
    method: 'POST',
    headers: {
      authorization: `Basic ${Buffer.from(`${caller.client_id}:${caller.client_secret}`).toString('base64')}`,
      'content-type': 'application/x-www-form-urlencoded',
    },
    body: new URLSearchParams({ token }),
  });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

/** An access token for the admin API (`<issuer>/admin`) from the bootstrap admin client, with these scopes. */
export async function adminToken(server: AdminServer, scope = DEFAULT_ADMIN_SCOPE): Promise<string> {
  const { status, body } = await clientCredentials(server, server.admin.clientId, server.admin.clientSecret, {
    resource: `${server.issuer}/admin`,
    scope,
  });
  assert.equal(status, 200, JSON.stringify(body));
  assert.equal(typeof body['access_token'], 'string');
  return body['access_token'] as string;
}

/** The one place an admin API request is sent: `headers` as given, a JSON body if `json` is set; the body parsed if JSON. */
async function send(
  server: Pick<TestServer, 'url'>,
  method: string,
  path: string,
  headers: Record<string, string>,
  { json, raw }: Pick<RequestOptions, 'json' | 'raw'> = {},
): Promise<Omit<ApiResponse<unknown>, 'requestId'>> {
  let body: string | undefined = raw;
  if (json !== undefined) {
    body = JSON.stringify(json);
    headers['Content-Type'] ??= 'application/json';
  }
  const response = await fetch(`${server.url}/admin/v1${path}`, { method, headers, ...(body === undefined ? {} : { body }) });
  const text = await response.text();
  const type = response.headers.get('content-type') ?? '';
  const parsed: unknown = text !== '' && /json/.test(type) ? JSON.parse(text) : undefined;
  // Every response must be one the OpenAPI document promises: a documented status, a body valid against its schema.
  assertMatchesContract(method, path, response.status, text === '' ? undefined : (parsed ?? text), text === '' ? undefined : type);
  return { status: response.status, headers: response.headers, text, body: parsed };
}

/** An admin API client bound to one bearer token; every request carries its own X-Request-Id. */
export function adminApi(server: Pick<TestServer, 'url'>, token: string): AdminApi {
  return {
    async request<T>(method: string, path: string, options: RequestOptions = {}): Promise<ApiResponse<T>> {
      const requestId = `test-${randomUUID()}`;
      const headers: Record<string, string> = { 'X-Request-Id': requestId, Accept: 'application/json', ...options.headers };
      const bearer = options.token === undefined ? token : options.token;
      if (bearer !== null) headers['Authorization'] = `Bearer ${bearer}`;
      const response = await send(server, method, path, headers, options);
      // SPEC §5 responses carry credentials or configuration: never cached, errors included.
      assert.equal(response.headers.get('cache-control'), 'no-store', `${method} ${path} → ${response.status} without Cache-Control: no-store`);
      assert.equal(response.headers.get('x-request-id'), requestId);
      return { ...response, body: response.body as T, requestId };
    },
  };
}

/**
 * Every item of a paged list (SPEC §5 cursors), `limit` at a time, checking each page with
 * `check` (its raw text too, e.g. for secrets that must not appear).
 */
export async function allPages<T>(api: AdminApi, path: string, limit: number, check: (page: ApiResponse<Page<T>>) => void = () => undefined): Promise<T[]> {
  const items: T[] = [];
  let cursor: string | null = null;
  do {
    const separator = path.includes('?') ? '&' : '?';
    const page: ApiResponse<Page<T>> = await api.request<Page<T>>('GET', `${path}${separator}limit=${limit}${cursor === null ? '' : `&cursor=${encodeURIComponent(cursor)}`}`);
    assert.equal(page.status, 200, page.text);
    assert.ok(page.body.items.length <= limit);
    check(page);
    items.push(...page.body.items);
    cursor = page.body.next_cursor;
  } while (cursor !== null);
  return items;
}

/** A bare admin API call with `token` (by default a fresh `adminToken(server)`), asserting nothing. */
async function call(server: AdminServer, method: string, path: string, json?: unknown, token?: string): Promise<Omit<ApiResponse<unknown>, 'requestId'>> {
  return send(server, method, path, { Authorization: `Bearer ${token ?? (await adminToken(server))}` }, { json });
}

/** Calls the admin API and returns status and parsed JSON body; asserts nothing. */
export async function adminCall<T = Record<string, unknown>>(
  server: AdminServer,
  method: string,
  path: string,
  body?: unknown,
  token?: string,
): Promise<{ status: number; body: T }> {
  const response = await call(server, method, path, body, token);
  return { status: response.status, body: response.body as T };
}

/** An admin API call that must answer `expected`; returns the parsed body. */
async function expectCall<T>(server: AdminServer, method: string, path: string, expected: number, body?: unknown, token?: string): Promise<T> {
  const response = await call(server, method, path, body, token);
  assert.equal(response.status, expected, `${method} ${path}: ${response.status} ${response.text}`);
  return response.body as T;
}

export function createResourceServer(server: AdminServer, body: ResourceServerInput, token?: string): Promise<ResourceServerBody> {
  return expectCall<ResourceServerBody>(server, 'POST', '/resource-servers', 201, body, token);
}

/** A client-credentials client (by default `client_secret_basic`). */
export async function createClient(server: AdminServer, body: ClientInput, token?: string): Promise<ClientBody> {
  const client = await expectCall<ClientBody>(server, 'POST', '/clients', 201, { grant_types: ['client_credentials'], ...body }, token);
  if (body.token_endpoint_auth_method !== 'private_key_jwt') assert.equal(typeof client.client_secret, 'string', 'a secret-based client is shown its secret');
  return client;
}

export async function deleteClient(server: AdminServer, clientId: string, token?: string): Promise<void> {
  await expectCall<undefined>(server, 'DELETE', `/clients/${encodeURIComponent(clientId)}`, 204, undefined, token);
}

/** Asserts an RFC 9457 problem with the status and problem code given; returns its body. */
export function assertProblem(response: ApiResponse<unknown>, status: number, code: string): Problem {
  assert.equal(response.status, status, `expected ${status}, got ${response.status}: ${response.text}`);
  assert.match(response.headers.get('content-type') ?? '', /^application\/problem\+json(;|$)/);
  const problem = response.body as Problem;
  assert.equal(problem.type, `urn:gatehouse:problem:${code}`);
  assert.equal(problem.status, status);
  assert.equal(typeof problem.title, 'string');
  assert.ok(problem.title.length > 0);
  assert.equal(typeof problem.detail, 'string');
  assert.equal(problem.request_id, response.requestId);
  return problem;
}

/** Asserts a 400 validation problem whose field errors include every pointer given. */
export function assertInvalid(response: ApiResponse<unknown>, ...pointers: string[]): FieldError[] {
  const problem = assertProblem(response, 400, 'validation-failed');
  assert.ok(Array.isArray(problem.errors), 'a validation problem lists its field errors');
  const errors = problem.errors;
  for (const error of errors) {
    assert.equal(typeof error.detail, 'string');
    assert.match(error.pointer, /^#(\/.*)?$/);
  }
  for (const pointer of pointers) {
    assert.ok(
      errors.some((error) => error.pointer === pointer),
      `expected a field error at ${pointer}, got ${JSON.stringify(errors)}`,
    );
  }
  return errors;
}

/** The decoded protected header and payload of a compact JWS (no verification). */
export function decodeJwt(token: string): { header: Record<string, unknown>; payload: Record<string, unknown> } {
  const [header, payload] = token.split('.').slice(0, 2).map((part) => JSON.parse(Buffer.from(part, 'base64url').toString('utf8')) as Record<string, unknown>);
  assert.ok(header !== undefined && payload !== undefined, 'not a compact JWS');
  return { header, payload };
}

export interface AuditRow extends Record<string, unknown> {
  id: string;
  type: string;
  actor: string | null;
  target: string | null;
  request_id: string | null;
  outcome: string;
  details: Record<string, unknown>;
}

/** Audit events a request wrote, read straight from the table. */
export async function auditRowsFor(server: TestServer, requestId: string): Promise<AuditRow[]> {
  const { rows } = await server.db.query<AuditRow>(
    'SELECT id::text AS id, occurred_at, type, actor, target, client_ip, request_id, outcome, details FROM audit_events WHERE request_id = $1 ORDER BY id',
    [requestId],
  );
  return rows;
}

/** Asserts the request wrote exactly one audit event of this type, by the admin client, about `target`. */
export async function assertAudited(server: TestServer, requestId: string, type: string, target: string): Promise<AuditRow> {
  const rows = await auditRowsFor(server, requestId);
  assert.equal(rows.length, 1, `expected one audit event for ${type}, got ${JSON.stringify(rows)}`);
  const [row] = rows as [AuditRow];
  assert.equal(row.type, type);
  assert.equal(row.actor, server.admin.clientId);
  assert.equal(row.target, target);
  assert.equal(row.request_id, requestId);
  assert.equal(row.outcome, 'success');
  return row;
}

export async function assertNotAudited(server: TestServer, requestId: string): Promise<void> {
  assert.deepEqual(await auditRowsFor(server, requestId), []);
}

/** Asserts no audit event anywhere mentions any of these secrets. */
export async function assertAuditFreeOf(server: TestServer, secrets: Iterable<string>): Promise<void> {
  const { rows } = await server.db.query('SELECT * FROM audit_events');
  assert.ok(rows.length > 0);
  for (const row of rows) {
    const text = JSON.stringify(row);
    for (const secret of secrets) assert.ok(!text.includes(secret), `audit event ${text} contains a client secret`);
  }
}

export function uniqueName(prefix: string): string {
  return `${prefix}-${randomUUID().slice(0, 8)}`;
}
