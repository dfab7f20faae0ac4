import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, writeFile } from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import { createServer } from 'node:net';
import { cpus, loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import { TLSSocket, type ConnectionOptions } from 'node:tls';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import autocannon from 'autocannon';
import pg from 'pg';
import type { PacedProbeJob, PacedProbeResult } from './paced-probe.js';
import { profileMarkdown, summarizeProfileFile, type ProfileWindow } from './profile-summary.js';

/**
 * What the benchmarks (bench/tokens.ts, bench/login.ts) share: settings from the environment,
 * child processes that cannot outlive the run, a throwaway PostgreSQL database, Gatehouse
 * started as a child and reached through its admin API, client-credentials load with
 * autocannon, report helpers, and the run's watchdog and clean-up. All traffic goes to 127.0.0.1.
 */

export const ROOT = fileURLToPath(new URL('../', import.meta.url));
export const RESULTS_DIR = path.join(ROOT, 'bench', 'results');

export const log = (message: string) => process.stderr.write(`[bench] ${message}\n`);

/** The commit measured, and whether src/ had uncommitted changes (then the commit alone does not say what ran). */
export function sourceVersion(): string {
  try {
    const git = (...args: string[]) => execFileSync('git', args, { cwd: ROOT, encoding: 'utf8', timeout: 10_000 }).trim();
    const dirty = git('status', '--porcelain', '--', 'src', 'migrations') !== '';
    return `${git('rev-parse', '--short', 'HEAD')}${dirty ? ' + uncommitted src changes' : ''}`;
  } catch {
    return 'unknown';
  }
}

export function envNumber(name: string, fallback: number, min: number, max: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value < min || value > max) throw new Error(`${name} must be a number between ${min} and ${max} (got ${raw})`);
  return value;
}

export function envFlag(name: string): boolean {
  return ['1', 'true', 'yes'].includes(process.env[name] ?? '');
}

export const DEFAULT_DATABASE_URL = 'postgres://postgres@127.0.0.1:5432/postgres';

/** `2026-11-23T14-01-32Z`: a run's date as used in result file names. */
export function fileStamp(date: Date): string {
  return date.toISOString().replace(/\.\d+Z$/, 'Z').replaceAll(':', '-');
}

// ---------------------------------------------------------------------------------------------
// Child processes: each one is tracked, stopped on every exit path, and stops itself when this
// process dies (bench/exit-with-parent.ts watches the stdin pipe).

export interface Child {
  readonly name: string;
  readonly process: ChildProcess;
  readonly output: { stdout: string; stderr: string };
  readonly exited: Promise<number | string>;
  /** Resolves once the process has exited and its stdio has closed. */
  readonly closed: Promise<unknown>;
  stop(): Promise<void>;
}

const children = new Set<Child>();
const OUTPUT_CAP = 256 * 1024;

export function alive(child: ChildProcess): boolean {
  return child.exitCode === null && child.signalCode === null;
}

export function spawnChild(name: string, nodeArgs: readonly string[], env: Record<string, string>): Child {
  const child = spawn(process.execPath, [...nodeArgs], {
    cwd: ROOT,
    env: { PATH: process.env['PATH'] ?? '', HOME: process.env['HOME'] ?? tmpdir(), ...env },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  const output = { stdout: '', stderr: '' };
  const keep = (key: 'stdout' | 'stderr') => (chunk: Buffer) => {
    if (output[key].length < OUTPUT_CAP) output[key] += chunk.toString('utf8');
  };
  child.stdout?.on('data', keep('stdout'));
  child.stderr?.on('data', keep('stderr'));
  const exited = once(child, 'exit').then(([code, signal]) => (code ?? signal) as number | string);
  const closed = once(child, 'close');
  const handle: Child = {
    name,
    process: child,
    output,
    exited,
    closed,
    async stop() {
      if (alive(child)) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => alive(child) && child.kill('SIGKILL'), 20_000);
        await exited;
        clearTimeout(timer);
      }
      children.delete(handle);
    },
  };
  children.add(handle);
  return handle;
}

process.on('exit', () => {
  for (const child of children) if (alive(child.process)) child.process.kill('SIGKILL');
});

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

export async function waitUntil(what: string, child: Child, check: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (!alive(child.process)) {
      // 'exit' can come before the last output: wait (briefly) for stdio to close.
      await Promise.race([child.closed, new Promise((resolve) => setTimeout(resolve, 2_000))]);
      throw new Error(`${child.name} exited (${child.process.exitCode ?? child.process.signalCode}) before ${what}:\n${child.output.stderr.slice(-4000)}${child.output.stdout.slice(-2000)}`);
    }
    if (await check().catch(() => false)) return;
    if (Date.now() > deadline) throw new Error(`${child.name}: ${what} not reached within ${timeoutMs} ms:\n${child.output.stderr.slice(-4000)}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

// ---------------------------------------------------------------------------------------------
// Database: a uniquely named PostgreSQL database, or PGlite in a temp dir when unreachable.

export interface BenchDatabase {
  readonly kind: 'postgres' | 'pglite';
  readonly url: string | undefined;
  drop(): Promise<void>;
}

export async function createBenchDatabase(serverUrl: string): Promise<BenchDatabase> {
  const admin = new pg.Client({ connectionString: serverUrl, connectionTimeoutMillis: 3_000 });
  try {
    await admin.connect();
  } catch (error) {
    log(`PostgreSQL unreachable (${(error as Error).message}); falling back to PGlite`);
    await admin.end().catch(() => undefined);
    return { kind: 'pglite', url: undefined, drop: () => Promise.resolve() };
  }
  const name = `gatehouse_bench_${Date.now().toString(36)}_${randomBytes(4).toString('hex')}`;
  try {
    await admin.query(`CREATE DATABASE ${name}`);
  } finally {
    await admin.end();
  }
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  let dropped = false;
  return {
    kind: 'postgres',
    url: url.toString(),
    async drop() {
      if (dropped) return;
      dropped = true;
      const client = new pg.Client({ connectionString: serverUrl, connectionTimeoutMillis: 3_000 });
      await client.connect();
      try {
        await client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      } finally {
        await client.end();
      }
    },
  };
}

// ---------------------------------------------------------------------------------------------
// HTTP helpers (127.0.0.1 only).

export function basic(id: string, secret: string): string {
  // RFC 6749 §2.3.1: form-urlencode each part, then Base64.
  const encode = (value: string) => encodeURIComponent(value).replaceAll('%20', '+');
  return `Basic ${Buffer.from(`${encode(id)}:${encode(secret)}`).toString('base64')}`;
}

/** The client-credentials request every benchmark times (resource servers define `bench:read`). */
export const TOKEN_BODY = 'grant_type=client_credentials&scope=bench%3Aread';

export async function requestToken(baseUrl: string, authorization: string | undefined, body: string): Promise<string> {
  const response = await fetch(`${baseUrl}/token`, {
    method: 'POST',
    headers: { ...(authorization === undefined ? {} : { authorization }), 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
    body,
  });
  const text = await response.text();
  if (response.status !== 200) throw new Error(`POST ${baseUrl}/token answered ${response.status}: ${text}`);
  const token = (JSON.parse(text) as { access_token?: unknown }).access_token;
  if (typeof token !== 'string') throw new Error(`POST ${baseUrl}/token: no access_token in ${text}`);
  return token;
}

export async function adminPost<T>(baseUrl: string, adminToken: string, route: string, body: unknown): Promise<T> {
  const response = await fetch(`${baseUrl}/admin/v1${route}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json', accept: 'application/json' },
    body: JSON.stringify(body),
  });
  const text = await response.text();
  if (response.status !== 201) throw new Error(`POST /admin/v1${route} answered ${response.status}: ${text}`);
  return JSON.parse(text) as T;
}

// ---------------------------------------------------------------------------------------------
// Gatehouse as a child process.

export interface Gatehouse {
  readonly child: Child;
  readonly url: string;
  /** The management listener: /metrics is served there only. */
  readonly managementUrl: string;
  readonly dataDir: string;
  readonly profileFile: string | undefined;
  /**
   * MASTER_KEY and the bootstrap admin client's credentials: a second instance on the same
   * database needs them (`env`), or it cannot open the server secrets sealed in it.
   */
  readonly sharedEnv: Readonly<Record<string, string>>;
  /** An admin-API access token with these scopes (the bootstrap admin client's credentials). */
  adminToken(scopes: readonly string[]): Promise<string>;
}

let built: Promise<void> | undefined;

/**
 * Builds dist/ once per benchmark process (`npm run build`), so every run measures the current
 * source. `BENCH_SKIP_BUILD=1` skips it (bench/run.ts builds once for the whole suite).
 */
export function ensureBuilt(): Promise<void> {
  if (envFlag('BENCH_SKIP_BUILD')) return Promise.resolve();
  built ??= (async () => {
    log('building dist/ (tsc -p tsconfig.build.json)');
    const child = spawn(path.join(ROOT, 'node_modules', '.bin', 'tsc'), ['-p', 'tsconfig.build.json'], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const [code] = (await once(child, 'exit')) as [number | null];
    if (code !== 0) throw new Error(`the build failed:\n${output.slice(-4000)}`);
  })();
  return built;
}

/** SPEC §8: Gatehouse serving HTTPS itself (TLS_CERT_FILE, TLS_KEY_FILE, optionally TLS_CLIENT_CA_FILE). */
export interface GatehouseTls {
  readonly certFile: string;
  readonly keyFile: string;
  readonly clientCaFile?: string | undefined;
}

/**
 * Starts Gatehouse (the production build, `dist/main.js`, `LOG_LEVEL=warn`) on a free 127.0.0.1 port and
 * `database` (PGlite in a temp dir when it has no URL), and waits until /readyz answers 200.
 * With `profileFile`, it runs under `--cpu-prof` and writes that file when stopped; `env` adds to
 * (or overrides) its environment, e.g. `WORKERS`. With `tls` it serves HTTPS (its `url` is
 * https://; readiness is asked on the plain-HTTP management port, and `adminToken` needs a
 * fetch that trusts the certificate: use an HTTP instance on the same database for the admin API).
 */
export async function launchGatehouse(
  database: BenchDatabase,
  options: { profileFile?: string | undefined; env?: Readonly<Record<string, string>>; tls?: GatehouseTls | undefined } = {},
): Promise<Gatehouse> {
  const port = await freePort();
  const url = `${options.tls === undefined ? 'http' : 'https'}://127.0.0.1:${port}`;
  const managementPort = await freePort();
  const dataDir = await mkdtemp(path.join(tmpdir(), 'gatehouse-bench-'));
  const admin = { id: 'bench-admin', secret: randomBytes(32).toString('base64url') };
  const { profileFile } = options;
  await ensureBuilt();
  // The production build, as `npm start` and the Docker image run it (no tsx loader in memory
  // or on the CPU); Node strips the preload's types itself.
  const nodeArgs = [
    ...(profileFile === undefined ? [] : ['--cpu-prof', `--cpu-prof-dir=${path.dirname(profileFile)}`, `--cpu-prof-name=${path.basename(profileFile)}`]),
    // As `npm start` and the Dockerfile run it.
    '--max-old-space-size=512',
    '--experimental-async-context-frame',
    '--import',
    './bench/exit-with-parent.ts',
    'dist/main.js',
  ];
  const sharedEnv = {
    // As `npm start` and the image run it (Dockerfile: argon2's blocks stay in per-thread arenas otherwise).
    MALLOC_ARENA_MAX: '2',
    MASTER_KEY: randomBytes(32).toString('base64url'),
    BOOTSTRAP_ADMIN_CLIENT_ID: admin.id,
    BOOTSTRAP_ADMIN_CLIENT_SECRET: admin.secret,
    // All load comes from one address and a few clients, faster on a quick hour of this VM than
    // the defaults (10,000/s per IP): the limiters still run, at a rate no bench reaches.
    TOKEN_RATE_LIMIT_PER_IP: '1000000',
    TOKEN_RATE_LIMIT_PER_CLIENT: '1000000',
    ...options.env,
  };
  const child = spawnChild('gatehouse', nodeArgs, {
    PORT: String(port),
    MANAGEMENT_PORT: String(managementPort),
    HOST: '127.0.0.1',
    ISSUER: url,
    DATA_DIR: dataDir,
    ...sharedEnv,
    LOG_LEVEL: 'warn',
    SHUTDOWN_TIMEOUT_MS: '5000',
    ...(database.url === undefined ? {} : { DATABASE_URL: database.url }),
    ...(options.tls === undefined
      ? {}
      : {
          TLS_CERT_FILE: options.tls.certFile,
          TLS_KEY_FILE: options.tls.keyFile,
          ...(options.tls.clientCaFile === undefined ? {} : { TLS_CLIENT_CA_FILE: options.tls.clientCaFile }),
        }),
    ...options.env,
  });
  const managementUrl = `http://127.0.0.1:${managementPort}`;
  const readyUrl = options.tls === undefined ? `${url}/readyz` : `${managementUrl}/readyz`;
  await waitUntil('ready (/readyz 200)', child, async () => (await fetch(readyUrl)).status === 200, 120_000);
  return {
    child,
    url,
    managementUrl,
    dataDir,
    profileFile,
    sharedEnv: { MASTER_KEY: sharedEnv.MASTER_KEY, BOOTSTRAP_ADMIN_CLIENT_ID: sharedEnv.BOOTSTRAP_ADMIN_CLIENT_ID, BOOTSTRAP_ADMIN_CLIENT_SECRET: sharedEnv.BOOTSTRAP_ADMIN_CLIENT_SECRET },
    adminToken: (scopes) =>
      requestToken(url, basic(sharedEnv.BOOTSTRAP_ADMIN_CLIENT_ID, sharedEnv.BOOTSTRAP_ADMIN_CLIENT_SECRET), `grant_type=client_credentials&scope=${encodeURIComponent(scopes.join(' '))}`),
  };
}

/**
 * Stops `gatehouse` (so --cpu-prof writes its file), summarises the profile (only `window`, when
 * given: see `profileClockMicros`), writes `outFile` and prints it.
 */
export async function writeProfileSummary(gatehouse: Gatehouse, title: string, outFile: string, window?: ProfileWindow): Promise<void> {
  if (gatehouse.profileFile === undefined) return;
  await gatehouse.child.stop();
  const summary = await summarizeProfileFile(gatehouse.profileFile, 25, window);
  const text = profileMarkdown(summary, `${title} (${path.basename(gatehouse.profileFile)})`);
  await writeFile(outFile, text + '\n');
  process.stdout.write(`\n${text}\n`);
  log(`written ${path.relative(ROOT, outFile)}`);
}

/** Now, in the clock of a child's `--cpu-prof` samples (CLOCK_MONOTONIC on Linux, shared by every process). */
export function profileClockMicros(): number {
  return Number(process.hrtime.bigint() / 1000n);
}

// ---------------------------------------------------------------------------------------------
// Client-credentials load on POST /token.

export interface TokenTarget {
  /** Names the target in messages. */
  readonly row: string;
  readonly url: string;
  /** The Authorization header; undefined for a client that authenticates with its TLS certificate. */
  readonly authorization: string | undefined;
  /** For an https:// url: the CA to trust and, for mTLS, the client certificate and key. */
  readonly tls?: Pick<ConnectionOptions, 'ca' | 'cert' | 'key'> | undefined;
  /**
   * Headers made afresh for every request by the load generator itself (a DPoP proof: a new jti and
   * signature each time), and what it learns from each response (the latest DPoP-Nonce).
   */
  readonly perRequest?: PerRequest | undefined;
  /** The form body; TOKEN_BODY unless given (a tls_client_auth client names itself with client_id). */
  readonly body?: string | undefined;
}

export interface PerRequest {
  headers(): Record<string, string>;
  onResponse(headers: Readonly<Record<string, string | string[] | undefined>>): void;
}

/** The headers of a token request to `target` (a fresh DPoP proof when it has one). */
function tokenHeaders(target: TokenTarget): Record<string, string> {
  return {
    ...(target.authorization === undefined ? {} : { authorization: target.authorization }),
    'content-type': 'application/x-www-form-urlencoded',
    accept: 'application/json',
    ...target.perRequest?.headers(),
  };
}

/**
 * One POST /token to `target` with node:http(s) (fetch cannot trust a bench CA or present a client
 * certificate): status, headers and body. `perRequest` sees the answer, as under load.
 */
export function postToken(target: TokenTarget, body = target.body ?? TOKEN_BODY): Promise<{ status: number; headers: http.IncomingHttpHeaders; text: string }> {
  const url = new URL(`${target.url}/token`);
  const secure = url.protocol === 'https:';
  return new Promise((resolve, reject) => {
    const request = (secure ? https : http).request(
      url,
      { method: 'POST', headers: tokenHeaders(target), agent: false, timeout: 10_000, ...(secure ? target.tls : {}) },
      (response) => {
        let text = '';
        response.setEncoding('utf8');
        response.on('data', (chunk: string) => (text += chunk));
        response.on('end', () => {
          target.perRequest?.onResponse(response.headers);
          resolve({ status: response.statusCode ?? 0, headers: response.headers, text });
        });
        response.on('error', reject);
      },
    );
    request.on('timeout', () => request.destroy(new Error('timed out')));
    request.on('error', reject);
    request.end(body);
  });
}

/** postToken, expecting a 200 with an access token: the parsed response. */
export async function postTokenOk(target: TokenTarget): Promise<{ access_token: string; token_type: string } & Record<string, unknown>> {
  const { status, text } = await postToken(target);
  if (status !== 200) throw new Error(`row ${target.row}: POST ${target.url}/token answered ${status}: ${text.slice(0, 500)}`);
  const parsed = JSON.parse(text) as Record<string, unknown>;
  if (typeof parsed['access_token'] !== 'string') throw new Error(`row ${target.row}: no access_token in ${text.slice(0, 500)}`);
  return parsed as { access_token: string; token_type: string } & Record<string, unknown>;
}

export interface RunResult {
  readonly tokensPerSecond: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly requests: number;
  readonly non2xx: number;
  readonly errors: number;
  readonly timeouts: number;
  readonly durationSeconds: number;
  /** 1-minute load average at the end of the row: well above ~2 means something else was running. */
  readonly loadAverage: number;
}

export interface DriveOptions {
  readonly connections: number;
  /** Requests per second across all connections; unlimited when absent. */
  readonly overallRate?: number | undefined;
  /** autocannon worker threads: 1 keeps the load generator off this process's event loop. */
  readonly workers?: number | undefined;
}

/** autocannon on `POST /token` (client_credentials) for `seconds`. */
export async function drive(target: TokenTarget, seconds: number, options: DriveOptions): Promise<RunResult> {
  const result = await autocannon({
    url: `${target.url}/token`,
    method: 'POST',
    connections: options.connections,
    duration: seconds,
    timeout: 10,
    ...(options.overallRate === undefined ? {} : { overallRate: options.overallRate }),
    ...(options.workers === undefined ? {} : { workers: options.workers }),
    headers: tokenHeaders(target),
    body: target.body ?? TOKEN_BODY,
    ...(target.tls === undefined ? {} : { tlsOptions: target.tls }),
    ...(target.perRequest === undefined
      ? {}
      : {
          requests: [
            {
              // Called for every request on every connection: a new proof each time.
              setupRequest: (request: autocannon.Request) => ({ ...request, headers: { ...request.headers, ...target.perRequest!.headers() } }),
              onResponse: (_status: number, _body: string, _context: object, headers: http.IncomingHttpHeaders | undefined) => target.perRequest!.onResponse(headers ?? {}),
            },
          ],
        }),
  });
  const ok = result['2xx'];
  return {
    tokensPerSecond: ok / result.duration,
    p50Ms: result.latency.p50,
    p99Ms: result.latency.p99,
    requests: ok + result.non2xx,
    non2xx: result.non2xx,
    errors: result.errors,
    timeouts: result.timeouts,
    durationSeconds: result.duration,
    loadAverage: loadavg()[0] ?? 0,
  };
}

export interface PacedRunResult extends RunResult {
  /** p99 of how late the probe thread sent its requests against their instants (its own delay). */
  readonly sendLagP99Ms: number;
  readonly p90Ms: number;
  readonly maxMs: number;
}

function quantile(sorted: readonly number[], q: number): number {
  return sorted.length === 0 ? Number.NaN : sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)]!;
}

/**
 * `ratePerSecond` token requests at evenly spaced instants for `seconds`, from a worker thread
 * (bench/paced-probe.ts): the latency of each request alone, at a modest rate. Plain targets
 * only (no TLS options, no per-request headers).
 */
export async function drivePaced(target: TokenTarget, seconds: number, ratePerSecond: number): Promise<PacedRunResult> {
  if (target.tls !== undefined || target.perRequest !== undefined) throw new Error('drivePaced: plain http targets only');
  const job: PacedProbeJob = { url: `${target.url}/token`, headers: tokenHeaders(target), body: target.body ?? TOKEN_BODY, seconds, ratePerSecond };
  const worker = new Worker(new URL('./paced-probe.ts', import.meta.url), { workerData: job });
  const [result] = (await once(worker, 'message')) as [PacedProbeResult];
  await worker.terminate();
  const sorted = [...result.latenciesMs].sort((a, b) => a - b);
  const lag = [...result.sendLagMs].sort((a, b) => a - b);
  const ok = result.latenciesMs.length - result.non2xx;
  return {
    tokensPerSecond: ok / result.durationSeconds,
    p50Ms: quantile(sorted, 0.5),
    p90Ms: quantile(sorted, 0.9),
    p99Ms: quantile(sorted, 0.99),
    maxMs: quantile(sorted, 1),
    requests: result.latenciesMs.length,
    non2xx: result.non2xx,
    errors: result.errors,
    timeouts: 0,
    durationSeconds: result.durationSeconds,
    loadAverage: loadavg()[0] ?? 0,
    sendLagP99Ms: quantile(lag, 0.99),
  };
}

/**
 * A new connection for every request, `connections` at a time, for `seconds` (node:http(s), not
 * autocannon: autocannon keeps its connections). Over https the agent keeps TLS sessions (100 by
 * default) and offers the last one on every new connection, so each handshake after the first is a
 * resumption (TLS 1.3 PSK with a fresh ECDHE share); `resumed` counts the connections that resumed.
 */
export async function driveNewConnections(target: TokenTarget, seconds: number, connections: number): Promise<RunResult & { readonly resumed: number }> {
  const url = new URL(`${target.url}/token`);
  const secure = url.protocol === 'https:';
  const agent = secure ? new https.Agent({ keepAlive: false, maxCachedSessions: 100 }) : new http.Agent({ keepAlive: false });
  const body = target.body ?? TOKEN_BODY;
  const latencies: number[] = [];
  let ok = 0;
  let non2xx = 0;
  let errors = 0;
  let timeouts = 0;
  let resumed = 0;
  const one = () =>
    new Promise<void>((resolve) => {
      const started = performance.now();
      const request = (secure ? https : http).request(
        url,
        { method: 'POST', headers: tokenHeaders(target), agent, timeout: 10_000, ...(secure ? target.tls : {}) },
        (response) => {
          response.on('data', () => undefined);
          response.on('end', () => {
            latencies.push(performance.now() - started);
            target.perRequest?.onResponse(response.headers);
            const status = response.statusCode ?? 0;
            if (status >= 200 && status < 300) ok += 1;
            else non2xx += 1;
            resolve();
          });
          response.on('error', () => {
            errors += 1;
            resolve();
          });
        },
      );
      request.on('socket', (socket) => {
        if (socket instanceof TLSSocket) socket.once('secureConnect', () => (resumed += socket.isSessionReused() ? 1 : 0));
      });
      request.on('timeout', () => {
        timeouts += 1;
        request.destroy(new Error('timed out'));
      });
      request.on('error', () => {
        errors += 1;
        resolve();
      });
      request.end(body);
    });
  const started = performance.now();
  const deadline = started + seconds * 1000;
  await Promise.all(
    Array.from({ length: connections }, async () => {
      while (performance.now() < deadline) await one();
    }),
  );
  const durationSeconds = (performance.now() - started) / 1000;
  agent.destroy();
  latencies.sort((x, y) => x - y);
  const at = (q: number) => Math.round(latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? Number.NaN);
  return {
    tokensPerSecond: ok / durationSeconds,
    p50Ms: at(0.5),
    p99Ms: at(0.99),
    requests: ok + non2xx,
    non2xx,
    errors,
    timeouts,
    durationSeconds,
    loadAverage: loadavg()[0] ?? 0,
    resumed,
  };
}

/** Fails the run when any response was not 2xx, or a connection failed or timed out. */
export async function failOnBadResponses(target: TokenTarget, run: RunResult): Promise<void> {
  if (run.non2xx === 0 && run.errors === 0 && run.timeouts === 0 && run.requests > 0) return;
  let sample: string;
  try {
    const response = await postToken(target);
    sample = `; a request now answers ${response.status}: ${response.text.slice(0, 500)}`;
  } catch (error) {
    sample = `; a request now fails: ${(error as Error).message}`;
  }
  throw new Error(
    `row ${target.row}: ${run.non2xx} non-2xx responses, ${run.errors} connection errors, ${run.timeouts} timeouts out of ${run.requests} requests${sample}`,
  );
}

// ---------------------------------------------------------------------------------------------
// Report helpers.

export interface Check {
  readonly name: string;
  readonly value: number;
  readonly display: string;
  readonly target: string;
  readonly met: boolean | undefined;
}

export function median<T>(values: readonly T[], key: (value: T) => number): T {
  const sorted = [...values].sort((a, b) => key(a) - key(b));
  return sorted[Math.floor((sorted.length - 1) / 2)]!;
}

export const fmt = (value: number, digits = 0) => value.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
export const pct = (value: number) => `${(value * 100).toFixed(1)} %`;

export function checksTable(checks: readonly Check[]): string[] {
  return [
    '| ratio | value | target | met |',
    '|---|---:|---:|---|',
    ...checks.map((check) => `| ${check.name} | ${check.display} | ${check.target} | ${check.met === undefined ? '' : check.met ? 'met' : '**NOT met**'} |`),
  ];
}

// ---------------------------------------------------------------------------------------------
// The run: a watchdog bounds it, SIGINT/SIGTERM stop it, and registered clean-ups (stop the
// children, drop the database) run on every path.

const cleanups: (() => Promise<void>)[] = [];

/** Registers a clean-up that also runs when the run is aborted (watchdog, signal). */
export function onAbort(cleanup: () => Promise<void>): void {
  cleanups.push(cleanup);
}

async function abort(reason: string, code: number): Promise<never> {
  log(reason);
  await Promise.race([Promise.allSettled(cleanups.map((cleanup) => cleanup())), new Promise((resolve) => setTimeout(resolve, 25_000))]);
  process.exit(code);
}

/** Runs `main` (its result is the exit code) under a watchdog of `budgetMs`. */
export async function runBench(budgetMs: number, main: () => Promise<number>): Promise<void> {
  const watchdog = setTimeout(() => void abort(`watchdog: the run exceeded ${Math.round(budgetMs / 1000)} s; stopping`, 2), budgetMs);
  process.once('SIGINT', () => void abort('interrupted', 130));
  process.once('SIGTERM', () => void abort('terminated', 143));
  try {
    process.exitCode = await main();
  } catch (error) {
    log(`FAILED: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
    process.exitCode = 1;
  } finally {
    // Nothing should outlive main(); if something does, the watchdog still ends the run.
    watchdog.unref();
  }
}

// ---------------------------------------------------------------------------------------------
// Who used the cores (Linux /proc; empty or NaN elsewhere). Each bench groups the processes its
// own way (Gatehouse, PostgreSQL, the load generator, anything else) from one sample.

/** USER_HZ: the unit of /proc's CPU times. */
const CLOCK_TICKS = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8', timeout: 5_000 }).trim()) || 100;
  } catch {
    return 100;
  }
})();

/** utime + stime, in seconds, from a /proc stat file: a process (all threads) or one thread. */
export function statCpuSeconds(statFile: string): number | undefined {
  try {
    const stat = readFileSync(statFile, 'utf8');
    // Fields after the command name, which is in parentheses and may hold spaces.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
  } catch {
    return undefined;
  }
}

export interface ProcessCpu {
  readonly ppid: number;
  readonly seconds: number;
  readonly postgres: boolean;
  /** For PostgreSQL processes, their title (a client backend names its database). */
  readonly command: string;
}

export interface CpuSample {
  readonly at: number;
  /** Busy CPU seconds of the whole machine (all cores, all processes). */
  readonly machine: number;
  /** CPU seconds the hypervisor gave to others while this VM's vCPUs wanted to run (/proc/stat "steal"). */
  readonly steal: number;
  /** Every process /proc lists; empty when /proc is not readable. */
  readonly processes: ReadonlyMap<number, ProcessCpu>;
}

export function sampleCpu(): CpuSample {
  let machine = 0;
  for (const cpu of cpus()) machine += cpu.times.user + cpu.times.nice + cpu.times.sys + cpu.times.irq;
  const processes = new Map<number, ProcessCpu>();
  let pids: string[] = [];
  try {
    pids = readdirSync('/proc').filter((name) => /^\d+$/.test(name));
  } catch {
    // Not Linux.
  }
  for (const name of pids) {
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const postgres = stat.includes(' (postgres) ');
      processes.set(Number(name), {
        ppid: Number(fields[1]),
        seconds: (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS,
        postgres,
        command: postgres ? readFileSync(`/proc/${name}/cmdline`, 'utf8') : '',
      });
    } catch {
      // The process ended while being read.
    }
  }
  let steal = Number.NaN;
  try {
    // cpu  user nice system idle iowait irq softirq steal ...
    steal = Number(readFileSync('/proc/stat', 'utf8').split('\n')[0]?.trim().split(/\s+/)[8]) / CLOCK_TICKS;
  } catch {
    // Not Linux.
  }
  return { at: performance.now(), machine: machine / 1000, steal, processes };
}

/**
 * A PostgreSQL process that works for `databaseName`: its client backends, and the server's shared
 * processes (WAL writer, checkpointer, ...), which serve every database, ours included. Backends of
 * other databases (other work on the machine) are not ours.
 */
export function servesDatabase(proc: ProcessCpu, databaseName: string | undefined): boolean {
  if (!proc.postgres) return false;
  const clientBackend = /\d+\.\d+\.\d+\.\d+\(\d+\)|\[local\]/.test(proc.command);
  return !clientBackend || (databaseName !== undefined && proc.command.includes(` ${databaseName} `));
}

// ---------------------------------------------------------------------------------------------
// Memory of a child process (Linux /proc; figures are undefined elsewhere).

const MIB = 1024 * 1024;

/** VmRSS (resident now) and VmHWM (peak resident since start or the last reset) of `pid`, in MiB. */
export function readRss(pid: number): { rssMiB: number; hwmMiB: number } | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kib = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB$`, 'm').exec(status)?.[1] ?? Number.NaN);
    const rss = kib('VmRSS');
    const hwm = kib('VmHWM');
    return Number.isFinite(rss) && Number.isFinite(hwm) ? { rssMiB: (rss * 1024) / MIB, hwmMiB: (hwm * 1024) / MIB } : undefined;
  } catch {
    return undefined;
  }
}

/** Processes whose parent is `pid` (Gatehouse's password process), oldest first; empty off Linux. */
export function childPids(pid: number | undefined): number[] {
  if (pid === undefined) return [];
  const children: number[] = [];
  try {
    for (const name of readdirSync('/proc')) {
      if (!/^\d+$/.test(name)) continue;
      try {
        const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
        if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === pid) children.push(Number(name));
      } catch {
        // Ended while being read.
      }
    }
  } catch {
    // Not Linux.
  }
  return children.sort((a, b) => a - b);
}

export interface RssReport {
  /** VmRSS when sampling began: the process at rest before the load. */
  readonly idleMiB: number;
  /**
   * Peak resident set during the sampling: VmHWM after it was reset at the start (exact, includes
   * spikes between samples), else the largest sampled VmRSS.
   */
  readonly peakMiB: number;
  /** The largest VmRSS seen by polling every `intervalMs`. */
  readonly sampledPeakMiB: number;
  /** Whether VmHWM could be reset at the start (writing 5 to /proc/<pid>/clear_refs). */
  readonly hwmReset: boolean;
  /** VmHWM before the reset: the peak since the process started (start-up included). */
  readonly lifetimePeakBeforeMiB: number;
  readonly samples: number;
}

export interface RssSampler {
  /** Stops sampling; undefined when /proc could not be read (not Linux, or the process is gone). */
  stop(): RssReport | undefined;
}

/**
 * Samples a process's resident memory while a load runs: idle RSS now, then the peak until
 * `stop()`. VmHWM is reset first where the kernel allows it, so the peak is the load's own and
 * not start-up's, and no spike between two samples is missed.
 */
export function sampleRss(pid: number | undefined, intervalMs = 100): RssSampler {
  const first = pid === undefined ? undefined : readRss(pid);
  if (pid === undefined || first === undefined) return { stop: () => undefined };
  let hwmReset = false;
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, '5');
    hwmReset = true;
  } catch {
    // Not allowed here: fall back to polling VmRSS.
  }
  let sampledPeak = first.rssMiB;
  let samples = 1;
  const timer = setInterval(() => {
    const now = readRss(pid);
    if (now === undefined) return;
    samples += 1;
    sampledPeak = Math.max(sampledPeak, now.rssMiB);
  }, intervalMs);
  timer.unref();
  return {
    stop() {
      clearInterval(timer);
      const last = readRss(pid);
      if (last !== undefined) {
        samples += 1;
        sampledPeak = Math.max(sampledPeak, last.rssMiB);
      }
      const peak = hwmReset && last !== undefined ? Math.max(last.hwmMiB, sampledPeak) : sampledPeak;
      return { idleMiB: first.rssMiB, peakMiB: peak, sampledPeakMiB: sampledPeak, hwmReset, lifetimePeakBeforeMiB: first.hwmMiB, samples };
    },
  };
}

/** The peak-RSS target (the performance issue: the largest process ≤ 200 MB under the bench load), as a check: 200 MB is 190.7 MiB. */
export const RSS_TARGET_MIB = (200 * 1e6) / 2 ** 20;

export function rssCheck(what: string, report: RssReport | undefined): Check[] {
  if (report === undefined) return [];
  return [
    {
      name: `Gatehouse peak RSS under load (${what})`,
      value: report.peakMiB,
      display: `${fmt(report.peakMiB)} MiB`,
      target: `≤ ${fmt(RSS_TARGET_MIB, 1)} MiB (200 MB)`,
      met: report.peakMiB <= RSS_TARGET_MIB,
    },
  ];
}

/** One Markdown line on a load's memory. */
export function rssLine(what: string, report: RssReport | undefined): string {
  if (report === undefined) return `Gatehouse memory (${what}): not measured (/proc not readable).`;
  return (
    `Gatehouse memory (${what}): ${fmt(report.idleMiB)} MiB resident before the load, peak ${fmt(report.peakMiB)} MiB during it ` +
    `(${report.hwmReset ? 'VmHWM reset at the start of the load' : `largest of ${report.samples} VmRSS samples`}; ` +
    `peak since start-up before the load: ${fmt(report.lifetimePeakBeforeMiB)} MiB).`
  );
}

// ---------------------------------------------------------------------------------------------
// The suite protocol (bench/run.ts): with BENCH_OUTPUT=<file>, a bench also writes its title,
// Markdown, checks and data there as JSON.

export interface BenchOutput {
  readonly title: string;
  readonly markdown: string;
  readonly checks: readonly Check[];
  readonly data: unknown;
}

/** Writes `output` to $BENCH_OUTPUT when it is set (the suite runner reads it); otherwise nothing. */
export async function writeBenchOutput(output: BenchOutput): Promise<void> {
  const file = process.env['BENCH_OUTPUT'];
  if (file === undefined || file === '') return;
  await writeFile(file, JSON.stringify(output, null, 2) + '\n');
  log(`suite output written to ${file}`);
}
