import type { Logger } from 'pino';
import type { VerifiedToken } from '../verifier/index.js';

/**
 * What Gatehouse's middleware leaves on `ctx.state` for later middleware, typed once for every
 * Koa context (Koa's DefaultState), instead of string-keyed reads cast at each use.
 */
declare module 'koa' {
  interface DefaultState {
    /** X-Request-Id of this request (src/http/request-id.ts). */
    requestId?: string;
    /** The request's child logger, carrying the request id (src/http/access-log.ts). */
    log?: Logger;
    /** The route to label metrics and logs with, when no router matched (rate-limit refusals). */
    routeLabel?: string;
    /** A protocol endpoint failed because the database is unavailable (src/oidc/provider.ts). */
    databaseUnavailable?: boolean;
    /** The admin API's parsed JSON body (src/admin/body.ts). */
    body?: unknown;
    /** The verified access token (src/verifier/middleware.ts, on the admin API). */
    token?: VerifiedToken;
  }
}
