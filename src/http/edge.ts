import type { Middleware } from 'koa';
import type { Logger } from 'pino';
import { attachRequestLogger, logRequestLine } from './access-log.js';
import { respondWithError } from './errors.js';
import { recordRequest, type Metrics } from './metrics.js';
import { assignRequestId } from './request-id.js';
import { allowCrossOriginFetches, setSecurityHeaders } from './security-headers.js';

/**
 * The main app's outermost layer, what every request gets, from the outside in: a request id,
 * the request metrics and access log line, the security headers, and the error boundary for
 * anything no handler answered. One middleware calling each module's part, not five nested ones:
 * on the token path the five layers cost about 40 µs a request, a fifth of a token's CPU
 * (bench/README.md, "Around the provider").
 */
export function edge(options: { readonly metrics: Metrics; readonly logger: Logger; readonly hsts: boolean }): Middleware {
  const { metrics, logger } = options;
  return async function edgeOfTheApp(ctx, next) {
    const started = process.hrtime.bigint();
    const requestId = assignRequestId(ctx);
    attachRequestLogger(ctx, logger, requestId);
    try {
      setSecurityHeaders(ctx, options);
      try {
        await next();
      } catch (error) {
        respondWithError(ctx, error, logger);
      }
      allowCrossOriginFetches(ctx);
    } finally {
      const ms = Number(process.hrtime.bigint() - started) / 1e6;
      recordRequest(metrics, ctx, ms / 1000);
      logRequestLine(ctx, logger, requestId, ms);
    }
  };
}
