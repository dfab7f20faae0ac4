import Router from '@koa/router';
import compose from 'koa-compose';
import type { Logger } from 'pino';
import { ROUTER_METHODS } from '../http/errors.js';
import { issuerPath } from '../http/issuer-origin.js';
import type { Accounts } from '../oidc/accounts.js';
import type { ResourceServerRegistry } from '../oidc/resource-server-registry.js';
import type { SignIn } from '../sign-in/index.js';
import { PageError, pageErrors } from './page-errors.js';
import { createPageKit, type PageContext, type PageKitDeps } from './page-kit.js';
import { abortPage } from './pages/abort.js';
import { consentPage } from './pages/consent.js';
import { federationPages } from './pages/federation.js';
import { loginPage } from './pages/login.js';
import { passkeyPages } from './pages/passkeys.js';
import { secondFactorPage } from './pages/second-factor.js';

/**
 * The hosted pages (SPEC §4): login, second factor, enrollment and consent for oidc-provider's
 * interactions. Server-rendered, every form carrying a CSRF token bound to the interaction; no
 * script except the passkey script (served from Gatehouse), without which everything else works. Each page is a list of named steps in src/interactions/pages/; the sign-in rules
 * are src/sign-in/'s.
 */
export interface InteractionDeps extends PageKitDeps {
  readonly signIn: SignIn;
  readonly resourceServers: ResourceServerRegistry;
  /** The consent page names who is signed in. */
  readonly accounts: Pick<Accounts, 'load'>;
  readonly logger: Logger;
}

export function interactionRoutes(deps: InteractionDeps): Router {
  const kit = createPageKit({ ...deps, passkeysAvailable: deps.signIn.passkeys.available });
  const federation = federationPages(kit, { federation: deps.signIn.federation, providers: deps.providers, cookiePath: `${issuerPath(deps.issuer)}/federation` });
  const login = loginPage(kit, deps.signIn.password, federation.choices);
  const secondFactor = secondFactorPage(kit, deps.signIn.secondFactor);
  const consent = consentPage(kit, deps);
  const abort = abortPage(kit);
  const passkeys = passkeyPages(kit, { passkeys: deps.signIn.passkeys, signIn: deps.signIn.passkey, secondFactor: deps.signIn.secondFactor });

  /** GET /interaction/:uid: the page for where the interaction stands. */
  async function showCurrentStep(ctx: PageContext) {
    const { interaction } = ctx.state;
    // The interaction the browser's cookie names is the one shown.
    ctx.state.uid = interaction.uid;
    const attempt = kit.attemptOf(interaction);
    if (interaction.prompt.name === 'login' && attempt !== undefined) return secondFactor.show(ctx, attempt);
    if (interaction.prompt.name === 'login') {
      // SPEC §10: a login_hint in a mapped email domain goes straight to its provider.
      if (await federation.redirectForHint(ctx)) return;
      return login.show(ctx);
    }
    if (interaction.prompt.name === 'consent') return consent.show(ctx);
    throw new PageError(400, 'Request refused', 'This sign-in step is not supported.');
  }

  const router = new Router({ methods: [...ROUTER_METHODS] });
  router.use(pageErrors({ logger: deps.logger, render: kit.render }));
  router.get('/interaction/:uid', compose<PageContext>([kit.loadInteraction, kit.findClient, showCurrentStep]));
  router.post('/interaction/:uid/login', login.submit);
  router.post('/interaction/:uid/second-factor', secondFactor.submit);
  // SPEC §4: passkeys, driven by views/static/passkeys.js (the pages work without it).
  router.post('/interaction/:uid/passkey/options', passkeys.options);
  router.post('/interaction/:uid/passkey/sign-in', passkeys.signIn);
  router.post('/interaction/:uid/passkey/verify', secondFactor.submitPasskey);
  router.post('/interaction/:uid/passkey/register', secondFactor.registerPasskey);
  router.post('/interaction/:uid/consent', consent.submit);
  router.post('/interaction/:uid/abort', abort.submit);
  router.post('/interaction/:uid/federate', compose<PageContext>([kit.loadInteraction, kit.checkForm, federation.start]));
  // The upstream's redirect back (SPEC §10): outside /interaction, where the provider's cookies are.
  router.get('/federation/:id/callback', federation.callback);
  return router;
}
