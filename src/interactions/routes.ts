import Router from '@koa/router';
import compose from 'koa-compose';
import type { Logger } from 'pino';
import { ROUTER_METHODS } from '../http/errors.js';
import type { Accounts } from '../oidc/accounts.js';
import type { ResourceServerRegistry } from '../oidc/resource-server-registry.js';
import type { SignIn } from '../sign-in/index.js';
import { PageError, pageErrors } from './page-errors.js';
import { createPageKit, type PageContext, type PageKitDeps } from './page-kit.js';
import { abortPage } from './pages/abort.js';
import { consentPage } from './pages/consent.js';
import { loginPage } from './pages/login.js';
import { secondFactorPage } from './pages/second-factor.js';

/**
 * The hosted pages (SPEC §4): login, second factor, enrollment and consent for oidc-provider's
 * interactions. Server-rendered, no script, every form carrying a CSRF token bound to the
 * interaction. Each page is a list of named steps in src/interactions/pages/; the sign-in rules
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
  const kit = createPageKit(deps);
  const login = loginPage(kit, deps.signIn.password);
  const secondFactor = secondFactorPage(kit, deps.signIn.secondFactor);
  const consent = consentPage(kit, deps);
  const abort = abortPage(kit);

  /** GET /interaction/:uid: the page for where the interaction stands. */
  async function showCurrentStep(ctx: PageContext) {
    const { interaction } = ctx.state;
    // The interaction the browser's cookie names is the one shown.
    ctx.state.uid = interaction.uid;
    const attempt = kit.attemptOf(interaction);
    if (interaction.prompt.name === 'login' && attempt !== undefined) return secondFactor.show(ctx, attempt);
    if (interaction.prompt.name === 'login') return login.show(ctx);
    if (interaction.prompt.name === 'consent') return consent.show(ctx);
    throw new PageError(400, 'Request refused', 'This sign-in step is not supported.');
  }

  const router = new Router({ prefix: '/interaction', methods: [...ROUTER_METHODS] });
  router.use(pageErrors({ logger: deps.logger, render: kit.render }));
  router.get('/:uid', compose<PageContext>([kit.loadInteraction, kit.findClient, showCurrentStep]));
  router.post('/:uid/login', login.submit);
  router.post('/:uid/second-factor', secondFactor.submit);
  router.post('/:uid/consent', consent.submit);
  router.post('/:uid/abort', abort.submit);
  return router;
}
