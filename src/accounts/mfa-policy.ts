import { ACR_MFA } from '../oidc/accounts.js';

/**
 * SPEC §4: a second factor is required when the user has `mfa_required`, the client has
 * `require_mfa`, or the request asks `acr_values=urn:gatehouse:acr:mfa`; and always once the
 * user has enrolled a factor (an enrolled factor is never skipped).
 */
export function secondFactorRequired(input: {
  readonly userRequiresMfa: boolean;
  readonly clientRequiresMfa: boolean;
  readonly acrValues: unknown;
  readonly enrolled: boolean;
}): boolean {
  const requested = typeof input.acrValues === 'string' && input.acrValues.split(' ').includes(ACR_MFA);
  return input.userRequiresMfa || input.clientRequiresMfa || requested || input.enrolled;
}
