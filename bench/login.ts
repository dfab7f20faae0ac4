import { createHash, randomBytes } from 'node:crypto';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { cpus, loadavg } from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import argon2 from 'argon2';
import { createRemoteJWKSet, jwtVerify } from 'jose';
import pg from 'pg';
import { PASSWORD_PARAMS } from '../src/accounts/passwords.js';
import { CookieClient, formAction, hiddenField } from '../test/support/cookie-client.js';
import {
  adminPost,
  basic,
  checksTable,
  childPids,
  createBenchDatabase,
  DEFAULT_DATABASE_URL,
  drivePaced,
  envFlag,
  envNumber,
  failOnBadResponses,
  fileStamp,
  fmt,
  launchGatehouse,
  log,
  onAbort,
  profileClockMicros,
  requestToken,
  RESULTS_DIR,
  rssCheck,
  rssLine,
  runBench,
  sampleCpu,
  servesDatabase,
  sampleRss,
  sourceVersion,
  TOKEN_BODY,
  writeBenchOutput,
  writeProfileSummary,
  type BenchDatabase,
  type Check,
  type Gatehouse,
  type RssReport,
  type PacedRunResult,
  type TokenTarget,
} from './support.js';

/**
 * `npm run bench:login`: successful sign-ins per second through the hosted pages, beside the
 * argon2id verify rate of this machine, and what a sign-in storm does to client-credentials
 * latency (issue "bench:login").
 *
 * 1. argon2 bound: in this process, before anything else starts, argon2.verify with the project's
 *    parameters (src/accounts/passwords.ts) at the concurrency Gatehouse allows (2) → verifies/s;
 *    measured again at the end with Gatehouse stopped, and the faster run is the bound.
 * 2. Gatehouse as a child process (bench/support.ts) on a throwaway database; through the admin
 *    API one first-party authorization-code client (no consent page), BENCH_USERS users, and a
 *    client-credentials client for a plain ES256 resource server (the probe).
 * 3. The probe alone: POST /token at evenly spaced instants, a modest rate (drivePaced, a worker
 *    thread: each request's latency alone; autocannon's fixed rate sends each second's quota in
 *    one burst, which its latencies then measure), warm-up then measured.
 * 4. The storm: BENCH_LOGIN_WORKERS loops, each with a fresh cookie jar per sign-in: GET the
 *    authorization URL (PKCE S256) → login page → POST csrf + username + password → redirects
 *    until the one to the client's callback, which must carry `code` and the `state` sent (the
 *    code is not exchanged). After a ramp-up, the same probe runs again for the same time; the
 *    sign-ins completed in that window are counted.
 *
 * Environment (all optional):
 *   BENCH_SECONDS=10            measured seconds (probe alone; storm window)
 *   BENCH_WARMUP_SECONDS=3      probe warm-up, and storm ramp-up before its window
 *   BENCH_LOGIN_WORKERS=8       concurrent sign-in loops
 *   BENCH_USERS=50              accounts the loops cycle through
 *   BENCH_CC_RATE=100           probe requests/s
 *   BENCH_ARGON2_SECONDS=3      time for the argon2 bound
 *   BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres  (PGlite when unreachable)
 *   BENCH_CPU_PROF=1            run Gatehouse under --cpu-prof and summarise its top frames
 *   BENCH_ENFORCE=1             exit 1 when a target is not met
 */

const settings = {
  seconds: envNumber('BENCH_SECONDS', 10, 1, 300),
  warmupSeconds: envNumber('BENCH_WARMUP_SECONDS', 3, 0, 60),
  workers: envNumber('BENCH_LOGIN_WORKERS', 8, 1, 256),
  users: envNumber('BENCH_USERS', 50, 1, 1000),
  ccRate: envNumber('BENCH_CC_RATE', 100, 1, 1_000),
  argon2Seconds: envNumber('BENCH_ARGON2_SECONDS', 3, 1, 60),
  databaseUrl: process.env['BENCH_DATABASE_URL'] || DEFAULT_DATABASE_URL,
  cpuProf: envFlag('BENCH_CPU_PROF'),
  enforce: envFlag('BENCH_ENFORCE'),
};

/** The concurrency src/accounts/passwords.ts allows by default. */
const ARGON2_CONCURRENCY = 2;
// Issue 23: p99 in the storm ≤ 1.5× idle; Gatehouse + PostgreSQL CPU per sign-in beyond argon2 ≤ 5 ms.
const TARGETS = { signInsOverArgon2: 0.8, ccP99StormOverIdle: 1.5, signInCpuBeyondArgon2Ms: 5 } as const;
const REDIRECT_URI = 'http://127.0.0.1:9/cb';
const CC_RESOURCE = 'https://cc.bench.invalid';

/** prom-client's default `eventLoopMonitoringPrecision`, which Gatehouse keeps. */
const EVENT_LOOP_RESOLUTION_MS = 10;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

// ---------------------------------------------------------------------------------------------
// The argon2 bound, in this process with nothing else running.

interface Argon2Run {
  readonly verifies: number;
  readonly seconds: number;
  readonly verifiesPerSecond: number;
  /** Wall time of one verify while `concurrency` run side by side. */
  readonly msPerVerify: number;
  /** Who used the cores meanwhile: "other" above ~0.1 means the bound was measured low. */
  readonly cores: CpuCores;
}

interface Argon2Bound {
  readonly concurrency: number;
  /** Measured first, and again after the storm with Gatehouse stopped; the faster run is the bound. */
  readonly runs: readonly Argon2Run[];
  readonly verifiesPerSecond: number;
  readonly msPerVerify: number;
}

async function measureArgon2(seconds: number, concurrency: number): Promise<Argon2Run> {
  const password = randomBytes(18).toString('base64url');
  const hash = await argon2.hash(password, PASSWORD_PARAMS);
  const verify = async () => {
    if (!(await argon2.verify(hash, password))) throw new Error('argon2 bound: verify returned false');
  };
  for (let i = 0; i < 2; i++) await Promise.all(Array.from({ length: concurrency }, verify));
  const before = groupedCpu(undefined, undefined);
  const deadline = before.at + seconds * 1000;
  let verifies = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < deadline) {
        await verify();
        verifies += 1;
      }
    }),
  );
  const after = groupedCpu(undefined, undefined);
  const elapsed = (after.at - before.at) / 1000;
  return { verifies, seconds: elapsed, verifiesPerSecond: verifies / elapsed, msPerVerify: (elapsed * 1000 * concurrency) / verifies, cores: coresBetween(before, after) };
}

function argon2Bound(runs: readonly Argon2Run[]): Argon2Bound {
  const best = runs.reduce((a, b) => (b.verifiesPerSecond > a.verifiesPerSecond ? b : a));
  return { concurrency: ARGON2_CONCURRENCY, runs, verifiesPerSecond: best.verifiesPerSecond, msPerVerify: best.msPerVerify };
}

// ---------------------------------------------------------------------------------------------
// Set-up through the admin API.

interface User {
  readonly username: string;
  readonly password: string;
}

interface Setup {
  readonly gatehouse: Gatehouse;
  /** The bench database's name, to tell its PostgreSQL backends from others, and its URL (PGlite: none). */
  readonly databaseName: string | undefined;
  readonly databaseUrl: string | undefined;
  readonly url: string;
  readonly authorizationEndpoint: string;
  readonly signInClient: { readonly id: string; readonly authorization: string };
  readonly users: readonly User[];
  readonly cc: TokenTarget;
}

async function configure(gatehouse: Gatehouse, database: BenchDatabase): Promise<Setup> {
  const { url } = gatehouse;
  const adminToken = await gatehouse.adminToken(['admin:clients', 'admin:resource-servers', 'admin:users']);

  await adminPost(url, adminToken, '/resource-servers', { identifier: CC_RESOURCE, name: 'bench cc', scopes: ['bench:read'], signing_alg: 'ES256' });
  const ccClient = await adminPost<{ client_id: string; client_secret: string }>(url, adminToken, '/clients', {
    client_name: 'bench cc probe',
    grant_types: ['client_credentials'],
    allowed_resources: [CC_RESOURCE],
  });
  const signInClient = await adminPost<{ client_id: string; client_secret: string }>(url, adminToken, '/clients', {
    client_name: 'bench sign-in',
    grant_types: ['authorization_code'],
    redirect_uris: [REDIRECT_URI],
    first_party: true,
  });

  // Each creation hashes a password (2 at a time in Gatehouse); 4 in flight keeps that queue full.
  const users: User[] = Array.from({ length: settings.users }, (_, i) => ({
    username: `bench-user-${String(i).padStart(4, '0')}`,
    password: randomBytes(18).toString('base64url'),
  }));
  for (let i = 0; i < users.length; i += 4) {
    await Promise.all(users.slice(i, i + 4).map((user) => adminPost(url, adminToken, '/users', user)));
  }

  const discovery = (await (await fetch(`${url}/.well-known/openid-configuration`)).json()) as { authorization_endpoint?: unknown };
  const authorizationEndpoint = discovery.authorization_endpoint;
  if (typeof authorizationEndpoint !== 'string' || new URL(authorizationEndpoint).origin !== url) {
    throw new Error(`discovery: unexpected authorization_endpoint ${String(authorizationEndpoint)}`);
  }
  return {
    gatehouse,
    databaseName: database.url === undefined ? undefined : new URL(database.url).pathname.slice(1),
    databaseUrl: database.url,
    url,
    authorizationEndpoint,
    signInClient: { id: signInClient.client_id, authorization: basic(signInClient.client_id, signInClient.client_secret) },
    users,
    cc: { row: 'client-credentials probe', url, authorization: basic(ccClient.client_id, ccClient.client_secret) },
  };
}

// ---------------------------------------------------------------------------------------------
// One sign-in through the pages, as a browser without script would do it.

class SignInFailure extends Error {}

/** Follows redirects on Gatehouse's origin (reading each body to its end); returns the first other response. */
async function followOnOrigin(jar: CookieClient, response: Response, origin: string): Promise<Response> {
  let current = response;
  for (let i = 0; i < 10; i++) {
    const location = current.headers.get('location');
    if (current.status < 300 || current.status >= 400 || location === null) return current;
    const next = new URL(location, origin);
    if (next.origin !== origin) return current;
    await current.arrayBuffer();
    current = await jar.get(next);
  }
  throw new SignInFailure('more than 10 redirects');
}

async function unexpected(step: string, response: Response): Promise<SignInFailure> {
  const body = await response.text();
  const title = /<title>([^<]*)<\/title>/.exec(body)?.[1] ?? body.slice(0, 120);
  return new SignInFailure(`${step}: ${response.status} ${title.trim()}`);
}

/** Returns the authorization code and PKCE verifier from the callback; throws SignInFailure otherwise. */
async function signIn(setup: Setup, user: User, clientIp?: string): Promise<{ code: string; verifier: string }> {
  // Each loop is its own browser at its own address (Gatehouse runs with TRUST_PROXY here).
  const jar = new CookieClient(clientIp === undefined ? {} : { 'x-forwarded-for': clientIp });
  const verifier = randomBytes(32).toString('base64url');
  const state = randomBytes(16).toString('base64url');
  const authorize = new URL(setup.authorizationEndpoint);
  for (const [name, value] of Object.entries({
    client_id: setup.signInClient.id,
    response_type: 'code',
    redirect_uri: REDIRECT_URI,
    scope: 'openid',
    code_challenge: createHash('sha256').update(verifier).digest('base64url'),
    code_challenge_method: 'S256',
    state,
    nonce: randomBytes(16).toString('base64url'),
  })) {
    authorize.searchParams.set(name, value);
  }

  const loginPage = await followOnOrigin(jar, await jar.get(authorize), setup.url);
  if (loginPage.status !== 200) throw await unexpected('login page', loginPage);
  const html = await loginPage.text();
  const action = formAction(html, /\/login$/);
  const csrf = hiddenField(html, 'csrf');
  if (action === undefined || csrf === undefined) throw new SignInFailure('login page: no login form');

  const posted = await jar.postForm(new URL(action, setup.url), { csrf, username: user.username, password: user.password });
  const callback = await followOnOrigin(jar, posted, setup.url);
  const location = callback.headers.get('location');
  if (callback.status < 300 || callback.status >= 400 || location === null) throw await unexpected('after the login form', callback);
  await callback.arrayBuffer();
  const target = new URL(location, setup.url);
  if (`${target.origin}${target.pathname}` !== REDIRECT_URI) throw new SignInFailure(`redirected to ${target.origin}${target.pathname}, not the client's callback`);
  const error = target.searchParams.get('error');
  if (error !== null) throw new SignInFailure(`callback carries error=${error}`);
  const code = target.searchParams.get('code');
  if (code === null || code === '') throw new SignInFailure('callback without code');
  if (target.searchParams.get('state') !== state) throw new SignInFailure('callback with another state');
  return { code, verifier };
}

/** Before timing anything: a sign-in works, and its code is real (exchanged once, here only), and so is a probe token. */
async function checkSetup(setup: Setup): Promise<void> {
  const { code, verifier } = await signIn(setup, setup.users[0]!);
  const response = await fetch(`${setup.url}/token`, {
    method: 'POST',
    headers: { authorization: setup.signInClient.authorization, 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
    body: new URLSearchParams({ grant_type: 'authorization_code', code, redirect_uri: REDIRECT_URI, code_verifier: verifier }),
  });
  const text = await response.text();
  if (response.status !== 200 || typeof (JSON.parse(text) as { id_token?: unknown }).id_token !== 'string') {
    throw new Error(`check: exchanging the sign-in's code answered ${response.status}: ${text.slice(0, 500)}`);
  }
  const jwks = createRemoteJWKSet(new URL(`${setup.url}/jwks`));
  await jwtVerify(await requestToken(setup.url, setup.cc.authorization, TOKEN_BODY), jwks, {
    issuer: setup.url,
    audience: CC_RESOURCE,
    typ: 'at+jwt',
    algorithms: ['ES256'],
  });
}

// ---------------------------------------------------------------------------------------------
// The storm.

interface StormResult {
  readonly workers: number;
  readonly windowSeconds: number;
  /** Sign-ins that completed inside the window. */
  readonly signIns: number;
  readonly signInsPerSecond: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  /** Failed sign-ins during ramp-up, window and wind-down: any is a failed run. */
  readonly failures: number;
  readonly failureReasons: Record<string, number>;
  /** Sign-ins completed outside the window (ramp-up, wind-down). */
  readonly outsideWindow: number;
}

interface Storm {
  beginWindow(): void;
  endWindow(): void;
  stop(): Promise<StormResult>;
}

function startStorm(setup: Setup, workers: number): Storm {
  let stopping = false;
  let windowStart = Number.POSITIVE_INFINITY;
  let windowEnd = Number.POSITIVE_INFINITY;
  let next = 0;
  let outsideWindow = 0;
  let failures = 0;
  const latencies: number[] = [];
  const failureReasons: Record<string, number> = {};
  const loop = async (_: unknown, index: number) => {
    const clientIp = `10.8.0.${index + 1}`;
    while (!stopping) {
      const user = setup.users[next++ % setup.users.length]!;
      const started = performance.now();
      try {
        await signIn(setup, user, clientIp);
        const ended = performance.now();
        if (ended >= windowStart && ended <= windowEnd) latencies.push(ended - started);
        else outsideWindow += 1;
      } catch (error) {
        failures += 1;
        const reason = error instanceof SignInFailure ? error.message : `error: ${(error as Error).message}`;
        failureReasons[reason] = (failureReasons[reason] ?? 0) + 1;
        if (!(error instanceof SignInFailure)) await sleep(100); // a connection error: do not spin
      }
    }
  };
  const loops = Array.from({ length: workers }, loop);
  return {
    beginWindow: () => (windowStart = performance.now()),
    endWindow: () => (windowEnd = performance.now()),
    async stop() {
      stopping = true;
      await Promise.all(loops);
      const windowSeconds = (windowEnd - windowStart) / 1000;
      const sorted = latencies.sort((a, b) => a - b);
      return {
        workers,
        windowSeconds,
        signIns: sorted.length,
        signInsPerSecond: sorted.length / windowSeconds,
        p50Ms: percentile(sorted, 50),
        p99Ms: percentile(sorted, 99),
        failures,
        failureReasons,
        outsideWindow,
      };
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Who used the cores in a window (Linux /proc; NaN elsewhere), and Gatehouse's own view from its
// /metrics (prom-client resets the event-loop histogram at every scrape, so a scrape before and
// after a window brackets it).

/** `passwords`: Gatehouse's password process (argon2, a child of the server process). */
type CpuGroup = 'gatehouse' | 'passwords' | 'bench' | 'postgres' | 'other';

interface GroupedCpu {
  readonly at: number;
  /** Busy CPU seconds of the whole machine (all cores, all processes). */
  readonly machine: number;
  readonly processes: ReadonlyMap<number, { readonly group: CpuGroup; readonly seconds: number }>;
}

/**
 * CPU seconds per process: this one (sign-in loops, the argon2 bound, the probe's worker thread),
 * Gatehouse, PostgreSQL (the bench database's backends and the server's shared processes, such as
 * the WAL writer), and anything else. A process that ends inside a window counts as "other".
 */
function groupedCpu(gatehousePid: number | undefined, databaseName: string | undefined): GroupedCpu {
  const sample = sampleCpu();
  const processes = new Map<number, { group: CpuGroup; seconds: number }>();
  for (const [pid, proc] of sample.processes) {
    let group: CpuGroup = 'other';
    if (pid === process.pid) group = 'bench';
    else if (pid === gatehousePid) group = 'gatehouse';
    else if (gatehousePid !== undefined && proc.ppid === gatehousePid) group = 'passwords';
    else if (servesDatabase(proc, databaseName)) group = 'postgres';
    processes.set(pid, { group, seconds: proc.seconds });
  }
  if (processes.size === 0) {
    // Not Linux: only the machine total and this process are known.
    const usage = process.cpuUsage();
    processes.set(process.pid, { group: 'bench', seconds: (usage.user + usage.system) / 1e6 });
  }
  return { at: sample.at, machine: sample.machine, processes };
}

type CpuCores = Record<CpuGroup | 'machine', number>;

function coresBetween(before: GroupedCpu, after: GroupedCpu): CpuCores {
  const seconds = (after.at - before.at) / 1000;
  const used: CpuCores = { gatehouse: 0, passwords: 0, bench: 0, postgres: 0, other: 0, machine: (after.machine - before.machine) / seconds };
  for (const [pid, end] of after.processes) {
    if (end.group === 'other') continue;
    used[end.group] += (end.seconds - (before.processes.get(pid)?.seconds ?? 0)) / seconds;
  }
  used.other = Math.max(0, used.machine - used.gatehouse - used.passwords - used.bench - used.postgres);
  if (after.processes.size <= 1) used.gatehouse = used.passwords = used.postgres = used.other = Number.NaN;
  return used;
}

/** Transactions committed in the bench database so far (PostgreSQL's statistics lag by up to ~1 s). */
async function commitsSoFar(databaseUrl: string | undefined): Promise<number> {
  if (databaseUrl === undefined) return Number.NaN;
  const client = new pg.Client({ connectionString: databaseUrl, connectionTimeoutMillis: 3_000 });
  await client.connect();
  try {
    const { rows } = await client.query<{ commits: string }>('SELECT xact_commit::text AS commits FROM pg_stat_database WHERE datname = current_database()');
    return Number(rows[0]?.commits ?? Number.NaN);
  } finally {
    await client.end();
  }
}

interface Scrape {
  readonly cpu: GroupedCpu;
  readonly commits: number;
  readonly eventLoopP99Ms: number;
  readonly loginSuccesses: number;
  /** Request time per "METHOD route" (summed over statuses), from gatehouse_http_request_duration_seconds. */
  readonly routes: ReadonlyMap<string, { readonly seconds: number; readonly count: number }>;
}

async function scrape(setup: Setup): Promise<Scrape> {
  const text = await (await fetch(`${setup.gatehouse.managementUrl}/metrics`)).text();
  const value = (pattern: RegExp) => Number(pattern.exec(text)?.[1] ?? Number.NaN);
  const routes = new Map<string, { seconds: number; count: number }>();
  for (const match of text.matchAll(/^gatehouse_http_request_duration_seconds_(sum|count)\{([^}]*)\} (\S+)$/gm)) {
    const labels = Object.fromEntries([...match[2]!.matchAll(/(\w+)="([^"]*)"/g)].map((label) => [label[1]!, label[2]!]));
    const key = `${labels['method'] ?? '?'} ${labels['route'] ?? '?'}`;
    const entry = routes.get(key) ?? { seconds: 0, count: 0 };
    if (match[1] === 'sum') entry.seconds += Number(match[3]);
    else entry.count += Number(match[3]);
    routes.set(key, entry);
  }
  return {
    cpu: groupedCpu(setup.gatehouse.child.process.pid, setup.databaseName),
    commits: await commitsSoFar(setup.databaseUrl),
    // perf_hooks.monitorEventLoopDelay records whole timer intervals: less prom-client's 10 ms resolution, the delay.
    eventLoopP99Ms: Math.max(0, value(/^gatehouse_nodejs_eventloop_lag_p99_seconds(?:\{[^}]*\})? (\S+)$/m) * 1000 - EVENT_LOOP_RESOLUTION_MS),
    loginSuccesses: value(/^gatehouse_login_outcomes_total\{outcome="success"\} (\S+)$/m) || 0,
    routes,
  };
}

interface RouteTime {
  readonly route: string;
  readonly requests: number;
  readonly meanMs: number;
}

interface ServerView {
  /** CPU time over wall time in the window, by who used it. */
  readonly cores: CpuCores;
  /** Transactions committed per second in the bench database. */
  readonly commitsPerSecond: number;
  /** Gatehouse's event-loop delay p99 in the window. */
  readonly eventLoopP99Ms: number;
  readonly loginSuccesses: number;
  /** Where Gatehouse's request time went in the window, most total time first. */
  readonly routes: readonly RouteTime[];
}

function serverView(before: Scrape, after: Scrape): ServerView {
  const routes: RouteTime[] = [];
  for (const [route, end] of after.routes) {
    const start = before.routes.get(route) ?? { seconds: 0, count: 0 };
    const requests = end.count - start.count;
    if (requests > 0) routes.push({ route, requests, meanMs: ((end.seconds - start.seconds) * 1000) / requests });
  }
  routes.sort((a, b) => b.requests * b.meanMs - a.requests * a.meanMs);
  return {
    cores: coresBetween(before.cpu, after.cpu),
    commitsPerSecond: (after.commits - before.commits) / ((after.cpu.at - before.cpu.at) / 1000),
    eventLoopP99Ms: after.eventLoopP99Ms,
    loginSuccesses: after.loginSuccesses - before.loginSuccesses,
    routes,
  };
}

// ---------------------------------------------------------------------------------------------
// Report.

interface Report {
  readonly date: string;
  readonly environment: Record<string, string | number>;
  readonly argon2Bound: Argon2Bound;
  readonly storm: StormResult;
  readonly cc: { readonly idle: PacedRunResult & ServerView; readonly storm: PacedRunResult & ServerView };
  /** Gatehouse's memory from the probe's warm-up to the end of the storm: the server process, and its password process. */
  readonly memory: RssReport | undefined;
  readonly passwordProcessMemory: RssReport | undefined;
  readonly checks: Check[];
}

/**
 * CPU one sign-in costs beyond argon2, in ms: Gatehouse's server process and PostgreSQL, storm
 * minus idle (the probe runs at the same rate in both) over sign-ins/s. argon2 runs in the
 * password process, which is left out: it does nothing else.
 */
function signInCpuBeyondArgon2(storm: StormResult, cc: Report['cc']): { gatehouseMs: number; postgresMs: number } {
  const perSignIn = (cores: number) => (cores * 1000) / storm.signInsPerSecond;
  return {
    gatehouseMs: perSignIn(cc.storm.cores.gatehouse - cc.idle.cores.gatehouse),
    postgresMs: perSignIn(cc.storm.cores.postgres - cc.idle.cores.postgres),
  };
}

function buildChecks(bound: Argon2Bound, storm: StormResult, cc: Report['cc']): Check[] {
  const ratio = storm.signInsPerSecond / bound.verifiesPerSecond;
  const p99Ratio = cc.storm.p99Ms / cc.idle.p99Ms;
  const beyond = signInCpuBeyondArgon2(storm, cc);
  const beyondMs = beyond.gatehouseMs + beyond.postgresMs;
  return [
    {
      name: 'sign-in CPU beyond argon2: Gatehouse server process + PostgreSQL, per sign-in',
      value: beyondMs,
      display: `${beyondMs.toFixed(1)} ms (${beyond.gatehouseMs.toFixed(1)} + ${beyond.postgresMs.toFixed(1)})`,
      target: `≤ ${TARGETS.signInCpuBeyondArgon2Ms} ms`,
      met: beyondMs <= TARGETS.signInCpuBeyondArgon2Ms,
    },
    {
      name: 'sign-ins/s ÷ argon2 verify bound',
      value: ratio,
      display: `${ratio.toFixed(2)}×`,
      target: `≥ ${TARGETS.signInsOverArgon2.toFixed(2)}×`,
      met: ratio >= TARGETS.signInsOverArgon2,
    },
    {
      name: 'client-credentials p99: storm ÷ idle',
      value: p99Ratio,
      display: `${p99Ratio.toFixed(2)}×`,
      target: `≤ ${TARGETS.ccP99StormOverIdle.toFixed(2)}×`,
      met: p99Ratio <= TARGETS.ccP99StormOverIdle,
    },
    { name: 'failed sign-ins', value: storm.failures, display: String(storm.failures), target: '0', met: storm.failures === 0 },
  ];
}

function markdown(report: Report): string {
  const env = report.environment;
  const { argon2Bound: bound, storm, cc } = report;
  const beyond = signInCpuBeyondArgon2(storm, cc);
  const ccRow = (phase: string, run: PacedRunResult & ServerView) =>
    `| ${phase} | ${fmt(run.tokensPerSecond)} | ${fmt(run.p50Ms, 1)} | ${fmt(run.p90Ms, 1)} | ${fmt(run.p99Ms, 1)} | ${fmt(run.maxMs, 1)} | ${fmt(run.sendLagP99Ms, 1)} | ${fmt(run.requests)} | ${run.non2xx} | ${fmt(run.eventLoopP99Ms, 1)} | ${fmt(run.commitsPerSecond)} |`;
  const coresRow = (phase: string, cores: CpuCores) =>
    `| ${phase} | ${fmt(cores.gatehouse, 2)} | ${fmt(cores.passwords, 2)} | ${fmt(cores.postgres, 2)} | ${fmt(cores.bench, 2)} | ${fmt(cores.other, 2)} | ${fmt(cores.machine, 2)} |`;
  const lines = [
    `# Sign-in benchmark, ${report.date}`,
    '',
    `Node ${env['node']}, ${env['cpus']} × ${env['cpuModel']}; Gatehouse on ${env['database']}, one process; ` +
      `${env['workers']} sign-in loops over ${env['users']} users (fresh cookie jar per sign-in, first-party client, code not exchanged); ` +
      `client-credentials probe: ${env['ccRate']} requests/s at even intervals (keep-alive, open loop), ${env['seconds']} s per phase after ${env['warmupSeconds']} s warm-up / ramp-up; ` +
      `load average ${env['loadAverageAtStart']} at start; source ${env['source']}.`,
    ...(env['cpuProfile'] === 'yes' ? ['', '**Gatehouse ran under `--cpu-prof`: its figures are slowed by the profiler; do not compare them with unprofiled runs.**'] : []),
    '',
    '| measure | value |',
    '|---|---:|',
    `| argon2id verify bound (in-process, m=${PASSWORD_PARAMS.memoryCost} t=${PASSWORD_PARAMS.timeCost} p=${PASSWORD_PARAMS.parallelism}, ${bound.concurrency} concurrent; the faster of ${bound.runs.map((run) => `${fmt(run.verifiesPerSecond, 1)}/s`).join(' and ')}) | ${fmt(bound.verifiesPerSecond, 1)} verifies/s (${fmt(bound.msPerVerify, 1)} ms each) |`,
    `| successful sign-ins/s through the pages (${storm.workers} loops, ${fmt(storm.windowSeconds, 1)} s window) | ${fmt(storm.signInsPerSecond, 1)} |`,
    `| sign-ins completed in the window (Gatehouse's own success counter over the probe phase and wind-down: ${fmt(cc.storm.loginSuccesses)}) | ${fmt(storm.signIns)} |`,
    `| one sign-in, 4–5 requests: p50 / p99 ms | ${fmt(storm.p50Ms, 0)} / ${fmt(storm.p99Ms, 0)} |`,
    `| PostgreSQL commits per sign-in, ≈ (storm − idle commits/s) ÷ sign-ins/s | ${fmt((cc.storm.commitsPerSecond - cc.idle.commitsPerSecond) / storm.signInsPerSecond, 1)} |`,
    `| CPU per sign-in beyond argon2, ms: Gatehouse server process / PostgreSQL, ≈ (storm − idle cores) ÷ sign-ins/s | ${fmt(beyond.gatehouseMs, 1)} / ${fmt(beyond.postgresMs, 1)} |`,
    `| failed sign-ins (ramp-up, window, wind-down) | ${storm.failures} |`,
    '',
    'Client-credentials probe (POST /token, plain ES256 JWT):',
    '',
    '| phase | tokens/s | p50 ms | p90 ms | p99 ms | max ms | probe send lag p99 ms | requests | non-2xx | Gatehouse event-loop p99 ms | PostgreSQL commits/s |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
    ccRow('idle', cc.idle),
    ccRow('during the sign-in storm', cc.storm),
    '',
    `CPU cores used (CPU time ÷ wall time; the machine has ${env['cpus']}):`,
    '',
    '| phase | Gatehouse server process | its password process (argon2) | PostgreSQL | bench process | anything else | whole machine |',
    '|---|---:|---:|---:|---:|---:|---:|',
    ...bound.runs.map((run, i) => coresRow(`argon2 bound, ${i === 0 ? 'first' : 'again at the end'} (${fmt(run.verifiesPerSecond, 1)} verifies/s)`, run.cores)),
    coresRow('probe, idle', cc.idle.cores),
    coresRow('sign-in storm + probe', cc.storm.cores),
    '',
    'Gatehouse request time by route during the storm window (its own histogram; busiest first):',
    '',
    '| route | requests | mean ms |',
    '|---|---:|---:|',
    ...cc.storm.routes.slice(0, 8).map((route) => `| ${route.route} | ${fmt(route.requests)} | ${fmt(route.meanMs, 1)} |`),
    '',
    rssLine('server process; probe, then sign-in storm with the probe', report.memory),
    '',
    rssLine('password process; probe, then sign-in storm with the probe', report.passwordProcessMemory),
    '',
    ...checksTable(report.checks),
    '',
    ...(storm.failures > 0 ? ['Failed sign-ins by reason:', '', ...Object.entries(storm.failureReasons).map(([reason, n]) => `- ${n} × ${reason}`), ''] : []),
    'Figures drift ±30 % between runs on a shared machine; compare the ratios within one run. ' +
      'Gatehouse\'s CPU counts all its threads; argon2 runs in its password process (a child at niceness 5); the bench process runs the sign-in loops and the probe (a worker thread); ' +
      '"anything else" is other work on the machine: when it is well above 0, the run shared the cores and its figures are low.',
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

  const logArgon2 = (run: Argon2Run) =>
    log(`argon2 bound: ${run.verifiesPerSecond.toFixed(1)} verifies/s (${run.msPerVerify.toFixed(1)} ms each); other work meanwhile ${run.cores.other.toFixed(2)} cores`);
  log(`argon2 bound: ${settings.argon2Seconds} s of argon2.verify, ${ARGON2_CONCURRENCY} concurrent, before anything else starts`);
  const firstArgon2 = await measureArgon2(settings.argon2Seconds, ARGON2_CONCURRENCY);
  logArgon2(firstArgon2);

  let database: BenchDatabase | undefined;
  let gatehouse: Gatehouse | undefined;
  const cleanup = async () => {
    await gatehouse?.child.stop();
    await database?.drop().catch((error: unknown) => log(`could not drop the bench database: ${(error as Error).message}`));
    if (gatehouse !== undefined) await rm(gatehouse.dataDir, { recursive: true, force: true });
  };
  onAbort(cleanup);

  try {
    database = await createBenchDatabase(settings.databaseUrl);
    log(`starting Gatehouse on ${database.kind}${settings.cpuProf ? ' under --cpu-prof' : ''}`);
    const profileFile = settings.cpuProf ? path.join(RESULTS_DIR, `gatehouse-${stamp}.cpuprofile`) : undefined;
    // Each sign-in loop is a browser at an address of its own (X-Forwarded-For, so TRUST_PROXY),
    // as the password queue's per-address bound expects. The per-IP page limit
    // (AUTH_RATE_LIMIT_PER_IP, SPEC §6) would still refuse a loop's pace: off here.
    gatehouse = await launchGatehouse(database, { profileFile, env: { AUTH_RATE_LIMIT_PER_IP: '0', TRUST_PROXY: 'true' } });
    log(`creating clients and ${settings.users} users`);
    const setup = await configure(gatehouse, database);
    await checkSetup(setup);
    log('checked: a sign-in through the pages yields a code that exchanges for an ID token; the probe gets a valid JWT');

    const memorySampler = sampleRss(gatehouse.child.process.pid);
    // Started by the check's sign-in.
    const passwordSampler = sampleRss(childPids(gatehouse.child.process.pid)[0]);
    if (settings.warmupSeconds > 0) {
      log(`probe: warm-up ${settings.warmupSeconds} s`);
      await failOnBadResponses(setup.cc, await drivePaced(setup.cc, settings.warmupSeconds, settings.ccRate));
    }
    let before = await scrape(setup);
    const idleRun = await drivePaced(setup.cc, settings.seconds, settings.ccRate);
    const idle = { ...idleRun, ...serverView(before, await scrape(setup)) };
    await failOnBadResponses(setup.cc, idleRun);
    log(`probe, idle: ${idle.tokensPerSecond.toFixed(0)} tokens/s, p50 ${idle.p50Ms} ms, p99 ${idle.p99Ms} ms`);

    log(`storm: ${settings.workers} sign-in loops, ramp-up ${settings.warmupSeconds} s, then ${settings.seconds} s with the probe`);
    const storm = startStorm(setup, settings.workers);
    const profileWindow = { startMicros: 0, endMicros: 0 };
    let stormResult: StormResult;
    let duringRun: PacedRunResult;
    try {
      await sleep(settings.warmupSeconds * 1000);
      before = await scrape(setup);
      // The window is BENCH_SECONDS by the clock; the storm goes on until the probe (whose
      // worker thread takes a moment to start) has finished too, so the probe sees storm only.
      storm.beginWindow();
      profileWindow.startMicros = profileClockMicros();
      const window = sleep(settings.seconds * 1000).then(() => {
        storm.endWindow();
        profileWindow.endMicros = profileClockMicros();
      });
      duringRun = await drivePaced(setup.cc, settings.seconds, settings.ccRate);
      await window;
    } finally {
      stormResult = await storm.stop();
    }
    const during = { ...duringRun, ...serverView(before, await scrape(setup)) };
    const memory = memorySampler.stop();
    const passwordProcessMemory = passwordSampler.stop();
    await failOnBadResponses(setup.cc, duringRun);
    log(
      `storm: ${stormResult.signInsPerSecond.toFixed(1)} sign-ins/s, ${stormResult.failures} failures; ` +
        `probe during it: ${during.tokensPerSecond.toFixed(0)} tokens/s, p50 ${during.p50Ms} ms, p99 ${during.p99Ms} ms`,
    );


    // The bound again, with Gatehouse stopped: of two runs, outside work is less likely to have slowed both.
    await gatehouse.child.stop();
    log('argon2 bound, again with Gatehouse stopped');
    const lastArgon2 = await measureArgon2(settings.argon2Seconds, ARGON2_CONCURRENCY);
    logArgon2(lastArgon2);
    const bound = argon2Bound([firstArgon2, lastArgon2]);

    const cc = { idle, storm: during };
    const checks = [
      ...buildChecks(bound, stormResult, cc),
      ...rssCheck('bench:login probe and sign-in storm', memory),
      ...rssCheck('bench:login, its password process', passwordProcessMemory),
    ];
    const report: Report = {
      date: started.toISOString(),
      environment: {
        node: process.version,
        cpus: cpus().length,
        cpuModel: cpus()[0]?.model.trim() ?? 'unknown',
        database: database.kind,
        seconds: settings.seconds,
        warmupSeconds: settings.warmupSeconds,
        workers: settings.workers,
        users: settings.users,
        ccRate: settings.ccRate,
        cpuProfile: settings.cpuProf ? 'yes' : 'no',
        loadAverageAtStart: Number(loadAtStart.toFixed(2)),
        source: sourceVersion(),
      },
      argon2Bound: bound,
      storm: stormResult,
      cc,
      memory,
      passwordProcessMemory,
      checks,
    };

    const text = markdown(report);
    await writeFile(path.join(RESULTS_DIR, `login-${stamp}.md`), text);
    await writeFile(path.join(RESULTS_DIR, `login-${stamp}.json`), JSON.stringify(report, null, 2) + '\n');
    process.stdout.write(text);
    log(`written bench/results/login-${stamp}.md and .json`);
    await writeBenchOutput({ title: 'Sign-ins through the pages vs the argon2 bound; client-credentials p99 idle vs storm', markdown: text, checks, data: report });

    await writeProfileSummary(
      gatehouse,
      `Gatehouse CPU profile (main thread), the ${settings.seconds} s storm window: sign-ins + probe`,
      path.join(RESULTS_DIR, `login-${stamp}-profile.md`),
      profileWindow,
    );
    if (stormResult.failures > 0) {
      log(`FAILED: ${stormResult.failures} sign-ins failed`);
      return 1;
    }
    return settings.enforce && checks.some((check) => check.met === false) ? 1 : 0;
  } finally {
    await cleanup();
  }
}

// Bound the whole run: start-up and set-up, the argon2 bound, two probe phases with warm-up, and slack.
const budgetMs = (2 * settings.argon2Seconds + 2 * (settings.seconds + settings.warmupSeconds) + 30 + 300) * 1000;
await runBench(budgetMs, main);
