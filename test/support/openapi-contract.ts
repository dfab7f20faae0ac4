import { Ajv2020, type ErrorObject, type ValidateFunction } from 'ajv/dist/2020.js';
import addFormatsModule from 'ajv-formats';
import { buildOpenApiDocument } from '../../src/admin/openapi.js';

/**
 * The contract check: every response the admin API tests receive must be one the OpenAPI document
 * promises (src/admin/openapi.ts): a documented status for that operation, and a body valid
 * against its schema. Bodies are checked with Ajv's JSON Schema 2020-12 build, the dialect of the
 * schemas OpenAPI 3.1 embeds.
 */

const addFormats = addFormatsModule.default;

/** The issuer only appears in servers and the token URL, never in a schema. */
const document = buildOpenApiDocument('https://gatehouse.test') as OpenApiDocument;
const DOCUMENT_ID = 'urn:gatehouse:admin-api:openapi';
const PREFIX = '/admin/v1';

interface MediaType {
  readonly schema?: unknown;
}
interface ResponseObject {
  readonly $ref?: string;
  readonly description?: string;
  readonly content?: Record<string, MediaType>;
}
interface OperationObject {
  readonly operationId: string;
  readonly responses: Record<string, ResponseObject>;
  readonly security?: Record<string, string[]>[];
  readonly requestBody?: { readonly content: Record<string, MediaType & { readonly example?: unknown }> };
  readonly parameters?: unknown[];
}
export interface OpenApiDocument {
  readonly openapi: string;
  readonly paths: Record<string, Partial<Record<string, OperationObject>>>;
  readonly components: { readonly schemas: Record<string, unknown>; readonly responses: Record<string, ResponseObject> };
}

export function openApiDocument(): OpenApiDocument {
  return document;
}

/** Ajv with the whole document as one schema resource, so `#/components/schemas/...` resolves as in the document. */
function createAjv(): Ajv2020 {
  const ajv = new Ajv2020({ allErrors: true, strict: true, allowUnionTypes: true });
  addFormats(ajv);
  // The document's own members (openapi, info, paths...) are not JSON Schema keywords: declared, so strict mode lets them be.
  for (const keyword of Object.keys(document)) ajv.addKeyword(keyword);
  ajv.addSchema({ ...document, $id: DOCUMENT_ID });
  return ajv;
}

const ajv = createAjv();
const validators = new Map<string, ValidateFunction>();

function pointerTo(...segments: string[]): string {
  return `#/${segments.map((segment) => segment.replaceAll('~', '~0').replaceAll('/', '~1')).join('/')}`;
}

/** A validator for the schema at a JSON Pointer into the document. */
export function validatorAt(pointer: string): ValidateFunction {
  let validate = validators.get(pointer);
  if (validate === undefined) {
    validate = ajv.compile({ $ref: `${DOCUMENT_ID}${pointer}` });
    validators.set(pointer, validate);
  }
  return validate;
}

/** The operation a request went to, by a path template (`/clients/{client_id}`) or a concrete path, with or without /admin/v1 and a query. */
export function findOperation(method: string, path: string): { template: string; operation: OperationObject | undefined } | undefined {
  let bare = path.split(/[?#]/, 1)[0] ?? '';
  if (bare === PREFIX || bare.startsWith(`${PREFIX}/`)) bare = bare.slice(PREFIX.length);
  const segments = bare.split('/');
  // Literal segments win over parameters (`/keys/rotate` before a `/keys/{kid}`), as in the router.
  const candidates = Object.keys(document.paths)
    .map((template) => ({ template, parts: template.split('/') }))
    .filter(({ parts }) => parts.length === segments.length)
    .filter(({ parts }) => parts.every((part, index) => part === segments[index] || (/^\{[^}]+\}$/.test(part) && segments[index] !== '')))
    .sort((a, b) => a.parts.filter((part) => part.startsWith('{')).length - b.parts.filter((part) => part.startsWith('{')).length);
  const match = candidates[0];
  if (match === undefined) return undefined;
  return { template: match.template, operation: document.paths[match.template]?.[method.toLowerCase()] };
}

function resolveResponse(response: ResponseObject): ResponseObject {
  if (response.$ref === undefined) return response;
  const name = response.$ref.replace('#/components/responses/', '');
  const target = document.components.responses[name];
  if (target === undefined) throw new Error(`unresolvable response reference ${response.$ref}`);
  return { ...target, ...(response.description === undefined ? {} : { description: response.description }) };
}

function show(value: unknown): string {
  const text = JSON.stringify(value);
  return text === undefined ? 'undefined' : text.length > 200 ? `${text.slice(0, 200)}…` : text;
}

/** JSON Pointer lookup in the body, to show each failing value next to its error. */
function valueAt(body: unknown, instancePath: string): unknown {
  let value = body;
  for (const segment of instancePath.split('/').slice(1)) {
    const key = segment.replaceAll('~1', '/').replaceAll('~0', '~');
    value = typeof value === 'object' && value !== null ? (value as Record<string, unknown>)[key] : undefined;
  }
  return value;
}

function describeErrors(errors: readonly ErrorObject[], body: unknown): string {
  return errors
    .map((error) => {
      const where = error.instancePath === '' ? '(body)' : error.instancePath;
      const extra =
        error.keyword === 'additionalProperties'
          ? ` "${String(error.params['additionalProperty'])}"`
          : error.keyword === 'enum'
            ? ` ${show(error.params['allowedValues'])}`
            : '';
      return `  ${where}: ${error.message ?? error.keyword}${extra} (schema ${error.schemaPath}); got ${show(valueAt(body, error.instancePath))}`;
    })
    .join('\n');
}

export class ContractViolation extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ContractViolation';
  }
}

/**
 * Throws unless `status` is documented for the operation and `body` (the parsed JSON, or undefined
 * when there is none) is valid against that response's schema. A request to a path or method the
 * document does not have may only be answered with a 404 or 405 problem.
 */
export function assertMatchesContract(method: string, path: string, status: number, body: unknown, contentType?: string): void {
  const label = `${method.toUpperCase()} ${path} → ${status}`;
  const found = findOperation(method, path);
  if (found?.operation === undefined) {
    const expected = found === undefined ? 404 : 405;
    if (status !== expected) {
      throw new ContractViolation(
        `${label}: ${found === undefined ? 'no documented path matches' : `${method.toUpperCase()} is not documented for ${found.template}`}, so only ${expected} is expected`,
      );
    }
    checkBody(label, pointerTo('components', 'schemas', 'Problem'), body);
    return;
  }
  const { template, operation } = found;
  const documented = operation.responses[String(status)];
  if (documented === undefined) {
    throw new ContractViolation(
      `${label}: status ${status} is not documented for ${method.toUpperCase()} ${template} (${operation.operationId}); documented: ${Object.keys(operation.responses).join(', ')}`,
    );
  }
  const response = resolveResponse(documented);
  const mediaTypes = Object.keys(response.content ?? {});
  if (mediaTypes.length === 0) {
    if (body !== undefined && body !== '') throw new ContractViolation(`${label}: documented without a body, got ${show(body)}`);
    return;
  }
  if (contentType !== undefined) {
    const type = contentType.split(';', 1)[0]?.trim().toLowerCase();
    if (type === undefined || !mediaTypes.includes(type)) {
      throw new ContractViolation(`${label}: Content-Type ${contentType} is not documented (documented: ${mediaTypes.join(', ')})`);
    }
  }
  const mediaType = contentType === undefined ? (mediaTypes[0] as string) : (contentType.split(';', 1)[0] as string).trim().toLowerCase();
  const pointer =
    documented.$ref === undefined
      ? pointerTo('paths', template, method.toLowerCase(), 'responses', String(status), 'content', mediaType, 'schema')
      : `${documented.$ref}/content/${mediaType.replaceAll('~', '~0').replaceAll('/', '~1')}/schema`;
  checkBody(label, pointer, body);
  if (mediaType === 'application/problem+json' && (body as { status?: unknown }).status !== status) {
    throw new ContractViolation(`${label}: the problem's status ${show((body as { status?: unknown }).status)} is not the response status`);
  }
}

function checkBody(label: string, pointer: string, body: unknown): void {
  const validate = validatorAt(pointer);
  if (!validate(body)) {
    throw new ContractViolation(`${label}: the body does not match the documented schema (${pointer}):\n${describeErrors(validate.errors ?? [], body)}\nbody: ${show(body)}`);
  }
}
