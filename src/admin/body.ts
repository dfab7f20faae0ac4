import type { Middleware } from 'koa';
import getRawBody from 'raw-body';
import { ProblemError } from './problem.js';

/** The largest admin API request body. */
export const BODY_LIMIT = '64kb';

/**
 * JSON bodies for the admin API only (a global body parser in front of oidc-provider would
 * break it). Sets `ctx.state.body`; non-JSON content is a 415, broken JSON a 400, big a 413.
 */
export function jsonBody(): Middleware {
  return async function readJsonBody(ctx, next) {
    if (!['POST', 'PUT', 'PATCH'].includes(ctx.method)) {
      await next();
      return;
    }
    const hasBody = ctx.request.length > 0 || ctx.get('Transfer-Encoding') !== '';
    if (!hasBody) {
      ctx.state['body'] = undefined;
      await next();
      return;
    }
    if (ctx.is('application/json', 'application/merge-patch+json') === false) {
      throw new ProblemError('unsupported_media_type', 'Send the body as application/json.');
    }
    let text: string;
    try {
      text = await getRawBody(ctx.req, { limit: BODY_LIMIT, encoding: 'utf-8', length: ctx.get('Content-Length') || undefined });
    } catch (error) {
      const type = (error as { type?: string }).type;
      if (type === 'entity.too.large') throw new ProblemError('payload_too_large', `The body exceeds ${BODY_LIMIT}.`);
      throw new ProblemError('malformed_body', 'The body could not be read.');
    }
    try {
      ctx.state['body'] = text.trim() === '' ? undefined : (JSON.parse(text) as unknown);
    } catch {
      throw new ProblemError('malformed_body', 'The body is not valid JSON.');
    }
    await next();
  };
}
