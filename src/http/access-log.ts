import type { Context } from 'koa';
import type { Logger } from 'pino';
import { routeLabel } from './metrics.js';

/**
 * One JSON line per request (SPEC §6). Logs the path without its query string (which can carry
 * id_token_hint and other tokens) and no headers or bodies, so nothing secret can reach it.
 */

/** `ctx.state.log`: a logger child with the request id, made on first use (most requests never log but their line). */
export function attachRequestLogger(ctx: Context, logger: Logger, requestId: string): void {
  let child: Logger | undefined;
  Object.defineProperty(ctx.state, 'log', { configurable: true, enumerable: true, get: () => (child ??= logger.child({ reqId: requestId })) });
}

/** The request's line, once it is answered. */
export function logRequestLine(ctx: Context, logger: Logger, requestId: string, ms: number): void {
  // Nothing is built (not even the peer address) for a line the level drops.
  if (!logger.isLevelEnabled(ctx.status >= 500 ? 'warn' : 'info')) return;
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
