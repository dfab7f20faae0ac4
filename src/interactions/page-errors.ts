import type { Middleware, ParameterizedContext } from 'koa';
import { errors } from 'oidc-provider';
import type { Logger } from 'pino';
// Only the data layer's two error kinds, to answer them as the other front doors do (src/http/errors.ts).
import { InvalidTextError, isUnavailable } from '../db/database.js';
import { FormError } from '../http/form.js';

/** An error page with its status: what a page step throws when the request cannot go on. */
export class PageError extends Error {
  constructor(
    readonly status: number,
    readonly title: string,
    message: string,
  ) {
    super(message);
  }
}

/** The hosted pages' one mapping of errors to an error page; nothing above 499 shows internals. */
export function pageErrors(deps: {
  readonly logger: Logger;
  readonly render: (ctx: ParameterizedContext, template: string, data: Record<string, unknown>, status: number) => void;
}): Middleware {
  return async function pageErrors(ctx, next) {
    ctx.set('Cache-Control', 'no-store');
    try {
      await next();
    } catch (error) {
      let page: PageError;
      if (error instanceof PageError) page = error;
      else if (error instanceof errors.SessionNotFound || error instanceof errors.InvalidRequest) {
        page = new PageError(400, 'Sign-in expired', 'This sign-in request has expired or was already completed. Go back to the application and start again.');
      } else if (error instanceof FormError || error instanceof InvalidTextError) {
        page = new PageError(error.status, 'Request refused', 'The form could not be processed. Go back to the application and start again.');
      } else if (isUnavailable(error)) {
        ctx.set('Retry-After', '5');
        page = new PageError(503, 'Temporarily unavailable', 'Sign-in is temporarily unavailable. Please try again in a moment.');
      } else {
        deps.logger.error({ err: error, reqId: ctx.state.requestId }, 'interaction error');
        page = new PageError(500, 'Something went wrong', 'The request could not be completed.');
      }
      deps.render(ctx, 'error', { title: page.title, message: page.message, requestId: ctx.state.requestId }, page.status);
    }
  };
}
