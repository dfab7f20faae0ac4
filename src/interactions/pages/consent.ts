import compose from 'koa-compose';
import type { Next } from 'koa';
import type { Grant, InteractionResults } from 'oidc-provider';
import type { Accounts } from '../../oidc/accounts.js';
import type { ResourceServerRegistry } from '../../oidc/resource-server-registry.js';
import { PageError } from '../page-errors.js';
import type { PageContext, PageKit } from '../page-kit.js';

/** The consent page (SPEC §4): what the application asks for, in words; posted to POST /interaction/:uid/consent. */

const OIDC_SCOPE_WORDS: Record<string, string> = {
  openid: 'Confirm who you are',
  profile: 'See your name and username',
  email: 'See your email address',
  offline_access: 'Keep access while you are away (stay signed in)',
};

interface MissingConsent {
  readonly missingOIDCScope?: string[];
  readonly missingOIDCClaims?: string[];
  readonly missingResourceScopes?: Record<string, string[]>;
}

interface ConsentState {
  /** loadGrant */
  grant: Grant;
}

type ConsentContext = PageContext<ConsentState>;

export function consentPage(kit: PageKit, deps: { readonly resourceServers: ResourceServerRegistry; readonly accounts: Pick<Accounts, 'load'> }) {
  async function requireConsentPrompt(ctx: ConsentContext, next: Next) {
    const { interaction, uid } = ctx.state;
    if (interaction.prompt.name !== 'consent' || interaction.uid !== uid) throw new PageError(400, 'Request refused', 'This sign-in step is already complete.');
    await next();
  }

  /** The grant this consent adds to: the interaction's, or a new one for its account and client. */
  async function loadGrant(ctx: ConsentContext, next: Next) {
    const { interaction, provider } = ctx.state;
    const accountId = interaction.session?.accountId;
    const clientId = interaction.params['client_id'];
    if (accountId === undefined || typeof clientId !== 'string') throw new PageError(400, 'Sign-in expired', 'Sign in again.');
    const grant = interaction.grantId === undefined ? new provider.Grant({ accountId, clientId }) : await provider.Grant.find(interaction.grantId);
    if (grant === undefined) throw new PageError(400, 'Sign-in expired', 'Sign in again.');
    ctx.state.grant = grant;
    await next();
  }

  async function grantWhatIsMissing(ctx: ConsentContext, next: Next) {
    const { grant } = ctx.state;
    const missing = ctx.state.interaction.prompt.details as MissingConsent;
    if (missing.missingOIDCScope !== undefined) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
    if (missing.missingOIDCClaims !== undefined) grant.addOIDCClaims(missing.missingOIDCClaims);
    for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes ?? {})) {
      grant.addResourceScope(indicator, scopes.join(' '));
    }
    await next();
  }

  async function finishConsent(ctx: ConsentContext) {
    const { grant, interaction, provider } = ctx.state;
    const grantId = await grant.save();
    const result: InteractionResults = { consent: interaction.grantId === undefined ? { grantId } : {} };
    await provider.interactionFinished(ctx.req, ctx.res, result, { mergeWithLastSubmission: true });
    ctx.respond = false;
  }

  return {
    /** GET /interaction/:uid at the consent prompt. */
    async show(ctx: PageContext): Promise<void> {
      const { interaction, uid, clientName } = ctx.state;
      const missing = interaction.prompt.details as MissingConsent;
      const items = (missing.missingOIDCScope ?? []).map((scope) => OIDC_SCOPE_WORDS[scope] ?? `Use "${scope}"`);
      for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes ?? {})) {
        const server = await deps.resourceServers.get(indicator);
        const label = server?.row.name ?? indicator;
        for (const scope of scopes) items.push(`Use "${scope}" on ${label}`);
      }
      const accountId = interaction.session?.accountId;
      const user = accountId === undefined ? undefined : await deps.accounts.load(undefined, accountId);
      kit.render(ctx, 'consent', {
        title: 'Allow access',
        clientName,
        items,
        username: user?.username ?? '',
        action: kit.pageUrl(uid, '/consent'),
        ...kit.formFields(uid),
      });
    },
    /** POST /interaction/:uid/consent */
    submit: compose<ConsentContext>([kit.loadInteraction, requireConsentPrompt, kit.checkForm, loadGrant, grantWhatIsMissing, finishConsent]),
  };
}
