import { z } from 'zod';
import { BODY_LIMIT } from './body.js';
import { DEFAULT_LIMIT, MAX_LIMIT } from '../management/pagination.js';
import { fieldError, problemResponse } from './problem.js';
import type { AdminRoute, ErrorStatus, HttpMethod, NamedSchema } from './route.js';
import { ROUTE_TABLES, type OpenApiDocumentResponse } from './routes.js';
import { ADMIN_SCOPES, adminResourceIdentifier, type AdminScope } from '../management/admin-scopes.js';
import { deepFreeze } from '../lib/deep-freeze.js';

/**
 * The admin API's OpenAPI 3.1 document (SPEC §5), served at `/admin/v1/openapi.json`, rendered
 * from the route tables the router serves (src/admin/routes.ts): every path, scope, parameter
 * and status comes from there, and every body schema is generated from the zod schema that
 * validates the request (io: input) or types the response (io: output), so the document cannot
 * drift from the code.
 */

type JsonSchema = Record<string, unknown>;

const SCOPE_DESCRIPTIONS: Record<AdminScope, string> = {
  'admin:clients': 'Read and change clients, rotate their secrets',
  'admin:resource-servers': 'Read and change resource servers',
  'admin:users': 'Read and change people, reset their second factor',
  'admin:keys': 'Read and rotate token signing keys',
  'admin:audit': 'Read the audit trail',
  'admin:gateway': 'Read and change the gateway’s routes',
  'admin:identity-providers': 'Read and change upstream identity providers',
};

const HEADERS = {
  'X-Request-Id': { description: 'The request id: the caller’s own when it is 1 to 128 of `A-Z a-z 0-9 . _ : -`, otherwise a new UUID. Audit events and logs carry it.' },
  Location: { description: 'The path of the created resource.' },
  ETag: { description: 'The version of the resource (RFC 9110 §8.8.3): send it as `If-Match` on PATCH to refuse a lost update.' },
  'WWW-Authenticate': { description: 'The Bearer challenge (RFC 6750 §3).' },
  'Retry-After': { description: 'Seconds to wait before retrying.', schema: { type: 'integer', minimum: 0 } },
  'Cache-Control': { description: 'How long the response may be cached.' },
} as const;

type HeaderName = keyof typeof HEADERS;

/** Each error status an operation can answer, as a problem+json response in components.responses. */
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
} as const satisfies Record<ErrorStatus, { name: string; description: string; headers?: readonly HeaderName[] }>;

/** Schemas of every document, whatever the routes: the problem body every error answers. */
const PROBLEM = { name: 'Problem', schema: problemResponse, parts: [{ name: 'FieldError', schema: fieldError }] } satisfies NamedSchema;

function ref(kind: 'schemas' | 'responses' | 'parameters' | 'headers', name: string): { $ref: string } {
  return { $ref: `#/components/${kind}/${name}` };
}

/** The named schemas the routes use for one direction, each once (a name stands for one schema). */
function namedSchemas(routes: readonly AdminRoute[], io: 'input' | 'output'): Map<string, z.ZodType> {
  const found = new Map<string, z.ZodType>();
  const add = (named: NamedSchema | undefined): void => {
    if (named === undefined) return;
    for (const part of named.parts ?? []) add(part);
    const seen = found.get(named.name);
    if (seen !== undefined && seen !== named.schema) throw new Error(`two schemas are named ${named.name}`);
    found.set(named.name, named.schema);
  };
  if (io === 'input') for (const route of routes) add(route.body?.schema);
  else for (const route of [...routes.map((route) => route.response.schema), PROBLEM]) add(route);
  return found;
}

/** JSON Schemas for a set of named zod schemas, referring to each other through components.schemas. */
function componentSchemas(schemas: ReadonlyMap<string, z.ZodType>, io: 'input' | 'output'): Record<string, JsonSchema> {
  const registry = z.registry<{ id: string }>();
  for (const [id, schema] of schemas) registry.add(schema, { id });
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

/** The headers the router sets on a route's success, as the route declares them. */
function successHeaders(response: AdminRoute['response']): HeaderName[] {
  return [
    ...(response.location === undefined ? [] : ['Location' as const]),
    ...(response.etag === true ? ['ETag' as const] : []),
    ...(response.cacheControl === undefined ? [] : ['Cache-Control' as const]),
  ];
}

function requestBody(route: AdminRoute): JsonSchema {
  const body = route.body;
  if (body === undefined) return {};
  // The admin API reads application/merge-patch+json (RFC 7396) like JSON; PATCH bodies are merge patches.
  const types = route.method === 'patch' ? ['application/json', 'application/merge-patch+json'] : ['application/json'];
  const media = { schema: ref('schemas', body.schema.name), ...(body.example === undefined ? {} : { example: body.example }) };
  return { requestBody: { required: body.required, content: Object.fromEntries(types.map((type) => [type, media])) } };
}

function operationObject(route: AdminRoute, tag: string): JsonSchema {
  const parameters = [
    ...Object.entries(route.params ?? {}).map(([name, param]) => parameter(name, 'path', true, jsonSchemaOf(param.schema, 'output'), param.description)),
    ...(route.query === undefined ? [] : queryParameters(route.query)),
    ...(route.ifMatch === true ? [ref('parameters', 'IfMatch')] : []),
    ref('parameters', 'XRequestId'),
  ];
  const { response } = route;
  const success: JsonSchema = {
    description: response.description,
    headers: headerRefs(successHeaders(response)),
    ...(response.schema === undefined ? {} : { content: { 'application/json': { schema: ref('schemas', response.schema.name) } } }),
  };
  const responses: Record<string, JsonSchema> = { [String(response.status)]: success };
  for (const status of [...route.errors].sort((a, b) => a - b)) {
    const reference = ref('responses', ERROR_RESPONSES[status].name);
    // OpenAPI 3.1 lets a reference override the description: what this 409 means here.
    responses[String(status)] = status === 409 && route.conflict !== undefined ? { ...reference, description: route.conflict } : reference;
  }
  return {
    operationId: route.operationId,
    tags: [tag],
    summary: route.summary,
    ...(route.description === undefined ? {} : { description: route.description }),
    security: route.scope === null ? [] : [{ oauth2: [route.scope] }],
    parameters,
    ...requestBody(route),
    responses,
  };
}

function components(issuer: string, routes: readonly AdminRoute[]): JsonSchema {
  const problem = { 'application/problem+json': { schema: ref('schemas', PROBLEM.name) } };
  return {
    schemas: { ...componentSchemas(namedSchemas(routes, 'input'), 'input'), ...componentSchemas(namedSchemas(routes, 'output'), 'output') },
    responses: Object.fromEntries(
      Object.values(ERROR_RESPONSES).map((error) => [
        error.name,
        { description: error.description, headers: headerRefs('headers' in error ? error.headers : []), content: problem },
      ]),
    ),
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
  };
}

function build(issuer: string): OpenApiDocumentResponse {
  const paths: Record<string, Partial<Record<HttpMethod, JsonSchema>>> = {};
  for (const table of ROUTE_TABLES) {
    for (const route of table.routes) (paths[route.path] ??= {})[route.method] = operationObject(route, table.tag.name);
  }
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
    tags: ROUTE_TABLES.map((table) => table.tag),
    paths,
    components: components(issuer, ROUTE_TABLES.flatMap((table) => table.routes)),
  };
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
