import type { z } from 'zod';

/**
 * What the management services refuse, as domain errors with a code literal.
 * Each front door maps them once: the admin API to RFC 9457 problem+json (src/admin/problem.ts),
 * the CLI to exit codes (src/cli/errors.ts). Nothing here knows HTTP.
 */

export type ManagementErrorCode = 'validation_failed' | 'not_found' | 'conflict' | 'precondition_failed' | 'forbidden';

/** One field that is wrong: a JSON Pointer (RFC 6901) as a URI fragment, e.g. `#/redirect_uris/0`. */
export interface FieldError {
  readonly pointer: string;
  readonly detail: string;
}

export abstract class ManagementError extends Error {
  abstract readonly code: ManagementErrorCode;
  /** Field-level detail: what is invalid, or which field clashes. */
  readonly errors: readonly FieldError[] | undefined;
  /** The clients that still name a resource server (a refused deletion). */
  readonly clientIds: readonly string[] | undefined;

  constructor(detail: string, options: { errors?: readonly FieldError[]; clientIds?: readonly string[] } = {}) {
    super(detail);
    this.name = new.target.name;
    this.errors = options.errors;
    this.clientIds = options.clientIds;
  }
}

export class ValidationFailed extends ManagementError {
  readonly code = 'validation_failed' as const;
}

export class NotFound extends ManagementError {
  readonly code = 'not_found' as const;
}

export class Conflict extends ManagementError {
  readonly code = 'conflict' as const;
}

/** The resource changed since the caller read it (an If-Match that no longer matches). */
export class PreconditionFailed extends ManagementError {
  readonly code = 'precondition_failed' as const;
}

/** The caller lacks a privilege the change needs (SPEC §5, the admin API's own clients). */
export class Forbidden extends ManagementError {
  readonly code = 'forbidden' as const;
}

function pointer(path: readonly PropertyKey[]): string {
  // RFC 6901: the whole document is "" (here "#"); "#/" would name a member called "".
  return `#${path.map((segment) => `/${String(segment).replaceAll('~', '~0').replaceAll('/', '~1')}`).join('')}`;
}

export function fieldErrors(error: z.ZodError): FieldError[] {
  return error.issues.flatMap((issue) =>
    // An unknown field is reported where it is, one error per field, so a client can point at it.
    issue.code === 'unrecognized_keys'
      ? issue.keys.map((key) => ({ pointer: pointer([...issue.path, key]), detail: 'unknown field' }))
      : [{ pointer: pointer(issue.path), detail: issue.message }],
  );
}

/** Parses `value` with `schema`, or throws ValidationFailed listing every field error. */
export function parseOrThrow<S extends z.ZodType>(schema: S, value: unknown, what = 'request body'): z.infer<S> {
  const result = schema.safeParse(value);
  if (!result.success) throw new ValidationFailed(`The ${what} is invalid.`, { errors: fieldErrors(result.error) });
  return result.data;
}
