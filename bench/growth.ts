import { createHash, generateKeyPairSync, randomBytes } from 'node:crypto';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { cpus, loadavg } from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import pg from 'pg';
import type { Queryable } from '../src/db/database.js';
import { createClientStore } from '../src/db/clients.js';
import { createMaintenanceStore } from '../src/db/maintenance.js';
import { createOidcModelStore } from '../src/db/oidc-models.js';
import { createResourceServerStore } from '../src/db/resource-servers.js';
import { CookieClient, formAction, hiddenField } from '../test/support/cookie-client.js';
import {
  adminPost,
  alive,
  basic,
  checksTable,
  createBenchDatabase,
  DEFAULT_DATABASE_URL,
  drive,
  envFlag,
  envNumber,
  failOnBadResponses,
  fileStamp,
  fmt,
  launchGatehouse,
  log,
  onAbort,
  pct,
  requestToken,
  RESULTS_DIR,
  rssCheck,
  rssLine,
  runBench,
  sampleCpu,
  sampleRss,
  sourceVersion,
  TOKEN_BODY,
  writeBenchOutput,
  type BenchDatabase,
  type Check,
  type Gatehouse,
  type RssReport,
  type TokenTarget,
} from './support.js';

/**
 * `npm run bench:growth`: does Gatehouse slow down as its database fills (issue "Performance":
 * no figure degrades more than 10 % from 10 to 10,000 clients or with 1 M model rows)?
 *
 * On PostgreSQL (it needs a real server: PGlite is not what a large deployment runs on):
 * 1. Gatehouse as a child process; through the admin API a plain and an inner resource server
 *    with a client-credentials client each, a first-party sign-in client (authorization_code,
 *    refresh_token) and one user, signed in BENCH_GROWTH_LOOPS times (offline_access) so each
 *    loop holds a session cookie and a refresh token.
 * 2. Small database: client credentials (plain, inner) with autocannon; refresh-token rotation
 *    and a silent authorization (prompt=none with the session) + code exchange, each in
 *    BENCH_GROWTH_LOOPS concurrent loops: the sign-in-free paths that read and write the
 *    provider's model table (Session, Grant, AuthorizationCode, RefreshToken, AccessToken).
 * 3. Growth, straight into the real tables with one INSERT ... SELECT generate_series each:
 *    10,000 resource servers, 10,000 clients (hashed secrets, metadata like the admin API
 *    writes), and 1,000,000 oidc_models rows cloned from the real rows step 1 left (a mix of
 *    AccessToken, RefreshToken, Grant, Session, AuthorizationCode, Interaction; grant, account,
 *    client and uid keys shared the way real ones are; 5 % expired, half the codes and refresh
 *    tokens consumed); then VACUUM ANALYZE and a CHECKPOINT, so neither autovacuum nor a forced
 *    checkpoint lands inside a measurement (the small phase, too, starts right after a CHECKPOINT).
 * While each path is measured: CPU by Gatehouse, PostgreSQL, this process and anything else (/proc),
 * WAL bytes and full-page images per request, commits, deleted model rows.
 * 4. Large database: the same measurements, and EXPLAIN ANALYZE of the adapter's own queries
 *    (captured from src/db, run inside a rolled-back transaction) to show which index each uses.
 *
 * Environment (all optional):
 *   BENCH_SECONDS=6                      measured seconds per path and phase
 *   BENCH_WARMUP_SECONDS=2               warm-up per path and phase
 *   BENCH_CONNECTIONS=16                 autocannon connections (client credentials)
 *   BENCH_GROWTH_LOOPS=4                 concurrent loops for the refresh and code paths
 *   BENCH_GROWTH_CLIENTS=10000           clients added
 *   BENCH_GROWTH_RESOURCE_SERVERS=10000  resource servers added
 *   BENCH_GROWTH_MODEL_ROWS=1000000      oidc_models rows added
 *   BENCH_GROWTH_REBUILD_INDEXES=1       drop oidc_models' key and indexes for the insert, rebuild after (0: keep them)
 *   BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres
 *   BENCH_ENFORCE=1                      exit 1 when a target is not met
 */

const settings = {
  seconds: envNumber('BENCH_SECONDS', 6, 1, 300),
  warmupSeconds: envNumber('BENCH_WARMUP_SECONDS', 2, 0, 60),
  connections: envNumber('BENCH_CONNECTIONS', 16, 1, 256),
  loops: envNumber('BENCH_GROWTH_LOOPS', 4, 1, 64),
  clients: envNumber('BENCH_GROWTH_CLIENTS', 10_000, 1, 1_000_000),
  resourceServers: envNumber('BENCH_GROWTH_RESOURCE_SERVERS', 10_000, 1, 1_000_000),
  modelRows: envNumber('BENCH_GROWTH_MODEL_ROWS', 1_000_000, 20, 20_000_000),
  /** Drop oidc_models' indexes for the bulk insert and build them again after (0: keep them, about twice as slow). */
  rebuildIndexes: envNumber('BENCH_GROWTH_REBUILD_INDEXES', 1, 0, 1) === 1,
  databaseUrl: process.env['BENCH_DATABASE_URL'] || DEFAULT_DATABASE_URL,
  enforce: envFlag('BENCH_ENFORCE'),
};

const TARGETS = { throughputRatio: 0.9, p99Ratio: 1.1 } as const;
const REDIRECT_URI = 'http://127.0.0.1:9/cb';
const RESOURCE = { plain: 'https://plain.growth.bench.invalid', inner: 'https://inner.growth.bench.invalid' } as const;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

// ---------------------------------------------------------------------------------------------
// Set-up through the admin API and the hosted pages.

interface Loop {
  readonly jar: CookieClient;
  refreshToken: string;
}

interface Setup {
  readonly gatehouse: Gatehouse;
  readonly url: string;
  readonly cc: { readonly plain: TokenTarget; readonly inner: TokenTarget };
  readonly signInClient: { readonly id: string; readonly authorization: string };
  readonly loops: readonly Loop[];
  /** The inner resource server's public JWK: the generated resource servers with an inner key reuse it. */
  readonly innerJwk: Record<string, unknown>;
  readonly ccClientId: string;
  readonly signInClientId: string;
}

function pkce() {
  const verifier = randomBytes(32).toString('base64url');
  return { verifier, challenge: createHash('sha256').update(verifier).digest('base64url') };
}

function authorizationUrl(url: string, clientId: string, params: Record<string, string>): URL {
  const authorize = new URL(`${url}/auth`);
  for (const [name, value] of Object.entries({ client_id: clientId, response_type: 'code', redirect_uri: REDIRECT_URI, code_challenge_method: 'S256', ...params })) {
    authorize.searchParams.set(name, value);
  }
  return authorize;
}

async function exchangeCode(setup: Pick<Setup, 'url' | 'signInClient'>, code: string, verifier: string): Promise<{ refresh_token?: string; id_token?: string }> {
  const response = await fetch(`${setup.url}/token`, {
    method: 'POST',
    headers: { authorization: setup.signInClient.authorization, 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
    body: new URLSearchParams({ grant_type: 'authorization_code', code, redirect_uri: REDIRECT_URI, code_verifier: verifier }),
  });
  const text = await response.text();
  if (response.status !== 200) throw new Error(`code exchange answered ${response.status}: ${text.slice(0, 300)}`);
  const body = JSON.parse(text) as { refresh_token?: string; id_token?: string };
  if (typeof body.id_token !== 'string') throw new Error(`code exchange: no id_token in ${text.slice(0, 300)}`);
  return body;
}

/** A sign-in through the pages (login, then consent when asked: offline_access needs prompt=consent); returns the loop's state. */
async function signIn(setup: Pick<Setup, 'url' | 'signInClient'>, user: { username: string; password: string }): Promise<Loop> {
  const jar = new CookieClient();
  const { verifier, challenge } = pkce();
  const state = randomBytes(16).toString('base64url');
  const start = authorizationUrl(setup.url, setup.signInClient.id, { scope: 'openid offline_access', prompt: 'consent', code_challenge: challenge, state });
  let page = await jar.follow(await jar.get(start), setup.url);
  let html = await page.text();
  const loginAction = formAction(html, /\/login$/);
  if (page.status !== 200 || loginAction === undefined) throw new Error(`sign-in: expected the login page, got ${page.status}`);
  page = await jar.follow(await jar.postForm(new URL(loginAction, setup.url), { csrf: hiddenField(html, 'csrf') ?? '', ...user }), setup.url);
  if (page.status === 200) {
    html = await page.text();
    const consentAction = formAction(html, /\/consent$/);
    if (consentAction === undefined) throw new Error('sign-in: after the login form, neither a redirect nor the consent page');
    page = await jar.follow(await jar.postForm(new URL(consentAction, setup.url), { csrf: hiddenField(html, 'csrf') ?? '' }), setup.url);
  }
  const location = page.headers.get('location');
  if (page.status < 300 || page.status >= 400 || location === null) throw new Error(`sign-in: no redirect to the client (${page.status})`);
  await page.arrayBuffer();
  const callback = new URL(location);
  const code = callback.searchParams.get('code');
  if (code === null || callback.searchParams.get('state') !== state) throw new Error(`sign-in: callback without code or with another state: ${location}`);
  const tokens = await exchangeCode(setup, code, verifier);
  if (typeof tokens.refresh_token !== 'string') throw new Error('sign-in: offline_access gave no refresh token');
  return { jar, refreshToken: tokens.refresh_token };
}

async function configure(gatehouse: Gatehouse): Promise<Setup> {
  const { url } = gatehouse;
  const adminToken = await gatehouse.adminToken(['admin:clients', 'admin:resource-servers', 'admin:users']);
  const { publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const innerJwk = { ...publicKey.export({ format: 'jwk' }), kid: 'growth-inner', use: 'enc', alg: 'ECDH-ES+A256KW' };

  await adminPost(url, adminToken, '/resource-servers', { identifier: RESOURCE.plain, name: 'growth plain', scopes: ['bench:read'], signing_alg: 'ES256' });
  await adminPost(url, adminToken, '/resource-servers', {
    identifier: RESOURCE.inner,
    name: 'growth inner',
    scopes: ['bench:read'],
    signing_alg: 'ES256',
    inner_encryption_jwk: innerJwk,
  });
  const ccClient = async (row: 'plain' | 'inner') => {
    const client = await adminPost<{ client_id: string; client_secret: string }>(url, adminToken, '/clients', {
      client_name: `growth ${row}`,
      grant_types: ['client_credentials'],
      allowed_resources: [RESOURCE[row]],
    });
    return { id: client.client_id, target: { row: `client credentials, ${row}`, url, authorization: basic(client.client_id, client.client_secret) } };
  };
  const plain = await ccClient('plain');
  const inner = await ccClient('inner');
  const client = await adminPost<{ client_id: string; client_secret: string }>(url, adminToken, '/clients', {
    client_name: 'growth sign-in',
    grant_types: ['authorization_code', 'refresh_token'],
    redirect_uris: [REDIRECT_URI],
    first_party: true,
  });
  const user = { username: 'growth-user', password: randomBytes(18).toString('base64url') };
  await adminPost(url, adminToken, '/users', user);

  const signInClient = { id: client.client_id, authorization: basic(client.client_id, client.client_secret) };
  const loops: Loop[] = [];
  for (let i = 0; i < settings.loops; i++) loops.push(await signIn({ url, signInClient }, user));
  // One sign-in left at the login page: an Interaction row, the template for generated ones.
  const { challenge } = pkce();
  const pending = new CookieClient();
  const unfinished = await pending.follow(await pending.get(authorizationUrl(url, signInClient.id, { scope: 'openid', code_challenge: challenge, state: 'pending' })), url);
  if (unfinished.status !== 200) throw new Error(`an unfinished sign-in should show the login page, got ${unfinished.status}`);
  await unfinished.arrayBuffer();

  return { gatehouse, url, cc: { plain: plain.target, inner: inner.target }, signInClient, loops, innerJwk, ccClientId: plain.id, signInClientId: client.client_id };
}

// ---------------------------------------------------------------------------------------------
// The sign-in-free paths through the model table.

/** Rotates one loop's refresh token (RefreshToken find + consume + insert, Grant find, an opaque AccessToken, an ID token). */
async function refreshOnce(setup: Setup, loop: Loop): Promise<void> {
  const response = await fetch(`${setup.url}/token`, {
    method: 'POST',
    headers: { authorization: setup.signInClient.authorization, 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
    body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: loop.refreshToken }),
  });
  const text = await response.text();
  if (response.status !== 200) throw new Error(`refresh answered ${response.status}: ${text.slice(0, 200)}`);
  const body = JSON.parse(text) as { refresh_token?: unknown; access_token?: unknown };
  if (typeof body.refresh_token !== 'string' || typeof body.access_token !== 'string') throw new Error('refresh: no rotated refresh token or no access token');
  loop.refreshToken = body.refresh_token;
}

/**
 * A silent authorization with the loop's session (prompt=none: Session find and save, Grant find
 * and save, AuthorizationCode insert) and the code's exchange (code find + consume, Session by
 * uid, Grant, an opaque AccessToken, an ID token).
 */
async function codeRoundTrip(setup: Setup, loop: Loop): Promise<void> {
  const { verifier, challenge } = pkce();
  const state = randomBytes(12).toString('base64url');
  const response = await loop.jar.get(authorizationUrl(setup.url, setup.signInClient.id, { scope: 'openid', prompt: 'none', code_challenge: challenge, state }));
  await response.arrayBuffer();
  const location = response.headers.get('location');
  if (response.status < 300 || response.status >= 400 || location === null) throw new Error(`silent authorization answered ${response.status}`);
  const callback = new URL(location, setup.url);
  const code = callback.searchParams.get('code');
  if (code === null) throw new Error(`silent authorization: no code (${callback.searchParams.get('error') ?? location})`);
  if (callback.searchParams.get('state') !== state) throw new Error('silent authorization: another state');
  await exchangeCode(setup, code, verifier);
}

interface PathRun {
  readonly perSecond: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly requests: number;
  readonly loadAverage: number;
  /** What the server side did meanwhile (absent for unmeasured warm-ups). */
  readonly server: ServerView;
}

// Who used the cores while a path was measured, and what PostgreSQL wrote: when a phase is slower,
// this says whether Gatehouse did more work per request, PostgreSQL was busier (WAL, the pruner's
// deletes), or something outside the run took the cores.

interface Snapshot {
  readonly at: number;
  /** Busy CPU seconds: the whole machine, Gatehouse (all its threads), every postgres process, this process. */
  readonly machine: number;
  readonly gatehouse: number;
  /** Per process: one that ends during a window must not take its past CPU time with it. */
  readonly postgres: ReadonlyMap<number, number>;
  readonly bench: number;
  readonly walBytes: number;
  /** Full-page images written to WAL, server-wide (pg_stat_wal, PostgreSQL 14+; NaN before). */
  readonly fullPageImages: number;
  readonly commits: number;
  readonly rowsDeleted: number;
}

interface ServerView {
  readonly cores: { readonly gatehouse: number; readonly postgres: number; readonly bench: number; readonly other: number };
  readonly walMiBPerSecond: number;
  readonly walBytes: number;
  /** Server-wide: other databases' writes count too. */
  readonly fullPageImages: number;
  readonly commitsPerSecond: number;
  /** oidc_models rows deleted in the window (the pruner, revocations, destroyed interactions). */
  readonly rowsDeleted: number;
}

/** A WAL position such as `1A/2B3C4D5E` as a byte offset. */
const lsnBytes = (lsn: string) => {
  const [high = '0', low = '0'] = lsn.split('/');
  return Number.parseInt(high, 16) * 2 ** 32 + Number.parseInt(low, 16);
};

async function snapshot(setup: Setup, db: pg.Client): Promise<Snapshot> {
  const { rows } = await db.query<{ lsn: string; commits: string; deleted: string }>(
    `SELECT pg_current_wal_lsn()::text AS lsn,
            (SELECT xact_commit FROM pg_stat_database WHERE datname = current_database())::text AS commits,
            (SELECT n_tup_del FROM pg_stat_user_tables WHERE relname = 'oidc_models')::text AS deleted`,
  );
  const fullPageImages = await db
    .query<{ fpi: string }>('SELECT wal_fpi::text AS fpi FROM pg_stat_wal')
    .then((result) => Number(result.rows[0]?.fpi ?? Number.NaN))
    .catch(() => Number.NaN);
  const cpu = sampleCpu();
  // Every PostgreSQL process counts: the shared ones and every database's backends.
  const postgres = new Map([...cpu.processes].filter(([, proc]) => proc.postgres).map(([pid, proc]) => [pid, proc.seconds]));
  const gatehouse = cpu.processes.get(setup.gatehouse.child.process.pid ?? -1)?.seconds ?? 0;
  const usage = process.cpuUsage();
  return {
    at: cpu.at,
    machine: cpu.machine,
    gatehouse,
    postgres,
    bench: (usage.user + usage.system) / 1e6,
    walBytes: lsnBytes(rows[0]?.lsn ?? '0/0'),
    fullPageImages,
    commits: Number(rows[0]?.commits ?? Number.NaN),
    rowsDeleted: Number(rows[0]?.deleted ?? Number.NaN),
  };
}

function serverBetween(before: Snapshot, after: Snapshot): ServerView {
  const seconds = (after.at - before.at) / 1000;
  const per = (key: 'machine' | 'gatehouse' | 'bench') => (after[key] - before[key]) / seconds;
  const gatehouse = per('gatehouse');
  // Processes that started in the window count from zero; those that ended in it count as "anything else".
  let postgresSeconds = 0;
  for (const [pid, end] of after.postgres) postgresSeconds += end - (before.postgres.get(pid) ?? 0);
  const postgres = postgresSeconds / seconds;
  const bench = per('bench');
  return {
    cores: { gatehouse, postgres, bench, other: Math.max(0, per('machine') - gatehouse - postgres - bench) },
    walMiBPerSecond: (after.walBytes - before.walBytes) / 1024 / 1024 / seconds,
    walBytes: after.walBytes - before.walBytes,
    fullPageImages: after.fullPageImages - before.fullPageImages,
    // PostgreSQL's statistics lag by up to a second: an approximation.
    commitsPerSecond: (after.commits - before.commits) / seconds,
    rowsDeleted: after.rowsDeleted - before.rowsDeleted,
  };
}

/** Runs `operation` in every loop, back to back: warm-up, then `seconds` measured. Any failure fails the run. */
async function runLoops(setup: Setup, operation: (setup: Setup, loop: Loop) => Promise<void>, warmupSeconds: number, seconds: number): Promise<Omit<PathRun, 'server'>> {
  const warmupEnd = performance.now() + warmupSeconds * 1000;
  const end = warmupEnd + seconds * 1000;
  const latencies: number[] = [];
  await Promise.all(
    setup.loops.map(async (loop) => {
      while (performance.now() < end) {
        const started = performance.now();
        await operation(setup, loop);
        const ended = performance.now();
        if (started >= warmupEnd && ended <= end) latencies.push(ended - started);
      }
    }),
  );
  latencies.sort((a, b) => a - b);
  // Throughput over the operations that both started and ended in the window, as autocannon counts.
  return {
    perSecond: latencies.length / seconds,
    p50Ms: percentile(latencies, 50),
    p99Ms: percentile(latencies, 99),
    requests: latencies.length,
    loadAverage: loadavg()[0] ?? 0,
  };
}

type PathName = 'ccPlain' | 'ccInner' | 'refresh' | 'code';
const PATHS: Record<PathName, string> = {
  ccPlain: 'client credentials, plain JWT',
  ccInner: 'client credentials, inner JWE',
  refresh: 'refresh-token rotation',
  code: 'silent authorization + code exchange',
};

interface Phase {
  readonly paths: Record<PathName, PathRun>;
  readonly memory: RssReport | undefined;
}

/**
 * Every path once before anything is measured, so the small phase (which comes first) does not
 * pay for the JIT and the connection pool warming up, and the comparison does not flatter the large one.
 */
async function warmUp(setup: Setup): Promise<void> {
  const seconds = Math.max(1, settings.warmupSeconds);
  for (const target of [setup.cc.plain, setup.cc.inner]) await failOnBadResponses(target, await drive(target, seconds, { connections: settings.connections }));
  await runLoops(setup, refreshOnce, 0, seconds);
  await runLoops(setup, codeRoundTrip, 0, seconds);
}

async function measurePhase(setup: Setup, db: pg.Client, phase: string): Promise<Phase> {
  const memorySampler = sampleRss(setup.gatehouse.child.process.pid);
  const watched = async (run: () => Promise<Omit<PathRun, 'server'>>): Promise<PathRun> => {
    const before = await snapshot(setup, db);
    const result = await run();
    return { ...result, server: serverBetween(before, await snapshot(setup, db)) };
  };
  const cc = async (target: TokenTarget): Promise<PathRun> => {
    if (settings.warmupSeconds > 0) await failOnBadResponses(target, await drive(target, settings.warmupSeconds, { connections: settings.connections }));
    return watched(async () => {
      const run = await drive(target, settings.seconds, { connections: settings.connections });
      await failOnBadResponses(target, run);
      return { perSecond: run.tokensPerSecond, p50Ms: run.p50Ms, p99Ms: run.p99Ms, requests: run.requests, loadAverage: run.loadAverage };
    });
  };
  const loops = async (operation: (setup: Setup, loop: Loop) => Promise<void>): Promise<PathRun> => {
    if (settings.warmupSeconds > 0) await runLoops(setup, operation, 0, settings.warmupSeconds);
    return watched(() => runLoops(setup, operation, 0, settings.seconds));
  };
  const paths = {} as Record<PathName, PathRun>;
  paths.ccPlain = await cc(setup.cc.plain);
  paths.ccInner = await cc(setup.cc.inner);
  paths.refresh = await loops(refreshOnce);
  paths.code = await loops(codeRoundTrip);
  for (const name of Object.keys(PATHS) as PathName[]) {
    const run = paths[name];
    const server = run.server;
    log(
      `${phase}: ${PATHS[name]}: ${run.perSecond.toFixed(0)}/s, p50 ${run.p50Ms.toFixed(1)} ms, p99 ${run.p99Ms.toFixed(1)} ms, load ${run.loadAverage.toFixed(1)}; ` +
        `cores: Gatehouse ${server.cores.gatehouse.toFixed(2)}, PostgreSQL ${server.cores.postgres.toFixed(2)}, bench ${server.cores.bench.toFixed(2)}, other ${server.cores.other.toFixed(2)}; ` +
        `WAL ${server.walMiBPerSecond.toFixed(1)} MiB/s, ${server.commitsPerSecond.toFixed(0)} commits/s, ${server.rowsDeleted} model rows deleted`,
    );
  }
  return { paths, memory: memorySampler.stop() };
}

// ---------------------------------------------------------------------------------------------
// Growth: straight into the real tables.

/** A base64url token id like oidc-provider's (43 characters), derived from `expr` (SQL text) and the run's salt ($1). */
const tokenId = (expr: string) => `rtrim(translate(encode(sha256(convert_to($1::text || ${expr}, 'UTF8')), 'base64'), '+/', '-_'), '=')`;
/** A client id like the admin API's (16 random bytes, base64url: 22 characters). */
const clientId = (expr: string) => `substr(${tokenId(`'client:' || (${expr})::text`)}, 1, 22)`;
const growthIdentifier = (expr: string) => `'https://api-' || (${expr})::text || '.growth.bench.invalid'`;

/** Where each model sits in a block of 20 generated rows: the mix of a busy deployment's table. */
const MODEL_SLOTS: readonly { model: string; slots: number; ttlSeconds: number; consumable: boolean }[] = [
  { model: 'AccessToken', slots: 6, ttlSeconds: 900, consumable: false },
  { model: 'RefreshToken', slots: 4, ttlSeconds: 14 * 24 * 3600, consumable: true },
  { model: 'Grant', slots: 3, ttlSeconds: 14 * 24 * 3600, consumable: false },
  { model: 'Session', slots: 3, ttlSeconds: 12 * 3600, consumable: false },
  { model: 'AuthorizationCode', slots: 2, ttlSeconds: 60, consumable: true },
  { model: 'Interaction', slots: 2, ttlSeconds: 1800, consumable: false },
];
/** The slots of the block's first Grant and first Session: the other rows of the block point at them. */
const GRANT_SLOT = 10;
const SESSION_SLOT = 13;
const EXPIRED_PERCENT = 5;

interface Timing {
  readonly what: string;
  readonly rows: number;
  readonly seconds: number;
}

interface Growth {
  /** Mixed into every generated id, so that a run's rows can be found again by their index. */
  readonly salt: string;
  readonly timings: Timing[];
  readonly mix: { model: string; rows: number; expired: number; consumed: number }[];
  readonly sizes: { table: string; rows: number; totalMiB: number }[];
}

async function timed<T>(timings: Timing[], what: string, rows: number, work: () => Promise<T>): Promise<T> {
  const started = performance.now();
  const result = await work();
  const seconds = (performance.now() - started) / 1000;
  timings.push({ what, rows, seconds });
  log(`${what}: ${seconds.toFixed(1)} s`);
  return result;
}

async function tableSizes(db: pg.Client): Promise<Growth['sizes']> {
  const { rows } = await db.query<{ name: string; rows: string; bytes: string }>(
    `SELECT 'clients' AS name, (SELECT count(*) FROM clients)::text AS rows, pg_total_relation_size('clients')::text AS bytes
     UNION ALL SELECT 'resource_servers', (SELECT count(*) FROM resource_servers)::text, pg_total_relation_size('resource_servers')::text
     UNION ALL SELECT 'oidc_models', (SELECT count(*) FROM oidc_models)::text, pg_total_relation_size('oidc_models')::text`,
  );
  return rows.map((row) => ({ table: row.name, rows: Number(row.rows), totalMiB: Number(row.bytes) / 1024 / 1024 }));
}

const quoteIdent = (name: string) => `"${name.replaceAll('"', '""')}"`;

/**
 * Inside the caller's transaction: drops oidc_models' primary key and indexes and returns how to
 * build them again from the definitions the catalog held. Building an index once after a bulk
 * insert takes about half the time of maintaining it row by row (measured here: 47 s against
 * 92 s for a million rows); the result is the same schema.
 */
async function dropModelIndexes(db: pg.Client): Promise<{ count: number; rebuild(): Promise<void> }> {
  const { rows: keys } = await db.query<{ name: string; definition: string }>(
    "SELECT conname AS name, pg_get_constraintdef(oid) AS definition FROM pg_constraint WHERE conrelid = 'oidc_models'::regclass AND contype = 'p'",
  );
  const { rows: indexes } = await db.query<{ name: string; definition: string }>(
    "SELECT indexname AS name, indexdef AS definition FROM pg_indexes WHERE schemaname = current_schema() AND tablename = 'oidc_models' AND NOT (indexname = ANY($1))",
    [keys.map((key) => key.name)],
  );
  for (const key of keys) await db.query(`ALTER TABLE oidc_models DROP CONSTRAINT ${quoteIdent(key.name)}`);
  for (const index of indexes) await db.query(`DROP INDEX ${quoteIdent(index.name)}`);
  return {
    count: keys.length + indexes.length,
    async rebuild() {
      // A larger sort memory for this transaction only: the builds sort a million keys each.
      await db.query("SET LOCAL maintenance_work_mem = '256MB'");
      for (const key of keys) await db.query(`ALTER TABLE oidc_models ADD CONSTRAINT ${quoteIdent(key.name)} ${key.definition}`);
      for (const index of indexes) await db.query(index.definition);
    },
  };
}

async function grow(db: pg.Client, setup: Setup): Promise<Growth> {
  const salt = randomBytes(8).toString('hex');
  const timings: Timing[] = [];

  // Resource servers: a third with an inner key (the probe's public JWK), some whole-token encrypted.
  await timed(timings, `INSERT ${fmt(settings.resourceServers)} resource_servers`, settings.resourceServers, () =>
    db.query(
      `INSERT INTO resource_servers (identifier, name, scopes, access_token_ttl, signing_alg, inner_encryption_jwk, encrypt_whole_token)
       SELECT ${growthIdentifier('i')}, 'Growth API ' || i, ARRAY['api' || i || ':read', 'api' || i || ':write', 'api' || i || ':admin'],
              300 * (1 + i % 4), 'ES256', CASE WHEN i % 3 = 0 THEN $1::jsonb END, i % 9 = 0
         FROM generate_series(1, $2::int) AS i`,
      [JSON.stringify(setup.innerJwk), settings.resourceServers],
    ),
  );

  // Clients: most are services (metadata as the admin API wrote the probe's), every fourth a web
  // app with its own redirect URI (metadata as the sign-in client's); each may call 1–3 APIs.
  const { rows: templates } = await db.query<{ client_id: string; metadata: unknown }>('SELECT client_id, metadata FROM clients WHERE client_id = ANY($1)', [
    [setup.ccClientId, setup.signInClientId],
  ]);
  const metadataOf = (id: string) => JSON.stringify(templates.find((row) => row.client_id === id)?.metadata ?? {});
  await timed(timings, `INSERT ${fmt(settings.clients)} clients`, settings.clients, () =>
    db.query(
      `INSERT INTO clients (client_id, client_name, client_secret_hash, metadata, allowed_resources, first_party)
       SELECT ${clientId('i')}, 'Growth client ' || i,
              'hmac-sha256$' || ${tokenId(`'secret:' || i::text`)},
              CASE WHEN i % 4 = 0 THEN jsonb_set($3::jsonb, '{redirect_uris}', jsonb_build_array('https://app-' || i || '.growth.bench.invalid/cb')) ELSE $2::jsonb END,
              CASE WHEN i % 4 = 0 THEN '{}'::text[]
                   ELSE (SELECT array_agg(${growthIdentifier(`1 + (i * k * 7919) % $5::int`)}) FROM generate_series(1, 1 + i % 3) AS k) END,
              i % 8 = 0
         FROM generate_series(1, $4::int) AS i`,
      [salt, metadataOf(setup.ccClientId), metadataOf(setup.signInClientId), settings.clients, settings.resourceServers],
    ),
  );

  // Model rows, cloned from the real ones the sign-ins left (one of each model).
  const { rows: real } = await db.query<{ model: string; payload: Record<string, unknown> }>(
    'SELECT DISTINCT ON (model) model, payload FROM oidc_models ORDER BY model, consumed_at NULLS FIRST, expires_at DESC',
  );
  const slots: { slot: number; model: string; payload: Record<string, unknown>; ttl: number; consumable: boolean }[] = [];
  for (const kind of MODEL_SLOTS) {
    const template = real.find((row) => row.model === kind.model);
    if (template === undefined) throw new Error(`no ${kind.model} row to clone (models present: ${real.map((row) => row.model).join(', ')})`);
    for (let i = 0; i < kind.slots; i++) slots.push({ slot: slots.length, model: kind.model, payload: template.payload, ttl: kind.ttlSeconds, consumable: kind.consumable });
  }
  if (slots[GRANT_SLOT]?.model !== 'Grant' || slots[SESSION_SLOT]?.model !== 'Session') throw new Error('MODEL_SLOTS and GRANT_SLOT/SESSION_SLOT disagree');
  // Keys the adapter copies from the payload into columns (src/db/oidc-models.ts) come from the
  // same values here, and only where the model's real payload has them.
  // One transaction: should anything fail, the table keeps its indexes.
  await db.query('BEGIN');
  try {
    const indexes = settings.rebuildIndexes ? await dropModelIndexes(db) : undefined;
    await timed(timings, `INSERT ${fmt(settings.modelRows)} oidc_models`, settings.modelRows, () =>
      db.query(
        `WITH t AS (SELECT * FROM jsonb_to_recordset($2::jsonb) AS t(slot int, model text, payload jsonb, ttl int, consumable boolean))
         INSERT INTO oidc_models (model, id, payload, grant_id, client_id, account_id, uid, expires_at, consumed_at)
         SELECT t.model, v.id,
                t.payload || jsonb_strip_nulls(jsonb_build_object(
                  'jti', v.id, 'iat', extract(epoch FROM v.expires_at)::bigint - t.ttl, 'exp', extract(epoch FROM v.expires_at)::bigint,
                  'grantId', v.grant_id, 'clientId', v.client_id, 'accountId', v.account_id, 'uid', v.uid, 'sessionUid', v.session_uid)),
                v.grant_id, v.client_id, v.account_id, v.uid, v.expires_at,
                CASE WHEN t.consumable AND i % 2 = 0 THEN v.expires_at - make_interval(secs => t.ttl - 1) END
           FROM generate_series(0, $3::int - 1) AS i
           JOIN t ON t.slot = i % 20
           CROSS JOIN LATERAL (
             SELECT ${tokenId(`'model:' || i::text`)} AS id,
                    CASE WHEN t.payload ? 'grantId' THEN ${tokenId(`'model:' || ((i / 20) * 20 + ${GRANT_SLOT})::text`)} END AS grant_id,
                    CASE WHEN t.payload ? 'clientId' THEN ${clientId('1 + (i / 20) % $4::int')} END AS client_id,
                    CASE WHEN t.payload ? 'accountId' THEN md5('account:' || ((i / 20) % 20000)::text)::uuid::text END AS account_id,
                    CASE WHEN t.payload ? 'uid' THEN ${tokenId(`'uid:' || i::text`)} END AS uid,
                    CASE WHEN t.payload ? 'sessionUid' THEN ${tokenId(`'uid:' || ((i / 20) * 20 + ${SESSION_SLOT})::text`)} END AS session_uid,
                    CASE WHEN (hashint8(i) & 2147483647) % 100 < ${EXPIRED_PERCENT} THEN now() - make_interval(secs => 1 + (hashint8(-i) & 2147483647) % 86400)
                         ELSE now() + make_interval(secs => 1 + (hashint8(-i) & 2147483647) % t.ttl) END AS expires_at
           ) AS v`,
        [salt, JSON.stringify(slots), settings.modelRows, settings.clients],
      ),
    );
    if (indexes !== undefined) await timed(timings, `rebuild the oidc_models primary key and ${indexes.count - 1} indexes (their own definitions)`, 0, () => indexes.rebuild());
    await db.query('COMMIT');
  } catch (error) {
    await db.query('ROLLBACK').catch(() => undefined);
    throw error;
  }

  await timed(timings, 'VACUUM (ANALYZE) of the three tables', 0, () => db.query('VACUUM (ANALYZE) oidc_models, clients, resource_servers'));
  await timed(timings, 'CHECKPOINT', 0, () => db.query('CHECKPOINT').catch((error: unknown) => log(`CHECKPOINT refused (${(error as Error).message}); measuring anyway`)));

  const { rows: mix } = await db.query<{ model: string; rows: number; expired: number; consumed: number }>(
    `SELECT model, count(*)::int AS rows, count(*) FILTER (WHERE expires_at < now())::int AS expired, count(*) FILTER (WHERE consumed_at IS NOT NULL)::int AS consumed
       FROM oidc_models GROUP BY model ORDER BY count(*) DESC`,
  );
  return { salt, timings, mix, sizes: await tableSizes(db) };
}

// ---------------------------------------------------------------------------------------------
// Query plans of the adapter's own statements on the large tables.

/** The SQL a src/db store sends, captured without a database (results are empty). */
async function captureSql(call: (db: Queryable) => Promise<unknown>): Promise<{ text: string; params: readonly unknown[] }> {
  let captured: { text: string; params: readonly unknown[] } | undefined;
  const recorder: Queryable = {
    query: <R extends Record<string, unknown>>(text: string, params: readonly unknown[] = []) => {
      captured ??= { text, params };
      return Promise.resolve({ rows: [] as R[], rowCount: 0 });
    },
    exec: () => Promise.resolve(),
    afterCommit: (fn) => fn(),
  };
  await call(recorder);
  if (captured === undefined) throw new Error('the store sent no query');
  return captured;
}

interface PlanNode {
  readonly 'Node Type': string;
  readonly 'Actual Rows'?: number;
  readonly 'Index Name'?: string;
  readonly 'Relation Name'?: string;
  readonly Plans?: readonly PlanNode[];
}

interface QueryPlan {
  readonly query: string;
  readonly plan: string;
  readonly seqScanOn: string[];
  readonly executionMs: number;
  readonly rows: number;
}

function describePlan(node: PlanNode, into: string[], seqScans: string[]): void {
  const type = node['Node Type'];
  if (node['Index Name'] !== undefined) into.push(`${type} using ${node['Index Name']}`);
  else if (type.includes('Scan') && node['Relation Name'] !== undefined) into.push(`${type} on ${node['Relation Name']}`);
  if (type === 'Seq Scan' && node['Relation Name'] !== undefined) seqScans.push(node['Relation Name']);
  for (const child of node.Plans ?? []) describePlan(child, into, seqScans);
}

async function explain(db: pg.Client, query: string, call: (db: Queryable) => Promise<unknown>): Promise<QueryPlan> {
  const { text, params } = await captureSql(call);
  // ANALYZE runs the statement for real: inside a transaction that is rolled back, so a DELETE deletes nothing.
  await db.query('BEGIN');
  try {
    const { rows } = await db.query<{ 'QUERY PLAN': [{ Plan: PlanNode; 'Execution Time': number }] }>(
      `EXPLAIN (ANALYZE, FORMAT JSON) ${text}`,
      [...params],
    );
    const result = rows[0]!['QUERY PLAN'][0];
    const nodes: string[] = [];
    const seqScanOn: string[] = [];
    describePlan(result.Plan, nodes, seqScanOn);
    // A DELETE's root (ModifyTable) returns no rows: count what its scan found instead.
    const counted = result.Plan['Node Type'] === 'ModifyTable' ? (result.Plan.Plans?.[0] ?? result.Plan) : result.Plan;
    return { query, plan: nodes.join(' → ') || result.Plan['Node Type'], seqScanOn, executionMs: result['Execution Time'], rows: counted['Actual Rows'] ?? 0 };
  } finally {
    await db.query('ROLLBACK');
  }
}

async function explainAll(db: pg.Client, setup: Setup, salt: string): Promise<QueryPlan[]> {
  // A generated row picked at random, found by the id the insert gave it (the probe's own rows are
  // not typical: its grant and client have thousands of rows from the measured loops).
  const slotOf = (model: string) => {
    let slot = 0;
    for (const kind of MODEL_SLOTS) {
      if (kind.model === model) return slot;
      slot += kind.slots;
    }
    throw new Error(`no slot for ${model}`);
  };
  const generated = async (model: string) => {
    const i = 20 * Math.floor(Math.random() * Math.floor(settings.modelRows / 20)) + slotOf(model);
    const { rows } = await db.query<{ id: string; grant_id: string | null; account_id: string | null; client_id: string | null; uid: string | null }>(
      `SELECT id, grant_id, account_id, client_id, uid FROM oidc_models WHERE model = $2 AND id = ${tokenId(`'model:' || $3::text`)} AND expires_at > now()`,
      [salt, model, i],
    );
    // Expired (the adapter would not find it) or pruned: the caller tries another.
    return rows[0];
  };
  const pick = async <K extends 'id' | 'grant_id' | 'account_id' | 'client_id' | 'uid'>(model: string, key: K): Promise<string> => {
    for (let attempt = 0; attempt < 20; attempt++) {
      const value = (await generated(model))?.[key];
      if (typeof value === 'string') return value;
    }
    throw new Error(`no generated ${model} row with ${key} to explain with`);
  };
  const models = (db: Queryable) => createOidcModelStore(db);
  const accessTokenId = await pick('AccessToken', 'id');
  const sessionUid = await pick('Session', 'uid');
  const grantId = await pick('RefreshToken', 'grant_id');
  const accountId = await pick('Grant', 'account_id');
  const generatedClient = await pick('AccessToken', 'client_id');
  const identifier = `https://api-${1 + Math.floor(Math.random() * settings.resourceServers)}.growth.bench.invalid`;
  return [
    await explain(db, 'find RefreshToken by id (a loop\'s live token)', (q) => models(q).find('RefreshToken', setup.loops[0]!.refreshToken)),
    await explain(db, 'find AccessToken by id (a generated row)', (q) => models(q).find('AccessToken', accessTokenId)),
    await explain(db, 'find Session by uid', (q) => models(q).findByUid('Session', sessionUid)),
    await explain(db, 'revoke by grant_id (DELETE, rolled back)', (q) => models(q).revokeByGrantId('RefreshToken', grantId)),
    await explain(db, 'revoke by account_id (DELETE, rolled back)', (q) => models(q).revokeByAccountId(accountId)),
    await explain(db, 'revoke by client_id (DELETE, rolled back)', (q) => models(q).revokeByClientId(generatedClient)),
    await explain(db, 'prune 1,000 expired rows (DELETE, rolled back)', (q) => createMaintenanceStore(q).pruneExpiredModels(1_000)),
    await explain(db, 'client by client_id', (q) => createClientStore(q).find(generatedClient)),
    await explain(db, 'resource server by identifier', (q) => createResourceServerStore(q).findByIdentifier(identifier)),
  ];
}

// ---------------------------------------------------------------------------------------------
// Report.

interface Report {
  readonly date: string;
  readonly environment: Record<string, string | number>;
  readonly small: Phase & { readonly sizes: Growth['sizes'] };
  readonly large: Phase;
  readonly growth: Growth;
  readonly plans: QueryPlan[];
  readonly checks: Check[];
}

function buildChecks(small: Phase, large: Phase, plans: readonly QueryPlan[]): Check[] {
  const checks: Check[] = [];
  for (const name of Object.keys(PATHS) as PathName[]) {
    const before = small.paths[name];
    const after = large.paths[name];
    const throughput = after.perSecond / before.perSecond;
    const p99 = after.p99Ms / before.p99Ms;
    checks.push(
      {
        name: `${PATHS[name]}: throughput, large ÷ small database`,
        value: throughput,
        display: `${throughput.toFixed(2)}× (${fmt(before.perSecond)} → ${fmt(after.perSecond)}/s)`,
        target: `≥ ${TARGETS.throughputRatio.toFixed(2)}×`,
        met: throughput >= TARGETS.throughputRatio,
      },
      {
        name: `${PATHS[name]}: p99, large ÷ small database`,
        value: p99,
        display: `${p99.toFixed(2)}× (${fmt(before.p99Ms, 1)} → ${fmt(after.p99Ms, 1)} ms)`,
        target: `≤ ${TARGETS.p99Ratio.toFixed(2)}×`,
        met: p99 <= TARGETS.p99Ratio,
      },
    );
  }
  const seqScans = plans.filter((plan) => plan.seqScanOn.length > 0);
  checks.push({
    name: 'the adapter\'s queries use indexes on the large tables (no sequential scan)',
    value: seqScans.length,
    display: seqScans.length === 0 ? `${plans.length} of ${plans.length} indexed` : `sequential scan in: ${seqScans.map((plan) => plan.query).join('; ')}`,
    target: '0 sequential scans',
    met: seqScans.length === 0,
  });
  return [...checks, ...rssCheck('bench:growth, large database', large.memory)];
}

function markdown(report: Report): string {
  const env = report.environment;
  const { small, large, growth } = report;
  const change = (a: number, b: number) => pct(b / a - 1).replace(/^(?!-)/, '+');
  const sizeOf = (sizes: Growth['sizes'], table: string) => sizes.find((size) => size.table === table);
  const modelRows = growth.timings.find((timing) => timing.what.includes('oidc_models'));
  const lines = [
    `# Growth: ${fmt(settings.clients)} clients, ${fmt(settings.resourceServers)} resource servers, ${fmt(settings.modelRows)} model rows, ${report.date}`,
    '',
    `Node ${env['node']}, ${env['cpus']} × ${env['cpuModel']}; Gatehouse on PostgreSQL ${env['postgres']}, one process; ` +
      `client credentials: autocannon ${env['connections']} connections; refresh and code paths: ${env['loops']} concurrent loops; ` +
      `${env['seconds']} s per path and phase after ${env['warmupSeconds']} s warm-up; load average ${env['loadAverageAtStart']} at start; source ${env['source']}.`,
    '',
    '| path | small: per s | p50 ms | p99 ms | large: per s | p50 ms | p99 ms | throughput | p99 |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|',
    ...(Object.keys(PATHS) as PathName[]).map((name) => {
      const a = small.paths[name];
      const b = large.paths[name];
      return `| ${PATHS[name]} | ${fmt(a.perSecond)} | ${fmt(a.p50Ms, 1)} | ${fmt(a.p99Ms, 1)} | ${fmt(b.perSecond)} | ${fmt(b.p50Ms, 1)} | ${fmt(b.p99Ms, 1)} | ${change(a.perSecond, b.perSecond)} | ${change(a.p99Ms, b.p99Ms)} |`;
    }),
    '',
    'Per second: tokens (client credentials), rotations, or authorization + exchange round trips. ' +
      'The refresh and code paths are the sign-in-free ones that read and write the provider\'s model table.',
    '',
    'While each path was measured: CPU cores used (CPU time ÷ wall time; the machine has ' + String(env['cpus']) + ') by Gatehouse (all threads), ' +
      'every PostgreSQL process, this bench (load generator, loops) and anything else; WAL written, commits, and oidc_models rows deleted (the pruner, consumed interactions):',
    '',
    '| path | phase | Gatehouse | PostgreSQL | bench | anything else | WAL MiB/s | WAL KiB per request | full-page images per request | commits/s | rows deleted |',
    '|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
    ...(Object.keys(PATHS) as PathName[]).flatMap((name) =>
      (['small', 'large'] as const).map((phase) => {
        const run = report[phase].paths[name];
        const server = run.server;
        const perRequest = (value: number, digits: number) => (run.requests > 0 ? fmt(value / run.requests, digits) : '—');
        return (
          `| ${PATHS[name]} | ${phase} | ${fmt(server.cores.gatehouse, 2)} | ${fmt(server.cores.postgres, 2)} | ${fmt(server.cores.bench, 2)} | ${fmt(server.cores.other, 2)} | ` +
          `${fmt(server.walMiBPerSecond, 1)} | ${perRequest(server.walBytes / 1024, 1)} | ${perRequest(server.fullPageImages, 1)} | ${fmt(server.commitsPerSecond)} | ${fmt(server.rowsDeleted)} |`
        );
      }),
    ),
    '',
    '| table | rows, small | rows, large | size, large |',
    '|---|---:|---:|---:|',
    ...['clients', 'resource_servers', 'oidc_models'].map((table) => {
      const a = sizeOf(small.sizes, table);
      const b = sizeOf(growth.sizes, table);
      return `| ${table} | ${fmt(a?.rows ?? Number.NaN)} | ${fmt(b?.rows ?? Number.NaN)} | ${fmt(b?.totalMiB ?? Number.NaN)} MiB (with indexes) |`;
    }),
    '',
    `Growth, straight into the real tables with one INSERT ... SELECT generate_series each` +
      (settings.rebuildIndexes
        ? ' (clients and resource_servers with triggers and indexes in place; oidc_models\' primary key and indexes dropped for the insert and built again from their catalog definitions in the same transaction)'
        : ' (triggers and every index in place)') +
      (modelRows === undefined ? ':' : `; oidc_models at ${fmt(modelRows.rows / modelRows.seconds)} rows/s:`),
    '',
    '| step | seconds |',
    '|---|---:|',
    ...growth.timings.map((timing) => `| ${timing.what} | ${fmt(timing.seconds, 1)} |`),
    '',
    'oidc_models after growth (generated rows cloned from real ones; the measured loops add their own):',
    '',
    '| model | rows | expired | consumed |',
    '|---|---:|---:|---:|',
    ...growth.mix.map((row) => `| ${row.model} | ${fmt(row.rows)} | ${fmt(row.expired)} | ${fmt(row.consumed)} |`),
    '',
    'Query plans on the large tables: the statements src/db sends (captured from the stores), under EXPLAIN ANALYZE in a rolled-back transaction:',
    '',
    '| query | plan | rows | ms |',
    '|---|---|---:|---:|',
    ...report.plans.map((plan) => `| ${plan.query} | ${plan.plan} | ${fmt(plan.rows)} | ${fmt(plan.executionMs, 2)} |`),
    '',
    rssLine('small database, all paths', small.memory),
    '',
    rssLine('large database, all paths', large.memory),
    '',
    ...checksTable(report.checks),
    '',
    'The probe\'s own rows are few beside the generated ones; the plans above show whether a lookup stays an index probe as the table grows. ' +
      'Expired rows are left for Gatehouse\'s pruner (every minute, up to 20,000 rows a run), which may run during the large phase, as it would in production. ' +
      'Both phases start right after a CHECKPOINT: after one, PostgreSQL writes a full-page image of every page the first time it changes it, and a large table with random keys ' +
      'has many more distinct index pages to touch, which the WAL per request above shows (PostgreSQL\'s wal_compression shrinks those images). ' +
      'Figures drift ±30 % between runs on a shared machine, p99 of a short run most of all: repeat before concluding from one run.',
    '',
  ];
  return lines.join('\n');
}

// ---------------------------------------------------------------------------------------------

async function main(): Promise<number> {
  const started = new Date();
  const loadAtStart = loadavg()[0] ?? 0;
  const stamp = fileStamp(started);
  await mkdir(RESULTS_DIR, { recursive: true });

  let database: BenchDatabase | undefined;
  let gatehouse: Gatehouse | undefined;
  let db: pg.Client | undefined;
  const cleanup = async () => {
    await db?.end().catch(() => undefined);
    await gatehouse?.child.stop();
    await database?.drop().catch((error: unknown) => log(`could not drop the bench database: ${(error as Error).message}`));
    if (gatehouse !== undefined) await rm(gatehouse.dataDir, { recursive: true, force: true });
  };
  onAbort(cleanup);

  try {
    database = await createBenchDatabase(settings.databaseUrl);
    if (database.url === undefined) {
      const text = `# Growth\n\nNot measured: bench:growth needs PostgreSQL (BENCH_DATABASE_URL, default ${DEFAULT_DATABASE_URL}), which was unreachable.\n`;
      process.stdout.write(text);
      await writeBenchOutput({ title: 'Growth: 10 vs 10,000 clients and resource servers, 1 M model rows', markdown: text, checks: [], data: { skipped: 'PostgreSQL unreachable' } });
      return 0;
    }
    log('starting Gatehouse on postgres');
    gatehouse = await launchGatehouse(database);
    log(`creating clients, resource servers and a user; ${settings.loops} sign-ins`);
    const setup = await configure(gatehouse);
    await requestToken(setup.url, setup.cc.plain.authorization, TOKEN_BODY);
    await requestToken(setup.url, setup.cc.inner.authorization, TOKEN_BODY);
    db = new pg.Client({ connectionString: database.url, connectionTimeoutMillis: 5_000 });
    await db.connect();
    const { rows: version } = await db.query<{ v: string }>("SELECT current_setting('server_version') AS v");

    log('warming up every path');
    await warmUp(setup);
    // As before the large phase: both phases start right after a checkpoint, so both pay the
    // full-page images PostgreSQL writes when it first touches a page after one.
    await db.query('CHECKPOINT').catch((error: unknown) => log(`CHECKPOINT refused (${(error as Error).message})`));
    log('small database: measuring');
    const smallSizes = await tableSizes(db);
    const small = { ...(await measurePhase(setup, db, 'small')), sizes: smallSizes };

    log(`growing: ${settings.resourceServers} resource servers, ${settings.clients} clients, ${settings.modelRows} model rows`);
    const growth = await grow(db, setup);
    // Let the change notifications of 20,000 inserted rows reach Gatehouse before measuring.
    await sleep(1_000);

    log('large database: measuring');
    const large = await measurePhase(setup, db, 'large');
    const plans = await explainAll(db, setup, growth.salt);
    for (const plan of plans) log(`plan: ${plan.query}: ${plan.plan} (${plan.executionMs.toFixed(2)} ms)`);

    const checks = buildChecks(small, large, plans);
    const report: Report = {
      date: started.toISOString(),
      environment: {
        node: process.version,
        cpus: cpus().length,
        cpuModel: cpus()[0]?.model.trim() ?? 'unknown',
        postgres: version[0]?.v ?? 'unknown',
        connections: settings.connections,
        loops: settings.loops,
        seconds: settings.seconds,
        warmupSeconds: settings.warmupSeconds,
        clients: settings.clients,
        resourceServers: settings.resourceServers,
        modelRows: settings.modelRows,
        loadAverageAtStart: Number(loadAtStart.toFixed(2)),
        loadAverageAtEnd: Number((loadavg()[0] ?? 0).toFixed(2)),
        source: sourceVersion(),
      },
      small,
      large,
      growth,
      plans,
      checks,
    };
    const text = markdown(report);
    await writeFile(path.join(RESULTS_DIR, `growth-${stamp}.md`), text);
    await writeFile(path.join(RESULTS_DIR, `growth-${stamp}.json`), JSON.stringify(report, null, 2) + '\n');
    process.stdout.write(text);
    log(`written bench/results/growth-${stamp}.md and .json`);
    await writeBenchOutput({ title: 'Growth: 10 vs 10,000 clients and resource servers, 1 M model rows', markdown: text, checks, data: report });
    return settings.enforce && checks.some((check) => check.met === false) ? 1 : 0;
  } catch (error) {
    if (gatehouse !== undefined && !alive(gatehouse.child.process)) {
      log(`Gatehouse exited (${gatehouse.child.process.exitCode ?? gatehouse.child.process.signalCode}); its last output:\n${gatehouse.child.output.stderr.slice(-4000)}`);
    }
    throw error;
  } finally {
    await cleanup();
  }
}

// Bound the whole run: the warm-up and two phases of four paths, the growth itself (about a minute per million rows here), start-up and slack.
const budgetMs = (3 * 4 * (settings.seconds + settings.warmupSeconds + 5) + (settings.modelRows / 1_000_000) * 240 + 300) * 1000;
await runBench(budgetMs, main);
