import { interactionPolicy, type KoaContextWithOIDC } from 'oidc-provider';
import { secondFactorRequired } from '../accounts/mfa-policy.js';
import type { SecondFactor } from '../accounts/second-factor.js';
import { ACR_MFA, type Accounts } from './accounts.js';
import { requiresMfa } from './clients.js';

const { Check } = interactionPolicy;

/**
 * oidc-provider's default prompts, with one more check on `login`: a session that signed in with
 * a password only is sent back through the login pages when this request needs a second factor
 * (SPEC §4). With `prompt=none` that becomes `login_required` (OIDC Core §3.1.2.6), never a
 * silently weaker acr.
 */
export function interactionPolicyWithSecondFactor(deps: {
  accounts: Accounts;
  /** Not read: the person's row says whether a factor is enrolled (one query less per sign-in). */
  secondFactor?: SecondFactor;
}) {
  const policy = interactionPolicy.base();
  const login = policy.get('login');
  if (login === undefined) throw new Error('oidc-provider has no login prompt');
  login.checks.add(
    new Check('second_factor', 'a second factor is required', 'login_required', async (ctx: KoaContextWithOIDC) => {
      const { session, client, params } = ctx.oidc;
      if (session?.accountId === undefined || session.acr === ACR_MFA) return Check.NO_NEED_TO_PROMPT;
      const user = await deps.accounts.load(ctx, session.accountId);
      if (user === undefined) return Check.NO_NEED_TO_PROMPT;
      const required = secondFactorRequired({
        userRequiresMfa: user.mfa_required,
        clientRequiresMfa: requiresMfa(client),
        acrValues: params?.['acr_values'],
        enrolled: user.mfa_enrolled,
      });
      return required ? Check.REQUEST_PROMPT : Check.NO_NEED_TO_PROMPT;
    }),
  );
  return policy;
}
