import compose from 'koa-compose';
import type { Next } from 'koa';
import type { Passkeys } from '../../accounts/passkeys.js';
import type { PasskeySignIn, PasskeySignInOutcome, SecondFactorSignIn } from '../../sign-in/index.js';
import { PageError } from '../page-errors.js';
import type { PageContext, PageKit } from '../page-kit.js';
import { renderLogin } from './login.js';

/**
 * The passkey parts of the hosted pages (SPEC §4) that are not the second-factor page's:
 * POST /interaction/:uid/passkey/options, which views/static/passkeys.js asks for a ceremony's
 * options (its challenge saved for this interaction), and POST /interaction/:uid/passkey/sign-in,
 * "Sign in with a passkey" without a username or password.
 */

export const PASSKEY_SIGN_IN_FAILED = 'Sign-in with a passkey failed. Try again, or sign in with your username and password.';

type Ceremony = 'register' | 'second_factor' | 'sign_in';
const CEREMONIES: ReadonlySet<string> = new Set<Ceremony>(['register', 'second_factor', 'sign_in']);

interface PasskeyState {
  /** readCeremony */
  ceremony: Ceremony;
  /** signInWithPasskey */
  outcome: PasskeySignInOutcome;
}

type PasskeyContext = PageContext<PasskeyState>;

export function passkeyPages(kit: PageKit, deps: { readonly passkeys: Passkeys; readonly signIn: PasskeySignIn; readonly secondFactor: SecondFactorSignIn }) {
  const { passkeys } = deps;

  async function requireAvailable(_ctx: PasskeyContext, next: Next) {
    if (!passkeys.available) throw new PageError(404, 'Not available', 'Passkeys are not available on this server.');
    await next();
  }

  async function readCeremony(ctx: PasskeyContext, next: Next) {
    const ceremony = ctx.state.form['ceremony'] ?? '';
    if (!CEREMONIES.has(ceremony)) throw new PageError(400, 'Request refused', 'Unknown passkey request.');
    ctx.state.ceremony = ceremony as Ceremony;
    await next();
  }

  /** The options for the step the interaction is at, and no other: each ceremony checks its step. */
  async function answerOptions(ctx: PasskeyContext) {
    const { interaction, uid, ceremony } = ctx.state;
    const refused = () => new PageError(400, 'Request refused', 'This sign-in step is not available. Go back to the application and start again.');
    if (interaction.prompt.name !== 'login' || interaction.uid !== uid) throw refused();
    const attempt = kit.attemptOf(interaction);
    let options: unknown;
    if (ceremony === 'sign_in') {
      if (attempt !== undefined) throw refused();
      options = await passkeys.authenticationOptions(uid, 'sign_in');
    } else {
      if (attempt === undefined || attempt.enrolled === true) throw refused();
      const prompt = await deps.secondFactor.prompt(attempt);
      if (ceremony === 'register' && prompt.kind === 'enroll') options = await passkeys.registrationOptions(uid, { id: attempt.accountId, username: attempt.username });
      else if (ceremony === 'second_factor' && prompt.kind === 'code' && prompt.passkey) options = await passkeys.authenticationOptions(uid, 'second_factor', attempt.accountId);
      else throw refused();
    }
    ctx.set('Cache-Control', 'no-store');
    ctx.type = 'json';
    ctx.body = options;
  }

  async function requireLoginPrompt(ctx: PasskeyContext, next: Next) {
    const { interaction, uid } = ctx.state;
    if (interaction.prompt.name !== 'login' || interaction.uid !== uid || kit.attemptOf(interaction) !== undefined) {
      throw new PageError(400, 'Request refused', 'This sign-in step is already complete.');
    }
    await next();
  }

  async function signInWithPasskey(ctx: PasskeyContext, next: Next) {
    const answer = { interactionUid: ctx.state.uid, response: ctx.state.form['response'] ?? '', clientId: ctx.state.interaction.params['client_id'] };
    ctx.state.outcome = await deps.signIn(answer, kit.signInRequest(ctx));
    await next();
  }

  async function answerSignIn(ctx: PasskeyContext) {
    const { outcome } = ctx.state;
    if (outcome.kind === 'refused') {
      renderLogin(kit, ctx, { error: PASSKEY_SIGN_IN_FAILED }, 401);
      return;
    }
    ctx.append('Set-Cookie', outcome.deviceCookie);
    // A passkey with user verification is both factors (SPEC §4): acr urn:gatehouse:acr:mfa.
    await kit.completeLogin(ctx, ctx.state.interaction, { accountId: outcome.accountId, amr: outcome.amr, mfa: true });
  }

  return {
    /** POST /interaction/:uid/passkey/options (form: csrf, ceremony) → the options as JSON. */
    options: compose<PasskeyContext>([requireAvailable, kit.loadInteraction, kit.checkForm, readCeremony, answerOptions]),
    /** POST /interaction/:uid/passkey/sign-in (form: csrf, response) */
    signIn: compose<PasskeyContext>([requireAvailable, kit.loadInteraction, requireLoginPrompt, kit.checkForm, kit.findClient, signInWithPasskey, answerSignIn]),
  };
}
