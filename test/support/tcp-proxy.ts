import { once } from 'node:events';
import { createServer, connect, type Server, type Socket } from 'node:net';

/**
 * A loopback TCP proxy the test controls, to make PostgreSQL "go away" and come back without
 * touching the real server: `cut()` drops every open connection and refuses new ones,
 * `restore()` accepts again on the same port.
 */
export interface TcpProxy {
  readonly port: number;
  /** `original` with its host and port replaced by the proxy's (path, user and query kept). */
  url(original: string): string;
  /** Destroys all current connections and refuses new ones until `restore()`. */
  cut(): Promise<void>;
  /** Accepts connections again, on the same port. */
  restore(): Promise<void>;
  close(): Promise<void>;
}

export async function startTcpProxy(targetHost: string, targetPort: number): Promise<TcpProxy> {
  const sockets = new Set<Socket>();
  let accepting = true;

  function track(socket: Socket): void {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  }

  const server: Server = createServer(function relay(downstream) {
    track(downstream);
    // A connection that raced with cut() is dropped at once, as a dead server would.
    if (!accepting) {
      downstream.destroy();
      return;
    }
    const upstream = connect(targetPort, targetHost);
    track(upstream);
    downstream.on('error', () => upstream.destroy());
    upstream.on('error', () => downstream.destroy());
    downstream.once('close', () => upstream.destroy());
    upstream.once('close', () => downstream.destroy());
    downstream.pipe(upstream);
    upstream.pipe(downstream);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('proxy has no port');
  const port = address.port;

  function dropAll(): void {
    for (const socket of sockets) socket.destroy();
    sockets.clear();
  }

  async function stopListening(): Promise<void> {
    if (!server.listening) return;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    dropAll();
    await closed;
  }

  return {
    port,
    url(original) {
      const parsed = new URL(original);
      parsed.hostname = '127.0.0.1';
      parsed.port = String(port);
      return parsed.toString();
    },
    async cut() {
      accepting = false;
      // With the listener closed, new connections are refused (ECONNREFUSED), not left hanging.
      await stopListening();
    },
    async restore() {
      accepting = true;
      if (server.listening) return;
      server.listen(port, '127.0.0.1');
      await once(server, 'listening');
    },
    async close() {
      accepting = false;
      await stopListening();
    },
  };
}
