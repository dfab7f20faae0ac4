import type { PageContext, PageKit } from '../page-kit.js';

/**
 * The recovery codes, shown once after enrollment is confirmed. Its "continue" posts to
 * POST /interaction/:uid/second-factor, which then completes the sign-in.
 */
export function renderRecoveryCodes(kit: PageKit, ctx: PageContext, codes: readonly string[]): void {
  const { uid, clientName } = ctx.state;
  kit.render(ctx, 'recovery-codes', {
    title: 'Save your recovery codes',
    clientName,
    codes,
    action: kit.pageUrl(uid, '/second-factor'),
    csrf: kit.csrfToken(uid),
    accountUrl: kit.accountUrl(ctx.state.interaction),
  });
}
