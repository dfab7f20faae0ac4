import type { z } from 'zod';
import type { AdminContext } from '../audit/audit.js';
import type { AdminScope } from '../management/admin-scopes.js';
import type { ManagementServices } from '../management/index.js';

/**
 * The shape of an admin API route table (SPEC §5). Each resource folder lists its routes in a
 * `routes.ts`; src/admin/router.ts registers them and src/admin/openapi.ts documents them, so
 * what is served and what is documented come from one place (as Logto's `koaGuard` does).
 */

export type HttpMethod = 'get' | 'post' | 'patch' | 'delete';

/** The error statuses an operation can answer, each a problem+json response of the document. */
export type ErrorStatus = 400 | 401 | 403 | 404 | 409 | 412 | 413 | 415 | 500 | 503;

/** Errors every authenticated operation can answer. */
export const AUTHENTICATED = [401, 403, 500, 503] as const satisfies readonly ErrorStatus[];
/** Errors of an operation that reads a JSON body (before it is validated). */
export const WITH_BODY = [400, 413, 415] as const satisfies readonly ErrorStatus[];

/** A zod schema under its name in the document's components.schemas. */
export interface NamedSchema<S extends z.ZodType = z.ZodType> {
  readonly name: string;
  readonly schema: S;
  /** Named schemas it contains, documented as components of their own. */
  readonly parts?: readonly NamedSchema[];
}

export function named<S extends z.ZodType>(name: string, schema: S, parts?: readonly NamedSchema[]): NamedSchema<S> {
  return { name, schema, ...(parts === undefined ? {} : { parts }) };
}

/** The services the handlers call: the same ones the CLI drives. */
export interface AdminServices extends ManagementServices {
  /** The OpenAPI document for this issuer (built from these tables). */
  readonly openApiDocument: () => unknown;
}

/** `'/clients/{client_id}/secret'` → `'client_id'`. */
export type PathParamNames<Path extends string> = Path extends `${string}{${infer Name}}${infer Rest}` ? Name | PathParamNames<Rest> : never;

export interface PathParam {
  /**
   * The identifier's shape, for the document only: a path parameter is read as a plain string,
   * because one of another shape names nothing and is answered 404 by the service, not 400.
   */
  readonly schema: z.ZodType;
  readonly description: string;
}

type Output<S> = S extends z.ZodType ? z.output<S> : undefined;
/** What a handler answers: the response body, or nothing for a 204. */
type Reply<R> = R extends z.ZodType ? z.output<R> : void;

/** What a handler receives: its input, validated against the route's schemas, and its caller. */
export interface RouteInput<Path extends string, Q, B> {
  readonly params: Readonly<Record<PathParamNames<Path>, string>>;
  readonly query: Output<Q>;
  readonly body: Output<B>;
  /** The `If-Match` header, for routes that declare `ifMatch` (undefined for the others). */
  readonly ifMatch: string | undefined;
  /** Who is calling, with what privileges: for the audit trail and privilege checks. */
  readonly caller: AdminContext;
}

interface RouteFields<Path extends string, Q extends z.ZodObject | undefined, B extends z.ZodType | undefined, R extends z.ZodType | undefined> {
  /** The handler's name, so a reader (or a profile) can find one from the other. */
  readonly operationId: string;
  readonly method: HttpMethod;
  /** OpenAPI path template, relative to `<issuer>/admin/v1`. */
  readonly path: Path;
  readonly summary: string;
  readonly description?: string;
  /** The scope the route requires; null for the one public operation. */
  readonly scope: AdminScope | null;
  readonly query?: Q;
  readonly body?: {
    readonly schema: NamedSchema<NonNullable<B>>;
    readonly required: boolean;
    readonly example?: unknown;
    /** The schema sees the body as read (undefined when absent); otherwise absent or `null` is read as `{}`. */
    readonly raw?: true;
  };
  /** Optimistic concurrency (RFC 9110 §13.1.1): the handler reads `If-Match`; a stale one is a 412. */
  readonly ifMatch?: true;
  readonly response: {
    readonly status: 200 | 201 | 204;
    readonly description: string;
    readonly schema?: NamedSchema<NonNullable<R>>;
    /** The response carries the resource's version as `ETag` (the one-time secret excluded). */
    readonly etag?: true;
    /** The path of the created resource, relative to the API's root, sent as `Location`. */
    location?(body: Output<R>): string;
    readonly cacheControl?: string;
  };
  /** The problem statuses the route can answer. */
  readonly errors: readonly ErrorStatus[];
  /** What a 409 means for this operation. */
  readonly conflict?: string;
  handler(input: RouteInput<Path, Q, B>, services: AdminServices): Promise<Reply<R>> | Reply<R>;
}

type ParamsField<Path extends string> = [PathParamNames<Path>] extends [never]
  ? { readonly params?: undefined }
  : { readonly params: { readonly [Name in PathParamNames<Path>]: PathParam } };

export type RouteSpec<
  Path extends string,
  Q extends z.ZodObject | undefined,
  B extends z.ZodType | undefined,
  R extends z.ZodType | undefined,
> = RouteFields<Path, Q, B, R> & ParamsField<Path>;

/** A route with its types erased, as the router and the document walk them. */
export type AdminRoute = RouteFields<string, z.ZodObject | undefined, z.ZodType | undefined, z.ZodType | undefined> & {
  readonly params?: Readonly<Record<string, PathParam>>;
};

/** Checks one route's handler against its schemas, then erases the types for the table. */
export function route<Path extends string, Q extends z.ZodObject | undefined = undefined, B extends z.ZodType | undefined = undefined, R extends z.ZodType | undefined = undefined>(
  spec: RouteSpec<Path, Q, B, R>,
): AdminRoute {
  return spec;
}

/** One resource's routes, under the tag that groups them in the document. */
export interface RouteTable {
  readonly tag: { readonly name: string; readonly description: string };
  readonly routes: readonly AdminRoute[];
}
