import pg from 'pg';

/**
 * LISTEN on one channel over a dedicated connection (pooled connections come and go, and a
 * transaction-mode pooler would drop the subscription), reconnecting with back-off.
 *
 * `onState(false)` is called as soon as the connection is lost: notifications sent from then on
 * until `onState(true)` may never arrive, so a cache fed by them must stop trusting itself.
 */
export interface ListenHandlers {
  readonly onNotify: (payload: string) => void;
  readonly onState: (live: boolean) => void;
}

export interface Listener {
  close(): Promise<void>;
}

const RETRY_MIN_MS = 250;
const RETRY_MAX_MS = 5_000;

export function listenPostgres(connectionString: string, channel: string, handlers: ListenHandlers): Listener {
  let client: pg.Client | undefined;
  let closed = false;
  let retryMs = RETRY_MIN_MS;
  let retryTimer: NodeJS.Timeout | undefined;
  const quotedChannel = `"${channel.replaceAll('"', '""')}"`;

  function lost(failed: pg.Client) {
    if (client !== failed) return;
    client = undefined;
    handlers.onState(false);
    failed.removeAllListeners('notification');
    failed.end().catch(() => undefined);
    if (closed) return;
    retryTimer = setTimeout(() => void connect(), retryMs);
    retryTimer.unref();
    retryMs = Math.min(retryMs * 2, RETRY_MAX_MS);
  }

  async function connect() {
    const next = new pg.Client({
      connectionString,
      application_name: 'gatehouse-listener',
      connectionTimeoutMillis: 3_000,
      // A silently dead connection (no RST) is noticed by TCP keep-alive, not by LISTEN.
      keepAlive: true,
      keepAliveInitialDelayMillis: 10_000,
    });
    client = next;
    // Without listeners, a connection error would crash the process.
    next.on('error', () => lost(next));
    next.on('end', () => lost(next));
    next.on('notification', (message) => {
      if (message.channel === channel) handlers.onNotify(message.payload ?? '');
    });
    try {
      await next.connect();
      await next.query(`LISTEN ${quotedChannel}`);
    } catch {
      lost(next);
      return;
    }
    if (closed || client !== next) return;
    retryMs = RETRY_MIN_MS;
    handlers.onState(true);
  }

  void connect();

  return {
    async close() {
      closed = true;
      clearTimeout(retryTimer);
      const current = client;
      client = undefined;
      if (current !== undefined) {
        handlers.onState(false);
        await current.end().catch(() => undefined);
      }
    },
  };
}
