import { randomUUID } from 'node:crypto';
import type { Context } from 'koa';

// Honour a caller's id only when it is short and plain, so it cannot inject into logs or headers.
const ACCEPTABLE = /^[A-Za-z0-9._:-]{1,128}$/;

/** The request's id: the caller's X-Request-Id when acceptable, else a new one; set on the response too. */
export function assignRequestId(ctx: Context): string {
  const incoming = ctx.get('X-Request-Id');
  const id = ACCEPTABLE.test(incoming) ? incoming : randomUUID();
  ctx.state.requestId = id;
  ctx.set('X-Request-Id', id);
  return id;
}
