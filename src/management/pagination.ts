import { z } from 'zod';
import { ValidationFailed } from './errors.js';

/** SPEC §5: `?limit=` (default 50, max 200) and an opaque `?cursor=`. */
export const DEFAULT_LIMIT = 50;
export const MAX_LIMIT = 200;

export const pageQuery = {
  limit: z.coerce
    .number({ error: 'limit must be a number' })
    .int('limit must be an integer')
    .min(1, 'limit must be at least 1')
    .max(MAX_LIMIT, `limit must be at most ${MAX_LIMIT}`)
    .default(DEFAULT_LIMIT)
    .describe(`Items per page (at most ${MAX_LIMIT}).`),
  cursor: z.string().max(200).describe('The `next_cursor` of the previous page; omit it for the first page.').optional(),
};

/** The query of a list without filters. */
export const listQuery = z.object(pageQuery);

/** A page of a list, as every list endpoint answers it (`Page<T>` as a schema, for the OpenAPI document). */
export function pageOf<T extends z.ZodType>(item: T) {
  return z.object({
    items: z.array(item),
    next_cursor: z.string().nullable().describe('Pass as `?cursor=` for the next page; null on the last page.'),
  });
}

export interface Page<T> {
  readonly items: T[];
  readonly next_cursor: string | null;
}

export function encodeCursor(position: string): string {
  return Buffer.from(JSON.stringify({ p: position })).toString('base64url');
}

/** The cursor's position, or a 400 when it was not made by us. */
export function decodeCursor(cursor: string | undefined, valid: RegExp = /^\d+$/): string | undefined {
  if (cursor === undefined) return undefined;
  try {
    const { p } = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as { p?: unknown };
    if (typeof p === 'string' && valid.test(p)) return p;
  } catch {
    // fall through
  }
  throw new ValidationFailed('The cursor is invalid.', { errors: [{ pointer: '#/cursor', detail: 'not a cursor from this API' }] });
}

/** Builds a page from `limit + 1` fetched rows: the extra row only says there is more. */
export function toPage<R, T>(rows: readonly R[], limit: number, position: (row: R) => string, present: (row: R) => T): Page<T> {
  const items = rows.slice(0, limit);
  const last = items.at(-1);
  return {
    items: items.map(present),
    next_cursor: rows.length > limit && last !== undefined ? encodeCursor(position(last)) : null,
  };
}
