import compose from 'koa-compose';
import type { Next } from 'koa';
import type { InteractionResults } from 'oidc-provider';
import { PageError } from '../page-errors.js';
import type { PageContext, PageKit } from '../page-kit.js';

/** "Cancel" on any hosted page: POST /interaction/:uid/abort ends the request with access_denied. */
export function abortPage(kit: PageKit) {
  async function requireSameInteraction(ctx: PageContext, next: Next) {
    if (ctx.state.interaction.uid !== ctx.state.uid) throw new PageError(400, 'Request refused', 'This sign-in step is already complete.');
    await next();
  }

  async function cancelInteraction(ctx: PageContext) {
    const result: InteractionResults = { error: 'access_denied', error_description: 'The person cancelled the request.' };
    await ctx.state.provider.interactionFinished(ctx.req, ctx.res, result, { mergeWithLastSubmission: false });
    ctx.respond = false;
  }

  return {
    submit: compose<PageContext>([kit.loadInteraction, requireSameInteraction, kit.checkForm, cancelInteraction]),
  };
}
