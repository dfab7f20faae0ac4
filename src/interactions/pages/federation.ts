import type { Next, ParameterizedContext } from 'koa';
import type { Interaction, Provider } from 'oidc-provider';
import { requiresMfa } from '../../oidc/clients.js';
import type { FederatedSignIn, PendingFederation } from '../../sign-in/index.js';
import type { ProviderHost } from '../../oidc/provider-host.js';
import { PageError } from '../page-errors.js';
import type { PageContext, PageKit } from '../page-kit.js';

/**
 * Signing in at an upstream identity provider (SPEC §10): the login page's buttons post to
 * POST /interaction/:uid/federate, a `login_hint` in a mapped email domain goes there at once, and
 * the upstream sends the browser back to GET /federation/:id/callback. The callback names the
 * interaction in its `state` (the interaction's cookies are scoped to /interaction), and the
 * state must also match a cookie set when the browser left, so a callback URL handed to another
 * browser signs nobody in. The pending sign-in lives in the interaction, in the database: the
 * callback may land on another instance.
 */

const COOKIE = 'gatehouse.federation';
const COOKIE_MAX_AGE_MS = 30 * 60_000;

const unavailable = () =>
  new PageError(502, 'Sign-in unavailable', 'Your organisation’s identity provider could not be reached. Try again in a moment, or sign in with your password.');
const expired = () => new PageError(400, 'Sign-in expired', 'This sign-in did not come from this browser or has expired. Go back to the application and start again.');

export function federationPages(kit: PageKit, deps: { readonly federation: FederatedSignIn; readonly providers: ProviderHost; /** As the browser sees it (ISSUER's path first). */ readonly cookiePath: string }) {
  /** Sends the browser to the upstream, remembering what its callback must bring back. */
  async function leaveFor(ctx: ParameterizedContext, interaction: Interaction, providerId: string, loginHint?: string): Promise<void> {
    let started: Awaited<ReturnType<FederatedSignIn['begin']>>;
    try {
      started = await deps.federation.begin(providerId, kit.signInRequest(ctx as PageContext), loginHint);
    } catch {
      throw unavailable();
    }
    if (started === undefined) throw new PageError(400, 'Request refused', 'That identity provider is not available.');
    // The interaction's uid travels in state: the callback finds the interaction by it.
    const pending: PendingFederation = { ...started.pending, state: `${interaction.uid}.${started.pending.state}` };
    started.url.searchParams.set('state', pending.state);
    await kit.saveFederation(interaction, pending);
    ctx.cookies.set(COOKIE, pending.state, { signed: true, httpOnly: true, sameSite: 'lax', path: deps.cookiePath, maxAge: COOKIE_MAX_AGE_MS, overwrite: true });
    ctx.status = 303;
    ctx.redirect(started.url.href);
  }

  return {
    /** The login page's buttons. */
    choices: () => deps.federation.choices(),

    /** GET /interaction/:uid at the login prompt: a login_hint in a mapped domain goes straight to its provider. */
    redirectForHint: async (ctx: PageContext): Promise<boolean> => {
      const hint = ctx.state.interaction.params['login_hint'];
      const providerId = await deps.federation.providerForHint(hint);
      if (providerId === undefined) return false;
      await leaveFor(ctx, ctx.state.interaction, providerId, typeof hint === 'string' ? hint : undefined);
      return true;
    },

    /** POST /interaction/:uid/federate (after loadInteraction, checkForm). */
    start: async (ctx: PageContext, next: Next): Promise<void> => {
      const { interaction, uid, form } = ctx.state;
      if (interaction.prompt.name !== 'login' || interaction.uid !== uid) throw new PageError(400, 'Request refused', 'This sign-in step is already complete.');
      await leaveFor(ctx, interaction, form['provider'] ?? '');
      await next();
    },

    /** GET /federation/:id/callback */
    callback: async (ctx: ParameterizedContext): Promise<void> => {
      const providerId = (ctx['params'] as Record<string, string>)['id'] ?? '';
      const state = typeof ctx.query['state'] === 'string' ? ctx.query['state'] : '';
      const uid = state.split('.')[0] ?? '';
      const provider: Provider = deps.providers.current();
      const interaction = uid === '' ? undefined : await provider.Interaction.find(uid);
      const pending = interaction === undefined ? undefined : kit.federationOf(interaction);
      const cookie = ctx.cookies.get(COOKIE, { signed: true });
      const refusal =
        interaction === undefined || pending === undefined ? 'no sign-in is waiting for this callback'
        : pending.providerId !== providerId || pending.state !== state ? 'the callback does not match the sign-in waiting for it'
        : cookie !== state ? 'the callback came to another browser than the one that left'
        : interaction.prompt.name !== 'login' ? 'the sign-in is already complete'
        : undefined;
      if (refusal !== undefined || interaction === undefined || pending === undefined) {
        await deps.federation.refusedCallback(providerId, refusal ?? 'no sign-in is waiting for this callback', kit.signInRequest(ctx as PageContext));
        throw expired();
      }
      ctx.cookies.set(COOKIE, null, { path: deps.cookiePath });

      const clientId = interaction.params['client_id'];
      const client = typeof clientId === 'string' ? await provider.Client.find(clientId) : undefined;
      const outcome = await deps.federation.complete(
        {
          pending,
          callbackUrl: new URL(ctx.originalUrl, 'http://callback.invalid'),
          clientId,
          clientRequiresMfa: requiresMfa(client),
          acrValues: interaction.params['acr_values'],
          interactionExpiresAt: interaction.exp,
        },
        kit.signInRequest(ctx as PageContext),
      );
      switch (outcome.kind) {
        case 'refused':
          await kit.saveAttempt(interaction, undefined);
          throw new PageError(403, 'Sign-in refused', outcome.message);
        case 'second_factor_required':
          await kit.saveAttempt(interaction, outcome.attempt);
          ctx.status = 303;
          ctx.redirect(kit.pageUrl(interaction.uid));
          return;
        case 'signed_in':
          await kit.completeLogin(ctx, interaction, { accountId: outcome.accountId, amr: outcome.amr, mfa: outcome.mfa });
          return;
      }
    },
  };
}
