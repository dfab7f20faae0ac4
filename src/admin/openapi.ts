import { z } from 'zod';
import { auditEventResponse } from './audit-events/presenter.js';
import { auditEventQuery } from './audit-events/schema.js';
import { BODY_LIMIT } from './body.js';
import { clientResponse, clientSecretResponse, clientWithSecretResponse } from './clients/presenter.js';
import { clientListQuery, createClientBody, patchClientBody } from './clients/schema.js';
import { keyRotationResponse, rotateKeysBody } from './keys/schema.js';
import { keyResponse } from './keys/service.js';
import { DEFAULT_LIMIT, listQuery, MAX_LIMIT, pageOf } from './pagination.js';
import { fieldError, problemResponse } from './problem.js';
import { resourceServerResponse } from './resource-servers/presenter.js';
import { createResourceServerBody, patchResourceServerBody } from './resource-servers/schema.js';
import { ADMIN_SCOPES, adminResourceIdentifier, type AdminScope } from './scopes.js';
import { userResponse } from './users/presenter.js';
import { createUserBody, patchUserBody, userListQuery } from './users/schema.js';

/**
 * The admin API's OpenAPI 3.1 document (SPEC §5), served at `/admin/v1/openapi.json`. Every body
 * schema is generated from the zod schema that validates the request (io: input) or types the
 * presenter that shapes the response (io: output), so the document cannot drift from the code;
 * only the path table below is written by hand, and test/unit/openapi.test.ts holds it to the router.
 */

type JsonSchema = Record<string, unknown>;
type HttpMethod = 'get' | 'post' | 'patch' | 'delete';

/** Request bodies: what a caller may send (defaults make fields optional). */
export const REQUEST_SCHEMAS = {
  ClientCreate: createClientBody,
  ClientPatch: patchClientBody,
  ResourceServerCreate: createResourceServerBody,
  ResourceServerPatch: patchResourceServerBody,
  UserCreate: createUserBody,
  UserPatch: patchUserBody,
  KeyRotation: rotateKeysBody,
} satisfies Record<string, z.ZodType>;

/** Response bodies: exactly what the presenters return. */
const RESPONSE_SCHEMAS = {
  Client: clientResponse,
  ClientWithSecret: clientWithSecretResponse,
  ClientSecret: clientSecretResponse,
  ClientPage: pageOf(clientResponse),
  ResourceServer: resourceServerResponse,
  ResourceServerPage: pageOf(resourceServerResponse),
  User: userResponse,
  UserPage: pageOf(userResponse),
  SigningKey: keyResponse,
  SigningKeyPage: pageOf(keyResponse),
  KeyRotationResult: keyRotationResponse,
  AuditEvent: auditEventResponse,
  AuditEventPage: pageOf(auditEventResponse),
  Problem: problemResponse,
  FieldError: fieldError,
  OpenApiDocument: z
    .looseObject({ openapi: z.literal('3.1.0'), info: z.looseObject({ title: z.string(), version: z.string() }), paths: z.record(z.string(), z.unknown()) })
    .describe('This document.'),
} satisfies Record<string, z.ZodType>;

type RequestName = keyof typeof REQUEST_SCHEMAS;
type ResponseName = keyof typeof RESPONSE_SCHEMAS;

const SCOPE_DESCRIPTIONS: Record<AdminScope, string> = {
  'admin:clients': 'Read and change clients, rotate their secrets',
  'admin:resource-servers': 'Read and change resource servers',
  'admin:users': 'Read and change people, reset their second factor',
  'admin:keys': 'Read and rotate token signing keys',
  'admin:audit': 'Read the audit trail',
};

/** The error statuses an operation can answer, each a problem+json response in components.responses. */
const ERROR_RESPONSES = {
  400: {
    name: 'BadRequest',
    description: 'The query or body is invalid (`validation-failed`, with one entry in `errors` per field) or the body is not JSON (`malformed-body`).',
  },
  401: {
    name: 'Unauthorized',
    description:
      'No valid access token for the admin API (`unauthorized`), or a token whose client was deleted or whose credentials changed after it was issued; `WWW-Authenticate: Bearer` says why (RFC 6750 §3).',
    headers: ['WWW-Authenticate'],
  },
  403: {
    name: 'Forbidden',
    description:
      'The token lacks the scope this area needs (`forbidden`; `WWW-Authenticate` carries `error="insufficient_scope"` and the scope), or, for a client that may use the admin API, a scope that client may get (`forbidden`).',
    headers: ['WWW-Authenticate'],
  },
  404: { name: 'NotFound', description: 'No such resource (`not-found`).' },
  409: { name: 'Conflict', description: 'The request conflicts with the current state (`conflict`).' },
  412: {
    name: 'PreconditionFailed',
    description: '`If-Match` names an older version than the current `ETag` (`precondition-failed`); nothing was changed: read it again and retry.',
  },
  413: { name: 'PayloadTooLarge', description: `The body exceeds ${BODY_LIMIT} (\`payload-too-large\`).` },
  415: { name: 'UnsupportedMediaType', description: 'The body is not `application/json` (`unsupported-media-type`).' },
  500: { name: 'InternalError', description: 'An unexpected error (`internal-error`); the details are only in the server log, under the request id.' },
  503: { name: 'ServiceUnavailable', description: 'The database is unavailable (`service-unavailable`); retry after `Retry-After` seconds.', headers: ['Retry-After'] },
} as const satisfies Record<number, { name: string; description: string; headers?: readonly HeaderName[] }>;

type ErrorStatus = keyof typeof ERROR_RESPONSES;

const HEADERS = {
  'X-Request-Id': { description: 'The request id: the caller’s own when it is 1 to 128 of `A-Z a-z 0-9 . _ : -`, otherwise a new UUID. Audit events and logs carry it.' },
  Location: { description: 'The path of the created resource.' },
  ETag: { description: 'The version of the resource (RFC 9110 §8.8.3): send it as `If-Match` on PATCH to refuse a lost update.' },
  'WWW-Authenticate': { description: 'The Bearer challenge (RFC 6750 §3).' },
  'Retry-After': { description: 'Seconds to wait before retrying.', schema: { type: 'integer', minimum: 0 } },
  'Cache-Control': { description: 'How long the response may be cached.' },
} as const;

type HeaderName = keyof typeof HEADERS;

interface PathParam {
  readonly name: string;
  readonly schema: z.ZodType;
  readonly description: string;
}

interface OperationSpec {
  readonly method: HttpMethod;
  /** OpenAPI path template, relative to the server URL (`<issuer>/admin/v1`). */
  readonly path: string;
  /** The name of the router's handler function, so a reader can find one from the other. */
  readonly operationId: string;
  readonly tag: string;
  readonly summary: string;
  readonly description?: string;
  /** The scope the route requires; null for the one public operation. */
  readonly scope: AdminScope | null;
  readonly pathParams?: readonly PathParam[];
  readonly query?: z.ZodObject;
  readonly body?: { readonly schema: RequestName; readonly required: boolean; readonly example?: unknown };
  /** PATCH with optimistic concurrency: `If-Match`, 412 on a stale version. */
  readonly ifMatch?: boolean;
  readonly success: {
    readonly status: 200 | 201 | 204;
    readonly description: string;
    readonly schema?: ResponseName;
    readonly headers?: readonly HeaderName[];
  };
  readonly errors: readonly ErrorStatus[];
  /** What a 409 means for this operation. */
  readonly conflict?: string;
}

const clientId: PathParam = { name: 'client_id', schema: clientResponse.shape.client_id, description: 'The client’s client_id.' };
const resourceServerId: PathParam = { name: 'id', schema: resourceServerResponse.shape.id, description: 'The resource server’s id.' };
const userId: PathParam = { name: 'id', schema: userResponse.shape.id, description: 'The person’s id.' };
const keyId: PathParam = { name: 'kid', schema: keyResponse.shape.kid, description: 'The key’s `kid`.' };

/** Errors every authenticated operation can answer. */
const AUTHENTICATED = [401, 403, 500, 503] as const;
/** Errors of an operation that reads a JSON body (before it is validated). */
const WITH_BODY = [400, 413, 415] as const;

/** Examples for the create calls; the unit test parses each with its request schema. */
const CREATE_EXAMPLES = {
  ClientCreate: {
    client_name: 'Orders worker',
    grant_types: ['client_credentials'],
    token_endpoint_auth_method: 'client_secret_basic',
    scope: 'orders:read orders:write',
    allowed_resources: ['https://orders.example.com'],
  },
  ResourceServerCreate: {
    identifier: 'https://orders.example.com',
    name: 'Orders API',
    scopes: ['orders:read', 'orders:write'],
    access_token_ttl: 900,
    signing_alg: 'ES256',
  },
  UserCreate: {
    username: 'ada',
    password: 'plum-violet-orbit-42',
    email: 'ada@example.com',
    email_verified: true,
    name: 'Ada Lovelace',
    roles: ['billing:admin'],
    mfa_required: true,
  },
  KeyRotation: { algs: ['ES256'] },
} satisfies Partial<Record<RequestName, unknown>>;

/** Every route of src/admin/router.ts, plus the document itself. */
const OPERATIONS: readonly OperationSpec[] = [
  // Clients
  {
    method: 'get',
    path: '/clients',
    operationId: 'listClients',
    tag: 'Clients',
    summary: 'List clients',
    description: 'Oldest first. Never shows a secret.',
    scope: 'admin:clients',
    query: clientListQuery,
    success: { status: 200, description: 'A page of clients.', schema: 'ClientPage' },
    errors: [400, ...AUTHENTICATED],
  },
  {
    method: 'post',
    path: '/clients',
    operationId: 'createClient',
    tag: 'Clients',
    summary: 'Create a client',
    description:
      'The body is RFC 7591 client metadata plus `allowed_resources`, `require_mfa` and `first_party`. Every resource in `allowed_resources` must exist, and `scope` may name only OpenID scopes and scopes of those resource servers. A client with a secret-based `token_endpoint_auth_method` gets its `client_secret` in this response only. A client whose `allowed_resources` include the admin API (`<issuer>/admin`) is privileged: creating, changing, rotating the secret of or deleting it needs a token holding every admin scope that client may get (before and after a change), `403` otherwise. Without a `scope`, such a client gets no admin scope.',
    scope: 'admin:clients',
    body: { schema: 'ClientCreate', required: true, example: CREATE_EXAMPLES.ClientCreate },
    success: { status: 201, description: 'The stored client, with its secret this once.', schema: 'ClientWithSecret', headers: ['Location'] },
    errors: [...WITH_BODY, ...AUTHENTICATED],
  },
  {
    method: 'get',
    path: '/clients/{client_id}',
    operationId: 'readClient',
    tag: 'Clients',
    summary: 'Read a client',
    scope: 'admin:clients',
    pathParams: [clientId],
    success: { status: 200, description: 'The client (never its secret).', schema: 'Client', headers: ['ETag'] },
    errors: [400, 404, ...AUTHENTICATED],
  },
  {
    method: 'patch',
    path: '/clients/{client_id}',
    operationId: 'updateClient',
    tag: 'Clients',
    summary: 'Update a client',
    description:
      'Given fields replace the stored ones (`null` removes `scope`, `jwks` or `jwks_uri`); the result is validated like a create. A switch to a secret-based authentication method issues a secret, shown in this response only; a switch away from one removes it. A client whose `allowed_resources` include the admin API (`<issuer>/admin`) is privileged: creating, changing, rotating the secret of or deleting it needs a token holding every admin scope that client may get (before and after a change), `403` otherwise. Without a `scope`, such a client gets no admin scope.',
    scope: 'admin:clients',
    pathParams: [clientId],
    ifMatch: true,
    body: { schema: 'ClientPatch', required: false },
    success: { status: 200, description: 'The updated client, with a secret if this change issued one.', schema: 'ClientWithSecret', headers: ['ETag'] },
    errors: [...WITH_BODY, 404, 412, ...AUTHENTICATED],
  },
  {
    method: 'delete',
    path: '/clients/{client_id}',
    operationId: 'deleteClient',
    tag: 'Clients',
    summary: 'Delete a client',
    description:
      'The client can no longer authenticate; its grants, codes and refresh tokens are revoked, and the admin API refuses its access tokens within seconds. A client whose `allowed_resources` include the admin API (`<issuer>/admin`) is privileged: creating, changing, rotating the secret of or deleting it needs a token holding every admin scope that client may get (before and after a change), `403` otherwise. Without a `scope`, such a client gets no admin scope.',
    scope: 'admin:clients',
    pathParams: [clientId],
    success: { status: 204, description: 'Deleted.' },
    errors: [400, 404, ...AUTHENTICATED],
  },
  {
    method: 'post',
    path: '/clients/{client_id}/secret',
    operationId: 'rotateClientSecret',
    tag: 'Clients',
    summary: 'Rotate a client’s secret',
    description:
      'Issues a new secret, shown in this response only; the old one stops working at once, and the admin API refuses access tokens issued before the rotation within seconds (for an admin client the response waits for the next whole second, so tokens obtained with the new secret are told apart by `iat`). No body is needed. A client whose `allowed_resources` include the admin API (`<issuer>/admin`) is privileged: creating, changing, rotating the secret of or deleting it needs a token holding every admin scope that client may get (before and after a change), `403` otherwise. Without a `scope`, such a client gets no admin scope.',
    scope: 'admin:clients',
    pathParams: [clientId],
    success: { status: 200, description: 'The new secret.', schema: 'ClientSecret' },
    errors: [...WITH_BODY, 404, 409, ...AUTHENTICATED],
    conflict: 'The client does not authenticate with a secret (`private_key_jwt` or `none`).',
  },

  // Resource servers
  {
    method: 'get',
    path: '/resource-servers',
    operationId: 'listResourceServers',
    tag: 'Resource servers',
    summary: 'List resource servers',
    description: 'Oldest first, the built-in admin API resource server included.',
    scope: 'admin:resource-servers',
    query: listQuery,
    success: { status: 200, description: 'A page of resource servers.', schema: 'ResourceServerPage' },
    errors: [400, ...AUTHENTICATED],
  },
  {
    method: 'post',
    path: '/resource-servers',
    operationId: 'createResourceServer',
    tag: 'Resource servers',
    summary: 'Create a resource server',
    description: '`encrypt_whole_token` needs an `inner_encryption_jwk`, a public key to encrypt to.',
    scope: 'admin:resource-servers',
    body: { schema: 'ResourceServerCreate', required: true, example: CREATE_EXAMPLES.ResourceServerCreate },
    success: { status: 201, description: 'The stored resource server.', schema: 'ResourceServer', headers: ['Location'] },
    errors: [...WITH_BODY, 409, ...AUTHENTICATED],
    conflict: 'A resource server with that `identifier` already exists (`errors` points at `#/identifier`).',
  },
  {
    method: 'get',
    path: '/resource-servers/{id}',
    operationId: 'readResourceServer',
    tag: 'Resource servers',
    summary: 'Read a resource server',
    scope: 'admin:resource-servers',
    pathParams: [resourceServerId],
    success: { status: 200, description: 'The resource server.', schema: 'ResourceServer', headers: ['ETag'] },
    errors: [404, ...AUTHENTICATED],
  },
  {
    method: 'patch',
    path: '/resource-servers/{id}',
    operationId: 'updateResourceServer',
    tag: 'Resource servers',
    summary: 'Update a resource server',
    description: 'Given fields replace the stored ones; `identifier` cannot change. New tokens follow the change; tokens already issued keep theirs.',
    scope: 'admin:resource-servers',
    pathParams: [resourceServerId],
    ifMatch: true,
    body: { schema: 'ResourceServerPatch', required: false },
    success: { status: 200, description: 'The updated resource server.', schema: 'ResourceServer', headers: ['ETag'] },
    errors: [...WITH_BODY, 404, 409, 412, ...AUTHENTICATED],
    conflict: 'The built-in admin API resource server cannot be changed.',
  },
  {
    method: 'delete',
    path: '/resource-servers/{id}',
    operationId: 'deleteResourceServer',
    tag: 'Resource servers',
    summary: 'Delete a resource server',
    scope: 'admin:resource-servers',
    pathParams: [resourceServerId],
    success: { status: 204, description: 'Deleted.' },
    errors: [404, 409, ...AUTHENTICATED],
    conflict: 'The built-in admin API resource server cannot be deleted, nor one that clients still name in `allowed_resources` (listed in `client_ids`).',
  },

  // Users
  {
    method: 'get',
    path: '/users',
    operationId: 'listUsers',
    tag: 'Users',
    summary: 'List people',
    description: 'Oldest first. Never shows a password or a second-factor secret.',
    scope: 'admin:users',
    query: userListQuery,
    success: { status: 200, description: 'A page of people.', schema: 'UserPage' },
    errors: [400, ...AUTHENTICATED],
  },
  {
    method: 'post',
    path: '/users',
    operationId: 'createUser',
    tag: 'Users',
    summary: 'Create a person',
    scope: 'admin:users',
    body: { schema: 'UserCreate', required: true, example: CREATE_EXAMPLES.UserCreate },
    success: { status: 201, description: 'The stored person.', schema: 'User', headers: ['Location'] },
    errors: [...WITH_BODY, 409, ...AUTHENTICATED],
    conflict: 'The username is taken, compared ignoring case and width, or looks like an existing one (UTS #39 confusables; `errors` points at `#/username`).',
  },
  {
    method: 'get',
    path: '/users/{id}',
    operationId: 'readUser',
    tag: 'Users',
    summary: 'Read a person',
    scope: 'admin:users',
    pathParams: [userId],
    success: { status: 200, description: 'The person.', schema: 'User', headers: ['ETag'] },
    errors: [404, ...AUTHENTICATED],
  },
  {
    method: 'patch',
    path: '/users/{id}',
    operationId: 'updateUser',
    tag: 'Users',
    summary: 'Update a person',
    description:
      'Given fields replace the stored ones; `null` clears `email` or `name`; `password` sets a new one. `disabled: true` ends the person’s sessions and grants at once. A new email is unverified unless `email_verified` says otherwise.',
    scope: 'admin:users',
    pathParams: [userId],
    ifMatch: true,
    body: { schema: 'UserPatch', required: false },
    success: { status: 200, description: 'The updated person.', schema: 'User', headers: ['ETag'] },
    errors: [...WITH_BODY, 404, 409, 412, ...AUTHENTICATED],
    conflict: 'The new username is taken, compared ignoring case and width, or looks like an existing one (UTS #39 confusables; `errors` points at `#/username`).',
  },
  {
    method: 'delete',
    path: '/users/{id}',
    operationId: 'deleteUser',
    tag: 'Users',
    summary: 'Delete a person',
    description: 'Their sessions, grants, codes and refresh tokens go at once.',
    scope: 'admin:users',
    pathParams: [userId],
    success: { status: 204, description: 'Deleted.' },
    errors: [404, ...AUTHENTICATED],
  },
  {
    method: 'delete',
    path: '/users/{id}/mfa',
    operationId: 'resetUserSecondFactor',
    tag: 'Users',
    summary: 'Remove a person’s second factor',
    description: 'Removes the TOTP secret and recovery codes; if a second factor is required, the next sign-in enrolls again.',
    scope: 'admin:users',
    pathParams: [userId],
    success: { status: 204, description: 'Removed (also when there was none).' },
    errors: [404, ...AUTHENTICATED],
  },

  // Audit trail
  {
    method: 'get',
    path: '/audit-events',
    operationId: 'listAuditEvents',
    tag: 'Audit',
    summary: 'List audit events',
    description: 'Newest first. Every change made through the admin API or the CLI is recorded, and so are sign-in and second-factor events.',
    scope: 'admin:audit',
    query: auditEventQuery,
    success: { status: 200, description: 'A page of audit events.', schema: 'AuditEventPage' },
    errors: [400, ...AUTHENTICATED],
  },

  // Signing keys
  {
    method: 'get',
    path: '/keys',
    operationId: 'listKeys',
    tag: 'Signing keys',
    summary: 'List signing keys',
    description: 'Next, active, retired, expired and revoked keys; never private material.',
    scope: 'admin:keys',
    query: listQuery,
    success: { status: 200, description: 'A page of signing keys.', schema: 'SigningKeyPage' },
    errors: [400, ...AUTHENTICATED],
  },
  {
    method: 'post',
    path: '/keys/rotate',
    operationId: 'rotateKeys',
    tag: 'Signing keys',
    summary: 'Rotate signing keys',
    description:
      'For each algorithm asked for (every algorithm without a body), the `next` key, published since the previous rotation, becomes active, and a fresh `next` key is published; so a verifier holding a JWKS fetched before the rotation knows the new key. The old keys stay published until every token they signed has expired.',
    scope: 'admin:keys',
    body: { schema: 'KeyRotation', required: false, example: CREATE_EXAMPLES.KeyRotation },
    success: { status: 201, description: 'The new active keys.', schema: 'KeyRotationResult' },
    errors: [...WITH_BODY, ...AUTHENTICATED],
  },
  {
    method: 'post',
    path: '/keys/{kid}/revoke',
    operationId: 'revokeKey',
    tag: 'Signing keys',
    summary: 'Revoke a signing key (emergency)',
    description:
      'The key leaves the JWKS at once, on every instance; introspection answers `active: false` for the tokens it signed, and verifiers refuse them at their next JWKS refresh. Revoking the active key first makes the `next` key active and publishes a fresh `next`, so tokens keep being issued. No body is needed.',
    scope: 'admin:keys',
    pathParams: [keyId],
    success: { status: 200, description: 'The revoked key.', schema: 'SigningKey' },
    errors: [...WITH_BODY, 404, 409, ...AUTHENTICATED],
    conflict: 'The key is already revoked.',
  },

  // This document
  {
    method: 'get',
    path: '/openapi.json',
    operationId: 'readOpenApiDocument',
    tag: 'Document',
    summary: 'This OpenAPI document',
    description: 'Public: no token is needed.',
    scope: null,
    success: { status: 200, description: 'The OpenAPI 3.1 document of the admin API.', schema: 'OpenApiDocument', headers: ['Cache-Control'] },
    errors: [],
  },
];

const TAGS = [
  { name: 'Clients', description: 'OAuth 2.0 clients (RFC 7591 metadata). Scope `admin:clients`.' },
  { name: 'Resource servers', description: 'APIs that accept Gatehouse access tokens (RFC 8707 resource indicators). Scope `admin:resource-servers`.' },
  { name: 'Users', description: 'People who sign in through the hosted pages. Scope `admin:users`.' },
  { name: 'Audit', description: 'The append-only audit trail. Scope `admin:audit`.' },
  { name: 'Signing keys', description: 'The keys that sign tokens. Scope `admin:keys`.' },
  { name: 'Document', description: 'This document.' },
];

function ref(kind: 'schemas' | 'responses' | 'parameters' | 'headers', name: string): { $ref: string } {
  return { $ref: `#/components/${kind}/${name}` };
}

/** JSON Schemas for a set of named zod schemas, referring to each other through components.schemas. */
function componentSchemas(schemas: Record<string, z.ZodType>, io: 'input' | 'output'): Record<string, JsonSchema> {
  const registry = z.registry<{ id: string }>();
  for (const [id, schema] of Object.entries(schemas)) registry.add(schema, { id });
  const { schemas: generated } = z.toJSONSchema(registry, {
    target: 'draft-2020-12',
    io,
    unrepresentable: 'throw',
    uri: (id) => `#/components/schemas/${id}`,
  });
  // Each becomes a component of this document, not a document of its own.
  return Object.fromEntries(Object.entries(generated).map(([id, { $schema: _dialect, $id: _id, ...schema }]) => [id, schema as JsonSchema]));
}

function jsonSchemaOf(schema: z.ZodType, io: 'input' | 'output'): JsonSchema {
  const { $schema: _dialect, ...json } = z.toJSONSchema(schema, { target: 'draft-2020-12', io, unrepresentable: 'throw' });
  return json;
}

function headerRefs(names: readonly HeaderName[]): Record<string, { $ref: string }> {
  return Object.fromEntries(['X-Request-Id' as const, ...names].map((name) => [name, ref('headers', name.replaceAll('-', ''))]));
}

/** A parameter's own description goes on the parameter, the rest of its schema under `schema`. */
function parameter(name: string, location: 'path' | 'query', required: boolean, json: JsonSchema, description?: string): JsonSchema {
  const { description: schemaDescription, ...schema } = json;
  const text = description ?? schemaDescription;
  return { name, in: location, required, ...(typeof text === 'string' ? { description: text } : {}), schema };
}

function queryParameters(query: z.ZodObject): JsonSchema[] {
  const json = jsonSchemaOf(query, 'input') as { properties?: Record<string, JsonSchema>; required?: string[] };
  return Object.entries(json.properties ?? {}).map(([name, schema]) => parameter(name, 'query', json.required?.includes(name) ?? false, schema));
}

function operationObject(spec: OperationSpec): JsonSchema {
  const parameters = [
    ...(spec.pathParams ?? []).map((param) => parameter(param.name, 'path', true, jsonSchemaOf(param.schema, 'output'), param.description)),
    ...(spec.query === undefined ? [] : queryParameters(spec.query)),
    ...(spec.ifMatch === true ? [ref('parameters', 'IfMatch')] : []),
    ref('parameters', 'XRequestId'),
  ];
  const success: JsonSchema = {
    description: spec.success.description,
    headers: headerRefs(spec.success.headers ?? []),
    ...(spec.success.schema === undefined ? {} : { content: { 'application/json': { schema: ref('schemas', spec.success.schema) } } }),
  };
  const responses: Record<string, JsonSchema> = { [String(spec.success.status)]: success };
  for (const status of [...spec.errors].sort((a, b) => a - b)) {
    const reference = ref('responses', ERROR_RESPONSES[status].name);
    // OpenAPI 3.1 lets a reference override the description: what this 409 means here.
    responses[String(status)] = status === 409 && spec.conflict !== undefined ? { ...reference, description: spec.conflict } : reference;
  }
  const body = spec.body;
  return {
    operationId: spec.operationId,
    tags: [spec.tag],
    summary: spec.summary,
    ...(spec.description === undefined ? {} : { description: spec.description }),
    security: spec.scope === null ? [] : [{ oauth2: [spec.scope] }],
    parameters,
    ...(body === undefined
      ? {}
      : {
          requestBody: {
            required: body.required,
            content: Object.fromEntries(
              // The admin API reads application/merge-patch+json (RFC 7396) like JSON; PATCH bodies are merge patches.
              (spec.method === 'patch' ? ['application/json', 'application/merge-patch+json'] : ['application/json']).map((type) => [
                type,
                { schema: ref('schemas', body.schema), ...(body.example === undefined ? {} : { example: body.example }) },
              ]),
            ),
          },
        }),
    responses,
  };
}

function build(issuer: string): JsonSchema {
  const paths: Record<string, Partial<Record<HttpMethod, JsonSchema>>> = {};
  for (const spec of OPERATIONS) (paths[spec.path] ??= {})[spec.method] = operationObject(spec);

  const problem = { 'application/problem+json': { schema: ref('schemas', 'Problem') } };
  const responses = Object.fromEntries(
    Object.values(ERROR_RESPONSES).map((error) => [
      error.name,
      { description: error.description, headers: headerRefs('headers' in error ? error.headers : []), content: problem },
    ]),
  );

  return {
    openapi: '3.1.0',
    info: {
      title: 'Gatehouse admin API',
      version: '1',
      description: [
        'Manage Gatehouse’s clients, resource servers, people and signing keys, and read its audit trail.',
        '',
        `Authenticate with an access token from the client-credentials grant for the resource \`${adminResourceIdentifier(issuer)}\` carrying the scope of each area. ` +
          'Errors are RFC 9457 `application/problem+json`. ' +
          `Lists answer \`{"items": [...], "next_cursor": string|null}\`: pass \`?limit=\` (default ${DEFAULT_LIMIT}, at most ${MAX_LIMIT}) and \`?cursor=\` with the previous \`next_cursor\`. ` +
          'Every change is recorded as an audit event. Responses are not cacheable (`Cache-Control: no-store`), this document excepted.',
      ].join('\n'),
    },
    servers: [{ url: `${issuer}/admin/v1` }],
    tags: TAGS,
    paths,
    components: {
      schemas: { ...componentSchemas(REQUEST_SCHEMAS, 'input'), ...componentSchemas(RESPONSE_SCHEMAS, 'output') },
      responses,
      parameters: {
        XRequestId: { name: 'X-Request-Id', in: 'header', required: false, description: HEADERS['X-Request-Id'].description, schema: { type: 'string', pattern: '^[A-Za-z0-9._:-]{1,128}$' } },
        IfMatch: {
          name: 'If-Match',
          in: 'header',
          required: false,
          description: 'The `ETag` of the version this change is based on (RFC 9110 §13.1.1); `*` or absent: any version.',
          schema: { type: 'string' },
        },
      },
      headers: Object.fromEntries(
        Object.entries(HEADERS).map(([name, header]) => [name.replaceAll('-', ''), { description: header.description, schema: 'schema' in header ? header.schema : { type: 'string' } }]),
      ),
      securitySchemes: {
        oauth2: {
          type: 'oauth2',
          description: `The client-credentials grant (RFC 6749 §4.4) with \`resource=${adminResourceIdentifier(issuer)}\` (RFC 8707); the token is sent as \`Authorization: Bearer\`.`,
          flows: {
            clientCredentials: {
              tokenUrl: `${issuer}/token`,
              scopes: Object.fromEntries(ADMIN_SCOPES.map((scope) => [scope, SCOPE_DESCRIPTIONS[scope]])),
            },
          },
        },
      },
    },
  };
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const member of Object.values(value)) deepFreeze(member);
  }
  return value;
}

const documents = new Map<string, object>();

/** The document for this issuer, built once (it depends on nothing else) and frozen, so callers share it safely. */
export function buildOpenApiDocument(issuer: string): object {
  let document = documents.get(issuer);
  if (document === undefined) {
    document = deepFreeze(build(issuer));
    documents.set(issuer, document);
  }
  return document;
}
