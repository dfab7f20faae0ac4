import { METHODS } from 'node:http';
import type { Context, Middleware } from 'koa';
import type { Logger } from 'pino';
import { isUnavailable } from '../db/database.js';

/**
 * Error handling for Gatehouse's own routes (ops, admin API, pages). The provider's protocol
 * endpoints handle their own errors in RFC 6749 format. Nothing above 499 shows internals.
 */
export class HttpError extends Error {
  readonly status: number;
  readonly code: string;
  readonly expose: boolean;

  constructor(status: number, code: string, message: string) {
    super(message);
    this.name = 'HttpError';
    this.status = status;
    this.code = code;
    this.expose = status < 500;
  }
}

/**
 * The methods Gatehouse's routers count as implemented: every one Node's HTTP parser accepts. A
 * method a route lacks is then 405 (RFC 9110 §15.5.6) and an unrouted path stays 404, instead of
 * @koa/router's default 501 for TRACE, PROPFIND and the like: a client's mistake, not a 5xx.
 */
export const ROUTER_METHODS: readonly string[] = METHODS;

function statusOf(error: unknown): number {
  if (isUnavailable(error)) return 503;
  const status = (error as { status?: unknown; statusCode?: unknown }).status ?? (error as { statusCode?: unknown }).statusCode;
  return typeof status === 'number' && status >= 400 && status <= 599 ? status : 500;
}

/** An error no handler answered: its status (500 unless it says otherwise) and a problem+json body without internals. */
export function respondWithError(ctx: Context, error: unknown, logger: Logger): void {
  const status = statusOf(error);
  const { requestId } = ctx.state;
  if (status >= 500 && status !== 503) logger.error({ err: error, reqId: requestId }, 'unhandled error');
  ctx.status = status;
  if (status === 503) ctx.set('Retry-After', '5');
  const exposed = status < 500 && (error as { expose?: unknown }).expose !== false;
  ctx.type = 'application/problem+json';
  ctx.body = {
    type: 'about:blank',
    title: status === 503 ? 'Service Unavailable' : exposed ? (error as Error).message : 'Internal Server Error',
    status,
    ...(requestId === undefined ? {} : { request_id: requestId }),
  };
}

/** As middleware (the management port's app). */
export function handleErrors(logger: Logger): Middleware {
  return async function errorBoundary(ctx, next) {
    try {
      await next();
    } catch (error) {
      respondWithError(ctx, error, logger);
    }
  };
}
