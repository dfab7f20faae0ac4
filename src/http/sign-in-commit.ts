import type { Middleware } from 'koa';
import type { RequestWrites } from '../db/request-writes.js';

/**
 * The requests of a sign-in that write several rows commit them once (src/db/request-writes.ts,
 * performance issue 23): the login form, POST /interaction/:uid/login (the audit event, the
 * throttle, the finished interaction), and the authorization endpoint's resume, GET /auth/:uid
 * (the interaction spent, the grant, the code, the session). The commit happens here, after the
 * page or the provider has answered and before Koa sends that answer.
 *
 * Only routes that answer through Koa can be here: a step that writes the response itself
 * (provider.interactionFinished with ctx.respond = false, as consent and abort do) would send the
 * browser on before the commit.
 */
const TOGETHER: readonly { readonly method: string; readonly path: RegExp }[] = [
  { method: 'POST', path: /^\/interaction\/[^/]+\/login$/ },
  // oidc-provider's resume route (its default `/auth/:uid`, which page-rate-limit.ts counts too).
  { method: 'GET', path: /^\/auth\/[^/]+$/ },
];

export function commitSignInWritesTogether(writes: RequestWrites): Middleware {
  return async function commitSignInWrites(ctx, next) {
    const together = TOGETHER.some((route) => route.method === ctx.method && route.path.test(ctx.path));
    if (!together) {
      await next();
      return;
    }
    try {
      await writes.run(() => next());
    } catch (error) {
      // Nothing this request wrote is stored: the browser must not be sent on with a code or a session it names.
      ctx.remove('Location');
      throw error;
    }
  };
}
