import type { ParameterizedContext } from 'koa';
import { createAuditEventStore } from '../db/audit-events.js';
import type { Queryable } from '../db/database.js';
import type { VerifiedToken } from '../verifier/index.js';

/** Who did it, from where, in which request: the part of an audit event the request knows. */
export interface AuditContext {
  readonly actor: string | null;
  readonly clientIp: string | null;
  readonly requestId: string | null;
}

export function auditContext(ctx: ParameterizedContext): AuditContext {
  const token = ctx.state['token'] as VerifiedToken | undefined;
  return {
    actor: token?.claims.client_id ?? null,
    clientIp: ctx.ip || null,
    requestId: typeof ctx.state['requestId'] === 'string' ? ctx.state['requestId'] : null,
  };
}

/** Appends an audit event in the caller's transaction, so it commits with the change or not at all. */
export async function recordAudit(
  tx: Queryable,
  context: AuditContext,
  event: { type: string; target: string; details?: Record<string, unknown>; outcome?: 'success' | 'failure' },
): Promise<void> {
  await createAuditEventStore(tx).append({
    type: event.type,
    actor: context.actor,
    target: event.target,
    clientIp: context.clientIp,
    requestId: context.requestId,
    outcome: event.outcome ?? 'success',
    details: event.details ?? {},
  });
}
