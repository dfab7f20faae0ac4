import { randomBytes } from 'node:crypto';
import { createServer } from 'node:net';
import { Writable } from 'node:stream';
import { loadConfig } from '../../src/config.js';
import type { Database } from '../../src/db/database.js';
import { createLogger } from '../../src/logger.js';
import { openRuntime, type Runtime } from '../../src/runtime.js';
import { startServer, type RunningServer } from '../../src/server.js';
import { createTestDatabase, defaultBackend, type Backend, type TestDatabase } from './database.js';

/**
 * oidc-provider prints "WARNING"/"NOTICE" lines for defaults a deployment must change (STYLE.md
 * §2). Every in-process test server fails its close() if any such line appeared, so any flow
 * that reaches an unconfigured default fails the test that ran it.
 */
const providerNotices: string[] = [];
for (const method of ['info', 'warn'] as const) {
  const original = console[method].bind(console);
  console[method] = (...args: unknown[]) => {
    const line = args.map(String).join(' ');
    if (line.includes('oidc-provider WARNING') || line.includes('oidc-provider NOTICE')) providerNotices.push(line);
    original(...args);
  };
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const address = probe.address();
      probe.close(() => (typeof address === 'object' && address !== null ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

/** Captures log lines in memory so tests can assert on them. */
export class LogCapture extends Writable {
  readonly lines: string[] = [];
  override _write(chunk: Buffer, _encoding: string, callback: () => void): void {
    this.lines.push(...chunk.toString('utf8').split('\n').filter(Boolean));
    callback();
  }
  get text(): string {
    return this.lines.join('\n');
  }
}

export interface TestServer {
  readonly url: string;
  /** The management listener (/healthz, /readyz, /metrics); undefined with MANAGEMENT_PORT=0. */
  readonly managementUrl: string | undefined;
  readonly issuer: string;
  readonly admin: { readonly clientId: string; readonly clientSecret: string };
  /** base64url MASTER_KEY this server runs with (a second instance on the same database needs it). */
  readonly masterKey: string;
  readonly running: RunningServer;
  readonly runtime: Runtime;
  readonly database: TestDatabase;
  readonly logs: LogCapture;
  /** A separate connection for the test's own queries. */
  readonly db: Database;
  close(): Promise<void>;
}

export interface TestServerOptions {
  readonly backend?: Backend;
  readonly env?: Record<string, string>;
  /** Connection URL override (e.g. through a proxy the test controls). */
  readonly databaseUrl?: string;
  readonly database?: TestDatabase;
  /** Serve HTTPS (ISSUER https://127.0.0.1:<port>) with these files (SPEC §8). */
  readonly tls?: { readonly certFile: string; readonly keyFile: string; readonly clientCaFile?: string };
}

/** A real Gatehouse on an ephemeral port, on its own database, with a known bootstrap admin client. */
export async function startTestServer(options: TestServerOptions = {}): Promise<TestServer> {
  const database = options.database ?? (await createTestDatabase(options.backend ?? defaultBackend));
  const port = await freePort();
  // Its own management port, so test files running side by side never meet on the default 9000.
  const managementPort = options.env?.['MANAGEMENT_PORT'] ?? String(await freePort());
  const admin = { clientId: `admin-${randomBytes(4).toString('hex')}`, clientSecret: randomBytes(32).toString('base64url') };
  const databaseUrl = options.databaseUrl ?? database.url;
  const masterKey = options.env?.['MASTER_KEY'] ?? randomBytes(32).toString('base64url');
  const config = loadConfig({
    NODE_ENV: 'test',
    PORT: String(port),
    MANAGEMENT_PORT: managementPort,
    HOST: '127.0.0.1',
    ISSUER: `${options.tls === undefined ? 'http' : 'https'}://127.0.0.1:${port}`,
    ...(options.tls === undefined
      ? {}
      : { TLS_CERT_FILE: options.tls.certFile, TLS_KEY_FILE: options.tls.keyFile, ...(options.tls.clientCaFile === undefined ? {} : { TLS_CLIENT_CA_FILE: options.tls.clientCaFile }) }),
    DATA_DIR: database.dataDir,
    MASTER_KEY: masterKey,
    BOOTSTRAP_ADMIN_CLIENT_ID: admin.clientId,
    BOOTSTRAP_ADMIN_CLIENT_SECRET: admin.clientSecret,
    LOG_LEVEL: 'info',
    SHUTDOWN_TIMEOUT_MS: '2000',
    ...(databaseUrl === undefined ? {} : { DATABASE_URL: databaseUrl }),
    ...options.env,
  });
  const logs = new LogCapture();
  const runtime = await openRuntime(config, createLogger(config.logLevel, logs));
  const running = await startServer(runtime, { port: config.port, host: config.host, managementPort: config.managementPort });
  // PGlite is single-process: the test shares the server's instance instead of opening another.
  const db = database.backend === 'pglite' ? runtime.db : await database.connect();
  let closed = false;
  return {
    url: running.url,
    managementUrl: running.managementUrl,
    issuer: config.issuer,
    admin,
    masterKey,
    running,
    runtime,
    database,
    logs,
    db,
    async close() {
      if (closed) return;
      closed = true;
      if (db !== runtime.db) await db.close();
      await running.close();
      if (options.database === undefined) await database.drop();
      if (providerNotices.length > 0) throw new Error(`oidc-provider printed notices for unconfigured defaults:\n${providerNotices.join('\n')}`);
    },
  };
}

/** Polls `check` until it returns a truthy value or the deadline passes (no fixed sleeps). */
export async function waitFor<T>(check: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs = 10_000, intervalMs = 50): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value) return value;
    } catch (error) {
      lastError = error;
    }
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`, { cause: lastError });
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}
