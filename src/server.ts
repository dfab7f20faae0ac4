import { once } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { createApp, type GatehouseApp } from './app.js';
import type { Runtime } from './runtime.js';

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
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const res of inFlight) if (!res.headersSent) res.setHeader('Connection', 'close');
      server.closeIdleConnections();
      const force = setTimeout(() => server.closeAllConnections(), runtime.config.shutdownTimeoutMs);
      force.unref();
      await closed;
      clearTimeout(force);
      built.stop();
      await runtime.db.close();
    })();
    return closing;
  };

  return { ...built, server, url: `http://${host}:${port}`, close };
}
