import type { Middleware } from 'koa';
import type { Logger } from 'pino';
import { routeLabel } from './metrics.js';

/**
 * One JSON line per request (SPEC §6). Logs the path without its query string (which can carry
 * id_token_hint and other tokens) and no headers or bodies, so nothing secret can reach it.
 */
export function accessLog(logger: Logger): Middleware {
  return async function logRequest(ctx, next) {
    const started = process.hrtime.bigint();
    const { requestId } = ctx.state;
    ctx.state.log = logger.child({ reqId: requestId });
    try {
      await next();
    } finally {
      const ms = Number(process.hrtime.bigint() - started) / 1e6;
      const line = {
        reqId: requestId,
        method: ctx.method,
        path: ctx.path,
        route: routeLabel(ctx),
        status: ctx.status,
        ms: Math.round(ms * 100) / 100,
        ip: ctx.ip,
      };
      if (ctx.status >= 500) logger.warn(line, 'request');
      else logger.info(line, 'request');
    }
  };
}
