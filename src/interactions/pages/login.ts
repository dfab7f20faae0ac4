import compose from 'koa-compose';
import type { Next } from 'koa';
import type { PasswordSignIn, PasswordSignInOutcome } from '../../sign-in/password-sign-in.js';
import type { FederationChoice } from '../../sign-in/index.js';
import { PageError } from '../page-errors.js';
import type { PageContext, PageKit } from '../page-kit.js';
import { requiresMfa } from '../../oidc/clients.js';

/** The login page (SPEC §4): username and password, posted to POST /interaction/:uid/login. */

// One message for every failure, so nothing tells whether a username exists or is locked (SPEC §4).
export const SIGN_IN_FAILED = 'Sign-in failed. Check your username and password. After several failed attempts, wait a few minutes before trying again.';

interface LoginState {
  /** readCredentials */
  username: string;
  password: string;
  /** signInWithPassword */
  outcome: PasswordSignInOutcome;
}

type LoginContext = PageContext<LoginState>;

export function renderLogin(kit: PageKit, ctx: PageContext, view: { username?: string; error?: string; providers?: readonly FederationChoice[] }, status = 200): void {
  const { uid, clientName } = ctx.state;
  kit.render(
    ctx,
    'login',
    {
      title: 'Sign in',
      clientName,
      action: kit.pageUrl(uid, '/login'),
      ...kit.formFields(uid),
      username: view.username ?? '',
      error: view.error,
      // SPEC §10: a button per enabled identity provider.
      providers: view.providers ?? [],
      federateAction: kit.pageUrl(uid, '/federate'),
      // SPEC §4: "Sign in with a passkey" and the browser's offer in the username field (with the script).
      passkeyScript: kit.passkeysAvailable,
      passkeyOptionsAction: kit.pageUrl(uid, '/passkey/options'),
      passkeySignInAction: kit.pageUrl(uid, '/passkey/sign-in'),
      accountUrl: kit.accountUrl(ctx.state.interaction),
    },
    status,
  );
}

export function loginPage(kit: PageKit, signInWithPassword: PasswordSignIn, choices: () => Promise<FederationChoice[]>) {
  async function requireLoginPrompt(ctx: LoginContext, next: Next) {
    const { interaction, uid } = ctx.state;
    if (interaction.prompt.name !== 'login' || interaction.uid !== uid) throw new PageError(400, 'Request refused', 'This sign-in step is already complete.');
    await next();
  }

  async function readCredentials(ctx: LoginContext, next: Next) {
    const username = (ctx.state.form['username'] ?? '').slice(0, 256);
    const password = ctx.state.form['password'] ?? '';
    // PostgreSQL text cannot hold U+0000 (no username contains it): refused here, not a failed query.
    if (username.trim() === '' || username.includes('\u0000') || password === '' || password.length > 1024) {
      renderLogin(kit, ctx, { username, error: 'Enter your username and password.' }, 400);
      return;
    }
    ctx.state.username = username;
    ctx.state.password = password;
    await next();
  }

  async function checkPassword(ctx: LoginContext, next: Next) {
    const { interaction, client, username, password } = ctx.state;
    ctx.state.outcome = await signInWithPassword(
      {
        username,
        password,
        clientId: interaction.params['client_id'],
        clientRequiresMfa: requiresMfa(client),
        acrValues: interaction.params['acr_values'],
        interactionExpiresAt: interaction.exp,
      },
      kit.signInRequest(ctx),
    );
    await next();
  }

  async function answerOutcome(ctx: LoginContext) {
    const { outcome, username } = ctx.state;
    switch (outcome.kind) {
      case 'throttled':
        ctx.set('Retry-After', String(outcome.retryAfter));
        renderLogin(kit, ctx, { username, error: SIGN_IN_FAILED, providers: await choices() }, 429);
        return;
      case 'refused':
        renderLogin(kit, ctx, { username, error: SIGN_IN_FAILED, providers: await choices() }, 401);
        return;
      case 'signed_in':
        ctx.append('Set-Cookie', outcome.deviceCookie);
        await kit.finishSignIn(ctx, outcome.accountId, []);
        return;
      case 'second_factor_required':
        // The second-factor page (or enrollment) is what GET /interaction/:uid shows next.
        await kit.saveAttempt(ctx.state.interaction, outcome.attempt);
        ctx.status = 303;
        ctx.redirect(kit.pageUrl(ctx.state.uid));
        return;
    }
  }

  return {
    /** GET /interaction/:uid at the login prompt, with the login_hint filled in. */
    async show(ctx: PageContext): Promise<void> {
      const hint = ctx.state.interaction.params['login_hint'];
      renderLogin(kit, ctx, { username: typeof hint === 'string' ? hint.slice(0, 256) : '', providers: await choices() });
    },
    /** POST /interaction/:uid/login */
    submit: compose<LoginContext>([kit.loadInteraction, requireLoginPrompt, kit.checkForm, kit.findClient, readCredentials, checkPassword, answerOutcome]),
  };
}
