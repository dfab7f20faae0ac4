import compose from 'koa-compose';
import type { Next } from 'koa';
import type { SecondFactorAttempt, SecondFactorOutcome } from '../../sign-in/index.js';
import type { SecondFactorSignIn } from '../../sign-in/second-factor-sign-in.js';
import { PageError } from '../page-errors.js';
import type { PageContext, PageKit } from '../page-kit.js';
import { renderEnrollment } from './enroll-totp.js';
import { renderLogin } from './login.js';
import { renderRecoveryCodes } from './recovery-codes.js';

/**
 * The second-factor page (SPEC §4): a TOTP or recovery code for an enrolled person, or the
 * enrollment page for one who must enroll; both post to POST /interaction/:uid/second-factor.
 * With the passkey script, a passkey instead: POST /interaction/:uid/passkey/verify (its
 * assertion) and POST /interaction/:uid/passkey/register (enrollment with a passkey).
 */

const WRONG_CODE = 'That code is not right. Enter the current 6-digit code, or a recovery code.';
const PASSKEY_REFUSED = 'That passkey was not accepted. Try again, or enter a code.';
const PASSKEY_NOT_REGISTERED = 'The passkey could not be added. Try again, or set up an authenticator app.';

interface SecondFactorState {
  /** requireSecondFactorStep */
  attempt: SecondFactorAttempt;
  /** checkCode, checkPasskey or registerPasskey */
  outcome: SecondFactorOutcome;
  /** What a refusal says, by what was checked. */
  refusal: string;
}

type SecondFactorContext = PageContext<SecondFactorState>;

export function secondFactorPage(kit: PageKit, signIn: SecondFactorSignIn) {
  /** The code page for an enrolled user, or the enrollment page (QR, link, secret) for one who must enroll. */
  async function show(ctx: PageContext, attempt: SecondFactorAttempt, error?: string, status = 200): Promise<void> {
    const prompt = await signIn.prompt(attempt);
    if (prompt.kind === 'unavailable') throw new PageError(400, 'Request refused', 'Two-step verification could not be set up. Start again.');
    if (prompt.kind === 'enroll') {
      await renderEnrollment(kit, ctx, { secret: prompt.secret, uri: prompt.uri, account: attempt.username, error, passkey: prompt.passkey }, status);
      return;
    }
    const { uid, clientName } = ctx.state;
    kit.render(
      ctx,
      'second-factor',
      {
        clientName,
        action: kit.pageUrl(uid, '/second-factor'),
        ...kit.formFields(uid),
        error,
        title: 'Two-step verification',
        fewRecoveryCodes: prompt.fewRecoveryCodes,
        // "Use a passkey" when the person has one (SPEC §4).
        passkeyScript: prompt.passkey,
        passkeyOptionsAction: kit.pageUrl(uid, '/passkey/options'),
        passkeyAction: kit.pageUrl(uid, '/passkey/verify'),
      },
      status,
    );
  }

  async function requireSecondFactorStep(ctx: SecondFactorContext, next: Next) {
    const { interaction, uid } = ctx.state;
    const attempt = kit.attemptOf(interaction);
    if (interaction.prompt.name !== 'login' || interaction.uid !== uid || attempt === undefined) {
      throw new PageError(400, 'Request refused', 'This sign-in step is not available. Go back to the application and start again.');
    }
    ctx.state.attempt = attempt;
    await next();
  }

  async function checkCode(ctx: SecondFactorContext, next: Next) {
    const code = (ctx.state.form['code'] ?? '').slice(0, 64);
    ctx.state.outcome = await signIn.submit(ctx.state.attempt, code, kit.signInRequest(ctx));
    ctx.state.refusal = WRONG_CODE;
    await next();
  }

  async function checkPasskey(ctx: SecondFactorContext, next: Next) {
    const answer = { interactionUid: ctx.state.uid, response: ctx.state.form['response'] ?? '' };
    ctx.state.outcome = await signIn.submitPasskey(ctx.state.attempt, answer, kit.signInRequest(ctx));
    ctx.state.refusal = PASSKEY_REFUSED;
    await next();
  }

  async function registerPasskey(ctx: SecondFactorContext, next: Next) {
    const answer = { interactionUid: ctx.state.uid, response: ctx.state.form['response'] ?? '', name: (ctx.state.form['name'] ?? '').slice(0, 64) };
    ctx.state.outcome = await signIn.enrollPasskey(ctx.state.attempt, answer, kit.signInRequest(ctx));
    ctx.state.refusal = PASSKEY_NOT_REGISTERED;
    await next();
  }

  /**
   * The database already refuses this attempt's codes; the interaction forgets it so that the page
   * asks for the password again. (A post refused by the count does not save: it must not overwrite
   * what a concurrent, allowed post of the same attempt saved.)
   */
  async function endAttempt(ctx: SecondFactorContext, save: boolean) {
    if (save) await kit.saveAttempt(ctx.state.interaction, undefined);
    renderLogin(kit, ctx, { username: ctx.state.attempt.username, error: 'Too many wrong codes. Sign in again.' }, 401);
  }

  async function answerOutcome(ctx: SecondFactorContext) {
    const { outcome, attempt } = ctx.state;
    switch (outcome.kind) {
      case 'signed_in':
        if (outcome.deviceCookie !== undefined) ctx.append('Set-Cookie', outcome.deviceCookie);
        await kit.finishSignIn(ctx, outcome.accountId, outcome.amr, attempt.federated === true ? 'fed' : 'pwd');
        return;
      case 'enrolled':
        ctx.append('Set-Cookie', outcome.deviceCookie);
        await kit.saveAttempt(ctx.state.interaction, outcome.attempt);
        renderRecoveryCodes(kit, ctx, outcome.recoveryCodes);
        return;
      case 'no_tries_left':
        await endAttempt(ctx, false);
        return;
      case 'throttled':
        ctx.set('Retry-After', String(outcome.retryAfter));
        if (outcome.lastTry) await endAttempt(ctx, true);
        else await show(ctx, attempt, 'Too many failed attempts. Wait a few minutes, then enter a new code.', 429);
        return;
      case 'refused':
        if (outcome.lastTry) await endAttempt(ctx, true);
        else await show(ctx, attempt, ctx.state.refusal, 401);
        return;
    }
  }

  return {
    /** GET /interaction/:uid after a correct password. */
    show,
    /** POST /interaction/:uid/second-factor (also the recovery-codes page's "continue"). */
    submit: compose<SecondFactorContext>([kit.loadInteraction, requireSecondFactorStep, kit.checkForm, kit.findClient, checkCode, answerOutcome]),
    /** POST /interaction/:uid/passkey/verify */
    submitPasskey: compose<SecondFactorContext>([kit.loadInteraction, requireSecondFactorStep, kit.checkForm, kit.findClient, checkPasskey, answerOutcome]),
    /** POST /interaction/:uid/passkey/register */
    registerPasskey: compose<SecondFactorContext>([kit.loadInteraction, requireSecondFactorStep, kit.checkForm, kit.findClient, registerPasskey, answerOutcome]),
  };
}
