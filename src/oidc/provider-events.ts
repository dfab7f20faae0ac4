import type Provider from 'oidc-provider';
import type { KoaContextWithOIDC } from 'oidc-provider';
import type { Logger } from 'pino';
import { recordAuditInBackground } from '../audit/audit.js';
import { isUnavailable, type Database } from '../db/database.js';
import type { Metrics } from '../http/metrics.js';

/** What Gatehouse learns from the provider's events: token metrics, the reuse audit, error logs. */
export function observeProvider(provider: Provider, deps: { readonly db: Database; readonly logger: Logger; readonly metrics: Metrics }): void {
  provider.on('grant.success', (ctx: KoaContextWithOIDC) => {
    const grantType = ctx.oidc.params?.['grant_type'];
    const token = (ctx.oidc.entities as { AccessToken?: { aud?: unknown }; ClientCredentials?: { aud?: unknown } }) ?? {};
    const audience = (token.AccessToken ?? token.ClientCredentials)?.aud;
    deps.metrics.tokensIssued.inc({
      grant_type: typeof grantType === 'string' ? grantType : 'unknown',
      // Audiences are registered resource servers (bounded); a token without one is for userinfo.
      resource_server: typeof audience === 'string' ? audience : 'userinfo',
    });
  });

  // At the token endpoint the provider revokes a grant only when a consumed refresh token or
  // authorization code is presented again (SPEC §2 reuse detection): a security event to audit.
  provider.on('grant.revoked', (ctx: KoaContextWithOIDC, grantId: string) => {
    if (ctx.oidc?.route !== 'token') return;
    const grantType = ctx.oidc.params?.['grant_type'];
    const clientId = ctx.oidc.client?.clientId ?? null;
    recordAuditInBackground(
      deps.db,
      { actor: clientId, clientIp: ctx.ip || null, requestId: ctx.state.requestId ?? null, logger: deps.logger },
      {
        type: 'token.reuse_detected',
        target: grantId,
        outcome: 'failure',
        details: { grant_type: typeof grantType === 'string' ? grantType : 'unknown', client_id: clientId, grant_revoked: true },
      },
    );
  });

  provider.on('server_error', (ctx: KoaContextWithOIDC, error: Error) => {
    if (isUnavailable(error)) {
      ctx.state.databaseUnavailable = true;
      deps.logger.warn({ err: { message: error.message, code: 'database_unavailable' }, route: ctx.oidc?.route }, 'database unavailable');
    } else {
      deps.logger.error({ err: error, route: ctx.oidc?.route }, 'oidc-provider server_error');
    }
  });
}
