import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { generateKeyPairSync, randomBytes, sign, type KeyObject } from 'node:crypto';
import { once } from 'node:events';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { cpus, loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';
import { compactDecrypt, createRemoteJWKSet, decodeProtectedHeader, jwtVerify } from 'jose';
import pg from 'pg';
import { importRecipient } from '../src/tokens/jwe.js';
import { profileMarkdown, summarizeProfileFile } from './profile-summary.js';

/**
 * `npm run bench:tokens`: client-credentials throughput of the token endpoint (issue "Benchmark").
 *
 * Rows: Gatehouse (one process, PostgreSQL) issuing plain JWTs, JWTs with the inner JWE layer,
 * and nested (whole-token encrypted) JWTs; a bare oidc-provider issuing plain ES256 JWTs
 * (bench/bare-provider.ts); and the single-core crypto bound measured in this process.
 * Every server is a child process on 127.0.0.1; every child and the whole run are time-bounded.
 *
 * Environment (all optional):
 *   BENCH_SECONDS=10          measured seconds per row
 *   BENCH_WARMUP_SECONDS=3    warm-up seconds per row (first round only)
 *   BENCH_CONNECTIONS=16      autocannon connections
 *   BENCH_ROUNDS=1            repeat the rows; the median round per row is reported
 *   BENCH_ROWS=plain,inner,nested,bare   a subset of rows
 *   BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres  (PGlite when unreachable)
 *   BENCH_CPU_PROF=1          run Gatehouse under --cpu-prof and summarise its top frames
 *   BENCH_CRYPTO_MS=2000      time per crypto-bound measurement
 *   BENCH_ENFORCE=1           exit 1 when a target is not met
 */

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const RESULTS_DIR = path.join(ROOT, 'bench', 'results');

type RowName = 'plain' | 'inner' | 'nested' | 'bare';
const ALL_ROWS: readonly RowName[] = ['plain', 'inner', 'nested', 'bare'];

/** The commit measured, and whether src/ had uncommitted changes (then the commit alone does not say what ran). */
function sourceVersion(): string {
  try {
    const git = (...args: string[]) => execFileSync('git', args, { cwd: ROOT, encoding: 'utf8', timeout: 10_000 }).trim();
    const dirty = git('status', '--porcelain', '--', 'src', 'migrations') !== '';
    return `${git('rev-parse', '--short', 'HEAD')}${dirty ? ' + uncommitted src changes' : ''}`;
  } catch {
    return 'unknown';
  }
}

function envNumber(name: string, fallback: number, min: number, max: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value < min || value > max) throw new Error(`${name} must be a number between ${min} and ${max} (got ${raw})`);
  return value;
}

const settings = {
  seconds: envNumber('BENCH_SECONDS', 10, 1, 300),
  warmupSeconds: envNumber('BENCH_WARMUP_SECONDS', 3, 0, 60),
  connections: envNumber('BENCH_CONNECTIONS', 16, 1, 256),
  rounds: envNumber('BENCH_ROUNDS', 1, 1, 10),
  cryptoMs: envNumber('BENCH_CRYPTO_MS', 2000, 100, 30_000),
  databaseUrl: process.env['BENCH_DATABASE_URL'] || 'postgres://postgres@127.0.0.1:5432/postgres',
  cpuProf: ['1', 'true', 'yes'].includes(process.env['BENCH_CPU_PROF'] ?? ''),
  enforce: ['1', 'true', 'yes'].includes(process.env['BENCH_ENFORCE'] ?? ''),
  rows: (process.env['BENCH_ROWS'] ?? ALL_ROWS.join(','))
    .split(',')
    .map((row) => row.trim())
    .filter(Boolean)
    .map((row) => {
      if (!(ALL_ROWS as readonly string[]).includes(row)) throw new Error(`BENCH_ROWS: unknown row ${row} (rows: ${ALL_ROWS.join(', ')})`);
      return row as RowName;
    }),
};

const TARGETS = { innerOverBare: 0.8, innerTokensPerSecond: 1200, innerCostOverPlain: 0.25 } as const;

const log = (message: string) => process.stderr.write(`[bench] ${message}\n`);

// ---------------------------------------------------------------------------------------------
// Child processes: each one is tracked, stopped on every exit path, and stops itself when this
// process dies (bench/exit-with-parent.ts watches the stdin pipe).

interface Child {
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

function alive(child: ChildProcess): boolean {
  return child.exitCode === null && child.signalCode === null;
}

function spawnChild(name: string, nodeArgs: readonly string[], env: Record<string, string>): Child {
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

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const address = probe.address();
      probe.close(() => (typeof address === 'object' && address !== null ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

async function waitUntil(what: string, child: Child, check: () => Promise<boolean>, timeoutMs: number): Promise<void> {
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

interface BenchDatabase {
  readonly kind: 'postgres' | 'pglite';
  readonly url: string | undefined;
  drop(): Promise<void>;
}

async function createBenchDatabase(): Promise<BenchDatabase> {
  const admin = new pg.Client({ connectionString: settings.databaseUrl, connectionTimeoutMillis: 3_000 });
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
  const url = new URL(settings.databaseUrl);
  url.pathname = `/${name}`;
  let dropped = false;
  return {
    kind: 'postgres',
    url: url.toString(),
    async drop() {
      if (dropped) return;
      dropped = true;
      const client = new pg.Client({ connectionString: settings.databaseUrl, connectionTimeoutMillis: 3_000 });
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

function basic(id: string, secret: string): string {
  // RFC 6749 §2.3.1: form-urlencode each part, then Base64.
  const encode = (value: string) => encodeURIComponent(value).replaceAll('%20', '+');
  return `Basic ${Buffer.from(`${encode(id)}:${encode(secret)}`).toString('base64')}`;
}

const TOKEN_BODY = 'grant_type=client_credentials&scope=bench%3Aread';

async function requestToken(baseUrl: string, authorization: string, body: string): Promise<string> {
  const response = await fetch(`${baseUrl}/token`, {
    method: 'POST',
    headers: { authorization, 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
    body,
  });
  const text = await response.text();
  if (response.status !== 200) throw new Error(`POST ${baseUrl}/token answered ${response.status}: ${text}`);
  const token = (JSON.parse(text) as { access_token?: unknown }).access_token;
  if (typeof token !== 'string') throw new Error(`POST ${baseUrl}/token: no access_token in ${text}`);
  return token;
}

async function adminPost<T>(baseUrl: string, adminToken: string, route: string, body: unknown): Promise<T> {
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
// Servers under test.

interface Target {
  readonly row: RowName;
  readonly label: string;
  readonly url: string;
  readonly authorization: string;
}

interface GatehouseSetup {
  readonly child: Child;
  readonly url: string;
  readonly targets: Record<'plain' | 'inner' | 'nested', Target>;
  readonly innerKey: KeyObject;
  readonly profileFile: string | undefined;
  readonly dataDir: string;
}

async function startGatehouse(database: BenchDatabase, stamp: string): Promise<GatehouseSetup> {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const dataDir = await mkdtemp(path.join(tmpdir(), 'gatehouse-bench-'));
  const admin = { id: 'bench-admin', secret: randomBytes(32).toString('base64url') };
  const profileFile = settings.cpuProf ? path.join(RESULTS_DIR, `gatehouse-${stamp}.cpuprofile`) : undefined;
  const nodeArgs = [
    ...(profileFile === undefined ? [] : ['--cpu-prof', `--cpu-prof-dir=${path.dirname(profileFile)}`, `--cpu-prof-name=${path.basename(profileFile)}`]),
    '--import',
    'tsx',
    '--import',
    './bench/exit-with-parent.ts',
    'src/main.ts',
  ];
  const child = spawnChild('gatehouse', nodeArgs, {
    PORT: String(port),
    HOST: '127.0.0.1',
    ISSUER: url,
    DATA_DIR: dataDir,
    MASTER_KEY: randomBytes(32).toString('base64url'),
    BOOTSTRAP_ADMIN_CLIENT_ID: admin.id,
    BOOTSTRAP_ADMIN_CLIENT_SECRET: admin.secret,
    LOG_LEVEL: 'warn',
    SHUTDOWN_TIMEOUT_MS: '5000',
    ...(database.url === undefined ? {} : { DATABASE_URL: database.url }),
  });
  await waitUntil('ready (/readyz 200)', child, async () => (await fetch(`${url}/readyz`)).status === 200, 120_000);

  const adminToken = await requestToken(url, basic(admin.id, admin.secret), 'grant_type=client_credentials&scope=admin%3Aclients%20admin%3Aresource-servers');
  const { privateKey: innerKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const innerJwk = { ...publicKey.export({ format: 'jwk' }), kid: 'bench-inner', use: 'enc', alg: 'ECDH-ES+A256KW' };

  const definitions = {
    plain: { label: 'Gatehouse: ES256 JWT', extra: {} },
    inner: { label: 'Gatehouse: ES256 JWT + inner JWE (ECDH-ES+A256KW, P-256)', extra: { inner_encryption_jwk: innerJwk } },
    nested: { label: 'Gatehouse: inner JWE + whole-token JWE (cty JWT)', extra: { inner_encryption_jwk: innerJwk, encrypt_whole_token: true } },
  } as const;
  const targets = {} as Record<'plain' | 'inner' | 'nested', Target>;
  for (const row of ['plain', 'inner', 'nested'] as const) {
    const identifier = `https://${row}.bench.invalid`;
    await adminPost(url, adminToken, '/resource-servers', {
      identifier,
      name: `bench ${row}`,
      scopes: ['bench:read'],
      signing_alg: 'ES256',
      ...definitions[row].extra,
    });
    const client = await adminPost<{ client_id: string; client_secret: string }>(url, adminToken, '/clients', {
      client_name: `bench ${row}`,
      grant_types: ['client_credentials'],
      allowed_resources: [identifier],
    });
    targets[row] = { row, label: definitions[row].label, url, authorization: basic(client.client_id, client.client_secret) };
  }
  return { child, url, targets, innerKey, profileFile, dataDir };
}

interface BareSetup {
  readonly child: Child;
  readonly target: Target;
}

async function startBare(): Promise<BareSetup> {
  const port = await freePort();
  const client = { id: 'bench-bare', secret: randomBytes(32).toString('base64url') };
  const child = spawnChild('bare oidc-provider', ['--import', 'tsx', '--import', './bench/exit-with-parent.ts', 'bench/bare-provider.ts'], {
    PORT: String(port),
    BARE_CLIENT_ID: client.id,
    BARE_CLIENT_SECRET: client.secret,
    BARE_RESOURCE: 'https://bare.bench.invalid',
  });
  const url = `http://127.0.0.1:${port}`;
  await waitUntil('ready', child, () => Promise.resolve(child.output.stdout.includes('ready ')), 60_000);
  const version = (JSON.parse(await readFile(path.join(ROOT, 'node_modules/oidc-provider/package.json'), 'utf8')) as { version: string }).version;
  return { child, target: { row: 'bare', label: `bare oidc-provider ${version}: ES256 JWT, in-memory`, url, authorization: basic(client.id, client.secret) } };
}

/** Proves each row issues what it claims before timing it (signature, typ, the JWE layers). */
async function checkTokens(gatehouse: GatehouseSetup | undefined, bare: BareSetup | undefined): Promise<void> {
  const decoder = new TextDecoder();
  if (gatehouse !== undefined) {
    const jwks = createRemoteJWKSet(new URL(`${gatehouse.url}/jwks`));
    const verify = async (jws: string, audience: string) => {
      const { payload, protectedHeader } = await jwtVerify(jws, jwks, { issuer: gatehouse.url, audience, typ: 'at+jwt', algorithms: ['ES256'] });
      return { payload, protectedHeader };
    };
    const plain = await verify(await requestToken(gatehouse.url, gatehouse.targets.plain.authorization, TOKEN_BODY), 'https://plain.bench.invalid');
    if (plain.payload['inner'] !== undefined) throw new Error('plain row: token unexpectedly has an inner layer');

    const inner = await verify(await requestToken(gatehouse.url, gatehouse.targets.inner.authorization, TOKEN_BODY), 'https://inner.bench.invalid');
    const innerJwe = inner.payload['inner'];
    if (typeof innerJwe !== 'string') throw new Error('inner row: token has no inner layer');
    const opened = JSON.parse(decoder.decode((await compactDecrypt(innerJwe, gatehouse.innerKey)).plaintext)) as { jti?: unknown };
    if (opened.jti !== inner.payload.jti) throw new Error('inner row: inner.jti differs from the outer jti');

    const nested = await requestToken(gatehouse.url, gatehouse.targets.nested.authorization, TOKEN_BODY);
    if (decodeProtectedHeader(nested).cty !== 'JWT') throw new Error('nested row: token is not a nested JWT (cty JWT)');
    const outer = await verify(decoder.decode((await compactDecrypt(nested, gatehouse.innerKey)).plaintext), 'https://nested.bench.invalid');
    if (typeof outer.payload['inner'] !== 'string') throw new Error('nested row: signed token has no inner layer');
  }
  if (bare !== undefined) {
    const jwks = createRemoteJWKSet(new URL(`${bare.target.url}/jwks`));
    const token = await requestToken(bare.target.url, bare.target.authorization, TOKEN_BODY);
    await jwtVerify(token, jwks, { audience: 'https://bare.bench.invalid', typ: 'at+jwt', algorithms: ['ES256'] });
  }
}

// ---------------------------------------------------------------------------------------------
// Load.

interface RunResult {
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

async function drive(target: Target, seconds: number): Promise<RunResult> {
  const result = await autocannon({
    url: `${target.url}/token`,
    method: 'POST',
    connections: settings.connections,
    duration: seconds,
    timeout: 10,
    headers: { authorization: target.authorization, 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
    body: TOKEN_BODY,
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

async function failOnBadResponses(target: Target, run: RunResult): Promise<void> {
  if (run.non2xx === 0 && run.errors === 0 && run.timeouts === 0 && run.requests > 0) return;
  let sample: string;
  try {
    const response = await fetch(`${target.url}/token`, {
      method: 'POST',
      headers: { authorization: target.authorization, 'content-type': 'application/x-www-form-urlencoded' },
      body: TOKEN_BODY,
    });
    sample = `; a request now answers ${response.status}: ${(await response.text()).slice(0, 500)}`;
  } catch (error) {
    sample = `; a request now fails: ${(error as Error).message}`;
  }
  throw new Error(
    `row ${target.row}: ${run.non2xx} non-2xx responses, ${run.errors} connection errors, ${run.timeouts} timeouts out of ${run.requests} requests${sample}`,
  );
}

// ---------------------------------------------------------------------------------------------
// The single-core crypto bound, in this process: ES256 sign (node:crypto) and the inner JWE
// (src/tokens/jwe.ts), on payloads the size of real tokens.

interface CryptoBound {
  readonly signMicros: number;
  readonly signEncryptMicros: number;
  readonly nestedMicros: number;
  readonly plainTokensPerSecond: number;
  readonly innerTokensPerSecond: number;
  readonly nestedTokensPerSecond: number;
}

function microsPerOp(operation: () => unknown, minMs: number): number {
  for (let i = 0; i < 300; i++) operation();
  const limit = BigInt(Math.round(minMs * 1e6));
  const start = process.hrtime.bigint();
  let ops = 0;
  let elapsed: bigint;
  do {
    for (let i = 0; i < 50; i++) operation();
    ops += 50;
    elapsed = process.hrtime.bigint() - start;
  } while (elapsed < limit);
  return Number(elapsed) / 1e3 / ops;
}

function measureCryptoBound(): CryptoBound {
  const b64u = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
  const { privateKey: signingKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const { publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const recipient = importRecipient({ ...publicKey.export({ format: 'jwk' }), kid: 'bench-inner', use: 'enc' });
  const now = Math.floor(Date.now() / 1000);
  const jti = randomBytes(32).toString('base64url');
  const clientId = randomBytes(16).toString('base64url');
  const header = b64u({ alg: 'ES256', typ: 'at+jwt', kid: 'bench-es256' });
  const claims = { iss: 'http://127.0.0.1:3000', sub: clientId, aud: 'https://inner.bench.invalid', exp: now + 900, iat: now, jti, client_id: clientId, scope: 'bench:read' };
  const es256 = (input: string) => `${input}.${sign('sha256', Buffer.from(input), { key: signingKey, dsaEncoding: 'ieee-p1363' }).toString('base64url')}`;
  const innerToken = () => {
    const inner = recipient.encrypt(JSON.stringify({ jti, client_id: clientId, client_name: 'bench inner' }));
    return es256(`${header}.${b64u({ ...claims, inner })}`);
  };
  const plainInput = `${header}.${b64u(claims)}`;

  const signMicros = microsPerOp(() => es256(plainInput), settings.cryptoMs);
  const signEncryptMicros = microsPerOp(innerToken, settings.cryptoMs);
  const nestedMicros = microsPerOp(() => recipient.encrypt(innerToken(), { cty: 'JWT' }), settings.cryptoMs);
  return {
    signMicros,
    signEncryptMicros,
    nestedMicros,
    plainTokensPerSecond: 1e6 / signMicros,
    innerTokensPerSecond: 1e6 / signEncryptMicros,
    nestedTokensPerSecond: 1e6 / nestedMicros,
  };
}

// ---------------------------------------------------------------------------------------------
// Report.

interface Check {
  readonly name: string;
  readonly value: number;
  readonly display: string;
  readonly target: string;
  readonly met: boolean | undefined;
}

function median<T>(values: readonly T[], key: (value: T) => number): T {
  const sorted = [...values].sort((a, b) => key(a) - key(b));
  return sorted[Math.floor((sorted.length - 1) / 2)]!;
}

const fmt = (value: number, digits = 0) => value.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
const pct = (value: number) => `${(value * 100).toFixed(1)} %`;

function buildChecks(rows: Partial<Record<RowName, RunResult>>, bound: CryptoBound): Check[] {
  const { plain, inner, nested, bare } = rows;
  const checks: Check[] = [];
  if (inner !== undefined && bare !== undefined) {
    const value = inner.tokensPerSecond / bare.tokensPerSecond;
    checks.push({ name: 'inner / bare', value, display: `${value.toFixed(2)}×`, target: `≥ ${TARGETS.innerOverBare.toFixed(2)}×`, met: value >= TARGETS.innerOverBare });
  }
  if (inner !== undefined) {
    const value = inner.tokensPerSecond;
    checks.push({ name: 'inner tokens/s', value, display: fmt(value), target: `≥ ${fmt(TARGETS.innerTokensPerSecond)}`, met: value >= TARGETS.innerTokensPerSecond });
  }
  if (inner !== undefined && plain !== undefined) {
    const value = 1 - inner.tokensPerSecond / plain.tokensPerSecond;
    checks.push({ name: 'inner cost over plain (1 − inner/plain)', value, display: pct(value), target: `≤ ${pct(TARGETS.innerCostOverPlain)}`, met: value <= TARGETS.innerCostOverPlain });
  }
  if (nested !== undefined && plain !== undefined) {
    const value = 1 - nested.tokensPerSecond / plain.tokensPerSecond;
    checks.push({ name: 'nested cost over plain (1 − nested/plain)', value, display: pct(value), target: '—', met: undefined });
  }
  if (plain !== undefined && bare !== undefined) {
    const value = plain.tokensPerSecond / bare.tokensPerSecond;
    checks.push({ name: 'plain / bare', value, display: `${value.toFixed(2)}×`, target: '—', met: undefined });
  }
  if (inner !== undefined) {
    const value = inner.tokensPerSecond / bound.innerTokensPerSecond;
    checks.push({ name: 'inner / crypto bound (sign + inner JWE, one core)', value, display: `${value.toFixed(2)}×`, target: '—', met: undefined });
  }
  if (plain !== undefined) {
    const value = plain.tokensPerSecond / bound.plainTokensPerSecond;
    checks.push({ name: 'plain / crypto bound (sign, one core)', value, display: `${value.toFixed(2)}×`, target: '—', met: undefined });
  }
  return checks;
}

interface Report {
  readonly date: string;
  readonly environment: Record<string, string | number>;
  readonly rows: Partial<Record<RowName, RunResult & { label: string; rounds: RunResult[] }>>;
  readonly cryptoBound: CryptoBound;
  readonly checks: Check[];
}

function markdown(report: Report): string {
  const env = report.environment;
  const lines = [
    `# Token endpoint benchmark, ${report.date}`,
    '',
    `Node ${env['node']}, ${env['cpus']} × ${env['cpuModel']}; Gatehouse on ${env['database']}, one process; ` +
      `autocannon ${env['connections']} connections, POST /token (client_secret_basic, client_credentials), ` +
      `${env['seconds']} s per row after ${env['warmupSeconds']} s warm-up, ${env['rounds']} round(s) (median shown); ` +
      `load average ${env['loadAverageAtStart']} at start; source ${env['source']}.`,
    ...(env['cpuProfile'] === 'yes' ? ['', '**Gatehouse ran under `--cpu-prof`: its rows are slowed by the profiler; do not compare them with unprofiled runs.**'] : []),
    '',
    '| row | what | tokens/s | p50 ms | p99 ms | requests | non-2xx | load avg |',
    '|---|---|---:|---:|---:|---:|---:|---:|',
  ];
  for (const name of ALL_ROWS) {
    const row = report.rows[name];
    if (row === undefined) continue;
    lines.push(`| ${name} | ${row.label} | ${fmt(row.tokensPerSecond)} | ${fmt(row.p50Ms, 1)} | ${fmt(row.p99Ms, 1)} | ${fmt(row.requests)} | ${row.non2xx} | ${row.loadAverage.toFixed(1)} |`);
  }
  const bound = report.cryptoBound;
  lines.push(
    '',
    'Single-core crypto bound (in-process, node:crypto ES256 sign + src/tokens/jwe.ts):',
    '',
    '| bound | µs per token | tokens/s |',
    '|---|---:|---:|',
    `| plain: ES256 sign | ${fmt(bound.signMicros, 1)} | ${fmt(bound.plainTokensPerSecond)} |`,
    `| inner: sign + inner JWE | ${fmt(bound.signEncryptMicros, 1)} | ${fmt(bound.innerTokensPerSecond)} |`,
    `| nested: sign + inner JWE + whole-token JWE | ${fmt(bound.nestedMicros, 1)} | ${fmt(bound.nestedTokensPerSecond)} |`,
    '',
    '| ratio | value | target | met |',
    '|---|---:|---:|---|',
    ...report.checks.map((check) => `| ${check.name} | ${check.display} | ${check.target} | ${check.met === undefined ? '' : check.met ? 'met' : '**NOT met**'} |`),
    '',
    'Figures drift ±30 % between runs on a shared machine; compare the ratios within one run. ' +
      '"load avg" is the 1-minute load average at the end of the row: this run itself accounts for about 2; more means other work shared the cores.',
    '',
  );
  return lines.join('\n');
}

// ---------------------------------------------------------------------------------------------

async function main(): Promise<number> {
  const started = new Date();
  const loadAtStart = loadavg()[0] ?? 0;
  const stamp = started.toISOString().replace(/\.\d+Z$/, 'Z').replaceAll(':', '-');
  await mkdir(RESULTS_DIR, { recursive: true });
  const wantGatehouse = settings.rows.some((row) => row !== 'bare');
  const wantBare = settings.rows.includes('bare');

  log(`crypto bound: ${settings.cryptoMs} ms per measurement, nothing else running`);
  const cryptoBound = measureCryptoBound();
  log(`crypto bound: sign ${cryptoBound.signMicros.toFixed(1)} µs, sign + inner JWE ${cryptoBound.signEncryptMicros.toFixed(1)} µs`);

  let database: BenchDatabase | undefined;
  let gatehouse: GatehouseSetup | undefined;
  let bare: BareSetup | undefined;
  const cleanup = async () => {
    await Promise.allSettled([gatehouse?.child.stop(), bare?.child.stop()]);
    await database?.drop().catch((error: unknown) => log(`could not drop the bench database: ${(error as Error).message}`));
    if (gatehouse !== undefined) await rm(gatehouse.dataDir, { recursive: true, force: true });
  };
  cleanups.push(cleanup);

  try {
    if (wantGatehouse) {
      database = await createBenchDatabase();
      log(`starting Gatehouse on ${database.kind}${settings.cpuProf ? ' under --cpu-prof' : ''}`);
      gatehouse = await startGatehouse(database, stamp);
    }
    if (wantBare) {
      log('starting the bare oidc-provider');
      bare = await startBare();
    }
    await checkTokens(gatehouse, bare);
    log('tokens checked: signatures, typ, inner jti, nested cty JWT');

    const targets = settings.rows.map((row) => (row === 'bare' ? bare!.target : gatehouse!.targets[row]));
    const runs = new Map<RowName, RunResult[]>();
    for (let round = 1; round <= settings.rounds; round++) {
      for (const target of targets) {
        if (round === 1 && settings.warmupSeconds > 0) {
          log(`${target.row}: warm-up ${settings.warmupSeconds} s`);
          await failOnBadResponses(target, await drive(target, settings.warmupSeconds));
        }
        const run = await drive(target, settings.seconds);
        await failOnBadResponses(target, run);
        log(`${target.row} (round ${round}): ${run.tokensPerSecond.toFixed(0)} tokens/s, p50 ${run.p50Ms} ms, p99 ${run.p99Ms} ms, load ${run.loadAverage.toFixed(1)}`);
        runs.set(target.row, [...(runs.get(target.row) ?? []), run]);
      }
    }

    const rows: Report['rows'] = {};
    for (const target of targets) {
      const rounds = runs.get(target.row) ?? [];
      rows[target.row] = { ...median(rounds, (run) => run.tokensPerSecond), label: target.label, rounds };
    }
    const checks = buildChecks(rows, cryptoBound);
    const nodeVersion = process.version;
    const report: Report = {
      date: started.toISOString(),
      environment: {
        node: nodeVersion,
        cpus: cpus().length,
        cpuModel: cpus()[0]?.model.trim() ?? 'unknown',
        database: database?.kind ?? 'none',
        connections: settings.connections,
        seconds: settings.seconds,
        warmupSeconds: settings.warmupSeconds,
        rounds: settings.rounds,
        cpuProfile: settings.cpuProf ? 'yes' : 'no',
        loadAverageAtStart: Number(loadAtStart.toFixed(2)),
        source: sourceVersion(),
      },
      rows,
      cryptoBound,
      checks,
    };

    const text = markdown(report);
    await writeFile(path.join(RESULTS_DIR, `tokens-${stamp}.md`), text);
    await writeFile(path.join(RESULTS_DIR, `tokens-${stamp}.json`), JSON.stringify(report, null, 2) + '\n');
    process.stdout.write(text);
    log(`written bench/results/tokens-${stamp}.md and .json`);

    if (gatehouse?.profileFile !== undefined) {
      await gatehouse.child.stop();
      const summary = await summarizeProfileFile(gatehouse.profileFile, 25);
      const profileText = profileMarkdown(summary, `Gatehouse CPU profile, rows ${settings.rows.join(', ')} (${path.basename(gatehouse.profileFile)})`);
      await writeFile(path.join(RESULTS_DIR, `tokens-${stamp}-profile.md`), profileText + '\n');
      process.stdout.write(`\n${profileText}\n`);
      log(`written bench/results/tokens-${stamp}-profile.md`);
    }
    return settings.enforce && checks.some((check) => check.met === false) ? 1 : 0;
  } finally {
    await cleanup();
  }
}

const cleanups: (() => Promise<void>)[] = [];
async function abort(reason: string, code: number): Promise<never> {
  log(reason);
  await Promise.race([Promise.allSettled(cleanups.map((cleanup) => cleanup())), new Promise((resolve) => setTimeout(resolve, 25_000))]);
  process.exit(code);
}

// Bound the whole run: every row's warm-up and measurement, plus start-up and slack.
const budgetMs =
  (settings.rows.length * (settings.rounds * (settings.seconds + 5) + settings.warmupSeconds + 5) + (3 * settings.cryptoMs) / 1000 + 300) * 1000;
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
