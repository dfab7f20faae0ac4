import type { ParameterizedContext } from 'koa';
import type { AdminContext } from '../audit/audit.js';

/** Who is calling the admin API, for the audit trail and privilege checks: its token, granted scopes. */
export function auditContext(ctx: ParameterizedContext): AdminContext {
  const { token } = ctx.state;
  return {
    // No token means no privileges (the guard runs first; this only keeps the default closed).
    privileges: { kind: 'scopes', scopes: new Set((token?.claims.scope ?? '').split(' ').filter(Boolean)) },
    actor: token?.claims.client_id ?? null,
    clientIp: ctx.ip || null,
    requestId: ctx.state.requestId ?? null,
    logger: ctx.state.log,
  };
}
