import { randomUUID } from 'node:crypto';
import type { Middleware } from 'koa';

// Honour a caller's id only when it is short and plain, so it cannot inject into logs or headers.
const ACCEPTABLE = /^[A-Za-z0-9._:-]{1,128}$/;

export function requestId(): Middleware {
  return async function assignRequestId(ctx, next) {
    const incoming = ctx.get('X-Request-Id');
    const id = ACCEPTABLE.test(incoming) ? incoming : randomUUID();
    ctx.state.requestId = id;
    ctx.set('X-Request-Id', id);
    await next();
  };
}
