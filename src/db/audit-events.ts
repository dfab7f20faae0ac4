import { jsonParam, type Queryable } from './database.js';

export interface AuditEvent {
  readonly type: string;
  readonly actor: string | null;
  readonly target: string | null;
  readonly clientIp: string | null;
  readonly requestId: string | null;
  readonly outcome: 'success' | 'failure';
  /** Small, never a secret. */
  readonly details: Record<string, unknown>;
}

export interface AuditEventRow extends Record<string, unknown> {
  id: string;
  occurred_at: Date;
  type: string;
  actor: string | null;
  target: string | null;
  client_ip: string | null;
  request_id: string | null;
  outcome: 'success' | 'failure';
  details: Record<string, unknown>;
}

export function createAuditEventStore(db: Queryable) {
  return {
    /** Pass the transaction the change runs in, so the event and the change commit together. */
    async append(event: AuditEvent): Promise<void> {
      await db.query(
        `INSERT INTO audit_events (type, actor, target, client_ip, request_id, outcome, details)
         VALUES ($1, $2, $3, $4, $5, $6, $7)`,
        [event.type, event.actor, event.target, event.clientIp, event.requestId, event.outcome, jsonParam(event.details)],
      );
    },
    async list(filter: {
      type?: string | undefined;
      since?: Date | undefined;
      actor?: string | undefined;
      target?: string | undefined;
      before?: string | undefined;
      limit: number;
    }): Promise<AuditEventRow[]> {
      const conditions: string[] = [];
      const params: unknown[] = [];
      const add = (sql: string, value: unknown) => {
        params.push(value);
        conditions.push(sql.replace('?', `$${params.length}`));
      };
      if (filter.type !== undefined) add('type = ?', filter.type);
      if (filter.since !== undefined) add('occurred_at >= ?', filter.since);
      if (filter.actor !== undefined) add('actor = ?', filter.actor);
      if (filter.target !== undefined) add('target = ?', filter.target);
      if (filter.before !== undefined) add('id < ?::bigint', filter.before);
      params.push(filter.limit);
      // Qualified: a bare `id` would name the text alias and sort 10 before 9.
      const { rows } = await db.query<AuditEventRow>(
        `SELECT id::text AS id, occurred_at, type, actor, target, client_ip, request_id, outcome, details
           FROM audit_events ${conditions.length === 0 ? '' : `WHERE ${conditions.join(' AND ')}`}
          ORDER BY audit_events.id DESC LIMIT $${params.length}`,
        params,
      );
      return rows;
    },
  };
}
