import type { Middleware } from 'koa';
import getRawBody from 'raw-body';
import { hasLoneSurrogate } from '../db/database.js';
import { ProblemError } from './problem.js';

/** The largest admin API request body. */
export const BODY_LIMIT = '64kb';

class LoneSurrogateError extends Error {}

/**
 * RFC 8259 §8.2: a string with an unpaired surrogate escape ("\ud800") is not Unicode; stored, it
 * would silently become U+FFFD (or fail in jsonb). Refused as malformed, keys included.
 */
function refuseLoneSurrogates(key: string, value: unknown): unknown {
  if (hasLoneSurrogate(key) || (typeof value === 'string' && hasLoneSurrogate(value))) throw new LoneSurrogateError();
  return value;
}

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
      ctx.state.body = undefined;
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
      ctx.state.body = text.trim() === '' ? undefined : (JSON.parse(text, refuseLoneSurrogates) as unknown);
    } catch (error) {
      if (error instanceof LoneSurrogateError) throw new ProblemError('malformed_body', 'The body contains an unpaired surrogate escape (\\uD800-\\uDFFF), which is not Unicode text.');
      throw new ProblemError('malformed_body', 'The body is not valid JSON.');
    }
    await next();
  };
}
