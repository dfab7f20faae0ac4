import type { Logger } from 'pino';
import { createAuditEventStore } from '../db/audit-events.js';
import type { Database, Queryable } from '../db/database.js';

/** Who did it, from where, in which request: the part of an audit event the request knows. */
export interface AuditContext {
  readonly actor: string | null;
  readonly clientIp: string | null;
  readonly requestId: string | null;
  /** Where the event is also written as a JSON line for log shippers, once committed. */
  readonly logger?: Logger | undefined;
}

/**
 * What the one making a change holds, for changes that can grant privileges (SPEC §5: a client
 * that may use the admin API needs "every scope that client may get"). Passed explicitly by each
 * front door: the admin API grants what its token was granted; the operator CLI, run by someone
 * who holds the database and MASTER_KEY already, holds everything.
 */
export type Privileges = { readonly kind: 'operator' } | { readonly kind: 'scopes'; readonly scopes: ReadonlySet<string> };

export const OPERATOR: Privileges = { kind: 'operator' };

/** The scopes of `wanted` that `privileges` do not include (none for the operator). */
export function missingPrivileges(privileges: Privileges, wanted: Iterable<string>): string[] {
  if (privileges.kind === 'operator') return [];
  return [...new Set(wanted)].filter((scope) => !privileges.scopes.has(scope)).sort();
}

/** An audit context that also says what its caller may grant. */
export interface AdminContext extends AuditContext {
  readonly privileges: Privileges;
}

export interface AuditEvent {
  readonly type: string;
  readonly target: string;
  readonly details?: Record<string, unknown>;
  readonly outcome?: 'success' | 'failure';
}

/** Appends an audit event in the caller's transaction, so it commits with the change or not at all. */
export async function recordAudit(tx: Queryable, context: AuditContext, event: AuditEvent): Promise<void> {
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

/**
 * For events the provider announces after the fact (a reused grant, a device-code step): the
 * event gets its own transaction, and the request does not wait for it; a failed write is logged
 * with the event's type, never thrown at a request that has already been answered.
 */
export function recordAuditInBackground(db: Database, context: AuditContext & { readonly logger: Logger }, event: AuditEvent): void {
  db.transaction((tx) => recordAudit(tx, context, event)).catch((error: unknown) =>
    context.logger.error({ err: { message: (error as Error).message }, event: event.type }, 'audit event could not be written'),
  );
}
