import type { Middleware, ParameterizedContext } from 'koa';
import type { Logger } from 'pino';
import { z } from 'zod';
import { InvalidTextError, isUnavailable } from '../db/database.js';
import { ManagementError, type FieldError } from '../management/errors.js';

/**
 * RFC 9457 problem details for the admin API. Kept apart from the protocol endpoints'
 * RFC 6749 errors (each front door maps errors once, docs/architecture.md). Nothing above 499 exposes internals.
 */

export type ProblemCode =
  | 'validation_failed'
  | 'malformed_body'
  | 'unsupported_media_type'
  | 'payload_too_large'
  | 'unauthorized'
  | 'forbidden'
  | 'not_found'
  | 'conflict'
  | 'precondition_failed'
  | 'method_not_allowed'
  | 'service_unavailable'
  | 'internal_error';

const TITLES: Record<ProblemCode, [number, string]> = {
  validation_failed: [400, 'Validation failed'],
  malformed_body: [400, 'Malformed request body'],
  unsupported_media_type: [415, 'Unsupported media type'],
  payload_too_large: [413, 'Payload too large'],
  unauthorized: [401, 'Unauthorized'],
  forbidden: [403, 'Forbidden'],
  not_found: [404, 'Not found'],
  conflict: [409, 'Conflict'],
  precondition_failed: [412, 'Precondition failed'],
  method_not_allowed: [405, 'Method not allowed'],
  service_unavailable: [503, 'Service unavailable'],
  internal_error: [500, 'Internal server error'],
};

const PROBLEM_CODES = Object.keys(TITLES) as ProblemCode[];

export function problemType(code: ProblemCode): string {
  return `urn:gatehouse:problem:${code.replaceAll('_', '-')}`;
}

export const fieldError = z
  .object({
    pointer: z.string().describe('JSON Pointer (RFC 6901) into the request body or query, as a URI fragment, e.g. `#/redirect_uris/0`; `#` is the whole.'),
    detail: z.string(),
  })
  .describe('What is wrong with one field.');


/** The body of every admin API error (RFC 9457 problem details); `writeProblem` is typed by it. */
export const problemResponse = z
  .object({
    type: z.enum(PROBLEM_CODES.map(problemType) as [string, ...string[]]).describe('What went wrong, as a stable URN to switch on.'),
    title: z.string().describe('A short summary of the type.'),
    status: z.number().int().min(400).max(599).describe('The HTTP status code.'),
    detail: z.string().describe('What went wrong in this request, for a person.'),
    errors: z.array(fieldError).optional().describe('Field-level validation errors (400 validation-failed, and 409 on a field that clashes).'),
    client_ids: z
      .array(z.string())
      .optional()
      .describe('The clients that still name a resource server in allowed_resources (409 on deleting it).'),
    request_id: z.string().optional().describe('The X-Request-Id of the request, to find it in the logs.'),
  })
  .describe('RFC 9457 problem details.');

export type ProblemResponse = z.infer<typeof problemResponse>;

/** Extension members a problem may carry besides `errors`. */
export type ProblemExtra = Pick<ProblemResponse, 'client_ids'>;

export class ProblemError extends Error {
  readonly code: ProblemCode;
  readonly status: number;
  readonly errors: readonly FieldError[] | undefined;
  readonly extra: ProblemExtra | undefined;

  constructor(code: ProblemCode, detail: string, options: { errors?: readonly FieldError[]; extra?: ProblemExtra } = {}) {
    super(detail);
    this.name = 'ProblemError';
    this.code = code;
    this.status = TITLES[code][0];
    this.errors = options.errors;
    this.extra = options.extra;
  }
}

export function writeProblem(ctx: ParameterizedContext, error: ProblemError): void {
  ctx.status = error.status;
  ctx.type = 'application/problem+json';
  const body: ProblemResponse = {
    type: problemType(error.code),
    title: TITLES[error.code][1],
    status: error.status,
    detail: error.message,
    ...(error.errors === undefined ? {} : { errors: [...error.errors] }),
    ...error.extra,
    ...(ctx.state.requestId === undefined ? {} : { request_id: ctx.state.requestId }),
  };
  ctx.body = body;
}

/** Every admin API error becomes problem+json; unexpected ones are logged and hidden. */
export function problemErrors(logger: Logger): Middleware {
  return async function adminProblemBoundary(ctx, next) {
    try {
      await next();
      if (ctx.status === 404 && ctx.body === undefined) {
        writeProblem(ctx, new ProblemError('not_found', 'No such admin API resource.'));
      } else if (ctx.status === 405 && (ctx.body === undefined || typeof ctx.body === 'string')) {
        writeProblem(ctx, new ProblemError('method_not_allowed', `${ctx.method} is not allowed here.`));
      }
    } catch (error) {
      if (error instanceof ProblemError) return writeProblem(ctx, error);
      // The one mapping of the management services' domain errors to problem+json.
      if (error instanceof ManagementError) {
        const extra = error.clientIds === undefined ? {} : { extra: { client_ids: [...error.clientIds] } };
        return writeProblem(ctx, new ProblemError(error.code, error.message, { ...(error.errors === undefined ? {} : { errors: error.errors }), ...extra }));
      }
      if (error instanceof InvalidTextError) return writeProblem(ctx, new ProblemError('validation_failed', 'Input must not contain NUL characters or unpaired surrogates.'));
      if (isUnavailable(error)) {
        ctx.set('Retry-After', '5');
        return writeProblem(ctx, new ProblemError('service_unavailable', 'The database is unavailable; retry shortly.'));
      }
      logger.error({ err: error, reqId: ctx.state.requestId }, 'admin API error');
      writeProblem(ctx, new ProblemError('internal_error', 'An unexpected error occurred.'));
    }
  };
}
