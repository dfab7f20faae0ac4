import type { Next, ParameterizedContext } from 'koa';
import type { Client, Interaction, InteractionResults, Provider } from 'oidc-provider';
import type { Logger } from 'pino';
import { ACCOUNT_CLIENT_ID, ACCOUNT_PASSKEYS_PATH } from '../oidc/account-client.js';
import { ACR_MFA, ACR_PASSWORD } from '../oidc/accounts.js';
import type { ProviderHost } from '../oidc/provider-host.js';
import { DEVICE_COOKIE } from '../sign-in/device-cookies.js';
import type { PendingFederation, SecondFactorAttempt, SignInRequest } from '../sign-in/index.js';
import type { Views } from '../views.js';
import type { Csrf } from '../http/csrf.js';
import { readForm } from '../http/form.js';
import { PASSKEY_PAGE_CONTENT_SECURITY_POLICY } from '../http/security-headers.js';
import { PageError } from './page-errors.js';

/**
 * What a hosted page's steps learn, in the order they run: each field is set by the step named
 * beside it, and a page lists that step before any step that reads the field (as oidc-provider's
 * actions do with ctx.oidc).
 */
export interface PageState {
  /** Set by src/http/request-id.ts and access-log.ts. */
  readonly requestId?: string;
  readonly log?: Logger;
  /** loadInteraction: the provider that read it, the uid in the URL, the interaction. */
  provider: Provider;
  uid: string;
  interaction: Interaction;
  /** checkForm */
  form: Record<string, string>;
  /** findClient: looked up once; its name is on the page, its require_mfa decides the second factor. */
  client: Client | undefined;
  clientName: string;
}

export type PageContext<S = unknown> = ParameterizedContext<PageState & S>;
export type Step<S = unknown> = (ctx: PageContext<S>, next: Next) => Promise<void>;

export interface PageKitDeps {
  /** Form actions and redirects start with it, whatever Host a request carried (SPEC §1). */
  readonly issuer: string;
  readonly providers: ProviderHost;
  readonly views: Views;
  readonly csrf: Csrf;
  /** SPEC §4: false for an issuer on an IP address; the pages then say passkeys are unavailable. */
  readonly passkeysAvailable?: boolean;
}

// The sign-in in progress, in the interaction's own `result` (the provider replaces it when the interaction finishes).
const PENDING_KEY = 'gatehouse_pending';
// A sign-in at an upstream provider in progress (SPEC §10): what its callback must find again.
const FEDERATION_KEY = 'gatehouse_federation';

export function createPageKit(deps: PageKitDeps) {
  /** A hosted page's absolute URL (SPEC §1: advertised URLs start with ISSUER). */
  const pageUrl = (uid: string, step = '') => `${deps.issuer}/interaction/${encodeURIComponent(uid)}${step}`;

  /** `data.passkeyScript`: the page loads the passkey script (SPEC §4), so its CSP allows script from Gatehouse. */
  function render(ctx: ParameterizedContext, template: string, data: Record<string, unknown>, status = 200): void {
    ctx.status = status;
    ctx.type = 'html';
    if (data['passkeyScript'] === true) ctx.set('Content-Security-Policy', PASSKEY_PAGE_CONTENT_SECURITY_POLICY);
    ctx.body = deps.views.render(template, data);
  }

  /** The fields every form carries: where "cancel" posts, and the CSRF token bound to the interaction. */
  const formFields = (uid: string) => ({ abortAction: pageUrl(uid, '/abort'), csrf: deps.csrf.tokenFor(uid) });
  const csrfToken = (uid: string) => deps.csrf.tokenFor(uid);

  async function loadInteraction(ctx: PageContext, next: Next): Promise<void> {
    ctx.state.provider = deps.providers.current();
    ctx.state.uid = (ctx['params'] as Record<string, string>)['uid'] ?? '';
    ctx.state.interaction = await ctx.state.provider.interactionDetails(ctx.req, ctx.res);
    await next();
  }

  /** Reads the form and checks its CSRF token against the interaction in the URL. */
  async function checkForm(ctx: PageContext, next: Next): Promise<void> {
    const form = await readForm(ctx);
    if (!deps.csrf.verify(ctx.state.uid, form['csrf'])) {
      throw new PageError(403, 'Request refused', 'This form has expired or did not come from this page. Go back to the application and start again.');
    }
    ctx.state.form = form;
    await next();
  }

  async function findClient(ctx: PageContext, next: Next): Promise<void> {
    const clientId = ctx.state.interaction.params['client_id'];
    ctx.state.client = typeof clientId === 'string' ? await deps.providers.current().Client.find(clientId) : undefined;
    ctx.state.clientName = ctx.state.client?.clientName ?? (typeof clientId === 'string' ? clientId : 'the application');
    await next();
  }

  /** The request as the sign-in steps see it. */
  function signInRequest(ctx: PageContext): SignInRequest {
    return {
      clientIp: ctx.ip,
      requestId: typeof ctx.state.requestId === 'string' ? ctx.state.requestId : null,
      logger: ctx.state.log,
      // Signed by deviceCookies itself, not by Koa's `.sig` companion cookie.
      deviceCookie: ctx.cookies.get(DEVICE_COOKIE, { signed: false }),
    };
  }

  /** The sign-in waiting for its second factor, if any. */
  function attemptOf(interaction: Interaction): SecondFactorAttempt | undefined {
    const value = interaction.result?.[PENDING_KEY] as SecondFactorAttempt | undefined;
    return typeof value?.accountId === 'string' && typeof value.attemptId === 'string' ? value : undefined;
  }

  async function saveAttempt(interaction: Interaction, attempt: SecondFactorAttempt | undefined): Promise<void> {
    interaction.result = attempt === undefined ? {} : { [PENDING_KEY]: attempt };
    await interaction.persist();
  }

  /**
   * `first`: the first factor (RFC 8176: a password, or `fed` for an upstream provider);
   * `secondFactor`: the second factor's methods (`otp`, or a passkey's `hwk`/`swk` and `user`), none without one.
   */
  async function finishSignIn(ctx: PageContext, accountId: string, secondFactor: readonly string[], first: 'pwd' | 'fed' = 'pwd'): Promise<void> {
    await completeLogin(ctx, ctx.state.interaction, { accountId, amr: [first, ...secondFactor], mfa: secondFactor.length > 0 });
  }

  /** Ends the login prompt of `interaction` (which this request read) and sends the browser on. */
  async function completeLogin(ctx: ParameterizedContext, interaction: Interaction, login: { accountId: string; amr: readonly string[]; mfa: boolean }): Promise<void> {
    interaction.result = {
      login: { accountId: login.accountId, amr: [...login.amr], acr: login.mfa ? ACR_MFA : ACR_PASSWORD, remember: true },
    } satisfies InteractionResults;
    // What provider.interactionFinished(..., { mergeWithLastSubmission: false }) does, without
    // reading the interaction again: this request read it (and checked its cookie and session).
    await interaction.persist();
    ctx.status = 303;
    ctx.redirect(interaction.returnTo);
  }

  function federationOf(interaction: Interaction): PendingFederation | undefined {
    const value = interaction.result?.[FEDERATION_KEY] as PendingFederation | undefined;
    return typeof value?.providerId === 'string' && typeof value.state === 'string' && typeof value.nonce === 'string' && typeof value.codeVerifier === 'string' ? value : undefined;
  }

  async function saveFederation(interaction: Interaction, pending: PendingFederation): Promise<void> {
    interaction.result = { [FEDERATION_KEY]: pending };
    await interaction.persist();
  }

  /**
   * SPEC §4: where a person manages their own passkeys (src/account), linked from the login and
   * recovery-codes pages; undefined without passkeys, or when this sign-in is for that page itself.
   */
  function accountUrl(interaction: Interaction): string | undefined {
    if (deps.passkeysAvailable !== true || interaction.params['client_id'] === ACCOUNT_CLIENT_ID) return undefined;
    return `${deps.issuer}${ACCOUNT_PASSKEYS_PATH}`;
  }

  return { passkeysAvailable: deps.passkeysAvailable === true, accountUrl, pageUrl, render, formFields, csrfToken, loadInteraction, checkForm, findClient, signInRequest, attemptOf, saveAttempt, finishSignIn, completeLogin, federationOf, saveFederation };
}

export type PageKit = ReturnType<typeof createPageKit>;
