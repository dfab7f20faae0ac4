import { once } from 'node:events';
import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import { createApp, type GatehouseApp } from './app.js';
import type { Runtime } from './runtime.js';

/**
 * How long, after the listener closes, an idle kept-alive connection may still deliver a request
 * (served with `Connection: close`) before it is closed: a request a client or load balancer sent
 * just before SIGTERM may still be in the socket buffer, unread, and would otherwise be reset.
 */
const IDLE_CONNECTION_GRACE_MS = 250;

export interface RunningServer extends GatehouseApp {
  readonly server: http.Server;
  readonly url: string;
  /** Stops accepting, lets in-flight requests finish (up to the timeout), closes the pool. */
  close(): Promise<void>;
}

export async function startServer(runtime: Runtime, listen: { port: number; host: string }): Promise<RunningServer> {
  const built = await createApp(runtime);
  const handle = built.app.callback();
  let closing: Promise<void> | undefined;
  const inFlight = new Set<http.ServerResponse>();
  const server = http.createServer((req, res) => {
    // While draining, every response closes its connection, so keep-alive clients can neither
    // send more requests nor hold the shutdown open until keepAliveTimeout.
    if (closing !== undefined) res.setHeader('Connection', 'close');
    inFlight.add(res);
    res.once('close', () => inFlight.delete(res));
    void handle(req, res);
  });
  // Slow-client protection; oidc-provider's own body limits cover payload size.
  server.headersTimeout = 15_000;
  server.requestTimeout = 30_000;
  server.keepAliveTimeout = 5_000;
  server.listen(listen.port, listen.host);
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  const host = listen.host === '0.0.0.0' || listen.host === '::' ? '127.0.0.1' : listen.host;

  const close = () => {
    closing ??= (async () => {
      const closed = new Promise<void>((resolve) => server.once('close', () => resolve()));
      // Stop accepting now. http.Server#close would also destroy every idle kept-alive connection
      // at once, dropping requests already sent on them but not yet read (a third of those in
      // flight, under load: test/integration/shutdown.load.test.ts); net.Server#close leaves them
      // for the grace period, then http.Server#close closes whatever is still idle.
      net.Server.prototype.close.call(server);
      for (const res of inFlight) if (!res.headersSent) res.setHeader('Connection', 'close');
      const idle = setTimeout(() => server.close(), Math.min(IDLE_CONNECTION_GRACE_MS, runtime.config.shutdownTimeoutMs));
      const force = setTimeout(() => server.closeAllConnections(), runtime.config.shutdownTimeoutMs);
      force.unref();
      await closed;
      clearTimeout(idle);
      clearTimeout(force);
      built.stop();
      await runtime.db.close();
    })();
    return closing;
  };

  return { ...built, server, url: `http://${host}:${port}`, close };
}
