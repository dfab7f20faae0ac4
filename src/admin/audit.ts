import type { ParameterizedContext } from 'koa';
import type { Logger } from 'pino';
import { createAuditEventStore } from '../db/audit-events.js';
import type { Queryable } from '../db/database.js';
import type { VerifiedToken } from '../verifier/index.js';

/** Who did it, from where, in which request: the part of an audit event the request knows. */
export interface AuditContext {
  readonly actor: string | null;
  readonly clientIp: string | null;
  readonly requestId: string | null;
  /** Where the event is also written as a JSON line for log shippers, once committed. */
  readonly logger?: Logger | undefined;
}

export function auditContext(ctx: ParameterizedContext): AuditContext {
  const token = ctx.state['token'] as VerifiedToken | undefined;
  return {
    actor: token?.claims.client_id ?? null,
    clientIp: ctx.ip || null,
    requestId: typeof ctx.state['requestId'] === 'string' ? ctx.state['requestId'] : null,
    logger: ctx.state['log'] as Logger | undefined,
  };
}

/** Appends an audit event in the caller's transaction, so it commits with the change or not at all. */
export async function recordAudit(
  tx: Queryable,
  context: AuditContext,
  event: { type: string; target: string; details?: Record<string, unknown>; outcome?: 'success' | 'failure' },
): Promise<void> {
  const row = {
    type: event.type,
    actor: context.actor,
    target: event.target,
    clientIp: context.clientIp,
    requestId: context.requestId,
    outcome: event.outcome ?? 'success',
    details: event.details ?? {},
  } as const;
  await createAuditEventStore(tx).append(row);
  // Logged only once the change it records has committed: a log shipper never sees an event that did not happen.
  const logger = context.logger;
  if (logger !== undefined) tx.afterCommit(() => logger.info({ audit: row }, 'audit event'));
}
