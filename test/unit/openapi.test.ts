import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { Validator } from '@seriousme/openapi-schema-validator';
import Koa from 'koa';
import type { Logger } from 'pino';
import { buildOpenApiDocument } from '../../src/admin/openapi.js';
import { ADMIN_PREFIX, createAdminApi, type AdminApiDeps } from '../../src/admin/router.js';
import { ADMIN_ROUTES } from '../../src/admin/routes.js';
import { ADMIN_SCOPES } from '../../src/management/admin-scopes.js';
import type { VerifiedToken } from '../../src/verifier/index.js';
import { assertMatchesContract, findOperation, openApiDocument, validatorAt } from '../support/openapi-contract.js';

/**
 * The admin API's OpenAPI document (SPEC §5): a valid OpenAPI 3.1 document, and a complete one:
 * every route of the route tables (which the router serves) is documented with the scope it
 * really enforces, and nothing is documented that the router does not serve.
 */

const ISSUER = 'https://id.example.com';
const METHODS = ['get', 'post', 'put', 'patch', 'delete'] as const;

/** A path with its parameters filled in, for a request to the real router. */
function concrete(template: string): string {
  return template.replace(/\{[^}]+\}/g, '00000000-0000-4000-8000-000000000000');
}

describe('the admin API OpenAPI document', () => {
  const document = openApiDocument();
  const operations = Object.entries(document.paths).flatMap(([path, item]) =>
    METHODS.flatMap((method) => (item[method] === undefined ? [] : [{ path, method, operation: item[method] }])),
  );

  let server: Server;
  let url: string;

  before(async () => {
    // The admin API's own middleware with a verifier that accepts any token but grants no scope:
    // every guarded route answers 403 naming the scope it requires, and reaches no service.
    const noScopes: VerifiedToken = { claims: { scope: '' } as VerifiedToken['claims'], inner: undefined };
    const deps = {
      issuer: ISSUER,
      verifier: { verify: () => Promise.resolve(noScopes) },
      logger: { error: () => undefined } as unknown as Logger,
      clientCertificate: () => undefined,
    } as unknown as AdminApiDeps;
    const app = new Koa();
    app.use(createAdminApi(deps));
    const handle = app.callback();
    server = createServer((req, res) => void handle(req, res));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(() => new Promise<void>((resolve) => server.close(() => resolve())));

  test('is a valid OpenAPI 3.1 document', async () => {
    const validator = new Validator();
    const result = await validator.validate(JSON.parse(JSON.stringify(document)) as Parameters<Validator['validate']>[0]);
    assert.equal(result.valid, true, JSON.stringify(result.errors, null, 2));
    assert.equal(validator.version, '3.1');
    assert.equal(document.openapi, '3.1.0');
  });

  test('names the API, its server and the OAuth 2.0 client-credentials flow with every admin scope', () => {
    const built = buildOpenApiDocument(ISSUER) as {
      info: { title: string };
      servers: { url: string }[];
      components: { securitySchemes: { oauth2: { type: string; flows: { clientCredentials: { tokenUrl: string; scopes: Record<string, string> } } } } };
    };
    assert.equal(built.info.title, 'Gatehouse admin API');
    assert.deepEqual(built.servers, [{ url: `${ISSUER}/admin/v1` }]);
    const { oauth2 } = built.components.securitySchemes;
    assert.equal(oauth2.type, 'oauth2');
    assert.equal(oauth2.flows.clientCredentials.tokenUrl, `${ISSUER}/token`);
    assert.deepEqual(Object.keys(oauth2.flows.clientCredentials.scopes).sort(), [...ADMIN_SCOPES].sort());
    for (const description of Object.values(oauth2.flows.clientCredentials.scopes)) assert.ok(description.length > 0);
  });

  test('is built once per issuer and cannot be changed by a caller', () => {
    const first = buildOpenApiDocument(ISSUER);
    assert.equal(buildOpenApiDocument(ISSUER), first);
    assert.ok(Object.isFrozen(first));
    assert.notEqual(buildOpenApiDocument('https://other.example.com'), first);
  });

  test('documents every route of the route tables, under its operationId and with its scope', () => {
    assert.ok(ADMIN_ROUTES.length >= 20, `only ${ADMIN_ROUTES.length} routes found`);
    assert.equal(new Set(ADMIN_ROUTES.map((route) => route.operationId)).size, ADMIN_ROUTES.length, 'an operationId names two routes');
    assert.equal(new Set(ADMIN_ROUTES.map((route) => `${route.method} ${route.path}`)).size, ADMIN_ROUTES.length, 'a method and path are routed twice');
    for (const route of ADMIN_ROUTES) {
      const operation = document.paths[route.path]?.[route.method];
      assert.ok(operation !== undefined, `${route.method.toUpperCase()} ${ADMIN_PREFIX}${route.path} is not in the OpenAPI document`);
      assert.equal(operation.operationId, route.operationId, `${route.method.toUpperCase()} ${route.path}: operationId differs`);
      assert.deepEqual(operation.security, route.scope === null ? [] : [{ oauth2: [route.scope] }], `${route.method.toUpperCase()} ${route.path}: security differs`);
    }
    assert.equal(operations.length, ADMIN_ROUTES.length, 'the document has operations the route tables do not');
  });

  test('documents nothing the router does not serve: other methods on a documented path answer 405', async () => {
    for (const [path, item] of Object.entries(document.paths)) {
      for (const method of METHODS.filter((method) => item[method] === undefined)) {
        const response = await fetch(`${url}${ADMIN_PREFIX}${concrete(path)}`, { method: method.toUpperCase(), headers: { Authorization: 'Bearer any' } });
        const body: unknown = await response.json();
        assert.equal(response.status, 405, `${method.toUpperCase()} ${path} is served but not documented: ${JSON.stringify(body)}`);
        assertMatchesContract(method, path, response.status, body, response.headers.get('content-type') ?? undefined);
      }
    }
  });

  test('the router serves this document, publicly and cacheable', async () => {
    const response = await fetch(`${url}${ADMIN_PREFIX}/openapi.json`);
    assert.equal(response.status, 200);
    assert.equal(response.headers.get('cache-control'), 'public, max-age=300');
    assert.deepEqual(await response.json(), JSON.parse(JSON.stringify(buildOpenApiDocument(ISSUER))));
  });

  test('every operation has security, its success and its error responses', () => {
    for (const { method, path, operation } of operations) {
      const label = `${method.toUpperCase()} ${path}`;
      assert.ok(Array.isArray(operation.security), `${label} has no security`);
      const statuses = Object.keys(operation.responses);
      assert.ok(
        statuses.some((status) => /^2\d\d$/.test(status)),
        `${label} has no success response`,
      );
      if (operation.security.length === 0) {
        // Only the document itself is public.
        assert.equal(path, '/openapi.json', `${label} is documented as public`);
        continue;
      }
      assert.equal(operation.security.length, 1, label);
      const scopes = operation.security[0]?.['oauth2'] ?? [];
      assert.equal(scopes.length, 1, `${label} names one admin scope`);
      assert.ok((ADMIN_SCOPES as readonly string[]).includes(scopes[0]!), `${label}: ${scopes[0]} is not an admin scope`);
      for (const status of ['401', '403', '503']) assert.ok(statuses.includes(status), `${label} does not document ${status}`);
      if (operation.requestBody !== undefined) {
        for (const status of ['400', '413', '415']) assert.ok(statuses.includes(status), `${label} reads a body but does not document ${status}`);
      }
      if (path.includes('{')) assert.ok(statuses.includes('404'), `${label} does not document 404`);
      if (method === 'patch') assert.ok(statuses.includes('412'), `${label} does not document 412 for If-Match`);
    }
  });

  test('documents the scope each route enforces', async () => {
    for (const { method, path, operation } of operations) {
      const scope = operation.security?.[0]?.['oauth2']?.[0];
      if (scope === undefined) continue;
      const response = await fetch(`${url}${ADMIN_PREFIX}${concrete(path)}`, { method: method.toUpperCase(), headers: { Authorization: 'Bearer any' } });
      const body: unknown = await response.json();
      assert.equal(response.status, 403, `${method.toUpperCase()} ${path}: ${JSON.stringify(body)}`);
      assert.ok((response.headers.get('www-authenticate') ?? '').includes(`scope="${scope}"`), `${method.toUpperCase()} ${path} enforces another scope than ${scope}`);
      assertMatchesContract(method, path, response.status, body, response.headers.get('content-type') ?? undefined);
    }
  });

  test('every create call has an example that its request schema accepts', () => {
    const creates = operations.filter(({ operation }) => operation.requestBody !== undefined && '201' in operation.responses);
    assert.ok(creates.length >= 3);
    for (const { method, path, operation } of operations) {
      for (const [mediaType, content] of Object.entries(operation.requestBody?.content ?? {})) {
        const name = String((content.schema as { $ref?: string }).$ref).replace('#/components/schemas/', '');
        const schema = ADMIN_ROUTES.find((route) => route.body?.schema.name === name)?.body?.schema.schema;
        assert.ok(schema !== undefined, `${method.toUpperCase()} ${path}: ${name} is not a request schema`);
        if (creates.some((create) => create.operation === operation)) assert.ok(content.example !== undefined, `${method.toUpperCase()} ${path} ${mediaType} has no example`);
        if (content.example === undefined) continue;
        const parsed = schema.safeParse(content.example);
        assert.ok(parsed.success, `${method.toUpperCase()} ${path}: the example is refused: ${JSON.stringify(parsed.error?.issues)}`);
        // And the generated JSON Schema agrees with zod about it.
        const validate = validatorAt(`#/components/schemas/${name}`);
        assert.ok(validate(content.example), JSON.stringify(validate.errors));
      }
    }
  });

  test('every schema in it compiles as JSON Schema 2020-12 (strict)', () => {
    for (const name of Object.keys(document.components.schemas)) validatorAt(`#/components/schemas/${name}`);
  });

  test('the contract check finds operations by template or concrete path and refuses what is not documented', () => {
    assert.equal(findOperation('GET', '/admin/v1/clients/abc?x=1')?.template, '/clients/{client_id}');
    assert.equal(findOperation('POST', '/keys/rotate')?.operation?.operationId, 'rotateKeys');
    assert.equal(findOperation('DELETE', '/users/{id}/mfa')?.operation?.operationId, 'resetUserSecondFactor');
    assert.equal(findOperation('GET', '/nowhere'), undefined);
    const notFound = { type: 'urn:gatehouse:problem:not-found', title: 'Not found', status: 404, detail: 'No client with that client_id.' };
    assertMatchesContract('GET', '/clients/abc', 404, notFound, 'application/problem+json; charset=utf-8');
    assert.throws(() => assertMatchesContract('GET', '/clients/abc', 418, notFound), /status 418 is not documented/);
    assert.throws(() => assertMatchesContract('GET', '/clients/abc', 404, { ...notFound, secret: 'x' }), /must NOT have additional properties "secret"/);
    assert.throws(() => assertMatchesContract('GET', '/keys', 200, { items: [], next_cursor: null }, 'text/html'), /Content-Type text\/html is not documented/);
    assert.throws(() => assertMatchesContract('DELETE', '/users/abc', 204, { items: [] }), /documented without a body/);
    assert.throws(() => assertMatchesContract('GET', '/nowhere', 200, {}), /no documented path matches/);
  });
});
