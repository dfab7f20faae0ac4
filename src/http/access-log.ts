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
    // Made on first use: most requests never log anything but the line below.
    let child: Logger | undefined;
    Object.defineProperty(ctx.state, 'log', { configurable: true, enumerable: true, get: () => (child ??= logger.child({ reqId: requestId })) });
    try {
      await next();
    } finally {
      // Nothing is built (not even the peer address) for a line the level drops.
      if (logger.isLevelEnabled(ctx.status >= 500 ? 'warn' : 'info')) writeLine();
    }

    function writeLine(): void {
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
