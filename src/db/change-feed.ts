import type { Database } from './database.js';

/**
 * Committed changes to clients and resource servers, as announced by the triggers of
 * migrations/0005_change_notifications.sql on this channel, and to the signing keys
 * (migrations/0008_signing_key_lifecycle.sql, key '': the whole key set is reloaded) and to the
 * gateway routes (migrations/0011_gateway_routes.sql, key '': the whole route table is reloaded),
 * to the people a gateway decision reads (migrations/0012_user_change_notifications.sql, key: the user's id),
 * and to the identity providers (migrations/0018_identity_provider_notifications.sql, key '': the list is reloaded).
 */
export const CHANGE_CHANNEL = 'gatehouse_changes';

export type ChangeKind = 'client' | 'resource_server' | 'signing_key' | 'gateway_route' | 'user' | 'identity_provider';

const KINDS: ReadonlySet<string> = new Set<ChangeKind>(['client', 'resource_server', 'signing_key', 'gateway_route', 'user', 'identity_provider']);

export interface ChangeHandlers {
  /** One row changed (inserted, updated or deleted); `key` is its client_id, identifier or id. */
  readonly onChange: (kind: ChangeKind, key: string) => void;
  /** Notifications stopped (`false`: some may be lost) or flow again (`true`). */
  readonly onState: (live: boolean) => void;
}

export interface ChangeFeed {
  /** True while notifications are known to arrive. */
  live(): boolean;
  close(): Promise<void>;
}

function parse(payload: string): { kind: ChangeKind; key: string } | undefined {
  const separator = payload.indexOf(':');
  const kind = payload.slice(0, separator);
  if (separator < 0 || !KINDS.has(kind)) return undefined;
  return { kind: kind as ChangeKind, key: payload.slice(separator + 1) };
}

export function subscribeToChanges(db: Database, handlers: ChangeHandlers): ChangeFeed {
  let live = false;
  const listener = db.listen(CHANGE_CHANNEL, {
    onNotify(payload) {
      const change = parse(payload);
      if (change !== undefined) handlers.onChange(change.kind, change.key);
    },
    onState(next) {
      if (next === live) return;
      live = next;
      handlers.onState(next);
    },
  });
  return { live: () => live, close: () => listener.close() };
}
