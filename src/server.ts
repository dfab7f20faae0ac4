import { once } from 'node:events';
import http from 'node:http';
import https from 'node:https';
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
  readonly server: http.Server | https.Server;
  readonly url: string;
  /** The management listener (MANAGEMENT_PORT), when on. */
  readonly managementServer: http.Server | undefined;
  readonly managementUrl: string | undefined;
  /** Stops accepting, lets in-flight requests finish (up to the timeout), closes the pool. */
  close(): Promise<void>;
  /** SIGHUP: re-reads the TLS files; new connections get them, open ones keep theirs. */
  reloadTls(): Promise<void>;
}

/** Where a listener is reachable from this host (a wildcard bind is reached on loopback). */
function urlOf(server: http.Server | https.Server, host: string): string {
  const { port } = server.address() as AddressInfo;
  return `${server instanceof https.Server ? 'https' : 'http'}://${host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host}:${port}`;
}

async function listenOn(server: http.Server | https.Server, port: number, host: string): Promise<void> {
  server.listen(port, host);
  await once(server, 'listening');
}

/** `managementPort` undefined: no management listener (MANAGEMENT_PORT=0). */
export async function startServer(runtime: Runtime, listen: { port: number; host: string; managementPort?: number | undefined }): Promise<RunningServer> {
  const built = await createApp(runtime);
  const handle = built.app.callback();
  let closing: Promise<void> | undefined;
  const inFlight = new Set<http.ServerResponse>();
  const serve = (req: http.IncomingMessage, res: http.ServerResponse) => {
    // While draining, every response closes its connection, so keep-alive clients can neither
    // send more requests nor hold the shutdown open until keepAliveTimeout.
    if (closing !== undefined) res.setHeader('Connection', 'close');
    inFlight.add(res);
    res.once('close', () => inFlight.delete(res));
    void handle(req, res);
  };
  // SPEC §8: HTTPS on PORT with TLS_CERT_FILE/TLS_KEY_FILE; with TLS_CLIENT_CA_FILE a client
  // certificate is asked for but not required (only some clients authenticate with one), and an
  // unverified one is kept, marked so (src/http/client-certificate.ts).
  const tlsOptions = runtime.tls.serverOptions();
  const server =
    tlsOptions === undefined
      ? http.createServer(serve)
      : https.createServer({ ...tlsOptions, minVersion: 'TLSv1.2', requestCert: runtime.tls.requestsClientCertificates, rejectUnauthorized: false }, serve);
  // Slow-client protection; oidc-provider's own body limits cover payload size.
  server.headersTimeout = 15_000;
  server.requestTimeout = 30_000;
  server.keepAliveTimeout = 5_000;
  // Probes and scrapes only: short timeouts, no drain (nothing there is worth finishing).
  const handleManagement = built.management.callback();
  const managementServer =
    listen.managementPort === undefined
      ? undefined
      : http.createServer((req, res) => {
          void handleManagement(req, res);
        });
  if (managementServer !== undefined) {
    managementServer.headersTimeout = 5_000;
    managementServer.requestTimeout = 10_000;
  }
  try {
    await listenOn(server, listen.port, listen.host);
    if (managementServer !== undefined && listen.managementPort !== undefined) await listenOn(managementServer, listen.managementPort, listen.host);
  } catch (error) {
    // One listener up and the other refused (a port in use): close both, so the process can exit.
    server.close();
    managementServer?.close();
    built.stop();
    throw error;
  }

  const close = () => {
    closing ??= (async () => {
      const closed = new Promise<void>((resolve) => server.once('close', () => resolve()));
      // http.Server#close also closes idle kept-alive connections (a scraper's), so it cannot hold this open.
      const managementClosed = managementServer === undefined ? Promise.resolve() : new Promise<void>((resolve) => managementServer.close(() => resolve()));
      // Stop accepting now. http.Server#close would also destroy every idle kept-alive connection
      // at once, dropping requests already sent on them but not yet read (a third of those in
      // flight, under load: test/integration/shutdown.load.test.ts); net.Server#close leaves them
      // for the grace period, then http.Server#close closes whatever is still idle.
      net.Server.prototype.close.call(server);
      for (const res of inFlight) if (!res.headersSent) res.setHeader('Connection', 'close');
      const idle = setTimeout(() => server.close(), Math.min(IDLE_CONNECTION_GRACE_MS, runtime.config.shutdownTimeoutMs));
      const force = setTimeout(() => {
        server.closeAllConnections();
        managementServer?.closeAllConnections();
      }, runtime.config.shutdownTimeoutMs);
      force.unref();
      await Promise.all([closed, managementClosed]);
      clearTimeout(idle);
      clearTimeout(force);
      built.stop();
      await runtime.db.close();
    })();
    return closing;
  };

  return {
    ...built,
    server,
    url: urlOf(server, listen.host),
    managementServer,
    managementUrl: managementServer === undefined ? undefined : urlOf(managementServer, listen.host),
    close,
    async reloadTls() {
      await runtime.tls.reload();
      const options = runtime.tls.serverOptions();
      if (options !== undefined && server instanceof https.Server) server.setSecureContext(options);
    },
  };
}
